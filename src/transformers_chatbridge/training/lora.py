"""LoRA runs whose folders load as the trained model.

PEFT saves an adapter against a base it names; ChatBridge also trains its bridge beside the adapter, which PEFT's
`modules_to_save` cannot hold (the query tokens are plain parameters). So a LoRA run's folder (and each of its
`checkpoint-N`) is the complete model the adapter applies to, bridge included, with `adapter_config.json` beside it:
transformers loads it as that model with the adapter on top.
"""

import json
import os


def enable_bridge_under_peft(peft_model, bridge_names: list[str]) -> None:
    """`get_peft_model` freezes everything but the adapters; the bridge trains in full as well.

    PEFT's `modules_to_save` cannot hold the query tokens (plain `nn.Parameter`s, not modules), so the bridge's
    `requires_grad` is switched back on and `save_lora_folder` writes the model the adapter applies to (with that
    bridge) beside the adapter.
    """
    base = peft_model.get_base_model()
    parameters = dict(base.named_parameters())
    for name in bridge_names:
        parameters[name].requires_grad_(True)


def save_lora_folder(peft_model, folder: str) -> None:
    """Make an adapter folder a complete checkpoint: the model the adapter applies to (towers, the bridge trained with
    it, the LLM without LoRA) as `config.json` + `model.safetensors` beside `adapter_config.json`.

    transformers loads such a folder as that model with the adapter on top (`from_pretrained`, `pipeline`); the
    adapter's `base_model_name_or_path` names the folder itself, so PEFT's own loaders find the same base.
    """
    from peft.mapping import PEFT_TYPE_TO_PREFIX_MAPPING

    base = peft_model.get_base_model()
    prefix = PEFT_TYPE_TO_PREFIX_MAPPING[peft_model.peft_config[peft_model.active_adapter].peft_type]
    state_dict = {
        name.replace(".base_layer.", "."): tensor for name, tensor in base.state_dict().items() if prefix not in name
    }
    # A quantized model's `save_pretrained` replaces a given state dict by its quantizer's (for bitsandbytes: none,
    # so the model's own, LoRA layers included); the quantization settings are in the config either way.
    quantizer, base.hf_quantizer = getattr(base, "hf_quantizer", None), None
    try:
        base.save_pretrained(folder, state_dict=state_dict)
    finally:
        base.hf_quantizer = quantizer
    adapter_config = os.path.join(folder, "adapter_config.json")
    with open(adapter_config) as file:
        settings = json.load(file)
    settings["base_model_name_or_path"] = os.path.abspath(folder)
    with open(adapter_config, "w") as file:
        json.dump(settings, file, indent=2, sort_keys=True)


def merged_in_full_precision(start: str, folder: str, bridge_names: list[str], dtype: str | None = None):
    """After QLoRA: the model the run started from, in full precision, with the trained bridge and the adapter merged
    into its LLM. Merging into the 4-bit weights would round the merged weights to 4 bits again."""
    from peft import PeftModel
    from transformers import AutoModelForMultimodalLM

    model = AutoModelForMultimodalLM.from_pretrained(start, dtype=dtype or "auto")
    restore_bridge(model, folder, bridge_names)
    return PeftModel.from_pretrained(model, folder).merge_and_unload()


def restore_bridge(model, checkpoint: str, bridge_names: list[str]) -> None:
    """Resuming a LoRA run: the Trainer restores the adapter only; the bridge comes from the checkpoint's model."""
    import torch
    from safetensors import safe_open

    index = os.path.join(checkpoint, "model.safetensors.index.json")
    if os.path.isfile(index):
        with open(index) as file:
            files = {name: os.path.join(checkpoint, shard) for name, shard in json.load(file)["weight_map"].items()}
    else:
        files = dict.fromkeys(bridge_names, os.path.join(checkpoint, "model.safetensors"))
    missing = [name for name in bridge_names if name not in files or not os.path.isfile(files[name])]
    if missing:
        raise FileNotFoundError(f"Checkpoint {checkpoint} lacks the bridge it trained: {missing[:5]} not found.")
    by_file: dict[str, list[str]] = {}
    for name in bridge_names:
        by_file.setdefault(files[name], []).append(name)
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for path, names in by_file.items():  # each shard opened once
            with safe_open(path, "pt") as weights:
                for name in names:
                    parameters[name].copy_(weights.get_tensor(name))


def _as_one_shard_index(folder: str) -> None:
    """`model.safetensors` -> `model-00001-of-00001.safetensors` and its index: transformers loads either, but the
    Trainer resumes from a folder holding `model.safetensors` by loading it into the PEFT wrapper (whose names differ,
    so nothing loads), and takes its adapter branch only when that file is absent."""
    from safetensors import safe_open

    shard = "model-00001-of-00001.safetensors"
    os.replace(os.path.join(folder, "model.safetensors"), os.path.join(folder, shard))
    with safe_open(os.path.join(folder, shard), "pt") as weights:
        weight_map = dict.fromkeys(weights.keys(), shard)
    index = {"metadata": {"total_size": os.path.getsize(os.path.join(folder, shard))}, "weight_map": weight_map}
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as file:
        json.dump(index, file, indent=2, sort_keys=True)


def lora_checkpoint_callback():
    """Each `checkpoint-N` of a LoRA run becomes a complete folder too (see `save_lora_folder`)."""
    from transformers import TrainerCallback

    class SaveLoraFolder(TrainerCallback):
        def on_save(self, args, state, control, model=None, **kwargs):
            if state.is_world_process_zero:
                folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
                save_lora_folder(model, folder)
                if os.path.isfile(os.path.join(folder, "model.safetensors")):
                    _as_one_shard_index(folder)

    return SaveLoraFolder()
