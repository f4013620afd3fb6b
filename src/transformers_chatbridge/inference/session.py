"""`chatbridge chat`: a multi-turn terminal chat with a ChatBridge model about images, videos and audio.

The whole conversation (media included) is sent again each turn, since the chat template renders the history and
the model has no memory of its own. Answers are streamed as they are generated, cut at the separator that ends them.
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers_chatbridge  # noqa: F401  (registers ChatBridge with the Auto classes)
from transformers import (
    AutoModelForMultimodalLM,
    AutoProcessor,
    BatchFeature,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from ..modalities import MODALITIES
from .quantization import quantization_kwargs



class MediaError(Exception):
    """A file of the turn could not be read: the user's mistake, reported in one line rather than a traceback."""


@dataclass
class Turn:
    """A user message and the model inputs of the whole conversation up to it (see `ChatSession.prepare`)."""

    user: dict
    inputs: BatchFeature


class ChatSession:
    """A conversation with one model: the messages so far and the files waiting for the next user turn."""

    def __init__(self, model, processor, max_new_tokens: int = 256, **generate_kwargs) -> None:
        self.model = model
        self.processor = processor
        self.generate_kwargs = {"max_new_tokens": max_new_tokens, **generate_kwargs}
        self.messages: list[dict] = []
        self.pending: list[dict] = []

    def attach(self, kind: str, path: str | Path) -> None:
        """Queue a file for the next user turn; a missing file is refused now rather than when the turn is sent."""
        if kind not in MODALITIES:
            raise ValueError(f"Unknown media kind {kind!r}; use one of {', '.join(MODALITIES)}.")
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        self.pending.append({"type": kind, "path": str(path)})

    def reset(self) -> None:
        """Start over: the model sees nothing of the earlier turns."""
        self.messages = []
        self.pending = []

    def prepare(self, text: str) -> Turn:
        """The user turn of `text` and the pending files, read by the processor with the conversation so far.

        Raises `MediaError` if a file cannot be read; the pending files are dropped either way, and the conversation
        is unchanged until the turn is answered with `stream`, so the user can simply try again.
        """
        user = {"role": "user", "content": [*self.pending, {"type": "text", "text": text}]}
        self.pending = []
        try:
            inputs = self.processor.apply_chat_template(
                [*self.messages, user], add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
            )
        except (ValueError, OSError) as error:
            raise MediaError(" ".join(str(error).split())) from error
        return Turn(user, inputs.to(self.model.device))

    def stream(self, turn: Turn) -> Iterator[str]:
        """Answer a prepared turn, yielding the text as it is generated, up to (not including) the separator.

        Generation runs in a background thread. The turn and its answer join the conversation once the answer is
        complete; an answer abandoned early (Ctrl-C, a closed web page) stops generating at the next token, which is
        waited for, so a next turn never runs beside it.
        """
        tokenizer = self.processor.tokenizer
        end = self.processor.response_end
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        abandoned = threading.Event()
        failures: list[BaseException] = []

        def generate() -> None:
            try:
                # stop_strings also stops at a separator that is more than one token (the config stops at one token).
                self.model.generate(
                    **turn.inputs, streamer=streamer, stop_strings=[end], tokenizer=tokenizer,
                    stopping_criteria=StoppingCriteriaList([_StopWhenSet(abandoned)]), **self.generate_kwargs
                )
            except BaseException as error:  # handed to the consumer, which would otherwise wait forever
                failures.append(error)
                streamer.end()

        thread = threading.Thread(target=generate, daemon=True)  # daemon: a Ctrl-C while it stops can still leave
        thread.start()
        received, shown, done = "", 0, False
        try:
            for chunk in streamer:
                if done:
                    continue  # drain what follows the separator
                received += chunk
                visible, done = _visible_answer(received, end)
                if len(visible) > shown:
                    yield visible[shown:]
                    shown = len(visible)
        finally:
            abandoned.set()  # a no-op once generation has ended
            thread.join()
        if failures:
            raise failures[0]
        if not done:  # stopped without a separator: show what was held back in case it began one
            visible = received.lstrip()
            if len(visible) > shown:
                yield visible[shown:]
        self.messages += [turn.user, {"role": "assistant", "content": visible.strip()}]

    def reply(self, text: str, write: Callable[[str], object]) -> str:
        """Answer `text` (with the pending files), passing answer chunks to `write` as they come; returns the answer.

        Raises `MediaError` if a file cannot be read: the turn is then left out of the conversation and its files
        are dropped, so the user can simply try again.

        Ctrl-C (KeyboardInterrupt, passed on) stops the answer, and the turn is kept with the part already written:
        the model then remembers what the user saw, so they can follow up on it ("go on", "shorter") instead of
        asking again, and `/reset` remains for a wrong start. A turn stopped before any of its answer was written is
        left out like a failed one: there is nothing to follow up on, and an empty answer would teach the model
        to give none.
        """
        turn = self.prepare(text)
        written = ""
        with closing(self.stream(turn)) as chunks:  # closing: generation stops at once even if `write` was interrupted
            try:
                for chunk in chunks:
                    written += chunk  # first: a Ctrl-C while `write` prints takes effect once the chunk is out
                    write(chunk)
            except KeyboardInterrupt:
                if written.strip():
                    self.messages += [turn.user, {"role": "assistant", "content": written.strip()}]
                raise
        return self.messages[-1]["content"]


class _StopWhenSet(StoppingCriteria):
    """Ends generation once `event` is set (from another thread)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def _visible_answer(text: str, end: str) -> tuple[str, bool]:
    """The answer so far that can be shown, and whether it is complete.

    It is cut at `end`; while `end` has not appeared, a tail that could be its beginning (a chunk ending in "#") is
    held back, so no part of the separator is ever printed. Leading space (after "Assistant:") is dropped.
    """
    text = text.lstrip()
    cut = text.find(end)
    if cut >= 0:
        return text[:cut], True
    for keep in range(min(len(end) - 1, len(text)), 0, -1):
        if text.endswith(end[:keep]):
            return text[:-keep], False
    return text, False


def load_model(path: str, device: str = "cpu", quantization: str | None = None) -> tuple:
    """The model (in eval mode, on `device`; `quantization` "4bit" or "8bit": its LLM quantized) and processor of a
    ChatBridge folder or Hub id."""
    model = AutoModelForMultimodalLM.from_pretrained(path, **quantization_kwargs(quantization)).to(device).eval()
    return model, AutoProcessor.from_pretrained(path)
