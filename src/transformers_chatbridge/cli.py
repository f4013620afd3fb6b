"""The `chatbridge` command."""

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="chatbridge", description="ChatBridge on the Hugging Face stack.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="Build a tiny random ChatBridge and answer a question about an image.")
    demo.add_argument("--out", default="demo_run", help="Folder for the model and the generated image.")
    demo.add_argument("--question", default="What colour is the shape?")
    args = parser.parse_args(argv)

    if args.command == "demo":
        from .demo import run_demo

        run_demo(out=args.out, question=args.question)


if __name__ == "__main__":
    main()
