"""`chatbridge demo`: the whole ChatBridge lifecycle on the miniature world, offline, on a laptop's CPU.

1. generate the miniature world (`chatbridge data miniature`);
2. pretrain the frozen parts (a small LLM on the world's text, a ViT and a BEATs on its pictures and tones) and check
   each before freezing it (`components.py`);
3. stage 1 (alignment) and stage 2 (MULTIS instruction tuning) through `chatbridge train` and the miniature recipes
   shipped with the package: the command and recipes a GPU user runs, in subprocesses (stage 2 also trains LoRA adapters on the
   LLM and merges them);
4. evaluate the final model with the evaluation harness: test split, novel split, and the test questions without
   their media (a control that must fall to chance);
5. write `report.md` (the table, checks, timings, real pipeline answers) and `loss.png`;
6. stage the publishable folder (`chatbridge publish --dry-run`) with the table in its model card.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..data import miniature
from ..data.miniature import load_miniature
from ..evaluation.benchmarks.miniature import MINIATURE_KINDS
from .components import (
    PartCheck,
    PretrainingSettings,
    native_bf16,
    pretrain_audio_tower,
    pretrain_language_model,
    pretrain_vision_tower,
)
from ..inference.batch import InputError
from .doc import check_section, replace_section, report_section
from .lanes import second_lane

EVAL_TASKS = {"test": "miniature", "novel": "miniature-novel", "no media": "miniature-no-media"}
# Task kinds whose accuracy the goals speak of: questions per modality (captions are scored apart).
QUESTION_KINDS = {
    "image": ("ti-shortqa", "ti-normalqa", "ti-ocr", "ti-rea", "ti-conv"),
    "video": ("tv-shortqa", "tv-rea", "tv-conv"),
    "audio": ("ta-cap",),  # MULTIS asks nothing about a lone audio clip but its caption: every attribute must be right
    "audio-video": ("tva-conv",),
}
CAPTION_KINDS = {"image": "ti-cap", "video": "tv-cap", "audio": "ta-cap", "audio-video": "tva-cap"}
# What a run writes into its folder; a rerun into the same folder replaces exactly these.
RUN_OUTPUTS = ("miniature", "components", "stage1", "stage2", "eval", "publish", "report.md", "loss.png")
# Left in the run folder before any output: proof that the outputs there are a demo run's, which a rerun may replace.
RUN_MARKER = ".chatbridge-demo-run"


@dataclass(frozen=True)
class DemoSettings:
    """What one demo run trains and how long; `goals` are the accuracies it must reach on the test split."""

    name: str
    world_size: int
    language_model: PretrainingSettings
    vision_tower: PretrainingSettings
    audio_tower: PretrainingSettings
    stage1_steps: int
    stage2_steps: int
    batch_size: int
    language_model_vocab: int = 640
    language_model_text_instances: int = 400  # fresh instances per modality whose rows only the LLM reads
    goals: dict[str, float] = field(default_factory=dict)


FULL = DemoSettings(
    name="full",
    world_size=1000,
    language_model=PretrainingSettings(steps=1500, batch_size=32, learning_rate=2e-3, hidden_size=128, num_layers=4),
    vision_tower=PretrainingSettings(
        steps=2000, batch_size=64, learning_rate=2e-3, hidden_size=128, num_layers=3, pool_size=3000
    ),
    audio_tower=PretrainingSettings(
        steps=80, batch_size=32, learning_rate=1e-3, hidden_size=64, num_layers=2, pool_size=600
    ),
    stage1_steps=300,
    stage2_steps=800,
    batch_size=32,
    goals={"image": 0.9, "video": 0.9, "audio": 0.9, "audio-video": 0.8},
)
QUICK = DemoSettings(
    name="quick",
    world_size=40,
    language_model=PretrainingSettings(steps=300, batch_size=32, learning_rate=2e-3, hidden_size=128, num_layers=4),
    vision_tower=PretrainingSettings(
        steps=200, batch_size=64, learning_rate=2e-3, hidden_size=64, num_layers=2, pool_size=800
    ),
    audio_tower=PretrainingSettings(
        steps=30, batch_size=32, learning_rate=1e-3, hidden_size=64, num_layers=2, pool_size=240
    ),
    stage1_steps=80,
    stage2_steps=100,
    batch_size=32,
    language_model_vocab=512,
    language_model_text_instances=100,
)


class Run:
    """The run folder, its timings and the lines of its summary."""

    def __init__(self, out: Path, settings: DemoSettings, seed: int):
        self.out, self.settings, self.seed = out, settings, seed
        self.started = time.perf_counter()
        self.phases: dict[str, float] = {}
        self.checks: list[PartCheck] = []
        self.step_number = 0

    def step(self, title: str) -> float:
        self.step_number += 1
        print(f"\n[{self.step_number}/6] {title}", flush=True)
        return time.perf_counter()

    def done(self, phase: str, since: float) -> None:
        self.phases[phase] = time.perf_counter() - since
        print(f"      {phase}: {self.phases[phase]:.0f} s", flush=True)


def _bar(total: int, description: str, position: int = 0):
    bar = tqdm(total=total, desc=f"      {description}", unit="step", dynamic_ncols=True, position=position)

    def progress(step: int, loss: float) -> None:
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss:.3f}")
        if step + 1 == total:
            bar.close()

    return progress


def _pretrain_towers(out: Path, settings: DemoSettings, seed: int) -> list[PartCheck]:
    """The vision and the audio tower, pretrained, checked and saved; they train on fresh instances, not the world."""
    started = time.perf_counter()
    scores, by_patch = pretrain_vision_tower(
        out / "components" / "vision", settings.vision_tower, _bar(settings.vision_tower.steps, "vision tower", 1), seed
    )
    checks = [PartCheck("vision tower: attributes of fresh images", scores, 0.9, time.perf_counter() - started,
                        diagnostics=by_patch)]  # fmt: skip
    started = time.perf_counter()
    scores = pretrain_audio_tower(
        out / "components" / "audio", settings.audio_tower, _bar(settings.audio_tower.steps, "audio tower", 1), seed
    )
    checks.append(PartCheck("audio tower: attributes of fresh tones", scores, 0.9, time.perf_counter() - started))
    return checks


def prepare_components(run: Run, build_world: Callable[[], Path]) -> dict[str, Path]:
    """The world (`build_world` returns its folder) and the three frozen parts, pretrained, checked and saved; returns
    their folders. Two lanes (`lanes.py`): the towers, which do not read the world, train in a second process while
    this one builds the world and pretrains the language model on it."""
    folders = {name: run.out / "components" / name for name in ("llm", "vision", "audio")}
    settings = run.settings
    with second_lane() as start:
        towers = start(_pretrain_towers, run.out, settings, run.seed)
        since = run.step("The miniature world: shapes, moving shapes, tones and sounding shapes")
        world = load_miniature(build_world())
        run.done("world", since)

        since = run.step("The frozen parts: a small LLM, a ViT and a BEATs, pretrained and checked (two lanes)")
        check_rows = [row for row in world["validation"] if row["task"] in MINIATURE_KINDS]  # what the harness asks
        started = time.perf_counter()
        # The world's training rows plus text of fresh instances: like Vicuna, the LLM has read far more than the
        # bridge's training data (and every attribute combination, in words).
        text = list(world["train"]) + miniature.text_rows(settings.language_model_text_instances, run.seed + 1, any_word=True)
        scores = pretrain_language_model(
            text, check_rows, folders["llm"], settings.language_model, settings.language_model_vocab,
            _bar(settings.language_model.steps, "language model"), run.seed,
        )  # fmt: skip
        run.checks.append(PartCheck("language model: answers from a description (validation)", scores, 0.9,
                                    time.perf_counter() - started))  # fmt: skip
        run.checks += towers.get()
    run.done("frozen parts", since)
    for check in run.checks:
        worst = min(check.scores, key=check.scores.get)
        verdict = "ok" if check.passed else f"BELOW {check.bar:.0%}"
        print(f"      check {check.name}: lowest {worst} {check.scores[worst]:.1%} ({verdict})", flush=True)
    return folders


def clear_previous_run(out: Path, overwrite: bool = False) -> list[str]:
    """Remove a previous run's outputs from `out` (other files stay); returns their names.

    Left in place, the evaluation would resume from the old model's predictions (same model path, same settings) and
    report them, and the publishable folder would refuse to be written into. Only outputs of a demo run are removed:
    the run leaves `RUN_MARKER` in its folder; without it (or `overwrite`), names that happen to match are refused.
    """
    stale = [out / name for name in RUN_OUTPUTS if (out / name).exists()]
    if stale and not overwrite and not (out / RUN_MARKER).is_file():
        raise FileExistsError(
            f"{out} holds {', '.join(path.name for path in stale)}, which no `chatbridge demo` run wrote (it has no "
            f"{RUN_MARKER} file): refusing to delete them. Choose another --out, or pass --overwrite to replace them."
        )
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return [path.name for path in stale]


def train_stage(run: Run, recipe: str, output: Path, steps: int, extra: list[str]) -> None:
    """One stage through `chatbridge train`, exactly as a user runs it, with this run's paths and sizes."""
    command = [
        sys.executable, "-m", "transformers_chatbridge.cli", "train", "--config", recipe,
        "--output_dir", str(output),
        "--dataset_paths", f"{run.out / 'miniature'}:train",
        "--max_steps", str(steps),
        "--per_device_train_batch_size", str(run.settings.batch_size),
        "--save_strategy", "no",
        "--seed", str(run.seed), "--data_seed", str(run.seed),
        *extra,
    ]  # fmt: skip
    print("      $ chatbridge " + " ".join(command[3:]), flush=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "warning"}
    completed = subprocess.run(command, env=env)
    if completed.returncode != 0:
        raise RuntimeError(f"{recipe} failed (exit status {completed.returncode}); its output is above.")


def evaluate_model(run: Run, model: Path) -> dict[str, dict]:
    """The harness on the test split and the media-free control (one after the other in a second lane) beside the
    novel split, so that the lanes end about together; returns each results.json."""
    from ..evaluation.runner import evaluate

    def arguments(task: str) -> dict:
        # Each test picture and clip is asked about several times: decoded once (about 20 MiB a split).
        return {"model": model, "task": task, "data_dir": run.out / "miniature", "output": run.out / "eval" / task,
                "batch_size": 32, "media_cache_gib": 0.5}  # fmt: skip

    in_lane = ("test", "no media")
    with second_lane() as start:
        pending = {label: start(evaluate, **arguments(EVAL_TASKS[label])) for label in in_lane}
        here = {label: evaluate(**arguments(task)) for label, task in EVAL_TASKS.items() if label not in in_lane}
        return {label: pending[label].get() if label in pending else here[label] for label in EVAL_TASKS}


def accuracy_table(results: dict[str, dict], goals: dict[str, float]) -> list[dict]:
    """One row per question kind and per caption modality, with the three evaluations side by side."""
    rows = []
    for modality, kinds in QUESTION_KINDS.items():
        for kind in kinds:
            row = {"modality": modality, "kind": kind, "metric": "exact match", "goal": goals.get(modality)}
            for label, result in results.items():
                group = result["groups"].get(kind, {})
                row[label] = group.get("exact_match")
                row.setdefault("n", group.get("n"))
            rows.append(row)
    for modality, kind in CAPTION_KINDS.items():
        row = {"modality": modality, "kind": kind, "metric": "CIDEr-D", "goal": None}
        for label, result in results.items():
            row[label] = result["groups"].get(kind, {}).get("cider")
            row.setdefault("n", result["groups"].get(kind, {}).get("n"))
        rows.append(row)
    return rows


def _cell(value, metric: str) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if metric == "exact match" else f"{value:.3f}"


def table_markdown(rows: list[dict]) -> str:
    lines = [
        "| modality | task kind | metric | samples | test | novel | no media (control) | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        goal = "-" if row["goal"] is None else f">= {row['goal']:.0%} ({'met' if (row['test'] or 0) >= row['goal'] else 'missed'})"
        cells = [_cell(row[label], row["metric"]) for label in EVAL_TASKS]
        lines.append(f"| {row['modality']} | {row['kind']} | {row['metric']} | {row['n']} | " + " | ".join(cells) + f" | {goal} |")
    return "\n".join(lines)


def add_table_to_card(card_path: Path, rows: list[dict]) -> None:
    """The demo's per-kind table in the model card, beside the harness's overall figures."""
    from huggingface_hub import ModelCard

    card = ModelCard.load(card_path)
    card.text += (
        "\n## Miniature-world results per task kind\n\n"
        "Exact match of each reply (conversations turn by turn) and CIDEr-D of captions, on the test split, the novel "
        "split (unseen attribute combinations) and the test questions without their media (control).\n\n"
        + table_markdown(rows) + "\n"
    )
    card.save(card_path)


def loss_curves(stage_dirs: dict[str, Path]) -> dict[str, list[tuple[int, float]]]:
    """(step, training loss) of each stage, from the trainer state the training script saves."""
    curves = {}
    for stage, folder in stage_dirs.items():
        history = json.loads((folder / "trainer_state.json").read_text())["log_history"]
        curves[stage] = [(entry["step"], entry["loss"]) for entry in history if "loss" in entry]
    return curves


def stage_speed(stage_dir: Path) -> tuple[float, float]:
    """(seconds, steps per second) of a finished stage, from the Trainer's own record."""
    history = json.loads((stage_dir / "trainer_state.json").read_text())["log_history"]
    summary = next(entry for entry in reversed(history) if "train_runtime" in entry)
    return summary["train_runtime"], summary["train_steps_per_second"]


def plot_losses(curves: dict[str, list[tuple[int, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.5))
    for axis, (stage, points) in zip(axes, curves.items()):
        axis.plot([step for step, _ in points], [loss for _, loss in points], marker=".")
        axis.set_title(stage)
        axis.set_xlabel("step")
        axis.set_ylabel("training loss")
        axis.set_yscale("log")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def pipeline_answers(model: Path, world) -> list[dict]:
    """Real `pipeline("chatbridge")` answers to one test question per modality."""
    from transformers import pipeline

    from ..evaluation.benchmarks.miniature import miniature_samples

    chosen = {"image": "ti-shortqa", "video": "tv-shortqa", "audio": "ta-cap", "audio-video": "tva-conv"}
    pipe = pipeline("chatbridge", model=str(model))
    answers = []
    for modality, task in chosen.items():
        row = next(row for row in world["test"] if row["task"] == task)
        sample = miniature_samples(row)[0]
        inputs = {"text": sample.question, **{key: value for key, value in sample.media.items() if value}}
        output = pipe(inputs, max_new_tokens=40, return_full_text=False)
        answer = output[0]["generated_text"] if isinstance(output, list) else output["generated_text"]
        media = [Path(path).name for paths in sample.media.values() for path in paths]
        answers.append({"modality": modality, "media": media, "question": sample.question,
                        "answer": answer.strip(), "expected": sample.references[0]})  # fmt: skip
    return answers


def peak_memory_gib() -> float:
    """Largest resident set of this process and of any training subprocess (Linux reports KiB)."""
    self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(self_peak, children_peak) / 2**20


def write_report(run: Run, rows: list[dict], answers: list[dict], publish_dir: Path) -> Path:
    precision = "under bf16 autocast (this CPU has native bf16; the weights stay fp32)" if native_bf16() else "in fp32"
    lines = [
        f"# ChatBridge miniature-world demo ({run.settings.name} run)",
        "",
        f"Wall time {sum(run.phases.values()) / 60:.1f} min on {os.cpu_count()} CPU cores (the machine's speed: stage 2 "
        f"ran {stage_speed(run.out / 'stage2')[1]:.2f} steps/s), peak memory {peak_memory_gib():.2f} GiB, seed "
        f"{run.seed}, world size {run.settings.world_size}.",
        "",
        "## Accuracy (evaluation harness, `chatbridge eval`)",
        "",
        "Each reply must equal the world's own reply (case, punctuation and articles normalised); conversations are "
        "scored turn by turn. *novel*: attribute combinations never seen in training. *no media*: the test questions "
        "without their media, a control that must fall towards chance.",
        "",
        table_markdown(rows),
        "",
        "![training loss](loss.png)",
        "",
        "## The frozen parts (pretrained here; they stand in for Vicuna, EVA-CLIP and BEATs)",
        "",
        "| part | check before freezing | lowest score | all scores | seconds |",
        "|---|---|---|---|---|",
    ]
    for check in run.checks:
        worst = min(check.scores, key=check.scores.get)
        scores = ", ".join(f"{name} {value:.0%}" for name, value in check.scores.items())
        if check.diagnostics:
            scores += " (not held to the bar: " + ", ".join(f"{n} {v:.0%}" for n, v in check.diagnostics.items()) + ")"
        lines.append(f"| {check.name.split(':')[0]} | {check.name.split(': ')[1]} | {worst} {check.scores[worst]:.1%} | "
                     f"{scores} | {check.seconds:.0f} |")  # fmt: skip
    lines += [
        "",
        "The language model is a small LLaMA with a byte-level BPE tokenizer, trained on the world's training rows "
        f"and the rows of {run.settings.language_model_text_instances} freshly drawn instances per modality (text "
        "only, every attribute combination, random printed words so that reading one is copying it), with every "
        "media item replaced by its description in words. Only the bridge's training (stages 1 and 2) withholds the "
        "novel split's combinations. The vision tower (a `Blip2VisionModel`) and the audio tower (a BEATs) are "
        "attribute classifiers trained on freshly drawn pictures, video frames and tones of every attribute "
        "combination; the vision tower also names what lies under each of its patches (shape, colour, word), on "
        "audio-video frames too, because the bridge's queries read its patch tokens. Only their encoders are kept. "
        f"All three trained {precision}. "
        "Stage 2 also trains LoRA adapters on the language model's linear "
        "layers (its base weights stay frozen) and merges them: a departure from the paper, whose Vicuna stays "
        "frozen, because this small LLM does not carry its reasoning over from text descriptions to the bridge's "
        "soft tokens by itself.",
        "",
        "## Pipeline answers (`pipeline(\"chatbridge\")`, test split)",
        "",
        "| modality | media | question | answer | expected |",
        "|---|---|---|---|---|",
    ]
    for answer in answers:
        lines.append(f"| {answer['modality']} | {', '.join(answer['media'])} | {answer['question']} | "
                     f"{answer['answer']} | {answer['expected']} |")  # fmt: skip
    lines += ["", "## Time per phase", "", "| phase | seconds |", "|---|---|"]
    lines += [f"| {phase} | {seconds:.0f} |" for phase, seconds in run.phases.items()]
    lines += ["", f"Publishable folder (dry run of `chatbridge publish`): `{publish_dir}`.", ""]
    path = run.out / "report.md"
    path.write_text("\n".join(lines))
    return path


def run_demo(
    out: str | Path = "demo_run", quick: bool = False, seed: int = 0, overwrite: bool = False,
    components_only: bool = False, doc: str | Path | None = None,
) -> dict:
    """The whole lifecycle; returns the table rows, the checks and the report path. With `components_only`, only the
    world and the frozen parts: what the miniature recipes train from (`chatbridge train --config miniature_stage1`).
    With `doc`, the report also goes into that page's `run` section (see `doc.py`)."""
    from ..data.miniature import build_miniature
    from ..hub.publish import publish

    if doc is not None:
        if components_only:
            raise InputError("A page's `run` section needs a whole run: drop --components-only or --doc.")
        check_section(Path(doc), "run")
    settings = QUICK if quick else FULL
    run = Run(Path(out), settings, seed)
    run.out.mkdir(parents=True, exist_ok=True)
    print(f"ChatBridge demo ({settings.name}): every part trained here, offline, on the CPU. Output: {run.out}")
    replaced = clear_previous_run(run.out, overwrite)
    (run.out / RUN_MARKER).write_text("Written by `chatbridge demo`: its outputs here may be replaced by a rerun.\n")
    if replaced:
        print(f"Replacing the previous run's {', '.join(replaced)} in {run.out}")

    def build_world() -> Path:
        build_miniature(run.out / "miniature", size=settings.world_size, seed=seed, overwrite=True)
        return run.out / "miniature"

    components = prepare_components(run, build_world)
    if components_only:
        print(f"\nThe world and the frozen parts are in {run.out}. The miniature recipes train from them "
              f"(run from {run.out.resolve().parent}):\n  chatbridge train --config miniature_stage1\n"
              "  chatbridge train --config miniature_stage2")
        return {"components": components, "checks": run.checks}

    since = run.step("Stage 1 (alignment on captions) and stage 2 (MULTIS instructions), via chatbridge train")
    stages = {"stage 1 (alignment)": run.out / "stage1", "stage 2 (instruction tuning)": run.out / "stage2"}
    train_stage(run, "miniature_stage1", stages["stage 1 (alignment)"], settings.stage1_steps,
                ["--vision_model", str(components["vision"]), "--audio_model", str(components["audio"]),
                 "--language_model", str(components["llm"])])  # fmt: skip
    run.done("stage 1", since)
    since = time.perf_counter()
    train_stage(run, "miniature_stage2", stages["stage 2 (instruction tuning)"], settings.stage2_steps,
                ["--model_name_or_path", str(stages["stage 1 (alignment)"])])  # fmt: skip
    model = stages["stage 2 (instruction tuning)"] / "merged"  # the recipe's LoRA, merged into the LLM
    run.done("stage 2", since)

    since = run.step("Evaluation: test split, novel split, and the test questions without media")
    results = evaluate_model(run, model)
    rows = accuracy_table(results, settings.goals)
    run.done("evaluation", since)

    since = run.step("Report: table, loss curves, pipeline answers")
    plot_losses(loss_curves(stages), run.out / "loss.png")
    answers = pipeline_answers(model, load_miniature(run.out / "miniature"))
    run.done("report", since)

    since = run.step("Publishable folder (chatbridge publish --dry-run)")
    publish_dir = run.out / "publish"
    publish(
        model, "your-name/chatbridge-miniature", dry_run=publish_dir,
        eval_results=[run.out / "eval" / task / "results.json" for task in EVAL_TASKS.values()],
        tags=["miniature-world", "demo"],
    )  # fmt: skip
    add_table_to_card(publish_dir / "README.md", rows)
    run.done("publish", since)
    report = write_report(run, rows, answers, publish_dir)
    if doc is not None:
        replace_section(Path(doc), "run", report_section(run.out, Path(doc)))

    print("\n" + table_markdown(rows))
    print("\nPipeline answers:")
    for answer in answers:
        print(f"  [{answer['modality']}] {answer['question']} -> {answer['answer']!r} (expected {answer['expected']!r})")
    total = time.perf_counter() - run.started
    print(f"\nDone in {total / 60:.1f} min, peak memory {peak_memory_gib():.2f} GiB. Report: {report}")
    return {"rows": rows, "checks": run.checks, "report": report, "seconds": total}
