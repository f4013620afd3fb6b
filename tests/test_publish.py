"""`chatbridge publish`: dry runs hold what a Hub repo needs, and that repo loads by id without this package.

Nothing here touches the network: dry runs never do, and the error cases stop before any Hub call.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
from huggingface_hub import ModelCard

from transformers_chatbridge.data.miniature import build_miniature
from transformers_chatbridge.hub.publish import PublishError, publish, publish_dataset
from transformers_chatbridge.testing import tiny_chatbridge

REPO_ID = "org/name"
REVISION = "0123456789abcdef0123456789abcdef01234567"
REMOTE_CODE_FILES = {
    "configuration_chatbridge.py", "modeling_chatbridge.py", "configuration_beats.py", "modeling_beats.py",
    "processing_chatbridge.py", "image_processing_chatbridge.py", "video_processing_chatbridge.py",
    "feature_extraction_beats.py", "audio_reading.py", "segment_sampling.py", "media_cache.py", "modalities.py",
    "pipeline_chatbridge.py",
}
PROCESSOR_FILES = {"processor_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"}
# Makes `transformers_chatbridge` unimportable in the subprocess, as in a Python where it is not installed.
WITHOUT_PACKAGE = textwrap.dedent(
    """
    import sys
    sys.modules["transformers_chatbridge"] = None
    try:
        import transformers_chatbridge
    except ImportError:
        pass
    else:
        raise SystemExit("the package is still importable")
    """
)


def run_python(code: str, cwd, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", **env}
    environment.pop("PYTHONPATH", None)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=environment, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny ChatBridge folder as a training run leaves it: model, processor, trainer state, its recipe."""
    folder = tmp_path_factory.mktemp("run")
    tiny_chatbridge(save_dir=folder)
    state = {
        "global_step": 20, "max_steps": 20, "epoch": 2.0, "train_batch_size": 8,
        "log_history": [{"loss": 4.5, "step": 10}, {"loss": 3.25, "step": 20}, {"train_loss": 3.9, "step": 20}],
    }
    (folder / "trainer_state.json").write_text(json.dumps(state))
    (folder / "recipe.yaml").write_text(
        "training_stage: instruction\nmodel_name_or_path: org/chatbridge-stage1\nlearning_rate: 1.0e-3\n"
        "dataset_paths:\n  - org/miniature-world\n"
    )
    (folder / "checkpoint-10").mkdir()
    (folder / "checkpoint-10" / "optimizer.pt").write_bytes(b"not uploaded")
    return folder


@pytest.fixture(scope="module")
def eval_results(tmp_path_factory):
    """Two results files as `chatbridge eval` writes them (metrics as fractions, `n` the sample count)."""
    folder = tmp_path_factory.mktemp("eval")
    vqa, esc = folder / "vqav2.json", folder / "esc50.json"
    vqa.write_text(json.dumps({"task": "vqav2", "metrics": {"vqa_accuracy": 0.625, "n": 40}, "groups": {}}))
    esc.write_text(json.dumps({"task": "esc50", "metrics": {"classification_accuracy": 0.5, "n": 20}, "groups": {}}))
    return [vqa, esc]


@pytest.fixture(scope="module")
def dry_run(run_dir, eval_results, tmp_path_factory):
    out = tmp_path_factory.mktemp("dry") / "out"
    result = publish(run_dir, REPO_ID, dry_run=out, eval_results=eval_results)
    return out, result


def test_dry_run_writes_exactly_the_repo_files(dry_run):
    out, result = dry_run
    files = {str(path.relative_to(out)) for path in out.rglob("*") if path.is_file()}
    expected = {"README.md", "config.json", "generation_config.json", "model.safetensors", "trainer_state.json",
                "recipe.yaml", *PROCESSOR_FILES, *REMOTE_CODE_FILES}
    assert files == expected
    assert set(result["files"]) == expected and result["url"] is None
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoModelForMultimodalLM"] == "modeling_chatbridge.ChatBridgeForConditionalGeneration"
    assert config["custom_pipelines"]["chatbridge-remote-code"]["impl"] == "pipeline_chatbridge.ChatBridgePipeline"


def test_only_the_allow_list_is_uploaded(run_dir, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(run_dir, folder)
    secrets = {".env": "HF_TOKEN=hf_secret", "nohup.out": "a log", "notes.txt": "private", "wandb/run-1/files.txt": "x",
               "merged/model.safetensors": "weights of another folder", ".git/config": "[core]"}  # fmt: skip
    for relative, text in secrets.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text)
    out = tmp_path / "out"
    result = publish(folder, REPO_ID, dry_run=out)
    expected = {"README.md", "config.json", "generation_config.json", "model.safetensors", "trainer_state.json",
                "recipe.yaml", *PROCESSOR_FILES, *REMOTE_CODE_FILES}
    assert {str(path.relative_to(out)) for path in out.rglob("*") if path.is_file()} == expected
    assert set(result["files"]) == expected


def test_card_metadata_parses_back_with_model_index_from_eval_results(dry_run):
    out, _ = dry_run
    card = ModelCard.load(out / "README.md")
    data = card.data
    assert (data.license, data.pipeline_tag, data.library_name) == ("apache-2.0", "any-to-any", "transformers")
    assert {"chatbridge", "multimodal"} <= set(data.tags)
    assert data.base_model == "org/chatbridge-stage1" and data.datasets == ["org/miniature-world"]
    results = {(r.task_type, r.dataset_name, r.metric_type): r.metric_value for r in data.eval_results}
    assert results == {
        ("visual-question-answering", "VQAv2", "vqa_accuracy"): 0.625,
        ("audio-classification", "ESC-50", "classification_accuracy"): 0.5,
    }
    assert data.to_dict()["model-index"][0]["name"] == "name"
    text = card.text
    assert text.index("## Architecture") < text.index("## How to use") < text.index("## Training")
    assert text.index("## Training") < text.index("## Evaluation") < text.index("## Citation")
    assert "final training loss: 3.25 (step 20)" in text and "steps: 20 of 20" in text
    assert "| vqav2 | VQAv2 |  | 40 | vqa_accuracy | 0.625 |" in text
    assert "arXiv:2305.16103" in text and "@article{zhao2023chatbridge" in text
    assert "`llama`: 2 layers, width 32, vocabulary 384" in text and "4 image queries" in text


def hub_cache(out, hf_home):
    """The dry-run folder placed where `from_pretrained("org/name")` finds it offline."""
    repo = hf_home / "hub" / "models--org--name"
    shutil.copytree(out, repo / "snapshots" / REVISION)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return hf_home


def test_the_uploaded_files_load_by_repo_id_without_the_package(dry_run, tmp_path):
    out, _ = dry_run
    hf_home = hub_cache(out, tmp_path / "hf-home")
    code = WITHOUT_PACKAGE + textwrap.dedent(
        """
        from PIL import Image
        from transformers import AutoModelForMultimodalLM, pipeline

        model = AutoModelForMultimodalLM.from_pretrained("org/name", trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        assert type(model).__name__ == "ChatBridgeForConditionalGeneration"
        pipe = pipeline(model="org/name", trust_remote_code=True)
        assert type(pipe).__name__ == "ChatBridgePipeline", type(pipe)
        image = Image.new("RGB", (40, 30), "green")
        answer = pipe(text="What is it?", images=image, max_new_tokens=3)
        assert isinstance(answer[0]["generated_text"], str), answer
        print("LOADED")
        """
    )
    result = run_python(code, tmp_path, HF_HOME=str(hf_home))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LOADED" in result.stdout


def test_card_snippets_run_against_the_folder(dry_run, tmp_path):
    out, _ = dry_run
    snippets = re.findall(r"```python\n(.*?)```", (out / "README.md").read_text(), flags=re.S)
    assert len(snippets) == 2 and all('"org/name"' in snippet for snippet in snippets)
    code = WITHOUT_PACKAGE + "\n".join(
        f"exec(compile({snippet.replace('org/name', str(out))!r}, 'snippet-{index}', 'exec'), {{}})"
        for index, snippet in enumerate(snippets)
    )
    result = run_python(code, tmp_path, HF_HOME=str(tmp_path / "hf-home"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(result.stdout.strip().splitlines()) == 2  # one printed answer per snippet


def test_a_folder_without_remote_code_is_completed_by_saving_again(tmp_path):
    folder = tmp_path / "bare"
    tiny_chatbridge(save_dir=folder)
    for name in ("modeling_beats.py", "pipeline_chatbridge.py", "processing_chatbridge.py"):
        (folder / name).unlink()
    config = json.loads((folder / "config.json").read_text())
    del config["custom_pipelines"]
    (folder / "config.json").write_text(json.dumps(config))
    publish(folder, REPO_ID, dry_run=tmp_path / "out")
    files = {path.name for path in (tmp_path / "out").iterdir()}
    assert REMOTE_CODE_FILES <= files and "model.safetensors" in files
    assert "custom_pipelines" in json.loads((tmp_path / "out" / "config.json").read_text())
    assert not (folder / "pipeline_chatbridge.py").exists()  # the published folder itself is left as it was


def test_missing_token_stops_before_any_work(run_dir, tmp_path):
    environment = {**os.environ, "HF_HOME": str(tmp_path / "empty-hf-home"), "HF_HUB_OFFLINE": "1"}
    environment.pop("HF_TOKEN", None)
    environment.pop("HUGGING_FACE_HUB_TOKEN", None)
    command = [sys.executable, "-m", "transformers_chatbridge.cli", "publish", str(run_dir), "--repo-id", REPO_ID]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "no Hugging Face token" in result.stderr and "--token" in result.stderr
    assert "Loading weights" not in result.stderr  # the folder was not loaded


def test_a_folder_without_weights_names_the_file(tmp_path):
    folder = tmp_path / "no-weights"
    tiny_chatbridge(save_dir=folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(PublishError, match="model.safetensors"):
        publish(folder, REPO_ID, dry_run=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_broken_weights_name_the_file(tmp_path):
    folder = tmp_path / "broken"
    tiny_chatbridge(save_dir=folder)
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(PublishError, match=r"model\.safetensors does not load"):
        publish(folder, REPO_ID, dry_run=tmp_path / "out")


@pytest.mark.parametrize("repo_id", ["name-without-namespace", "org/bad name", "org/name/extra", "org/--name"])
def test_an_invalid_repo_id_is_named(run_dir, tmp_path, repo_id):
    with pytest.raises(PublishError, match=re.escape(f"invalid --repo-id {repo_id!r}")):
        publish(run_dir, repo_id, dry_run=tmp_path / "out")


def test_dataset_dry_run_keeps_the_hub_layout_and_cards_it(tmp_path):
    world = tmp_path / "world"
    build_miniature(world, size=1, progress=False)
    out = tmp_path / "out"
    result = publish_dataset(world, "org/miniature-world", dry_run=out, license="cc-by-4.0")
    files = set(result["files"])
    assert {f"data/{split}.parquet" for split in ("train", "validation", "test", "novel")} <= files
    assert "ground_truth.json" in files and "README.md" in files
    assert any(name.startswith("media/train/image/") for name in files)
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "cc-by-4.0" and {"chatbridge", "multimodal"} <= set(card.data.tags)
    assert {entry["split"] for entry in card.data.configs[0]["data_files"]} == {"train", "validation", "test", "novel"}
    assert "# ChatBridge miniature world" in card.text

    from datasets import load_dataset

    train = load_dataset(str(out), split="train")
    assert all((out / path).is_file() for row in train for path in row["images"] + row["videos"] + row["audios"])


def test_dataset_from_save_to_disk_becomes_parquet_shards(tmp_path):
    from datasets import Dataset, DatasetDict, load_dataset

    rows = {"messages": [[{"role": "user", "content": "hi"}]] * 3, "images": [[]] * 3}
    DatasetDict({"train": Dataset.from_dict(rows), "test": Dataset.from_dict(rows)}).save_to_disk(tmp_path / "built")
    out = tmp_path / "out"
    result = publish_dataset(tmp_path / "built", "org/rows", dry_run=out)
    shards = {"data/train-00000-of-00001.parquet", "data/test-00000-of-00001.parquet"}
    assert set(result["files"]) == shards | {"README.md"}
    assert load_dataset(str(out), split="test").num_rows == 3


def test_every_public_benchmark_of_the_harness_has_its_hub_task_type_and_name():
    """A card's model-index names each benchmark the harness runs; only the miniature world is ours alone."""
    from transformers_chatbridge.evaluation.registry import TASKS
    from transformers_chatbridge.hub.publish import KNOWN_TASKS

    public = {name for name in TASKS if not name.startswith("miniature")}
    assert public and public == set(KNOWN_TASKS)
