# Copyright 2026 The transformers-chatbridge authors. Licensed under the Apache License, Version 2.0.

"""Train ChatBridge with TRL's `SFTTrainer`: stage 1 (alignment) and stage 2 (instruction tuning, optionally LoRA).

`chatbridge train --config RECIPE` (like `trl sft --config RECIPE`), or `training/sft_chatbridge.py` of a checkout
under `accelerate launch`; both run `main` here.

# Stage 1: build from pretrained towers and LLM, train the bridge on caption pairs
```bash
accelerate launch --config_file training/accelerate/ddp.yaml training/sft_chatbridge.py \
    --config training/recipes/stage1_alignment.yaml
```

# Stage 2: instruction-tune the stage 1 checkpoint on MULTIS
```bash
accelerate launch --config_file training/accelerate/ddp.yaml training/sft_chatbridge.py \
    --config training/recipes/stage2_multis.yaml
```

# Stage 2 with LoRA on the LLM (the bridge trains in full), merged into a plain checkpoint at the end
```bash
chatbridge train --config training/recipes/stage2_multis_lora.yaml --merge_lora
```

Every field of `ScriptArguments`, `SFTConfig`, `ModelConfig`, `DatasetMixtureConfig` and `ChatBridgeArguments` can
be set in the YAML file or on the command line (the command line wins). Two TRL fields carry ChatBridge meanings:
`model_name_or_path` is the ChatBridge checkpoint stage 2 starts from, `max_length` is the data collator's longest
sequence (placeholder tokens included; every row is measured before the first step: a longer one stops the run,
naming it, or is left out with `skip_too_long`).

The data come from one of `dataset_paths` (the project's: save_to_disk folders, Hub-style folders as `FOLDER:SPLIT`,
Parquet files or globs, mixed by the probabilities `dataset_weights`), TRL's `dataset_name` (a local folder or file,
or a Hub data set repo) or TRL's `datasets:` block; see `data`.

The output folder is a complete checkpoint: model, processor and a generation config that stops at the chat
separator, so `AutoModelForMultimodalLM.from_pretrained(output_dir)` and `pipeline("chatbridge", model=output_dir)`
load it. A LoRA run's folder is a complete checkpoint too (see `lora`). `--merge_lora` also writes the adapter
merged into the LLM (after QLoRA, `load_in_4bit`: into the full-precision LLM the run started from).
"""

import json
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..modalities import MODALITIES

logger = logging.getLogger(__name__)


@dataclass
class ChatBridgeArguments:
    """What ChatBridge needs beyond TRL's arguments: the stage, where the model comes from, the data."""

    training_stage: str = field(
        default="alignment",
        metadata={"help": "'alignment' (stage 1) or 'instruction' (stage 2, Q-Former dropout 0.1).",
                  "choices": ["alignment", "instruction"]},
    )
    vision_model: str | None = field(default=None, metadata={"help": "Pretrained vision tower folder (stage 1)."})
    audio_model: str | None = field(default=None, metadata={"help": "Pretrained audio tower folder (stage 1)."})
    language_model: str | None = field(
        default=None, metadata={"help": "Pretrained causal LM folder with its tokenizer (stage 1)."}
    )
    chatbridge_config: str | None = field(
        default=None,
        metadata={"help": "ChatBridgeConfig fields (a YAML mapping, or JSON text on the command line) for a model built from components, e.g. "
                  '\'{"qformer_config": {"hidden_size": 768}, "num_image_query_tokens": 32}\'.'},
    )
    chat_template: str = field(
        default="vicuna_v0",
        metadata={"help": "Chat template preset of a processor built from components.",
                  "choices": ["vicuna_v0", "chatml"]},
    )
    dataset_paths: list[str] = field(
        default_factory=list,
        metadata={"help": "Training data: save_to_disk or Hub-style folders (FOLDER or FOLDER:SPLIT; Parquet under "
                          "data/, media beside it) or Parquet files/globs. Or use TRL's dataset_name or datasets: "
                          "instead (one of the three)."},
    )
    dataset_weights: list[float] | None = field(
        default=None, metadata={"help": "Mixing probabilities of `dataset_paths` (normalised)."}
    )
    eval_dataset_paths: list[str] = field(
        default_factory=list, metadata={"help": "Evaluation data, same syntax as `dataset_paths`; not mixed."}
    )
    mixing_stopping_strategy: str = field(
        default="all_exhausted",
        metadata={"help": "`interleave_datasets` stopping strategy for several `dataset_paths`.",
                  "choices": ["first_exhausted", "all_exhausted"]},
    )
    skip_too_long: bool = field(
        default=False, metadata={"help": "Drop (and log) rows longer than `max_length` instead of raising."}
    )
    pack_batches: bool = field(
        default=False,
        metadata={"help": "Lay each batch's rows end to end in rows as wide as its longest (positions restarting at "
                          "each) instead of padding each: the same loss on fewer tokens where attention has no "
                          "variable-length kernel (the CPU, SDPA). TRL's `padding_free` does not take media rows."},
    )
    merge_lora: bool = field(
        default=False,
        metadata={
            "help": "After a LoRA run, also write a plain merged checkpoint to `merged_output_dir` (after QLoRA: the "
            "adapter and the trained bridge on the full-precision `model_name_or_path`)."
        },
    )
    merged_output_dir: str | None = field(
        default=None, metadata={"help": "Where --merge_lora writes (default: OUTPUT_DIR/merged)."}
    )
    tower_output_cache_gib: float = field(
        default=0.0,
        metadata={
            "help": "Keep each media item's output of the frozen towers, up to this many GiB (on the towers' device), "
            "and reuse it in later epochs instead of running the towers again; 0 turns it off. It helps when an item "
            "gives the same input every time (the processor's default uniform frame and segment sampling)."
        },
    )

    decoded_media_cache_gib: float = field(
        default=0.0,
        metadata={
            "help": "Keep decoded image and video files in memory, up to this many GiB (in each data loading process), "
            "and reuse them when a later batch reads the same file and frames instead of decoding it again; 0 turns it "
            "off. The batches are the same as without it."
        },
    )


# --- model ------------------------------------------------------------------------------------------------------------


def build_model_and_processor(chatbridge_args: ChatBridgeArguments, model_args, training_args):
    """Stage 1 composes the model from pretrained parts; otherwise a ChatBridge checkpoint is loaded."""
    import torch
    from transformers import AutoModelForMultimodalLM, AutoProcessor, AutoTokenizer
    from trl import get_quantization_config

    from transformers_chatbridge import ChatBridgeForConditionalGeneration
    from transformers_chatbridge.chat_templates import build_processor, stop_token_ids

    from ..model_source import check_model_source

    dtype = model_args.dtype if model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype)
    components = (chatbridge_args.vision_model, chatbridge_args.audio_model, chatbridge_args.language_model)
    for name, value in zip(("model_name_or_path", "vision_model", "audio_model", "language_model"),
                           (model_args.model_name_or_path, *components)):  # fmt: skip
        if value is not None:  # a recipe's `demo_run/...` before the demo wrote it, say
            check_model_source(f"`{name}`", value)
    if model_args.model_name_or_path is not None:
        if any(components):
            raise ValueError("Give either `model_name_or_path` (a ChatBridge checkpoint) or the three components.")
        load_kwargs = {"dtype": dtype, "revision": model_args.model_revision}
        # QLoRA (`load_in_4bit` with `use_peft`): the LLM's linear layers in 4 bits, towers and bridge as saved,
        # quantized on this process's device. Not passed when None: that would erase the quantization a saved folder
        # records (a QLoRA run's output).
        quantization_config = get_quantization_config(model_args)
        if quantization_config is not None:
            load_kwargs.update(quantization_config=quantization_config, device_map={"": training_args.device})
        if model_args.attn_implementation is not None:
            load_kwargs["attn_implementation"] = model_args.attn_implementation
        model = AutoModelForMultimodalLM.from_pretrained(model_args.model_name_or_path, **load_kwargs)
        processor = AutoProcessor.from_pretrained(model_args.model_name_or_path, revision=model_args.model_revision)
    else:
        if model_args.load_in_4bit or model_args.load_in_8bit:
            raise ValueError(
                "`load_in_4bit`/`load_in_8bit` quantize a ChatBridge checkpoint's LLM (`model_name_or_path`); stage 1 "
                "builds the model from its components in their own dtype."
            )
        if not all(components):
            raise ValueError(
                "Stage 1 builds the model from `vision_model`, `audio_model` and `language_model` (all three); "
                "or give `model_name_or_path` to start from a ChatBridge checkpoint."
            )
        tokenizer = AutoTokenizer.from_pretrained(chatbridge_args.language_model)
        # The placeholders become real tokens of the LLM: the ids the tokenizer gives them (appended after its
        # vocabulary when new, in the order image, video, audio) are the ids the model writes features over.
        tokenizer.add_special_tokens(
            {"extra_special_tokens": ["<image>", "<video>", "<audio>"]}, replace_extra_special_tokens=False
        )
        config_kwargs = chatbridge_args.chatbridge_config or {}
        # A YAML mapping arrives as a dict, the command line gives JSON text.
        config_kwargs = dict(json.loads(config_kwargs) if isinstance(config_kwargs, str) else config_kwargs)
        for modality in MODALITIES:
            config_kwargs[f"{modality}_token_id"] = tokenizer.convert_tokens_to_ids(f"<{modality}>")
        model = ChatBridgeForConditionalGeneration.from_components(*components, dtype=dtype, **config_kwargs)
        processor = build_processor(tokenizer, model.config, chat_template=chatbridge_args.chat_template)
    model.generation_config.eos_token_id = stop_token_ids(processor)
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    return model, processor


def bridge_parameter_names(model) -> list[str]:
    """What `set_training_stage` trains, as named in this model (no PEFT prefix)."""
    return [name for name, parameter in model.named_parameters() if parameter.requires_grad]


def _as_resume_argument(value, output_dir: str):
    """`--resume_from_checkpoint true` -> the newest *complete* checkpoint in `output_dir`.

    TRL passes the flag as a string; the Trainer would take the highest-numbered `checkpoint-N` folder even when the
    run was killed while writing it. `trainer_state.json` is the last file a checkpoint gets, so a folder whose state
    file is missing or unreadable is skipped (and named in the log).
    """
    if isinstance(value, str) and value.lower() in ("false", "no", "0", ""):
        return None
    if not (value is True or isinstance(value, str) and value.lower() in ("true", "yes", "1")):
        return value
    from transformers.trainer_utils import sort_checkpoints

    for path in reversed(sort_checkpoints(output_dir)):
        try:
            with open(os.path.join(path, "trainer_state.json")) as state:
                json.load(state)
            return path
        except (OSError, ValueError):
            logger.warning("Skipping %s: its trainer_state.json is missing or unreadable (the run stopped while "
                           "saving it).", path)
    return True  # none complete: the Trainer reports that no checkpoint was found


# --- script -----------------------------------------------------------------------------------------------------------


def main(script_args, training_args, model_args, chatbridge_args, dataset_args=None):
    import torch
    import transformers
    from packaging.version import Version
    from trl import SFTTrainer, get_peft_config

    import transformers_chatbridge  # noqa: F401  (registers ChatBridge with the Auto classes)

    from ..data import ChatBridgeDataCollator
    from .data import check_row_lengths, training_datasets
    from .lora import (
        enable_bridge_under_peft, lora_checkpoint_callback, merged_in_full_precision, restore_bridge, save_lora_folder
    )  # fmt: skip

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    logger.setLevel(logging.INFO if training_args.should_log else logging.WARNING)

    # The rows stay chat rows until the collator sees them: it renders the template, tokenizes, reads the media
    # and labels the answers per batch. SFTTrainer must not tokenize the data set itself (skip_prepare_dataset), and
    # the Trainer must not drop the `messages`/`images`/`videos`/`audios` columns because the model's forward does
    # not name them (remove_unused_columns=False): without them the collator would get empty rows.
    training_args.dataset_kwargs = {**(training_args.dataset_kwargs or {}), "skip_prepare_dataset": True}
    training_args.remove_unused_columns = False

    peft_config = get_peft_config(model_args)
    if peft_config is not None and isinstance(peft_config.target_modules, (list, set, tuple)):
        # Module names such as q_proj also occur in the audio tower (BEATs): LoRA goes into the LLM only. PEFT
        # matches a string as a regular expression against the full module name.
        names = "|".join(re.escape(name) for name in sorted(peft_config.target_modules))
        peft_config.target_modules = rf"model\.language_model\..*\.(?:{names})"
    if peft_config is not None and model_args.model_name_or_path is None:
        raise ValueError(
            "LoRA starts from a ChatBridge checkpoint (`model_name_or_path`): its adapter is saved against that base. "
            "Run stage 1 without LoRA first (the paper freezes the LLM there)."
        )

    for name in ("tower_output_cache_gib", "decoded_media_cache_gib"):
        if getattr(chatbridge_args, name) < 0:
            raise ValueError(f"`{name}` must be >= 0, got {getattr(chatbridge_args, name)}.")

    # Model and processor. Seeded first, as transformers' example scripts do: the bridge of a model built from
    # components starts from random weights, and the Trainer seeds only when it is created, after them.
    transformers.set_seed(training_args.seed)
    model, processor = build_model_and_processor(chatbridge_args, model_args, training_args)
    for module in model.modules():
        # bitsandbytes' CPU backend repacks 4-bit weights for an inference kernel at their first forward in eval mode,
        # and gradients do not flow through repacked weights: after an evaluation the run would stop learning.
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
    bridge_names = model.set_training_stage(chatbridge_args.training_stage)
    tower_cache = None
    if chatbridge_args.tower_output_cache_gib > 0:
        tower_cache = model.base_model.enable_tower_output_cache(int(chatbridge_args.tower_output_cache_gib * 2**30))
    # A model loaded in bf16/fp16 keeps its frozen parts there; the parameters the optimizer updates stay in fp32.
    for name, parameter in model.named_parameters():
        if parameter.requires_grad and parameter.dtype != torch.float32:
            parameter.data = parameter.data.float()
    logger.info(
        "Stage %r trains %d tensors (%d parameters): %s",
        chatbridge_args.training_stage,
        len(bridge_names),
        sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad),
        ", ".join(bridge_names),
    )

    # Data: a stage trains on its own rows where a data set holds both kinds; every row is measured before step 1.
    stage = {"alignment": 1, "instruction": 2}[chatbridge_args.training_stage]
    train_dataset, eval_dataset = training_datasets(script_args, dataset_args, chatbridge_args, training_args, stage)
    collator = ChatBridgeDataCollator(
        processor,
        max_length=training_args.max_length,
        skip_too_long=chatbridge_args.skip_too_long,
        pack=chatbridge_args.pack_batches,
        media_cache_bytes=int(chatbridge_args.decoded_media_cache_gib * 2**30),
    )
    # `group_by_length` measures `input_ids`, which chat rows lack: it batches by the lengths checked here instead.
    grouped = training_args.train_sampling_strategy == "group_by_length"
    length_column = training_args.length_column_name if grouped else None
    train_dataset = check_row_lengths(train_dataset, collator, length_column=length_column)
    if isinstance(eval_dataset, dict):
        eval_dataset = {name: check_row_lengths(rows, collator) for name, rows in eval_dataset.items()}
    elif eval_dataset is not None:
        eval_dataset = check_row_lengths(eval_dataset, collator)

    # Trainer
    trainer = SFTTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=collator,
        processing_class=processor,
        peft_config=peft_config,
    )
    resume = _as_resume_argument(training_args.resume_from_checkpoint, training_args.output_dir)
    if peft_config is not None:
        enable_bridge_under_peft(trainer.model, bridge_names)
        trainer.model.print_trainable_parameters()
        trainer.add_callback(lora_checkpoint_callback())
        if isinstance(resume, str):
            restore_bridge(model, resume, bridge_names)

    # Train the model
    trainer.train(resume_from_checkpoint=resume)
    trainer.accelerator.print("✅ Training completed.")
    if tower_cache is not None:
        logger.info("Tower output cache: %d items computed, %d reused, %.0f MiB kept.", tower_cache.misses,
                    tower_cache.hits, tower_cache.stored_bytes / 2**20)  # fmt: skip
    if collator.media_cache is not None:
        media_cache = collator.media_cache
        logger.info("Decoded media cache (training process): %d files decoded, %d reused, %.0f MiB kept.",
                    media_cache.misses, media_cache.hits, media_cache.stored_bytes / 2**20)  # fmt: skip

    # Save: the model (a LoRA run: the adapter beside the model it applies to), the processor and a generation
    # config that stops at `###`
    trainer.save_model(training_args.output_dir)
    if trainer.accelerator.is_main_process:
        if peft_config is not None:
            save_lora_folder(trainer.accelerator.unwrap_model(trainer.model), training_args.output_dir)
        model.generation_config.save_pretrained(training_args.output_dir)
    trainer.save_state()  # trainer_state.json: the log history (losses, throughput) next to the model
    trainer.accelerator.print(f"💾 Model saved to {training_args.output_dir}.")

    if peft_config is not None and chatbridge_args.merge_lora:
        trainer.accelerator.wait_for_everyone()
        if trainer.accelerator.is_main_process:
            merged = chatbridge_args.merged_output_dir or os.path.join(training_args.output_dir, "merged")
            if model_args.load_in_4bit or model_args.load_in_8bit:
                merged_model = merged_in_full_precision(
                    model_args.model_name_or_path, training_args.output_dir, bridge_names, model_args.dtype
                )
            else:
                merged_model = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
            merged_model.save_pretrained(merged)
            processor.save_pretrained(merged)
            trainer.accelerator.print(f"💾 Merged checkpoint saved to {merged}.")

    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=script_args.dataset_name)
        trainer.accelerator.print(f"🤗 Model pushed to the Hub in https://huggingface.co/{trainer.hub_model_id}.")

    if Version(transformers.__version__) >= Version("5.18.0"):
        trainer.end()


# Recipes shipped with the package (the miniature world's, which `chatbridge demo` trains with): `--config NAME`.
RECIPES = Path(__file__).parent / "recipes"


def _shipped_recipe_names() -> str:
    return ", ".join(sorted(path.stem for path in RECIPES.glob("*.yaml")))


def make_parser(prog: str | None = None):
    from trl import DatasetMixtureConfig, ModelConfig, ScriptArguments, SFTConfig, TrlParser

    description = (f"Train ChatBridge with TRL's SFTTrainer. --config RECIPE: a YAML file, or a recipe shipped with "
                   f"the package ({_shipped_recipe_names()}); any field below overrides it.")  # fmt: skip
    dataclass_types = (ScriptArguments, SFTConfig, ModelConfig, ChatBridgeArguments, DatasetMixtureConfig)
    return TrlParser(dataclass_types, prog=prog, description=description)


def recipe_path(value: str) -> str:
    """A --config value: an existing file as it is, else the shipped recipe of that name; neither: a ValueError."""
    if os.path.isfile(value):
        return value
    shipped = RECIPES / (value if value.endswith(".yaml") else f"{value}.yaml")
    if shipped.is_file():
        return str(shipped)
    raise ValueError(f"--config {value}: no such file, and no shipped recipe of that name ({_shipped_recipe_names()})")


def train(argv: list[str] | None = None, prog: str | None = None) -> None:
    """Parse a recipe (`--config`, a file or a shipped recipe's name) and command-line overrides as TRL does, then
    train."""
    argv = list(sys.argv[1:] if argv is None else argv)
    for index, argument in enumerate(argv):
        if argument == "--config" and index + 1 < len(argv):
            argv[index + 1] = recipe_path(argv[index + 1])
        elif argument.startswith("--config="):
            argv[index] = "--config=" + recipe_path(argument.split("=", 1)[1])
    main(*make_parser(prog).parse_args_and_config(argv))
