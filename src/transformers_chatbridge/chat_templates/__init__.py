"""Processor presets shipped with ChatBridge checkpoints: chat templates and the original preprocessing.

Chat templates: `vicuna_v0` (the released model's format, the default) and `chatml` (for LLMs trained on it).
"""

from importlib.resources import files

from transformers import PreTrainedTokenizerBase

from ..configuration_chatbridge import ChatBridgeConfig
from ..feature_extraction_beats import BeatsFeatureExtractor
from ..image_processing_chatbridge import ChatBridgeImageProcessor
from ..processing_chatbridge import ChatBridgeProcessor
from ..video_processing_chatbridge import ChatBridgeVideoProcessor

CHAT_TEMPLATES = ("vicuna_v0", "chatml")
# What ends an answer, and what opens one, in each chat format.
RESPONSE_MARKERS = {"vicuna_v0": ("###Assistant:", "###"), "chatml": ("<|im_start|>assistant\n", "<|im_end|>")}


def load_chat_template(name: str = "vicuna_v0") -> str:
    """The Jinja source of a chat template preset."""
    if name not in CHAT_TEMPLATES:
        raise ValueError(f"Unknown chat template preset {name!r}; presets: {', '.join(CHAT_TEMPLATES)}.")
    return files(__name__).joinpath(f"{name}.jinja").read_text(encoding="utf-8")


def build_processor(
    tokenizer: PreTrainedTokenizerBase, config: ChatBridgeConfig | None = None, chat_template: str = "vicuna_v0"
) -> ChatBridgeProcessor:
    """A processor matching `config` (image size, frames, segments, query counts) around `tokenizer`.

    The tokenizer gets the `<image>`, `<video>`, `<audio>` special tokens if it lacks them.
    """
    config = config if config is not None else ChatBridgeConfig()
    tokenizer.add_special_tokens(
        {"extra_special_tokens": ["<image>", "<video>", "<audio>"]}, replace_extra_special_tokens=False
    )
    size = config.vision_config.image_size
    response_start, response_end = RESPONSE_MARKERS[chat_template]
    return ChatBridgeProcessor(
        image_processor=ChatBridgeImageProcessor(size={"height": size, "width": size}),
        video_processor=ChatBridgeVideoProcessor(
            size={"height": size, "width": size}, num_frames=config.num_video_frames
        ),
        feature_extractor=BeatsFeatureExtractor(num_segments=config.num_audio_segments),
        tokenizer=tokenizer,
        chat_template=load_chat_template(chat_template),
        num_image_tokens=config.num_image_query_tokens,
        num_audio_tokens=config.num_audio_query_tokens,
        response_start=response_start,
        response_end=response_end,
    )


def stop_token_ids(processor: ChatBridgeProcessor) -> list[int]:
    """End of sequence plus the separator that ends an answer, when it is a single token: for `generation_config`."""
    tokenizer = processor.tokenizer
    separator = tokenizer(processor.response_end, add_special_tokens=False)["input_ids"]
    return [tokenizer.eos_token_id, *separator] if len(separator) == 1 else [tokenizer.eos_token_id]
