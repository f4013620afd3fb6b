"""Does batching pay off in `pipeline("chatbridge")`, and what does an image add to `generate`?

Goals: tokens/s at batch size 16 >= 3x batch size 1; an image-prompt `model.generate` takes <= 1.10x the time of the
bare language model (`causal_lm_of(model).generate`: ChatBridge's decoder and head) generating as many tokens from a text prompt of the same
length (batch 1).

Builds the tiny random model (`tiny_chatbridge`) and 32 small PNGs in a temporary folder, runs with 2 torch threads,
and prints markdown tables (medians, min-max spread over the repeats). Every answer is exactly `--new-tokens` long
(`min_new_tokens == max_new_tokens`) and the generated tokens are counted from `generate`'s output, not assumed.
A breakdown of both `generate` calls (time inside the vision tower, the Q-Former, ChatBridge's forward, the language
model's forward, and generate's own loop) follows, so that a missed goal comes with what limits it.

Ratios are formed per repeat between measurements taken in that repeat (median and min-max over repeats).

    python bench/bench_batch_scaling.py [--runs 5] [--new-tokens 16] [--questions 32] [--threads 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import transformers
from PIL import Image
from transformers import pipeline

import transformers_chatbridge  # noqa: F401  (registers the "chatbridge" task)
from benchlib import Row, add_arguments, figure_row, set_threads, write_json
from transformers_chatbridge.testing import causal_lm_of, tiny_chatbridge

BATCH_SIZES = (1, 4, 16)
COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white"]
QUESTIONS = ["What is in the picture?", "What colour is it?", "Describe the image.", "Where is the shape?"]
WHOLE, LOOP = "whole generate", "generate's loop, outside the model's forward"
CHATBRIDGE, LANGUAGE = "ChatBridge forward (all steps)", "language model forward (all steps)"
VISION, QFORMER = "vision tower (first step)", "Q-Former (first step)"


def write_images(folder: Path, count: int) -> list[Path]:
    """Distinct small images of a few sizes, so that decoding and resizing do real work."""
    paths = []
    for index in range(count):
        path = folder / f"image{index:02d}.png"
        Image.new("RGB", (24 + 8 * (index % 4), 20 + 6 * (index % 5)), COLOURS[index % len(COLOURS)]).save(path)
        paths.append(path)
    return paths


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


class TokenCounter:
    """Wraps `model.generate` to count the new tokens of every call from its output (prompt columns excluded)."""

    def __init__(self, model) -> None:
        self.model, self.generate = model, model.generate
        self.reset()

        @functools.wraps(self.generate)
        def counted(*args, **kwargs):
            output = self.generate(*args, **kwargs)
            new = output.shape[1] - kwargs["input_ids"].shape[1]
            self.tokens += output.shape[0] * new
            self.lengths.add(new)
            return output

        model.generate = counted

    def reset(self) -> None:
        self.tokens, self.lengths = 0, set()

    def remove(self) -> None:
        del self.model.generate  # the class's method again


def pipeline_throughput(pipe, requests: list[dict], new_tokens: int, runs: int) -> dict[int, list[float]]:
    """Tokens/s of each repeat over all `requests`, per batch size, after a warm-up pass at each batch size.

    The batch sizes take turns within each repeat, so that drift of the machine (other load, clocks) hits all alike.
    """
    counter = TokenCounter(pipe.model)
    settings = {"generate_kwargs": {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens}}
    settings["return_full_text"] = False
    rates: dict[int, list[float]] = {size: [] for size in BATCH_SIZES}
    try:
        for size in BATCH_SIZES:
            pipe(requests[: 2 * size], batch_size=size, **settings)  # warm-up
        for _ in range(runs):
            for size in BATCH_SIZES:
                counter.reset()
                seconds = timed(lambda: pipe(requests, batch_size=size, **settings))
                assert counter.lengths == {new_tokens}, counter.lengths
                assert counter.tokens == len(requests) * new_tokens, counter.tokens
                rates[size].append(counter.tokens / seconds)
    finally:
        counter.remove()
    return rates


class PartTimer:
    """Wall time spent inside given modules (forward hooks), summed over a call such as `generate`."""

    def __init__(self, modules: dict[str, torch.nn.Module]) -> None:
        self.totals = dict.fromkeys(modules, 0.0)
        self.handles = []
        for name, module in modules.items():
            starts: list[float] = []
            self.handles.append(module.register_forward_pre_hook(functools.partial(self._start, starts)))
            self.handles.append(module.register_forward_hook(functools.partial(self._stop, name, starts)))

    @staticmethod
    def _start(starts: list[float], *_) -> None:
        starts.append(time.perf_counter())

    def _stop(self, name: str, starts: list[float], *_) -> None:
        self.totals[name] += time.perf_counter() - starts.pop()

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def parts_of(call: Callable[[], object], modules: dict[str, torch.nn.Module]) -> dict[str, float]:
    """Seconds of one `call`: whole, inside each module, and outside the first (outermost) module's forward."""
    timer = PartTimer(modules)
    try:
        whole = timed(call)
    finally:
        timer.remove()
    return {WHOLE: whole, **timer.totals, LOOP: whole - timer.totals[next(iter(modules))]}


def image_versus_bare(model, processor, image: Path, new_tokens: int, runs: int) -> dict[str, dict[str, list[float]]]:
    """Seconds per part of batch-1 generates: an image prompt through ChatBridge, and random text ids of the same
    length through the bare language model. Repeats alternate between the two, so drift hits both alike."""
    messages = [{"role": "user", "content": [{"type": "image", "path": str(image)},
                                             {"type": "text", "text": QUESTIONS[0]}]}]  # fmt: skip
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    placeholders = {model.config.image_token_id, model.config.video_token_id, model.config.audio_token_id}
    text_ids = torch.tensor([index for index in range(len(processor.tokenizer)) if index not in placeholders])
    picks = torch.randint(len(text_ids), inputs["input_ids"].shape, generator=torch.Generator().manual_seed(0))
    bare_ids = text_ids[picks]
    language_model = causal_lm_of(model)
    settings = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False}
    settings["pad_token_id"] = processor.tokenizer.pad_token_id

    def image_generate() -> None:
        output = model.generate(**inputs, **settings)
        assert output.shape[1] - inputs["input_ids"].shape[1] == new_tokens

    def bare_generate() -> None:
        output = language_model.generate(input_ids=bare_ids, attention_mask=torch.ones_like(bare_ids), **settings)
        assert output.shape[1] - bare_ids.shape[1] == new_tokens

    calls = {
        "image": (image_generate, {CHATBRIDGE: model, LANGUAGE: model.model.language_model, VISION: model.model.vision_tower,
                                   QFORMER: model.model.qformer}),
        "bare": (bare_generate, {LANGUAGE: model.model.language_model}),
    }  # fmt: skip
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in calls}
    with torch.inference_mode():
        for call, _ in calls.values():
            for _ in range(3):
                call()  # warm-up
        for _ in range(runs):
            for name, (call, modules) in calls.items():
                for part, seconds in parts_of(call, modules).items():
                    samples[name].setdefault(part, []).append(seconds)
    samples["prompt_length"] = inputs["input_ids"].shape[1]
    return samples


def median_spread(values: list[float], scale: float, digits: int) -> tuple[str, str]:
    scaled = [scale * value for value in values]
    return f"{statistics.median(scaled):.{digits}f}", f"{min(scaled):.{digits}f}-{max(scaled):.{digits}f}"


def report(args: argparse.Namespace, rates: dict[int, list[float]], samples: dict) -> tuple[list[Row], list[str]]:
    print(
        f"Machine: {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"transformers {transformers.__version__}. Tiny random ChatBridge; {args.questions} image questions, "
        f"{args.new_tokens} new tokens per answer, {args.runs} repeats (image vs bare: {2 * args.runs}).\n"
    )
    rows = []
    print("| pipeline, same image questions | tokens/s median | min-max | ratio to batch 1 (per repeat, median) "
          "| goal |")
    print("|---|---|---|---|---|")
    for size, values in rates.items():
        row = figure_row(
            f"pipeline tokens/s, batch {size} / batch 1", [rate / base for rate, base in zip(values, rates[1])],
            ">= 3x" if size == 16 else "", peer="batch 1, same questions",
            details=f"{statistics.median(values):.0f} vs {statistics.median(rates[1]):.0f} tokens/s",
        )
        if size != 1:
            rows.append(row)
        goal = f">= 3x ({'met' if row.met else 'missed'})" if size == 16 else ""
        print(f"| batch {size} | {' | '.join(median_spread(values, 1, 0))} | {row.ratio:.2f}x | {goal} |")

    image, bare = samples["image"], samples["bare"]
    title = f"batch 1, {samples['prompt_length']}-token prompt, {args.new_tokens} new tokens"
    generate = figure_row(
        "image-prompt `model.generate` / bare language model `generate`",
        [i / b for i, b in zip(image[WHOLE], bare[WHOLE])], "<= 1.10x",
        peer=f"bare LLM, text ids of the same length ({samples['prompt_length']} tokens)",
        details=f"{1e3 * statistics.median(image[WHOLE]):.1f} vs {1e3 * statistics.median(bare[WHOLE]):.1f} ms; "
        f"batch 1, {args.new_tokens} new tokens",
    )
    # The same call less the time inside the vision tower and the Q-Former: what ChatBridge adds around the LLM.
    wrapper = figure_row(
        "same, image features (vision tower + Q-Former) taken out",
        [(i - v - q) / b for i, v, q, b in zip(image[WHOLE], image[VISION], image[QFORMER], bare[WHOLE])],
        peer="bare LLM, as above", details="embedding, placeholder scatter and generate's loop around the LLM",
    )
    rows += [generate, wrapper]
    print(f"\n| {title} | median ms | min-max ms | ratio (per repeat, median) | goal |")
    print("|---|---|---|---|---|")
    print(f"| bare language model `generate`, text ids | {' | '.join(median_spread(bare[WHOLE], 1000, 1))} | 1.00x | |")
    print(
        f"| image-prompt `model.generate` | {' | '.join(median_spread(image[WHOLE], 1000, 1))} | {generate.ratio:.2f}x "
        f"| <= 1.10x ({'met' if generate.met else 'missed'}) |"
    )

    median = {name: {part: 1000 * statistics.median(values) for part, values in samples[name].items()}
              for name in ("image", "bare")}  # fmt: skip
    breakdown = ["| where the time of one batch-1 generate goes (median ms) | image prompt | bare language model |",
                 "|---|---|---|"]  # fmt: skip
    for part, value in median["image"].items():
        bare_value = f"{median['bare'][part]:.2f}" if part in median["bare"] else ""
        breakdown.append(f"| {part} | {value:.2f} | {bare_value} |")
    image, bare = median["image"], median["bare"]
    features = image[VISION] + image[QFORMER]
    summary = (
        f"The image prompt costs {image[WHOLE] - bare[WHOLE]:.2f} ms more: image features (vision tower + "
        f"Q-Former, first step only) {features:.2f}, ChatBridge's forward around the language model (embedding, "
        f"placeholder check, scatter) {image[CHATBRIDGE] - image[LANGUAGE] - features:.2f}, generate's loop "
        f"{image[LOOP] - bare[LOOP]:.2f}, the language model's own forward {image[LANGUAGE] - bare[LANGUAGE]:.2f}."
    )
    print("\n" + "\n".join(breakdown) + "\n\n" + summary)
    notes = []
    if generate.met is False:
        notes.append(
            "Why the image-prompt row misses: " + summary + " The image features are computed once, in the first "
            "step, by a vision tower and a Q-Former that in this tiny random model are as deep as its 2-layer, "
            "32-wide LLM, and at these sizes every module's time is per-operator overhead, so one tower pass costs "
            "about as much as several LLM decode steps. The row below it takes the features out: what ChatBridge "
            "itself adds around the LLM. At the real sizes (EVA ViT-g, 1B parameters, once per prompt, beside a 13B "
            "LLM read once per new token) the features are a small share of a generate; that comparison needs the "
            "real-dimension GPU profile (issue part 2)."
        )
    if rows[1].met is False:
        notes.append(
            "The batch-16 row misses. Batching pays because at these sizes each decode step is per-operator overhead "
            "that 16 rows share; what erodes it is the operators that run multi-threaded at batch 16 and not at "
            "batch 1, which wait for each other's threads when other processes hold the cores (see the load "
            "average in the machine line; `--threads 1` takes that out)."
        )
    notes.append("\n".join(breakdown))
    return rows, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed repeats per measurement")
    parser.add_argument("--new-tokens", type=int, default=16, help="tokens generated per answer")
    parser.add_argument("--questions", type=int, default=32, help="image questions per throughput pass")
    add_arguments(parser)
    args = parser.parse_args()
    set_threads(args)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        folder = Path(tmp)
        tiny_chatbridge(save_dir=folder / "model")
        images = write_images(folder, args.questions)
        requests = [{"text": QUESTIONS[i % len(QUESTIONS)], "images": str(path)} for i, path in enumerate(images)]
        pipe = pipeline("chatbridge", model=str(folder / "model"))
        rates = pipeline_throughput(pipe, requests, args.new_tokens, args.runs)
        samples = image_versus_bare(pipe.model, pipe.processor, images[0], args.new_tokens, 2 * args.runs)
    rows, notes = report(args, rates, samples)
    write_json(args, "Batching and image prompts in generation (tiny random ChatBridge)", rows,
               f"tiny random ChatBridge (`tiny_chatbridge`), {args.questions} image questions, {args.new_tokens} new "
               f"tokens per answer, {args.runs} repeats ({2 * args.runs} for image vs bare), torch threads "
               f"{torch.get_num_threads()}", notes)


if __name__ == "__main__":
    main()
