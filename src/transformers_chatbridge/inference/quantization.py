"""The commands' `--load-in-4bit` / `--load-in-8bit`: the LLM's linear layers in bitsandbytes' 4 or 8 bits.

The towers and the bridge stay in their dtype (`ChatBridgePreTrainedModel._modules_kept_unquantized`). A run's
settings record the choice, so a resumed output is never continued by a model of another precision.
"""

from __future__ import annotations

import logging

from transformers import BitsAndBytesConfig

BITS = ("4bit", "8bit")


def quantization_config(bits: str | None) -> BitsAndBytesConfig | None:
    """QLoRA's 4-bit settings (NF4, nested quantization, bf16 compute), or LLM.int8(); None for no quantization."""
    if bits is None:
        return None
    if bits == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype="bfloat16",
        )
    if bits == "8bit":
        # LLM.int8 multiplies in fp16 whatever the model's dtype, and bitsandbytes logs so at every matrix product of
        # a bf16 or fp32 model: thousands of lines per answer in a terminal chat.
        logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)
        return BitsAndBytesConfig(load_in_8bit=True)
    raise ValueError(f"quantization must be one of {BITS} or None, got {bits!r}")


def quantization_kwargs(bits: str | None) -> dict:
    """`from_pretrained` keyword arguments for `bits`: none at all without quantization. An explicit
    `quantization_config=None` would reach the loaded config through the Auto classes and erase the quantization a
    saved 4-bit folder (a QLoRA run's) records."""
    return {} if bits is None else {"quantization_config": quantization_config(bits)}
