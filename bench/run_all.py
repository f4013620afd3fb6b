"""Run every `bench/bench_*.py` in turn and rewrite `bench/RESULTS.md` from the rows they write (`--json`).

Each script runs in its own subprocess with the repeat counts of `SUITE` (chosen so the whole suite takes about ten
minutes on 2 CPU cores; a script missing from `SUITE` runs with its own defaults) and writes its rows as JSON;
this script collects them into one markdown page: the machine, then one table per benchmark with each figure's
median, spread (min-max over repeats), peer, goal and met/missed, and the notes the script wrote (what limits a
missed figure, breakdowns). A script that fails is reported on the page with the end of its output, and the exit
status is then non-zero.

    python bench/run_all.py [--threads 2] [--only video_decode training ...] [--quick] [--out bench/RESULTS.md]

`make bench` runs it. `--quick` cuts every repeat count to a smoke test (figures not worth keeping; it writes to
--out all the same, so give it another path).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchlib import Row, cells, machine, markdown_table  # noqa: E402

# Script -> arguments in the suite, in the order they run.
SUITE = {
    "bench_generate_instructblip.py": ["--runs", "7"],
    "bench_batch_scaling.py": ["--runs", "3"],
    "bench_training.py": ["--repeats", "5", "--steps", "2", "--miniature-repeats", "2"],
    "bench_audio_features.py": ["--runs", "7", "--calls", "10"],
    "bench_video_decode.py": ["--runs", "5"],
    "bench_collator.py": ["--runs", "3"],
    "bench_convert_memory.py": [],
    "bench_static_cache.py": ["--runs", "5"],
    "bench_vllm.py": ["--runs", "5"],
}
QUICK = {
    "bench_generate_instructblip.py": ["--runs", "1", "--new-tokens", "4"],
    "bench_batch_scaling.py": ["--runs", "1", "--questions", "16", "--new-tokens", "4"],
    "bench_training.py": ["--repeats", "1", "--steps", "1", "--miniature-repeats", "1", "--miniature-batch", "8",
                          "--no-profile"],
    "bench_audio_features.py": ["--runs", "1", "--calls", "2"],
    "bench_video_decode.py": ["--runs", "1"],
    "bench_collator.py": ["--runs", "1", "--rows", "16"],
    "bench_convert_memory.py": ["--llm-layers", "1", "--eva-layers", "1", "--beats-layers", "1"],
    "bench_static_cache.py": ["--runs", "1", "--new-tokens", "8", "--batch-sizes", "1"],
    "bench_vllm.py": ["--runs", "1", "--new-tokens", "4"],
}  # fmt: skip


def scripts(only: list[str] | None) -> list[Path]:
    found = sorted(HERE.glob("bench_*.py"))
    order = {name: index for index, name in enumerate(SUITE)}
    found.sort(key=lambda path: (order.get(path.name, len(order)), path.name))
    if only:
        found = [path for path in found if any(name in path.stem for name in only)]
    return found


def run(script: Path, arguments: list[str], threads: int, json_path: Path) -> tuple[dict | None, str, float]:
    """Run one bench script; returns (its JSON record or None, the tail of its output, seconds)."""
    command = [sys.executable, str(script), *arguments, "--json", str(json_path)]
    if "--threads" in script.read_text():
        command += ["--threads", str(threads)]
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1",
                   "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}  # fmt: skip
    print(f"[bench] {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=HERE.parent, env=environment, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    output = (done.stdout + done.stderr).strip()
    record = None
    if done.returncode == 0 and json_path.exists():
        record = json.loads(json_path.read_text())
    else:
        output = f"exit status {done.returncode}\n{output}"
    print(f"[bench] {script.name}: {'done' if record else 'FAILED'} in {seconds:.0f} s", flush=True)
    return record, output[-3000:], seconds


def machine_line(facts: dict, threads: int) -> str:
    return (f"{facts['cpu']}, {facts['cores']} cores, torch {facts['torch']} (torch threads: {threads} per "
            f"benchmark), transformers {facts['transformers']}, Python {facts['python']}, {facts['system']}")


def render(results: list[tuple[Path, list[str], dict | None, str, float]], facts: dict, threads: int,
           load_before: float, seconds: float, quick: bool) -> str:  # fmt: skip
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    loads = [load_before] + [record["machine"]["loadavg"][0] for _, _, record, _, _ in results if record]
    lines = [
        "# Benchmark results",
        "",
        f"Written by `make bench` (`{' '.join(['bench/run_all.py', *sys.argv[1:]])}`) on {now}, in "
        f"{seconds / 60:.1f} min; rerun it rather than "
        "editing this page." + (" **Quick mode: repeat counts cut to a smoke test, figures not representative.**"
                                if quick else ""),
        "",
        f"- Machine: {machine_line(facts, threads)}.",
        f"- Load average (1 min) before the run and after each benchmark: {', '.join(f'{x:.2f}' for x in loads)} "
        f"(on {facts['cores']} cores; above ~0.5 other processes were running and slow everything, most of all "
        "multi-threaded operators, which widens the spreads).",
        "- Each row: *result* is the median over repeats of a figure measured in one run against its *peer* (for a "
        "ratio, each repeat's own ratio, both sides timed in that repeat, taking turns); *spread* is the min-max over "
        "the repeats; *met* compares the median with the goal. Times and rates are from this CPU and tiny models; "
        "only the ratios are meant to carry over.",
        "",
        "## Summary",
        "",
        "| benchmark | measure | result | spread | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for script, _, record, _, _ in results:
        if record is None:
            lines.append(f"| `{script.name}` | **failed** (see below) | | | | |")
            continue
        for row in (Row(**fields) for fields in record["rows"]):
            if row.goal:
                result, spread, met = cells(row)
                lines.append(f"| `{script.name}` | {row.name} | {result} | {spread} | {row.goal} | {met} |")
    for script, arguments, record, output, elapsed in results:
        lines += ["", f"## {record['title'] if record else script.name}", ""]
        lines.append(f"`python bench/{script.name}{''.join(' ' + a for a in arguments)}` ({elapsed:.0f} s)")
        lines.append("")
        if record is None:
            lines += ["**Failed.** End of its output:", "", "```", output, "```"]
            continue
        if record.get("settings"):
            lines += [record["settings"] + ".", ""]
        lines.append(markdown_table([Row(**fields) for fields in record["rows"]]))
        for note in record.get("notes", []):
            lines += ["", note]
    lines += [
        "",
        "## Real-dimension GPU profile",
        "",
        "On a GPU, not in this suite: `python bench/gpu_real_size.py` (EVA ViT-g + BEATs + Q-Former + 13B LLaMA, random "
        "weights in bf16: tokens/s per modality at batch 1 and 16 beside the bare LLM, time to first token, peak memory, "
        "the batch-1 decode bound, a stage-2 step with and without gradient checkpointing) writes "
        "`bench/RESULTS_GPU.md`, with the device named and the miniature recipes' bf16 run beside it.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads for every benchmark (default 2)")
    parser.add_argument("--only", nargs="+", help="run only the scripts whose name contains one of these")
    parser.add_argument("--quick", action="store_true", help="smoke-test repeat counts (figures not representative)")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()

    facts, load_before, started = machine(), os.getloadavg()[0], time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-run-all-") as tmp:
        for script in scripts(args.only):
            arguments = (QUICK if args.quick else SUITE).get(script.name, [])
            record, output, seconds = run(script, arguments, args.threads, Path(tmp) / f"{script.stem}.json")
            results.append((script, arguments, record, output, seconds))
    page = render(results, facts, args.threads, load_before, time.perf_counter() - started, args.quick)
    Path(args.out).write_text(page)
    print(f"[bench] wrote {args.out} in {(time.perf_counter() - started) / 60:.1f} min", flush=True)
    failed = [script.name for script, _, record, _, _ in results if record is None]
    if failed:
        print(f"[bench] failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
