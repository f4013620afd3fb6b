"""`chatbridge demo --quick`: the whole lifecycle end to end, as a real subprocess of the built wheel installed
outside the checkout (about 3 minutes on 2 cores), then the miniature recipes on its folder."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from transformers_chatbridge.demo.doc import check_section, replace_section, report_section
from transformers_chatbridge.demo.lanes import second_lane
from transformers_chatbridge.demo.lifecycle import EVAL_TASKS, RUN_MARKER, clear_previous_run, stage_speed
from transformers_chatbridge.evaluation.metrics import load_metric


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory) -> dict:
    """The environment of a Python that has the built wheel installed and not the checkout (PYTHONPATH comes before
    the development install's own finder)."""
    folder = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(folder), str(REPO)], check=True, timeout=600)
    wheel = next(folder.glob("transformers_chatbridge-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(folder / "site"), str(wheel)], check=True, timeout=300)
    return {**os.environ, "PYTHONPATH": str(folder / "site"), "HF_HUB_OFFLINE": "1"}


def chatbridge(arguments: list[str], cwd: Path, env: dict, timeout: int) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "transformers_chatbridge.cli", *arguments]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, wheel_env) -> tuple[Path, str]:
    """`chatbridge demo --quick` from the installed wheel, in a folder outside the checkout."""
    out = tmp_path_factory.mktemp("demo") / "demo_run"
    result = chatbridge(["demo", "--quick", "--out", str(out)], out.parent, wheel_env, 900)
    return out, result.stdout


def _report_table(report: str) -> dict[tuple[str, str], list[str]]:
    """(task kind, metric) -> the cells of the report's accuracy table."""
    rows = {}
    for line in report.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 8 and cells[2] in ("exact match", "CIDEr-D"):
            rows[(cells[1], cells[2])] = cells
    return rows


def test_every_phase_leaves_its_output(quick_run):
    out, stdout = quick_run
    for step in range(1, 7):
        assert f"[{step}/6]" in stdout
    assert json.loads((out / "miniature" / "ground_truth.json").read_text())["size"] == 40
    for part in ("llm", "vision", "audio"):
        assert (out / "components" / part / "config.json").is_file()
    for stage in ("stage1", "stage2"):
        assert json.loads((out / stage / "trainer_state.json").read_text())["log_history"]
    assert (out / "stage1" / "model.safetensors").is_file()
    # Stage 2 trains LoRA adapters beside the bridge; the merged model is the one evaluated and published.
    assert (out / "stage2" / "adapter_model.safetensors").is_file()
    assert (out / "stage2" / "merged" / "model.safetensors").is_file()
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "![training loss](loss.png)" in report
    assert "## Pipeline answers" in report and "| audio-video |" in report
    assert f"stage 2 ran {stage_speed(out / 'stage2')[1]:.2f} steps/s" in report  # the machine's speed beside its time


def test_the_demo_ran_from_the_installed_wheel(quick_run, wheel_env):
    where = chatbridge(["--help"], quick_run[0].parent, wheel_env, 60)
    assert "chatbridge" in where.stdout
    located = subprocess.run([sys.executable, "-c", "import transformers_chatbridge as t; print(t.__file__)"],
                             env=wheel_env, capture_output=True, text=True, timeout=60, cwd=quick_run[0].parent)
    assert located.stdout.strip().startswith(wheel_env["PYTHONPATH"]) and str(REPO) not in located.stdout


def test_the_miniature_recipes_train_from_the_demos_folder(quick_run, wheel_env, tmp_path):
    """`chatbridge train --config miniature_stage1` (the recipe shipped in the wheel) reads `demo_run/` as the demo
    leaves it: its world and frozen parts, and stage 2 the stage-1 model."""
    out, _ = quick_run
    small = ["--max_steps", "2", "--per_device_train_batch_size", "4", "--dataloader_num_workers", "0"]
    chatbridge(["train", "--config", "miniature_stage1", *small, "--output_dir", str(tmp_path / "stage1")],
               out.parent, wheel_env, 600)  # fmt: skip
    chatbridge(["train", "--config", "miniature_stage2", *small, "--output_dir", str(tmp_path / "stage2")],
               out.parent, wheel_env, 600)  # fmt: skip
    assert (tmp_path / "stage1" / "model.safetensors").is_file()
    assert (tmp_path / "stage2" / "merged" / "model.safetensors").is_file()


@pytest.mark.slow
def test_components_only_gives_what_the_miniature_recipes_train_from(wheel_env, tmp_path):
    """The recipes' own start: `chatbridge demo --components-only`, then both stages with the recipes' own paths."""
    chatbridge(["demo", "--quick", "--components-only"], tmp_path, wheel_env, 900)
    assert not (tmp_path / "demo_run" / "stage1").exists()
    small = ["--max_steps", "2", "--per_device_train_batch_size", "4", "--dataloader_num_workers", "0"]
    chatbridge(["train", "--config", "miniature_stage1", *small], tmp_path, wheel_env, 600)
    chatbridge(["train", "--config", "miniature_stage2", *small], tmp_path, wheel_env, 600)
    assert (tmp_path / "demo_run" / "stage2" / "merged" / "model.safetensors").is_file()


def test_report_numbers_are_computed_from_the_predictions(quick_run):
    out, _ = quick_run
    table = _report_table((out / "report.md").read_text())
    exact_match = load_metric("exact_match")
    column = {label: 4 + index for index, label in enumerate(EVAL_TASKS)}
    checked = 0
    for label, task in EVAL_TASKS.items():
        records = [json.loads(line) for line in (out / "eval" / task / "predictions.jsonl").read_text().splitlines()]
        groups = {}
        for record in records:
            groups.setdefault(record["group"], []).append(record)
        for group, members in groups.items():
            if (group, "exact match") not in table:
                continue
            value = exact_match.compute(
                predictions=[record["prediction"] for record in members],
                references=[record["references"] for record in members],
            )["exact_match"]
            assert table[(group, "exact match")][column[label]] == f"{value:.1%}", (task, group)
            assert table[(group, "exact match")][3] == str(len(members))
            checked += 1
    assert checked >= 3 * 8


def test_questions_without_media_score_below_the_real_test(quick_run):
    out, _ = quick_run
    real = json.loads((out / "eval" / "miniature" / "results.json").read_text())["metrics"]["exact_match"]
    control = json.loads((out / "eval" / "miniature-no-media" / "results.json").read_text())["metrics"]["exact_match"]
    assert control < real


def test_publishable_folder_carries_the_evaluation(quick_run):
    out, _ = quick_run
    card = (out / "publish" / "README.md").read_text()
    overall = json.loads((out / "eval" / "miniature" / "results.json").read_text())["metrics"]["exact_match"]
    assert f"| miniature | miniature |  | 130 | exact_match | {overall:.6g} |" in card  # model-index table
    report_rows = [line for line in (out / "report.md").read_text().splitlines() if line.startswith("| image | ti-")]
    assert report_rows and all(row in card for row in report_rows)  # the demo's table, row for row
    assert (out / "publish" / "model.safetensors").is_file()


def test_a_rerun_replaces_the_previous_runs_outputs_and_nothing_else(tmp_path):
    """Rerunning into the same folder must not resume the evaluation from the old model's predictions (same model
    path, same settings) nor fail at the end on a non-empty publishable folder."""
    out = tmp_path / "run"
    previous = {
        "eval/miniature/predictions.jsonl": '{"line": 1}\n',
        "publish/README.md": "card",
        "stage2/merged/config.json": "{}",
        "report.md": "old table",
    }
    for name, text in {**previous, "my_notes.txt": "keep me", RUN_MARKER: ""}.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    assert sorted(clear_previous_run(out)) == ["eval", "publish", "report.md", "stage2"]
    assert sorted(path.name for path in out.iterdir()) == [RUN_MARKER, "my_notes.txt"]
    assert clear_previous_run(out) == []


def test_outputs_no_demo_run_wrote_are_never_deleted(tmp_path):
    out = tmp_path / "work"
    for name in ("eval/results.json", "report.md", "my_notes.txt"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("someone's work")
    command = [sys.executable, "-m", "transformers_chatbridge.cli", "demo", "--quick", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert f"{out} holds eval, report.md, which no `chatbridge demo` run wrote" in result.stderr
    assert "--overwrite" in result.stderr and "Traceback" not in result.stderr
    assert all((out / name).read_text() == "someone's work" for name in ("eval/results.json", "report.md"))
    assert sorted(clear_previous_run(out, overwrite=True)) == ["eval", "report.md"]
    assert sorted(path.name for path in out.iterdir()) == ["my_notes.txt"]


def test_a_runs_report_replaces_the_pages_run_section_and_nothing_else(quick_run, tmp_path):
    out, _ = quick_run
    page = tmp_path / "demo.md"
    page.write_text(
        "# The demo\n\nFindings by hand.\n\n<!-- begin run -->\nold figures\n<!-- end run -->\n\nMore prose.\n"
    )
    replace_section(page, "run", report_section(out, page))
    text = page.read_text()
    assert text.startswith("# The demo\n\nFindings by hand.\n\n<!-- begin run -->\n## ChatBridge miniature-world demo")
    assert text.endswith("<!-- end run -->\n\nMore prose.\n") and "old figures" not in text
    report_rows = [line for line in (out / "report.md").read_text().splitlines() if line.startswith("| image | ti-")]
    assert report_rows and all(row in text for row in report_rows)
    assert "### Accuracy" in text and "![training loss](demo_loss.png)" in text and str(out) not in text
    assert (tmp_path / "demo_loss.png").read_bytes() == (out / "loss.png").read_bytes()
    replace_section(page, "run", report_section(out, page))
    assert page.read_text() == text


def test_a_page_without_its_section_stops_the_demo_before_it_starts(tmp_path):
    page, out = tmp_path / "demo.md", tmp_path / "run"
    page.write_text("# The demo\n\n<!-- begin run -->\nno end marker\n")
    command = [sys.executable, "-m", "transformers_chatbridge.cli", "demo", "--quick", "--out", str(out)]
    command += ["--doc", str(page)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert f"{page} must hold one `<!-- begin run -->` line before one `<!-- end run -->` line" in result.stderr
    assert not out.exists() and "Traceback" not in result.stderr


def test_the_demo_page_keeps_the_sections_runs_write():
    for name in ("run", "seeds"):
        check_section(REPO / "docs" / "demo.md", name)


def test_a_second_lane_runs_in_another_process_on_half_the_threads():
    """The demo's parallel parts: the lane is another process with half the threads, this process keeps the other
    half until the block ends, and an error in the lane reaches the caller."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with second_lane() as start:
            pid, lane_threads = start(os.getpid), start(torch.get_num_threads)
            assert torch.get_num_threads() == 1
            assert pid.get(timeout=120) != os.getpid()
            assert lane_threads.get(timeout=120) == 1
            with pytest.raises(ValueError, match="math domain error"):
                start(math.sqrt, -1).get(timeout=120)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
