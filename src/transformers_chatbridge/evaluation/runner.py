"""Run a benchmark: batched greedy answers through `pipeline("chatbridge")`, resumable predictions, metrics, results.

Files written to the output folder:

- `predictions.jsonl`: one line per sample, in the benchmark's order: `{"line", "id", "group", "question", "prompt",
  "prediction" (post-processed), "generated_text" (raw), "references"}`, plus `"history"` (the earlier turns) for a
  dialogue sample and `"error"` for a sample that could not be answered (its prediction is "" and it counts as
  wrong). A rerun continues after the last complete line (`batch_generate.resume_point`), so nothing is answered
  twice; a larger `--limit` extends the file, a smaller one scores its first lines.
- `settings.json`: the settings the predictions are being made with, written before the first one. A rerun that
  would add predictions must use the same `RESUME_SETTINGS` (task, model, its revision and quantization, prompts,
  generation settings), or it stops with an error naming each setting that differs, also when nothing is left to
  answer (the scores would be another model's); batch size, limit, device and the data folder may change (the
  sample ids of the file are checked instead).
- `results.json`: `metrics` (whole set), `groups` (per reported kind), `settings` (task, data, model and its
  revision, batch size, limit, generation settings; when a rerun answered nothing, the model, prompts and generation
  settings the predictions were made with), `counts` and `time`.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from transformers_chatbridge.inference.batch import (
    InputError, Request, answer_batch, batches, model_revision, pipeline_kwargs, resume_point, settings_differences,
    write_record,
)  # fmt: skip

from ..media_cache import DecodedMediaCache
from .registry import get_task
from .tasks import CORPUS_METRICS, Sample, Task

PREDICTIONS_FILE = "predictions.jsonl"
RESULTS_FILE = "results.json"
SETTINGS_FILE = "settings.json"

# The settings that decide what a prediction is: predictions are only added to a file begun with the same ones.
RESUME_SETTINGS = ("task", "model", "model_revision", "quantization", "prompt", "prompt_by_group", "generation")


def _missing_media(sample: Sample) -> str | None:
    for paths in sample.media.values():
        for path in paths:
            if "://" not in path and not Path(path).is_file():
                return f"missing media file {path}"
    return None


def read_predictions(path: Path, samples: list[Sample]) -> list[dict]:
    """The records of `path` (complete lines), checked to be the predictions of `samples` in order."""
    records = []
    if path.exists():
        with open(path, encoding="utf-8") as file:
            for line in file:
                if line.endswith("\n"):
                    records.append(json.loads(line))
    for index, record in enumerate(records[: len(samples)]):
        if record.get("id") != samples[index].id:
            raise InputError(
                f"line {index + 1} of {path} is sample {record.get('id')!r}, not {samples[index].id!r}: it holds the "
                "predictions of another benchmark or data set (use another --output, or delete it to start over)"
            )
    return records


def stored_settings(output: Path) -> dict | None:
    """The settings an output folder's predictions were begun with (`settings.json`, else `results.json`'s)."""
    for name in (SETTINGS_FILE, RESULTS_FILE):
        try:
            stored = json.loads((output / name).read_text())
        except (OSError, ValueError):
            continue
        settings = stored if name == SETTINGS_FILE else stored.get("settings") if isinstance(stored, dict) else None
        if isinstance(settings, dict):
            return settings
    return None


def check_resume_settings(stored: dict | None, current: dict, predictions_path: Path) -> None:
    """Refuse to add predictions to a file begun with other settings (an `InputError` naming each difference)."""
    differences = settings_differences(stored, current, RESUME_SETTINGS) if stored else []
    if differences:
        raise InputError(
            f"{predictions_path} was begun with other settings ({'; '.join(differences)}): rerun with the same "
            "settings to continue it, or use another --output (or delete it to start over)"
        )


_METRIC_CACHE: dict[str, Any] = {}


def compute_metric(name: str, predictions: list[str], samples: list[Sample]) -> dict[str, float]:
    """What the `transformers_chatbridge.evaluation.metrics` module `name` computes on these predictions."""
    from transformers_chatbridge.evaluation.metrics import load_metric

    if name not in _METRIC_CACHE:
        _METRIC_CACHE[name] = load_metric(name)
    metric = _METRIC_CACHE[name]
    if name == "classification_accuracy":
        classes = list(dict.fromkeys(choice for sample in samples for choice in sample.choices or ()))
        references = [sample.references[0] for sample in samples]
        return metric.compute(predictions=predictions, references=references, class_names=classes)
    return metric.compute(predictions=predictions, references=[list(sample.references) for sample in samples])


def score(task: Task, samples: list[Sample], predictions: list[str]) -> tuple[dict, dict]:
    """(metrics of the whole set, {group: {"n", metrics}}).

    Each group gets its metrics. The whole set gets every metric over the samples that use it, except that corpus
    metrics (CIDEr, BLEU) are not pooled across groups that choose their metrics (the miniature's modalities).
    """
    groups: dict[str, list[int]] = {}
    for index, sample in enumerate(samples):
        if sample.group is not None:
            groups.setdefault(sample.group, []).append(index)
    per_group = {}
    for group, indices in groups.items():
        values: dict[str, Any] = {"n": len(indices)}
        for name in task.metrics_for(group):
            values.update(compute_metric(name, [predictions[i] for i in indices], [samples[i] for i in indices]))
        per_group[group] = values
    overall: dict[str, Any] = {"n": len(samples)}
    names = list(dict.fromkeys(name for sample in samples for name in task.metrics_for(sample.group)))
    for name in names:
        if task.metrics_by_group is not None and name in CORPUS_METRICS and groups:
            continue
        indices = [i for i, sample in enumerate(samples) if name in task.metrics_for(sample.group)]
        overall.update(compute_metric(name, [predictions[i] for i in indices], [samples[i] for i in indices]))
    return overall, per_group


def evaluate(
    model: str | Path,
    task: str | Task,
    data_dir: str | Path,
    output: str | Path,
    limit: int | None = None,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    device: str | None = None,
    quantization: str | None = None,
    progress: bool = True,
    media_cache_gib: float = 0.0,
) -> dict:
    """Answer the samples `predictions.jsonl` does not hold yet, score the first `limit`, write `results.json`.

    `media_cache_gib` keeps decoded images and video frames (up to that many GiB) for the questions that ask about
    the same file again (`transformers_chatbridge.media_cache`); the answers are the same, so it is not a setting
    of the predictions.
    """
    from tqdm import tqdm

    if media_cache_gib < 0:
        raise InputError(f"media_cache_gib must be >= 0, got {media_cache_gib}")
    task = get_task(task) if isinstance(task, str) else task
    data_dir, output = Path(data_dir), Path(output)
    started = time.perf_counter()
    all_samples = task.loader(data_dir)
    if not all_samples:
        raise InputError(f"{task.name}: no samples found in {data_dir}")
    ids = [sample.id for sample in all_samples]
    if len(set(ids)) != len(ids):
        raise InputError(f"{task.name}: sample ids are not unique in {data_dir}")
    samples = all_samples[:limit] if limit is not None else all_samples
    predictions_path = output / PREDICTIONS_FILE
    done = resume_point(predictions_path, len(all_samples))  # cuts a torn last line; checks the line numbers
    read_predictions(predictions_path, all_samples)  # checks the ids before any model is loaded
    stored = stored_settings(output) if done else None
    settings = {
        "task": task.name,
        "data_dir": str(data_dir.resolve()),
        "model": str(model),
        "model_revision": model_revision(model),
        "batch_size": batch_size,
        "limit": limit,
        "prompt": task.prompt,
        "prompt_by_group": task.prompt_by_group,
        "generation": {"max_new_tokens": max_new_tokens or task.max_new_tokens},
        "device": device,
        "quantization": quantization,
    }
    # Before any model is loaded, also when nothing is left to answer (the scores would be another model's).
    check_resume_settings(stored, settings, predictions_path)
    generated, generate_seconds = 0, 0.0
    if done < len(samples):
        from transformers import pipeline

        import transformers_chatbridge  # noqa: F401  (registers the "chatbridge" task)

        pipe = pipeline("chatbridge", model=str(model), **pipeline_kwargs(device, quantization))
        config = pipe.model.generation_config
        settings["generation"].update(do_sample=bool(config.do_sample), num_beams=int(config.num_beams or 1))
        check_resume_settings(stored, settings, predictions_path)  # with the model's generation settings
        output.mkdir(parents=True, exist_ok=True)
        if stored is None:  # a new file (or one begun before settings were stored): these are its settings
            (output / SETTINGS_FILE).write_text(json.dumps(settings, indent=1, ensure_ascii=False) + "\n")
        max_new_tokens = settings["generation"]["max_new_tokens"]
        requests = (
            Request(index + 1, sample.id, task.pipeline_inputs(sample), _missing_media(sample))
            for index, sample in enumerate(samples[done:], start=done)
        )
        bar = tqdm(total=len(samples), initial=done, unit="sample", desc=task.name, file=sys.stderr,
                   dynamic_ncols=True, disable=not progress)  # fmt: skip
        cache = DecodedMediaCache(int(media_cache_gib * 2**30)) if media_cache_gib else None
        generate_started = time.perf_counter()
        with open(predictions_path, "a", encoding="utf-8") as file, bar, cache.active() if cache else nullcontext():
            for batch in batches(requests, batch_size):
                for record in answer_batch(pipe, batch, max_new_tokens):
                    sample = samples[record["line"] - 1]
                    write_record(file, _prediction_record(task, sample, record))
                    generated += 1
                    bar.update(1)
        generate_seconds = time.perf_counter() - generate_started
    elif stored is not None:  # nothing answered now: the predictions were made with the stored settings
        settings.update({key: stored[key] for key in RESUME_SETTINGS if key in stored})
    records = read_predictions(predictions_path, all_samples)[: len(samples)]
    predictions = [record["prediction"] for record in records]
    overall, groups = score(task, samples, predictions)
    results = {
        "task": task.name,
        "description": task.description,
        "metrics": overall,
        "groups": groups,
        "settings": settings,
        "counts": {
            "samples": len(samples),
            "available": len(all_samples),
            "generated_now": generated,
            "resumed": min(done, len(samples)),
            "errors": sum("error" in record for record in records),
        },
        "time": {
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "total_s": round(time.perf_counter() - started, 3),
            "generate_s": round(generate_seconds, 3),
            "samples_per_s": round(generated / generate_seconds, 3) if generate_seconds else None,
        },
    }
    output.mkdir(parents=True, exist_ok=True)
    (output / RESULTS_FILE).write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    return results


def _prediction_record(task: Task, sample: Sample, record: dict) -> dict:
    raw = record.get("generated_text", "")
    result = {
        "line": record["line"],
        "id": sample.id,
        "group": sample.group,
        "question": sample.question,
        "prompt": task.format_prompt(sample),
        "prediction": task.postprocess(raw) if "error" not in record else "",
        "generated_text": raw,
        "references": list(sample.references),
    }
    if sample.history:
        result["history"] = [list(turn) for turn in sample.history]
    if "error" in record:
        result["error"] = record["error"]
    return result


def format_table(results: dict) -> str:
    """A plain text table: one row for the whole set, one per group; metric values in percent (CIDEr x100)."""
    rows = [("all", results["metrics"])] + list(results["groups"].items())
    names = list(dict.fromkeys(key for _, values in rows for key in values if key != "n"))
    header = ["group", "n", *names]
    lines = [header] + [
        [group, str(values["n"]), *(f"{100 * values[name]:.2f}" if name in values else "-" for name in names)]
        for group, values in rows
    ]
    widths = [max(len(line[k]) for line in lines) for k in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * width for width in widths))
    return f"{results['task']} ({results['counts']['samples']} samples, scores x100)\n" + "\n".join(text)
