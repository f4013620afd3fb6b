"""Does the demo reach every goal whatever the seed? (goal: the minimum over the seeds meets every bar)

Builds the miniature world and the frozen parts once (seed 0, as `chatbridge demo` builds them), then, for each seed,
trains stage 1 and stage 2 through `chatbridge train` with the demo's recipes and evaluates the merged stage-2 model
on the test split, as the demo does. Prints, per question kind, the mean and the minimum test accuracy over the
seeds against the kind's goal, and per seed the stages' wall time and stage-2 steps per second (the machine's speed).
A rerun into the same --out reuses the world and the frozen parts; `--evaluate-only` evaluates the stage-2 models a
previous run left there again (after a change to the evaluation), with their stages' recorded times.

    python bench/demo_seeds.py [--seeds 0 1 2] [--quick] [--out demo_seeds] [--json PATH] [--doc docs/demo.md]
                               [--evaluate-only]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

from benchlib import Row, add_arguments, goal_met, markdown_table, set_threads, write_json
from transformers_chatbridge.data.miniature import build_miniature
from transformers_chatbridge.demo.doc import check_section, replace_section
from transformers_chatbridge.demo.lifecycle import (
    FULL, QUICK, QUESTION_KINDS, Run, accuracy_table, prepare_components, stage_speed, train_stage,
)
from transformers_chatbridge.evaluation.runner import evaluate


def frozen_parts(run: Run) -> dict[str, Path]:
    """The world and the three pretrained parts of `run.out`, built when absent."""
    world_dir = run.out / "miniature"

    def build_world() -> Path:
        if not (world_dir / "ground_truth.json").is_file():
            build_miniature(world_dir, size=run.settings.world_size, seed=0, overwrite=True)
        return world_dir

    folders = {name: run.out / "components" / name for name in ("llm", "vision", "audio")}
    if not all((folder / "config.json").is_file() for folder in folders.values()):
        return prepare_components(run, build_world)
    build_world()
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="The quick demo's sizes (no goals: a smoke run).")
    parser.add_argument("--out", type=Path, default=Path("demo_seeds"))
    parser.add_argument("--doc", type=Path, metavar="PAGE", help="Also write the table into PAGE's `seeds` section.")
    parser.add_argument("--evaluate-only", action="store_true", help="Evaluate the stage-2 models already in --out.")
    add_arguments(parser)
    args = parser.parse_args()
    set_threads(args)
    if args.doc is not None:
        check_section(args.doc, "seeds")

    settings = QUICK if args.quick else FULL
    components = frozen_parts(Run(args.out, settings, 0))
    tables, timings = {}, {}
    for seed in args.seeds:
        run, folder = Run(args.out, settings, seed), args.out / f"seed{seed}"
        started = time.perf_counter()
        if not args.evaluate_only:
            train_stage(run, "miniature_stage1.yaml", folder / "stage1", settings.stage1_steps,
                        ["--vision_model", str(components["vision"]), "--audio_model", str(components["audio"]),
                         "--language_model", str(components["llm"])])  # fmt: skip
            train_stage(run, "miniature_stage2.yaml", folder / "stage2", settings.stage2_steps,
                        ["--model_name_or_path", str(folder / "stage1")])  # fmt: skip
        if (folder / "eval").exists():  # the last run's predictions are another model's
            shutil.rmtree(folder / "eval")
        result = evaluate(folder / "stage2" / "merged", "miniature", args.out / "miniature", folder / "eval",
                          batch_size=32, progress=False)  # fmt: skip
        # ta-cap is both a question kind (exact match) and a caption kind (CIDEr-D): rows are keyed by both.
        tables[seed] = {(row["kind"], row["metric"]): row for row in accuracy_table({"test": result}, settings.goals)}
        seconds, steps_per_second = stage_speed(folder / "stage2")
        stages = sum(stage_speed(folder / stage)[0] for stage in ("stage1", "stage2")) if args.evaluate_only else 0
        timings[seed] = (time.perf_counter() - started + stages, seconds, steps_per_second)

    rows = []  # the goal speaks of the worst seed: each row's figure is the minimum (the mean is in its details)
    for modality, kinds in QUESTION_KINDS.items():
        for kind in kinds:
            values = [tables[seed][kind, "exact match"]["test"] or 0.0 for seed in args.seeds]
            goal = f">= {settings.goals[modality]}" if modality in settings.goals else ""
            rows.append(Row(
                f"{kind} ({modality}): test accuracy, worst of seeds {' '.join(map(str, args.seeds))}", min(values),
                min(values), max(values), unit="", goal=goal, met=goal_met(min(values), goal),
                details=f"mean {statistics.mean(values):.3f}; " + ", ".join(f"{v:.3f}" for v in values),
            ))  # fmt: skip
    timed = "stages (the trainers' runtimes, recorded) and evaluation" if args.evaluate_only else "stages and evaluation"
    notes = [
        f"Seed {seed}: {timed} {total / 60:.1f} min; stage 2 {stage2:.0f} s at {speed:.2f} steps/s."
        for seed, (total, stage2, speed) in timings.items()
    ]
    print(markdown_table(rows))
    print("\n".join(notes))
    write_json(args, "Demo accuracy over seeds", rows, notes=notes)
    if args.doc is not None:
        replace_section(args.doc, "seeds", markdown_table(rows) + "\n\n" + "\n".join(notes))


if __name__ == "__main__":
    main()
