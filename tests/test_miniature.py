"""The miniature world (`chatbridge data miniature`): real files, decoded; determinism; splits; ground truth."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from datasets import Dataset
from PIL import Image

from transformers_chatbridge.data import CHAT_ROW_FEATURES, row_messages
from transformers_chatbridge.data.miniature import (
    COLOURS,
    MULTIS_TASKS,
    PITCHES,
    SAMPLE_RATE,
    STAGE1_TASKS,
    VIDEO_FRAMES,
    _miniature_features,
    build_miniature,
    combinations_of,
    load_miniature,
)

SIZE = 8
SPLITS = ("train", "validation", "test", "novel")


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    root = tmp_path_factory.mktemp("miniature")
    paths = {name: root / name for name in ("a", "a_again", "other_seed")}
    summaries = {
        name: build_miniature(path, size=SIZE, seed=1 if name == "other_seed" else 0, progress=False)
        for name, path in paths.items()
    }
    return paths, summaries


@pytest.fixture(scope="module")
def world(worlds):
    return worlds[0]["a"]


@pytest.fixture(scope="module")
def data(world):
    return load_miniature(world)


@pytest.fixture(scope="module")
def truth(world):
    return json.loads((world / "ground_truth.json").read_text())


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_every_split_has_rows_and_train_has_every_task(data, worlds):
    assert set(data) == set(SPLITS)
    for split in SPLITS:
        assert len(data[split]) > 0
        assert worlds[1]["a"][split]["rows"] == len(data[split])
    train_tasks = set(data["train"]["task"])
    assert set(MULTIS_TASKS) <= train_tasks and len(MULTIS_TASKS) == 16
    assert set(STAGE1_TASKS.values()) <= train_tasks


def test_stage1_rows_are_media_only_captions(data):
    media_of = {"image": ["image"], "video": ["video"], "audio": ["audio"], "audio-video": ["video", "audio"]}
    for row in data["train"]:
        if row["stage"] != 1:
            continue
        user, assistant = row["messages"]
        assert [item["type"] for item in user["content"]] == media_of[row["modality"]]
        assert assistant["content"][0]["text"] == row["answer"]
    assert sum(row["stage"] == 1 for row in data["train"]) == sum(1 for _ in set(data["train"]["instance"]))


def test_media_exist_and_decode_with_expected_sizes(data):
    for split in SPLITS:
        for row in data[split]:
            if row["stage"] != 1:
                continue
            for path in row["images"]:
                assert os.path.isabs(path)
                with Image.open(path) as image:
                    assert image.size == (64, 64) and image.mode == "RGB"
            for path in row["videos"]:
                with av.open(path) as container:
                    frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
                assert len(frames) == VIDEO_FRAMES and frames[0].shape == (64, 64, 3)
            for path in row["audios"]:
                waveform, rate = sf.read(path)
                assert rate == SAMPLE_RATE and waveform.ndim == 1
                assert 1.0 * SAMPLE_RATE <= len(waveform) <= 2.0 * SAMPLE_RATE


def test_same_seed_gives_identical_bytes_and_other_seed_differs(worlds):
    paths, summaries = worlds
    first, again, other = (_files(paths[name]) for name in ("a", "a_again", "other_seed"))
    assert first.keys() == again.keys()
    assert [name for name in first if first[name] != again[name]] == []
    assert summaries["a"] == summaries["a_again"]
    changed = [name for name in first if name in other and first[name] != other[name]]
    assert any(name.endswith(".parquet") for name in changed)
    for ext in (".png", ".mp4", ".wav"):
        assert any(name.endswith(ext) for name in changed)


def test_splits_share_no_file_no_instance_and_novel_combinations_are_unseen(truth, world):
    files, contents, instances, combos = {}, {}, {}, {}
    for split in SPLITS:
        records = truth["instances"][split]
        files[split] = {f for record in records for f in record["files"]}
        contents[split] = {hashlib.sha256((world / f).read_bytes()).hexdigest() for f in files[split]}
        instances[split] = {
            (r["modality"], json.dumps(r["attributes"], sort_keys=True), json.dumps(r["parameters"], sort_keys=True))
            for r in records
        }
        combos[split] = set().union(*(combinations_of(r["modality"], r["attributes"]) for r in records))
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            assert not files[a] & files[b]
            assert not contents[a] & contents[b]
            assert not instances[a] & instances[b]
    seen = combos["train"] | combos["validation"] | combos["test"]
    assert combos["novel"] and not combos["novel"] & seen
    held = {("shape-colour", *pair) for pair in truth["held_out"]["shape_colour"]}
    held |= {("pitch-timbre", *pair) for pair in truth["held_out"]["pitch_timbre"]}
    assert combos["novel"] <= held


def test_rows_validate_against_the_chat_row_features(world, data):
    import pyarrow.parquet as pq

    for split in SPLITS:
        rows = pq.read_table(world / "data" / f"{split}.parquet").to_pylist()
        chat_only = [{key: row[key] for key in CHAT_ROW_FEATURES} for row in rows]
        dataset = Dataset.from_list(chat_only, features=CHAT_ROW_FEATURES)
        assert len(dataset) == len(rows)
        assert data[split].features == _miniature_features()
        for row in data[split].select(range(min(20, len(data[split])))):
            for message in row_messages(row):  # media items get their (absolute, existing) paths
                for item in message["content"]:
                    if item["type"] != "text":
                        assert Path(item["path"]).is_file()
        assert len(set(data[split]["id"])) == len(data[split])


def _colour_mask(pixels: np.ndarray, colour: str, tolerance: int = 40) -> np.ndarray:
    return np.abs(pixels.astype(int) - np.array(COLOURS[colour])).max(axis=-1) < tolerance


def _short_answer(kind: str, attributes: dict):
    if kind == "count":
        return str(attributes["count"])
    if kind in ("colour", "shape", "position", "direction", "word", "pitch"):
        return attributes[kind]
    return None


def test_answers_match_the_attributes_used_to_draw(data):
    checked = 0
    for split in SPLITS:
        for row in data[split]:
            attributes = json.loads(row["attributes"])
            if row["task"] in ("ti-shortqa", "ti-normalqa", "tv-shortqa"):
                assert row["answer"] == _short_answer(row["question_kind"], attributes)
                assert row["answer"] in row["messages"][-1]["content"][0]["text"]
                checked += 1
            elif row["task"] == "ti-ocr":
                assert row["answer"] == attributes["word"]
            elif row["task"].endswith("-conv"):
                answers = row["answer"].split(" | ")
                replies = [m["content"][0]["text"] for m in row["messages"] if m["role"] == "assistant"]
                assert len(answers) == len(replies) == len(row["question_kind"].split("+"))
                for kind, answer, reply in zip(row["question_kind"].split("+"), answers, replies):
                    assert answer in reply
                    expected = _short_answer(kind, attributes)
                    if kind == "source":
                        expected = f"{attributes['colour']} {attributes['shape']}"
                    elif kind == "silent":
                        expected = f"{attributes['still_colour']} {attributes['still_shape']}"
                    elif kind == "sound":
                        expected = f"{attributes['pitch']}-pitched"
                        answer = answer.split(" ")[0]
                    assert answer == expected, (row["id"], kind)
            elif row["stage"] == 1 or row["task"].endswith("-cap"):
                for key in ("colour", "shape", "direction", "pitch", "timbre", "rhythm"):
                    if key in attributes:
                        assert attributes[key].split("-")[0] in row["answer"]
    assert checked > 0


def test_media_show_and_sound_their_attributes(data):
    """Drawn colour and quadrant match the answers; videos move their way; tones sound their pitch."""
    for row in data["train"]:
        if row["stage"] != 1:
            continue
        a = json.loads(row["attributes"])
        if row["modality"] == "image":
            pixels = np.asarray(Image.open(row["images"][0]))
            mask = _colour_mask(pixels, a["colour"])
            assert mask.sum() > 20
            others = [c for c in COLOURS if c != a["colour"]]
            assert all(_colour_mask(pixels, c).sum() < mask.sum() for c in others)
            ys, xs = np.nonzero(mask)
            quadrant = ("top" if ys.mean() < 32 else "bottom") + " " + ("left" if xs.mean() < 32 else "right")
            assert quadrant == a["position"]
        elif row["modality"] in ("video", "audio-video"):
            with av.open(row["videos"][0]) as container:
                frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
            centres = []
            for frame in (frames[0], frames[-1]):
                ys, xs = np.nonzero(_colour_mask(frame, a["colour"], tolerance=60))
                centres.append((xs.mean(), ys.mean()))
            dx, dy = centres[1][0] - centres[0][0], centres[1][1] - centres[0][1]
            moved = ("right" if dx > 0 else "left") if abs(dx) > abs(dy) else ("down" if dy > 0 else "up")
            assert moved == a["direction"]
        if row["modality"] in ("audio", "audio-video"):
            waveform, rate = sf.read(row["audios"][0])
            spectrum = np.abs(np.fft.rfft(waveform))
            peak = np.fft.rfftfreq(len(waveform), 1 / rate)[spectrum.argmax()]
            assert abs(peak / PITCHES[a["pitch"]] - 1) < 0.05


def test_cli_writes_a_world_in_a_real_subprocess(tmp_path):
    out = tmp_path / "cli-world"
    command = [sys.executable, "-m", "transformers_chatbridge.cli", "data", "miniature", "--out", str(out)]
    result = subprocess.run(command + ["--size", "4", "--seed", "3"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "rows/s" in result.stdout and "train:" in result.stdout and "novel:" in result.stdout
    assert (out / "README.md").read_text().startswith("---\nconfigs:")
    assert sorted(p.name for p in (out / "data").iterdir()) == [f"{s}.parquet" for s in sorted(SPLITS)]
    again = subprocess.run(command + ["--size", "4"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "not empty" in again.stderr
