"""`chatbridge publish`: check a ChatBridge folder, render its model card and upload it to the Hugging Face Hub.

`publish(folder, repo_id)` runs, in order:

1. the cheap checks: the repo id (huggingface_hub's validator) and, unless `dry_run`, a token (`--token` or
   `huggingface_hub.get_token()`), so that a run that cannot upload stops before any work;
2. the folder loads: config, weights, processor, and a one-token `generate` on a text-only prompt; a missing or
   broken file is named;
3. the folder carries its remote code (every module named by an `auto_map` or `custom_pipelines`, and what those
   import), so the repo loads with `trust_remote_code=True` where this package is not installed; if not, the loaded
   model and processor are saved again, which writes the code;
4. the model card (`hub/model_card.md`, rendered with `huggingface_hub.ModelCard`) from the config, the
   training record in the folder (`trainer_state.json`, recipe YAML) and `eval_results` files;
5. `create_repo(exist_ok=True)` then one `upload_folder` commit, or with `dry_run=OUT` the same files written to OUT
   and no network at all.

Why `upload_folder` and not `upload_large_folder`: a model is a few dozen files at most (ChatBridge-13B: ~26 GB in
a dozen 2 GB shards), and one commit means the repo never shows weights without their config, code or card. Large
files go through the regular LFS/Xet path, which uploads each file in parts and skips blobs the Hub already holds,
so rerunning after a failure re-sends only what did not arrive. `upload_large_folder` pays off for thousands of
files or hundreds of GB, at the price of many commits, no commit message and no atomicity.

Pipeline tag: "any-to-any", not "image-text-to-text". ChatBridge reads images, videos and audio (any mix) and writes
text; "image-text-to-text" would hide two of its three modalities from Hub search and widgets, while the Hub's
"any-to-any" is the task of multimodal-input models and the task transformers serves with `AutoModelForMultimodalLM`,
the class this model registers.

`publish_dataset(dataset_dir, repo_id)` does the same for a built data set folder (see its docstring).
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData
from huggingface_hub.utils import HFValidationError, validate_repo_id

from ..modalities import MEDIA_COLUMNS

PIPELINE_TAG = "any-to-any"
LIBRARY_NAME = "transformers"
DEFAULT_LICENSE = "apache-2.0"
TAGS = ("chatbridge", "multimodal", "image", "video", "audio")
CARD_TEMPLATE = "model_card.md"

CITATION = """@article{zhao2023chatbridge,
  title   = {{ChatBridge}: Bridging Modalities with Large Language Model as a Language Catalyst},
  author  = {Zhao, Zijia and Guo, Longteng and Yue, Tongtian and Chen, Sihan and Shao, Shuai and Zhu, Xinxin and
             Yuan, Zehuan and Liu, Jing},
  journal = {arXiv preprint arXiv:2305.16103},
  year    = {2023},
  url     = {https://arxiv.org/abs/2305.16103}
}"""

WEIGHT_FILES = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
)
WEIGHT_PATTERNS = (
    "model*.safetensors", "model.safetensors.index.json", "pytorch_model*.bin", "pytorch_model.bin.index.json",
)
# A LoRA run's folder: the adapter beside the complete model it applies to (see transformers_chatbridge.training.lora).
ADAPTER_CONFIG = "adapter_config.json"
# The only files uploaded, all at the folder's top level (the card, README.md, is rendered anew): configuration,
# weights (a LoRA folder's adapter too), processor and tokenizer, module code for remote code, the training record.
# Anything else a folder holds (checkpoints, `merged/`, logs, `.env`, wandb/ ...) stays on the disk.
ALLOWED_PATTERNS = (
    "config.json", "generation_config.json", *WEIGHT_PATTERNS, ADAPTER_CONFIG, "adapter_model.safetensors",
    "processor_config.json", "preprocessor_config.json", "video_preprocessor_config.json", "tokenizer.json",
    "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json", "added_tokens.json", "chat_template.jinja",
    "chat_template.json", "*.py", "trainer_state.json", "*.yaml", "*.yml",
)
CONFIG_FILES_WITH_AUTO_MAP = (
    "config.json", "processor_config.json", "tokenizer_config.json", "preprocessor_config.json",
    "video_preprocessor_config.json",
)
# Training settings worth a line in the card when a recipe names them.
RECIPE_SETTINGS = (
    "training_stage", "learning_rate", "lr_scheduler_type", "warmup_steps", "weight_decay", "max_steps",
    "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "use_peft",
    "dtype", "seed",
)
BASE_MODEL_SETTINGS = ("model_name_or_path", "vision_model", "audio_model", "language_model")


class PublishError(ValueError):
    """A folder, repo id, token or results file that cannot be published; the message names it."""


# --- cheap checks -----------------------------------------------------------------------------------------------------


def check_repo_id(repo_id: str) -> str:
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise PublishError(f"invalid --repo-id {repo_id!r}: {error}") from None
    if repo_id.count("/") != 1:
        raise PublishError(f"invalid --repo-id {repo_id!r}: expected 'namespace/name' (a user or organisation, a name)")
    return repo_id


def resolve_token(token: str | None) -> str:
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise PublishError(
            "no Hugging Face token: pass --token, set HF_TOKEN or run `hf auth login` (or use --dry-run OUT, which "
            "needs no token)"
        )
    return token


# --- the folder loads -------------------------------------------------------------------------------------------------


def _weights_file(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            path = folder / name
            break
    else:
        raise PublishError(
            f"{folder}: no weights: model.safetensors (or a sharded model.safetensors.index.json) is missing"
        )
    if path.name.endswith(".index.json"):
        try:
            shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
        except (ValueError, KeyError) as error:
            raise PublishError(f"{path}: broken weight index ({error})") from None
        missing = [shard for shard in shards if not (folder / shard).is_file()]
        if missing:
            raise PublishError(f"{folder}: weight shard(s) named in {path.name} are missing: {', '.join(missing)}")
    return path


def load_folder(folder: Path):
    """Config, model and processor of `folder`, checked by a one-token `generate`; errors name the file."""
    import torch
    import transformers_chatbridge  # noqa: F401  (registers ChatBridge with the Auto classes)
    from transformers import AutoConfig, AutoModelForMultimodalLM, AutoProcessor

    if not folder.is_dir():
        raise PublishError(f"{folder} is not a folder")
    if not (folder / "config.json").is_file():
        raise PublishError(f"{folder}: config.json is missing")
    try:
        config = AutoConfig.from_pretrained(folder)
    except Exception as error:
        raise PublishError(f"{folder / 'config.json'} is broken: {error}") from error
    if config.model_type != "chatbridge":
        raise PublishError(f"{folder / 'config.json'}: model_type is {config.model_type!r}, not 'chatbridge'")

    weights = _weights_file(folder)
    try:
        model = AutoModelForMultimodalLM.from_pretrained(folder, dtype="auto").eval()
    except Exception as error:
        raise PublishError(f"{weights} does not load: {error}") from error

    for name in ("processor_config.json", "tokenizer_config.json"):
        if not (folder / name).is_file():
            raise PublishError(f"{folder}: {name} is missing (save the processor with the model)")
    if not any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer.model")):
        raise PublishError(f"{folder}: tokenizer.json is missing (save the processor with the model)")
    try:
        processor = AutoProcessor.from_pretrained(folder)
    except Exception as error:
        raise PublishError(
            f"{folder / 'processor_config.json'} (or the tokenizer files) does not load: {error}"
        ) from error
    if getattr(processor, "chat_template", None) is None:
        raise PublishError(f"{folder}: the processor has no chat template (chat_template.jinja is missing)")

    messages = [{"role": "user", "content": [{"type": "text", "text": "Hello."}]}]
    try:
        inputs = processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        ).to(model.device)
        with torch.no_grad():
            output = model.generate(**inputs, max_new_tokens=1, min_new_tokens=1, do_sample=False)
    except Exception as error:
        raise PublishError(f"{folder}: a one-token generate on a text prompt fails: {error}") from error
    if output.shape[1] != inputs["input_ids"].shape[1] + 1:
        raise PublishError(f"{folder}: a one-token generate returned {output.shape[1]} tokens for a prompt of "
                           f"{inputs['input_ids'].shape[1]}")
    return config, model, processor


# --- remote code ------------------------------------------------------------------------------------------------------


def _auto_map_modules(value) -> set[str]:
    """Module names in every `auto_map` (at any depth) of a JSON object: "module.Class" -> "module"."""
    modules = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "auto_map" and isinstance(item, dict):
                for reference in item.values():
                    for entry in reference if isinstance(reference, list) else [reference]:
                        if isinstance(entry, str):
                            modules.add(entry.split("--")[-1].rsplit(".", 1)[0])
            else:
                modules |= _auto_map_modules(item)
    return modules


def missing_remote_code(folder: Path) -> list[str]:
    """What `trust_remote_code=True` would miss in `folder`: absent maps, pipeline, module files; [] when complete."""
    from transformers.dynamic_module_utils import get_relative_imports

    from ..modeling_chatbridge import REMOTE_CODE_AUTO_MAP, REMOTE_CODE_PIPELINE

    config = json.loads((folder / "config.json").read_text())
    auto_map = config.get("auto_map") or {}
    missing = [f"config.json auto_map[{name!r}]" for name in REMOTE_CODE_AUTO_MAP if name not in auto_map]
    pipelines = config.get("custom_pipelines") or {}
    missing += [f"config.json custom_pipelines[{task!r}]" for task in REMOTE_CODE_PIPELINE if task not in pipelines]
    processor_config = folder / "processor_config.json"
    if "AutoProcessor" not in json.loads(processor_config.read_text()).get("auto_map", {}):
        missing.append("processor_config.json auto_map['AutoProcessor']")

    modules = {entry["impl"].rsplit(".", 1)[0] for entry in pipelines.values() if "impl" in entry}
    for name in CONFIG_FILES_WITH_AUTO_MAP:
        if (folder / name).is_file():
            modules |= _auto_map_modules(json.loads((folder / name).read_text()))
    # Every module file, and every file those import relatively (transitively), must be in the folder.
    pending, seen = [folder / f"{module.replace('.', '/')}.py" for module in sorted(modules)], set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        if not path.is_file():
            missing.append(str(path.relative_to(folder)))
            continue
        pending += [path.parent / f"{name.replace('.', '/')}.py" for name in get_relative_imports(path)]
    return sorted(set(missing))


# --- what gets uploaded -----------------------------------------------------------------------------------------------


def _allowed(name: str) -> bool:
    return not name.startswith(".") and any(fnmatch.fnmatch(name, pattern) for pattern in ALLOWED_PATTERNS)


def _files(folder: Path) -> list[Path]:
    """Files of a model folder (relative paths) that are published: the allow-list's, at the top level."""
    return sorted(Path(path.name) for path in folder.iterdir() if path.is_file() and _allowed(path.name))


def _dataset_files(folder: Path) -> list[Path]:
    """Files of a data set folder (relative paths) that are published: all but hidden ones, caches and the README
    (the card is rendered anew)."""
    relative = (path.relative_to(folder) for path in folder.rglob("*") if path.is_file())
    return sorted(
        path for path in relative
        if path != Path("README.md") and not any(part.startswith(".") or part == "__pycache__" for part in path.parts)
    )  # fmt: skip


def _place(source: Path, target: Path, link: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        target.unlink()
    if link:
        target.symlink_to(source.resolve())
    else:
        shutil.copy2(source, target)


def _point_adapter_at(out: Path, repo_id: str) -> None:
    """A LoRA folder's adapter names its own folder as its base; uploaded, that folder is `repo_id`."""
    adapter_config = out / ADAPTER_CONFIG
    settings = json.loads(adapter_config.read_text())
    settings["base_model_name_or_path"] = repo_id
    adapter_config.unlink()  # a symlink to the source folder's file when staged with `link`
    adapter_config.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")


def stage(
    folder: Path, out: Path, model, processor, card: ModelCard, repo_id: str, link: bool = False
) -> list[str]:
    """Write into `out` exactly what is uploaded: the folder's files (re-saved when its remote code is incomplete)
    and README.md. `link` places symlinks to the folder's files instead of copies (the upload reads through them)."""
    files = {relative: folder / relative for relative in _files(folder)}
    if missing_remote_code(folder):
        if (folder / ADAPTER_CONFIG).is_file():
            # Re-saving a model with an adapter loaded writes the adapter alone: the upload would lose the weights.
            raise PublishError(
                f"{folder}: a LoRA folder without its remote code; save it again with transformers_chatbridge "
                f"imported (missing: {', '.join(missing_remote_code(folder))})"
            )
        # Saving through the loaded objects writes config, weights, processor and every code file again; files the
        # save does not produce (training record, recipes) still come from the folder, except stale weight shards.
        resaved = Path(tempfile.mkdtemp(prefix="chatbridge-resave-"))
        model.save_pretrained(resaved)
        processor.save_pretrained(resaved)
        produced = {relative: resaved / relative for relative in _files(resaved)}
        kept = {
            relative: path for relative, path in files.items()
            if relative not in produced and not any(fnmatch.fnmatch(relative.name, p) for p in WEIGHT_PATTERNS)
        }
        for relative, path in produced.items():
            _place(path, out / relative, link=False)
        files = kept
    else:
        resaved = None
    for relative, path in files.items():
        _place(path, out / relative, link=link)
    if resaved is not None:
        shutil.rmtree(resaved, ignore_errors=True)
    if (out / ADAPTER_CONFIG).is_file():
        _point_adapter_at(out, repo_id)
    remaining = missing_remote_code(out)
    if remaining:
        raise PublishError(f"remote code still incomplete after re-saving: {', '.join(remaining)}")
    card.save(out / "README.md")
    return sorted(str(path) for path in _files(out)) + ["README.md"]


# --- the model card ---------------------------------------------------------------------------------------------------


# Hub task types and display names of the evaluation harness' benchmarks (`transformers_chatbridge.evaluation`).
KNOWN_TASKS = {
    "coco_caption": ("image-to-text", "COCO Captions"),
    "vqav2": ("visual-question-answering", "VQAv2"),
    "msrvtt_qa": ("video-text-to-text", "MSRVTT-QA"),
    "audiocaps": ("audio-text-to-text", "AudioCaps"),
    "esc50": ("audio-classification", "ESC-50"),
    "flickr30k": ("image-to-text", "Flickr30k"),
    "nocaps": ("image-to-text", "NoCaps"),
    "okvqa": ("visual-question-answering", "OK-VQA"),
    "gqa": ("visual-question-answering", "GQA"),
    "msvd_qa": ("video-text-to-text", "MSVD-QA"),
    "msrvtt_caption": ("video-text-to-text", "MSR-VTT captions"),
    "vatex": ("video-text-to-text", "VATEX"),
    "clotho": ("audio-text-to-text", "Clotho"),
    "valor32k": ("video-text-to-text", "VALOR-32K"),
    "music_avqa": ("video-text-to-text", "MUSIC-AVQA"),
    "avsd": ("video-text-to-text", "AVSD"),
}


def _flat_metrics(metrics: dict, prefix: str = "") -> list[tuple[str, float]]:
    flat = []
    for name, value in metrics.items():
        if name == "n":  # the harness' sample count, not a metric
            continue
        if isinstance(value, dict):
            flat += _flat_metrics(value, f"{prefix}{name}/")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            flat.append((f"{prefix}{name}", value))
    return flat


def load_eval_results(paths) -> list[dict]:
    """Rows (task, dataset, split, metric, value) from evaluation harness results files.

    A file holds one result or a list of them: `{"task": ..., "metrics": {name: number, ..., "n": samples}}` (what
    `chatbridge eval` writes) plus optionally `dataset` (a Hub id, or `{"name"/"path"/"type", "config", "split"}`),
    `split` and `task_type` (a Hub task; for the harness' benchmarks `KNOWN_TASKS`, else the model's pipeline tag).
    Nested metric dicts are flattened (`cider/score`); `n` and non-numbers are skipped.
    """
    rows = []
    for path in paths or ():
        path = Path(path)
        try:
            loaded = json.loads(path.read_text())
        except FileNotFoundError:
            raise PublishError(f"evaluation results file {path} does not exist") from None
        except ValueError as error:
            raise PublishError(f"evaluation results file {path} is not JSON: {error}") from None
        for index, result in enumerate(loaded if isinstance(loaded, list) else [loaded]):
            where = f"{path}" + (f" (item {index})" if isinstance(loaded, list) else "")
            if not isinstance(result, dict) or "task" not in result or not isinstance(result.get("metrics"), dict):
                raise PublishError(f"{where}: expected {{'task': ..., 'metrics': {{name: value}}, ...}}")
            task = str(result["task"])
            known_type, known_name = KNOWN_TASKS.get(task, (PIPELINE_TAG, task))
            dataset = result.get("dataset") or task
            if isinstance(dataset, dict):
                dataset_type = str(dataset.get("type") or dataset.get("path") or dataset.get("name") or task)
                dataset_name = str(dataset.get("name") or dataset_type)
                dataset_config = dataset.get("config")
                split = result.get("split") or dataset.get("split")
            else:
                dataset_type = str(dataset)
                dataset_name = known_name if dataset == task else dataset_type
                dataset_config = None
                split = result.get("split")
            metrics = _flat_metrics(result["metrics"])
            if not metrics:
                raise PublishError(f"{where}: no numeric metric in {result['metrics']!r}")
            for metric, value in metrics:
                rows.append({
                    "task": task, "task_type": result.get("task_type") or known_type, "dataset_type": dataset_type,
                    "dataset_name": dataset_name, "dataset_config": dataset_config, "split": split,
                    "metric": metric, "value": round(value, 6), "samples": result["metrics"].get("n"),
                })
    return rows


def _load_yaml(path: Path) -> dict | None:
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise PublishError(f"recipe {path} is not valid YAML: {error}") from None
    return loaded if isinstance(loaded, dict) else None


def _hub_id(value) -> str | None:
    """`value` when it can be a Hub repo id (not a local path), else None."""
    if not isinstance(value, str) or value.count("/") != 1 or os.path.exists(value):
        return None
    try:
        validate_repo_id(value)
    except HFValidationError:
        return None
    return value


def training_record(folder: Path) -> dict | None:
    """Steps, losses and settings from `trainer_state.json` and recipe YAML files in `folder`, when present."""
    record = {"steps": None, "max_steps": None, "epochs": None, "final_loss": None, "final_loss_step": None,
              "train_loss": None, "eval_loss": None, "hyperparameters": {}, "recipes": [], "base_models": [],
              "datasets": []}
    state_file = folder / "trainer_state.json"
    found = False
    if state_file.is_file():
        found = True
        try:
            state = json.loads(state_file.read_text())
        except ValueError as error:
            raise PublishError(f"{state_file} is not JSON: {error}") from None
        record["steps"] = state.get("global_step")
        record["max_steps"] = state.get("max_steps")
        epoch = state.get("epoch")
        record["epochs"] = round(epoch, 2) if isinstance(epoch, (int, float)) else None
        for entry in state.get("log_history", []):
            if "loss" in entry:
                record["final_loss"], record["final_loss_step"] = round(entry["loss"], 4), entry.get("step")
            if "train_loss" in entry:
                record["train_loss"] = round(entry["train_loss"], 4)
            if "eval_loss" in entry:
                record["eval_loss"] = round(entry["eval_loss"], 4)
        for key in ("train_batch_size",):
            if state.get(key) is not None:
                record["hyperparameters"][key] = state[key]
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        recipe = _load_yaml(path)
        if recipe is None:
            continue
        found = True
        record["recipes"].append({"name": path.name, "text": path.read_text().strip()})
        for key in RECIPE_SETTINGS:
            if key in recipe:
                record["hyperparameters"].setdefault(key, recipe[key])
        record["base_models"] += [recipe[key] for key in BASE_MODEL_SETTINGS if _hub_id(recipe.get(key))]
        paths = recipe.get("dataset_paths") or []
        record["datasets"] += [spec for spec in (paths if isinstance(paths, list) else [paths]) if _hub_id(spec)]
    return record if found else None


def architecture(config, model, processor) -> dict:
    from ..modeling_chatbridge import TRAINABLE_IN_EVERY_STAGE

    vision, audio, qformer, text = config.vision_config, config.audio_config, config.qformer_config, config.text_config
    bridge = sum(
        parameter.numel() for name, parameter in model.model.named_parameters()
        if name.split(".")[0] in TRAINABLE_IN_EVERY_STAGE
    )
    template = (getattr(processor, "chat_template", "") or "").strip()
    presets = resources.files("transformers_chatbridge.chat_templates").iterdir()
    template_name = next(
        (path.name[: -len(".jinja")] for path in presets
         if path.name.endswith(".jinja") and path.read_text(encoding="utf-8").strip() == template),
        "custom",
    )
    return {
        "vision_type": vision.model_type, "vision_layers": vision.num_hidden_layers, "vision_width": vision.hidden_size,
        "image_size": getattr(vision, "image_size", "?"), "patch_size": getattr(vision, "patch_size", "?"),
        "audio_type": audio.model_type, "audio_layers": audio.num_hidden_layers, "audio_width": audio.hidden_size,
        "audio_segments": config.num_audio_segments,
        "qformer_type": qformer.model_type, "qformer_layers": qformer.num_hidden_layers,
        "qformer_width": qformer.hidden_size, "cross_attention_frequency": qformer.cross_attention_frequency,
        "qformer_memory": qformer.encoder_hidden_size,
        "image_queries": config.num_image_query_tokens, "audio_queries": config.num_audio_query_tokens,
        "video_frames": config.num_video_frames,
        "text_type": text.model_type, "text_layers": text.num_hidden_layers, "text_width": text.hidden_size,
        "vocab_size": text.vocab_size, "image_token_id": config.image_token_id,
        "video_token_id": config.video_token_id, "audio_token_id": config.audio_token_id,
        "total_parameters": f"{model.num_parameters():,}", "bridge_parameters": f"{bridge:,}",
        "chat_template": template_name,
    }


def render_card(
    repo_id: str, config, model, processor, folder: Path, eval_results=(), license: str = DEFAULT_LICENSE,
    base_models=(), datasets=(), tags=(),
) -> ModelCard:
    """The model card: metadata first, then architecture, how to use, training, evaluation, limitations, citation."""
    from huggingface_hub import EvalResult

    training = training_record(folder)
    evaluation = load_eval_results(eval_results)
    base_models = list(dict.fromkeys([*base_models, *(training["base_models"] if training else [])]))
    datasets = list(dict.fromkeys([*datasets, *(training["datasets"] if training else [])]))
    model_name = repo_id.split("/")[-1]
    card_data = ModelCardData(
        license=license,
        library_name=LIBRARY_NAME,
        pipeline_tag=PIPELINE_TAG,
        base_model=(base_models[0] if len(base_models) == 1 else base_models) or None,
        datasets=datasets or None,
        tags=list(dict.fromkeys([*TAGS, *tags])),
        model_name=model_name,
        eval_results=[
            EvalResult(
                task_type=row["task_type"], task_name=row["task"], dataset_type=row["dataset_type"],
                dataset_name=row["dataset_name"], dataset_config=row["dataset_config"], dataset_split=row["split"],
                metric_type=row["metric"], metric_name=row["metric"], metric_value=row["value"],
            )
            for row in evaluation
        ] or None,
    )
    template = resources.files("transformers_chatbridge.hub").joinpath(CARD_TEMPLATE).read_text()
    return ModelCard.from_template(
        card_data,
        template_str=template,
        repo_id=repo_id,
        model_name=model_name,
        base_model_list=base_models,
        arch=architecture(config, model, processor),
        training=training,
        evaluation=evaluation,
        citation=CITATION,
    )


# --- publish ----------------------------------------------------------------------------------------------------------


def _check_out(out: Path, source: Path) -> Path:
    out = out.resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PublishError(f"--dry-run folder {out} exists and is not empty")
    if out == source.resolve() or source.resolve() in out.parents:
        raise PublishError(f"--dry-run folder {out} is inside the folder being published")
    out.mkdir(parents=True, exist_ok=True)
    return out


def publish(
    folder, repo_id: str, *, private: bool = False, revision: str = "main", eval_results=(), dry_run=None,
    token: str | None = None, license: str = DEFAULT_LICENSE, base_models=(), datasets=(), tags=(),
    commit_message: str | None = None,
) -> dict:
    """Check `folder`, render its card and upload both as one commit to `repo_id` (or write them to `dry_run`).

    Returns `{"files": [...], "card": ModelCard, "url": ... (None for a dry run)}`.
    """
    folder = Path(folder)
    check_repo_id(repo_id)
    if dry_run is None:
        token = resolve_token(token)
    config, model, processor = load_folder(folder)
    card = render_card(repo_id, config, model, processor, folder, eval_results, license, base_models, datasets, tags)
    if dry_run is not None:
        files = stage(folder, _check_out(Path(dry_run), folder), model, processor, card, repo_id, link=False)
        return {"files": files, "card": card, "url": None}

    from huggingface_hub import HfApi

    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="chatbridge-publish-") as staging:
        files = stage(folder, Path(staging) / "upload", model, processor, card, repo_id, link=True)
        repo = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision not in (None, "main"):
            api.create_branch(repo.repo_id, branch=revision, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo.repo_id, folder_path=Path(staging) / "upload", revision=revision, repo_type="model",
            commit_message=commit_message or f"Upload ChatBridge model ({len(files)} files)",
        )
    return {"files": files, "card": card, "url": commit.commit_url}


# --- data sets --------------------------------------------------------------------------------------------------------

MAX_SHARD_BYTES = 500 * 1024 * 1024  # datasets' push_to_hub default


def _split_of(parquet: Path) -> str:
    """`data/train.parquet` and push_to_hub's `data/train-00000-of-00003.parquet` -> "train"."""
    stem = parquet.stem
    head, _, tail = stem.rpartition("-of-")
    if head and tail.isdigit():
        return head.rsplit("-", 1)[0]
    return stem


def _check_media(folder: Path, parquet: Path, media_uploaded: bool = True) -> None:
    """Every media path a row names must be a file inside the folder (it is uploaded with the rows): an absolute
    path or one climbing out would point into the publisher's disk. Without `media_uploaded` (a `save_to_disk`
    folder, whose rows alone are converted) no local path may be named at all."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(parquet, columns=[c for c in MEDIA_COLUMNS.values() if c in pq.read_schema(parquet).names])
    except Exception as error:
        raise PublishError(f"{parquet} is not a readable Parquet file: {error}") from error
    root = folder.resolve()
    for column in table.column_names:
        for items in table.column(column).to_pylist():
            for item in items or []:
                if not isinstance(item, str) or "://" in item:
                    continue
                if not media_uploaded:
                    raise PublishError(
                        f"{folder}: column {column!r} names the local file {item}, which a save_to_disk folder does "
                        "not upload; build a Hub-style folder (`chatbridge data build`) that holds its media."
                    )
                if os.path.isabs(item) or not (root / item).resolve().is_relative_to(root):
                    raise PublishError(
                        f"{parquet}: column {column!r} names {item}, outside {folder}: the upload would not hold it. "
                        "Build the set with its media inside (`chatbridge data build ... --media link`, the default)."
                    )
                if not (root / item).is_file():
                    raise PublishError(f"{parquet}: column {column!r} names {item}, which is not in {folder}")


def publish_dataset(
    dataset_dir, repo_id: str, *, dry_run=None, private: bool = False, revision: str = "main",
    token: str | None = None, license: str | None = None, pretty_name: str | None = None, tags=(),
) -> dict:
    """Publish a built data set folder as a Hub data set repo, in the layout `datasets`' `push_to_hub` writes.

    Two forms are accepted. A Hub-style folder (Parquet under `data/`, e.g. the miniature world, with its media
    beside) is published as it is; a `save_to_disk` folder is converted to `data/{split}-{i:05d}-of-{n:05d}.parquet`
    shards (500 MB at most). The card (README.md, the folder's own when present) gets `configs` naming each split's
    files, `chatbridge`/`multimodal` tags, and `license`/`pretty_name` when given. Relative media paths in the
    `images`/`videos`/`audios` columns must exist in the folder. Then `create_repo(repo_type="dataset")` and one
    `upload_folder` commit, or with `dry_run=OUT` the same files written to OUT and no network.
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    folder = Path(dataset_dir)
    check_repo_id(repo_id)
    if dry_run is None:
        token = resolve_token(token)
    if not folder.is_dir():
        raise PublishError(f"{folder} is not a folder")
    staging_root = None
    if dry_run is not None:
        out = _check_out(Path(dry_run), folder)
    else:
        staging_root = tempfile.mkdtemp(prefix="chatbridge-publish-dataset-")
        out = Path(staging_root) / "upload"
    try:
        parquets = sorted((folder / "data").glob("*.parquet"))
        if parquets:
            for relative in _dataset_files(folder):
                _place(folder / relative, out / relative, link=dry_run is None)
            for parquet in parquets:
                _check_media(folder, parquet)
        elif (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file():
            from datasets import Dataset, load_from_disk

            try:
                loaded = load_from_disk(str(folder))
            except Exception as error:
                raise PublishError(f"{folder} is not a readable save_to_disk folder: {error}") from error
            splits = {"train": loaded} if isinstance(loaded, Dataset) else dict(loaded)
            for split, dataset in splits.items():
                shards = max(1, math.ceil(dataset._estimate_nbytes() / MAX_SHARD_BYTES))
                for index in range(shards):
                    path = out / "data" / f"{split}-{index:05d}-of-{shards:05d}.parquet"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    dataset.shard(shards, index, contiguous=True).to_parquet(str(path))
            parquets = sorted((out / "data").glob("*.parquet"))
            for parquet in parquets:
                _check_media(folder, parquet, media_uploaded=False)
            if (folder / "README.md").is_file():
                _place(folder / "README.md", out / "README.md", link=False)
        else:
            raise PublishError(f"{folder}: no data/*.parquet and no save_to_disk files (dataset_dict.json, state.json)")

        card = DatasetCard.load(folder / "README.md") if (folder / "README.md").is_file() else DatasetCard(
            f"---\n---\n\n# {pretty_name or repo_id.split('/')[-1]}\n\nRows in the ChatBridge chat row format.\n"
        )
        data = card.data
        if not data.get("configs"):
            splits: dict[str, list[str]] = {}
            for parquet in parquets:
                splits.setdefault(_split_of(parquet), []).append(f"data/{parquet.name}")
            data["configs"] = [{"config_name": "default", "data_files": [
                {"split": split, "path": paths[0] if len(paths) == 1 else "data/" + split + "-*.parquet"}
                for split, paths in splits.items()
            ]}]
        for config in data["configs"]:
            for entry in config.get("data_files", []):
                for pattern in entry["path"] if isinstance(entry["path"], list) else [entry["path"]]:
                    if not list(out.glob(pattern)):
                        raise PublishError(f"card config {config.get('config_name')!r}: split {entry.get('split')!r} "
                                           f"names {pattern}, which matches no file")
        data["tags"] = list(dict.fromkeys([*(data.get("tags") or []), "chatbridge", "multimodal", *tags]))
        if license:
            data["license"] = license
        if pretty_name:
            data["pretty_name"] = pretty_name
        card = DatasetCard(f"---\n{DatasetCardData(**data.to_dict()).to_yaml()}\n---\n{card.text}")
        if (out / "README.md").is_symlink() or (out / "README.md").exists():
            (out / "README.md").unlink()
        card.save(out / "README.md")
        files = sorted(str(path) for path in _dataset_files(out)) + ["README.md"]
        if dry_run is not None:
            return {"files": files, "card": card, "url": None}

        from huggingface_hub import HfApi

        api = HfApi(token=token)
        repo = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="dataset")
        if revision not in (None, "main"):
            api.create_branch(repo.repo_id, branch=revision, exist_ok=True, repo_type="dataset")
        commit = api.upload_folder(
            repo_id=repo.repo_id, folder_path=out, revision=revision, repo_type="dataset",
            commit_message=f"Upload ChatBridge data set ({len(files)} files)",
        )
        return {"files": files, "card": card, "url": commit.commit_url}
    finally:
        if staging_root is not None:
            shutil.rmtree(staging_root, ignore_errors=True)


# --- command line -----------------------------------------------------------------------------------------------------
