"""What do a static cache and a compiled forward buy `generate`, against the default dynamic cache?

Goal (information on the CPU; the GPU figure lives in `gpu_real_size.py`): the same greedy ids in all three settings,
and the decoding speed of each as a ratio to the dynamic cache in the same run.

Builds the tiny random model with a wider language model (so that decoding is not all Python overhead), prompts
with one image each, and times `generate` of `--new-tokens` tokens at each batch size: the dynamic cache, a static
cache, and a static cache with the forward compiled by `torch.compile` (inductor, full graph; the prefill runs
uncompiled, as `generate` does). The compiled warm-up (graph capture and code generation) is timed on its own.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import CompileConfig, LlamaConfig

from benchlib import Row, add_arguments, figure_row, markdown_table, set_threads, write_json
from transformers_chatbridge.testing import build_tiny_tokenizer, tiny_chatbridge

TITLE = "Static cache and compiled decoding against the dynamic cache"


def compile_config() -> CompileConfig:
    config = CompileConfig(fullgraph=True, mode="default")
    config._compile_all_devices = True  # generate compiles on accelerators only unless told otherwise
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--hidden-size", type=int, default=256, help="width of the language model")
    add_arguments(parser)
    args = parser.parse_args()
    set_threads(args)

    tokenizer = build_tiny_tokenizer()
    text_config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=args.hidden_size, intermediate_size=4 * args.hidden_size,
        num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )  # fmt: skip
    model, processor = tiny_chatbridge(text_config=text_config)
    model.eval()
    size = model.config.vision_config.image_size
    settings = {"max_new_tokens": args.new_tokens, "min_new_tokens": args.new_tokens, "do_sample": False}
    modes = {
        "dynamic cache": {},
        "static cache": {"cache_implementation": "static"},
        "static cache + compiled forward": {"cache_implementation": "static", "compile_config": compile_config()},
    }

    rows: list[Row] = []
    notes = []
    with torch.inference_mode():
        for batch in args.batch_sizes:
            texts = [f"<image>What colour is shape {index}?" for index in range(batch)]
            images = [torch.rand(3, size, size) for _ in range(batch)]
            inputs = processor(text=texts, images=images, return_tensors="pt")
            ids, seconds = {}, {}
            for mode, extra in modes.items():
                started = time.perf_counter()
                ids[mode] = model.generate(**inputs, **settings, **extra)  # warm-up (compiles the compiled mode)
                if "compile_config" in extra:
                    notes.append(f"batch {batch}: compiling took {time.perf_counter() - started:.1f} s (once)")
                seconds[mode] = []
            for _ in range(args.runs):  # modes alternate, so drift hits them alike
                for mode, extra in modes.items():
                    started = time.perf_counter()
                    model.generate(**inputs, **settings, **extra)
                    seconds[mode].append(time.perf_counter() - started)
            same = all(torch.equal(ids[mode], ids["dynamic cache"]) for mode in modes)
            for mode in list(modes)[1:]:
                speedups = [dynamic / other for dynamic, other in zip(seconds["dynamic cache"], seconds[mode])]
                rows.append(figure_row(
                    f"{mode} / dynamic cache, `generate` speed, batch {batch}", speedups, peer="dynamic cache",
                    details=f"{batch * args.new_tokens / statistics.median(seconds[mode]):.0f} against "
                            f"{batch * args.new_tokens / statistics.median(seconds['dynamic cache']):.0f} tokens/s; "
                            f"greedy ids {'identical' if same else '**differ**'}",
                ))  # fmt: skip
            if not same:
                raise SystemExit(f"batch {batch}: greedy ids differ between cache settings")

    print(f"## {TITLE}\n")
    print(markdown_table(rows))
    for note in notes:
        print(f"- {note}")
    write_json(args, TITLE, rows, settings=f"LLM width {args.hidden_size}, 4 layers, {args.new_tokens} new tokens, "
               f"{args.runs} runs", notes=notes)  # fmt: skip


if __name__ == "__main__":
    main()
