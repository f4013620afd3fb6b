"""`chatbridge chat`: real subprocesses (piped stdin and a pseudo-terminal, Ctrl-C as a real SIGINT) and
`ChatSession` in-process, on a tiny random model and small real media files. No mocks: the answers are the random
model's gibberish."""

import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForMultimodalLM, AutoProcessor, AutoTokenizer, GenerationConfig, LogitsProcessor, LogitsProcessorList,
)

from transformers_chatbridge.inference.session import ChatSession, MediaError, _visible_answer
from transformers_chatbridge.testing import tiny_chatbridge

from sample_media import write_sample_media

TIMEOUT = 120  # a hang fails the test instead of blocking the run


@pytest.fixture(scope="session")
def chat_dir(tmp_path_factory):
    """The tiny model and processor beside the sample media (see sample_media.py)."""
    folder = tmp_path_factory.mktemp("chat")
    # Seed 1's random answers hold spaces and whole UTF-8 characters, which a text streamer needs to flush mid-answer.
    tiny_chatbridge(save_dir=folder / "model", seed=1)
    write_sample_media(folder)
    return folder


@pytest.fixture(scope="module")
def endless_chat_dir(chat_dir, tmp_path_factory):
    """The chat's model with answers that never end by themselves (end of sequence and every token holding the
    separator's `#` suppressed): only Ctrl-C stops them, however far the previous answer went."""
    folder = tmp_path_factory.mktemp("endless")
    shutil.copytree(chat_dir, folder, dirs_exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(folder / "model")
    config = GenerationConfig.from_pretrained(folder / "model")
    ends = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
    vocabulary = tokenizer.get_vocab().items()
    hashes = [index for token, index in vocabulary if "#" in tokenizer.convert_tokens_to_string([token])]
    config.suppress_tokens = sorted({*ends, *hashes})
    config.save_pretrained(folder / "model")
    return folder


@pytest.fixture(scope="module")
def session_parts(chat_dir):
    model = AutoModelForMultimodalLM.from_pretrained(chat_dir / "model").eval()
    return model, AutoProcessor.from_pretrained(chat_dir / "model")


def chat_command(chat_dir, *extra):
    command = [sys.executable, "-m", "transformers_chatbridge.cli", "chat", "--model", str(chat_dir / "model")]
    return [*command, "--max-new-tokens", "8", *extra]


def run_chat(chat_dir, stdin, *extra):
    return subprocess.run(
        chat_command(chat_dir, *extra),
        input=stdin,
        cwd=chat_dir,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def test_piped_conversation_with_image_audio_and_video(chat_dir):
    stdin = "What is this?\n/audio tone.wav\nAnd this sound?\n/video clip.mp4\nWhat happens here?\n/quit\nnever read\n"
    result = run_chat(chat_dir, stdin, "--image", "red.png")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("bot> ") == 3
    assert "/image PATH" in result.stdout and "/quit" in result.stdout  # the banner lists the commands
    assert "Attached audio tone.wav" in result.stdout and "Attached video clip.mp4" in result.stdout
    assert "###" not in result.stdout
    assert "Traceback" not in result.stderr and "error:" not in result.stderr


def test_bad_and_missing_files_and_unknown_commands_are_reported_and_the_chat_goes_on(chat_dir):
    stdin = "\n".join(["/image notes.png", "What is this?", "/image missing.png", "/frobnicate now",
                       "/image red.png", "What about this one?"]) + "\n"  # ends without /quit: EOF
    result = run_chat(chat_dir, stdin)
    assert result.returncode == 0, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3, result.stderr
    assert "notes.png" in errors[0]
    assert "missing.png" in errors[1] and "frobnicate" in errors[2]
    assert "Attached image missing.png" not in result.stdout
    assert result.stdout.count("bot> ") == 1  # the failed turn got no answer, the retry did
    assert "Traceback" not in result.stderr


def test_missing_file_on_the_command_line_fails_before_loading(chat_dir):
    result = run_chat(chat_dir, "", "--audio", "missing.wav")
    assert result.returncode == 2
    assert "missing.wav" in result.stderr and "Traceback" not in result.stderr


class Terminal:
    """`chatbridge chat` on a pseudo-terminal, as a person runs it: prompts are shown, readline reads the lines, and
    Ctrl-C is a SIGINT. Every wait is bounded by TIMEOUT; leaving the `with` block kills a chat still running."""

    def __init__(self, chat_dir, *extra) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            chat_command(chat_dir, *extra), stdin=slave, stdout=slave, stderr=slave, cwd=chat_dir,
            env={**os.environ, "HF_HUB_OFFLINE": "1"}, preexec_fn=_catchable_sigint,
        )
        os.close(slave)
        self.output = b""
        self.position = 0  # where the last marker found ends

    def __enter__(self) -> "Terminal":
        return self

    def __exit__(self, *exc_info) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)

    def _read(self, deadline: float, waiting_for: str) -> bool:
        """Add what the chat wrote within a second to `output`; False once it has closed the terminal."""
        assert time.monotonic() < deadline, f"no {waiting_for} in {self.output[-2000:]!r}"
        if select.select([self.master], [], [], 1)[0]:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: the chat closed the terminal
                return False
            self.output += chunk
            return bool(chunk)
        return True

    def read_until(self, marker: bytes) -> bytes:
        """Read until `marker` appears after the previous one; returns the output between the two."""
        deadline = time.monotonic() + TIMEOUT
        while (found := self.output.find(marker, self.position)) < 0:
            assert self._read(deadline, repr(marker)), f"no {marker!r} before exit: {self.output[-2000:]!r}"
        between, self.position = self.output[self.position:found], found + len(marker)
        return between

    def read_answer(self, count: int) -> None:
        """Read until `count` bytes of an answer came after "bot> ": it is under way, and has not ended."""
        deadline = time.monotonic() + TIMEOUT
        while len(self.output) - self.position < count:
            assert self._read(deadline, f"{count} bytes"), f"exited early: {self.output[-2000:]!r}"
        assert b"you> " not in self.output[self.position:], f"the answer ended early: {self.output[-2000:]!r}"

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def ctrl_c(self) -> None:
        """After a pause: readline writes the prompt just before it waits for keys, and a SIGINT in that moment is
        only seen at the next key (a person is never that fast)."""
        time.sleep(0.3)
        self.process.send_signal(signal.SIGINT)

    def finish(self) -> int:
        """Read the rest of the output until the chat exits; returns its exit code."""
        deadline = time.monotonic() + TIMEOUT
        while self._read(deadline, "exit"):
            pass
        return self.process.wait(timeout=TIMEOUT)


def _catchable_sigint() -> None:
    """A chat started with SIGINT ignored (pytest run as a background job of a script) would never see Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used, all its threads together (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_a_terminal_session_streams_an_answer_and_quits(chat_dir):
    with Terminal(chat_dir, "--image", "red.png") as terminal:
        terminal.read_until(b"you> ")
        terminal.type("What is in the picture?")
        terminal.read_until(b"bot> ")
        terminal.read_until(b"you> ")  # the answer is complete and the next prompt is shown
        terminal.type("/quit")
        assert terminal.finish() == 0
    assert b"Traceback" not in terminal.output


def test_ctrl_c_stops_an_answer_and_the_conversation_goes_on_with_what_was_shown(endless_chat_dir):
    questions = ["What is this?", "Go on."]
    answers = []
    # 100000 tokens would take the tiny model over twenty minutes: each answer is still streaming when it is stopped.
    with Terminal(endless_chat_dir, "--max-new-tokens", "100000") as terminal:
        terminal.read_until(b"you> ")
        for question in questions:
            terminal.type(question)
            terminal.read_until(b"bot> ")
            terminal.read_answer(40)
            terminal.ctrl_c()
            answers.append(terminal.read_until(b"[answer stopped]").decode().strip())
            terminal.read_until(b"you> ")
            if len(answers) == 1:  # the generation thread stopped too: the chat idles at the prompt
                time.sleep(0.5)
                used = cpu_seconds(terminal.process.pid)
                time.sleep(1.5)
                assert cpu_seconds(terminal.process.pid) - used < 0.3
        terminal.type("/history")
        history = terminal.read_until(b"you> ").decode()
        terminal.type("/quit")
        assert terminal.finish() == 0
    assert all(answers)
    # Both turns are kept, each with its answer as far as it was shown (the pseudo-terminal writes \n as \r\n).
    turns = [f"you: {questions[0]}", f"bot: {answers[0]}", f"you: {questions[1]}", f"bot: {answers[1]}"]
    assert history.endswith("\r\n".join(turns) + "\r\n"), history
    assert b"Traceback" not in terminal.output


def test_ctrl_c_at_the_prompt_warns_and_a_second_one_in_a_row_leaves(chat_dir):
    hint = b"(press Ctrl-C again or type /quit to leave)"
    with Terminal(chat_dir) as terminal:
        terminal.read_until(b"you> ")
        terminal.type("Hello?")
        terminal.read_until(b"bot> ")
        terminal.read_until(b"you> ")
        terminal.ctrl_c()
        terminal.read_until(hint)
        terminal.read_until(b"you> ")
        terminal.type("/history")  # still chatting, with the conversation; and the next Ctrl-C is a first one again
        assert b"/history\r\nyou: Hello?\r\nbot: " in terminal.read_until(b"you> ")
        terminal.ctrl_c()
        terminal.read_until(hint)
        terminal.read_until(b"you> ")
        terminal.ctrl_c()
        assert terminal.finish() == 0
    assert terminal.output.count(hint) == 2
    assert b"Traceback" not in terminal.output


def test_reply_streams_chunks_and_keeps_the_conversation(chat_dir, session_parts):
    session = ChatSession(*session_parts, max_new_tokens=8, min_new_tokens=8)
    session.attach("image", chat_dir / "red.png")
    chunks = []
    answer = session.reply("What is this?", chunks.append)
    assert len(chunks) > 1  # streamed as generated, not printed at the end
    assert "".join(chunks).strip() == answer and "###" not in answer

    session.attach("audio", chat_dir / "tone.wav")
    session.reply("And this?", lambda chunk: None)
    assert [message["role"] for message in session.messages] == ["user", "assistant", "user", "assistant"]
    assert session.messages[0]["content"][0] == {"type": "image", "path": str(chat_dir / "red.png")}
    assert [item["type"] for item in session.messages[2]["content"]] == ["audio", "text"]
    assert session.messages[1]["content"] == answer and session.pending == []


def test_a_stopped_reply_stops_generating_and_keeps_the_turn_with_what_was_written(session_parts):
    session = ChatSession(*session_parts, max_new_tokens=3000)  # half a minute of answer (seed 1, this question)
    written = []

    def write(chunk: str) -> None:
        written.append(chunk)
        if len(written) == 3:
            raise KeyboardInterrupt  # as Ctrl-C while the third chunk is printed

    threads, start = threading.active_count(), time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        session.reply("What is this?", write)
    assert threading.active_count() == threads  # generation has ended, not running on in the background
    assert time.monotonic() - start < 10
    answer = "".join(written).strip()
    assert answer and session.messages == [
        {"role": "user", "content": [{"type": "text", "text": "What is this?"}]},
        {"role": "assistant", "content": answer},
    ]
    # The next turn's prompt holds the stopped answer, and that turn is answered in full.
    prompt = session.prepare("Go on.").inputs["input_ids"][0]
    assert answer in session.processor.tokenizer.decode(prompt)
    session.generate_kwargs["max_new_tokens"] = 4
    session.reply("Go on.", lambda chunk: None)
    assert [message["role"] for message in session.messages] == ["user", "assistant", "user", "assistant"]


class _CtrlCAtFirstToken(LogitsProcessor):
    """Sends the main thread a real SIGINT as the first answer token is chosen, before any text can be streamed."""

    def __init__(self) -> None:
        self.sent = False

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if not self.sent:
            self.sent = True
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        return scores


def test_a_reply_stopped_before_any_of_it_was_written_leaves_the_turn_out(session_parts):
    session = ChatSession(*session_parts, max_new_tokens=4)
    session.reply("Hi", lambda chunk: None)
    history, threads, written = list(session.messages), threading.active_count(), []
    session.generate_kwargs.update(max_new_tokens=3000, logits_processor=LogitsProcessorList([_CtrlCAtFirstToken()]))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C raises even if pytest ignores it
    try:
        with pytest.raises(KeyboardInterrupt):
            session.reply("What is this?", written.append)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert written == [] and session.messages == history and threading.active_count() == threads


def test_reset_forgets_the_conversation_and_pending_files(chat_dir, session_parts):
    session = ChatSession(*session_parts, max_new_tokens=4)
    session.attach("image", chat_dir / "red.png")
    session.reply("What is this?", lambda chunk: None)
    session.attach("video", chat_dir / "clip.mp4")
    session.reset()
    assert session.messages == [] and session.pending == []
    session.reply("Hello?", lambda chunk: None)
    assert session.messages[0] == {"role": "user", "content": [{"type": "text", "text": "Hello?"}]}
    assert len(session.messages) == 2


def test_a_turn_with_an_unreadable_file_is_dropped(chat_dir, session_parts):
    session = ChatSession(*session_parts, max_new_tokens=4)
    session.reply("Hi", lambda chunk: None)
    history = list(session.messages)
    session.attach("image", chat_dir / "notes.png")
    with pytest.raises(MediaError, match="notes.png"):
        session.reply("What is this?", lambda chunk: None)
    assert session.messages == history and session.pending == []
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        session.attach("audio", chat_dir / "missing.wav")
    assert session.pending == []


def test_the_separator_is_never_shown_even_when_split_across_chunks():
    assert _visible_answer(" A red", "###") == ("A red", False)
    assert _visible_answer(" A red#", "###") == ("A red", False)  # may begin the separator: held back
    assert _visible_answer(" A red##", "###") == ("A red", False)
    assert _visible_answer(" A red#!", "###") == ("A red#!", False)  # it did not
    assert _visible_answer(" A red###Human: more", "###") == ("A red", True)
