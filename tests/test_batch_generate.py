"""`chatbridge generate`: real subprocesses on a tiny random model and small real media files, no mocks.

The answers are the random model's gibberish; what is checked is the bookkeeping: one output line per input line, in
order, errors that name their line, answers equal to the pipeline's, and resuming after a kill without duplicates.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from transformers import pipeline

import transformers_chatbridge  # noqa: F401  (registers the "chatbridge" task)
from transformers_chatbridge.testing import tiny_chatbridge

from sample_media import write_sample_media

TIMEOUT = 120  # a hang fails the test instead of blocking the run
MAX_NEW_TOKENS = 8


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The tiny model in model/, beside the sample media (see sample_media.py)."""
    folder = tmp_path_factory.mktemp("batch-generate")
    tiny_chatbridge(save_dir=folder / "model")
    write_sample_media(folder)
    return folder


def command(folder, questions, answers, *extra):
    return [
        sys.executable, "-m", "transformers_chatbridge.cli", "generate", "--model", str(folder / "model"),
        "--input", str(questions), "--output", str(answers), *extra,
    ]  # fmt: skip


def generate(folder, questions, answers, *extra) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(folder, questions, answers, *extra),
        cwd=questions.parent.parent,  # media paths must resolve against the input's folder, not the working dir
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def write_lines(path, lines: list) -> None:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))


def read_records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


CHAT = [{"role": "user", "content": [{"type": "image", "path": "red.png"}, {"type": "text", "text": "What is it?"}]}]
MIXED = [
    {"id": "image", "text": "What is in the picture?", "images": "red.png"},
    {"id": "video", "text": "What happens?", "videos": "clip.mp4"},
    '{"id": "broken", "text": "no closing brace"',
    {"id": "audio", "text": "What sound is it?", "audio": "tone.wav"},
    {"id": "corrupt", "text": "And this one?", "images": "notes.png"},  # shares a batch with good lines
    {"id": "chat", "messages": CHAT},
    {"id": "both", "text": "Describe both.", "images": ["red.png"], "audio": "tone.wav"},
    {"id": "typo", "text": "What is it?", "picture": "red.png"},  # would be answered without its picture
]


@pytest.fixture(scope="module")
def mixed_run(folder):
    questions = folder / "questions.jsonl"
    write_lines(questions, MIXED)
    answers = folder / "out" / "answers.jsonl"
    result = generate(folder, questions, answers, "--batch-size", "3", "--max-new-tokens", str(MAX_NEW_TOKENS))
    return result, answers


def test_one_line_per_input_line_with_errors_in_place(mixed_run):
    result, answers = mixed_run
    assert result.returncode == 0, result.stderr[-3000:]
    records = read_records(answers)
    assert [record["line"] for record in records] == list(range(1, len(MIXED) + 1))
    assert [record["id"] for record in records] == ["image", "video", None, "audio", "corrupt", "chat", "both", "typo"]
    errors = {record["line"]: record["error"] for record in records if "error" in record}
    assert set(errors) == {3, 5, 8}
    assert "line 3" in errors[3] and "JSON" in errors[3]
    assert "line 5" in errors[5] and "notes.png" in errors[5]
    assert errors[8].startswith("line 8: unknown key(s) 'picture'; a line holds \"text\", \"id\" and media under")
    assert all(isinstance(record.get("generated_text"), str) for record in records if record["line"] not in errors)
    assert "5 answered, 3 errors, 0 skipped" in result.stdout
    assert "8/8" in result.stderr  # the progress bar


def test_answers_equal_the_pipeline_in_process(folder, mixed_run):
    _, answers = mixed_run
    pipe = pipeline("chatbridge", model=str(folder / "model"))
    settings = {"max_new_tokens": MAX_NEW_TOKENS, "return_full_text": False}
    chat = [{**CHAT[0], "content": [{"type": "image", "path": str(folder / "red.png")}, CHAT[0]["content"][1]]}]
    expected = {
        1: pipe({"text": "What is in the picture?", "images": str(folder / "red.png")}, **settings),
        2: pipe({"text": "What happens?", "videos": str(folder / "clip.mp4")}, **settings),
        4: pipe({"text": "What sound is it?", "audio": str(folder / "tone.wav")}, **settings),
        6: pipe(text=chat, **settings),
        7: pipe({"text": "Describe both.", "images": str(folder / "red.png"), "audio": str(folder / "tone.wav")},
                **settings),
    }
    records = read_records(answers)
    answered = {record["line"]: record["generated_text"] for record in records if "generated_text" in record}
    assert answered == {line: result[0]["generated_text"] for line, result in expected.items()}


def complete_lines(path) -> list[str]:
    if not path.exists():
        return []
    text = path.read_text()
    return text[: text.rfind("\n") + 1].splitlines()


def test_an_interrupted_run_resumes_without_duplicates(folder, tmp_path):
    questions = tmp_path / "questions" / "many.jsonl"
    questions.parent.mkdir()
    (questions.parent / "red.png").write_bytes((folder / "red.png").read_bytes())
    total = 12
    lines = [{"id": f"q{n}", "text": f"Question {n}: what is it?", "images": "red.png"} for n in range(1, total + 1)]
    write_lines(questions, lines)
    answers = tmp_path / "answers.jsonl"
    slow = ("--batch-size", "1", "--max-new-tokens", "128")  # long answers, so the run is still going when killed
    process = subprocess.Popen(
        command(folder, questions, answers, *slow),
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while len(complete_lines(answers)) < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    before = complete_lines(answers)
    assert 2 <= len(before) < total, f"the run must be killed part way, {len(before)} lines were written"
    with open(answers, "a") as file:
        file.write('{"line": 9')  # a torn write

    result = generate(folder, questions, answers, *slow)
    assert result.returncode == 0, result.stderr[-3000:]
    after = complete_lines(answers)
    assert answers.read_text().endswith("\n")
    assert after[: len(before)] == before
    records = [json.loads(line) for line in after]
    assert [record["line"] for record in records] == list(range(1, total + 1))
    assert [record["id"] for record in records] == [f"q{n}" for n in range(1, total + 1)]
    assert all("generated_text" in record for record in records)
    assert f"{total - len(before)} answered, 0 errors, {len(before)} skipped" in result.stdout

    again = generate(folder, questions, answers, *slow)  # nothing left to do
    assert again.returncode == 0 and f"0 answered, 0 errors, {total} skipped" in again.stdout
    assert complete_lines(answers) == after


def test_output_longer_than_input_is_refused(folder, tmp_path):
    (tmp_path / "in").mkdir()
    questions = tmp_path / "in" / "questions.jsonl"
    write_lines(questions, [{"text": "One?"}, {"text": "Two?"}])
    answers = tmp_path / "answers.jsonl"
    assert generate(folder, questions, answers, "--max-new-tokens", "2").returncode == 0
    with open(answers, "a") as file:
        file.write(json.dumps({"line": 3, "id": None, "generated_text": "x"}) + "\n")
    original = answers.read_text()
    result = generate(folder, questions, answers, "--max-new-tokens", "2")
    assert result.returncode == 2
    assert "has 3 lines but the input has only 2" in result.stderr
    assert answers.read_text() == original


def test_a_file_this_command_did_not_write_is_neither_continued_nor_cut(folder, tmp_path):
    (tmp_path / "in").mkdir()
    questions = tmp_path / "in" / "questions.jsonl"
    write_lines(questions, [{"text": "One?"}])
    results = tmp_path / "results.json"
    results.write_text('{"metrics": {"cider": 0.5}}')  # one line, no newline: once cut to 0 bytes
    done = generate(folder, questions, results)
    assert done.returncode == 2 and "exists but no results.json.run.json says `chatbridge generate` wrote it" in done.stderr
    assert results.read_text() == '{"metrics": {"cider": 0.5}}'


def test_a_rerun_with_other_settings_is_refused_and_overwrite_starts_afresh(folder, tmp_path):
    (tmp_path / "in").mkdir()
    first, second = tmp_path / "in" / "first.jsonl", tmp_path / "in" / "second.jsonl"
    write_lines(first, [{"text": "One?"}, {"text": "Two?"}])
    write_lines(second, [{"text": "Three?"}, {"text": "Four?"}])
    answers = tmp_path / "answers.jsonl"
    assert generate(folder, first, answers, "--max-new-tokens", "2").returncode == 0
    kept = answers.read_text()
    other_input = generate(folder, second, answers, "--max-new-tokens", "2")
    assert other_input.returncode == 2 and f"input: was '{first}', now '{second}'" in other_input.stderr
    other_length = generate(folder, first, answers, "--max-new-tokens", "3")
    assert other_length.returncode == 2 and "max_new_tokens: was 2, now 3" in other_length.stderr
    assert answers.read_text() == kept
    replaced = generate(folder, second, answers, "--max-new-tokens", "2", "--overwrite")
    assert replaced.returncode == 0 and "2 answered, 0 errors, 0 skipped" in replaced.stdout
    assert json.loads((tmp_path / "answers.jsonl.run.json").read_text())["input"] == str(second)
