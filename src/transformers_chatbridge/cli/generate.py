"""`chatbridge generate`: answer every question of a JSONL file in batches, resumably (see `inference.batch`)."""

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm
from transformers import pipeline

from ..inference.batch import (
    InputError,
    answer_batch,
    batches,
    check_output,
    count_lines,
    pipeline_kwargs,
    read_requests,
    resume_point,
    run_record_path,
    run_settings,
    write_record,
)
from ..pipeline_chatbridge import ChatBridgePipeline
from .arguments import add_quantization_arguments, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="Folder (or Hub id) of a ChatBridge model and its processor.")
    parser.add_argument("--input", required=True, type=Path, help="JSONL file of questions, one per line.")
    parser.add_argument("--output", required=True, type=Path, help="JSONL file of answers; an existing one is resumed.")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="Questions per generate call (default 8).")
    parser.add_argument("--max-new-tokens", type=positive_int, default=256, help="Longest answer, in tokens.")
    parser.add_argument("--device", help="Torch device, e.g. cpu, cuda, cuda:1 (default: the pipeline's choice).")
    add_quantization_arguments(parser)
    parser.add_argument(
        "--overwrite", action="store_true", help="Replace an existing --output instead of continuing it."
    )


def run(args: argparse.Namespace) -> int:
    """Answer the input lines the output does not hold yet; 0 when every line has its record, 2 if it cannot start."""
    try:
        if not args.input.is_file():
            raise InputError(f"no such input file: {args.input}")
        total = count_lines(args.input)
        settings = run_settings(args)
        check_output(args.output, settings, args.overwrite)  # before the (slow) model load
        done = resume_point(args.output, total)
    except (InputError, OSError) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    counts = {"answered": 0, "errors": 0}
    try:
        if done < total:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            run_record_path(args.output).write_text(json.dumps(settings, indent=1) + "\n")
            _answer_all(args, total, done, counts)
    except KeyboardInterrupt:
        print("\ninterrupted: rerun the same command to continue where it stopped", file=sys.stderr, flush=True)
        return 130
    finally:
        print(f"{args.output}: {counts['answered']} answered, {counts['errors']} errors, {done} skipped (already done)")
    return 0


def _answer_all(args: argparse.Namespace, total: int, done: int, counts: dict[str, int]) -> None:
    pipe = _load_pipeline(args.model, args.device, args.quantization)
    progress = tqdm(total=total, initial=done, unit="line", desc="generate", file=sys.stderr, dynamic_ncols=True)
    with open(args.output, "a", encoding="utf-8") as output, progress:
        for batch in batches(read_requests(args.input, start=done), args.batch_size):
            for record in answer_batch(pipe, batch, args.max_new_tokens):
                write_record(output, record)
                counts["errors" if "error" in record else "answered"] += 1
                progress.update(1)


def _load_pipeline(model: str, device: str | None, quantization: str | None) -> ChatBridgePipeline:
    return pipeline("chatbridge", model=model, **pipeline_kwargs(device, quantization))
