"""What does a ChatBridge training step cost on CPU, against training everything and against InstructBLIP?

Goals (on a tiny-but-not-trivial ChatBridge, real batches from `ChatBridgeDataCollator` on generated media):

1. memory: peak training memory of the stage preset (`set_training_stage("instruction")`, AdamW) <= 0.6x that of
   training every parameter, same batch.
2. time: one train step (forward + backward + AdamW step, stage preset) <= 1.0x that of transformers'
   `InstructBlipForConditionalGeneration` at equal dimensions (same vision tower, Q-Former dims and query count,
   same LLaMA), on the same images and text, frozen the same way (only the Q-Former, the query tokens and the
   language projection train).
3. throughput: samples/s of a stage 2 step at the miniature recipes' batch (64 rows of the miniature world,
   `max_length` 128) on the same model.

Model: vision 4 layers x 192 (112 px images, 14 px patches: 64 patches + CLS), BEATs 2 layers x 192, Q-Former
4 layers x 192 (cross-attention every 2nd layer, 32 queries per modality), LLaMA 4 layers x 256 (4 heads), the
offline tiny BPE tokenizer (vocab ~390). InstructBLIP gets the same vision config, the same Q-Former config (its
text embeddings sized to the same tokenizer, so its word-embedding table does not weigh on its optimizer step) and
the same LLaMA config; its Q-Former also reads the instruction text (InstructBLIP's design; ChatBridge's does not).

How memory is measured: each configuration runs in a fresh subprocess (so peaks never mix). It builds the model, the
batch and the optimizer, runs one warm-up step (AdamW allocates its state there), then resets the kernel's peak-RSS
mark (`echo 5 > /proc/self/clear_refs`, Linux >= 4.0), runs two more steps and reads `VmHWM` from
`/proc/self/status`. "training memory" = that peak - the RSS before the first step (model, batch and Python already
resident): the gradients, optimizer state and activations a step adds. Where `clear_refs` is not writable the
child falls back to `resource.getrusage().ru_maxrss` (then a construction-time peak could hide part of the step's;
the table says which was used). The peak including the weights is shown as well.

The goal row runs the children with glibc's mmap threshold fixed at 128 KiB (`MALLOC_MMAP_THRESHOLD_`,
`MALLOC_TRIM_THRESHOLD_`), so every tensor above that size is its own mapping, returned to the system when freed, and
the RSS follows the memory the step holds. With glibc's default (adaptive) threshold, freed activations stay in the
heap and the RSS carries tens of MiB the step no longer holds, the same in both configurations, which pushes the
ratio towards 1; that measurement is shown beside it.

How time is measured: both models live in one process with `--threads` torch threads; each repeat times `--steps`
single steps of each, alternating one step at a time (so load from other processes hits both alike), after warm-up
steps. The ratio is formed per repeat; the table gives the median and the min-max over repeats. A `torch.profiler`
breakdown of one step of each follows the table (`--no-profile` skips it; under `--json` it is kept only where the
step time misses its goal).

    python bench/bench_training.py [--repeats 9] [--steps 3] [--batch-size 8] [--miniature-batch 64] [--threads 2]
                                   [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchlib import add_arguments, figure_row, set_threads, write_json

MEMORY_BATCH_KINDS = ("image", "video", "audio", "video+audio")
# glibc settings of the goal row's memory children: a fixed 128 KiB mmap threshold (see the module docstring).
FIXED_MMAP_THRESHOLD = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


# --- model and data ---------------------------------------------------------------------------------------------------


def bench_configs(tokenizer):
    """The ChatBridge config of this bench (and the dims InstructBLIP copies)."""
    from transformers import Blip2QFormerConfig, Blip2VisionConfig, LlamaConfig

    from transformers_chatbridge import BeatsConfig
    from transformers_chatbridge.testing import tiny_chatbridge_config

    return tiny_chatbridge_config(
        tokenizer,
        vision_config=Blip2VisionConfig(
            hidden_size=192, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
            image_size=112, patch_size=14, initializer_range=0.02,
        ),
        audio_config=BeatsConfig(
            hidden_size=192, intermediate_size=768, num_hidden_layers=2, num_attention_heads=4,
            patch_embedding_size=16, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, layerdrop=0.0,
        ),
        qformer_config=Blip2QFormerConfig(
            hidden_size=192, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
            cross_attention_frequency=2, use_qformer_text_input=False,
        ),
        text_config=LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=256, intermediate_size=688, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
        ),
        num_image_query_tokens=32,
        num_audio_query_tokens=32,
    )


def build_chatbridge(seed: int = 0):
    from transformers_chatbridge import ChatBridgeForConditionalGeneration
    from transformers_chatbridge.chat_templates import build_processor
    from transformers_chatbridge.testing import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    config = bench_configs(tokenizer)
    torch.manual_seed(seed)
    model = ChatBridgeForConditionalGeneration(config)
    return model, build_processor(tokenizer, config)


def build_instructblip(chatbridge_config, tokenizer, seed: int = 0):
    from transformers import (
        InstructBlipConfig,
        InstructBlipForConditionalGeneration,
        InstructBlipQFormerConfig,
        InstructBlipVisionConfig,
    )

    vision = chatbridge_config.vision_config.to_dict()
    qformer = chatbridge_config.qformer_config.to_dict()
    for drop in ("model_type", "transformers_version", "use_qformer_text_input", "architectures"):
        vision.pop(drop, None)
        qformer.pop(drop, None)
    qformer["vocab_size"] = len(tokenizer)
    config = InstructBlipConfig(
        vision_config=InstructBlipVisionConfig(**vision),
        qformer_config=InstructBlipQFormerConfig(**qformer),
        text_config=chatbridge_config.text_config.to_dict(),
        num_query_tokens=chatbridge_config.num_image_query_tokens,
        image_token_index=chatbridge_config.image_token_id,
    )
    torch.manual_seed(seed)
    model = InstructBlipForConditionalGeneration(config)
    # Frozen as ChatBridge's stage preset: only the Q-Former, the query tokens and the language projection train.
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.split(".", 1)[0] in ("qformer", "query_tokens", "language_projection"))
    model.train()
    model.vision_model.eval()
    model.language_model.eval()
    return model


def write_media(folder: Path, count: int = 8) -> dict[str, list[str]]:
    """Distinct PNGs (varied sizes), 1 s H.264 clips and 1 s tones, so decoding and resizing do real work."""
    import av
    import soundfile
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    media = {"image": [], "video": [], "audio": []}
    for index in range(count):
        path = folder / f"image{index}.png"
        Image.fromarray(rng.integers(0, 255, (60 + 8 * index, 80 + 4 * index, 3), dtype=np.uint8)).save(path)
        media["image"].append(str(path))
        path = folder / f"clip{index}.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=10)
            stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
            for frame_index in range(10):
                frame = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())
        media["video"].append(str(path))
        path = folder / f"tone{index}.wav"
        soundfile.write(path, 0.3 * np.sin(2 * np.pi * (200 + 100 * index) * np.arange(16000) / 16000), 16000)
        media["audio"].append(str(path))
    return media


QUESTIONS = ["What is shown here?", "Describe it in detail.", "What colour dominates?", "Is anything moving?"]
ANSWERS = ["A noisy pattern of many colours.", "Random pixels, no clear shape.", "None; it is grey on average.",
           "It flickers from frame to frame."]


def rows_of(media: dict[str, list[str]], kinds, count: int) -> list[dict]:
    from transformers_chatbridge.data import make_row

    rows = []
    for index in range(count):
        kind = kinds[index % len(kinds)]
        items = kind.split("+")
        content = [*({"type": item} for item in items), {"type": "text", "text": QUESTIONS[index % 4]}]
        messages = [{"role": "user", "content": content},
                    {"role": "assistant", "content": [{"type": "text", "text": ANSWERS[index % 4]}]}]
        pick = index % len(media["image"])
        rows.append(make_row(messages, **{f"{item}s": [media[item][pick]] for item in items}))
    return rows


def instructblip_batch(batch: dict, rows: list[dict], tokenizer) -> dict:
    """The ChatBridge batch for InstructBLIP: same pixels, ids, mask and labels, plus its Q-Former's instruction."""
    questions = [row["messages"][0]["content"][-1]["text"] for row in rows]
    qformer = tokenizer(questions, padding=True, return_tensors="pt", add_special_tokens=False)
    return {
        "pixel_values": batch["pixel_values"], "input_ids": batch["input_ids"],
        "attention_mask": batch["attention_mask"], "labels": batch["labels"],
        "qformer_input_ids": qformer["input_ids"], "qformer_attention_mask": qformer["attention_mask"],
    }


def optimizer_for(model):
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.05)


def train_step(model, optimizer, batch) -> float:
    optimizer.zero_grad(set_to_none=True)
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    return loss.item()


# --- memory (child process) -------------------------------------------------------------------------------------------


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def memory_child(trainable: str, batch_size: int, media_dir: str, threads: int) -> dict:
    from transformers_chatbridge.data import ChatBridgeDataCollator

    torch.set_num_threads(threads)
    model, processor = build_chatbridge()
    model.set_training_stage("instruction")
    if trainable == "all":
        for parameter in model.parameters():
            parameter.requires_grad_(True)
    model.train()
    media = {kind: sorted(str(path) for path in Path(media_dir).glob(pattern))
             for kind, pattern in (("image", "image*.png"), ("video", "clip*.mp4"), ("audio", "tone*.wav"))}
    batch = ChatBridgeDataCollator(processor)(rows_of(media, MEMORY_BATCH_KINDS, batch_size))
    optimizer = optimizer_for(model)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    trainable_count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    before = _status("VmRSS")
    train_step(model, optimizer, batch)  # warm-up: AdamW allocates its state here
    try:
        Path("/proc/self/clear_refs").write_text("5")
        method = "VmHWM after clear_refs"
    except OSError:
        method = "ru_maxrss"
    for _ in range(2):
        train_step(model, optimizer, batch)
    peak = _status("VmHWM") if method != "ru_maxrss" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"peak_delta": peak - before, "peak": peak, "before": before, "weights": weights,
            "trainable": trainable_count, "method": method, "saved": saved_activations(model, batch)}


def saved_activations(model, batch) -> dict[str, int]:
    """Bytes autograd keeps for the backward pass of one forward, by the module that saved them (parameters and
    tensors saved twice not counted). Run after the peak is read, so it never adds to it."""
    parts = {"vision tower": model.model.vision_tower, "audio tower": model.model.audio_tower,
             "Q-Former": model.model.qformer, "LLM": model.model.language_model}  # fmt: skip
    parameters = {parameter.data_ptr() for parameter in model.parameters()}
    seen, totals, where = set(), dict.fromkeys([*parts, "other"], 0), ["other"]
    handles = []

    def leave(*_) -> None:  # a forward hook that returned something would replace the module's output
        where.pop()

    for name, module in parts.items():
        handles.append(module.register_forward_pre_hook(lambda *_, name=name: where.append(name) and None))
        handles.append(module.register_forward_hook(leave))

    def pack(tensor):
        key = (tensor.untyped_storage().data_ptr(), tensor.untyped_storage().nbytes())
        if key[0] not in parameters and key not in seen:
            seen.add(key)
            totals[where[-1]] += key[1]
        return tensor

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            model(**batch).loss.backward()
    finally:
        for handle in handles:
            handle.remove()
    return totals


def memory_note(memory: dict[str, list[dict]], batch_size: int, missed: bool) -> str:
    """What the training memory of each configuration is made of (first process of each, goal-row setting)."""
    mib = 2**20
    parts = {}
    for key in ("stage", "all"):
        run = memory[key][0]
        state = 12 * run["trainable"]  # fp32 gradient + AdamW's two moments per trainable parameter
        saved = ", ".join(f"{name} {size / mib:.0f}" for name, size in run["saved"].items() if size)
        parts[key] = (f"{run['peak_delta'] / mib:.0f} MiB = gradients + AdamW state {state / mib:.0f} MiB, "
                      f"activations kept for backward {sum(run['saved'].values()) / mib:.0f} MiB ({saved}), the rest "
                      "temporaries of the backward pass and allocator slack")  # fmt: skip
    note = ("What the training memory is made of (first process of each): stage preset " + parts["stage"]
            + "; all trainable " + parts["all"] + ".")  # fmt: skip
    if missed:
        note += (
            " What limits the memory row: the preset keeps no gradients or optimizer state for the towers and the "
            "LLM, and the frozen towers run without autograd (no activations kept). What it cannot drop are the "
            "frozen LLM's activations, which the backward pass needs to reach the Q-Former, and the Q-Former's own; "
            f"in this tiny model ({memory['all'][0]['trainable'] / 1e6:.1f}M parameters, batch {batch_size} with "
            "video and audio rows) they outweigh the parameter state that training everything adds. At real sizes "
            "the gradients and AdamW state of training everything (about 14B parameters x 12 bytes) would dwarf "
            "the activations (not measured here: that is the GPU profile of issue part 2)."
        )
    return note


# --- timing -------------------------------------------------------------------------------------------------------------


def time_steps(model, optimizer, batch, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        train_step(model, optimizer, batch)
    return (time.perf_counter() - start) / steps


def summary(values: list[float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def profile_step(model, optimizer, batch, label: str, rows: int = 12) -> str:
    from torch.profiler import ProfilerActivity, profile, record_function

    train_step(model, optimizer, batch)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        optimizer.zero_grad(set_to_none=True)
        with record_function("## forward"):
            loss = model(**batch).loss
        with record_function("## backward"):
            loss.backward()
        with record_function("## optimizer"):
            optimizer.step()
    table = prof.key_averages().table(sort_by="cpu_time_total", row_limit=rows, max_name_column_width=50)
    return f"\n### Profile: {label}\n\n```\n{table}```\n"


def machine_facts() -> str:
    cpu = platform.processor() or "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import transformers

    return (f"- CPU: {cpu}, {os.cpu_count()} cores visible, torch threads {torch.get_num_threads()}\n"
            f"- Python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, "
            f"{platform.system()} {platform.release()}\n"
            f"- load average (1, 5, 15 min) at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())} "
            f"(other processes on these cores widen the spreads)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model per repeat")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--miniature-batch", type=int, default=64)
    parser.add_argument("--miniature-repeats", type=int, default=3)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--memory-child", choices=["stage", "all"], help=argparse.SUPPRESS)
    parser.add_argument("--media-dir", help=argparse.SUPPRESS)
    add_arguments(parser)
    args = parser.parse_args(argv)

    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.batch_size, args.media_dir, args.threads)))
        return

    set_threads(args)
    from transformers_chatbridge.data import ChatBridgeDataCollator
    from transformers_chatbridge.data.miniature import build_miniature, load_miniature

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        tmp = Path(tmp)
        media = write_media(tmp / "media")

        # 1. memory, a fresh process per configuration, allocator setting and repeat, alternating.
        memory = {"stage": [], "all": []}
        glibc_default = {"stage": [], "all": []}
        environment = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        for name in FIXED_MMAP_THRESHOLD:
            environment.pop(name, None)
        for repeat in range(max(1, min(args.repeats, 3))):
            for trainable in (("stage", "all") if repeat % 2 == 0 else ("all", "stage")):
                for runs, extra in ((memory, FIXED_MMAP_THRESHOLD), (glibc_default, {})):
                    out = subprocess.run(
                        [sys.executable, __file__, "--memory-child", trainable, "--batch-size", str(args.batch_size),
                         "--media-dir", str(tmp / "media"), "--threads", str(args.threads)],
                        capture_output=True, text=True, check=True, env={**environment, **extra},
                    )
                    runs[trainable].append(json.loads(out.stdout.strip().splitlines()[-1]))
        mib = 2**20
        deltas = {key: [run["peak_delta"] / mib for run in runs] for key, runs in memory.items()}
        totals = {key: [(run["peak_delta"] + run["weights"]) / mib for run in runs] for key, runs in memory.items()}
        delta_ratios = [s / a for s, a in zip(deltas["stage"], deltas["all"])]
        total_ratios = [s / a for s, a in zip(totals["stage"], totals["all"])]
        method = memory["stage"][0]["method"]
        results.append(figure_row(
            "training memory, stage preset / all trainable (peak RSS - RSS before the step; 128 KiB mmap "
            "threshold)", delta_ratios, "<= 0.6x", peer="same model and batch, every parameter trainable",
            details=f"{summary(deltas['stage'], '{:.0f}')} MiB vs {summary(deltas['all'], '{:.0f}')} MiB; "
            f"{memory['stage'][0]['trainable'] / 1e6:.2f}M vs {memory['all'][0]['trainable'] / 1e6:.2f}M "
            f"trainable; {method}; batch {args.batch_size} ({', '.join(MEMORY_BATCH_KINDS)} rows)",
        ))
        default_deltas = {key: [run["peak_delta"] / mib for run in runs] for key, runs in glibc_default.items()}
        results.append(figure_row(
            "same, glibc's default (adaptive) mmap threshold",
            [s / a for s, a in zip(default_deltas["stage"], default_deltas["all"])], peer="as above",
            details=f"{summary(default_deltas['stage'], '{:.0f}')} MiB vs "
            f"{summary(default_deltas['all'], '{:.0f}')} MiB: freed activations kept in the heap add to both",
        ))
        results.append(figure_row(
            "same, weights included (fp32 parameters + training memory)", total_ratios, peer="as above",
            details=f"{summary(totals['stage'], '{:.0f}')} MiB vs {summary(totals['all'], '{:.0f}')} MiB",
        ))

        # 2. step time vs InstructBLIP, same images and text.
        chatbridge, processor = build_chatbridge()
        chatbridge.set_training_stage("instruction")
        chatbridge.train()
        instructblip = build_instructblip(chatbridge.config, processor.tokenizer)
        image_rows = rows_of(media, ("image",), args.batch_size)
        batch = ChatBridgeDataCollator(processor)(image_rows)
        ib_batch = instructblip_batch(batch, image_rows, processor.tokenizer)
        cb_optimizer, ib_optimizer = optimizer_for(chatbridge), optimizer_for(instructblip)
        for _ in range(2):
            train_step(chatbridge, cb_optimizer, batch)
            train_step(instructblip, ib_optimizer, ib_batch)
        cb_times, ib_times = [], []
        for repeat in range(args.repeats):
            # Single steps alternate (A B B A ...), so a burst of load from other processes hits both models alike.
            totals = {"cb": 0.0, "ib": 0.0}
            for step in range(args.steps):
                order = [("cb", chatbridge, cb_optimizer, batch), ("ib", instructblip, ib_optimizer, ib_batch)]
                for key, model, optimizer, inputs in (order if (repeat + step) % 2 == 0 else order[::-1]):
                    totals[key] += time_steps(model, optimizer, inputs, 1)
            cb_times.append(totals["cb"] / args.steps)
            ib_times.append(totals["ib"] / args.steps)
        ratios = [c / i for c, i in zip(cb_times, ib_times)]
        count = lambda model: sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6  # noqa: E731
        results.append(figure_row(
            "train step time, ChatBridge stage preset / InstructBLIP (same dims, same freezing)", ratios, "<= 1.0x",
            peer="transformers' `InstructBlipForConditionalGeneration`, same images and text",
            details=f"{summary([t * 1e3 for t in cb_times], '{:.0f}')} ms vs "
            f"{summary([t * 1e3 for t in ib_times], '{:.0f}')} ms per step; {count(chatbridge):.2f}M vs "
            f"{count(instructblip):.2f}M trainable; fastest steps {min(cb_times) * 1e3:.0f} vs "
            f"{min(ib_times) * 1e3:.0f} ms ({min(cb_times) / min(ib_times):.2f}x); batch {args.batch_size} images, "
            f"{batch['input_ids'].shape[1]} tokens",
        ))
        profiles = ""
        # The profile is printed when the script runs alone; for RESULTS.md only where the step time misses its goal.
        if not args.no_profile and (not args.json or results[-1].met is False):
            profiles = (profile_step(chatbridge, cb_optimizer, batch, "ChatBridge, stage preset")
                        + profile_step(instructblip, ib_optimizer, ib_batch, "InstructBLIP, same freezing"))
        del instructblip, ib_optimizer

        # 3. miniature-sized stage 2 step: 64 rows of the miniature world's stage 2 (MULTIS-style) rows.
        build_miniature(tmp / "world", size=48, seed=0, progress=False)
        world = load_miniature(tmp / "world")["train"]
        stage2 = world.filter(lambda row: row["stage"] == 2)
        # The split is ordered by modality: a seeded shuffle gives a batch that mixes images, videos and audio.
        stage2 = stage2.shuffle(seed=0)
        rows = [stage2[index] for index in range(min(args.miniature_batch, len(stage2)))]
        # No length limit: the recipes' max_length 128 is for the miniature's own tokenizer; the tiny BPE tokenizer
        # spells the same text in more tokens, and a cut batch would not be miniature-sized.
        collator = ChatBridgeDataCollator(processor)
        collate_times = []
        for _ in range(args.miniature_repeats):
            start = time.perf_counter()
            mini = collator(rows)
            collate_times.append(time.perf_counter() - start)
        kept = mini["input_ids"].shape[0]
        train_step(chatbridge, cb_optimizer, mini)
        step_times = [time_steps(chatbridge, cb_optimizer, mini, 1) for _ in range(args.miniature_repeats)]
        shapes = ", ".join(f"{key} {tuple(value.shape)}" for key, value in mini.items()
                           if key.startswith(("pixel", "input_f")))  # fmt: skip
        results.append(figure_row(
            "miniature-sized stage 2 step (stage 2 rows of the miniature world)", [kept / t for t in step_times],
            unit="samples/s", peer="(absolute, this CPU)",
            details=f"{kept} rows ({shapes}), padded to {mini['input_ids'].shape[1]} tokens; step "
            f"{summary(step_times)} s; collation (media decoding, 1 process) "
            f"{summary([kept / t for t in collate_times], '{:.1f}')} samples/s",
        ))

    print("## ChatBridge training bench\n")
    print(machine_facts())
    print(f"- repeats {args.repeats} x {args.steps} steps (time), memory {len(memory['stage'])} fresh processes "
          f"per configuration, miniature {args.miniature_repeats} repeats; median (min-max)\n")
    print("| measure | result | goal | met | details |")
    print("|---|---|---|---|---|")
    for row in results:
        value = (f"{row.ratio:.2f} ({row.low:.2f}-{row.high:.2f})" if row.unit == "x"
                 else f"{row.ratio:.1f} ({row.low:.1f}-{row.high:.1f}) {row.unit}")  # fmt: skip
        met = "-" if row.met is None else ("yes" if row.met else "NO")
        print(f"| {row.name} | {value}{'x' if row.unit == 'x' else ''} | {row.goal or '(info)'} | {met} | "
              f"{row.details} |")
    print(profiles)

    notes = []
    notes.append(memory_note(memory, args.batch_size, results[0].met is False))
    if profiles:
        notes.append("Why the step time misses: one profiled step of each model (torch profiler, CPU time):\n"
                     + profiles)
    write_json(args, "Training step: memory against training everything, time against InstructBLIP", results,
               f"tiny-but-not-trivial dims (vision 4x192 at 112 px, BEATs 2x192, Q-Former 4x192 with 32 queries, "
               f"LLaMA 4x256), batch {args.batch_size}; {args.repeats} repeats x {args.steps} steps (time), "
               f"{len(memory['stage'])} fresh processes per configuration and allocator setting (memory), "
               f"miniature step {args.miniature_repeats} repeats; torch threads {torch.get_num_threads()}", notes)


if __name__ == "__main__":
    main()
