"""What the vLLM tests share: the tiny model vLLM can run, the engine settings, prompts and media per case."""

import os
from typing import NamedTuple

import numpy as np
from PIL import Image
from transformers_chatbridge.testing import tiny_chatbridge

# Greedy tokens compared per answer: enough to leave the prompt's influence and few enough to stay fast.
MAX_NEW_TOKENS = 12
# vLLM's CPU attention kernels exist for head sizes 32, 64, 80, ...: 4 heads of 32 (the default tiny model has 8).
TEXT_HIDDEN_SIZE = 128
MAX_MODEL_LEN = 512  # the tiny model's max_position_embeddings
ENGINE_ARGS = {
    "model_impl": "transformers",
    "trust_remote_code": True,
    "enforce_eager": True,
    # float32 as transformers runs it: vLLM would otherwise downcast to bfloat16.
    "dtype": "float32",
    "max_model_len": MAX_MODEL_LEN,
    "seed": 0,
    # vLLM resamples audio to the feature extractor's rate without telling the processor, which would warn.
    "mm_processor_kwargs": {"sampling_rate": 16000},
}


def vllm_tiny_chatbridge(save_dir: str | os.PathLike) -> None:
    """The test suite's tiny ChatBridge with a language model whose head size vLLM's CPU attention supports."""
    tiny_chatbridge(save_dir, text_hidden_size=TEXT_HIDDEN_SIZE)


def video_metadata(num_frames: int, fps: float) -> dict:
    """What vLLM needs beside a video given as frames: ChatBridge's video processor samples the frames itself."""
    return {
        "fps": fps,
        "duration": num_frames / fps,
        "total_num_frames": num_frames,
        "frames_indices": list(range(num_frames)),
        "video_backend": "pyav",
        # The processor picks its frames from the clip, as `processor(videos=...)` does in transformers.
        "do_sample_frames": True,
    }


# Audio of the "resampled audio" case comes at this rate; vLLM brings it to the feature extractor's 16 kHz.
OTHER_AUDIO_RATE = 22050


def make_media() -> dict:
    """Two plain images of different colours (they move the tiny model's answer more than noise does), a 12-frame
    video of noise, a 1 s 16 kHz clip of noise and a 1 s chord at `OTHER_AUDIO_RATE`."""
    rng = np.random.default_rng(0)
    seconds = np.arange(OTHER_AUDIO_RATE) / OTHER_AUDIO_RATE
    chord = 0.3 * np.sin(2 * np.pi * 440 * seconds) + 0.1 * np.sin(2 * np.pi * 3000 * seconds)
    return {
        "image": Image.new("RGB", (48, 40), "red"),
        "image2": Image.new("RGB", (30, 30), "blue"),
        "video": rng.integers(0, 256, (12, 36, 36, 3), dtype=np.uint8),
        "audio": np.clip(0.3 * rng.standard_normal(16000), -1, 1).astype(np.float32),
        "resampled audio": chord.astype(np.float32),
    }


HUMAN = "###Human: "
PROMPTS = {
    "image": HUMAN + "Given following image: <image>.###Human: What is in the picture?###Assistant:",
    "image2": HUMAN + "Given following image: <image>.###Human: What is in the picture?###Assistant:",
    "video": HUMAN + "Given following video: <video>.###Human: What happens?###Assistant:",
    "audio": HUMAN + "Given the following audio: <audio>.###Human: What sound does this make?###Assistant:",
    "video+audio": HUMAN + "Given following video: <video> and its background audio: <audio>.###Assistant:",
    "text": HUMAN + "What colour is the shape?###Assistant:",
}
PROMPTS["resampled audio"] = PROMPTS["audio"]
CASES = tuple(PROMPTS)
# Cases with a media item of their own (under the case's name in `make_media`), and its modality.
OWN_MEDIA = {"image2": "image", "resampled audio": "audio"}


def case_media(case: str, media: dict) -> dict:
    """The media items of a case's prompt, by modality."""
    if case in OWN_MEDIA:
        return {OWN_MEDIA[case]: media[case]}
    if case == "text":
        return {}
    return {modality: media[modality] for modality in case.split("+")}


def audio_rate(case: str) -> int:
    return OTHER_AUDIO_RATE if case == "resampled audio" else 16000


class Reference(NamedTuple):
    prompt_ids: list[int]
    answer_ids: list[int]
    # Log-probability of each answer token: unlike the greedy ids, it moves with every change of the media features.
    logprobs: list[float]


# Chat requests: the media files of a case, then a question (transformers' content items). A video followed by an
# audio clip is the template's "video and its background audio".
CHAT_QUESTION = "What is it?"
CHAT_FILES = {"image": "red.png", "video": "clip.mp4", "audio": "tone.wav"}
CHAT_CASES = ("image", "video", "audio", "video+audio")


def chat_messages(case: str, files: dict) -> list[dict]:
    media = [{"type": modality, "path": str(files[modality])} for modality in case.split("+")]
    return [{"role": "user", "content": [*media, {"type": "text", "text": CHAT_QUESTION}]}]
