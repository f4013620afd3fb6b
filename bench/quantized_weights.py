"""ChatBridge-13B's weights in bf16, 8-bit (LLM.int8) and 4-bit (NF4, nested) as the commands load them, on the CPU.

What `--load-in-8bit` / `--load-in-4bit` quantize is the LLM's linear layers; the towers, the Q-Former, the queries,
the projections, the embeddings and the head keep their dtype. So the 13B's weights are measured in parts: one LLaMA
decoder layer at its real width (5120 wide, 13824 in the MLP) is saved in bf16 and loaded by `from_pretrained` with
each quantization config, and its bytes (every tensor its state dict holds, quantization scales included) are
multiplied by the 40 layers; everything kept unquantized is counted from the real configuration in bf16. Peak memory
and speed need a GPU (`bench/gpu_real_size.py`); this gives the floor a GPU must hold.

    python bench/quantized_weights.py
"""

from __future__ import annotations

import tempfile

import torch
from transformers import AutoModelForMultimodalLM, LlamaConfig

from benchlib import simple_table
from transformers_chatbridge import ChatBridgeConfig, ChatBridgeForConditionalGeneration
from transformers_chatbridge.inference.quantization import quantization_kwargs
from transformers_chatbridge.testing import build_tiny_tokenizer, tiny_chatbridge

GIB = 1024**3


def state_bytes(module: torch.nn.Module) -> int:
    return sum(tensor.numel() * tensor.element_size() for tensor in module.state_dict().values())


def parameter_counts() -> tuple[int, int, int]:
    """Parameters of the real model's LLM decoder layers and of everything else (counted on the meta device), and
    its number of decoder layers."""
    with torch.device("meta"):
        model = ChatBridgeForConditionalGeneration(ChatBridgeConfig())
    layers = sum(parameter.numel() for parameter in model.model.language_model.layers.parameters())
    total = sum(parameter.numel() for parameter in model.parameters())
    return layers, total - layers, model.config.text_config.num_hidden_layers


def layer_bytes(folder: str, bits: str | None) -> int:
    model = AutoModelForMultimodalLM.from_pretrained(folder, dtype=torch.bfloat16, **quantization_kwargs(bits))
    return state_bytes(model.model.language_model.layers[0])


def main() -> None:
    layer_parameters, rest_parameters, num_layers = parameter_counts()
    real = ChatBridgeConfig().text_config
    tokenizer = build_tiny_tokenizer()
    text_config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=real.hidden_size, intermediate_size=real.intermediate_size,
        num_hidden_layers=1, num_attention_heads=real.num_attention_heads, num_key_value_heads=real.num_key_value_heads,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        model, _ = tiny_chatbridge(text_config=text_config)
        model.to(torch.bfloat16).save_pretrained(folder)
        del model
        full_layer = None
        for bits in (None, "8bit", "4bit"):
            one_layer = layer_bytes(folder, bits)
            full_layer = full_layer or one_layer
            llm = one_layer * num_layers
            rest = rest_parameters * 2  # bf16
            rows.append([
                bits or "bf16", f"{one_layer / 2**20:,.0f} MiB", f"{llm / GIB:.2f}", f"{rest / GIB:.2f}",
                f"{(llm + rest) / GIB:.2f}", f"{one_layer / full_layer:.3f}x",
            ])  # fmt: skip
    print(f"ChatBridge-13B: {layer_parameters / 1e9:.2f} B parameters in {num_layers} decoder layers, "
          f"{rest_parameters / 1e9:.2f} B elsewhere (towers, Q-Former, queries, projections, embeddings, head)")
    print(simple_table(
        ["LLM layers", "one layer", "layers GiB", "unquantized GiB", "weights GiB", "layer / bf16"], rows
    ))  # fmt: skip


if __name__ == "__main__":
    main()
