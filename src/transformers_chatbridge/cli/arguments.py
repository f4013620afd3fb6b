"""Argument types the `chatbridge` subcommands share."""

import argparse

from ..inference.quantization import BITS


def positive_int(value: str) -> int:
    """A count of at least 1 (a batch size, a concurrency, a queue length): 0 would stall or refuse all work."""
    if not value.strip().isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {value!r}")
    return int(value)


def non_negative_float(value: str) -> float:
    """A size or a share that may be 0 (off), never negative or not a number."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number >= 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of at least 0, got {value!r}")
    return number


def add_quantization_arguments(parser: argparse.ArgumentParser) -> None:
    """`--load-in-4bit` / `--load-in-8bit` (exclusive), stored as `args.quantization` ("4bit", "8bit" or None)."""
    group = parser.add_mutually_exclusive_group()
    for bits in BITS:
        group.add_argument(
            f"--load-in-{bits}", dest="quantization", action="store_const", const=bits,
            help=f"Load the LLM's linear layers in {bits[0]} bits (bitsandbytes); towers and bridge stay as saved.",
        )  # fmt: skip
