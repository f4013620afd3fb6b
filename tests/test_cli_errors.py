"""Mistakes on the `chatbridge` command line end in one line naming the setting, before any model loads."""

import os
import subprocess
import sys

import pytest

from transformers_chatbridge.testing import tiny_chatbridge


def chatbridge(*arguments: str, prelude: str = "pass") -> subprocess.CompletedProcess:
    code = f"{prelude}; from transformers_chatbridge.cli import main; main({list(arguments)!r})"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def assert_one_line_error(done: subprocess.CompletedProcess, message: str):
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert message in done.stderr.strip().splitlines()[-1], done.stderr


@pytest.mark.parametrize(
    ("command", "extra"),
    [("chat", []), ("generate", ["--input", "questions.jsonl", "--output", "answers.jsonl"]),
     ("eval", ["--task", "miniature", "--data-dir", "world"])],
)
def test_a_missing_model_folder_is_named(tmp_path, command, extra):
    missing = str(tmp_path / "runs" / "stage2" / "out")
    done = chatbridge(command, "--model", missing, *extra)
    assert_one_line_error(done, f"chatbridge {command}: error: --model {missing}: no such folder (and not a Hub id)")


def test_a_missing_folder_that_reads_as_a_hub_id_is_named_offline(tmp_path):
    """`runs/stage2` is also a valid Hub id: offline, with no such model in the cache, it is named as missing (it
    ended in a connection-error traceback)."""
    done = subprocess.run([sys.executable, "-m", "transformers_chatbridge.cli", "chat", "--model", "runs/stage2"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert_one_line_error(done, "--model runs/stage2: no such folder, and no Hub model of that name in the cache")


def test_a_folder_without_a_model_is_named(tmp_path):
    done = chatbridge("chat", "--model", str(tmp_path))
    assert_one_line_error(done, f"--model {tmp_path}: the folder holds no config.json (not a saved model)")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_a_device_the_machine_lacks_is_named(tmp_path):
    tiny_chatbridge(save_dir=tmp_path)
    done = chatbridge("chat", "--model", str(tmp_path), "--device", "cuda")
    assert_one_line_error(done, "chatbridge chat: error: --device cuda: this machine has no cuda device (use --device cpu)")
    done = chatbridge("chat", "--model", str(tmp_path), "--device", "gpu0")
    assert_one_line_error(done, "--device gpu0: not a torch device")


def test_a_missing_extra_names_the_pip_extra(tmp_path):
    tiny_chatbridge(save_dir=tmp_path)
    done = chatbridge("serve", "--model", str(tmp_path), prelude="import sys; sys.modules['gradio'] = None")
    assert_one_line_error(done, "chatbridge serve: error: needs gradio: pip install 'transformers-chatbridge[serve]'")


@pytest.mark.parametrize("value", ["-1", "lots", "nan"])
def test_a_negative_or_unreadable_cache_size_is_named(tmp_path, value):
    done = chatbridge("eval", "--model", str(tmp_path), "--task", "miniature", "--data-dir", str(tmp_path),
                      "--media-cache-gib", value)  # fmt: skip
    assert_one_line_error(done, f"argument --media-cache-gib: must be a number of at least 0, got {value!r}")
