"""BEATs audio encoder (iter3+ variant) as ChatBridge runs it: a frozen, post-LayerNorm transformer with deep-norm
residual scaling and a gated relative position bias shared by all layers."""

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled
from transformers.integrations.fsdp import is_fsdp_managed_module
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel
from transformers.models.wav2vec2.modeling_wav2vec2 import Wav2Vec2PositionalConvEmbedding

from .configuration_beats import BeatsConfig


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    # `attention_mask` is the gated relative position bias here: a dense additive float tensor (B, H, T, T).
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value)
    attn_output = attn_output.transpose(1, 2).contiguous()
    return attn_output, attn_weights


class BeatsAttention(nn.Module):
    """Self-attention whose relative position bias is rescaled per query by a gate computed from the query itself."""

    def __init__(self, config: BeatsConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.dropout = config.attention_dropout
        self.is_causal = False

        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)
        # 8 = two gates x 4 partial sums (summed away); the original's layout, kept for weight compatibility.
        self.grep_linear = nn.Linear(self.head_dim, 8)
        self.grep_a = nn.Parameter(torch.ones(1, self.num_heads, 1, 1))

    def forward(
        self, hidden_states: torch.Tensor, position_bias: torch.Tensor, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch_size, seq_len, _ = hidden_states.shape
        head_shape = (batch_size, seq_len, self.num_heads, self.head_dim)

        query_states = self.q_proj(hidden_states).view(head_shape).transpose(1, 2)
        key_states = self.k_proj(hidden_states).view(head_shape).transpose(1, 2)
        value_states = self.v_proj(hidden_states).view(head_shape).transpose(1, 2)

        # The gate reads the unscaled projected query (not the layer input as in WavLM).
        gate_logits = self.grep_linear(query_states).view(batch_size, self.num_heads, seq_len, 2, 4).sum(-1)
        gate_a, gate_b = torch.sigmoid(gate_logits).chunk(2, dim=-1)
        gate = gate_a * (gate_b * self.grep_a - 1.0) + 2.0
        gated_bias = (gate * position_bias).to(query_states.dtype)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query_states,
            key_states,
            value_states,
            gated_bias,
            dropout=0.0 if not self.training else self.dropout,
            scaling=self.scaling,
            **kwargs,
        )
        attn_output = attn_output.reshape(batch_size, seq_len, -1).contiguous()
        attn_output = self.out_proj(attn_output)
        return attn_output, attn_weights


class BeatsEncoderLayer(GradientCheckpointingLayer):
    """Post-LN layer with deep-norm residuals (residual * alpha before each norm)."""

    def __init__(self, config: BeatsConfig):
        super().__init__()
        self.self_attn = BeatsAttention(config)
        self.self_attn_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.activation_fn = ACT2FN[config.hidden_act]
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.activation_dropout = nn.Dropout(config.activation_dropout)
        self.deep_norm_alpha = (2 * config.num_hidden_layers) ** 0.25

    def forward(self, hidden_states: torch.Tensor, position_bias: torch.Tensor, **kwargs) -> torch.Tensor:
        # position_bias is positional so that reentrant checkpointing still propagates its gradient.
        residual = hidden_states
        hidden_states, _ = self.self_attn(hidden_states, position_bias, **kwargs)
        hidden_states = self.self_attn_layer_norm(residual * self.deep_norm_alpha + self.dropout(hidden_states))

        residual = hidden_states
        hidden_states = self.activation_dropout(self.activation_fn(self.fc1(hidden_states)))
        hidden_states = self.fc2(hidden_states)
        hidden_states = self.final_layer_norm(residual * self.deep_norm_alpha + self.dropout(hidden_states))
        return hidden_states


class BeatsEncoder(nn.Module):
    def __init__(self, config: BeatsConfig):
        super().__init__()
        self.config = config
        self.pos_conv_embed = Wav2Vec2PositionalConvEmbedding(config)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)
        # One table for all layers: the original aliases layer 0's embedding in every later layer.
        self.relative_attention_bias = nn.Embedding(config.num_buckets, config.num_attention_heads)
        self.layers = nn.ModuleList([BeatsEncoderLayer(config) for _ in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False

    def _relative_position_bucket(self, relative_position: torch.Tensor) -> torch.Tensor:
        """Bidirectional T5 buckets: exact for short distances, logarithmic up to `max_distance`."""
        num_buckets = self.config.num_buckets // 2
        buckets = (relative_position > 0).to(torch.long) * num_buckets
        distance = relative_position.abs()
        max_exact = num_buckets // 2
        is_small = distance < max_exact
        # clamp(min=1) only keeps log() finite where torch.where picks the exact branch anyway.
        log_ratio = torch.log(distance.clamp(min=1).float() / max_exact) / math.log(
            self.config.max_distance / max_exact
        )
        large = max_exact + (log_ratio * (num_buckets - max_exact)).to(torch.long)
        large = torch.clamp(large, max=num_buckets - 1)
        return buckets + torch.where(is_small, distance, large)

    def compute_position_bias(self, seq_len: int) -> torch.Tensor:
        """(1, heads, seq_len, seq_len) bias, key index minus query index."""
        device = self.relative_attention_bias.weight.device
        positions = torch.arange(seq_len, dtype=torch.long, device=device)
        relative_position = positions[None, :] - positions[:, None]
        bias = self.relative_attention_bias(self._relative_position_bucket(relative_position))
        return bias.permute(2, 0, 1).unsqueeze(0)

    def forward(
        self, hidden_states: torch.Tensor, output_hidden_states: bool = False, **kwargs
    ) -> BaseModelOutput:
        hidden_states = hidden_states + self.pos_conv_embed(hidden_states)
        # layer_norm_first=False: the encoder norm runs once here, before the first layer, not after the last.
        hidden_states = self.layer_norm(hidden_states)
        hidden_states = self.dropout(hidden_states)

        position_bias = self.compute_position_bias(hidden_states.shape[1])
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        synced_gpus = is_deepspeed_zero3_enabled() or is_fsdp_managed_module(self)

        for layer in self.layers:
            skip_the_layer = self.training and self.config.layerdrop > 0.0 and torch.rand([]) < self.config.layerdrop
            # Under ZeRO-3/FSDP every rank has to run every layer to stay in sync.
            if not skip_the_layer or synced_gpus:
                hidden_states = layer(hidden_states, position_bias, **kwargs)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)

        return BaseModelOutput(last_hidden_state=hidden_states, hidden_states=all_hidden_states)


class BeatsPreTrainedModel(PreTrainedModel):
    config: BeatsConfig
    config_class = BeatsConfig
    base_model_prefix = "beats"
    main_input_name = "input_features"
    input_modalities = "audio"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    # The gated relative bias is a dense float additive mask, which flash attention cannot take.
    _supports_flash_attn = False
    _no_split_modules = ["BeatsEncoderLayer"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # Custom-code models are initialised module by module, each for the parameters it owns directly
        # (modules owning none are skipped), so the positional conv is handled through its two owners below.
        std = self.config.initializer_range
        if isinstance(module, parametrize.ParametrizationList):
            # Weight-norm halves of the positional conv (dim=2): direction v ~ N(0, 4 / (kernel * hidden)) as in
            # the original, magnitude g = |v| over all axes but the kernel one, so that the weight starts equal to v.
            weight_g, weight_v = module.original0, module.original1
            conv_std = math.sqrt(4.0 / (weight_v.shape[-1] * self.config.hidden_size))
            init.normal_(weight_v, mean=0.0, std=conv_std)
            init.copy_(weight_g, torch.linalg.vector_norm(weight_v, dim=(0, 1), keepdim=True))
        elif isinstance(module, nn.Conv1d):
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, BeatsAttention):
            init.ones_(module.grep_a)
        elif isinstance(module, (nn.Linear, nn.Conv2d)):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


class BeatsModel(BeatsPreTrainedModel):
    """BEATs encoder: 16x16 fbank patches -> transformer features (no padding mask, no final norm)."""

    def __init__(self, config: BeatsConfig):
        super().__init__(config)
        self.patch_embedding = nn.Conv2d(
            1,
            config.patch_embedding_size,
            kernel_size=config.patch_size,
            stride=config.patch_size,
            bias=config.conv_bias,
        )
        self.layer_norm = nn.LayerNorm(config.patch_embedding_size, eps=config.layer_norm_eps)
        # Absent when the sizes match, as in the original (so its state dict has no such keys).
        self.post_extract_proj = (
            nn.Linear(config.patch_embedding_size, config.hidden_size)
            if config.patch_embedding_size != config.hidden_size
            else None
        )
        self.input_dropout = nn.Dropout(config.input_dropout)
        self.encoder = BeatsEncoder(config)
        self.post_init()

    def forward(
        self,
        input_features: torch.Tensor,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutput | tuple:
        r"""
        input_features (`torch.FloatTensor` of shape `(batch_size, time_frames, mel_bins)`):
            Normalised kaldi fbank, e.g. (B, 1024, 64) in ChatBridge. The output has
            `(time_frames // patch_size) * (mel_bins // patch_size)` tokens, time-major.
        """
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if input_features.dim() != 3:
            raise ValueError(
                f"`input_features` must be (batch, time_frames, mel_bins), got shape {tuple(input_features.shape)}."
            )

        features = input_features.unsqueeze(1).to(self.patch_embedding.weight.dtype)
        features = self.patch_embedding(features)
        # (B, E, T', F') -> (B, T' * F', E): flattening puts the frequency patches of one time step next to each other.
        features = features.flatten(2).transpose(1, 2)
        features = self.layer_norm(features)
        if self.post_extract_proj is not None:
            features = self.post_extract_proj(features)
        features = self.input_dropout(features)

        outputs = self.encoder(features, output_hidden_states=bool(output_hidden_states), **kwargs)
        if not return_dict:
            return tuple(value for value in (outputs.last_hidden_state, outputs.hidden_states) if value is not None)
        return outputs


__all__ = ["BeatsModel", "BeatsPreTrainedModel"]
