"""Configuration of the BEATs audio encoder (iter3+ variant, the one ChatBridge freezes as its audio tower)."""

from huggingface_hub.dataclasses import strict
from transformers.configuration_utils import PreTrainedConfig


@strict
class BeatsConfig(PreTrainedConfig):
    r"""
    Configuration of [`BeatsModel`]. Defaults reproduce `BEATs_iter3_plus_AS2M`.

    Names follow the wav2vec2 configuration where the two models share a building block
    (`num_conv_pos_embeddings`, `num_conv_pos_embedding_groups`, `feat_extract_activation`), so that
    the positional convolution of wav2vec2 can be reused unchanged. The original BEATs names are given
    in brackets.

    Args:
        hidden_size (`int`, defaults to 768): transformer width (`encoder_embed_dim`).
        num_hidden_layers (`int`, defaults to 12): number of encoder layers (`encoder_layers`).
        num_attention_heads (`int`, defaults to 12): attention heads per layer (`encoder_attention_heads`).
        intermediate_size (`int`, defaults to 3072): feed-forward width (`encoder_ffn_embed_dim`).
        hidden_act (`str`, defaults to `"gelu"`): feed-forward activation (`activation_fn`); exact erf GELU.
        patch_embedding_size (`int`, defaults to 512): channels of the patch convolution (`embed_dim`).
        patch_size (`int`, defaults to 16): square patch side in fbank frames / mel bins (`input_patch_size`).
        conv_bias (`bool`, defaults to `False`): whether the patch convolution has a bias.
        num_conv_pos_embeddings (`int`, defaults to 128): kernel of the positional convolution (`conv_pos`).
        num_conv_pos_embedding_groups (`int`, defaults to 16): groups of the positional convolution (`conv_pos_groups`).
        feat_extract_activation (`str`, defaults to `"gelu"`): activation after the positional convolution.
        num_buckets (`int`, defaults to 320): relative position buckets (both directions together).
        max_distance (`int`, defaults to 800): distance mapped to the last logarithmic bucket.
        layer_norm_eps (`float`, defaults to 1e-5): epsilon of every LayerNorm.
        hidden_dropout (`float`, defaults to 0.0): dropout on residual branches (`dropout`).
        attention_dropout (`float`, defaults to 0.0): dropout on attention probabilities.
        activation_dropout (`float`, defaults to 0.0): dropout after the feed-forward activation.
        input_dropout (`float`, defaults to 0.0): dropout after the patch projection (`dropout_input`).
        layerdrop (`float`, defaults to 0.05): probability of skipping a layer in training (`encoder_layerdrop`).
        initializer_range (`float`, defaults to 0.02): std of the normal init of linear/embedding weights.
        max_source_positions (`int`, defaults to 256): positions the encoder outputs for the longest input the
            feature extractor gives it (1024 fbank frames x 64 mel bins in 16 x 16 patches). Not used by the model:
            serving engines (vLLM) read it, as they read Whisper's, as the bound on one audio item's length.

    Example:

    ```python
    >>> from transformers_chatbridge.configuration_beats import BeatsConfig
    >>> from transformers_chatbridge.modeling_beats import BeatsModel

    >>> model = BeatsModel(BeatsConfig())
    ```"""

    model_type = "beats"

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    patch_embedding_size: int = 512
    patch_size: int = 16
    conv_bias: bool = False
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    feat_extract_activation: str = "gelu"
    num_buckets: int = 320
    max_distance: int = 800
    layer_norm_eps: float = 1e-5
    hidden_dropout: float | int = 0.0
    attention_dropout: float | int = 0.0
    activation_dropout: float | int = 0.0
    input_dropout: float | int = 0.0
    layerdrop: float | int = 0.05
    initializer_range: float = 0.02
    max_source_positions: int = 256

    def validate_architecture(self):
        """Part of `@strict` validation: shapes that the model cannot be built with."""
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` "
                f"({self.num_attention_heads})."
            )
        if self.hidden_size % self.num_conv_pos_embedding_groups != 0:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be divisible by `num_conv_pos_embedding_groups` "
                f"({self.num_conv_pos_embedding_groups})."
            )


__all__ = ["BeatsConfig"]
