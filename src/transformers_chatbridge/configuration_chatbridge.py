"""ChatBridge model configuration."""

from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .configuration_beats import BeatsConfig


class _TowerConfigSpec(SubConfigSpec):
    """`AutoConfig` resolution that also knows BEATs, which is not part of transformers itself.

    The lookup must not depend on `AutoConfig.register("beats", ...)` having run: a checkpoint loaded as remote
    code in a Python without this package never runs that registration.
    """

    def get_config_class(self, model_type: str | None = None):
        if model_type == BeatsConfig.model_type:
            return BeatsConfig
        return super().get_config_class(model_type)


# EVA ViT-g/14 as BLIP-2 uses it; a real initializer range (Blip2VisionConfig defaults to 1e-10, which makes a random
# tower blind to its input).
EVA_VIT_G = {
    "hidden_size": 1408,
    "intermediate_size": 6144,
    "num_hidden_layers": 39,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-6,
    "qkv_bias": True,
    "initializer_range": 0.02,
}

# Vicuna-13B v0 (LLaMA) with three extra rows for the image, video and audio placeholder tokens (ids 32001-32003).
VICUNA_13B_V0 = {
    "vocab_size": 32004,
    "hidden_size": 5120,
    "intermediate_size": 13824,
    "num_hidden_layers": 40,
    "num_attention_heads": 40,
    "num_key_value_heads": 40,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-6,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 0,
    "tie_word_embeddings": False,
}

# BERT-base Q-Former of BLIP-2 without text input, reading 1408-wide EVA features.
QFORMER = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "cross_attention_frequency": 2,
    "encoder_hidden_size": 1408,
    "layer_norm_eps": 1e-12,
    "use_qformer_text_input": False,
}


@strict
class ChatBridgeConfig(PreTrainedConfig):
    r"""
    Configuration of [`ChatBridgeModel`] and [`ChatBridgeForConditionalGeneration`]. Defaults reproduce the released
    ChatBridge-13B: EVA ViT-g, BEATs iter3+ AS2M, a BERT-base Q-Former shared by all modalities, Vicuna-13B v0.

    Args:
        vision_config (`dict` or `PreTrainedConfig`, *optional*):
            Vision tower; any vision model config (`Blip2VisionConfig` by default, CLIP or SigLIP vision configs work).
        audio_config (`dict` or `PreTrainedConfig`, *optional*):
            Audio tower; `BeatsConfig` by default, any audio encoder config whose model returns `last_hidden_state`.
        qformer_config (`dict` or `Blip2QFormerConfig`, *optional*):
            The Q-Former shared by all modalities. Its `encoder_hidden_size` is set to the vision width.
        text_config (`dict` or `PreTrainedConfig`, *optional*):
            The causal language model.
        num_image_query_tokens (`int`, *optional*, defaults to 32):
            Learned queries for images and videos, hence placeholder tokens per image or video.
        num_audio_query_tokens (`int`, *optional*, defaults to 32):
            Learned queries for audio, hence placeholder tokens per audio clip.
        num_video_frames (`int`, *optional*, defaults to 4):
            Frames per video.
        num_audio_segments (`int`, *optional*, defaults to 1):
            10.24 s fbank segments per audio clip.
        image_token_id / video_token_id / audio_token_id (`int`, *optional*):
            Placeholder token ids that the processor expands and the model overwrites with media features.
        vision_layernorm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of the layer norm after the vision tower (`ln_vision`), which differs from the tower's own blocks.
            `None` keeps the tower's value.
        video_temporal_embedding (`bool`, *optional*, defaults to `False`):
            Add a learned embedding per frame index to the frame features (not in the release).
        video_temporal_embedding_init (`str`, *optional*, defaults to `"zeros"`):
            How that embedding starts: `"zeros"`, as the original's multi-sample option would, or `"sincos"`, a
            sine-cosine code of the frame index at half amplitude (about a third of the per-channel scale of the
            layer-normed frame tokens it is added to), so that a short run starts with the frames told apart.
        audio_padding_mask (`bool`, *optional*, defaults to `False`):
            Let the audio queries ignore BEATs tokens made only of padding (`input_features_mask`). The release
            attends to the padding, so this is off by default.
    """

    model_type = "chatbridge"
    sub_configs_defaults = {
        "vision_config": _TowerConfigSpec(AutoConfig, model_type="blip_2_vision_model", init_kwargs=EVA_VIT_G),
        "audio_config": _TowerConfigSpec(AutoConfig, model_type="beats"),
        "qformer_config": SubConfigSpec(AutoConfig, model_type="blip_2_qformer", init_kwargs=QFORMER),
        "text_config": SubConfigSpec(AutoConfig, model_type="llama", init_kwargs=VICUNA_13B_V0),
    }

    vision_config: dict | PreTrainedConfig | None = None
    audio_config: dict | PreTrainedConfig | None = None
    qformer_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    num_image_query_tokens: int = 32
    num_audio_query_tokens: int = 32
    num_video_frames: int = 4
    num_audio_segments: int = 1
    image_token_id: int = 32001
    video_token_id: int = 32002
    audio_token_id: int = 32003
    vision_layernorm_eps: float | None = 1e-5
    video_temporal_embedding: bool = False
    video_temporal_embedding_init: Literal["zeros", "sincos"] = "zeros"
    audio_padding_mask: bool = False
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.qformer_config.encoder_hidden_size = self.vision_config.hidden_size

    def validate_media_settings(self):
        """Part of `@strict` validation: catch settings that would otherwise fail deep inside a forward pass."""
        placeholders = {"image": self.image_token_id, "video": self.video_token_id, "audio": self.audio_token_id}
        if len(set(placeholders.values())) != len(placeholders):
            raise ValueError(f"Placeholder token ids must differ, got {placeholders}.")
        for modality, token_id in placeholders.items():
            if not 0 <= token_id < self.text_config.vocab_size:
                raise ValueError(
                    f"{modality}_token_id={token_id} is outside the language model's vocabulary "
                    f"(vocab_size={self.text_config.vocab_size}); placeholders must be real tokens of the LLM."
                )
        for name in ("num_image_query_tokens", "num_audio_query_tokens", "num_video_frames", "num_audio_segments"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.video_temporal_embedding_init != "zeros" and not self.video_temporal_embedding:
            raise ValueError(
                f"video_temporal_embedding_init={self.video_temporal_embedding_init!r} starts the frame embedding, which "
                "exists only with video_temporal_embedding=True."
            )
        if self.audio_padding_mask and self.audio_config.model_type != BeatsConfig.model_type:
            raise ValueError("audio_padding_mask maps fbank frames to BEATs patches; it needs the BEATs audio tower.")
        if self.qformer_config.use_qformer_text_input:
            raise ValueError("ChatBridge's Q-Former reads no text: qformer_config.use_qformer_text_input must be False.")


__all__ = ["ChatBridgeConfig"]
