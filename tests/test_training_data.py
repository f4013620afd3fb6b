"""Where a training run's rows come from (`transformers_chatbridge.training.data`): the project's `dataset_paths`,
TRL's `dataset_name` and `datasets:` block, read as `chatbridge train` parses them, and row lengths measured before
the first step."""

import json
import os
import shutil
from pathlib import Path

import huggingface_hub.constants
import pytest
import yaml
from datasets import Dataset

from transformers_chatbridge.data import ChatBridgeDataCollator, make_row, row_messages
from transformers_chatbridge.data.miniature import build_miniature, load_miniature
from transformers_chatbridge.testing import tiny_chatbridge
from transformers_chatbridge.training import check_row_lengths, make_parser, training_datasets


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("world") / "miniature"
    build_miniature(folder, size=4, seed=0, progress=False)
    return folder


def parse(tmp_path: Path, **config):
    """The five argument groups `chatbridge train --config` gives for this recipe."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "out"), "use_cpu": True, **config}))
    return make_parser().parse_args_and_config(["--config", str(recipe)])


def rows_of(tmp_path: Path, stage: int = 2, **config):
    script_args, training_args, _, chatbridge_args, dataset_args = parse(tmp_path, **config)
    return training_datasets(script_args, dataset_args, chatbridge_args, training_args, stage)


def media_of(rows) -> list[str]:
    return [path for row in rows for column in ("images", "videos", "audios") for path in row[column] or []]


def test_dataset_name_reads_a_folder_with_its_media_and_its_test_split(world, tmp_path):
    train, test = rows_of(tmp_path, dataset_name=str(world), dataset_test_split="validation", eval_strategy="steps")
    expected = load_miniature(world)
    assert sorted(train["id"]) == sorted(row["id"] for row in expected["train"] if row["stage"] == 2)
    assert sorted(test["id"]) == sorted(row["id"] for row in expected["validation"] if row["stage"] == 2)
    assert media_of(train) and all(Path(path).is_absolute() and Path(path).is_file() for path in media_of(train))
    assert set(train.column_names) <= {"messages", "images", "videos", "audios", "id"}


def test_dataset_name_reads_a_hub_data_set_repo_from_the_cache(world, tmp_path, monkeypatch):
    """A Hub id: the repo (media included) comes through huggingface_hub, here from its offline cache."""
    cache = tmp_path / "hub"
    snapshot = cache / "datasets--org--miniature" / "snapshots" / ("0" * 40)
    shutil.copytree(world, snapshot)
    (cache / "datasets--org--miniature" / "refs").mkdir()
    (cache / "datasets--org--miniature" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    train, _ = rows_of(tmp_path, stage=1, dataset_name="org/miniature")
    assert len(train) == sum(row["stage"] == 1 for row in load_miniature(world)["train"]) > 0
    assert all(path.startswith(str(snapshot)) and Path(path).is_file() for path in media_of(train))


def test_a_datasets_block_mixes_by_fraction_as_trl_does(world, tmp_path):
    """Two entries with fractions 1:3: the mixture is as large as it can be without repeating a row."""
    stage1 = Dataset.from_list([row for row in load_miniature(world)["train"] if row["stage"] == 1])
    stage1.to_json(tmp_path / "captions.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "captions.jsonl").read_text().splitlines()]
    for line in lines:  # relative to the file's folder, as a moved data set names them
        line["images"] = [os.path.relpath(path, tmp_path) for path in line["images"]]
    (tmp_path / "captions.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    block = [{"path": str(world), "split": "train", "fraction": 1.0},
             {"path": str(tmp_path / "captions.jsonl"), "fraction": 3.0, "columns": ["messages", "images", "stage"]}]
    train, _ = rows_of(tmp_path, stage=1, datasets=block)
    in_world = sum(row["stage"] == 1 for row in load_miniature(world)["train"])
    # Shares 1/4 and 3/4; the file (in_world rows) limits the mixture to in_world * 4/3 rows.
    assert len(train) == round(in_world / 4 * 4 / 3) + round(in_world * 3 / 4 * 4 / 3)
    assert all(Path(path).is_file() for path in media_of(train))


@pytest.mark.parametrize("config, message", [
    ({"dataset_paths": ["a"], "dataset_name": "b"}, r"given twice \(dataset_paths and dataset_name\)"),
    ({"dataset_name": "b", "datasets": [{"path": "c"}]}, r"given twice \(dataset_name and datasets\)"),
    ({"datasets": [{"path": "c"}], "dataset_weights": [1.0]}, r"`dataset_weights` weighs `dataset_paths`"),
    ({}, r"No training data"),
])
def test_conflicting_or_missing_data_sources_are_named(tmp_path, config, message):
    with pytest.raises(ValueError, match=message):
        rows_of(tmp_path, **config)


def test_rows_longer_than_max_length_stop_the_run_before_the_first_step(tmp_path):
    _, processor = tiny_chatbridge()
    short = make_row([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])
    long = make_row([{"role": "user", "content": "word " * 300}, {"role": "assistant", "content": "ok"}])
    rows = Dataset.from_list([{**short, "id": "a"}, {**long, "id": "b"}, {**short, "id": "c"}])
    collator = ChatBridgeDataCollator(processor, max_length=64)
    with pytest.raises(ValueError, match=r"1 of 3 rows are longer than max_length=64 \(row 1 \(id 'b'\): \d+ tokens\)"):
        check_row_lengths(rows, collator)
    kept = check_row_lengths(rows, ChatBridgeDataCollator(processor, max_length=64, skip_too_long=True))
    assert kept["id"] == ["a", "c"]


def test_row_lengths_become_the_column_group_by_length_batches_by(tmp_path):
    """Chat rows have no `input_ids` for the Trainer's `group_by_length` to measure: the checked lengths are given."""
    _, processor = tiny_chatbridge()
    def row(words: int) -> dict:
        return {**make_row([{"role": "user", "content": "word " * words}, {"role": "assistant", "content": "ok"}]),
                "id": str(words)}  # fmt: skip

    rows = Dataset.from_list([row(words) for words in (3, 40, 12, 90)])
    collator = ChatBridgeDataCollator(processor, max_length=256, skip_too_long=True)
    kept = check_row_lengths(rows, collator, length_column="length")
    expected = collator.sequence_lengths([row_messages(row) for row in rows])
    assert kept["id"] == ["3", "40", "12"] and expected[3] > 256
    assert kept["length"] == expected[:3] and expected[0] < expected[2] < expected[1]
    # Without a length limit the lengths are still measured, and an old column is replaced, not duplicated.
    again = check_row_lengths(kept, ChatBridgeDataCollator(processor), length_column="length")
    assert again["length"] == expected[:3] and again.column_names.count("length") == 1


def test_a_recipe_whose_folders_are_missing_names_them(tmp_path):
    """The miniature recipe before `chatbridge demo --components-only`: one line naming the folder, not a repo-id error."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "transformers_chatbridge.cli", "train", "--config", "miniature_stage1"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    # The last line: with the [quantization] extra, bitsandbytes logs its kernel lookup when PEFT imports it.
    assert done.stderr.strip().splitlines()[-1].startswith(
        "chatbridge train: error: `vision_model` demo_run/components/vision: no such folder (and not a Hub id); the "
        "miniature recipes read ./demo_run as `chatbridge demo --components-only`"
    )
    assert "Repo id must" not in done.stderr and "Traceback" not in done.stderr
