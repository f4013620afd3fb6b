"""`chatbridge eval`: zero-shot evaluation of a ChatBridge model on one benchmark (see `evaluation.runner`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from transformers_chatbridge.inference.batch import InputError

from ..evaluation.registry import TASKS
from .arguments import add_quantization_arguments, non_negative_float, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="Folder (or Hub id) of a ChatBridge model and its processor.")
    parser.add_argument("--task", required=True, choices=sorted(TASKS), help="Benchmark to evaluate on.")
    parser.add_argument("--data-dir", required=True, type=Path,
                        help="Folder holding the benchmark's files (each task's layout: docs/evaluation.md).")
    parser.add_argument("--limit", type=positive_int, help="Evaluate only the first N samples.")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="Samples per generate call (default 8).")
    parser.add_argument("--output", type=Path, default=Path("results"), help="Output folder (default results/).")
    parser.add_argument("--max-new-tokens", type=positive_int, help="Longest answer in tokens (default: the task's).")
    parser.add_argument("--device", help="Torch device, e.g. cpu, cuda (default: the pipeline's choice).")
    parser.add_argument("--media-cache-gib", type=non_negative_float, default=0.0,
                        help="Keep decoded images and video frames up to this many GiB for the questions that ask "
                             "about the same file again (same answers; default 0: off).")
    add_quantization_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.runner import RESULTS_FILE, evaluate, format_table

    try:
        results = evaluate(
            args.model, args.task, args.data_dir, args.output, limit=args.limit, batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens, device=args.device, quantization=args.quantization,
            media_cache_gib=args.media_cache_gib,
        )  # fmt: skip
    except (InputError, FileNotFoundError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: rerun the same command to continue where it stopped", file=sys.stderr, flush=True)
        return 130
    print(format_table(results))
    print(f"wrote {args.output / RESULTS_FILE}")
    return 0
