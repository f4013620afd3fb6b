"""Fixtures of the vLLM tests: a tiny ChatBridge that vLLM's CPU attention can run, media, transformers' answers.

These tests run in `.venv-vllm` (`make test-vllm`), where vLLM and its torch live; the project's own environment has
no vLLM, so each test module skips itself there. Nothing here imports vLLM at module level.
"""

import os
import sys
from pathlib import Path

# The engine in this process (start-up in seconds, not tens of seconds) and a small KV cache: the machine is small.
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent.parent))  # tests/: sample_media
from sample_media import write_mp4, write_tone  # noqa: E402
from vllm_cases import (  # noqa: E402
    CASES,
    CHAT_CASES,
    CHAT_FILES,
    MAX_NEW_TOKENS,
    PROMPTS,
    Reference,
    audio_rate,
    case_media,
    chat_messages,
    make_media,
    vllm_tiny_chatbridge,
)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("vllm-tiny-chatbridge")
    vllm_tiny_chatbridge(path)
    return path


@pytest.fixture(scope="session")
def media():
    return make_media()


@pytest.fixture(scope="session")
def media_files(tmp_path_factory, media):
    """The files the server test sends, by modality: a PNG, an H.264 mp4 and a PCM16 WAV."""
    folder = tmp_path_factory.mktemp("vllm-media")
    media["image"].save(folder / CHAT_FILES["image"])
    write_mp4(folder / CHAT_FILES["video"])
    write_tone(folder / CHAT_FILES["audio"])
    return {modality: folder / name for modality, name in CHAT_FILES.items()}


def _greedy_reference(model, inputs) -> Reference:
    with torch.no_grad():
        output = model.generate(
            **inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, output_logits=True, return_dict_in_generate=True
        )
    prompt_ids = inputs["input_ids"][0].tolist()
    answer_ids = output.sequences[0, len(prompt_ids) :].tolist()
    logprobs = [torch.log_softmax(step[0].float(), -1)[token].item() for step, token in zip(output.logits, answer_ids)]
    return Reference(prompt_ids, answer_ids, logprobs)


@pytest.fixture(scope="session")
def references(model_dir, media, media_files):
    """transformers' prompt ids and greedy answer per case, and per chat case ("chat-<case>").

    Computed before any vLLM engine exists in this process: an in-process engine wraps transformers' decoder classes
    for its compiler, after which they cannot be built outside it.
    """
    from transformers import AutoModelForMultimodalLM, AutoProcessor

    model = AutoModelForMultimodalLM.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    answers = {}
    for case in CASES:
        items = case_media(case, media)
        kwargs = {}
        if "image" in items:
            kwargs["images"] = [items["image"]]
        if "video" in items:
            kwargs["videos"] = [items["video"]]
        if "audio" in items:
            kwargs.update(audio=[items["audio"]], sampling_rate=audio_rate(case))
        answers[case] = _greedy_reference(model, processor(text=[PROMPTS[case]], return_tensors="pt", **kwargs))
    for case in CHAT_CASES:
        inputs = processor.apply_chat_template(
            chat_messages(case, media_files),
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
        )
        answers[f"chat-{case}"] = _greedy_reference(model, inputs)
    return answers


@pytest.fixture(scope="session")
def llm(model_dir, references):
    from vllm import LLM
    from vllm_cases import ENGINE_ARGS

    engine = LLM(model=str(model_dir), limit_mm_per_prompt={"image": 1, "video": 1, "audio": 1}, **ENGINE_ARGS)
    yield engine
    del engine
