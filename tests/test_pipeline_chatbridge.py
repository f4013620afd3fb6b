"""pipeline("chatbridge") and transformers' own multimodal pipelines on the tiny model, with real media files."""

import os
import subprocess
import sys
import textwrap

import pytest
from transformers import pipeline

import transformers_chatbridge  # noqa: F401  (registers the "chatbridge" task)
from transformers_chatbridge import ChatBridgePipeline

from sample_media import write_sample_media

SETTINGS = {"max_new_tokens": 5, "return_full_text": False}


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return write_sample_media(tmp_path_factory.mktemp("pipeline-media"))


@pytest.fixture(scope="module")
def pipe(tiny_dir):
    return pipeline("chatbridge", model=str(tiny_dir))


def answer(result) -> str:
    (record,) = result
    return record["generated_text"]


def test_task_resolves_to_the_chatbridge_pipeline(pipe):
    assert isinstance(pipe, ChatBridgePipeline)


@pytest.mark.parametrize("modality", ["images", "videos", "audio"])
def test_one_question_per_modality(pipe, media, modality):
    source = {"images": "red.png", "videos": "clip.mp4", "audio": "tone.wav"}[modality]
    result = pipe(text="What is it?", **{modality: str(media / source)}, **SETTINGS)
    assert result[0]["input_text"] == "What is it?"
    assert isinstance(answer(result), str) and "###" not in answer(result)


def test_media_change_the_answer(pipe, media):
    red = pipe(text="What colour?", images=str(media / "red.png"), max_new_tokens=8, min_new_tokens=8)
    audio = pipe(text="What colour?", audio=str(media / "tone.wav"), max_new_tokens=8, min_new_tokens=8)
    assert answer(red) != answer(audio)


def test_full_text_starts_with_the_question(pipe, media):
    result = pipe(text="What is it?", images=str(media / "red.png"), max_new_tokens=3)
    assert answer(result).startswith("What is it?")


def test_batch_of_mixed_inputs_matches_each_input_alone(pipe, media):
    inputs = [
        {"text": "Describe it.", "images": str(media / "red.png")},
        {"text": "And this?", "videos": str(media / "clip.mp4")},
        {"text": "What sound?", "audio": str(media / "tone.wav")},
        {"text": "Both?", "videos": str(media / "clip.mp4"), "audio": str(media / "tone.wav")},
        {"text": "Two images?", "images": [str(media / "red.png"), str(media / "blue.png")]},
        {"text": "No media at all."},
    ]
    batch_sizes = []
    hook = pipe.model.model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: batch_sizes.append(kwargs["inputs_embeds"].shape[0]), with_kwargs=True
    )
    try:
        batched = pipe(inputs, batch_size=8, **SETTINGS)
    finally:
        hook.remove()
    assert set(batch_sizes) == {len(inputs)}, "one generate call for the whole batch"
    alone = [answer(pipe(item, **SETTINGS)) for item in inputs]
    assert [answer(result) for result in batched] == alone


def test_list_of_questions_pairs_with_media(pipe, media):
    images = [str(media / "red.png"), str(media / "blue.png")]
    results = pipe(["First?", "Second?"], images=images, batch_size=2, **SETTINGS)
    assert [result[0]["input_text"] for result in results] == ["First?", "Second?"]
    with pytest.raises(ValueError, match="`images` must be a list of 2 items"):
        pipe(["First?", "Second?"], images=images[:1])


def test_chat_messages_return_the_conversation(pipe, media):
    chat = [
        {
            "role": "user",
            "content": [{"type": "image", "path": str(media / "red.png")}, {"type": "text", "text": "What is it?"}],
        }
    ]
    (record,) = pipe(text=chat, max_new_tokens=4)
    assert record["generated_text"][:-1] == chat
    assert record["generated_text"][-1]["role"] == "assistant"
    chats = pipe(text=[chat, chat], batch_size=2, **SETTINGS)
    assert len(chats) == 2 and answer(chats[0]) == answer(chats[1])


def test_marker_prompts_are_used_as_written(pipe, media):
    prompt = "###Human: Given following image: <image>.###Human: What is it?###Assistant:"
    marked = pipe(prompt, images=str(media / "red.png"), **SETTINGS)
    plain = pipe("What is it?", images=str(media / "red.png"), **SETTINGS)
    assert answer(marked) == answer(plain)  # the chat template renders the same prompt


def test_generate_kwargs_reach_generate(pipe):
    short = pipe(text="Hi", generate_kwargs={"max_new_tokens": 2, "min_new_tokens": 2}, return_tensors=True)
    longer = pipe(text="Hi", max_new_tokens=6, min_new_tokens=6, return_tensors=True)
    assert len(longer[0]["generated_token_ids"]) - len(short[0]["generated_token_ids"]) == 4


def test_a_bad_file_is_named(pipe, media):
    with pytest.raises(ValueError, match="notes.png"):
        pipe([{"text": "ok", "images": str(media / "red.png")}, {"text": "bad", "images": str(media / "notes.png")}], batch_size=2)


@pytest.mark.parametrize("task", ["any-to-any", "image-text-to-text"])
def test_transformers_pipelines_drive_chatbridge_with_chat_messages(tiny_dir, media, task):
    generic = pipeline(task, model=str(tiny_dir))
    chat = [
        {
            "role": "user",
            "content": [{"type": "image", "path": str(media / "red.png")}, {"type": "text", "text": "What is it?"}],
        }
    ]
    ours = pipeline("chatbridge", model=str(tiny_dir))
    assert generic(text=chat, **SETTINGS)[0]["generated_text"] == answer(ours(text=chat, **SETTINGS))


REMOTE_PIPELINE_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["transformers_chatbridge"] = None
    from transformers import pipeline

    checkpoint, image = sys.argv[1:]
    pipe = pipeline(model=checkpoint, trust_remote_code=True)
    assert type(pipe).__name__ == "ChatBridgePipeline", type(pipe)
    assert type(pipe).__module__.startswith("transformers_modules"), type(pipe).__module__
    (record,) = pipe(text="What is it?", images=image, max_new_tokens=5, return_full_text=False)
    print("ANSWER=" + repr(record["generated_text"]))
    """
)


def test_remote_code_pipeline_without_the_package(tiny_dir, media, tmp_path, pipe):
    script = tmp_path / "remote_pipeline.py"
    script.write_text(REMOTE_PIPELINE_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), str(tiny_dir), str(media / "red.png")],
        env={**os.environ, "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = answer(pipe(text="What is it?", images=str(media / "red.png"), **SETTINGS))
    assert f"ANSWER={expected!r}" in result.stdout
