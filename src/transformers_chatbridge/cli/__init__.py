"""The `chatbridge` command: one module of this folder per subcommand, each with `add_arguments(parser)` and
`run(args)`; a module with `PARSES_OWN_ARGUMENTS = True` gets its arguments unparsed, as `args.arguments` (`train`:
TRL's parser). Commands only parse and report; the work is done by the library they call."""

import argparse
import importlib
import sys

# subcommand (= its module here) -> help
COMMANDS = {
    "demo": "The whole lifecycle on the miniature world: pretrain, train both stages, evaluate, report.",
    "chat": "Chat in the terminal with a ChatBridge model about images, videos and audio.",
    "serve": "Chat in the browser (a Gradio page) with a ChatBridge model about images, videos and audio.",
    "generate": "Answer every question of a JSONL file, in batches, resumably.",
    "convert": "Convert an original ChatBridge checkpoint into a ChatBridge folder.",
    "eval": "Evaluate a ChatBridge model zero-shot on a benchmark.",
    "data": "Build training data sets: the miniature world, stage-1 and MULTIS rows.",
    "train": "Train ChatBridge with TRL's SFTTrainer from a recipe (--config), like `trl sft`.",
    "publish": "Check a ChatBridge folder, render its model card and upload it to the Hub.",
}


# Optional packages -> the extra of this package that installs them.
EXTRAS = {"gradio": "serve", "datasets": "train", "trl": "train", "peft": "train", "accelerate": "train",
          "evaluate": "eval", "matplotlib": "demo"}  # fmt: skip


class CommandError(Exception):
    """A setting the command cannot work with; printed as one line, before any model is loaded."""


def check_model(model: str) -> None:
    """A `--model` must be a folder holding a saved model or a reachable Hub id (see `model_source`)."""
    from ..model_source import check_model_source

    try:
        check_model_source("--model", model)
    except ValueError as error:
        raise CommandError(str(error)) from None


def check_device(device: str) -> None:
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise CommandError(f"--device {device}: not a torch device (e.g. cpu, cuda, cuda:1, mps)") from None
    available = {"cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}
    if kind in available and not available[kind]():
        raise CommandError(f"--device {device}: this machine has no {kind} device (use --device cpu)")


def _missing_extra(error: ModuleNotFoundError) -> str | None:
    package = (error.name or "").split(".")[0]
    if package not in EXTRAS:
        return None
    return f"needs {package}: pip install 'transformers-chatbridge[{EXTRAS[package]}]'"


def main(argv: list[str] | None = None) -> None:
    """Only the chosen subcommand's module is imported, so one command never pays for the others' imports."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="chatbridge", description="ChatBridge on the Hugging Face stack.")
    subcommands = parser.add_subparsers(dest="command", required=True)
    chosen = None
    try:
        for name, help_text in COMMANDS.items():
            if not (argv and argv[0] == name):
                subcommands.add_parser(name, help=help_text, description=help_text)
                continue
            chosen = importlib.import_module(f"{__package__}.{name}")
            own = getattr(chosen, "PARSES_OWN_ARGUMENTS", False)
            chosen.add_arguments(subcommands.add_parser(name, help=help_text, description=help_text, add_help=not own))
        args, rest = parser.parse_known_args(argv)
        if getattr(chosen, "PARSES_OWN_ARGUMENTS", False):
            args.arguments = rest
        elif rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        if getattr(args, "model", None) is not None:
            check_model(args.model)
        if getattr(args, "device", None) is not None:
            check_device(args.device)
        status = chosen.run(args)
    except CommandError as error:
        print(f"chatbridge {argv[0]}: error: {error}", file=sys.stderr)
        status = 2
    except ModuleNotFoundError as error:
        message = _missing_extra(error)
        if message is None:
            raise
        print(f"chatbridge {argv[0]}: error: {message}", file=sys.stderr)
        status = 2
    raise SystemExit(status)


if __name__ == "__main__":
    main()
