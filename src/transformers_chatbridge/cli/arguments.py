"""Argument types the `chatbridge` subcommands share."""

import argparse


def positive_int(value: str) -> int:
    """A count of at least 1 (a batch size, a concurrency, a queue length): 0 would stall or refuse all work."""
    if not value.strip().isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {value!r}")
    return int(value)
