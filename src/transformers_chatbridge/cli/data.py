"""`chatbridge data`: build training data sets. `chatbridge data miniature` writes the miniature world;
`chatbridge data build` converts a public corpus (stage-1 captions or a MULTIS task) into chat rows."""

import argparse
import sys
import time
from pathlib import Path

from .arguments import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..data.miniature import DEFAULT_SEED, DEFAULT_SIZE

    commands = parser.add_subparsers(dest="data_command", required=True)
    help_text = "Write the deterministic synthetic image/video/audio/audio-video world (stage-1 and MULTIS rows)."
    miniature = commands.add_parser("miniature", help=help_text, description=help_text)
    miniature.add_argument("--out", required=True, type=Path, help="Folder to write (data/, media/, README.md).")
    miniature.add_argument(
        "--size", type=positive_int, default=DEFAULT_SIZE,
        help=f"Training images; other modalities and splits scale with it (default {DEFAULT_SIZE}).",
    )
    miniature.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"Seed (default {DEFAULT_SEED}).")
    miniature.add_argument("--overwrite", action="store_true", help="Replace a miniature world already in --out.")
    miniature.add_argument("--quiet", action="store_true", help="No progress bar.")
    _add_build_arguments(commands)


def _add_build_arguments(commands) -> None:
    from ..data.builders import BUILDERS, DEFAULT_MAX_CAPTION_TOKENS

    help_text = "Convert a public corpus in its own format into chat rows (stage-1 captions or a MULTIS task)."
    build = commands.add_parser("build", help=help_text, description=help_text)
    build.add_argument("--kind", required=True, choices=sorted(BUILDERS), help="stage1 or multis.")
    build.add_argument(
        "--task", required=True,
        help="stage1: " + ", ".join(BUILDERS["stage1"]) + "; multis: " + ", ".join(BUILDERS["multis"]) + ".",
    )
    build.add_argument("--source", required=True, nargs="+", type=Path,
                       help="Annotation file(s) or folder(s) (VQAv2: the questions and the annotations file).")
    build.add_argument("--media-root", type=Path, default=None,
                       help="Folder the sources' media paths are relative to (default: the current folder).")
    build.add_argument("--out", required=True, type=Path, help="Folder to write (data/, README.md, skipped.jsonl).")
    build.add_argument("--seed", type=int, default=0, help="Seed of the instruction template choice (default 0).")
    build.add_argument(
        "--max-caption-tokens", type=positive_int, default=DEFAULT_MAX_CAPTION_TOKENS,
        help=f"Stage-1 caption limit (default {DEFAULT_MAX_CAPTION_TOKENS}); whitespace words unless --tokenizer.",
    )
    build.add_argument("--tokenizer", default=None, help="Tokenizer (path) that counts caption tokens.")
    build.add_argument("--long-captions", choices=("skip", "truncate"), default="skip",
                       help="Skip (and count) or truncate captions over the limit (default skip).")
    build.add_argument("--split", default="train", help="Split name of the shards (default train).")
    build.add_argument("--shard-size", type=positive_int, default=50_000, help="Rows per Parquet shard.")
    build.add_argument(
        "--media", choices=("link", "reference"), default="link",
        help="Media outside --out: link (default) places them in --out/media/linked/ as hard links (copies across file "
        "systems), so the set moves and publishes with its media; reference names them by relative paths climbing out "
        "of --out (no copies; the set then moves only together with them and cannot be published).",
    )
    build.add_argument("--overwrite", action="store_true", help="Replace a data set already built in --out.")
    build.add_argument("--quiet", action="store_true", help="No progress bar.")


def _run_build(args: argparse.Namespace) -> int:
    from ..data.builders import BUILDERS, build_dataset, format_summary

    if args.task not in BUILDERS[args.kind]:
        print(f"error: unknown {args.kind} task {args.task!r}; choose from {', '.join(BUILDERS[args.kind])}",
              file=sys.stderr, flush=True)
        return 2
    try:
        summary = build_dataset(
            args.kind, args.task, args.source, args.out, media_root=args.media_root, seed=args.seed,
            max_caption_tokens=args.max_caption_tokens, tokenizer=args.tokenizer, long_captions=args.long_captions,
            split=args.split, shard_size=args.shard_size, overwrite=args.overwrite, progress=not args.quiet,
            media=args.media,
        )
    except (FileExistsError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    print(format_summary(summary))
    print(f"wrote {summary['rows']} rows to {args.out} in {summary['seconds']:.1f} s "
          f"({summary['rows_per_second'] or 0:.0f} rows/s); skipped records listed in {args.out / 'skipped.jsonl'}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.data_command == "miniature":
        from ..data.miniature import build_miniature, format_summary

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
    if args.data_command == "build":
        return _run_build(args)
    print(f"error: unknown data command {args.data_command!r}", file=sys.stderr)
    return 2
