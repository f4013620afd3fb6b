"""`chatbridge train --config RECIPE`: TRL's SFTTrainer for ChatBridge, like `trl sft` (see `training.sft`).

RECIPE is a YAML file, or the name of a recipe shipped with the package (`miniature_stage1`, `miniature_stage2`: the
demo's, which train from `chatbridge demo --components-only`).
"""

import argparse
import sys
from pathlib import Path

from ..demo.lifecycle import RECIPES
from ..training.sft import train

# `chatbridge train`: TRL's parser reads the arguments itself (its --help lists every field).
PARSES_OWN_ARGUMENTS = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Nothing: `run` hands every argument to TRL's parser."""


def recipe_path(value: str) -> str:
    """A --config value: an existing file as it is, else the shipped recipe of that name."""
    shipped = RECIPES / (value if value.endswith(".yaml") else f"{value}.yaml")
    return str(shipped) if not Path(value).exists() and shipped.is_file() else value


def run(args: argparse.Namespace) -> int:
    arguments = list(args.arguments)
    for index, argument in enumerate(arguments[:-1]):
        if argument == "--config":
            arguments[index + 1] = recipe_path(arguments[index + 1])
    try:
        train(arguments, prog="chatbridge train")
    except ValueError as error:  # settings and data the run cannot use: named before (or instead of) training
        print(f"chatbridge train: error: {error}", file=sys.stderr)
        return 2
    return 0
