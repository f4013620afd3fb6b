"""PyTorch ChatBridge: image, video and audio bridged to a causal language model through one shared Q-Former."""

import copy
import hashlib
import os
import shutil
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    Blip2QFormerModel,
    Blip2VisionModel,
    GenerationMixin,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers import initialization as init
from transformers.cache_utils import Cache
from transformers.conversion_mapping import register_checkpoint_conversion_mapping
from transformers.core_model_loading import WeightRenaming
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    MultimodalBaseModelOutputWithPast,
    MultimodalCausalLMOutputWithPast,
)
from transformers.modeling_utils import slice_logits_to_keep
from transformers.quantizers.auto import AutoQuantizationConfig
from transformers.utils import torch_compilable_check
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.generic import can_return_tuple
from transformers.utils.quantization_config import QuantizationConfigMixin

from .configuration_chatbridge import ChatBridgeConfig
from .media_cache import BoundedCache
from .modalities import MODALITIES
from .modeling_beats import BeatsModel


TrainingStage = Literal["alignment", "instruction"]

# What trains in both stages of the paper (about 110M parameters at full size); towers and LLM stay frozen.
TRAINABLE_IN_EVERY_STAGE = (
    "qformer",
    "image_query_tokens",
    "audio_query_tokens",
    "audio_projection",
    "language_projection",
    "video_frame_embedding",
)
# Q-Former dropout per stage: the instruction stage trains with 0.1, alignment runs the base model's 0.0.
QFORMER_DROPOUT = {"alignment": 0.0, "instruction": 0.1}

# The pipeline a saved checkpoint serves through remote code. Its task name is not "chatbridge": transformers asks for
# `trust_remote_code` whenever the requested task is one the checkpoint declares, which would stop
# `pipeline("chatbridge", model=path)` from using the installed package.
REMOTE_CODE_PIPELINE = {
    "chatbridge-remote-code": {
        "impl": "pipeline_chatbridge.ChatBridgePipeline",
        "pt": ["AutoModelForMultimodalLM"],
        "tf": [],
        "type": "multimodal",
    }
}
PIPELINE_FILE = Path(__file__).with_name("pipeline_chatbridge.py")

# Every Auto class a saved checkpoint resolves through remote code (`trust_remote_code=True`).
REMOTE_CODE_AUTO_MAP = {
    "AutoConfig": "configuration_chatbridge.ChatBridgeConfig",
    "AutoModel": "modeling_chatbridge.ChatBridgeModel",
    "AutoModelForImageTextToText": "modeling_chatbridge.ChatBridgeForConditionalGeneration",
    "AutoModelForMultimodalLM": "modeling_chatbridge.ChatBridgeForConditionalGeneration",
}


# Checkpoints of release 0.1.0 nested the whole causal LM under `model.language_model` (its decoder under `.model`, its
# head under `.lm_head`); they load into LLaVA's layout through transformers' key conversion. Registered by model type
# (here, so remote code registers it too); `save_pretrained` writes the current layout, never the old one.
LEGACY_LAYOUT_RENAMINGS = [
    WeightRenaming(r"^model\.language_model\.lm_head\.", "lm_head."),
    WeightRenaming(r"^model\.language_model\.model\.", "model.language_model."),
    WeightRenaming(r"^language_model\.lm_head\.", "lm_head."),
    WeightRenaming(r"^language_model\.model\.", "language_model."),
]
register_checkpoint_conversion_mapping("chatbridge", LEGACY_LAYOUT_RENAMINGS, overwrite=True)

# Media inputs per modality: the keyword the model takes them under.
MEDIA_INPUTS = {"image": "pixel_values", "video": "pixel_values_videos", "audio": "input_features"}
# Keyword arguments of a forward pass that the Q-Former honours too (the rest are the language model's).
QFORMER_OUTPUT_FLAGS = ("output_hidden_states", "output_attentions")


def sincos_code(positions: torch.Tensor, width: int) -> torch.Tensor:
    """(len(positions), width) sines then cosines of the positions at `width // 2` geometric frequencies, as in the
    Transformer's fixed position encoding (a zero column pads an odd width)."""
    frequencies = 1.0 / 10000 ** (torch.arange(width // 2, dtype=torch.float32) / (width // 2))
    angles = positions.float()[:, None] * frequencies
    return nn.functional.pad(torch.cat([angles.sin(), angles.cos()], dim=-1), (0, width % 2))


def frame_sincos_code(num_frames: int, width: int) -> torch.Tensor:
    """(1, num_frames, 1, width) sine-cosine code of the frame index at half amplitude: a start for the learned frame
    embedding that already tells the frames apart and orders them."""
    return 0.5 * sincos_code(torch.arange(num_frames), width)[None, :, None]


def _requires_grad(module: nn.Module) -> bool:
    return any(parameter.requires_grad for parameter in module.parameters())


def _mark_initialized(module: nn.Module) -> nn.Module:
    """Keep `post_init` from re-initialising a pretrained component handed to the constructor."""
    for submodule in module.modules():
        submodule._is_hf_initialized = True
    return module


class TowerOutputCache(BoundedCache):
    """Frozen towers' outputs per media item (an image, a video frame, an audio segment), computed once and reused.

    Both training stages keep the towers frozen and in eval mode, so an item's tower output depends on its input
    alone, while the bridge reads every item once per epoch (a stage-2 item in several tasks). No library keeps module
    outputs across steps, hence this class. Items are keyed by the bytes of their input tensor, not by a file or an
    index: a changed file, another frame sampling or processor setting can never return a stale output. Outputs are
    kept until they fill `max_bytes`; items beyond it are computed each time.
    """

    @staticmethod
    def _key(input_name: str, item: torch.Tensor) -> tuple:
        digest = hashlib.blake2b(item.contiguous().view(torch.uint8).numpy(), digest_size=16).digest()
        return input_name, str(item.dtype), tuple(item.shape), digest

    def __call__(self, tower: nn.Module, input_name: str, inputs: torch.Tensor) -> torch.Tensor:
        """`tower(**{input_name: inputs}).last_hidden_state`, computing only the items not seen before."""
        keys = [self._key(input_name, item) for item in inputs.detach().cpu()]
        found = {key: output for key in dict.fromkeys(keys) if (output := self.get(key, count=False)) is not None}
        missing = [key for key in dict.fromkeys(keys) if key not in found]
        self.hits += sum(key in found for key in keys)
        if missing:
            first = {key: index for index, key in reversed(list(enumerate(keys)))}
            rows = torch.tensor([first[key] for key in missing], device=inputs.device)
            computed = tower(**{input_name: inputs[rows]}).last_hidden_state.detach()
            for key, output in zip(missing, computed):
                found[key] = output
                # Kept as a copy, not a view: the batch's tensor is freed.
                self.put(key, output.clone(), output.numel() * output.element_size())
        return torch.stack([found[key] for key in keys])


# Towers whose configs AutoModel does not map to a model. Keyed by model type, not config class: loaded as remote
# code, the config and the modeling files live in different dynamic modules, each with its own `BeatsConfig`.
_TOWERS_OUTSIDE_AUTO_MODEL = {"beats": BeatsModel, "blip_2_vision_model": Blip2VisionModel}


def _tower_class(config: PreTrainedConfig) -> type:
    return _TOWERS_OUTSIDE_AUTO_MODEL.get(config.model_type, AutoModel)


def _as_tower(model: PreTrainedModel) -> PreTrainedModel:
    """Encoder-decoder audio models (Whisper) serve as towers through their encoder."""
    return model.get_encoder() if model.config.is_encoder_decoder else model


def _tower_from_config(config: PreTrainedConfig) -> PreTrainedModel:
    tower_class = _tower_class(config)
    return _as_tower(tower_class.from_config(config) if tower_class is AutoModel else tower_class._from_config(config))


def _load_tower(tower: str | os.PathLike | nn.Module, **load_kwargs) -> nn.Module:
    if isinstance(tower, nn.Module):
        return _as_tower(tower)
    return _as_tower(_tower_class(AutoConfig.from_pretrained(tower)).from_pretrained(tower, **load_kwargs))


def _skipping_unquantized_modules(quantization_config, model_class: type) -> QuantizationConfigMixin:
    """A copy of `quantization_config` that skips `_modules_kept_unquantized` (and the LM head) when it names no
    modules to skip itself."""
    if isinstance(quantization_config, dict):
        quantization_config = AutoQuantizationConfig.from_dict(quantization_config)
    bitsandbytes = hasattr(quantization_config, "llm_int8_skip_modules")
    field = "llm_int8_skip_modules" if bitsandbytes else "modules_to_not_convert"
    if getattr(quantization_config, field, None) is not None:
        return quantization_config
    prefix = "" if issubclass(model_class, ChatBridgeModel) else f"{model_class.base_model_prefix}."
    skipped = [prefix + name for name in model_class._modules_kept_unquantized]
    quantization_config = copy.deepcopy(quantization_config)
    setattr(quantization_config, field, skipped if prefix == "" else [*skipped, "lm_head"])
    return quantization_config


class ChatBridgePreTrainedModel(PreTrainedModel):
    config: ChatBridgeConfig
    base_model_prefix = "model"
    input_modalities = ("image", "video", "audio", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True
    # Decoding steps carry no media, so a static cache and a compiled forward serve `generate`.
    _can_compile_fullgraph = True
    _no_split_modules = ["Blip2QFormerLayer", "BeatsEncoderLayer"]
    _keep_in_fp32_modules = ["qformer", "image_query_tokens", "audio_query_tokens"]
    # Quantizing (bitsandbytes, torchao, ...) replaces the LLM's linear layers only: the towers and the bridge are a
    # small share of the weights, and every answer passes through them. Names below `ChatBridgeModel`; a
    # quantization config that names its own modules to skip replaces this list (see `from_pretrained`).
    _modules_kept_unquantized = ["vision_tower", "audio_tower", "audio_projection", "qformer", "language_projection"]

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, ChatBridgeModel):
            init.normal_(module.image_query_tokens, mean=0.0, std=self.config.initializer_range)
            # The original starts the audio queries at zero.
            init.zeros_(module.audio_query_tokens)
            if module.video_frame_embedding is not None:
                if self.config.video_temporal_embedding_init == "sincos":
                    _, frames, _, width = module.video_frame_embedding.shape
                    init.copy_(module.video_frame_embedding, frame_sincos_code(frames, width))
                else:
                    init.zeros_(module.video_frame_embedding)

    def _set_gradient_checkpointing(self, *args, **kwargs):
        super()._set_gradient_checkpointing(*args, **kwargs)
        # The frozen LLM's checkpointed layers take the training flag from `ChatBridgeModel.train`, whichever of
        # `train()` and `activation_checkpointing_enable()` a training loop calls first.
        self.train(self.training)

    @classmethod
    def from_pretrained(cls, *args, quantization_config=None, **kwargs):
        """With a `quantization_config` that names no modules to skip, the LLM alone is quantized.

        transformers' default keeps only the output head and matches `_keep_in_fp32_modules` from the start of a
        module's full name, so the towers, the Q-Former and the projections would be quantized too.
        """
        if quantization_config is not None:
            quantization_config = _skipping_unquantized_modules(quantization_config, cls)
        return super().from_pretrained(*args, quantization_config=quantization_config, **kwargs)

    def save_pretrained(self, save_directory, *args, save_original_format: bool = False, **kwargs):
        """Write the current layout (`save_original_format=True` would write back the 0.1.0 layout a folder was
        loaded from); with remote code, also name every Auto class in `auto_map` and ship the pipeline."""
        if self._auto_class is not None:
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **REMOTE_CODE_AUTO_MAP}
            self.config.custom_pipelines = REMOTE_CODE_PIPELINE
        result = super().save_pretrained(save_directory, *args, save_original_format=save_original_format, **kwargs)
        if self._auto_class is not None:
            shutil.copyfile(PIPELINE_FILE, Path(save_directory) / PIPELINE_FILE.name)
        return result


class ChatBridgeModel(ChatBridgePreTrainedModel):
    """Towers, the shared Q-Former with its per-modality queries, the projection and the decoder (no LM head).

    Pretrained towers and decoder may be passed in (see `ChatBridgeForConditionalGeneration.from_components`);
    otherwise every part is built from `config`.
    """

    def __init__(
        self,
        config: ChatBridgeConfig,
        vision_tower: nn.Module | None = None,
        audio_tower: nn.Module | None = None,
        language_model: PreTrainedModel | None = None,
    ):
        super().__init__(config)
        self.vision_tower = (
            _mark_initialized(vision_tower) if vision_tower is not None else _tower_from_config(config.vision_config)
        )
        post_layernorm = getattr(self.vision_tower, "post_layernorm", None)
        if config.vision_layernorm_eps is not None and isinstance(post_layernorm, nn.LayerNorm):
            post_layernorm.eps = config.vision_layernorm_eps
        self.audio_tower = (
            _mark_initialized(audio_tower) if audio_tower is not None else _tower_from_config(config.audio_config)
        )
        audio_width = config.audio_config.hidden_size
        vision_width = config.vision_config.hidden_size
        qformer_width = config.qformer_config.hidden_size
        self.audio_layernorm = nn.LayerNorm(audio_width, eps=1e-5)
        self.audio_projection = nn.Linear(audio_width, vision_width)
        self.qformer = Blip2QFormerModel._from_config(config.qformer_config)
        self.image_query_tokens = nn.Parameter(torch.zeros(1, config.num_image_query_tokens, qformer_width))
        self.audio_query_tokens = nn.Parameter(torch.zeros(1, config.num_audio_query_tokens, qformer_width))
        self.video_frame_embedding = (
            nn.Parameter(torch.zeros(1, config.num_video_frames, 1, vision_width))
            if config.video_temporal_embedding
            else None
        )
        self.language_projection = nn.Linear(qformer_width, config.text_config.hidden_size)
        self.tower_output_cache: TowerOutputCache | None = None  # off unless a training run enables it
        self.language_model = (
            _mark_initialized(language_model)
            if language_model is not None
            else AutoModel.from_config(config.text_config)
        )
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module):
        self.language_model.set_input_embeddings(value)

    def train(self, mode: bool = True):
        """Frozen towers and LLM stay in eval mode (as in the original), so no dropout or layerdrop reaches them.

        Gradient checkpointing runs only in a layer whose own flag says training, and the bridge's gradients flow
        back through the frozen LLM: its checkpointed layers take `mode` for that flag alone, their submodules stay
        in eval mode.
        """
        super().train(mode)
        for tower in (self.vision_tower, self.audio_tower):
            if not _requires_grad(tower):
                tower.eval()
        if not _requires_grad(self.language_model):
            self.language_model.eval()
            for layer in self.language_model.modules():
                if isinstance(layer, GradientCheckpointingLayer) and layer.gradient_checkpointing:
                    layer.training = mode
        return self

    def set_training_stage(self, stage: TrainingStage) -> list[str]:
        """The one place that decides what trains: the bridge in both stages, the towers and the LLM never.

        Returns the names of the trainable parameters.
        """
        if stage not in QFORMER_DROPOUT:
            raise ValueError(f"Unknown training stage {stage!r}; expected one of {sorted(QFORMER_DROPOUT)}.")
        for name, parameter in self.named_parameters():
            parameter.requires_grad_(name.split(".", 1)[0] in TRAINABLE_IN_EVERY_STAGE)
        self._set_qformer_dropout(QFORMER_DROPOUT[stage])
        self.train(self.training)
        return [name for name, parameter in self.named_parameters() if parameter.requires_grad]

    def _set_qformer_dropout(self, probability: float):
        self.config.qformer_config.hidden_dropout_prob = probability
        self.config.qformer_config.attention_probs_dropout_prob = probability
        for module in self.qformer.modules():
            if isinstance(module, nn.Dropout):
                module.p = probability
            if hasattr(module, "attention_dropout"):
                module.attention_dropout = probability

    def enable_tower_output_cache(self, max_bytes: int) -> TowerOutputCache:
        """Reuse each media item's tower output while the towers are frozen and in eval mode (see
        `TowerOutputCache`); returns the cache (its `hits`, `misses` and `stored_bytes`)."""
        self.tower_output_cache = TowerOutputCache(max_bytes)
        return self.tower_output_cache

    def _run_tower(self, tower: nn.Module, **inputs) -> torch.Tensor:
        """Frozen towers run without autograd, so they never hold activations for a backward pass."""
        trainable = _requires_grad(tower)
        with torch.set_grad_enabled(torch.is_grad_enabled() and trainable):
            if self.tower_output_cache is not None and not trainable and not tower.training:
                ((input_name, values),) = inputs.items()
                return self.tower_output_cache(tower, input_name, values)
            return tower(**inputs).last_hidden_state

    def _query(
        self,
        memory: torch.Tensor,
        query_tokens: nn.Parameter,
        memory_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        """Shared Q-Former pass: `query_tokens` read `memory`. `last_hidden_state` is the Q-Former's output,
        `pooler_output` its projection into the LLM's space (items, queries, text hidden size)."""
        queries = query_tokens.expand(memory.shape[0], -1, -1)
        flags = {key: kwargs[key] for key in QFORMER_OUTPUT_FLAGS if kwargs.get(key) is not None}
        qformer_outputs = self.qformer(
            query_embeds=queries, encoder_hidden_states=memory, encoder_attention_mask=memory_mask, **flags
        )
        hidden = qformer_outputs.last_hidden_state
        attentions = qformer_outputs.attentions
        if attentions is not None and qformer_outputs.cross_attentions:
            # Blip2QFormerModel records its cross-attention weights under `attentions` too: keep one per layer.
            cross = {id(weights) for weights in qformer_outputs.cross_attentions}
            attentions = tuple(weights for weights in attentions if id(weights) not in cross)
        return BaseModelOutputWithPooling(
            last_hidden_state=hidden,
            pooler_output=self.language_projection(hidden.to(self.language_projection.weight.dtype)),
            hidden_states=qformer_outputs.hidden_states,
            attentions=attentions,
        )

    def _frame_memory(self, frames: torch.Tensor) -> torch.Tensor:
        return self._run_tower(self.vision_tower, pixel_values=frames.to(self.vision_tower.dtype))

    @can_return_tuple
    def get_image_features(self, pixel_values: torch.FloatTensor, **kwargs) -> tuple | BaseModelOutputWithPooling:
        """(num_images, 3, H, W) -> `pooler_output` (num_images, num_image_query_tokens, text hidden size)."""
        return self._query(self._frame_memory(pixel_values), self.image_query_tokens, **kwargs)

    @can_return_tuple
    def get_video_features(
        self, pixel_values_videos: torch.FloatTensor, **kwargs
    ) -> tuple | BaseModelOutputWithPooling:
        """(num_videos, frames, 3, H, W) -> `pooler_output` (num_videos, num_image_query_tokens, text hidden size).

        All frames' tokens are concatenated (frame-major) into one Q-Former memory, as in the original.
        """
        num_videos, num_frames = pixel_values_videos.shape[:2]
        memory = self._frame_memory(pixel_values_videos.flatten(0, 1))
        memory = memory.view(num_videos, num_frames, *memory.shape[1:])
        if self.video_frame_embedding is not None:
            memory = memory + self.video_frame_embedding[:, :num_frames].to(memory.dtype)
        return self._query(memory.flatten(1, 2), self.image_query_tokens, **kwargs)

    @can_return_tuple
    def get_audio_features(
        self, input_features: torch.FloatTensor, input_features_mask: torch.Tensor | None = None, **kwargs
    ) -> tuple | BaseModelOutputWithPooling:
        """(num_clips, segments, ...) -> `pooler_output` (num_clips, num_audio_query_tokens, text hidden size).

        Each segment goes through the audio tower on its own; the segments' tokens are concatenated into one memory.
        `input_features_mask` (num_clips, segments, frames) is used only with `config.audio_padding_mask`.
        """
        num_clips = input_features.shape[0]
        hidden = self._run_tower(self.audio_tower, input_features=input_features.flatten(0, 1).to(self.audio_tower.dtype))
        memory = self.audio_projection(self.audio_layernorm(hidden))
        memory_mask = None
        if self.config.audio_padding_mask and input_features_mask is not None:
            memory_mask = self._beats_token_mask(input_features_mask.flatten(0, 1), input_features.shape[-1])
            memory_mask = memory_mask.reshape(num_clips, -1).to(memory.device)
        memory = memory.reshape(num_clips, -1, memory.shape[-1])
        return self._query(memory, self.audio_query_tokens, memory_mask, **kwargs)

    def _beats_token_mask(self, frame_mask: torch.Tensor, mel_bins: int) -> torch.Tensor:
        """Frame mask (segments, frames) -> token mask (segments, tokens): a BEATs patch is real if any frame is."""
        patch = self.config.audio_config.patch_size
        time_patches = frame_mask.reshape(frame_mask.shape[0], -1, patch).any(-1)
        return time_patches.repeat_interleave(mel_bins // patch, dim=1).long()

    def get_placeholder_mask(
        self, input_ids: torch.LongTensor | None, inputs_embeds: torch.FloatTensor, modality: str
    ) -> torch.BoolTensor:
        """(batch, sequence) positions of `modality`'s placeholder: from `input_ids`, or without them, the positions
        whose embedding is the placeholder token's."""
        token_id = getattr(self.config, f"{modality}_token_id")
        if input_ids is not None:
            return input_ids == token_id
        placeholder = self.get_input_embeddings()(torch.tensor(token_id, device=inputs_embeds.device))
        return (inputs_embeds == placeholder).all(-1)

    def check_placeholders(self, placeholder_mask: torch.BoolTensor, modality: str, num_items: int):
        """Raise before any tower runs when a sample's placeholder count does not fit the media given for it.

        Media items are consumed in order across the batch, so the first sample that cannot be served is named.
        """
        token_id = getattr(self.config, f"{modality}_token_id")
        per_item = self.config.num_audio_query_tokens if modality == "audio" else self.config.num_image_query_tokens
        available = num_items * per_item
        if torch.compiler.is_compiling():  # no per-sample walk inside a graph
            total = placeholder_mask.sum()
            torch_compilable_check(
                total == available,
                f"{modality.capitalize()} features and {modality} tokens do not match: {available} feature positions",
            )
            return
        counts = placeholder_mask.sum(-1).tolist()
        consumed = 0
        for sample, count in enumerate(counts):
            left = available - consumed
            if count % per_item or count > left:
                raise ValueError(
                    f"Sample {sample} has {count} {modality} placeholder tokens (id {token_id}), but {left} {modality} "
                    f"feature positions are left for it: the batch has {num_items} {modality} item(s) of {per_item} "
                    f"tokens each. Placeholders per sample: {counts}."
                )
            consumed += count
        if consumed != available:
            raise ValueError(
                f"The batch has {num_items} {modality} item(s) ({available} feature positions) but only {consumed} "
                f"{modality} placeholder tokens (id {token_id}); placeholders per sample: {counts}, so sample "
                f"{len(counts) - 1} is the last one and {available - consumed} positions are left over."
            )

    def _media_features(
        self, modality: str, values: torch.Tensor, input_features_mask: torch.Tensor | None, **kwargs
    ) -> BaseModelOutputWithPooling:
        if modality == "image":
            return self.get_image_features(values, **kwargs)
        if modality == "video":
            return self.get_video_features(values, **kwargs)
        return self.get_audio_features(values, input_features_mask, **kwargs)

    def embed_inputs(
        self,
        input_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        pixel_values_videos: torch.FloatTensor | None = None,
        input_features: torch.FloatTensor | None = None,
        input_features_mask: torch.Tensor | None = None,
        mm_encoder_outputs: dict[str, BaseModelOutputWithPooling] | None = None,
        **flags,
    ) -> tuple[torch.FloatTensor, dict[str, BaseModelOutputWithPooling]]:
        """Token embeddings with each media item's features written over its placeholders (`masked_scatter`), and
        the encoder outputs per modality.

        Media come as `pixel_values`, `pixel_values_videos`, `input_features`, or already encoded in
        `mm_encoder_outputs`. Every modality's placeholders are found and counted before any tower runs. `flags`
        (`output_hidden_states`, `output_attentions`) go to the Q-Former.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        encoded = dict(mm_encoder_outputs or {})
        media = {"image": pixel_values, "video": pixel_values_videos, "audio": input_features}
        masks = {}
        for modality, values in media.items():
            if values is not None and encoded.get(modality) is not None:
                raise ValueError(
                    f"Pass {modality} either as {MEDIA_INPUTS[modality]} or in mm_encoder_outputs, not both."
                )
            if values is None and encoded.get(modality) is None:
                continue
            masks[modality] = self.get_placeholder_mask(input_ids, inputs_embeds, modality)
            num_items = values.shape[0] if values is not None else encoded[modality].pooler_output.shape[0]
            self.check_placeholders(masks[modality], modality, num_items)
        for modality, mask in masks.items():
            if encoded.get(modality) is None:
                encoded[modality] = self._media_features(
                    modality, media[modality], input_features_mask, return_dict=True, **flags
                )
            features = encoded[modality].pooler_output.to(inputs_embeds.device, inputs_embeds.dtype)
            inputs_embeds = inputs_embeds.masked_scatter(mask.unsqueeze(-1).to(inputs_embeds.device), features)
        return inputs_embeds, encoded

    @can_return_tuple
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        pixel_values_videos: torch.FloatTensor | None = None,
        input_features: torch.FloatTensor | None = None,
        input_features_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        mm_encoder_outputs: dict[str, BaseModelOutputWithPooling] | None = None,
        **kwargs,
    ) -> tuple | MultimodalBaseModelOutputWithPast:
        flags = {key: kwargs[key] for key in QFORMER_OUTPUT_FLAGS if key in kwargs}
        inputs_embeds, encoded = self.embed_inputs(
            input_ids,
            inputs_embeds,
            pixel_values,
            pixel_values_videos,
            input_features,
            input_features_mask,
            mm_encoder_outputs,
            **flags,
        )
        outputs = self.language_model(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids, cache=cache, **kwargs
        )
        return MultimodalBaseModelOutputWithPast(
            **outputs,
            image_outputs=encoded.get("image"),
            video_outputs=encoded.get("video"),
            audio_outputs=encoded.get("audio"),
        )


class ChatBridgeForConditionalGeneration(ChatBridgePreTrainedModel, GenerationMixin):
    """ChatBridge with the language model's head: loss over `labels` and `generate`."""

    def __init__(self, config: ChatBridgeConfig, **components: nn.Module):
        super().__init__(config)
        self.model = ChatBridgeModel(config, **components)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    @classmethod
    def from_components(
        cls,
        vision_model: str | os.PathLike | nn.Module,
        audio_model: str | os.PathLike | nn.Module,
        language_model: str | os.PathLike | PreTrainedModel,
        dtype: torch.dtype | str | None = None,
        **config_kwargs,
    ) -> "ChatBridgeForConditionalGeneration":
        """Start stage 1 from separately pretrained towers and LLM; the Q-Former, queries and projections are new.

        Paths are loaded with `AutoModel` (towers) and `AutoModelForCausalLM` (LLM); the causal LM is split into its
        decoder (`model.language_model`) and its head (`lm_head`). Placeholder ids not given in `config_kwargs` are
        appended after the LLM's vocabulary (image, video, audio), whose embeddings grow to hold them: add `<image>`,
        `<video>`, `<audio>` to the tokenizer in that order to match.
        """
        load_kwargs = {} if dtype is None else {"dtype": dtype}
        vision = _load_tower(vision_model, **load_kwargs)
        audio = _load_tower(audio_model, **load_kwargs)
        language = (
            language_model
            if isinstance(language_model, nn.Module)
            else AutoModelForCausalLM.from_pretrained(language_model, **load_kwargs)
        )
        vocab_size = language.config.vocab_size
        for offset, modality in enumerate(MODALITIES):
            config_kwargs.setdefault(f"{modality}_token_id", vocab_size + offset)
        needed = 1 + max(config_kwargs[f"{modality}_token_id"] for modality in MODALITIES)
        if needed > vocab_size:
            language.resize_token_embeddings(needed)
        head = language.get_output_embeddings()
        if getattr(head, "bias", None) is not None:
            raise ValueError(f"{type(language).__name__}'s output layer has a bias; ChatBridge's lm_head has none.")
        components = {"vision_config": vision, "audio_config": audio, "text_config": language}
        # The components keep the attention implementation they were loaded with (a new config would reset it).
        config_kwargs.setdefault(
            "attn_implementation", {key: part.config._attn_implementation for key, part in components.items()}
        )
        config = ChatBridgeConfig(**{key: part.config for key, part in components.items()}, **config_kwargs)
        model = cls(config, vision_tower=vision, audio_tower=audio, language_model=language.get_decoder())
        with torch.no_grad():
            # A copy, not the same tensor: ChatBridge keeps its head apart from the input embeddings.
            model.lm_head.weight.copy_(head.weight)
        model.lm_head.to(head.weight.dtype)
        return model

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module):
        self.lm_head = value

    def get_image_features(self, pixel_values: torch.FloatTensor, **kwargs) -> tuple | BaseModelOutputWithPooling:
        return self.model.get_image_features(pixel_values, **kwargs)

    def get_video_features(
        self, pixel_values_videos: torch.FloatTensor, **kwargs
    ) -> tuple | BaseModelOutputWithPooling:
        return self.model.get_video_features(pixel_values_videos, **kwargs)

    def get_audio_features(
        self, input_features: torch.FloatTensor, input_features_mask: torch.Tensor | None = None, **kwargs
    ) -> tuple | BaseModelOutputWithPooling:
        return self.model.get_audio_features(input_features, input_features_mask, **kwargs)

    def set_training_stage(self, stage: TrainingStage) -> list[str]:
        """See `ChatBridgeModel.set_training_stage` (the head stays frozen); names are relative to this model."""
        trainable = self.model.set_training_stage(stage)
        self.lm_head.requires_grad_(False)
        return [f"{self.base_model_prefix}.{name}" for name in trainable]

    @can_return_tuple
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        pixel_values_videos: torch.FloatTensor | None = None,
        input_features: torch.FloatTensor | None = None,
        input_features_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        mm_encoder_outputs: dict[str, BaseModelOutputWithPooling] | None = None,
        labels: torch.LongTensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> tuple | MultimodalCausalLMOutputWithPast:
        outputs = self.model(
            input_ids=input_ids,
            pixel_values=pixel_values,
            pixel_values_videos=pixel_values_videos,
            input_features=input_features,
            input_features_mask=input_features_mask,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            mm_encoder_outputs=mm_encoder_outputs,
            **kwargs,
        )
        logits = self.lm_head(slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep))
        loss = None
        if labels is not None:
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size, **kwargs
            )
        return MultimodalCausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            image_outputs=outputs.image_outputs,
            video_outputs=outputs.video_outputs,
            audio_outputs=outputs.audio_outputs,
        )


__all__ = ["ChatBridgePreTrainedModel", "ChatBridgeModel", "ChatBridgeForConditionalGeneration"]
