"""`chatbridge serve`: a web chat with a ChatBridge model about images, videos and audio (Gradio).

Each browser tab is its own conversation (Gradio session state holds its messages) and the turns of all tabs go
through Gradio's queue, so tabs can chat at once without mixing. A turn reuses the terminal chat's `ChatSession`:
the processor reads the whole conversation with its media, and the answer streams in as it is generated. A file
the processor cannot read is reported in the page and the turn is dropped; the conversation goes on.

Nothing reaches the network: no share link, no analytics, system fonts instead of web fonts.

Limits, for a page others can reach: the server refuses uploads larger than `--max-file-size`, and turns beyond
`--max-queue` waiting ones ("queue full") rather than queueing them forever. Uploads live in Gradio's cache folder
(GRADIO_TEMP_DIR, by default /tmp/gradio) for 70 minutes at most: `CACHE_CLEANUP` deletes the ones older than an
hour every 10 minutes, and stopping the server (Ctrl-C or SIGTERM) deletes them all. The server sends no file but
uploads and the media of the chosen examples, which Gradio copies into its cache (for good) when the page is built:
nothing else of the `--examples` folder (its answers, its Parquet files) can be downloaded. `--auth USER:PASSWORD`
asks for a login first; over plain HTTP the password crosses the network readable, so put HTTPS (a reverse proxy)
in front of a page that leaves the machine.
"""

import argparse
import logging
import mimetypes
import os
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from transformers import BatchFeature, PreTrainedModel, ProcessorMixin

from ..inference.session import ChatSession, MediaError, load_model
from ..modalities import MODALITIES
from .arguments import add_quantization_arguments, positive_int

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported, which reads it

import gradio as gr  # noqa: E402

logger = logging.getLogger(__name__)

CACHE_CLEANUP = (600, 3600)  # Gradio's delete_cache: every 10 minutes, delete the uploads older than an hour


def media_kind(path: str) -> str:
    """"image", "video" or "audio", from the file's name (its content is checked when the processor reads it)."""
    mime, _ = mimetypes.guess_type(path)
    kind = (mime or "").split("/")[0]
    if kind not in MODALITIES:
        raise MediaError(f"{path} is not an image, a video or an audio file ({mime or 'unknown type'})")
    return kind


def generation_settings(max_new_tokens: float, temperature: float) -> dict:
    """Generation arguments of the page's settings; temperature 0 means greedy decoding."""
    if temperature > 0:
        return {"max_new_tokens": int(max_new_tokens), "do_sample": True, "temperature": float(temperature)}
    return {"max_new_tokens": int(max_new_tokens), "do_sample": False}


def miniature_examples(directory: str | Path, per_modality: int = 2) -> list[dict]:
    """Single-question rows of the miniature world's test split, `per_modality` instances of each modality, as
    values of the chat input: {"text": question, "files": [media paths]}."""
    from ..data.miniature import MODALITIES as MINIATURE_MODALITIES
    from ..data.miniature import load_miniature

    examples, counts, seen = [], dict.fromkeys(MINIATURE_MODALITIES, 0), set()
    for row in load_miniature(directory)["test"]:
        modality = row["modality"]
        single_question = row["stage"] == 2 and len(row["messages"]) == 2
        if not single_question or row["instance"] in seen or counts[modality] >= per_modality:
            continue
        question = " ".join(item["text"] for item in row["messages"][0]["content"] if item["type"] == "text")
        examples.append({"text": question, "files": [*row["images"], *row["videos"], *row["audios"]]})
        counts[modality] += 1
        seen.add(row["instance"])
    return examples


def _assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def describe(inputs: BatchFeature) -> str:
    """What the model receives for a turn: its media items (from the processor's tensors) and prompt length."""
    counts = {
        "image": inputs["pixel_values"].shape[0] if "pixel_values" in inputs else 0,
        "video": inputs["pixel_values_videos"].shape[0] if "pixel_values_videos" in inputs else 0,
        "audio": inputs["input_features"].shape[0] if "input_features" in inputs else 0,
    }
    media = ", ".join(f"{kind} {count}" for kind, count in counts.items())
    return f"media: {media}; {inputs['input_ids'].shape[1]} prompt tokens"


def build_app(
    model: PreTrainedModel, processor: ProcessorMixin, title: str, max_new_tokens: int = 256,
    examples: list[dict] | None = None,
) -> gr.Blocks:
    """The chat page for one loaded model; `examples` (chat input values) fill the gallery below the chat."""

    def respond(message: dict, display: list, messages: list, max_tokens: float, temperature: float,
                request: gr.Request) -> Iterator[tuple]:
        """One turn: show the question, stream the answer, then keep the turn in this tab's conversation.

        Outputs: the input box, the chat display, this tab's conversation. Problems are warnings (toasts) rather
        than errors, which would cover the page until dismissed; the input keeps the message so it can be fixed.
        """
        text, files = message["text"].strip(), message["files"]
        session = ChatSession(model, processor, **generation_settings(max_tokens, temperature))
        session.messages = list(messages)
        problem = "" if text else "Type a question to go with your files"
        if text:
            try:
                for path in files:
                    session.attach(media_kind(path), path)
                turn = session.prepare(text)
            except (MediaError, FileNotFoundError) as error:
                problem = str(error).rstrip(".")
                for path in files:  # uploads live in a temporary folder; the user knows the file by its name
                    problem = problem.replace(path, Path(path).name)
        if problem:
            logger.warning("session %s: %s", request.session_hash, problem)
            gr.Warning(f"{problem}. Nothing was sent: fix the message and send it again.")
            yield gr.skip(), gr.skip(), gr.skip()
            return
        logger.info("session %s, turn %d: %s", request.session_hash, len(messages) // 2 + 1, describe(turn.inputs))

        shown = [*display, {"role": "user", "content": [*({"path": path} for path in files), text]}]
        answer = ""
        yield gr.MultimodalTextbox(value=None, interactive=False), [*shown, _assistant(answer)], gr.skip()
        try:
            for chunk in session.stream(turn):
                answer += chunk
                yield gr.skip(), [*shown, _assistant(answer)], gr.skip()
        except Exception as error:  # e.g. out of memory: the turn is dropped and the page says why
            logger.exception("session %s: generation failed", request.session_hash)
            gr.Warning(f"Generation failed: {error}")
            yield gr.MultimodalTextbox(value=message, interactive=True), display, gr.skip()
            return
        answer = session.messages[-1]["content"]
        yield gr.MultimodalTextbox(interactive=True), [*shown, _assistant(answer)], session.messages

    with gr.Blocks(title=title, delete_cache=CACHE_CLEANUP) as app:
        gr.Markdown(
            f"## ChatBridge: {title}\nUpload or record an image, a video or an audio clip, ask about it, and keep "
            "asking: the model sees the whole conversation. Each browser tab is its own conversation."
        )
        messages = gr.State([])  # this tab's conversation in the processor's chat format
        chatbot = gr.Chatbot(label="Conversation", elem_id="chat", height=440, buttons=["copy"])
        textbox = gr.MultimodalTextbox(
            elem_id="chat-input", show_label=False, file_count="multiple", file_types=["image", "video", "audio"],
            sources=["upload", "microphone"], placeholder="Ask about an image, a video or an audio clip...",
        )
        with gr.Row(equal_height=True):
            with gr.Accordion("Generation settings", open=False):
                max_tokens = gr.Slider(1, 1024, value=max_new_tokens, step=1, label="Max new tokens")
                temperature = gr.Slider(0.0, 2.0, value=0.0, step=0.05, label="Temperature (0: greedy)")
            clear = gr.Button("Clear", elem_id="clear", variant="secondary", scale=0, min_width=140)
        if examples:
            gr.Examples([[example] for example in examples], inputs=[textbox], label="Miniature world examples")

        answering = textbox.submit(
            respond, [textbox, chatbot, messages, max_tokens, temperature], [textbox, chatbot, messages]
        )
        # The chat's own trash icon clears the display only: both also forget the conversation and stop an answer.
        clear.click(
            lambda: (gr.MultimodalTextbox(value=None, interactive=True), [], []), None, [textbox, chatbot, messages],
            cancels=[answering], queue=False,
        )
        chatbot.clear(lambda: [], None, messages, cancels=[answering], queue=False)
    return app


def file_size(value: str) -> str:
    """A --max-file-size in the form Gradio's `launch(max_file_size=...)` reads, checked now rather than at launch."""
    if not re.fullmatch(r"[1-9][0-9]*(b|kb|mb|gb)", value.strip().lower()):
        raise argparse.ArgumentTypeError(f"{value!r} is not a size such as 500kb, 200mb or 2gb")
    return value.strip().lower()


def credentials(value: str) -> tuple[str, str]:
    """USER:PASSWORD of --auth, split at the first colon (the password may hold colons); never echoed back."""
    user, colon, password = value.partition(":")
    if not (user.strip() and colon and password):
        raise argparse.ArgumentTypeError("expected USER:PASSWORD, e.g. --auth alice:secret")
    return user.strip(), password


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="Folder (or Hub id) of a ChatBridge model and its processor.")
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (0.0.0.0: every interface).")
    parser.add_argument("--port", type=int, default=7860, help="Port to listen on.")
    parser.add_argument(
        "--examples", metavar="DIR", help="A miniature world folder (`chatbridge data miniature --out DIR`): a few of "
        "its test questions per modality become clickable examples.",
    )
    parser.add_argument("--max-new-tokens", type=int, default=256, help="Initial longest answer, in tokens.")
    parser.add_argument("--concurrency", type=positive_int, default=1,
                        help="Answers generated at once; more wait in a queue.")
    parser.add_argument("--max-queue", type=positive_int, default=32, metavar="N",
                        help="Turns that may wait in the queue; more are refused with 'queue full' (default 32).")
    parser.add_argument("--max-file-size", type=file_size, default="200mb", metavar="SIZE",
                        help="Largest upload, e.g. 500kb, 200mb, 2gb (1 kb = 1024 bytes); the server refuses bigger "
                        "ones (default 200mb).")
    parser.add_argument("--auth", type=credentials, metavar="USER:PASSWORD",
                        help="Ask for this login before the page or its API can be used. Other users of this machine "
                        "can see the command line, password included.")
    parser.add_argument("--device", default="cpu", help="Torch device for the model, e.g. cpu, cuda, cuda:1, mps.")
    add_quantization_arguments(parser)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)  # one line per turn; other libraries keep their default level
    if args.examples and not (Path(args.examples) / "ground_truth.json").is_file():  # before the (slow) model load
        print(f"error: {args.examples} is not a miniature world folder (no ground_truth.json); make one with "
              f"`chatbridge data miniature --out {args.examples}`", file=sys.stderr)
        return 2
    examples = miniature_examples(args.examples) if args.examples else None
    model, processor = load_model(args.model, args.device, args.quantization)
    app = build_app(model, processor, title=Path(args.model).name or args.model, max_new_tokens=args.max_new_tokens,
                    examples=examples)
    app.queue(default_concurrency_limit=args.concurrency, max_size=args.max_queue)
    system_fonts = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                                     font_mono=["ui-monospace", "monospace"])
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop as on Ctrl-C, which deletes the uploads
    # No allowed_paths: the examples' media were copied into Gradio's cache by build_app, and only it is served.
    app.launch(server_name=args.host, server_port=args.port, share=False, ssr_mode=False, theme=system_fonts,
               max_file_size=args.max_file_size, auth=args.auth, footer_links=[])
    return 0
