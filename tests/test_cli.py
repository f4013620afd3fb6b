"""The `chatbridge` console script, run as a real subprocess."""

import os
import subprocess
import sys

from PIL import Image


def test_demo_answers_a_question_about_a_generated_image(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "transformers_chatbridge.cli", "demo", "--out", str(out), "--question", "Which shape?"],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "tiny RANDOM ChatBridge" in result.stdout
    assert "Asked: Which shape?" in result.stdout
    assert "Answer of the random model" in result.stdout
    assert Image.open(out / "shape.png").size == (96, 96)
    assert (out / "tiny-chatbridge" / "model.safetensors").exists()
