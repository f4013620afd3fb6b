"""Does `BeatsFeatureExtractor` cost little more than the kaldi fbank it wraps? (goal: ratio <= 1.2 on 10 s audio)

Times `BeatsFeatureExtractor()(waveform, sampling_rate=16000, return_tensors="pt")` on a 10 s, 16 kHz mono waveform
against calling `torchaudio.compliance.kaldi.fbank` directly with the same settings (the waveform x 2**15, 64 mel
bins, 25 ms windows, 10 ms shift, kaldi defaults otherwise), after checking that the extractor's features are that
fbank, normalised. The extractor adds input checks, the normalisation, the copy into a padded 1024-frame segment and
the conversion to a `BatchFeature`. A second row reads the same audio from a WAV file (decoding included).

Each repeat times `--calls` calls of each, taking turns (so load from other processes hits both alike); the ratio is
formed per repeat, and the table gives its median and min-max. Where the extractor spends its time follows.

    python bench/bench_audio_features.py [--runs 9] [--calls 20] [--seconds 10] [--threads 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.compliance.kaldi as ta_kaldi

from benchlib import add_arguments, figure_row, markdown_table, set_threads, write_json
from transformers_chatbridge import BeatsFeatureExtractor

RATE = 16000


def waveform(seconds: float) -> np.ndarray:
    """Tones plus noise in [-1, 1], float32: every mel bin sees some energy."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    wave = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (220, 660, 1500, 4000)) + 0.05 * rng.standard_normal(t.size)
    return np.clip(wave, -1, 1).astype(np.float32)


def per_call(function: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls


def breakdown(extractor: BeatsFeatureExtractor, wave: np.ndarray, calls: int) -> dict[str, float]:
    """Median ms per call inside the extractor's steps (its methods wrapped with timers on this instance)."""
    steps = {"resample": "to tensor (+ resampling)", "compute_fbank": "kaldi fbank (x 2**15 included)",
             "normalize": "normalisation"}  # fmt: skip
    totals = dict.fromkeys(steps.values(), 0.0)
    for method, label in steps.items():
        original = getattr(extractor, method)

        def timed(*args, _original=original, _label=label, **kwargs):
            start = time.perf_counter()
            result = _original(*args, **kwargs)
            totals[_label] += time.perf_counter() - start
            return result

        setattr(extractor, method, timed)
    whole = per_call(lambda: extractor(wave, sampling_rate=RATE, return_tensors="pt"), calls)
    for method in steps:
        delattr(extractor, method)
    parts = {label: 1e3 * total / calls for label, total in totals.items()}
    return {"whole call": 1e3 * whole, **parts, "the rest (input checks, reading, padded segment, numpy / BatchFeature)": 1e3 * whole
            - sum(parts.values())}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--calls", type=int, default=20, help="calls per timing")
    parser.add_argument("--seconds", type=float, default=10.0)
    add_arguments(parser)
    args = parser.parse_args()
    set_threads(args)

    extractor = BeatsFeatureExtractor()
    wave = waveform(args.seconds)
    scale = extractor.waveform_scale

    def bare() -> torch.Tensor:
        return ta_kaldi.fbank(torch.from_numpy(wave).unsqueeze(0) * scale, num_mel_bins=64, sample_frequency=RATE,
                              frame_length=25, frame_shift=10)  # fmt: skip

    def from_array():
        return extractor(wave, sampling_rate=RATE, return_tensors="pt")

    # The extractor's features must be exactly the bare fbank, normalised, in the first frames of its segment.
    reference, features = bare(), from_array()["input_features"]
    frames = reference.shape[0]
    torch.testing.assert_close(features[0, 0, :frames], extractor.normalize(reference))

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-audio-") as tmp:
        path = Path(tmp) / "clip.wav"
        soundfile.write(path, wave, RATE, subtype="PCM_16")

        def from_file():
            return extractor(str(path), return_tensors="pt")

        times: dict[str, list[float]] = {"bare": [], "array": [], "file": []}
        calls = {"bare": bare, "array": from_array, "file": from_file}
        for function in calls.values():
            per_call(function, 3)  # warm-up
        for run in range(args.runs):
            for name in list(calls) if run % 2 == 0 else list(calls)[::-1]:
                times[name].append(per_call(calls[name], args.calls))
        bare_ms = 1e3 * statistics.median(times["bare"])
        rows.append(figure_row(
            f"`BeatsFeatureExtractor` on a {args.seconds:g} s 16 kHz waveform / bare kaldi fbank",
            [a / b for a, b in zip(times["array"], times["bare"])], "<= 1.2x",
            peer="`torchaudio.compliance.kaldi.fbank`, same settings",
            details=f"{1e3 * statistics.median(times['array']):.2f} vs {bare_ms:.2f} ms; {frames} frames x 64 bins",
        ))  # fmt: skip
        rows.append(figure_row(
            "same, read from a 16-bit WAV file (decoding included) / bare kaldi fbank",
            [a / b for a, b in zip(times["file"], times["bare"])], peer="as above",
            details=f"{1e3 * statistics.median(times['file']):.2f} vs {bare_ms:.2f} ms",
        ))  # fmt: skip
    parts = breakdown(extractor, wave, args.calls)
    table = "\n".join(["| where one extractor call goes (ms, one timing) | ms |", "|---|---|"]
                      + [f"| {part} | {ms:.2f} |" for part, ms in parts.items()])  # fmt: skip

    print(f"{args.seconds:g} s of 16 kHz audio, {args.runs} repeats x {args.calls} calls, torch threads "
          f"{torch.get_num_threads()}\n")
    print(markdown_table(rows))
    print("\n" + table)
    notes = []
    if rows[0].met is False:
        overhead = parts["whole call"] - parts["kaldi fbank (x 2**15 included)"]
        notes.append(
            f"What limits the fbank row: of {parts['whole call']:.2f} ms per call, the kaldi fbank takes "
            f"{parts['kaldi fbank (x 2**15 included)']:.2f}; the other {overhead:.2f} ms are the extractor's own steps "
            "(table below). They are linear passes over the waveform or the features (finiteness and range checks, "
            "normalisation, the copy into the padded 1024-frame segment), each a fraction of a millisecond, so the "
            "ratio moves with how fast the fbank itself runs on the machine."
        )
    notes.append(table)
    write_json(args, "Audio front end: BeatsFeatureExtractor against the bare kaldi fbank", rows,
               f"{args.seconds:g} s of 16 kHz mono audio (tones + noise), {args.runs} repeats x {args.calls} calls "
               f"each, taking turns; torch threads {torch.get_num_threads()}", notes)


if __name__ == "__main__":
    main()
