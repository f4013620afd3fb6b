"""The `chatbridge` command. Each subcommand lives in its own module with `add_arguments(parser)` and `run(args)`."""

import argparse
import importlib

# subcommand -> (module, help)
COMMANDS = {
    "demo": ("demo", "Build a tiny random ChatBridge and answer a question about an image."),
    "chat": ("chat", "Chat in the terminal with a ChatBridge model about images, videos and audio."),
    "generate": ("batch_generate", "Answer every question of a JSONL file, in batches, resumably."),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="chatbridge", description="ChatBridge on the Hugging Face stack.")
    subcommands = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, (module_name, help_text) in COMMANDS.items():
        modules[name] = importlib.import_module(f"{__package__}.{module_name}")
        modules[name].add_arguments(subcommands.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    raise SystemExit(modules[args.command].run(args))


if __name__ == "__main__":
    main()
