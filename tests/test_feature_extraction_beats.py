"""BeatsFeatureExtractor: parity with the original ChatBridge audio preprocessing, input kinds, hostile audio."""

import json
import logging
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
from safetensors.numpy import load_file

from transformers_chatbridge.feature_extraction_beats import BeatsFeatureExtractor
from transformers_chatbridge.segment_sampling import segment_groups, segment_indices


def slice_groups(num_frames: int, n: int) -> list[list[int]]:
    """The slice groups the extractor picks from: the shared segment rule over the original's padded slices."""
    return [list(group) for group in segment_groups(BeatsFeatureExtractor.padded_slice_count(num_frames, n), n)]




FIXTURES = Path(__file__).parent / "fixtures" / "original_tiny"
TONE = FIXTURES / "media" / "tone_mix_3s_22050hz_stereo.wav"
CHIRP = FIXTURES / "media" / "chirp_14s_16khz_mono.wav"
MEAN, STD = 15.41663, 6.55582
ATOL = 1e-4


@pytest.fixture(scope="module")
def fe():
    return BeatsFeatureExtractor()


@pytest.fixture(scope="module")
def ref():
    return load_file(FIXTURES / "preproc_audio.safetensors")


@pytest.fixture(scope="module")
def ref_json():
    return json.loads((FIXTURES / "preproc_audio.json").read_text())


def _tone(seconds=1.0, sr=16000, freq=440.0, channels=1, amp=0.3):
    t = np.arange(int(round(seconds * sr))) / sr
    waves = [amp * np.sin(2 * np.pi * freq * (c + 1) * t) for c in range(channels)]
    return np.stack(waves).astype(np.float32)  # (channels, samples)


def _noise(seconds, sr=16000, seed=0):
    return (np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * sr))).astype(np.float32)


def _write_mp3(path, wave, sr):
    """A real MP3 written with PyAV (libmp3lame if available, else FFmpeg's native mp3 encoder)."""
    codec = "libmp3lame" if "libmp3lame" in av.codecs_available else "mp3"
    with av.open(str(path), "w", format="mp3") as container:
        stream = container.add_stream(codec, rate=sr)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(wave[None, :].astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = sr
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _write_m4a(path, wave, sr):
    """AAC in an MP4 container: libsndfile cannot read it, so this exercises the PyAV fallback."""
    with av.open(str(path), "w", format="ipod") as container:
        stream = container.add_stream("aac", rate=sr)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(wave[None, :].astype(np.float32), format="fltp", layout="mono")
        frame.sample_rate = sr
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _within(seconds, fn, *args, **kwargs):
    """Run fn in a worker thread and fail if it has not returned (or raised) within `seconds`."""
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(fn, *args, **kwargs).result(timeout=seconds)
    finally:
        pool.shutdown(wait=False)


def _frames(samples, sr=16000):
    """Kaldi frame count (snip_edges) of a clip resampled to 16 kHz."""
    n = math.ceil(samples * 16000 / sr)
    return 1 + (n - 400) // 160


def _whole_clip_16k(wave, sr):
    """Channel 0 of the whole clip resampled to 16 kHz as the original does (torchaudio's Resample, defaults)."""
    wave = torch.as_tensor(np.atleast_2d(wave))
    return (wave if sr == 16000 else torchaudio.transforms.Resample(sr, 16000)(wave))[0]


def _padded_slices(fe, wave, sr):
    """The original's padded, normalised fbank of the whole clip cut into 1024-row slices, built step by step (the
    extractor reads only the samples under its chosen slices; these cross-check it)."""
    fbank = fe.normalize(fe.compute_fbank(_whole_clip_16k(wave, sr))).numpy()
    length = fbank.shape[0]
    pad = max(1024 - length, 1024 - length % 1024)
    padded = np.concatenate([fbank, np.zeros((pad, 64), np.float32)])
    return padded.reshape(-1, 1024, 64), length


# ----------------------------------------------------------------------------- reference parity


def test_resampled_tone_channel0_matches_reference(fe, ref, ref_json):
    wave, sr = sf.read(TONE, dtype="float32", always_2d=True)
    assert sr == ref_json["computed"]["tone"]["sample_rate"]
    assert list(wave.T.shape) == ref_json["computed"]["tone"]["torchaudio_load_shape"]
    wave16k = _whole_clip_16k(wave.T, sr).numpy()
    assert wave16k.shape == (ref_json["computed"]["tone"]["resampled_shape"][1],)
    np.testing.assert_allclose(wave16k[::16], ref["tone_wave16k_ch0_s16"], atol=1e-6, rtol=0)


def test_raw_fbank_matches_reference(fe, ref, ref_json):
    # The json says both fbank keys are load_wav outputs, i.e. BEFORE normalisation.
    for name, path, key, step in [("tone", TONE, "tone_fbank_raw", 1), ("chirp", CHIRP, "chirp_fbank_raw_s8", 8)]:
        wave, sr = sf.read(path, dtype="float32", always_2d=True)
        fbank = fe.compute_fbank(_whole_clip_16k(wave.T, sr)).numpy()
        stats = ref_json["computed"][name]["fbank_raw_stats"]
        assert list(fbank.shape) == stats["shape"]
        assert np.abs(fbank[::step] - ref[key]).max() <= ATOL
        as64 = fbank.astype(np.float64)
        assert as64.std(ddof=1) == pytest.approx(stats["std"], abs=1e-4)  # the json's std is torch's (unbiased)
        for stat in ("mean", "min", "max"):
            assert getattr(np, stat)(as64) == pytest.approx(stats[stat], abs=1e-4)
        assert fbank.astype(np.float64).sum() == pytest.approx(stats["sum"], rel=1e-6)


def test_full_eval_output_matches_original_audio_fbank(fe):
    expected = load_file(FIXTURES / "tensors.safetensors")["audio_fbank"]
    out = fe(str(CHIRP), return_tensors="pt")
    assert out["input_features"].shape == (1, 1, 1024, 64) == expected.shape
    assert out["input_features"].dtype == torch.float32
    assert (out["input_features"].numpy() - expected).__abs__().max() <= ATOL
    assert out["input_features_mask"].tolist() == [[[1] * 1024]]


@pytest.mark.parametrize("name,path", [("tone", TONE), ("chirp", CHIRP)])
@pytest.mark.parametrize("n", [1, 2])
def test_readme_slice_table(fe, ref, ref_json, name, path, n):
    """Every row of the README's slice / group / chosen / real-rows table, plus the values of the chosen slices."""
    row = ref_json["computed"][name]["segments"][str(n)]
    out = fe(str(path), num_segments=n)
    features, mask = out["input_features"], out["input_features_mask"]
    assert list(features.shape[1:]) == row["output_shape"] and features.shape[0] == 1
    assert mask.shape == (1, n, 1024)
    length = row["src_length"]
    assert slice_groups(length, n) == row["slice_groups"]
    assert max(1024 * n - length, 1024 - length % 1024) == row["pad_len"]
    assert len(sum(row["slice_groups"], [])) == row["total_slices"]
    assert mask[0].sum(-1).tolist() == row["real_rows_per_output_segment"]
    # Mask: a prefix of ones (real frames), then zeros; padded rows are exactly zero.
    for seg in range(n):
        real = int(mask[0, seg].sum())
        assert mask[0, seg, :real].all() and not mask[0, seg, real:].any()
        assert not features[0, seg, real:].any()
    # Values: rebuild the original output from the reference raw fbank and the README's chosen slices.
    raw = ref["tone_fbank_raw"] if name == "tone" else ref["chirp_fbank_raw_s8"]
    normalised = (raw - MEAN) / (2 * STD)
    step = 1 if name == "tone" else 8
    for seg, chosen in enumerate(row["chosen_slices"]):
        rows = np.arange(chosen * 1024, (chosen + 1) * 1024)[::step]  # absolute rows of this slice in ref's grid
        have = features[0, seg][:: step]
        want = np.zeros_like(have)
        real = rows < length
        want[real] = normalised[rows[real] // step]
        assert np.abs(have - want).max() <= ATOL


def test_slice_groups_rule():
    # Groups are contiguous, sizes differ by at most one, the first (count mod n) groups are the longer ones.
    assert slice_groups(2498, 1) == [[0, 1, 2]]
    assert slice_groups(5999, 4) == [[0, 1], [2, 3], [4], [5]]
    assert slice_groups(1024, 1) == [[0, 1]]  # a whole extra zero slice
    assert slice_groups(10 * 1024 - 5, 3) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    # Same grouping as the README's video table (segment-middle column), whenever there are at least n slices
    # (always the case for audio, whose padding guarantees n slices).
    video_rows = [
        (10, 4, [1, 4, 6, 8]),
        (10, 8, [0, 2, 4, 5, 6, 7, 8, 9]),
        (57, 4, [7, 21, 35, 49]),
        (57, 8, [3, 11, 18, 25, 32, 39, 46, 53]),
        (300, 4, [37, 112, 187, 262]),
        (300, 8, [18, 56, 94, 132, 170, 207, 244, 281]),
    ]
    for count, n, expected in video_rows:
        groups = slice_groups(count * 1024 - 1, n)  # -1 so the padding adds no extra slice
        assert [g[math.ceil(len(g) / 2) - 1] for g in groups] == expected


# ----------------------------------------------------------------------------- segment sampling


def test_random_sampling_stays_in_group_and_differs_from_middle(fe):
    wave = _noise(60.0)  # 5999 frames -> 6 slices -> groups [[0, 1, 2], [3, 4, 5]] for n=2
    slices, length = _padded_slices(fe, wave, 16000)
    groups = slice_groups(length, 2)
    assert groups == [[0, 1, 2], [3, 4, 5]]
    middle = fe(wave, sampling_rate=16000, num_segments=2)["input_features"][0]
    np.testing.assert_array_equal(middle, slices[[1, 4]])
    seen, differs = [set(), set()], False
    for seed in range(12):
        torch.manual_seed(seed)
        out = fe(wave, sampling_rate=16000, num_segments=2, segment_sampling="random")["input_features"][0]
        for seg, group in enumerate(groups):
            matches = [i for i in group if np.array_equal(out[seg], slices[i])]
            assert len(matches) == 1, "the random slice must be one slice of its own group"
            seen[seg].add(matches[0])
        differs |= not np.array_equal(out, middle)
        # Same seed -> same choice.
        torch.manual_seed(seed)
        again = fe(wave, sampling_rate=16000, num_segments=2, segment_sampling="random")["input_features"][0]
        np.testing.assert_array_equal(out, again)
    assert differs
    assert all(len(s) > 1 for s in seen)
    # The instance setting (training) works too, and a generator can be passed.
    trainer = BeatsFeatureExtractor(segment_sampling="random", num_segments=2)
    a = trainer(wave, sampling_rate=16000, generator=torch.Generator().manual_seed(3))["input_features"]
    b = trainer(wave, sampling_rate=16000, generator=torch.Generator().manual_seed(3))["input_features"]
    np.testing.assert_array_equal(a, b)


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="segment_sampling"):
        BeatsFeatureExtractor(segment_sampling="uniform")
    with pytest.raises(ValueError, match="num_segments"):
        BeatsFeatureExtractor(num_segments=0)
    with pytest.raises(ValueError, match="num_mel_bins"):
        BeatsFeatureExtractor(feature_size=128)


# ----------------------------------------------------------------------------- input kinds


def test_input_kinds_agree(fe, tmp_path):
    wave = _tone(2.0, sr=16000)[0]
    path = tmp_path / "clip.wav"
    sf.write(path, wave, 16000, subtype="PCM_16")
    pcm = sf.read(path, dtype="float32")[0]  # the values actually stored (PCM16-quantised)
    expected = fe(pcm, sampling_rate=16000)["input_features"]
    assert expected.shape == (1, 1, 1024, 64)
    variants = {
        "str path": str(path),
        "Path": path,
        "bytes": path.read_bytes(),
        "torch": torch.from_numpy(pcm),
        "torch 2-D": torch.from_numpy(pcm)[None],
        "int16 numpy": (pcm * 32768).astype(np.int16),
        "list of floats": pcm.tolist(),
    }
    for name, item in variants.items():
        out = fe(item, sampling_rate=16000)["input_features"]
        np.testing.assert_array_equal(out, expected, err_msg=name)
    dicts = [
        {"array": pcm, "sampling_rate": 16000},  # datasets Audio, decoded
        {"path": str(path), "bytes": None},  # datasets Audio(decode=False)
        {"path": None, "bytes": path.read_bytes()},
    ]
    for item in dicts:
        np.testing.assert_array_equal(fe(item)["input_features"], expected)


def test_list_of_mixed_items(fe, tmp_path):
    path = tmp_path / "a.flac"
    sf.write(path, _tone(1.0)[0], 16000)
    items = [str(CHIRP), path, {"array": _tone(0.5, sr=8000)[0], "sampling_rate": 8000}, _tone(3.0)[0]]
    out = fe(items, sampling_rate=16000, num_segments=2, return_tensors="pt")
    assert out["input_features"].shape == (4, 2, 1024, 64)
    assert out["input_features_mask"].shape == (4, 2, 1024)
    assert out["input_features_mask"].sum(-1).tolist() == [[1024, 374], [98, 0], [48, 0], [298, 0]]
    for i, item in enumerate(items):
        single = fe(item, sampling_rate=16000, num_segments=2)["input_features"][0]
        np.testing.assert_array_equal(out["input_features"][i].numpy(), single)


def test_arrays_without_sampling_rate_are_taken_at_the_extractor_rate_with_a_warning(fe, caplog):
    wave = _tone(1.0)[0]
    with caplog.at_level(logging.WARNING, logger="transformers_chatbridge"):
        assumed = fe([str(CHIRP), {"array": wave, "sampling_rate": 16000}, wave])["input_features"][2]
    assert "Audio item 2 (array) has no sampling rate: assuming 16000 Hz" in caplog.text
    assert "Audio item 1" not in caplog.text
    np.testing.assert_array_equal(assumed, fe(wave, sampling_rate=16000)["input_features"][0])


@pytest.mark.parametrize(
    "item,match",
    [
        (np.zeros((2, 3, 1000), np.float32), "channels, samples"),
        (np.zeros((16000, 2), np.float32), "channels first"),
        (np.zeros(0, np.float32), "empty"),
        (np.array([0.0] * 1000 + [np.nan], np.float32), "NaN"),
        (np.array([0.0] * 1000 + [np.inf], np.float32), "NaN or infinite"),
        (np.zeros(1000, dtype=np.complex64), "dtype"),
        ({"sampling_rate": 16000}, "dict needs"),
        (object(), "unsupported type"),
    ],
)
def test_bad_arrays_raise(fe, item, match):
    with pytest.raises(ValueError, match=match):
        fe([_tone(1.0)[0], item], sampling_rate=16000)


def test_bad_sampling_rate_and_missing_file(fe, tmp_path):
    with pytest.raises(ValueError, match="Audio item 0.*positive integer"):
        fe(_tone(1.0)[0], sampling_rate=-5)
    with pytest.raises(ValueError, match="No audio"):
        fe([])
    with pytest.raises(FileNotFoundError, match="Audio item 1.*nope.wav"):
        fe([str(CHIRP), tmp_path / "nope.wav"])


# ----------------------------------------------------------------------------- hostile audio files


def test_truncated_mp3_decodes_what_is_there(fe, tmp_path):
    wave = _tone(3.0)[0]
    full, half = tmp_path / "full.mp3", tmp_path / "half.mp3"
    _write_mp3(full, wave, 16000)
    data = full.read_bytes()
    half.write_bytes(data[: len(data) // 2])
    complete = _within(5, fe, str(full))
    assert complete["input_features_mask"].sum() == _frames(48000)  # libsndfile trims the encoder delay
    out = _within(5, fe, str(half))
    real = int(out["input_features_mask"].sum())
    assert out["input_features"].shape == (1, 1, 1024, 64) and np.isfinite(out["input_features"]).all()
    assert 0.3 * _frames(48000) < real < 0.7 * _frames(48000)
    # First 100 bytes only: not even one frame: a clear error, fast.
    stub = tmp_path / "stub.mp3"
    stub.write_bytes(data[:100])
    with pytest.raises(ValueError, match=r"Cannot read audio file .*stub\.mp3"):
        _within(5, fe, str(stub))


def test_truncated_wav(fe, tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, _tone(2.0)[0], 16000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # header still announces 2 s
    out = _within(5, fe, str(path))
    assert out["input_features_mask"].sum() == _frames((len(data) // 2 - 44) // 2)
    header_only = tmp_path / "header_only.wav"
    header_only.write_bytes(data[:44])  # a valid header and no samples
    with pytest.raises(ValueError, match=r"header_only\.wav.*empty"):
        _within(5, fe, str(header_only))
    broken_header = tmp_path / "broken_header.wav"
    broken_header.write_bytes(data[:30])
    with pytest.raises(ValueError, match=r"Cannot read audio file .*broken_header\.wav"):
        _within(5, fe, [str(CHIRP), str(broken_header)])


def test_text_file_named_wav(fe, tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 50)
    with pytest.raises(ValueError, match=r"Cannot read audio file .*notes\.wav.*audio item 0"):
        _within(5, fe, str(path))
    with pytest.raises(ValueError, match=r"Cannot read audio file '<\d+ bytes>' \(audio item 1\)"):
        _within(5, fe, [str(CHIRP), path.read_bytes()])


def test_short_clips(fe, tmp_path):
    path = tmp_path / "50ms.wav"
    sf.write(path, _tone(0.05)[0], 16000)  # 800 samples -> 3 frames
    out = fe(str(path))
    assert out["input_features_mask"].sum() == 3 and np.isfinite(out["input_features"]).all()
    fe(_tone(1.0)[0][:400], sampling_rate=16000)  # exactly one 25 ms window works
    with pytest.raises(ValueError, match=r"Audio item 0 .*too short.*399 samples.*25 ms"):
        fe(_tone(1.0)[0][:399], sampling_rate=16000)
    short = tmp_path / "20ms.wav"
    sf.write(short, _tone(0.02, sr=44100)[0], 44100)
    with pytest.raises(ValueError, match=r"20ms\.wav.*too short"):
        fe(str(short))


def test_long_8khz_clip_keeps_middle_slice(fe, tmp_path):
    wave = _noise(25.0, sr=8000, seed=1)
    path = tmp_path / "long_8k.wav"
    sf.write(path, wave, 8000, subtype="PCM_16")
    out = fe(str(path))
    pcm = sf.read(path, dtype="float32")[0]
    slices, length = _padded_slices(fe, pcm, 8000)
    assert length == _frames(len(wave), sr=8000) == 2498
    assert slice_groups(length, 1) == [[0, 1, 2]]
    np.testing.assert_array_equal(out["input_features"][0, 0], slices[1])
    assert out["input_features_mask"].sum() == 1024


def test_silence_is_finite(fe):
    out = fe(np.zeros(16000, np.float32), sampling_rate=16000)
    features = out["input_features"][0, 0]
    assert np.isfinite(features).all()
    # log of kaldi's energy floor (float32 eps), normalised: the same constant in every real frame.
    floor = (np.log(np.finfo(np.float32).eps) - MEAN) / (2 * STD)
    np.testing.assert_allclose(features[:98], floor, atol=1e-4)


def test_float32_wav(fe, tmp_path):
    wave = _tone(1.5)[0]
    path = tmp_path / "float.wav"
    sf.write(path, wave, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(fe(str(path))["input_features"], fe(wave, sampling_rate=16000)["input_features"])


def test_stereo_44k_uses_channel_0(fe, tmp_path):
    wave = _tone(2.0, sr=44100, channels=2)
    path = tmp_path / "stereo.wav"
    sf.write(path, wave.T, 44100, subtype="PCM_16")
    out = fe(str(path))["input_features"]
    pcm = sf.read(path, dtype="float32", always_2d=True)[0].T
    np.testing.assert_array_equal(out, fe(pcm, sampling_rate=44100)["input_features"])
    np.testing.assert_allclose(out, fe(pcm[0], sampling_rate=44100)["input_features"], atol=1e-5)
    assert not np.allclose(out, fe(pcm[1], sampling_rate=44100)["input_features"], atol=1e-2)
    assert fe(str(path))["input_features_mask"].sum() == _frames(88200, sr=44100)


def test_flac_and_ogg(fe, tmp_path):
    wave = _tone(2.0)[0]
    pcm16 = np.round(wave * 32767).astype(np.int16)  # int16 data: both files store exactly these samples
    wav, flac, ogg = tmp_path / "a.wav", tmp_path / "a.flac", tmp_path / "a.ogg"
    sf.write(wav, pcm16, 16000, subtype="PCM_16")
    sf.write(flac, pcm16, 16000, subtype="PCM_16")
    sf.write(ogg, wave, 16000, format="OGG", subtype="VORBIS")
    np.testing.assert_array_equal(fe(str(flac))["input_features"], fe(str(wav))["input_features"])
    out = fe(str(ogg))
    assert out["input_features"].shape == (1, 1, 1024, 64) and np.isfinite(out["input_features"]).all()
    assert out["input_features_mask"].sum() == _frames(32000)


def test_pyav_fallback_for_m4a(fe, tmp_path):
    path = tmp_path / "a.m4a"
    _write_m4a(path, _tone(1.0)[0], 16000)
    with pytest.raises(Exception):
        sf.info(str(path))  # libsndfile cannot read it: the fallback is what decodes it
    out = _within(10, fe, str(path))
    real = int(out["input_features_mask"].sum())
    assert _frames(16000) <= real <= _frames(16000 + 2 * 1024 + 1024)  # AAC adds priming / padding samples
    np.testing.assert_array_equal(fe(path.read_bytes())["input_features"], out["input_features"])


# ----------------------------------------------------------------------------- save / load


def test_save_and_load_round_trip(tmp_path):
    fe = BeatsFeatureExtractor(num_segments=2, segment_sampling="random", max_length=512, mean=1.5, std=2.5)
    fe(_tone(1.0, sr=22050)[0], sampling_rate=22050)  # uses the resampler cache, which must not be saved
    fe.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    for key, value in {
        "feature_size": 64, "sampling_rate": 16000, "padding_value": 0.0, "num_mel_bins": 64, "frame_length": 25,
        "frame_shift": 10, "max_length": 512, "num_segments": 2, "segment_sampling": "random", "mean": 1.5,
        "std": 2.5, "waveform_scale": 32768, "feature_extractor_type": "BeatsFeatureExtractor",
    }.items():
        assert saved[key] == value, key
    loaded = BeatsFeatureExtractor.from_pretrained(tmp_path)
    assert loaded.to_dict() == fe.to_dict()
    wave = _tone(12.0)[0]
    a = loaded(wave, sampling_rate=16000, segment_sampling="middle")
    b = fe(wave, sampling_rate=16000, segment_sampling="middle")
    assert a["input_features"].shape == (1, 2, 512, 64)
    np.testing.assert_array_equal(a["input_features"], b["input_features"])
    assert os.path.isfile(tmp_path / "preprocessor_config.json")


RSS_PROBE = """
import resource, sys, time, warnings
import numpy as np
from transformers_chatbridge.feature_extraction_beats import BeatsFeatureExtractor
fe = BeatsFeatureExtractor()
fe(np.zeros(16000, np.float32), sampling_rate=16000)  # imports and first-call costs outside the measure
before, started = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
features = fe(sys.argv[1])["input_features"]
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, time.perf_counter() - started, features.shape)
"""


def test_a_rate_sharing_no_factor_with_16_khz_costs_no_more_memory_than_a_common_one(fe, tmp_path):
    """44101 Hz asked torchaudio for a 2.8 GB kernel; it is read as 44100 Hz, within a small budget."""
    wave = 0.3 * np.sin(2 * np.pi * 440 * np.arange(44101) / 44101).astype(np.float32)
    odd = tmp_path / "odd.wav"
    sf.write(odd, wave, 44101, subtype="PCM_16")
    assert odd.stat().st_size < 100_000
    done = subprocess.run([sys.executable, "-c", RSS_PROBE, str(odd)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    growth_kib, seconds, _ = done.stdout.split(maxsplit=2)
    assert int(growth_kib) < 200 * 1024 and float(seconds) < 10, done.stdout
    assert f"Audio item 0 ('{odd}'): resampling from 44101 Hz" in done.stderr and "as 44100 Hz" in done.stderr
    pcm = sf.read(odd, dtype="float32")[0]
    np.testing.assert_array_equal(fe(str(odd))["input_features"], fe(pcm, sampling_rate=44100)["input_features"])


@pytest.mark.parametrize("rate", [500, 400_000])
def test_sample_rates_outside_the_supported_range_are_named(fe, rate):
    with pytest.raises(ValueError, match=rf"Audio item 0 \(array\): sampling rate {rate} Hz is outside the supported"):
        fe(np.zeros(rate * 2, np.float32), sampling_rate=rate)


# ----------------------------------------------------------------------------- long clips: only the segments are read


def _chosen_slices(fe, wave, sr, n, seed=None):
    """The whole clip's padded slices at the positions the extractor picks (the same random draws for `seed`), and
    the real frames in each."""
    slices, length = _padded_slices(fe, wave, sr)
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    picks = segment_indices(len(slices), n, "middle" if seed is None else "random", generator)
    return slices[picks], [min(max(length - 1024 * pick, 0), 1024) for pick in picks]


@pytest.mark.parametrize(
    "suffix,rate,channels,seconds,n,seed",
    [
        ("wav", 16000, 1, 65.0, 1, None),  # no resampling; the middle of 7 slices
        ("wav", 44100, 2, 47.0, 3, None),  # resampled from whole strides of the resampler, channel 0 only
        ("flac", 22050, 1, 50.0, 2, 7),  # random slices, the same draws as on the whole clip
        ("ogg", 48000, 2, 40.0, 2, None),
        ("mp3", 16000, 1, 45.0, 2, None),  # libsndfile's MP3 seeks are fuzzy: read front to back instead
        ("m4a", 24000, 1, 30.0, 2, None),  # PyAV
    ],
)
def test_long_clips_give_the_features_of_the_whole_clip(fe, tmp_path, suffix, rate, channels, seconds, n, seed):
    t = np.arange(int(seconds * rate)) / rate
    wave = np.stack([0.2 * np.sin(2 * np.pi * (300 + 200 * c) * t * (1 + t / seconds)) for c in range(channels)])
    wave = (wave + 0.05 * np.random.default_rng(0).standard_normal(wave.shape)).astype(np.float32)
    path = tmp_path / f"clip.{suffix}"
    if suffix == "mp3":
        _write_mp3(path, wave[0], rate)
    elif suffix == "m4a":
        _write_m4a(path, wave[0], rate)
    else:
        sf.write(path, wave.T, rate, subtype="VORBIS" if suffix == "ogg" else "PCM_16")
    if suffix == "m4a":
        with av.open(str(path)) as container:
            decoded = np.concatenate([frame.to_ndarray() for frame in container.decode(audio=0)], axis=1)
    else:
        decoded = sf.read(path, dtype="float32", always_2d=True)[0].T
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    sampling = "middle" if seed is None else "random"
    out = fe(str(path), num_segments=n, segment_sampling=sampling, generator=generator)
    want, real = _chosen_slices(fe, decoded, rate, n, seed)
    assert out["input_features_mask"][0].sum(-1).tolist() == real
    if suffix == "mp3":  # libsndfile's MP3 decoder gives slightly different samples on each read of the same file
        assert np.abs(out["input_features"][0] - want).mean() < 0.01  # a neighbouring slice is ~0.1 away
    else:
        np.testing.assert_allclose(out["input_features"][0], want, atol=1e-5, rtol=0)


def test_an_hour_long_file_costs_what_its_segments_do(tmp_path):
    """A 1-hour 8 kHz WAV was decoded, resampled and featurised whole (3 GB, 18 s): now its segments are read."""
    path = tmp_path / "hour.wav"
    with sf.SoundFile(path, "w", samplerate=8000, channels=1, subtype="PCM_16") as file:
        minute = (0.1 * np.sin(2 * np.pi * 440 * np.arange(8000 * 60) / 8000) * 32767).astype(np.int16)
        for _ in range(60):
            file.write(minute)
    done = subprocess.run([sys.executable, "-c", RSS_PROBE, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    growth_kib, seconds, _ = done.stdout.split(maxsplit=2)
    assert int(growth_kib) < 100 * 1024 and float(seconds) < 5, done.stdout
