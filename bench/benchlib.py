"""What the bench scripts share: machine facts, result rows, `--json`/`--threads` and the JSON they write.

Every `bench_*.py` prints its own markdown tables when run alone; with `--json PATH` it also writes its rows in the
shape `run_all.py` reads to write `bench/RESULTS.md`:

    {"title": ..., "script": ..., "argv": [...], "settings": "...", "seconds": ..., "machine": {...},
     "rows": [{"name", "ratio", "low", "high", "unit", "goal", "met", "peer", "details"}, ...],
     "notes": ["markdown paragraph", ...]}

`ratio` is the median of the per-repeat figures (for a ratio, each repeat's own ratio against its peer measured in
the same repeat), `low`/`high` their minimum and maximum; `met` is true, false or null (no goal: information only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Row:
    name: str
    ratio: float | None
    low: float | None = None
    high: float | None = None
    unit: str = "x"
    goal: str = ""
    met: bool | None = None
    peer: str = ""
    details: str = ""


def goal_met(value: float, goal: str) -> bool | None:
    """`goal` like "<= 1.10x" or ">= 3x" -> whether `value` meets it (None for an empty goal)."""
    if not goal:
        return None
    operator, number = goal.split()[:2]
    threshold = float(number.rstrip("x"))
    return value <= threshold if operator == "<=" else value >= threshold


def figure_row(name: str, values: list[float], goal: str = "", unit: str = "x", **fields) -> Row:
    """A row from per-repeat figures: median, min and max, goal checked on the median."""
    median = statistics.median(values)
    return Row(name, median, min(values), max(values), unit, goal, goal_met(median, goal), **fields)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine() -> dict:
    import torch
    import transformers

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "loadavg": list(os.getloadavg()),
    }


def add_arguments(parser: argparse.ArgumentParser, threads: bool = True) -> None:
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON (what run_all.py reads)")
    if threads:
        parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")


def set_threads(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(max(1, args.threads))


STARTED = time.perf_counter()


def write_json(args: argparse.Namespace, title: str, rows: list[Row], settings: str = "", notes=()) -> None:
    """Write the rows to `args.json` (nothing when the option was not given)."""
    if not getattr(args, "json", None):
        return
    record = {
        "title": title,
        "script": Path(sys.argv[0]).name,
        "argv": sys.argv[1:],
        "settings": settings,
        "seconds": time.perf_counter() - STARTED,
        "machine": machine(),
        "rows": [asdict(row) for row in rows],
        "notes": [note for note in notes if note],
    }
    Path(args.json).write_text(json.dumps(record, indent=1) + "\n")


def format_figure(value: float | None, unit: str = "x") -> str:
    if value is None:
        return "-"
    digits = 2 if unit == "x" or abs(value) < 100 else 0
    return f"{value:.{digits}f}{'x' if unit == 'x' else ''}"


def cells(row: Row) -> tuple[str, str, str]:
    """(result, spread, met) of a row as RESULTS.md writes them."""
    unit = "" if row.unit == "x" else f" {row.unit}"
    spread = "-" if row.low is None else f"{format_figure(row.low, row.unit)}-{format_figure(row.high, row.unit)}"
    met = "-" if row.met is None else ("met" if row.met else "**missed**")
    return f"{format_figure(row.ratio, row.unit)}{unit}", spread, met


def simple_table(header: list[str], body: list[list[str]]) -> str:
    """A markdown table of ready-made cells (for the tables that are not rows of ratios)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])


def markdown_table(rows: list[Row]) -> str:
    """The rows as the markdown table RESULTS.md uses (also printed by the scripts that have no table of their own)."""
    lines = ["| measure | result (median) | spread (min-max) | peer | goal | met | details |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in rows:
        result, spread, met = cells(row)
        lines.append(f"| {row.name} | {result} | {spread} | {row.peer} | {row.goal or '(info)'} | {met} | "
                     f"{row.details} |")  # fmt: skip
    return "\n".join(lines)
