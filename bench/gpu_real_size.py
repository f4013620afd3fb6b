"""ChatBridge at its real dimensions on one CUDA GPU: generation speed per modality, memory, and a stage-2 step.

EVA ViT-g/14 (39 layers, 1408 wide), BEATs (12 layers), the shared 12-layer Q-Former and a 13B LLaMA (40 layers,
5120 wide), all random weights in bf16 with SDPA attention: `ChatBridgeConfig()`'s defaults. Measured:

- `generate` tokens/s at each batch size for image, video (4 frames), audio (one 10.24 s segment) and audio-video
  prompts, beside the bare language model (`causal_lm_of(model).generate`: ChatBridge's decoder and head) on a text prompt of the same
  length; every answer is exactly `--new-tokens` long (`min_new_tokens`);
- time to first token (a one-token `generate`: towers, Q-Former and prefill);
- peak GPU memory of each;
- the batch-1 decode step against its bound: the language model's weight bytes read once per token at the copy
  bandwidth measured here;
- one stage-2 training step (the `instruction` preset: bridge trainable in fp32, the rest frozen in bf16, bf16
  autocast, AdamW) on a mixed batch, with gradient checkpointing and without it;
- with `--quantization 8bit 4bit`: the same model saved and loaded again with its LLM in 8 bits (LLM.int8) or 4 bits
  (NF4, nested: `--load-in-4bit`'s settings), towers and bridge in bf16, for its weights in memory, the same
  generation rows, and the agreement of its greedy answers with the bf16 model's on `--agreement-prompts` prompts per
  modality (random weights, so token agreement rather than answer quality).

Prompts are token ids drawn at random with the placeholders in place, and media tensors of the processors' real
shapes: speed does not depend on what the weights or pixels say.

    python bench/gpu_real_size.py [--runs 3] [--new-tokens 64] [--quantization 8bit 4bit] [--out bench/RESULTS_GPU.md]

`--llm-layers`/`--vision-layers` shrink the depths (a smoke test away from a GPU; figures then mean nothing).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from benchlib import Row, figure_row, markdown_table, simple_table, write_json
from transformers import AutoModelForMultimodalLM

from transformers_chatbridge import BeatsFeatureExtractor, ChatBridgeConfig, ChatBridgeForConditionalGeneration
from transformers_chatbridge.inference.quantization import BITS, quantization_config
from transformers_chatbridge.testing import causal_lm_of

MODALITIES = ("image", "video", "audio", "audio-video")
GIB = 1024**3


def build_model(args: argparse.Namespace, device: torch.device) -> ChatBridgeForConditionalGeneration:
    config = ChatBridgeConfig()
    if args.llm_layers:
        config.text_config.num_hidden_layers = args.llm_layers
    if args.vision_layers:
        config.vision_config.num_hidden_layers = args.vision_layers
    with torch.device(device):
        model = ChatBridgeForConditionalGeneration._from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")
    return model.eval()


def audio_features(seconds: float = 10.0) -> dict[str, torch.Tensor]:
    """The feature extractor's own output for a clip of noise: the real (clips, segments, frames, mel bins) shape."""
    waveform = np.random.default_rng(0).uniform(-0.5, 0.5, int(16000 * seconds)).astype(np.float32)
    features = BeatsFeatureExtractor()(waveform, sampling_rate=16000, return_tensors="pt")
    return {"input_features": features["input_features"], "input_features_mask": features["input_features_mask"]}


class Prompts:
    """Token ids with placeholders in place, and media tensors of the real shapes, for any modality and batch."""

    def __init__(self, config: ChatBridgeConfig, text_tokens: int, device: torch.device):
        self.config, self.text_tokens, self.device = config, text_tokens, device
        self.generator = torch.Generator().manual_seed(0)
        self.audio = audio_features()
        size = config.vision_config.image_size
        self.image_shape = (3, size, size)

    def text_ids(self, count: int) -> list[int]:
        # Ids past the specials, below the placeholders: ordinary words of the vocabulary.
        return torch.randint(3, self.config.image_token_id, (count,), generator=self.generator).tolist()

    def _placeholders(self, modality: str) -> list[int]:
        if modality == "audio":
            return [self.config.audio_token_id] * self.config.num_audio_query_tokens
        return [getattr(self.config, f"{modality}_token_id")] * self.config.num_image_query_tokens

    def media(self, modality: str, batch: int) -> dict[str, torch.Tensor]:
        inputs = {}
        if modality == "image":
            inputs["pixel_values"] = torch.randn(batch, *self.image_shape, generator=self.generator)
        if modality in ("video", "audio-video"):
            frames = self.config.num_video_frames
            inputs["pixel_values_videos"] = torch.randn(batch, frames, *self.image_shape, generator=self.generator)
        if modality in ("audio", "audio-video"):
            inputs["input_features"] = self.audio["input_features"].expand(batch, *self.audio["input_features"].shape[1:])
            mask = self.audio["input_features_mask"]
            inputs["input_features_mask"] = mask.expand(batch, *mask.shape[1:])
        return {name: tensor.to(self.device, torch.bfloat16 if tensor.is_floating_point() else tensor.dtype)
                for name, tensor in inputs.items()}  # fmt: skip

    def ids(self, modality: str | None) -> list[int]:
        """One prompt: BOS, half the text, the placeholders, the other half (`modality=None`: text alone, as long)."""
        kinds = [] if modality is None else (["video", "audio"] if modality == "audio-video" else [modality])
        placeholders = [token for kind in kinds for token in self._placeholders(kind)]
        half = self.text_tokens // 2
        return [self.config.text_config.bos_token_id, *self.text_ids(half), *placeholders,
                *self.text_ids(self.text_tokens - half)]  # fmt: skip

    def batch(self, modality: str | None, batch: int, length: int | None = None) -> dict[str, torch.Tensor]:
        """`batch` prompts; a text-only batch takes `length` tokens (the media prompt's length) of text."""
        if modality is None:
            rows = [[self.config.text_config.bos_token_id, *self.text_ids(length - 1)] for _ in range(batch)]
        else:
            rows = [self.ids(modality) for _ in range(batch)]
        input_ids = torch.tensor(rows, device=self.device)
        inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
        return inputs if modality is None else {**inputs, **self.media(modality, batch)}


def synchronized(function: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    function()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def reset_peak(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else float("nan")


def copy_bandwidth(device: torch.device, gib: float = 4.0) -> float:
    """Bytes read + written per second by a device-to-device copy (the rate a weight read can reach)."""
    source = torch.empty(int(gib * GIB) // 2, dtype=torch.bfloat16, device=device)
    target = torch.empty_like(source)
    target.copy_(source)
    seconds = statistics.median(synchronized(lambda: target.copy_(source), device) for _ in range(10))
    del source, target
    return 2 * gib * GIB / seconds


def generation_rows(model, prompts: Prompts, args, device: torch.device) -> tuple[list[Row], list[list[str]], dict]:
    language_model = causal_lm_of(model)
    settings = {"do_sample": False, "pad_token_id": model.config.text_config.pad_token_id, "eos_token_id": None}
    rows, table, decode = [], [], {}

    def run(generator, inputs: dict, new_tokens: int) -> torch.Tensor:
        with torch.inference_mode():
            return generator.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **settings)

    for batch in args.batch_sizes:
        for modality in MODALITIES:
            media_inputs = prompts.batch(modality, batch)
            length = media_inputs["input_ids"].shape[1]
            text_inputs = prompts.batch(None, batch, length)
            produced = run(model, media_inputs, args.new_tokens).shape[1] - length
            if produced != args.new_tokens:
                raise RuntimeError(f"{modality} batch {batch}: generate gave {produced} tokens, not {args.new_tokens}")
            run(language_model, text_inputs, args.new_tokens)
            timings = {"media": [], "bare": [], "first": [], "bare first": []}
            reset_peak(device)
            for _ in range(args.runs):
                timings["media"].append(synchronized(lambda: run(model, media_inputs, args.new_tokens), device))
                timings["bare"].append(synchronized(lambda: run(language_model, text_inputs, args.new_tokens), device))
                timings["first"].append(synchronized(lambda: run(model, media_inputs, 1), device))
                timings["bare first"].append(synchronized(lambda: run(language_model, text_inputs, 1), device))
            peak = peak_gib(device)
            rates = [batch * args.new_tokens / seconds for seconds in timings["media"]]
            bare_rates = [batch * args.new_tokens / seconds for seconds in timings["bare"]]
            ratios = [media / bare for media, bare in zip(timings["media"], timings["bare"])]
            name = f"{modality} prompt `generate` / bare LLM, batch {batch}"
            rows.append(figure_row(name, ratios, "<= 1.10x" if batch == 1 else "",
                                   peer=f"bare LLM `generate`, {length}-token text prompt",
                                   details=f"{statistics.median(rates):.1f} vs {statistics.median(bare_rates):.1f} tokens/s"))  # fmt: skip
            first = statistics.median(timings["first"]) * 1e3
            bare_first = statistics.median(timings["bare first"]) * 1e3
            table.append([modality, str(batch), str(length), f"{statistics.median(rates):.1f}",
                          f"{statistics.median(bare_rates):.1f}", f"{first:.1f}", f"{bare_first:.1f}", f"{peak:.1f}"])  # fmt: skip
            if batch == 1:
                steps = [(whole - one) / (args.new_tokens - 1) for whole, one in zip(timings["media"], timings["first"])]
                decode[modality] = statistics.median(steps)
            del media_inputs, text_inputs
    return rows, table, decode


def greedy_answers(model, prompts: Prompts, args) -> dict[str, torch.Tensor]:
    """`--agreement-prompts` greedy answers per modality, `--agreement-tokens` long, in batches of 16 (the same
    prompts on every call: the prompts' generator restarts)."""
    prompts.generator.manual_seed(1)
    settings = {"do_sample": False, "pad_token_id": model.config.text_config.pad_token_id, "eos_token_id": None,
                "max_new_tokens": args.agreement_tokens, "min_new_tokens": args.agreement_tokens}  # fmt: skip
    answers = {}
    for modality in MODALITIES:
        parts = []
        for start in range(0, args.agreement_prompts, 16):
            inputs = prompts.batch(modality, min(16, args.agreement_prompts - start))
            with torch.inference_mode():
                parts.append(model.generate(**inputs, **settings)[:, inputs["input_ids"].shape[1]:].cpu())
        answers[modality] = torch.cat(parts)
    return answers


def quantized_rows(folder: str, bits: str, reference: dict, prompts: Prompts, args, device: torch.device):
    """The saved bf16 model loaded with its LLM quantized: generation rows, weights in memory, agreement."""
    reset_peak(device)
    model = AutoModelForMultimodalLM.from_pretrained(
        folder, dtype=torch.bfloat16, quantization_config=quantization_config(bits), device_map={"": str(device)}
    ).eval()
    weights = torch.cuda.memory_allocated(device) / GIB if device.type == "cuda" else float("nan")
    rows, table, _ = generation_rows(model, prompts, args, device)
    answers = greedy_answers(model, prompts, args)
    agreement = []
    for modality in MODALITIES:
        same = answers[modality] == reference[modality]
        agreement.append([bits, modality, f"{same.float().mean():.3f}", f"{same.all(dim=1).float().mean():.3f}",
                          f"{same.cumprod(dim=1).sum(dim=1).float().mean():.1f}"])  # fmt: skip
    del model
    for row in rows:
        row.name = f"{bits}: {row.name}"
    return rows, [[bits, *line] for line in table], weights, agreement


def training_batch(prompts: Prompts, per_modality: int, length: int) -> dict[str, torch.Tensor]:
    """A stage-2 batch: `per_modality` rows of each modality, padded with text to `length`; loss on the answer half."""
    rows, labels, media = [], [], {}
    for modality in MODALITIES:
        for _ in range(per_modality):
            prompt = prompts.ids(modality)
            answer = prompts.text_ids(length - len(prompt))
            rows.append(prompt + answer)
            labels.append([-100] * len(prompt) + answer)
        for name, tensor in prompts.media(modality, per_modality).items():
            media.setdefault(name, []).append(tensor)
    inputs = {name: torch.cat(tensors) for name, tensors in media.items()}
    input_ids = torch.tensor(rows, device=prompts.device)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
            "labels": torch.tensor(labels, device=prompts.device), **inputs}  # fmt: skip


def training_rows(model, prompts: Prompts, args, device: torch.device) -> tuple[list[Row], list[list[str]]]:
    trainable = model.set_training_stage("instruction")
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    for parameter in parameters:  # the optimizer's parameters in fp32, as the training script keeps them
        parameter.data = parameter.data.float()
    optimizer = torch.optim.AdamW(parameters, lr=1e-5)
    batch = training_batch(prompts, args.train_rows_per_modality, args.train_length)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    results = {}
    for checkpointing in (True, False):
        if checkpointing:
            model.activation_checkpointing_enable()
        else:
            model.activation_checkpointing_disable()
        model.train()
        step()
        reset_peak(device)
        times = [synchronized(step, device) for _ in range(args.runs)]
        results[checkpointing] = (times, peak_gib(device))
    (with_times, with_peak), (without_times, without_peak) = results[True], results[False]
    rows_in_batch = batch["input_ids"].shape[0]
    count = sum(parameter.numel() for parameter in parameters)
    rows = [
        figure_row("stage-2 step time, gradient checkpointing / without", [a / b for a, b in zip(with_times, without_times)],
                   peer="the same step without checkpointing",
                   details=f"{statistics.median(with_times) * 1e3:.0f} vs {statistics.median(without_times) * 1e3:.0f} ms"),
        figure_row("stage-2 step peak memory, gradient checkpointing / without", [with_peak / without_peak],
                   peer="the same step without checkpointing", details=f"{with_peak:.1f} vs {without_peak:.1f} GiB"),
    ]  # fmt: skip
    table = [[f"{'with' if flag else 'without'}", f"{statistics.median(times) * 1e3:.0f}",
              f"{rows_in_batch / statistics.median(times):.1f}", f"{peak:.1f}"]
             for flag, (times, peak) in results.items()]  # fmt: skip
    table.append([f"({len(trainable)} trainable tensors, {count / 1e6:.0f}M parameters; batch {rows_in_batch} x "
                  f"{args.train_length} tokens)", "", "", ""])  # fmt: skip
    return rows, table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--text-tokens", type=int, default=64, help="prompt text around the placeholders")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--train-rows-per-modality", type=int, default=4)
    parser.add_argument("--train-length", type=int, default=256)
    parser.add_argument("--skip-generation", action="store_true", help="only the training step")
    parser.add_argument("--llm-layers", type=int, default=0, help="shrink the LLM (smoke test only)")
    parser.add_argument("--vision-layers", type=int, default=0, help="shrink the ViT (smoke test only)")
    parser.add_argument("--quantization", nargs="*", choices=BITS, default=[], help="also measure these LLM precisions")
    parser.add_argument("--agreement-prompts", type=int, default=32, help="greedy answers compared, per modality")
    parser.add_argument("--agreement-tokens", type=int, default=32, help="length of each compared answer")
    parser.add_argument("--scratch", help="folder for the saved bf16 model the quantized ones load (default: /tmp)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS_GPU.md")))
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    started = time.perf_counter()
    torch.manual_seed(0)
    bandwidth = copy_bandwidth(device) if device.type == "cuda" else float("nan")
    model = build_model(args, device)
    built = time.perf_counter() - started
    weights = {name: sum(p.numel() * p.element_size() for p in module.parameters()) / GIB
               for name, module in [("whole", model), ("LLM", causal_lm_of(model))]}  # fmt: skip
    prompts = Prompts(model.config, args.text_tokens, device)
    generation, table, decode = ([], [], {}) if args.skip_generation else generation_rows(model, prompts, args, device)
    bound = weights["LLM"] * GIB / bandwidth
    decode_rows = [figure_row(f"batch-1 decode step bound / measured, {modality} prompt", [bound / seconds], unit="x",
                              details=f"{seconds * 1e3:.1f} ms per token against {bound * 1e3:.1f} ms "
                                      f"({weights['LLM']:.1f} GiB of LLM weights at {bandwidth / 1e12:.2f} TB/s)")
                   for modality, seconds in decode.items()]  # fmt: skip
    scratch = tempfile.TemporaryDirectory(dir=args.scratch) if args.quantization else None
    if scratch is not None:  # before training changes the weights
        reference = greedy_answers(model, prompts, args)
        model.save_pretrained(scratch.name)
    training, training_table = training_rows(model, prompts, args, device)
    quantized, quantized_table, quantized_weights, agreement = [], [], {}, []
    config = model.config
    if scratch is not None:
        del model
        for bits in args.quantization:
            bits_rows, bits_table, quantized_weights[bits], lines = quantized_rows(
                scratch.name, bits, reference, prompts, args, device
            )
            quantized, quantized_table = quantized + bits_rows, quantized_table + bits_table
            agreement += lines
        scratch.cleanup()

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke test: figures mean nothing)"
    layers = f"LLM {config.text_config.num_hidden_layers} layers, ViT {config.vision_config.num_hidden_layers}"
    settings = (f"{name}, torch {torch.__version__}; random weights, bf16, SDPA ({layers}); {weights['whole']:.1f} GiB "
                f"of weights; prompts of {args.text_tokens} text tokens plus the placeholders; {args.new_tokens} new "
                f"tokens, greedy; {args.runs} repeats; model built in {built:.0f} s")  # fmt: skip
    rows = generation + decode_rows + training + quantized
    page = [
        "# ChatBridge at real dimensions on a GPU",
        "",
        f"Written by `python bench/gpu_real_size.py{''.join(' ' + a for a in sys.argv[1:])}` on "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC} in {time.perf_counter() - started:.0f} s. "
        f"{settings}.",
        "",
        "## Ratios",
        "",
        markdown_table(rows),
        "",
        "## Generation (medians)",
        "",
        simple_table(["prompt", "batch", "prompt tokens", "tokens/s", "bare LLM tokens/s", "first token ms",
                  "bare LLM first token ms", "peak GiB"], table),  # fmt: skip
        "",
        "## One stage-2 training step (medians)",
        "",
        simple_table(["gradient checkpointing", "ms per step", "rows/s", "peak GiB"], training_table),
        "",
    ]
    if args.quantization:
        page += [
            "## The LLM quantized (medians)",
            "",
            "Weights in memory after loading: " + ", ".join(
                f"{bits} {gib:.1f} GiB" for bits, gib in quantized_weights.items()
            ) + f" (bf16: {weights['whole']:.1f} GiB).",
            "",
            simple_table(["LLM", "prompt", "batch", "prompt tokens", "tokens/s", "bare LLM tokens/s", "first token ms",
                          "bare LLM first token ms", "peak GiB"], quantized_table),  # fmt: skip
            "",
            f"Agreement with the bf16 model's greedy answers ({args.agreement_prompts} prompts per modality, "
            f"{args.agreement_tokens} tokens each):",
            "",
            simple_table(["LLM", "prompt", "tokens equal", "answers equal", "tokens before the first difference"],
                         agreement),  # fmt: skip
            "",
        ]
    Path(args.out).write_text("\n".join(page))
    print("\n".join(page))
    write_json(args, "ChatBridge at real dimensions on a GPU", rows, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
