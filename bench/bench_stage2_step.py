"""How much faster is a stage-2 training step with packed batches, and with decoded media kept across batches?

Takes a ChatBridge checkpoint and a miniature world: by default the demo's stage-1 output and world
(`chatbridge demo --out demo_run`, or `--components-only` and `chatbridge train --config miniature_stage1`). Draws
`--batches` seeded random batches of the world's stage-2 rows (the mix a stage-2 run sees: short answers to a
picture beside audio-video descriptions) and times one training step on each (collation, forward, backward, AdamW;
the stage-2 trainable set, dropout off so every step computes the same function) with three collators, taking turns
step by step so that drifts in the machine's speed hit all alike: padded, packed (`pack=True`), and packed with a
decoded-media cache (`media_cache_bytes`, as the miniature recipes set it). The cache is filled by the warm-up pass
over the batches, so the third figure is a step whose media were all read before (in a run, every read after a
file's first: later tasks about it and later epochs). Ratios are formed per repeat; the table gives the median and
the min-max over repeats, and the tokens each way.

    python bench/bench_stage2_step.py [--model demo_run/stage1] [--data demo_run/miniature] [--repeats 5] [--batches 8]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from benchlib import add_arguments, figure_row, markdown_table, set_threads, write_json
from transformers_chatbridge import ChatBridgeForConditionalGeneration, ChatBridgeProcessor
from transformers_chatbridge.data import ChatBridgeDataCollator
from transformers_chatbridge.data.miniature import load_miniature


def timed_step(model, optimizer, collator, rows) -> tuple[float, int]:
    """Seconds for one step from rows to updated weights, and the tokens the model read."""
    start = time.perf_counter()
    batch = collator(rows)
    model(**batch).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start, batch["input_ids"].numel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=Path("demo_run/stage1"))
    parser.add_argument("--data", type=Path, default=Path("demo_run/miniature"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=8, help="batches per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    add_arguments(parser)
    args = parser.parse_args()
    set_threads(args)
    for path in (args.model, args.data):
        if not path.is_dir():
            raise SystemExit(f"{path} is not a folder: run `chatbridge demo` first, or pass --model and --data.")

    model = ChatBridgeForConditionalGeneration.from_pretrained(args.model)
    model.set_training_stage("instruction")
    model.eval()  # no dropout: both collations feed the same function
    processor = ChatBridgeProcessor.from_pretrained(args.model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    train = load_miniature(args.data)["train"].filter(lambda row: row["stage"] == 2).shuffle(seed=0)
    collators = {
        "padded": ChatBridgeDataCollator(processor),
        "packed": ChatBridgeDataCollator(processor, pack=True),
        "cached": ChatBridgeDataCollator(processor, pack=True, media_cache_bytes=2**30),
    }
    batches = [train.select(range(k * args.batch_size, (k + 1) * args.batch_size)).to_list() for k in range(args.batches)]
    for rows in batches:  # warm-up: AdamW's state, the page cache, the media cache
        for collator in collators.values():
            timed_step(model, optimizer, collator, rows)
    ratios, tokens = {"packing": [], "cache": []}, {name: 0 for name in collators}
    for repeat in range(args.repeats):
        seconds = {name: 0.0 for name in collators}
        for k, rows in enumerate(batches):
            order = list(collators)[(repeat + k) % len(collators):] + list(collators)[:(repeat + k) % len(collators)]
            for name in order:
                elapsed, count = timed_step(model, optimizer, collators[name], rows)
                seconds[name] += elapsed
                if repeat == 0:
                    tokens[name] += count
        ratios["packing"].append(seconds["padded"] / seconds["packed"])
        ratios["cache"].append(seconds["packed"] / seconds["cached"])

    cache = collators["cached"].media_cache
    rows_out = [
        figure_row("stage-2 step, padded / packed batches", ratios["packing"],
                   peer=f"padded batches: {tokens['padded']} tokens over {args.batches} batches",
                   details=f"packed: {tokens['packed']} tokens ({tokens['packed'] / tokens['padded']:.0%})"),
        figure_row("stage-2 step, packed / packed with decoded media kept", ratios["cache"],
                   peer="packed batches, every file decoded when read",
                   details=f"{cache.misses} files decoded, {cache.stored_bytes / 2**20:.0f} MiB kept"),
    ]  # fmt: skip
    print(f"{args.model} on {args.data}: {args.batches} batches of {args.batch_size} stage-2 rows, {args.repeats} "
          f"repeats, torch threads {torch.get_num_threads()}; median ratios: packing "
          f"{statistics.median(ratios['packing']):.2f}, media cache {statistics.median(ratios['cache']):.2f}\n")
    print(markdown_table(rows_out))
    write_json(args, "A stage-2 step: packed batches, decoded media kept", rows_out,
               f"{args.model}, {args.batches} x {args.batch_size} stage-2 rows of {args.data}, {args.repeats} repeats")


if __name__ == "__main__":
    main()
