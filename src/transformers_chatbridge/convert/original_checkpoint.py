"""Converters from the original (research code) formats of ChatBridge and its components.

- `load_original_beats`: a BEATs release file (`{"cfg", "model"}`) -> `BeatsModel`.
- `convert_checkpoint` / `chatbridge convert`: an original ChatBridge checkpoint plus the component files it lacks
  (EVA ViT, BLIP-2 stage 1, BEATs, the LLM folder) -> a complete ChatBridge folder (config, sharded safetensors,
  generation config and, when a tokenizer is found, the processor).

Every loader is strict: a key that is missing, left over, or inconsistent is an error naming the file, never a
silently random or ignored weight. Keys that are deliberately not converted are named, with the reason, in the
allow-lists below.

Memory: the checkpoint converter never holds the model. Input files are memory-mapped (`torch.load(mmap=True)` for
zip-format `.pth`/`.bin`, `safe_open` for safetensors) and re-opened for every output shard, so the pages read for
one shard are released before the next; the target model exists only on the meta device, for its key list and
shapes.
"""

import json
import math
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from transformers import (
    AutoConfig,
    AutoTokenizer,
    Blip2QFormerConfig,
    Blip2VisionConfig,
    PreTrainedConfig,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as transformers_logging
from transformers.utils.hub import convert_file_size_to_int

from ..chat_templates import build_processor, stop_token_ids
from ..configuration_beats import BeatsConfig
from ..configuration_chatbridge import ChatBridgeConfig
from ..modeling_beats import BeatsModel
from ..modalities import MODALITIES
from ..modeling_chatbridge import ChatBridgeForConditionalGeneration
from ..processing_chatbridge import ChatBridgeProcessor

# =====================================================================================================================
# BEATs release files
# =====================================================================================================================

# Original BEATsConfig key -> BeatsConfig field.
_BEATS_CFG_TO_CONFIG = {
    "encoder_layers": "num_hidden_layers",
    "encoder_embed_dim": "hidden_size",
    "encoder_ffn_embed_dim": "intermediate_size",
    "encoder_attention_heads": "num_attention_heads",
    "activation_fn": "hidden_act",
    "embed_dim": "patch_embedding_size",
    "input_patch_size": "patch_size",
    "conv_bias": "conv_bias",
    "conv_pos": "num_conv_pos_embeddings",
    "conv_pos_groups": "num_conv_pos_embedding_groups",
    "num_buckets": "num_buckets",
    "max_distance": "max_distance",
    "dropout": "hidden_dropout",
    "attention_dropout": "attention_dropout",
    "activation_dropout": "activation_dropout",
    "encoder_layerdrop": "layerdrop",
    "dropout_input": "input_dropout",
}

# Architecture switches of the original that this port implements in one position only.
_BEATS_REQUIRED_CFG = {
    "layer_norm_first": False,
    "deep_norm": True,
    "relative_position_embedding": True,
    "gru_rel_pos": True,
}

# Training-only or head settings that do not change the encoder's forward pass.
_BEATS_IGNORED_CFG = {"layer_wise_gradient_decay_ratio", "finetuned_model", "predictor_dropout", "predictor_class"}

_BEATS_RENAMES = {
    "encoder.pos_conv.0.weight_g": "encoder.pos_conv_embed.conv.parametrizations.weight.original0",
    "encoder.pos_conv.0.weight_v": "encoder.pos_conv_embed.conv.parametrizations.weight.original1",
    "encoder.pos_conv.0.bias": "encoder.pos_conv_embed.conv.bias",
    "encoder.layers.0.self_attn.relative_attention_bias.weight": "encoder.relative_attention_bias.weight",
}

_BEATS_LAYER_REL_BIAS = re.compile(r"encoder\.layers\.(\d+)\.self_attn\.relative_attention_bias\.weight")
_BEATS_SHARED_REL_BIAS = "encoder.layers.0.self_attn.relative_attention_bias.weight"


def beats_config_from_original(cfg: dict, source: str = "<cfg>") -> BeatsConfig:
    """Map an original `BEATsConfig` dict to `BeatsConfig`, rejecting variants the port does not implement."""
    for key, required in _BEATS_REQUIRED_CFG.items():
        # The original's defaults differ from iter3+ (e.g. deep_norm=False), so a missing switch is not assumed.
        if key not in cfg:
            raise ValueError(f"{source}: cfg has no `{key}`; this port needs {key}={required}.")
        if bool(cfg[key]) != required:
            raise ValueError(
                f"{source}: unsupported BEATs variant cfg[{key!r}]={cfg[key]!r}; this port implements only "
                f"{key}={required} (BEATs iter3+ as used by ChatBridge)."
            )
    unknown = sorted(set(cfg) - set(_BEATS_CFG_TO_CONFIG) - set(_BEATS_REQUIRED_CFG) - _BEATS_IGNORED_CFG)
    if unknown:
        raise ValueError(f"{source}: unknown BEATs cfg keys {unknown}; refusing to guess their effect.")
    missing = sorted(set(_BEATS_CFG_TO_CONFIG) - set(cfg))
    if missing:
        raise ValueError(f"{source}: BEATs cfg lacks {missing}.")
    return BeatsConfig(**{field: cfg[key] for key, field in _BEATS_CFG_TO_CONFIG.items()})


def is_beats_relative_bias_copy(key: str) -> bool:
    """Whether `key` is one of the per-layer copies (layers >= 1) of the relative position bias shared with layer 0."""
    match = _BEATS_LAYER_REL_BIAS.fullmatch(key)
    return match is not None and match.group(1) != "0"


def beats_key_to_hf(key: str) -> str:
    """`BeatsModel` name of an original BEATs key (everything but the renamed ones keeps its name)."""
    return _BEATS_RENAMES.get(key, key)


def convert_beats_state_dict(state_dict: dict[str, torch.Tensor], source: str = "<state_dict>") -> dict:
    """Rename original BEATs keys; the per-layer copies of the shared relative bias must equal layer 0's."""
    converted = {}
    for key, value in state_dict.items():
        if key.startswith("predictor."):
            continue
        if is_beats_relative_bias_copy(key):
            if _BEATS_SHARED_REL_BIAS not in state_dict:
                raise ValueError(f"{source}: `{key}` is present but `{_BEATS_SHARED_REL_BIAS}` is missing.")
            if not torch.equal(value, state_dict[_BEATS_SHARED_REL_BIAS]):
                raise ValueError(
                    f"{source}: `{key}` differs from `{_BEATS_SHARED_REL_BIAS}`; this port shares one relative "
                    "position bias across layers, as the original does."
                )
            continue
        converted[beats_key_to_hf(key)] = value
    return converted


def load_original_beats(path: str | os.PathLike) -> BeatsModel:
    """Build a `BeatsModel` in eval mode from an original BEATs release file (`{"cfg": ..., "model": ...}`)."""
    source = os.fspath(path)
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or "cfg" not in checkpoint or "model" not in checkpoint:
        raise ValueError(f"{source}: expected a dict with 'cfg' and 'model' (the BEATs release format).")

    config = beats_config_from_original(checkpoint["cfg"], source)
    state_dict = convert_beats_state_dict(checkpoint["model"], source)

    model = BeatsModel(config)
    expected = set(model.state_dict())
    missing = sorted(expected - set(state_dict))
    unexpected = sorted(set(state_dict) - expected)
    if missing or unexpected:
        raise ValueError(f"{source}: BEATs weights do not match the model. Missing: {missing}. Unexpected: {unexpected}.")
    model.load_state_dict(state_dict, strict=True)
    model.eval()
    return model


# =====================================================================================================================
# ChatBridge checkpoints: input files
# =====================================================================================================================
#
# Every input tensor is addressed by its key in the ORIGINAL ChatBridge state dict ("namespace" key): the component
# files' keys get the prefix the checkpoint uses for them (`visual_encoder.`, `audio_encoder.`, `llama_model.`).


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    dtype: torch.dtype


_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}  # fmt: skip


class InputFile:
    """One file of tensors, read lazily: its key list once, then only the tensors asked for.

    `option` is the command-line option that named it, so every error can say what to fix; `prefix` turns the
    file's keys into namespace keys.
    """

    def __init__(self, path: str | os.PathLike, option: str, prefix: str = ""):
        self.path = Path(path)
        self.option = option
        self.prefix = prefix
        self._infos: dict[str, TensorInfo] | None = None
        if not self.path.is_file():
            raise ValueError(f"{self.label}: no such file.")

    @property
    def label(self) -> str:
        return f"{self.path} ({self.option})"

    def infos(self) -> dict[str, TensorInfo]:
        """Namespace key -> shape and dtype, without reading any tensor data."""
        if self._infos is None:
            self._infos = {self.prefix + key: info for key, info in self._read_infos().items()}
        return self._infos

    def read(self, keys: Iterable[str]) -> dict[str, torch.Tensor]:
        """The tensors of these namespace keys (memory-mapped where the format allows)."""
        keys = list(keys)
        return dict(zip(keys, self._read([key[len(self.prefix) :] for key in keys])))

    def _read_infos(self) -> dict[str, TensorInfo]:
        raise NotImplementedError

    def _read(self, keys: list[str]) -> list[torch.Tensor]:
        raise NotImplementedError


def load_torch_file(path: Path, option: str) -> object:
    """`torch.load` on CPU with `weights_only=True`, memory-mapped for zip-format files; damage is a `ValueError`."""
    label = f"{path} ({option})"
    if not path.is_file():
        raise ValueError(f"{label}: no such file.")
    # Only the zip format (torch.save's default since 1.6) can be memory-mapped; a legacy file is read whole.
    mmap = zipfile.is_zipfile(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for damaged files
        raise ValueError(
            f"{label}: cannot be read as a PyTorch checkpoint; is the file complete and undamaged? "
            f"({type(error).__name__}: {error})"
        ) from error


def _state_dict_of(loaded: object, label: str) -> dict[str, torch.Tensor]:
    """The state dict of a loaded file: the LAVIS/BEATs wrappers keep it under "model", EVA files are plain."""
    state_dict = loaded["model"] if isinstance(loaded, dict) and isinstance(loaded.get("model"), dict) else loaded
    if not isinstance(state_dict, dict):
        raise ValueError(f"{label}: expected a state dict (or a dict holding one under 'model'), got {type(loaded)}.")
    not_tensors = sorted(str(key) for key, value in state_dict.items() if not isinstance(value, torch.Tensor))
    if not_tensors:
        raise ValueError(f"{label}: state dict entries that are not tensors: {not_tensors[:10]}.")
    return state_dict


class TorchFile(InputFile):
    """A `torch.save` file: a plain state dict or one under "model" (training-runner, BLIP-2 and BEATs files).

    Zip-format files are memory-mapped anew at every read, so what one shard touched is released before the next.
    A legacy (pre-1.6, non-zip) file cannot be mapped: it is read whole once and kept.
    """

    def __init__(self, path: str | os.PathLike, option: str, prefix: str = ""):
        super().__init__(path, option, prefix)
        self._legacy: object | None = None

    def load(self) -> object:
        if self._legacy is not None:
            return self._legacy
        loaded = load_torch_file(self.path, self.option)
        if not zipfile.is_zipfile(self.path):
            self._legacy = loaded
        return loaded

    def _read_infos(self) -> dict[str, TensorInfo]:
        state_dict = _state_dict_of(self.load(), self.label)
        return {key: TensorInfo(tuple(value.shape), value.dtype) for key, value in state_dict.items()}

    def _read(self, keys: list[str]) -> list[torch.Tensor]:
        state_dict = _state_dict_of(self.load(), self.label)
        return [state_dict[key] for key in keys]


class SafetensorsFile(InputFile):
    """A safetensors file (LLM folders); `safe_open` maps it and copies out only the tensors asked for."""

    def _open(self):
        try:
            return safe_open(self.path, framework="pt")
        except (SafetensorError, OSError) as error:
            raise ValueError(f"{self.label}: cannot be read as safetensors; is the file complete? ({error})") from error

    def _read_infos(self) -> dict[str, TensorInfo]:
        with self._open() as handle:
            return {key: self._info(handle.get_slice(key)) for key in handle.keys()}

    @staticmethod
    def _info(tensor_slice) -> TensorInfo:
        return TensorInfo(tuple(tensor_slice.get_shape()), _SAFETENSORS_DTYPES[tensor_slice.get_dtype()])

    def _read(self, keys: list[str]) -> list[torch.Tensor]:
        with self._open() as handle:
            return [handle.get_tensor(key) for key in keys]


def llm_weight_files(folder: Path, option: str = "--llm") -> list[InputFile]:
    """The weight files of a transformers LLM folder (safetensors preferred, then `.bin`; single or sharded)."""
    candidates = (
        ("model.safetensors.index.json", SafetensorsFile),
        ("model.safetensors", SafetensorsFile),
        ("pytorch_model.bin.index.json", TorchFile),
        ("pytorch_model.bin", TorchFile),
    )
    for name, file_class in candidates:
        path = folder / name
        if not path.is_file():
            continue
        if name.endswith(".index.json"):
            shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
            return [file_class(folder / shard, option, prefix="llama_model.") for shard in shards]
        return [file_class(path, option, prefix="llama_model.")]
    raise ValueError(
        f"{folder} ({option}): no LLM weights found (model.safetensors, pytorch_model.bin or their .index.json)."
    )


# =====================================================================================================================
# ChatBridge checkpoints: parts, allow-lists and the rule table
# =====================================================================================================================


@dataclass(frozen=True)
class Part:
    """A frozen component that a trainable-only checkpoint leaves out and its own file provides."""

    name: str
    option: str  # the option that names its file, and the argument of `convert_checkpoint`
    defining_key: str  # namespace key whose presence means the checkpoint holds the part
    prefix: str  # prefix that turns the file's keys into namespace keys
    take: str = ".*"  # the file's keys (regex, namespace) that the part takes; others must be allow-listed
    unused: str = "not read: the checkpoint holds these weights"  # note when the checkpoint holds the part


PARTS = (
    Part("the EVA ViT weights", "--eva", "visual_encoder.cls_token", "visual_encoder."),
    Part("ln_vision (from the BLIP-2 stage-1 checkpoint)", "--blip2", "ln_vision.weight", "", take=r"ln_vision\..*"),
    Part(
        "the BEATs audio encoder", "--beats", "audio_encoder.patch_embedding.weight", "audio_encoder.",
        unused="only its cfg is used (audio config): the checkpoint holds the BEATs weights",
    ),
    Part(
        "the language model weights", "--llm", "llama_model.model.embed_tokens.weight", "llama_model.",
        unused="only its config.json (and tokenizer) is used: the checkpoint holds the LLM weights",
    ),
)

# Input keys deliberately not converted (namespace regex -> why).
DROPPED_KEYS = {
    r"Qformer\.bert\.embeddings\.position_ids": "buffer of the text embeddings that ChatBridge removes",
    r"llama_model\.(model\.)?layers\.\d+\.self_attn\.rotary_emb\.inv_freq": "rotary buffer, recomputed from the config",
    r"llama_model\.model\.rotary_emb\.inv_freq": "rotary buffer, recomputed from the config",
    r"audio_encoder\.predictor\..*": "BEATs classification head (fine-tuned BEATs files only), not in the encoder",
    r"audio_encoder\.encoder\.layers\.[1-9]\d*\.self_attn\.relative_attention_bias\.weight": (
        "per-layer copy of the relative position bias shared with layer 0; checked equal to it"
    ),
}

# Keys of a real BLIP-2 stage-1 file that ChatBridge overwrites or never uses: only ln_vision survives from it.
BLIP2_IGNORED_KEYS = {
    r"visual_encoder\..*": "EVA weights come from --eva (or the checkpoint)",
    r"Qformer\..*": "superseded by the ChatBridge checkpoint's Q-Former (incl. the Qformer.cls MLM head)",
    r"query_tokens": "superseded by the checkpoint's image_query_tokens",
    r"(vision_proj|text_proj|itm_head)\..*": "BLIP-2 contrastive and matching heads, unused by ChatBridge",
    r"temp": "BLIP-2 contrastive temperature",
}

# Target keys allowed to be absent from every input, with the value they get: the ONE default.
DEFAULT_TARGETS: dict[str, Callable[[torch.Size], torch.Tensor]] = {
    # ln_audio is frozen from stage 1 on and never trained, so trainable-only checkpoints lack it: identity.
    "model.audio_layernorm.weight": torch.ones,
    "model.audio_layernorm.bias": torch.zeros,
}



def _eva_qkv_bias(q_bias: torch.Tensor, v_bias: torch.Tensor) -> torch.Tensor:
    """EVA has q and v biases only; its key bias is fixed at zero."""
    return torch.cat([q_bias, torch.zeros_like(q_bias), v_bias])


def _with_placeholder_rows(weight: torch.Tensor) -> torch.Tensor:
    """Append one row per placeholder token (`<image>`, `<video>`, `<audio>`), each the mean of the existing rows.

    The input-embedding rows are always overwritten by media features, so their value never matters there; as
    lm_head rows, the mean gives a logit equal to the mean of the real logits, which can never be the largest (the
    generation config also suppresses them). The mean is computed in float32.
    """
    mean = weight.float().mean(0, keepdim=True).to(weight.dtype)
    return torch.cat([weight, mean.expand(len(MODALITIES), -1)])


def _identity(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


@dataclass(frozen=True)
class Rule:
    """Source key regex (namespace) -> target key (`re.Match.expand` template or function of the match).

    `also` names further source keys (templates) that `combine` takes after the matched one.
    """

    source: str
    target: str | Callable[[re.Match], str]
    also: tuple[str, ...] = ()
    combine: Callable[..., torch.Tensor] = _identity


_VIT = "model.vision_tower."
_LLM = "model.language_model."
_QF_LAYER = r"Qformer\.bert\.encoder\.layer\.(\d+)\."

# The one table: original ChatBridge key -> ChatBridgeForConditionalGeneration key. First match wins.
RULES = (
    Rule(r"visual_encoder\.cls_token", _VIT + "embeddings.class_embedding"),
    Rule(r"visual_encoder\.pos_embed", _VIT + "embeddings.position_embedding"),
    Rule(r"visual_encoder\.patch_embed\.proj\.(weight|bias)", _VIT + r"embeddings.patch_embedding.\1"),
    Rule(r"visual_encoder\.blocks\.(\d+)\.norm([12])\.(weight|bias)", _VIT + r"encoder.layers.\1.layer_norm\2.\3"),
    Rule(r"visual_encoder\.blocks\.(\d+)\.attn\.qkv\.weight", _VIT + r"encoder.layers.\1.self_attn.qkv.weight"),
    Rule(
        r"visual_encoder\.blocks\.(\d+)\.attn\.q_bias",
        _VIT + r"encoder.layers.\1.self_attn.qkv.bias",
        also=(r"visual_encoder.blocks.\1.attn.v_bias",),
        combine=_eva_qkv_bias,
    ),
    Rule(r"visual_encoder\.blocks\.(\d+)\.attn\.proj\.(\w+)", _VIT + r"encoder.layers.\1.self_attn.projection.\2"),
    Rule(r"visual_encoder\.blocks\.(\d+)\.mlp\.(fc[12])\.(weight|bias)", _VIT + r"encoder.layers.\1.mlp.\2.\3"),
    Rule(r"ln_vision\.(weight|bias)", _VIT + r"post_layernorm.\1"),
    Rule(r"audio_encoder\.(.+)", lambda match: "model.audio_tower." + beats_key_to_hf(match[1])),
    Rule(r"ln_audio\.(weight|bias)", r"model.audio_layernorm.\1"),
    Rule(r"audio_trans\.(weight|bias)", r"model.audio_projection.\1"),
    Rule(r"Qformer\.bert\.embeddings\.LayerNorm\.(weight|bias)", r"model.qformer.layernorm.\1"),
    Rule(
        _QF_LAYER + r"(attention|crossattention)\.self\.(query|key|value)\.(weight|bias)",
        r"model.qformer.encoder.layer.\1.\2.attention.\3.\4",
    ),
    Rule(
        _QF_LAYER + r"((?:attention|crossattention)\.output\.(?:dense|LayerNorm)|intermediate_query\.dense"
        r"|output_query\.(?:dense|LayerNorm))\.(weight|bias)",
        r"model.qformer.encoder.layer.\1.\2.\3",
    ),
    Rule(r"(image_query_tokens|audio_query_tokens)", r"model.\1"),
    Rule(r"llama_proj\.(weight|bias)", r"model.language_projection.\1"),
    Rule(r"llama_model\.model\.(embed_tokens\.weight)", _LLM + r"\1", combine=_with_placeholder_rows),
    Rule(r"llama_model\.lm_head\.weight", "lm_head.weight", combine=_with_placeholder_rows),
    Rule(r"llama_model\.model\.(.+)", _LLM + r"\1"),
)


@dataclass(frozen=True)
class Target:
    """How one tensor of the converted model is made: from these namespace keys, by `combine`."""

    sources: tuple[str, ...]
    combine: Callable[..., torch.Tensor]
    default: Callable[[torch.Size], torch.Tensor] | None = None


def _matches_any(key: str, patterns: Iterable[str]) -> bool:
    return any(re.fullmatch(pattern, key) for pattern in patterns)


def map_keys(keys: Iterable[str]) -> tuple[dict[str, Target], list[str], dict[str, list[str]]]:
    """Apply `RULES` to namespace keys.

    Returns the targets, the source keys no rule takes, and target -> absent extra sources it needs.
    """
    keys = list(keys)
    present = set(keys)
    targets: dict[str, Target] = {}
    matched: set[str] = set()
    incomplete: dict[str, list[str]] = {}
    for key in keys:
        rule, match = next(((rule, m) for rule in RULES if (m := re.fullmatch(rule.source, key))), (None, None))
        if rule is None:
            continue
        target = rule.target(match) if callable(rule.target) else match.expand(rule.target)
        sources = (key, *(match.expand(template) for template in rule.also))
        matched.update(sources)
        if target in targets:
            raise ValueError(f"Two inputs map to `{target}`: `{targets[target].sources[0]}` and `{key}`.")
        if absent := [source for source in sources if source not in present]:
            incomplete[target] = absent
        else:
            targets[target] = Target(sources, rule.combine)
    return targets, [key for key in keys if key not in matched], incomplete


# =====================================================================================================================
# ChatBridge checkpoints: configuration from the tensors
# =====================================================================================================================

# Attention heads cannot be read from weights (q, k, v are square): the released towers' values, by width.
EVA_HEADS_BY_WIDTH = {1408: 16}  # EVA ViT-g/14
QFORMER_HEADS_BY_WIDTH = {768: 12}  # BERT-base
EVA_LAYER_NORM_EPS = 1e-6  # EVA blocks; ln_vision (1e-5) is ChatBridgeConfig.vision_layernorm_eps
QFORMER_LAYER_NORM_EPS = 1e-12  # BERT


def _shape(infos: dict[str, TensorInfo], key: str, why: str) -> tuple[int, ...]:
    if key not in infos:
        raise ValueError(f"`{key}` is missing from the inputs; it is needed for {why}.")
    return infos[key].shape


def _layer_indices(infos: dict[str, TensorInfo], pattern: str) -> list[int]:
    return sorted({int(match[1]) for key in infos if (match := re.match(pattern, key))})


def _heads(width: int, given: int | None, known: dict[int, int], option: str, what: str) -> int:
    if given is not None:
        return given
    if width in known:
        return known[width]
    raise ValueError(
        f"{what} has width {width}: its number of attention heads cannot be read from the weights; pass {option} "
        f"(known widths: {', '.join(f'{w} -> {h} heads' for w, h in known.items())})."
    )


def vision_config_from(infos: dict[str, TensorInfo], num_heads: int | None) -> Blip2VisionConfig:
    """EVA ViT dimensions from its tensors: width (cls token), image size (positions), depth (blocks), MLP (fc1)."""
    width = _shape(infos, "visual_encoder.cls_token", "the EVA width")[-1]
    patch = _shape(infos, "visual_encoder.patch_embed.proj.weight", "the EVA patch size")[-1]
    positions = _shape(infos, "visual_encoder.pos_embed", "the image size")[1]
    grid = math.isqrt(positions - 1)
    if grid * grid != positions - 1:
        raise ValueError(f"`visual_encoder.pos_embed` has {positions} positions: not 1 + a square grid of patches.")
    return Blip2VisionConfig(
        hidden_size=width,
        intermediate_size=_shape(infos, "visual_encoder.blocks.0.mlp.fc1.weight", "the EVA MLP width")[0],
        num_hidden_layers=len(_layer_indices(infos, r"visual_encoder\.blocks\.(\d+)\.")),
        num_attention_heads=_heads(width, num_heads, EVA_HEADS_BY_WIDTH, "--vision-heads", "The EVA ViT"),
        image_size=grid * patch,
        patch_size=patch,
        hidden_act="gelu",
        layer_norm_eps=EVA_LAYER_NORM_EPS,
        qkv_bias=True,
        initializer_range=0.02,
    )


def _cross_attention_frequency(num_layers: int, cross_layers: list[int]) -> int:
    """The `cross_attention_frequency` whose layers (index % frequency == 0) are those holding cross-attention."""
    for frequency in range(1, num_layers + 1):
        if [index for index in range(num_layers) if index % frequency == 0] == cross_layers:
            return frequency
    raise ValueError(
        f"Q-Former cross-attention sits in layers {cross_layers} of {num_layers}: not every n-th layer from layer 0, "
        "which is the only layout Blip2QFormerModel builds."
    )


def qformer_config_from(infos: dict[str, TensorInfo], num_heads: int | None) -> Blip2QFormerConfig:
    """Q-Former width, depth, FFN and cross-attention layout from its keys."""
    width = _shape(infos, "Qformer.bert.embeddings.LayerNorm.weight", "the Q-Former width")[0]
    num_layers = len(_layer_indices(infos, _QF_LAYER))
    cross_layers = _layer_indices(infos, _QF_LAYER + r"crossattention\.")
    return Blip2QFormerConfig(
        hidden_size=width,
        num_hidden_layers=num_layers,
        num_attention_heads=_heads(width, num_heads, QFORMER_HEADS_BY_WIDTH, "--qformer-heads", "The Q-Former"),
        intermediate_size=_shape(
            infos, "Qformer.bert.encoder.layer.0.intermediate_query.dense.weight", "the Q-Former FFN width"
        )[0],
        cross_attention_frequency=_cross_attention_frequency(num_layers, cross_layers),
        layer_norm_eps=QFORMER_LAYER_NORM_EPS,
        use_qformer_text_input=False,
    )


def beats_config_from_tensors(infos: dict[str, TensorInfo]) -> BeatsConfig:
    """BEATs iter3+ dimensions from its tensors, for checkpoints that hold BEATs when no `--beats` cfg is given.

    Heads come from `grep_a` (1, heads, 1, 1); `max_distance` and the dropouts are not in the weights and keep the
    iter3+ values (BeatsConfig defaults).
    """
    prefix = "audio_encoder."
    patch = _shape(infos, prefix + "patch_embedding.weight", "the BEATs patch embedding")
    conv = _shape(infos, prefix + "encoder.pos_conv.0.weight_v", "the BEATs positional convolution")
    hidden = _shape(infos, prefix + "post_extract_proj.weight", "the BEATs width")[0]
    return BeatsConfig(
        hidden_size=hidden,
        num_hidden_layers=len(_layer_indices(infos, re.escape(prefix) + r"encoder\.layers\.(\d+)\.")),
        num_attention_heads=_shape(infos, prefix + "encoder.layers.0.self_attn.grep_a", "the BEATs heads")[1],
        intermediate_size=_shape(infos, prefix + "encoder.layers.0.fc1.weight", "the BEATs FFN width")[0],
        patch_embedding_size=patch[0],
        patch_size=patch[-1],
        conv_bias=prefix + "patch_embedding.bias" in infos,
        num_conv_pos_embeddings=conv[-1],
        num_conv_pos_embedding_groups=hidden // conv[1],
        num_buckets=_shape(infos, prefix + _BEATS_SHARED_REL_BIAS, "the BEATs relative position buckets")[0],
    )


def text_config_from(llm: Path) -> PreTrainedConfig:
    """The LLM's own config.json, with three more vocabulary rows for the placeholder tokens."""
    if not (llm / "config.json").is_file():
        raise ValueError(f"{llm} (--llm): no config.json; the LLM's heads, rope and norms come from it.")
    text_config = AutoConfig.from_pretrained(llm)
    if getattr(text_config, "tie_word_embeddings", False):
        raise ValueError(f"{llm} (--llm): tied input/output embeddings are not supported by the converter.")
    text_config.vocab_size += len(MODALITIES)
    return text_config


def chatbridge_config_from(
    infos: dict[str, TensorInfo],
    llm: Path,
    beats_cfg: dict | None,
    beats_label: str,
    vision_heads: int | None,
    qformer_heads: int | None,
) -> ChatBridgeConfig:
    """Every dimension from the inputs; placeholder ids follow the LLM's vocabulary (image, video, audio)."""
    text_config = text_config_from(llm)
    llm_vocab = text_config.vocab_size - len(MODALITIES)
    if beats_cfg is not None:
        audio_config = beats_config_from_original(beats_cfg, beats_label)
    else:
        audio_config = beats_config_from_tensors(infos)
    return ChatBridgeConfig(
        vision_config=vision_config_from(infos, vision_heads),
        audio_config=audio_config,
        qformer_config=qformer_config_from(infos, qformer_heads),
        text_config=text_config,
        num_image_query_tokens=_shape(infos, "image_query_tokens", "the number of image queries")[1],
        num_audio_query_tokens=_shape(infos, "audio_query_tokens", "the number of audio queries")[1],
        **{f"{modality}_token_id": llm_vocab + offset for offset, modality in enumerate(MODALITIES)},
    )


# =====================================================================================================================
# ChatBridge checkpoints: the conversion
# =====================================================================================================================


@dataclass
class ConversionResult:
    out: Path
    weight_files: list[str]
    total_size: int
    processor_written: bool
    notes: list[str] = field(default_factory=list)


@dataclass
class _Inputs:
    """Namespace key -> the file that holds it, plus what the configuration needs from the component files."""

    owner: dict[str, InputFile]
    infos: dict[str, TensorInfo]
    dropped: dict[str, list[InputFile]]
    beats_cfg: dict | None
    beats_label: str
    notes: list[str]


def _part_sources(part: Part, path: Path) -> list[tuple[str, InputFile]]:
    """The namespace keys a part's own file(s) contribute; the BLIP-2 file gives ln_vision, the rest is allow-listed."""
    part_files = llm_weight_files(path) if part.option == "--llm" else [TorchFile(path, part.option, part.prefix)]
    sources = []
    for part_file in part_files:
        unknown = []
        for key in part_file.infos():
            if re.fullmatch(part.take, key):
                sources.append((key, part_file))
            elif not (part.option == "--blip2" and _matches_any(key, BLIP2_IGNORED_KEYS)):
                unknown.append(key)
        if unknown:
            raise ValueError(f"{part_file.label}: unexpected keys for {part.name}: {unknown[:20]}.")
    return sources


def _beats_cfg(path: Path) -> tuple[dict, str]:
    """The `cfg` of a BEATs release file, which sets the audio config whenever `--beats` is given."""
    beats_file = TorchFile(path, "--beats")
    loaded = beats_file.load()
    if not isinstance(loaded, dict) or not isinstance(loaded.get("cfg"), dict):
        raise ValueError(f"{beats_file.label}: expected a dict with 'cfg' and 'model' (the BEATs release format).")
    return loaded["cfg"], beats_file.label


def _gather_inputs(checkpoint: Path, files: dict[str, Path | None]) -> _Inputs:
    """Checkpoint keys plus, for each part the checkpoint lacks, its own file's keys; a part in neither is an error.

    Keys in `DROPPED_KEYS` are set aside (kept per file, for the relative-bias check). Any other key found twice is
    an error: a part comes from the checkpoint or from its own file, never from both.
    """
    checkpoint_file = TorchFile(checkpoint, "--checkpoint")
    sources: list[tuple[str, InputFile]] = [(key, checkpoint_file) for key in checkpoint_file.infos()]
    notes = []
    for part in PARTS:
        path = files.get(part.option)
        if part.defining_key in checkpoint_file.infos():
            if path is not None:
                notes.append(f"{part.option} {path}: {part.unused}.")
        elif path is None:
            raise ValueError(
                f"{checkpoint_file.label} holds no {part.name} (no `{part.defining_key}`): pass {part.option}."
            )
        else:
            sources += _part_sources(part, path)

    owner: dict[str, InputFile] = {}
    dropped: dict[str, list[InputFile]] = {}
    for key, input_file in sources:
        if _matches_any(key, DROPPED_KEYS):
            dropped.setdefault(key, []).append(input_file)
        elif key in owner:
            raise ValueError(f"`{key}` is in both {owner[key].label} and {input_file.label}.")
        else:
            owner[key] = input_file
    beats_cfg, beats_label = _beats_cfg(files["--beats"]) if files.get("--beats") else (None, "")
    infos = {key: input_file.infos()[key] for key, input_file in owner.items()}
    return _Inputs(owner, infos, dropped, beats_cfg, beats_label, notes)


def _check_relative_bias_copies(inputs: _Inputs) -> None:
    """Every per-layer copy of BEATs' relative position bias, in any input, must equal the shared table it aliases."""
    table_key = "audio_encoder." + _BEATS_SHARED_REL_BIAS
    prefix = "audio_encoder."
    copies = {
        key: files
        for key, files in inputs.dropped.items()
        if key.startswith(prefix) and is_beats_relative_bias_copy(key[len(prefix) :])
    }
    if not copies or table_key not in inputs.owner:
        return
    table_file = inputs.owner[table_key]
    (table,) = table_file.read([table_key]).values()
    for key, files in sorted(copies.items()):
        for input_file in files:
            (copy,) = input_file.read([key]).values()
            if not torch.equal(copy, table):
                raise ValueError(
                    f"{input_file.label}: `{key}` differs from `{table_key}` of {table_file.label}; BEATs shares one "
                    "relative position bias across layers, so every copy must equal it."
                )


def _meta_tensor(info: TensorInfo) -> torch.Tensor:
    return torch.empty(info.shape, dtype=info.dtype, device="meta")


def _output_dtype(name: str, dtype: torch.dtype, cast_to: torch.dtype | None, keep_fp32: set[str]) -> torch.dtype:
    """`--dtype` casts floating tensors, except the modules transformers keeps in float32 at that dtype."""
    if cast_to is None or not dtype.is_floating_point:
        return dtype
    return torch.float32 if keep_fp32.intersection(name.split(".")) else cast_to


def _planned_shapes(
    targets: dict[str, Target], expected: dict[str, TensorInfo], infos: dict[str, TensorInfo]
) -> tuple[dict[str, TensorInfo], list[str]]:
    """Shape and dtype of every target, from running its recipe on meta tensors; and the shapes the model refuses."""
    planned, mismatched = {}, []
    for name, target in targets.items():
        if name not in expected:
            continue
        if target.default is not None:
            planned[name] = expected[name]
            continue
        tensor = target.combine(*(_meta_tensor(infos[key]) for key in target.sources))
        planned[name] = TensorInfo(tuple(tensor.shape), tensor.dtype)
        if planned[name].shape != expected[name].shape:
            sources = ", ".join(target.sources)
            mismatched.append(f"{name} <- {sources}: {list(tensor.shape)}, model expects {list(expected[name].shape)}")
    return planned, mismatched


def _plan_targets(
    inputs: _Inputs, model: ChatBridgeForConditionalGeneration
) -> tuple[dict[str, Target], dict[str, TensorInfo]]:
    """A checked recipe for every parameter and persistent buffer of the (meta) model, in the model's order.

    Missing keys, unexpected keys and shape mismatches are collected and raised together, naming the inputs.
    """
    targets, unexpected, incomplete = map_keys(inputs.owner)
    expected = {name: TensorInfo(tuple(tensor.shape), tensor.dtype) for name, tensor in model.state_dict().items()}
    for name, default in DEFAULT_TARGETS.items():
        if name in expected and name not in targets:
            targets[name] = Target((), _identity, default)
            inputs.notes.append(f"`{name}` is in no input: set to its allow-listed default ({default.__name__}).")
    unexpected += [f"{targets[name].sources[0]} -> {name}" for name in targets if name not in expected]
    needs = {name: "".join(f" (needs `{key}`)" for key in keys) for name, keys in incomplete.items()}
    missing = [name + needs.get(name, "") for name in expected if name not in targets]
    planned, mismatched = _planned_shapes(targets, expected, inputs.infos)
    if missing or unexpected or mismatched:
        lines = ["The inputs do not match the ChatBridge model built from them."]
        sections = {"Missing": missing, "Unexpected (no rule maps them)": unexpected, "Shape mismatch": mismatched}
        lines += [f"{title} ({len(items)}):\n  " + "\n  ".join(items) for title, items in sections.items() if items]
        lines.append(f"Inputs: {', '.join(sorted({input_file.label for input_file in inputs.owner.values()}))}.")
        raise ValueError("\n".join(lines))
    return {name: targets[name] for name in expected}, planned


def _split_into_shards(sizes: dict[str, int], max_shard_size: int) -> dict[str, list[str]]:
    """Greedy split in model order, as `save_pretrained` does (a tensor above the limit gets a shard of its own).

    Returns shard file name -> target names, named like `save_pretrained` names them.
    """
    shards: list[list[str]] = [[]]
    current = 0
    for name, size in sizes.items():
        if shards[-1] and current + size > max_shard_size:
            shards.append([])
            current = 0
        shards[-1].append(name)
        current += size
    if len(shards) == 1:
        return {"model.safetensors": shards[0]}
    return {f"model-{index:05d}-of-{len(shards):05d}.safetensors": names for index, names in enumerate(shards, 1)}


@dataclass
class _Plan:
    """What will be written, decided and checked before any output exists."""

    targets: dict[str, Target]
    planned: dict[str, TensorInfo]  # shape and dtype before the cast
    out_dtypes: dict[str, torch.dtype]
    sizes: dict[str, int]  # bytes on disk
    shards: dict[str, list[str]]


def _plan(
    inputs: _Inputs, model: ChatBridgeForConditionalGeneration, cast_to: torch.dtype | None, max_shard_size: int
) -> _Plan:
    targets, planned = _plan_targets(inputs, model)
    keep_fp32 = set(model._get_dtype_plan(cast_to)) if cast_to is not None else set()
    out_dtypes = {name: _output_dtype(name, info.dtype, cast_to, keep_fp32) for name, info in planned.items()}
    sizes = {name: math.prod(info.shape) * out_dtypes[name].itemsize for name, info in planned.items()}
    return _Plan(targets, planned, out_dtypes, sizes, _split_into_shards(sizes, max_shard_size))


def human_size(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.2f} {unit}"
    return f"{size} B"


def _write_shard(path: Path, names: list[str], inputs: _Inputs, plan: _Plan) -> None:
    """Read the shard's sources (each file opened once, memory-mapped), convert, cast, check, save; then let go."""
    by_file: dict[InputFile, list[str]] = {}
    for name in names:
        for key in plan.targets[name].sources:
            by_file.setdefault(inputs.owner[key], []).append(key)
    loaded: dict[str, torch.Tensor] = {}
    for input_file, keys in by_file.items():
        loaded.update(input_file.read(keys))
    shard = {}
    for name in names:
        target, shape = plan.targets[name], plan.planned[name].shape
        if target.default is not None:
            tensor = target.default(torch.Size(shape))
        else:
            tensor = target.combine(*(loaded[key] for key in target.sources))
        if tuple(tensor.shape) != shape:  # the plan ran the same recipe on meta tensors
            raise RuntimeError(f"`{name}` came out with shape {list(tensor.shape)}, planned {list(shape)}.")
        shard[name] = tensor.to(plan.out_dtypes[name]).contiguous()
    save_file(shard, path, metadata={"format": "pt"})


def _write_index(folder: Path, plan: _Plan) -> None:
    """`model.safetensors.index.json` as `save_pretrained` writes it."""
    index = {
        "metadata": {
            "total_parameters": sum(math.prod(info.shape) for info in plan.planned.values()),
            "total_size": sum(plan.sizes.values()),
        },
        "weight_map": {name: shard for shard, names in plan.shards.items() for name in names},
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def _write_metadata(
    folder: Path, model: ChatBridgeForConditionalGeneration, processor: ChatBridgeProcessor | None
) -> None:
    """Config, remote code, pipeline file and generation config through `save_pretrained` (no weights); processor."""
    config, generation = model.config, model.generation_config
    if processor is not None:
        generation.eos_token_id = stop_token_ids(processor)  # eos and the "###" that ends an answer
        pad = processor.tokenizer.pad_token_id
        generation.pad_token_id = pad if pad is not None else config.text_config.pad_token_id
    else:
        generation.eos_token_id = [config.text_config.eos_token_id]
    # Placeholder rows are never a valid next token.
    generation.suppress_tokens = [getattr(config, f"{modality}_token_id") for modality in MODALITIES]
    # No weights go through save_pretrained (the shards are written separately): its progress bar would mislead.
    bar_was_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        model.save_pretrained(folder, state_dict={})
    finally:
        if bar_was_enabled:
            transformers_logging.enable_progress_bar()
    if processor is not None:
        processor.save_pretrained(folder)


def _write_folder(
    out: Path,
    inputs: _Inputs,
    model: ChatBridgeForConditionalGeneration,
    processor: ChatBridgeProcessor | None,
    plan: _Plan,
    log: Callable[[str], None],
) -> None:
    """Write everything into a fresh sibling folder and rename it to `out` at the end: no half model on failure."""
    work = _prepare_out(out, log)
    try:
        _write_metadata(work, model, processor)
        for shard, names in plan.shards.items():
            _write_shard(work / shard, names, inputs, plan)
            log(f"wrote {shard} ({len(names)} tensors, {human_size(sum(plan.sizes[name] for name in names))})")
        if len(plan.shards) > 1:
            _write_index(work, plan)
        if out.exists():
            out.rmdir()
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _find_tokenizer(tokenizer: Path | None, llm: Path) -> tuple[PreTrainedTokenizerBase | None, str]:
    """The tokenizer given with --tokenizer, else the one in the LLM folder, else None; and where it came from."""
    if tokenizer is not None:
        label = f"{tokenizer} (--tokenizer)"
        if not tokenizer.is_dir():
            raise ValueError(f"{label}: no such folder.")
        try:
            return AutoTokenizer.from_pretrained(tokenizer), label
        except Exception as error:  # transformers raises OSError, ValueError, ... depending on what is wrong
            raise ValueError(f"{label}: cannot load a tokenizer ({error}).") from error
    if any((llm / name).is_file() for name in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
        return AutoTokenizer.from_pretrained(llm), f"{llm} (--llm)"
    return None, ""


def _processor_for(tokenizer: Path | None, llm: Path, config: ChatBridgeConfig) -> ChatBridgeProcessor | None:
    """The Vicuna v0 processor; the tokenizer's placeholder ids must be the model's (LLM vocabulary, then 3 more)."""
    found, label = _find_tokenizer(tokenizer, llm)
    if found is None:
        return None
    vocabulary = len(found)
    processor = build_processor(found, config, "vicuna_v0")
    got = {modality: getattr(processor, f"{modality}_token_id") for modality in MODALITIES}
    wanted = {modality: getattr(config, f"{modality}_token_id") for modality in MODALITIES}
    if got != wanted:
        raise ValueError(
            f"{label}: the tokenizer gives the placeholder tokens ids {got}, the model {wanted} (its LLM vocabulary "
            f"of {wanted['image']} tokens, then the three placeholders). The tokenizer had {vocabulary} tokens; it "
            "must be the LLM's own tokenizer, without <image>/<video>/<audio>."
        )
    return processor


def _meta_model(config: ChatBridgeConfig, dtype: torch.dtype) -> ChatBridgeForConditionalGeneration:
    """The target model on the meta device: its keys and shapes, and the `save_pretrained` conventions, no weights."""
    with torch.device("meta"):
        return ChatBridgeForConditionalGeneration(config).to(dtype)


def _parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in ("float32", "float16", "bfloat16"):
        raise ValueError(f"--dtype {dtype!r}: expected float32, float16 or bfloat16.")
    return getattr(torch, dtype)


def _parse_size(size: int | str) -> int:
    try:
        return convert_file_size_to_int(size)
    except ValueError as error:
        raise ValueError(f"--max-shard-size {size!r}: expected a size like 5GB or 500MB.") from error


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} (--out): exists and is not an empty folder; choose a new path.")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _remove_dead_partials(out: Path, log: Callable[[str], None]) -> None:
    """Remove what killed conversions into `out` left behind (their folders name their process, which is gone)."""
    for partial in out.parent.glob(f".{out.name}.partial-*"):
        pid = partial.name.removeprefix(f".{out.name}.partial-").split("-", 1)[0]
        if partial.is_dir() and pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)
            if partial.exists():
                log(f"could not remove {partial}, left by a conversion that did not finish")
            else:
                log(f"removed {partial}, left by a conversion that did not finish")


def _prepare_out(out: Path, log: Callable[[str], None]) -> Path:
    """A fresh sibling folder to write into (named after this process), renamed to `out` on success."""
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_partials(out, log)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-{os.getpid()}-", dir=out.parent))


def convert_checkpoint(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    llm: str | os.PathLike,
    eva: str | os.PathLike | None = None,
    blip2: str | os.PathLike | None = None,
    beats: str | os.PathLike | None = None,
    tokenizer: str | os.PathLike | None = None,
    dtype: str | torch.dtype | None = None,
    max_shard_size: int | str = "2GB",
    vision_heads: int | None = None,
    qformer_heads: int | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> ConversionResult:
    """Convert an original ChatBridge checkpoint (full or trainable-only) into a ChatBridge folder at `out`.

    `llm` is always needed (its config.json; its weights too when the checkpoint lacks `llama_model.*`). `eva`,
    `blip2` and `beats` are needed when the checkpoint lacks the part they hold. Everything is checked (inputs,
    tokenizer, every key and shape) before anything is written. Without `dtype`, tensors keep their dtypes and the
    config records the LLM's.
    """
    llm, out = Path(llm), Path(out)
    _check_out(out)
    cast_to, max_bytes = _parse_dtype(dtype), _parse_size(max_shard_size)
    files = {"--eva": eva, "--blip2": blip2, "--beats": beats, "--llm": llm}
    inputs = _gather_inputs(Path(checkpoint), {option: Path(path) if path else None for option, path in files.items()})
    _check_relative_bias_copies(inputs)
    config = chatbridge_config_from(
        inputs.infos, llm, inputs.beats_cfg, inputs.beats_label, vision_heads, qformer_heads
    )
    processor = _processor_for(Path(tokenizer) if tokenizer else None, llm, config)
    embedding = inputs.infos.get("llama_model.model.embed_tokens.weight")
    model = _meta_model(config, cast_to or (embedding.dtype if embedding else torch.float32))
    plan = _plan(inputs, model, cast_to, max_bytes)
    _write_folder(out, inputs, model, processor, plan, log)
    return ConversionResult(out, list(plan.shards), sum(plan.sizes.values()), processor is not None, inputs.notes)


# =====================================================================================================================
# `chatbridge convert`
# =====================================================================================================================


__all__ = [
    "beats_config_from_original",
    "convert_beats_state_dict",
    "convert_checkpoint",
    "load_original_beats",
]
