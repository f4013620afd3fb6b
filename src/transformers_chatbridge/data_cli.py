"""`chatbridge data`: build training data sets. `chatbridge data miniature` writes the miniature world."""

import argparse
import sys
import time
from pathlib import Path


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .data.miniature import DEFAULT_SEED, DEFAULT_SIZE

    commands = parser.add_subparsers(dest="data_command", required=True)
    help_text = "Write the deterministic synthetic image/video/audio/audio-video world (stage-1 and MULTIS rows)."
    miniature = commands.add_parser("miniature", help=help_text, description=help_text)
    miniature.add_argument("--out", required=True, type=Path, help="Folder to write (data/, media/, README.md).")
    miniature.add_argument(
        "--size", type=_positive, default=DEFAULT_SIZE,
        help=f"Training images; other modalities and splits scale with it (default {DEFAULT_SIZE}).",
    )
    miniature.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"Seed (default {DEFAULT_SEED}).")
    miniature.add_argument("--overwrite", action="store_true", help="Replace a miniature world already in --out.")
    miniature.add_argument("--quiet", action="store_true", help="No progress bar.")


def run(args: argparse.Namespace) -> int:
    if args.data_command == "miniature":
        from .data.miniature import build_miniature, format_summary

        start = time.perf_counter()
        try:
            summary = build_miniature(
                args.out, size=args.size, seed=args.seed, overwrite=args.overwrite, progress=not args.quiet
            )
        except FileExistsError as error:
            print(f"error: {error}", file=sys.stderr, flush=True)
            return 2
        seconds = time.perf_counter() - start
        rows = sum(summary[split]["rows"] for split in ("train", "validation", "test", "novel"))
        print(format_summary(summary))
        print(f"wrote {rows} rows to {args.out} in {seconds:.1f} s ({rows / seconds:.0f} rows/s)")
        return 0
    print(f"error: unknown data command {args.data_command!r}", file=sys.stderr)
    return 2
