"""How many training rows per second does `ChatBridgeDataCollator` deliver through a `DataLoader`?

Builds the miniature world (`build_miniature(dir, size=40)`), takes `--rows` rows of its train split (seeded shuffle,
so batches mix images, videos, audio and audio-video rows) and iterates them with a `torch.utils.data.DataLoader`,
batch 8, `--workers` worker processes (persistent, warmed up), collating with `ChatBridgeDataCollator` around the
real-size processor (224 px images and frames, 4 frames per video, one 1024-frame audio segment). The peer is the same
DataLoader whose collate function only hands the rows on (reading the Parquet-backed rows, no media decoding): what
the loader costs without the collator. The same collator with no worker processes is timed too (the speed-up of the
workers).

Figures are absolute rows/s of this CPU; each repeat times one pass of each loader, taking turns.

    python bench/bench_collator.py [--runs 3] [--rows 96] [--workers 2] [--threads 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from benchlib import add_arguments, figure_row, markdown_table, set_threads, write_json
from transformers_chatbridge import ChatBridgeConfig
from transformers_chatbridge.data import ChatBridgeDataCollator
from transformers_chatbridge.data.miniature import build_miniature, load_miniature
from transformers_chatbridge.chat_templates import build_processor
from transformers_chatbridge.testing import build_tiny_tokenizer

BATCH = 8


def rows_only(rows: list[dict]) -> list[dict]:
    """The peer's collate function: the rows as read, no media decoding."""
    return rows


def rows_per_second(loader: DataLoader, rows: int) -> float:
    start, seen = time.perf_counter(), 0
    for batch in loader:
        seen += len(batch) if isinstance(batch, list) else batch["input_ids"].shape[0]
    assert seen == rows, (seen, rows)
    return rows / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=96, help="rows per pass (a multiple of 8 keeps batches full)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=40, help="miniature world size")
    add_arguments(parser)
    args = parser.parse_args()
    set_threads(args)

    processor = build_processor(build_tiny_tokenizer(), ChatBridgeConfig())
    collator = ChatBridgeDataCollator(processor)
    with tempfile.TemporaryDirectory(prefix="bench-collator-") as tmp:
        build_miniature(Path(tmp) / "world", size=args.size, seed=0, progress=False)
        train = load_miniature(Path(tmp) / "world")["train"].shuffle(seed=0)
        rows = train.select(range(min(args.rows, len(train))))
        modalities = rows["modality"]
        kinds = {modality: modalities.count(modality) for modality in sorted(set(modalities))}

        def loader(collate, workers: int) -> DataLoader:
            return DataLoader(rows, batch_size=BATCH, num_workers=workers, collate_fn=collate,
                              persistent_workers=workers > 0)  # fmt: skip

        loaders = {"collator": loader(collator, args.workers), "read": loader(rows_only, args.workers),
                   "collator, in process": loader(collator, 0)}  # fmt: skip
        for name in loaders:
            rows_per_second(loaders[name], len(rows))  # warm-up: starts the workers, fills the page cache
        rates: dict[str, list[float]] = {name: [] for name in loaders}
        for run in range(args.runs):
            for name in list(loaders) if run % 2 == 0 else list(loaders)[::-1]:
                rates[name].append(rows_per_second(loaders[name], len(rows)))
        del loaders

    collated, read, alone = rates["collator"], rates["read"], rates["collator, in process"]
    rows_out = [
        figure_row(f"collated rows/s, batch {BATCH}, {args.workers} workers", collated, unit="rows/s",
                   peer=f"reading the rows only: {statistics.median(read):.0f} rows/s",
                   details=f"media decoded and processed at 224 px; {len(rows)} rows per pass "
                   f"({', '.join(f'{k} {v}' for k, v in kinds.items())})"),
        figure_row(f"collated rows/s, {args.workers} workers / no workers", [c / a for c, a in zip(collated, alone)],
                   peer=f"same collator in the main process: {statistics.median(alone):.1f} rows/s"),
    ]  # fmt: skip
    print(f"miniature world size {args.size}, {len(rows)} train rows, batch {BATCH}, {args.runs} repeats, torch "
          f"threads {torch.get_num_threads()}\n")
    print(markdown_table(rows_out))
    notes = []
    if rows_out[-1].ratio < 1:
        load = os.getloadavg()[0]
        notes.append(
            f"The workers did not pay here ({rows_out[-1].ratio:.2f}x): they only help with idle cores to run on, "
            f"and the 1-minute load average was {load:.2f} on {os.cpu_count()} cores when this benchmark ended, so "
            "the worker processes shared the same busy cores as the main process and added the transfer of each "
            "batch's tensors between processes. On idle cores each worker can add up to one core's worth of "
            "collation."
        )
        print("\n" + notes[-1])
    write_json(args, "Data collation: ChatBridgeDataCollator through a DataLoader", rows_out,
               f"miniature world (size {args.size}) train rows, {len(rows)} per pass, batch {BATCH}, "
               f"{args.workers} persistent workers, real-size processor (224 px); {args.runs} repeats; torch threads "
               f"{torch.get_num_threads()} in the main process", notes)


if __name__ == "__main__":
    main()
