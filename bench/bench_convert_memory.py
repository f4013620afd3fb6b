"""Peak memory of `chatbridge convert` on a synthetic, GB-sized original checkpoint set.

Writes a trainable-only ChatBridge checkpoint (real BERT-base Q-Former reading 1408-wide memory, 32 + 32 queries,
AdamW state as the training runner saves it), an EVA ViT-g with few blocks, a BLIP-2 stage-1 file, a BEATs iter3+
release file with few layers and a LLaMA folder with Vicuna-13B widths but few layers (`pytorch_model.bin`, fp16, the
largest input file, as in 2023 Vicuna conversions), all with the original key layouts. Then runs the converter CLI in
a fresh subprocess per setting and reads that subprocess's peak RSS (`getrusage(RUSAGE_CHILDREN).ru_maxrss`).

    .venv/bin/python bench/bench_convert_memory.py [--llm-layers 3] [--eva-layers 4] [--repeats 1] [--workdir DIR]
                                                   [--keep] [--json PATH]

Goal: peak RSS <= 1.5 x the largest input file. The synthetic files are deleted afterwards unless --keep. With
`--repeats N` every setting runs N times (fresh processes, settings taking turns) and the table gives the median and
the min-max of the ratio.
"""

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import Blip2QFormerConfig, Blip2QFormerModel, LlamaConfig, LlamaForCausalLM

from benchlib import add_arguments, figure_row, write_json
from transformers_chatbridge.configuration_beats import BeatsConfig
from transformers_chatbridge.modeling_beats import BeatsModel


# Runs argv[1:] as a child and reports that child's peak RSS; a fresh one per setting keeps the maxima apart.
MEASURE = (
    "import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024); sys.exit(rc)"
)

BEATS_ITER3_CFG = {
    "encoder_layers": 12, "encoder_embed_dim": 768, "encoder_ffn_embed_dim": 3072, "encoder_attention_heads": 12,
    "activation_fn": "gelu", "dropout": 0.0, "attention_dropout": 0.0, "activation_dropout": 0.0,
    "encoder_layerdrop": 0.05, "dropout_input": 0.0, "layer_norm_first": False, "conv_bias": False, "conv_pos": 128,
    "conv_pos_groups": 16, "relative_position_embedding": True, "num_buckets": 320, "max_distance": 800,
    "gru_rel_pos": True, "deep_norm": True, "input_patch_size": 16, "layer_wise_gradient_decay_ratio": 0.6,
    "embed_dim": 512, "finetuned_model": False,
}  # fmt: skip


def random_like(shapes: dict[str, tuple[torch.Size, torch.dtype]], seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, (shape, dtype) in shapes.items():
        if dtype.is_floating_point:
            tensors[name] = (torch.randn(shape, generator=generator) * 0.02).to(dtype)
        else:
            tensors[name] = torch.arange(shape.numel()).view(shape).to(dtype)
    return tensors


def meta_shapes(module: torch.nn.Module) -> dict[str, tuple[torch.Size, torch.dtype]]:
    return {name: (tensor.shape, tensor.dtype) for name, tensor in module.state_dict().items()}


def write_llm(folder: Path, layers: int) -> None:
    """Vicuna-13B widths (vocab 32001), `layers` layers, fp16, HF names plus 2023-style rotary inv_freq buffers."""
    config = LlamaConfig(
        vocab_size=32001, hidden_size=5120, intermediate_size=13824, num_hidden_layers=layers, num_attention_heads=40,
        num_key_value_heads=40, max_position_embeddings=2048, rms_norm_eps=1e-6, tie_word_embeddings=False,
    )  # fmt: skip
    config.save_pretrained(folder)
    with torch.device("meta"):
        shapes = meta_shapes(LlamaForCausalLM(config).to(torch.float16))
    state_dict = random_like(shapes, seed=1)
    for layer in range(layers):
        state_dict[f"model.layers.{layer}.self_attn.rotary_emb.inv_freq"] = torch.ones(64)
    torch.save(state_dict, folder / "pytorch_model.bin")


def write_eva(path: Path, layers: int) -> None:
    """EVA ViT-g/14 (width 1408, MLP 6144, 224 px) with `layers` blocks, fp16 like LAVIS' eva_vit_g.pth."""
    width, mlp = 1408, 6144
    shapes = {
        "cls_token": (1, 1, width), "pos_embed": (1, 257, width),
        "patch_embed.proj.weight": (width, 3, 14, 14), "patch_embed.proj.bias": (width,),
    }  # fmt: skip
    for block in range(layers):
        prefix = f"blocks.{block}."
        shapes |= {prefix + f"norm{i}.{p}": (width,) for i in (1, 2) for p in ("weight", "bias")}
        shapes |= {prefix + "attn.q_bias": (width,), prefix + "attn.v_bias": (width,)}
        shapes |= {prefix + "attn.qkv.weight": (3 * width, width), prefix + "attn.proj.weight": (width, width)}
        shapes |= {prefix + "attn.proj.bias": (width,), prefix + "mlp.fc1.weight": (mlp, width)}
        shapes |= {prefix + "mlp.fc1.bias": (mlp,), prefix + "mlp.fc2.weight": (width, mlp)}
        shapes |= {prefix + "mlp.fc2.bias": (width,)}
    torch.save(random_like({k: (torch.Size(s), torch.float16) for k, s in shapes.items()}, seed=2), path)


def write_beats(path: Path, layers: int) -> torch.Tensor:
    """BEATs iter3+ release format with `layers` layers (old weight_norm names, per-layer rel-bias copies)."""
    cfg = {**BEATS_ITER3_CFG, "encoder_layers": layers}
    config = BeatsConfig(
        hidden_size=768, num_hidden_layers=layers, num_attention_heads=12, intermediate_size=3072,
        patch_embedding_size=512,
    )  # fmt: skip
    with torch.device("meta"):
        shapes = meta_shapes(BeatsModel(config))
    tensors = random_like(shapes, seed=3)
    renames = {
        "encoder.pos_conv_embed.conv.parametrizations.weight.original0": "encoder.pos_conv.0.weight_g",
        "encoder.pos_conv_embed.conv.parametrizations.weight.original1": "encoder.pos_conv.0.weight_v",
        "encoder.pos_conv_embed.conv.bias": "encoder.pos_conv.0.bias",
        "encoder.relative_attention_bias.weight": "encoder.layers.0.self_attn.relative_attention_bias.weight",
    }
    original = {renames.get(name, name): tensor for name, tensor in tensors.items()}
    table = original["encoder.layers.0.self_attn.relative_attention_bias.weight"]
    for layer in range(1, layers):
        original[f"encoder.layers.{layer}.self_attn.relative_attention_bias.weight"] = table.clone()
    torch.save({"cfg": cfg, "model": original}, path)
    return table


def write_blip2(path: Path) -> None:
    """ln_vision plus some of the heads a real BLIP-2 stage-1 file holds (ignored by the converter)."""
    shapes = {
        "ln_vision.weight": (1408,), "ln_vision.bias": (1408,), "query_tokens": (1, 32, 768),
        "vision_proj.weight": (256, 768), "text_proj.weight": (256, 768), "itm_head.weight": (2, 768), "temp": (),
    }  # fmt: skip
    torch.save({"model": random_like({k: (torch.Size(s), torch.float32) for k, s in shapes.items()}, seed=4)}, path)


def write_checkpoint(path: Path, relative_bias: torch.Tensor, llm_layers: int) -> None:
    """Trainable-only stage-2 checkpoint as the LAVIS-style filter leaves it, in the training runner's wrapper."""
    config = Blip2QFormerConfig(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        cross_attention_frequency=2, encoder_hidden_size=1408, use_qformer_text_input=False,
    )  # fmt: skip
    with torch.device("meta"):
        qformer = meta_shapes(Blip2QFormerModel(config))
    shapes = {}
    for name, shape in qformer.items():
        name = re.sub(r"^layernorm\.", "embeddings.LayerNorm.", name)
        name = re.sub(r"(attention|crossattention)\.attention\.", r"\1.self.", name)
        shapes["Qformer.bert." + name] = shape
    shapes |= {
        "image_query_tokens": (torch.Size((1, 32, 768)), torch.float32),
        "audio_query_tokens": (torch.Size((1, 32, 768)), torch.float32),
        "audio_trans.weight": (torch.Size((1408, 768)), torch.float32),
        "audio_trans.bias": (torch.Size((1408,)), torch.float32),
        "llama_proj.weight": (torch.Size((5120, 768)), torch.float32),
        "llama_proj.bias": (torch.Size((5120,)), torch.float32),
    }
    model = random_like(shapes, seed=5)
    model["Qformer.bert.embeddings.position_ids"] = torch.arange(512).unsqueeze(0)
    model["audio_encoder.encoder.layers.1.self_attn.relative_attention_bias.weight"] = relative_bias.clone()
    for layer in range(llm_layers):
        model[f"llama_model.model.layers.{layer}.self_attn.rotary_emb.inv_freq"] = torch.ones(64)
    trainable = [name for name in model if name in shapes]
    moments = ("exp_avg", "exp_avg_sq")
    # AdamW state of the trainable parameters, as the runner saves it next to the weights (never read by convert).
    state = {
        index: {"step": torch.tensor(1000.0), **{moment: torch.zeros_like(model[name]) for moment in moments}}
        for index, name in enumerate(trainable)
    }
    groups = [{"lr": 1e-5, "weight_decay": 0.05, "params": list(range(len(trainable)))}]
    optimizer = {"state": state, "param_groups": groups}
    torch.save({"model": model, "optimizer": optimizer, "config": {}, "scaler": {"scale": 65536.0}, "epoch": 4}, path)


def write_inputs(folder: Path, llm_layers: int, eva_layers: int, beats_layers: int) -> dict[str, Path]:
    paths = {
        "--checkpoint": folder / "chatbridge.pth",
        "--eva": folder / "eva_vit_g.pth",
        "--blip2": folder / "blip2_pretrained.pth",
        "--beats": folder / "BEATs_iter3_plus_AS2M.pt",
        "--llm": folder / "llm",
    }
    paths["--llm"].mkdir()
    write_llm(paths["--llm"], llm_layers)
    write_eva(paths["--eva"], eva_layers)
    write_blip2(paths["--blip2"])
    table = write_beats(paths["--beats"], beats_layers)
    write_checkpoint(paths["--checkpoint"], table, llm_layers)
    return paths


def peak_rss(command: list[str]) -> tuple[int, float]:
    """Peak RSS (bytes) and wall time of `command`, run as the only child of a fresh measuring process."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{done.stdout}\n{done.stderr}")
    return int(done.stdout.strip().splitlines()[-1]), time.perf_counter() - started


def settings(paths: dict[str, Path], workdir: Path) -> dict[str, tuple[list[str], Path | None]]:
    """Setting name -> (command, output folder)."""
    convert = [sys.executable, "-m", "transformers_chatbridge.cli", "convert"]
    arguments = [str(part) for option, path in paths.items() for part in (option, path)]

    def conversion(name: str, *options: str) -> tuple[list[str], Path]:
        return [*convert, *arguments, "--out", str(workdir / name), *options], workdir / name

    return {
        "imports only (convert --help)": ([*convert, "--help"], None),
        "default (--max-shard-size 2GB)": conversion("out-default"),
        "--max-shard-size 1GB": conversion("out-1GB", "--max-shard-size", "1GB"),
        "--max-shard-size 1GB --dtype bfloat16": conversion("out-bf16", "--max-shard-size", "1GB", "--dtype=bfloat16"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm-layers", type=int, default=3)
    parser.add_argument("--eva-layers", type=int, default=4)
    parser.add_argument("--beats-layers", type=int, default=3)
    parser.add_argument("--workdir", help="Where to create the folder of synthetic files (default: the temp dir).")
    parser.add_argument("--keep", action="store_true", help="Keep the synthetic files and the converted folders.")
    parser.add_argument("--repeats", type=int, default=1, help="Fresh-process runs of every setting.")
    add_arguments(parser, threads=False)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="chatbridge-convert-bench-", dir=args.workdir))
    try:
        started = time.perf_counter()
        paths = write_inputs(workdir, args.llm_layers, args.eva_layers, args.beats_layers)
        sizes = {str(p.relative_to(workdir)): p.stat().st_size for p in workdir.rglob("*") if p.is_file()}
        print(f"wrote {sum(sizes.values()) / 1e9:.2f} GB of synthetic inputs in {time.perf_counter() - started:.0f} s")
        print(json.dumps({name: f"{size / 1e9:.3f} GB" for name, size in sorted(sizes.items())}, indent=1))
        largest, total = max(sizes.values()), sum(sizes.values())
        print("\n| setting | largest input file | output | peak RSS | peak / largest input | time |")
        print("|---|---|---|---|---|---|")
        measured: dict[str, list[tuple[int, float, int]]] = {}
        for repeat in range(max(1, args.repeats)):
            for name, (command, out) in settings(paths, workdir).items():
                rss, seconds = peak_rss(command)
                written = sum(p.stat().st_size for p in out.iterdir()) if out else 0
                measured.setdefault(name, []).append((rss, seconds, written))
                print(
                    f"| {name} | {largest / 1e9:.2f} GB | {written / 1e9:.2f} GB | {rss / 1e9:.2f} GB | "
                    f"{rss / largest:.2f}x | {seconds:.0f} s |",
                    flush=True,
                )
                if out and not args.keep:
                    shutil.rmtree(out)
        print("\ngoal: peak RSS <= 1.5x the largest input file")
        rows = []
        for name, runs in measured.items():
            conversion = not name.startswith("imports")
            rows.append(figure_row(
                f"`chatbridge convert` peak RSS / largest input file: {name}", [rss / largest for rss, _, _ in runs],
                "<= 1.5x" if conversion else "", peer=f"largest input file ({largest / 1e9:.2f} GB)",
                details=f"peak {max(rss for rss, _, _ in runs) / 1e9:.2f} GB (= "
                f"{max(rss for rss, _, _ in runs) / total:.2f}x all {total / 1e9:.2f} GB of inputs)"
                + (f", wrote {runs[0][2] / 1e9:.2f} GB" if conversion else "")
                + f", {statistics.median(seconds for _, seconds, _ in runs):.0f} s",
            ))  # fmt: skip
        write_json(
            args, "Checkpoint converter: peak memory against input size", rows,
            f"synthetic original checkpoint set of {total / 1e9:.2f} GB (LLaMA with Vicuna-13B widths and "
            f"{args.llm_layers} layers as one fp16 `pytorch_model.bin` of {largest / 1e9:.2f} GB, EVA ViT-g with "
            f"{args.eva_layers} blocks, BEATs iter3+ with {args.beats_layers} layers, BLIP-2 stage 1, a stage-2 "
            f"checkpoint with AdamW state); each setting a fresh process, {max(1, args.repeats)} run(s) each, peak "
            "RSS from `getrusage(RUSAGE_CHILDREN)`",
        )  # fmt: skip
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
