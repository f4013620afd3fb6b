"""`chatbridge train --config RECIPE`: TRL's SFTTrainer for ChatBridge, like `trl sft` (see `training.sft`).

RECIPE is a YAML file, or the name of a recipe shipped with the package (`miniature_stage1`, `miniature_stage2`:
the miniature world's, which train from `chatbridge demo --components-only`).
"""

import argparse
import sys

from ..training.sft import train

# `chatbridge train`: TRL's parser reads the arguments itself (its --help lists every field).
PARSES_OWN_ARGUMENTS = True

# Said after an error about a folder the miniature recipes read: where that folder comes from.
MINIATURE_HINT = ("the miniature recipes read ./demo_run as `chatbridge demo --components-only` (a few minutes) or a "
                  "whole `chatbridge demo` leaves it: run them from the folder that holds demo_run")  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Nothing: `run` hands every argument to TRL's parser."""


def run(args: argparse.Namespace) -> int:
    try:
        train(args.arguments, prog="chatbridge train")
    except ValueError as error:  # settings and data the run cannot use: named before (or instead of) training
        hint = f"; {MINIATURE_HINT}" if "demo_run/" in str(error) else ""
        print(f"chatbridge train: error: {error}{hint}", file=sys.stderr)
        return 2
    return 0
