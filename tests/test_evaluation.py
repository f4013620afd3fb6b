"""`chatbridge eval`: every benchmark loader on small files written here in the benchmark's official format, run
end to end on a tiny random model (its answers are gibberish; what is checked is the bookkeeping: one prediction per
sample, metrics equal to what the metric modules compute on the written predictions, resuming without duplicates).
"""

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from transformers_chatbridge.data.miniature import build_miniature
from transformers_chatbridge.inference.batch import InputError
from transformers_chatbridge.evaluation import TASKS, evaluate, get_task, model_revision
from transformers_chatbridge.evaluation.metrics import load_metric
from transformers_chatbridge.testing import tiny_chatbridge

from sample_media import write_mp4, write_tone

MAX_NEW_TOKENS = 4
ESC50_CLASSES = ("dog", "rooster", "chirping_birds")


def _png(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), colour).save(path)


def write_coco(root):
    """Karpathy's dataset_coco.json: 3 test images (val2014) and one train image that must be ignored."""
    images = []
    for index, colour in enumerate(("red", "green", "blue", "white")):
        name = f"COCO_val2014_{index + 1:012d}.jpg"
        _png(root / "val2014" / name, colour)
        sentences = [{"raw": f"A {colour} picture.", "tokens": ["a", colour, "picture"]},
                     {"raw": f"Something plain and {colour}.", "tokens": ["something", "plain", "and", colour]}]
        images.append({"filepath": "val2014", "filename": name, "imgid": index, "cocoid": 100 + index,
                       "split": "train" if colour == "white" else "test", "sentences": sentences})  # fmt: skip
    (root / "dataset_coco.json").write_text(json.dumps({"images": images, "dataset": "coco"}))


def write_vqav2(root):
    """The official questions/annotations pair: 2 images, 3 questions, 10 answers each."""
    for image_id, colour in ((42, "red"), (7, "blue")):
        _png(root / "val2014" / f"COCO_val2014_{image_id:012d}.jpg", colour)
    qa = [(42, 1, "What colour is it?", "red", "other"), (42, 2, "Is it red?", "yes", "yes/no"),
          (7, 3, "How many things?", "1", "number")]  # fmt: skip
    questions = {"data_subtype": "val2014", "questions": [
        {"image_id": i, "question_id": q, "question": text} for i, q, text, _, _ in qa]}  # fmt: skip
    annotations = {"data_subtype": "val2014", "annotations": [
        {"image_id": i, "question_id": q, "answer_type": kind, "multiple_choice_answer": answer,
         "answers": [{"answer": answer if k < 7 else "no", "answer_confidence": "yes", "answer_id": k + 1}
                     for k in range(10)]}
        for i, q, _, answer, kind in qa]}  # fmt: skip
    (root / "v2_OpenEnded_mscoco_val2014_questions.json").write_text(json.dumps(questions))
    (root / "v2_mscoco_val2014_annotations.json").write_text(json.dumps(annotations))


def write_msrvtt_qa(root):
    """MSRVTT-QA test_qa.json with videos/video<id>.mp4."""
    for video_id in (7010, 7011):
        level = video_id % 7 * 60
        frames = [np.full((32, 32, 3), (level + index * 20) % 256, dtype=np.uint8) for index in range(8)]
        write_mp4(root / "videos" / f"video{video_id}.mp4", frames, fps=4)
    entries = [{"id": 0, "video_id": 7010, "question": "what is shown?", "answer": "square"},
               {"id": 1, "video_id": 7010, "question": "who moves?", "answer": "nobody"},
               {"id": 2, "video_id": 7011, "question": "what colour is it?", "answer": "grey"}]  # fmt: skip
    (root / "test_qa.json").write_text(json.dumps(entries))


def write_audiocaps(root):
    """AudioCaps test.csv: 3 clips with 2 captions each; the third clip's audio is missing (left out)."""
    rows = [("1", "abc", "30", "A dog barks."), ("2", "abc", "30", "A dog is barking loudly."),
            ("3", "xyz", "10", "A bird sings."), ("4", "xyz", "10", "Birds chirp."),
            ("5", "gone", "0", "Rain falls."), ("6", "gone", "0", "It is raining.")]  # fmt: skip
    with open(root / "test.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["audiocap_id", "youtube_id", "start_time", "caption"])
        writer.writerows(rows)
    write_tone(root / "abc_30.wav", 300)
    write_tone(root / "xyz_10.wav", 900)


def write_esc50(root):
    """ESC-50: meta/esc50.csv and audio/*.wav, 4 clips of 3 classes."""
    rows = [("1-100-A-0.wav", 1, 0, "dog"), ("1-200-A-1.wav", 1, 1, "rooster"),
            ("2-300-A-34.wav", 2, 2, "chirping_birds"), ("3-400-B-0.wav", 3, 0, "dog")]  # fmt: skip
    (root / "meta").mkdir(parents=True)
    with open(root / "meta" / "esc50.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        for filename, fold, target, category in rows:
            writer.writerow([filename, fold, target, category, "False", filename.split("-")[1], "A"])
            write_tone(root / "audio" / filename, 200 + 100 * target, seconds=0.5)


WRITERS = {"coco_caption": write_coco, "vqav2": write_vqav2, "msrvtt_qa": write_msrvtt_qa,
           "audiocaps": write_audiocaps, "esc50": write_esc50}  # fmt: skip
EXPECTED_SAMPLES = {"coco_caption": 3, "vqav2": 3, "msrvtt_qa": 3, "audiocaps": 2, "esc50": 4}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny model, a tiny miniature world and every benchmark's files, each in its own folder."""
    root = tmp_path_factory.mktemp("evaluation")
    tiny_chatbridge(save_dir=root / "model")
    build_miniature(root / "miniature", size=4, seed=0, progress=False)
    for name, write in WRITERS.items():
        (root / name).mkdir()
        write(root / name)
    return root


def data_dir(world, task):
    return world / ("miniature" if task.startswith("miniature") else task)


def read_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def recompute(task, records):
    """The task's metrics, computed here with the metric modules on the written predictions."""
    predictions = [record["prediction"] for record in records]
    references = [record["references"] for record in records]
    if task == "esc50":
        metric = load_metric("classification_accuracy")
        return metric.compute(predictions=predictions, references=[r[0] for r in references],
                              class_names=list(ESC50_CLASSES))  # fmt: skip
    scores = {}
    for name in {"coco_caption": ("cider", "bleu4"), "vqav2": ("vqa_accuracy",), "msrvtt_qa": ("exact_match",),
                 "audiocaps": ("cider",)}[task]:  # fmt: skip
        scores.update(load_metric(name).compute(predictions=predictions, references=references))
    return scores


@pytest.mark.parametrize("task", sorted(WRITERS))
def test_benchmark_end_to_end(world, tmp_path, task):
    """Each benchmark's format loads, runs on the tiny model and scores exactly what the metric modules give."""
    out = tmp_path / "out"
    results = evaluate(world / "model", task, data_dir(world, task), out, limit=10, batch_size=2,
                       max_new_tokens=MAX_NEW_TOKENS, progress=False)  # fmt: skip
    records = read_lines(out / "predictions.jsonl")
    assert len(records) == EXPECTED_SAMPLES[task] == results["counts"]["samples"]
    assert [record["line"] for record in records] == list(range(1, len(records) + 1))
    assert len({record["id"] for record in records}) == len(records)
    assert all(set(record) >= {"id", "question", "prediction", "references"} for record in records)
    assert json.loads((out / "results.json").read_text()) == results
    expected = recompute(task, records)
    assert {key: results["metrics"][key] for key in expected} == pytest.approx(expected, abs=1e-9)
    settings = results["settings"]
    assert settings["task"] == task and settings["batch_size"] == 2 and settings["limit"] == 10
    assert settings["generation"]["max_new_tokens"] == MAX_NEW_TOKENS
    assert results["counts"]["errors"] == 0


def test_loaders_read_the_official_fields(world):
    coco = get_task("coco_caption").loader(world / "coco_caption")
    assert [s.id for s in coco] == ["100", "101", "102"]  # the train image is left out
    assert coco[0].references == ["A red picture.", "Something plain and red."]
    assert coco[0].media["images"][0].endswith("val2014/COCO_val2014_000000000001.jpg")
    vqa = get_task("vqav2").loader(world / "vqav2")
    assert [s.group for s in vqa] == ["other", "yes/no", "number"] and len(vqa[0].references) == 10
    assert get_task("vqav2").format_prompt(vqa[0]) == (
        "What colour is it? Answer the question using a single word or phrase."
    )
    esc = get_task("esc50").loader(world / "esc50")
    assert esc[0].choices == ESC50_CLASSES
    assert "dog, rooster, chirping birds?" in get_task("esc50").format_prompt(esc[0])
    audiocaps = get_task("audiocaps").loader(world / "audiocaps")
    assert [s.id for s in audiocaps] == ["abc_30", "xyz_10"] and len(audiocaps[0].references) == 2
    mini = get_task("miniature").loader(world / "miniature")
    assert {s.group for s in mini} >= {"ti-shortqa", "ti-cap", "tv-cap", "ta-cap", "tva-cap"}
    assert all(s.question for s in mini)
    av_sample = next(s for s in mini if s.group == "tva-cap")
    assert len(av_sample.media["videos"]) == len(av_sample.media["audio"]) == 1


@pytest.mark.parametrize("task", ["miniature", "miniature-novel"])
def test_miniature_reports_per_task_kind(world, tmp_path, task):
    out = tmp_path / "out"
    samples = get_task(task).loader(world / "miniature")
    results = evaluate(world / "model", task, world / "miniature", out, batch_size=8,
                       max_new_tokens=MAX_NEW_TOKENS, progress=False)  # fmt: skip
    records = read_lines(out / "predictions.jsonl")
    assert len(records) == len(samples)
    groups = {}
    for record in records:
        groups.setdefault(record["group"], []).append(record)
    assert set(results["groups"]) == set(groups)
    for group, members in groups.items():
        name = "cider" if group.endswith("-cap") else "exact_match"
        expected = load_metric(name).compute(
            predictions=[r["prediction"] for r in members], references=[r["references"] for r in members]
        )
        assert results["groups"][group][name] == pytest.approx(expected[name], abs=1e-9)
        assert results["groups"][group]["n"] == len(members)
    qa = [r for r in records if not r["group"].endswith("-cap")]
    pooled = load_metric("exact_match").compute(
        predictions=[r["prediction"] for r in qa], references=[r["references"] for r in qa]
    )
    assert results["metrics"]["exact_match"] == pytest.approx(pooled["exact_match"], abs=1e-9)
    assert "cider" not in results["metrics"]  # CIDEr is per modality only


def test_resume_extends_without_duplicates(world, tmp_path):
    out = tmp_path / "out"
    kwargs = {"batch_size": 2, "max_new_tokens": MAX_NEW_TOKENS, "progress": False}
    evaluate(world / "model", "miniature", world / "miniature", out, limit=2, **kwargs)
    first = (out / "predictions.jsonl").read_text().splitlines()
    assert len(first) == 2
    # an interrupted write leaves a torn last line: it is cut off and answered again
    with open(out / "predictions.jsonl", "a") as file:
        file.write('{"line": 3, "id": "torn')
    results = evaluate(world / "model", "miniature", world / "miniature", out, limit=4, **kwargs)
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 4 and lines[:2] == first
    records = [json.loads(line) for line in lines]
    assert len({r["id"] for r in records}) == 4
    assert results["counts"] == {**results["counts"], "resumed": 2, "generated_now": 2, "samples": 4}
    # nothing left to do: the same file is scored again; a smaller limit scores its first lines
    again = evaluate(world / "model", "miniature", world / "miniature", out, limit=4, **kwargs)
    assert again["counts"]["generated_now"] == 0 and again["metrics"] == results["metrics"]
    fewer = evaluate(world / "model", "miniature", world / "miniature", out, limit=2, **kwargs)
    assert fewer["counts"]["samples"] == 2 and len((out / "predictions.jsonl").read_text().splitlines()) == 4
    # ... but not as another model's or with other generation settings: those scores would be stale
    with pytest.raises(InputError, match=r"model: was .*model', now 'other-model'"):
        evaluate("other-model", "miniature", world / "miniature", out, limit=4, **kwargs)
    with pytest.raises(InputError, match="generation.max_new_tokens: was"):
        evaluate(world / "model", "miniature", world / "miniature", out, limit=4, **{**kwargs, "max_new_tokens": 3})
    with pytest.raises(InputError, match="quantization: was None, now '8bit'"):
        evaluate(world / "model", "miniature", world / "miniature", out, limit=4, quantization="8bit", **kwargs)
    assert json.loads((out / "results.json").read_text())["metrics"] == fewer["metrics"]  # not rewritten


def test_a_model_trained_again_in_place_is_not_scored_with_its_old_predictions(world, tmp_path):
    """Training writes over its output folder: same path, no commit, other weights. Rescoring or continuing the old
    predictions would report the previous model's accuracy as the new one's."""
    model, out = tmp_path / "model", tmp_path / "out"
    shutil.copytree(world / "model", model)
    kwargs = {"batch_size": 2, "max_new_tokens": MAX_NEW_TOKENS, "progress": False}
    evaluate(model, "miniature", world / "miniature", out, limit=2, **kwargs)
    before = model_revision(model)
    assert before.startswith("files:") and model_revision(model) == before
    (model / "model.safetensors").write_bytes((model / "model.safetensors").read_bytes())  # written again
    assert model_revision(model) != before
    for limit in (2, 4):  # nothing left to answer, or more to answer
        with pytest.raises(InputError, match=r"model_revision: was 'files:\w+', now 'files:\w+'"):
            evaluate(model, "miniature", world / "miniature", out, limit=limit, **kwargs)


def test_predictions_of_another_benchmark_are_refused(world, tmp_path):
    out = tmp_path / "out"
    evaluate(world / "model", "esc50", world / "esc50", out, limit=1, max_new_tokens=2, progress=False)
    command = [sys.executable, "-m", "transformers_chatbridge.cli", "eval", "--model", str(world / "model"),
               "--task", "audiocaps", "--data-dir", str(world / "audiocaps"), "--output", str(out)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ})
    assert result.returncode == 2 and "another benchmark" in result.stderr
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 1


def test_cli_subprocess(world, tmp_path):
    out = tmp_path / "results"
    command = [sys.executable, "-m", "transformers_chatbridge.cli", "eval", "--model", str(world / "model"),
               "--task", "vqav2", "--data-dir", str(world / "vqav2"), "--limit", "2", "--batch-size", "2",
               "--max-new-tokens", "3", "--output", str(out)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ})
    assert result.returncode == 0, result.stderr
    assert "vqa_accuracy" in result.stdout and "yes/no" in result.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["limit"] == 2 and results["counts"]["samples"] == 2
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 2


def test_model_revision(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    assert model_revision(folder) is None
    (folder / "config.json").write_text(json.dumps({"_commit_hash": "abc123"}))
    assert model_revision(folder) == "abc123"
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    subprocess.run(["git", "-C", str(folder), "add", "config.json"], check=True)
    subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "m"],
                   check=True)  # fmt: skip
    head = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert model_revision(folder) == head.strip()
    assert model_revision("org/hub-model") is None


def test_registry_names():
    assert {"miniature", "miniature-novel", "coco_caption", "vqav2", "msrvtt_qa", "audiocaps", "esc50"} <= set(TASKS)
