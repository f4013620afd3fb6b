"""Tests run offline, with the Hugging Face cache in a temporary folder, on tiny random models built here."""

import os
import shutil
import tempfile

_HF_HOME = tempfile.mkdtemp(prefix="chatbridge-tests-hf-home-")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from transformers_chatbridge.testing import tiny_chatbridge  # noqa: E402


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_HF_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny():
    """One tiny model and processor shared by read-only tests (in eval mode, never modified)."""
    return tiny_chatbridge()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, tiny):
    path = tmp_path_factory.mktemp("tiny-chatbridge")
    model, processor = tiny
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
