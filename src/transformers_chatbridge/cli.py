"""The `chatbridge` command. Each subcommand lives in its own module with `add_arguments(parser)` and `run(args)`."""

import argparse
import importlib
import sys

# subcommand -> (module, help)
COMMANDS = {
    "demo": ("demo.lifecycle", "The whole lifecycle on the miniature world: pretrain, train both stages, evaluate, report."),
    "chat": ("chat", "Chat in the terminal with a ChatBridge model about images, videos and audio."),
    "serve": ("serve", "Chat in the browser (a Gradio page) with a ChatBridge model about images, videos and audio."),
    "generate": ("batch_generate", "Answer every question of a JSONL file, in batches, resumably."),
    "convert": ("convert_original_checkpoint", "Convert an original ChatBridge checkpoint into a ChatBridge folder."),
    "eval": ("evaluation.cli", "Evaluate a ChatBridge model zero-shot on a benchmark."),
    "data": ("data_cli", "Build training data sets: the miniature world, stage-1 and MULTIS rows."),
    "publish": ("publish", "Check a ChatBridge folder, render its model card and upload it to the Hub."),
}


def main(argv: list[str] | None = None) -> None:
    """Only the chosen subcommand's module is imported, so one command never pays for the others' imports."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="chatbridge", description="ChatBridge on the Hugging Face stack.")
    subcommands = parser.add_subparsers(dest="command", required=True)
    chosen = None
    for name, (module_name, help_text) in COMMANDS.items():
        subparser = subcommands.add_parser(name, help=help_text, description=help_text)
        if argv and argv[0] == name:
            chosen = importlib.import_module(f"{__package__}.{module_name}")
            chosen.add_arguments(subparser)
    args = parser.parse_args(argv)
    raise SystemExit(chosen.run(args))


if __name__ == "__main__":
    main()
