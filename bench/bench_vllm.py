"""vLLM (transformers backend) against `pipeline("chatbridge")`: the same 64 mixed-modality questions, one run.

Both serve one saved tiny random ChatBridge (language model heads of 32: vLLM's CPU attention needs at least that)
from the same files: 16 image, 16 video, 16 audio and 16 video-with-its-audio questions (PNG, H.264 mp4, PCM16
WAV), as chat messages rendered by the checkpoint's template. The pipeline runs them with `batch_size`
(`--pipeline-batch`, default 16, its best in `bench_batch_scaling.py`); vLLM's offline engine (`LLM.chat`) gets them
all at once and schedules them itself. Every answer is exactly `--new-tokens` long (greedy, end of sequence
ignored), and the tokens are counted from both outputs. Each repeat asks 64 questions about new files (vLLM keeps
the encoder outputs and prompt blocks of media it has seen; asking again about the same files would measure that
cache), after a warm-up round. Figures: requests/s and tokens/s of each, and their ratio per repeat (median and
min-max over `--runs`); within a repeat the two sides take turns on the same round of questions.

vLLM needs its own environment (`make test-vllm` builds `.venv-vllm`); run from the project's environment, the
script runs itself there, or writes a note saying how to get the row when that environment does not exist.

    python bench/bench_vllm.py [--runs 3] [--new-tokens 16] [--pipeline-batch 16] [--threads 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
VLLM_VENV = HERE.parent / ".venv-vllm"
TITLE = 'Serving with vLLM against `pipeline("chatbridge")` (tiny random ChatBridge, CPU)'
QUESTIONS = 64
KINDS = ("image", "video", "audio", "video+audio")
ASKED = {
    "image": "What is in the picture?",
    "video": "What happens in the video?",
    "audio": "What sound is this?",
    "video+audio": "What is going on?",
}


def relaunch_in_vllm_environment() -> None:
    """Without vLLM here: run this script in `.venv-vllm`, or record why there is no row."""
    if importlib.util.find_spec("vllm") is not None:
        return
    if (VLLM_VENV / "bin" / "python").exists() and Path(sys.prefix).resolve() != VLLM_VENV.resolve():
        sys.exit(subprocess.run([str(VLLM_VENV / "bin" / "python"), *sys.argv], check=False).returncode)
    sys.path.insert(0, str(HERE))
    from benchlib import add_arguments, write_json

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args, _ = parser.parse_known_args()
    note = "Not measured: vLLM's environment `.venv-vllm` does not exist. `make test-vllm` builds it; then rerun."
    print(note)
    write_json(args, TITLE, [], notes=[note])
    sys.exit(0)


def write_media(folder: Path, batch: int) -> list[tuple[str, dict[str, Path]]]:
    """(kind, its media files) for each of the 64 questions, kinds interleaved. Every question of every `batch` has
    files of its own (images of other colours and sizes, clips of other brightness, tones of other pitch): vLLM keeps
    the encoder outputs of media it has seen, which would spare it the work the pipeline does each time."""
    folder.mkdir()
    import numpy as np
    import soundfile
    from PIL import Image

    sys.path.insert(0, str(HERE.parent / "tests"))
    from sample_media import write_mp4

    rate = 16000
    asked = []
    for index in range(batch * QUESTIONS, (batch + 1) * QUESTIONS):
        kind = KINDS[index % len(KINDS)]
        media = {}
        if kind == "image":
            media["image"] = folder / f"image{index}.png"
            colour = (37 * index % 256, 91 * index % 256, 53 * index % 256)
            Image.new("RGB", (32 + index % 16, 28 + index % 8), colour).save(media["image"])
        if "video" in kind:
            frames = [np.full((32, 32, 3), (9 * frame + 3 * index) % 256, dtype=np.uint8) for frame in range(12)]
            media["video"] = write_mp4(folder / f"clip{index}.mp4", frames)
        if "audio" in kind:
            media["audio"] = folder / f"tone{index}.wav"
            tone = 0.3 * np.sin(2 * np.pi * (200 + 10 * index) * np.arange(rate) / rate)
            soundfile.write(media["audio"], tone, rate)
        asked.append((kind, media))
    return asked


def pipeline_request(kind: str, media: dict[str, Path]) -> dict:
    keys = {"image": "images", "video": "videos", "audio": "audio"}
    return {"text": ASKED[kind], **{keys[modality]: str(path) for modality, path in media.items()}}


def vllm_messages(kind: str, media: dict[str, Path]) -> list[dict]:
    """The same chat turn in OpenAI's content parts (vLLM's for video); files by `file://` URL."""
    parts = [{"type": f"{modality}_url", f"{modality}_url": {"url": path.as_uri()}} for modality, path in media.items()]
    return [{"role": "user", "content": [*parts, {"type": "text", "text": ASKED[kind]}]}]


def save_model(folder: Path) -> None:
    from transformers_chatbridge.testing import tiny_chatbridge

    tiny_chatbridge(folder, text_hidden_size=128)  # 4 heads of 32


Runner = Callable[[list], tuple[float, int]]


def pipeline_runner(model_dir: Path, new_tokens: int, batch_size: int) -> Runner:
    """A function timing the pipeline over one round of questions: (seconds, tokens generated)."""
    from bench_batch_scaling import TokenCounter
    from transformers import pipeline

    import transformers_chatbridge  # noqa: F401  (registers the "chatbridge" task)

    pipe = pipeline("chatbridge", model=str(model_dir))
    settings = {"generate_kwargs": {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False}}
    counter = TokenCounter(pipe.model)

    def run(asked: list) -> tuple[float, int]:
        requests = [pipeline_request(kind, media) for kind, media in asked]
        counter.reset()
        started = time.perf_counter()
        pipe(requests, batch_size=batch_size, return_full_text=False, **settings)
        return time.perf_counter() - started, counter.tokens

    return run


def vllm_runner(model_dir: Path, media_dir: Path, new_tokens: int) -> Runner:
    """A function timing vLLM's offline engine over one round of questions: (seconds, tokens generated)."""
    from vllm import LLM, SamplingParams

    llm = LLM(
        model=str(model_dir),
        model_impl="transformers",
        trust_remote_code=True,
        enforce_eager=True,
        dtype="float32",
        max_model_len=512,
        seed=0,
        allowed_local_media_path=str(media_dir),
        limit_mm_per_prompt={"image": 1, "video": 1, "audio": 1},
        # vLLM resamples audio to the feature extractor's rate but does not tell the processor so.
        mm_processor_kwargs={"sampling_rate": 16000},
    )
    sampling = SamplingParams(max_tokens=new_tokens, min_tokens=new_tokens, temperature=0.0, ignore_eos=True)
    # BOS as the pipeline's prompts have it (the chat template does not write it).
    chat = {"use_tqdm": False, "tokenization_kwargs": {"add_special_tokens": True}}

    def run(asked: list) -> tuple[float, int]:
        conversations = [vllm_messages(kind, media) for kind, media in asked]
        started = time.perf_counter()
        outputs = llm.chat(conversations, sampling, **chat)
        return time.perf_counter() - started, sum(len(output.outputs[0].token_ids) for output in outputs)

    return run


def main() -> None:
    relaunch_in_vllm_environment()
    # vLLM's engine in a process of its own (its default): in this process it would wrap transformers' decoder
    # classes for its compiler, after which the pipeline's model could no longer run, and the sides could not take
    # turns.
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "1"
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(HERE))
    import torch
    import transformers
    import vllm
    from benchlib import add_arguments, figure_row, set_threads, write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed repeats of each side")
    parser.add_argument("--new-tokens", type=int, default=16, help="tokens generated per answer")
    parser.add_argument("--pipeline-batch", type=int, default=16, help="the pipeline's batch_size")
    add_arguments(parser)
    args = parser.parse_args()
    set_threads(args)
    with tempfile.TemporaryDirectory(prefix="bench-vllm-") as tmp:
        folder = Path(tmp)
        save_model(folder / "model")
        (folder / "media").mkdir()
        # A warm-up round, then one round of new questions per repeat; both sides get the same rounds.
        rounds = [write_media(folder / "media" / f"round{index}", index) for index in range(args.runs + 1)]
        sides = {
            "pipeline": pipeline_runner(folder / "model", args.new_tokens, args.pipeline_batch),
            "vllm": vllm_runner(folder / "model", folder / "media", args.new_tokens),
        }
        timings = {side: [] for side in sides}
        for index, asked in enumerate(rounds):
            # The sides take turns, the first one alternating, so that drift of the machine hits both alike.
            for side in sorted(sides, reverse=index % 2 == 1):
                seconds, tokens = sides[side](asked)
                if index:
                    timings[side].append((seconds, tokens))
    piped, served = timings["pipeline"], timings["vllm"]
    expected = QUESTIONS * args.new_tokens
    for seconds, tokens in piped + served:
        assert tokens == expected, f"{tokens} tokens generated, {expected} expected"
    rate = {
        "pipeline": [QUESTIONS / seconds for seconds, _ in piped],
        "vllm": [QUESTIONS / seconds for seconds, _ in served],
    }
    ratios = [v / p for v, p in zip(rate["vllm"], rate["pipeline"])]
    median = {side: statistics.median(values) for side, values in rate.items()}
    details = (
        f"{median['vllm']:.2f} vs {median['pipeline']:.2f} requests/s, {median['vllm'] * args.new_tokens:.0f} vs "
        f"{median['pipeline'] * args.new_tokens:.0f} tokens/s; {QUESTIONS} questions (image, video, audio, "
        f"video+audio), {args.new_tokens} new tokens each"
    )
    row = figure_row(
        'vLLM requests/s (and tokens/s) / `pipeline("chatbridge")`',
        ratios,
        peer=f'`pipeline("chatbridge")`, batch_size {args.pipeline_batch}, same files and questions',
        details=details,
    )
    settings = (
        f"tiny random ChatBridge with 32-wide LLM heads, vLLM {vllm.__version__} "
        f'(`model_impl="transformers"`, eager, float32, engine in its own process) against the pipeline, both in `.venv-vllm` (torch '
        f"{torch.__version__}, transformers {transformers.__version__}), {args.runs} repeats each, torch threads "
        f"{torch.get_num_threads()}"
    )
    print(f"{settings}.\n")
    print("| side | requests/s median | min-max | tokens/s median |")
    print("|---|---|---|---|")
    for side, values in rate.items():
        print(f"| {side} | {median[side]:.2f} | {min(values):.2f}-{max(values):.2f} | "
              f"{median[side] * args.new_tokens:.0f} |")  # fmt: skip
    print(f"\nper repeat, seconds: pipeline {[round(seconds, 2) for seconds, _ in piped]}, "
          f"vLLM {[round(seconds, 2) for seconds, _ in served]}")  # fmt: skip
    print(f"vLLM / pipeline (per repeat, median): {row.ratio:.2f}x (min-max {row.low:.2f}x-{row.high:.2f}x)")
    write_json(args, TITLE, [row], settings)


if __name__ == "__main__":
    main()
