"""Loaders for checkpoints in the original (research code) formats of ChatBridge and its components.

Every loader is strict: a key that is missing, left over, or inconsistent is an error naming the file, never a
silently random or ignored weight.
"""

import os
import re

import torch

from .configuration_beats import BeatsConfig
from .modeling_beats import BeatsModel


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


def convert_beats_state_dict(state_dict: dict[str, torch.Tensor], source: str = "<state_dict>") -> dict:
    """Rename original BEATs keys; the per-layer copies of the shared relative bias must equal layer 0's."""
    shared_key = "encoder.layers.0.self_attn.relative_attention_bias.weight"
    converted = {}
    for key, value in state_dict.items():
        if key.startswith("predictor."):
            continue
        match = _BEATS_LAYER_REL_BIAS.fullmatch(key)
        if match and match.group(1) != "0":
            if shared_key not in state_dict:
                raise ValueError(f"{source}: `{key}` is present but `{shared_key}` is missing.")
            if not torch.equal(value, state_dict[shared_key]):
                raise ValueError(
                    f"{source}: `{key}` differs from `{shared_key}`; this port shares one relative position "
                    "bias across layers, as the original does."
                )
            continue
        converted[_BEATS_RENAMES.get(key, key)] = value
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


__all__ = ["beats_config_from_original", "convert_beats_state_dict", "load_original_beats"]
