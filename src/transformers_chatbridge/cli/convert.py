"""`chatbridge convert`: an original ChatBridge checkpoint into a ChatBridge folder (see `convert`)."""

import argparse

from ..convert.original_checkpoint import convert_checkpoint, human_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="Original ChatBridge checkpoint (full or trainable-only).")
    parser.add_argument(
        "--llm", required=True, help="LLM folder: its config.json, and its weights if the checkpoint lacks them."
    )
    parser.add_argument("--out", required=True, help="New folder for the converted model.")
    parser.add_argument("--eva", help="EVA ViT weights (eva_vit_g.pth), when the checkpoint lacks visual_encoder.*.")
    parser.add_argument("--blip2", help="BLIP-2 stage-1 checkpoint, for ln_vision when the checkpoint lacks it.")
    parser.add_argument("--beats", help="BEATs release file (BEATs_iter3_plus_AS2M.pt); its cfg sets the audio config.")
    parser.add_argument("--tokenizer", help="Tokenizer folder, when --llm has none; the processor is written with it.")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), help="Cast floating weights.")
    parser.add_argument(
        "--max-shard-size", default="2GB", help="Largest weight file (default 2GB: peak memory grows with it)."
    )
    parser.add_argument("--vision-heads", type=int, help="EVA attention heads (default: 16 for width 1408).")
    parser.add_argument("--qformer-heads", type=int, help="Q-Former attention heads (default: 12 for width 768).")


def run(args: argparse.Namespace) -> int:
    try:
        result = convert_checkpoint(
            args.checkpoint, args.out, args.llm, eva=args.eva, blip2=args.blip2, beats=args.beats,
            tokenizer=args.tokenizer, dtype=args.dtype, max_shard_size=args.max_shard_size,
            vision_heads=args.vision_heads, qformer_heads=args.qformer_heads, log=print,
        )  # fmt: skip
    except ValueError as error:
        print(f"chatbridge convert: error: {error}")
        return 2
    for note in result.notes:
        print(f"note: {note}")
    print(f"Wrote {result.out}: {len(result.weight_files)} weight file(s), {human_size(result.total_size)}.")
    if result.processor_written:
        print("Wrote the processor (Vicuna v0 chat template).")
    else:
        print(
            f"No tokenizer in {args.llm} and none given with --tokenizer: wrote the model only, NOT the processor. "
            "Rerun with --tokenizer, or save build_processor(tokenizer, config) into the folder."
        )
    return 0
