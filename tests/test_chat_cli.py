"""`chatbridge chat`: real subprocesses (piped stdin and a pseudo-terminal) and `ChatSession` in-process, on a tiny
random model and small real media files. No mocks: the answers are the random model's gibberish."""

import os
import pty
import select
import subprocess
import sys
import time

import pytest
from transformers import AutoModelForMultimodalLM, AutoProcessor

from transformers_chatbridge.chat import ChatSession, MediaError, _visible_answer
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


def test_a_terminal_session_streams_an_answer_and_quits(chat_dir):
    master, slave = pty.openpty()
    process = subprocess.Popen(
        chat_command(chat_dir, "--image", "red.png"),
        stdin=slave, stdout=slave, stderr=slave, cwd=chat_dir, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    os.close(slave)
    output = b""

    def read_until(marker: bytes, start: int) -> int:
        """Read the terminal until `marker` appears after byte `start`; returns where it ends."""
        nonlocal output
        deadline = time.monotonic() + TIMEOUT
        while (found := output.find(marker, start)) < 0:
            assert time.monotonic() < deadline, f"no {marker!r} in {output[-2000:]!r}"
            if select.select([master], [], [], 1)[0]:
                try:
                    output += os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    assert False, f"no {marker!r} before exit: {output[-2000:]!r}"
        return found + len(marker)

    try:
        position = read_until(b"you> ", 0)
        os.write(master, b"What is in the picture?\n")
        position = read_until(b"bot> ", position)
        read_until(b"you> ", position)  # the answer is complete and the next prompt is shown
        os.write(master, b"/quit\n")
        assert process.wait(timeout=TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    assert b"Traceback" not in output


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
