"""`chatbridge chat`: a multi-turn terminal chat with a ChatBridge model about images, videos and audio.

The whole conversation (media included) is sent again each turn (see `inference.session`); answers stream as they
are generated. Ctrl-C stops an answer and keeps the conversation; twice at the prompt, it leaves.
"""

import argparse
import sys
from pathlib import Path

from ..inference.session import ChatSession, MediaError, load_model
from ..modalities import MODALITIES
from .arguments import add_quantization_arguments

COMMANDS = """Commands:
  /image PATH, /video PATH, /audio PATH   attach a file to your next message
  /history                                show the conversation the model is sent again
  /reset                                  forget the conversation and pending files
  /help                                   show this list
  /quit                                   leave (so do end of input and Ctrl-C twice at the prompt)
Ctrl-C during an answer stops it; the conversation keeps the part already shown."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="Folder (or Hub id) of a ChatBridge model and its processor.")
    for kind in MODALITIES:
        # One shared list keeps the command-line order of the files across kinds.
        parser.add_argument(
            f"--{kind}", dest="media", action="append", default=[], metavar="FILE",
            type=lambda path, kind=kind: (kind, path), help=f"{kind.capitalize()} for the first message (repeatable).",
        )
    parser.add_argument("--max-new-tokens", type=int, default=256, help="Longest answer, in tokens.")
    parser.add_argument("--device", default="cpu", help="Torch device for the model, e.g. cpu, cuda, cuda:1, mps.")
    add_quantization_arguments(parser)


def run(args: argparse.Namespace) -> int:
    for kind, path in args.media:  # before the (slow) model load
        if not Path(path).expanduser().is_file():
            _error(f"no such {kind} file: {path}")
            return 2
    model, processor = load_model(args.model, args.device, args.quantization)
    session = ChatSession(model, processor, max_new_tokens=args.max_new_tokens)
    for kind, path in args.media:
        session.attach(kind, path)

    interactive = sys.stdin.isatty()
    if interactive:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
    print(f"ChatBridge chat with {args.model}. Type a message, or a command.\n{COMMANDS}", flush=True)
    if session.pending:
        print("Attached to your first message: " + ", ".join(item["path"] for item in session.pending), flush=True)
    # Leaving by Ctrl-C exits with 0, as /quit and end of input do (and as node's REPL does): the user asked to leave
    # and nothing was cut off. 130 (killed by SIGINT) would tell a calling script that the chat was aborted.
    interrupted = False  # the prompt was left by Ctrl-C: one more leaves the chat
    try:
        while True:
            try:
                line = input("you> " if interactive else "").strip()
            except EOFError:
                if interactive:
                    print()
                return 0
            except KeyboardInterrupt:
                print()
                if interrupted:
                    return 0
                interrupted = True
                print("(press Ctrl-C again or type /quit to leave)", flush=True)
                continue
            interrupted = False
            if line.startswith("/"):
                if not _command(session, line):
                    return 0
            elif line:
                _answer(session, line)
    except KeyboardInterrupt:  # pressed again while the last one was handled (a note being printed): leaving too
        print()
        return 0


def _answer(session: ChatSession, text: str) -> None:
    """One turn on the terminal; "bot> " is printed with the first chunk, so a failed turn shows only its error.

    Ctrl-C stops the answer and returns to the prompt; `ChatSession.reply` says what the conversation keeps.
    """
    started = False

    def write(chunk: str) -> None:
        nonlocal started
        print(chunk if started else "bot> " + chunk, end="", flush=True)
        started = True

    try:
        session.reply(text, write)
    except MediaError as error:
        _error(f"{error} (this message and its files were dropped; attach them again to retry)")
        return
    except KeyboardInterrupt:
        print("\n[answer stopped]" if started else "\n[stopped before the answer began; this message was dropped]",
              flush=True)
        return
    print("" if started else "bot> ", flush=True)


def _command(session: ChatSession, line: str) -> bool:
    """Run a /command; False means leave the chat."""
    name, _, argument = line.partition(" ")
    argument = argument.strip()
    if len(argument) >= 2 and argument[0] == argument[-1] and argument[0] in "'\"":
        argument = argument[1:-1]  # a quoted path, as a terminal's drag and drop writes it
    if name == "/quit":
        return False
    if name == "/help":
        print(COMMANDS, flush=True)
    elif name == "/history":
        _history(session)
    elif name == "/reset":
        session.reset()
        print("Conversation and pending files forgotten.", flush=True)
    elif name[1:] in MODALITIES:
        if not argument:
            _error(f"usage: {name} PATH")
        else:
            try:
                session.attach(name[1:], argument)
                print(f"Attached {name[1:]} {argument} to your next message.", flush=True)
            except FileNotFoundError as error:
                _error(str(error))
    else:
        _error(f"unknown command {name}; /help lists the commands")
    return True


def _history(session: ChatSession) -> None:
    """Print the conversation sent again with the next message, e.g. to see what a stopped answer left in it."""
    if not session.messages:
        print("The conversation is empty.", flush=True)
    for message in session.messages:
        if message["role"] == "assistant":
            print("bot: " + message["content"], flush=True)
        else:
            *files, text = message["content"]
            files = [f"[{item['type']} {item['path']}]" for item in files]
            print("you: " + " ".join([*files, text["text"]]), flush=True)


def _error(message: str) -> None:
    sys.stdout.flush()  # keep the order of stdout and stderr on a terminal
    print(f"error: {message}", file=sys.stderr, flush=True)
