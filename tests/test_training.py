"""Training through TRL, run for real (`training/sft_chatbridge.py` and `chatbridge train`, both the library's
`transformers_chatbridge.training`): stage 1 from components, stage 2 from its output, resume, LoRA."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from datasets import Dataset, DatasetDict
from PIL import Image
from safetensors.torch import load_file

from transformers_chatbridge.data import CHAT_ROW_FEATURES, make_row
from transformers_chatbridge.testing import causal_lm_of, tiny_chatbridge
from transformers_chatbridge.training import data as training_data
from transformers_chatbridge.training import sft

from sample_media import write_mp4, write_tone
from training_config import base_config

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "training" / "sft_chatbridge.py"
BRIDGE = ("qformer", "image_query_tokens", "audio_query_tokens", "audio_projection", "language_projection")

# The tiny model's Q-Former and query counts, for a model built from components.
TINY_BRIDGE_CONFIG = {
    "qformer_config": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "cross_attention_frequency": 2,
        "use_qformer_text_input": False,
    },
    "num_image_query_tokens": 4,
    "num_audio_query_tokens": 4,
}


# --- fixtures: tiny components and tiny real media rows --------------------------------------------------------------


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    """The tiny model's vision tower, audio tower and LLM (with its tokenizer), each in its own folder."""
    folder = tmp_path_factory.mktemp("components")
    model, processor = tiny_chatbridge()
    # A random LLM at init scale gives near-uniform logits whatever its input, so no bridge could lower its loss:
    # a larger output head makes the frozen LLM's answers depend on the media embeddings the bridge writes.
    with torch.no_grad():
        model.lm_head.weight.mul_(25.0)
    paths = {name: folder / name for name in ("vision", "audio", "llm")}
    model.model.vision_tower.save_pretrained(paths["vision"])
    model.model.audio_tower.save_pretrained(paths["audio"])
    causal_lm_of(model).save_pretrained(paths["llm"])
    processor.tokenizer.save_pretrained(paths["llm"])
    return paths


def write_media(folder: Path) -> dict[str, list[str]]:
    """Two images, two 1 s mp4 clips and two 1 s wav tones that differ from each other."""
    folder.mkdir(parents=True, exist_ok=True)
    media = {"image": [], "video": [], "audio": []}
    for index, colour in enumerate(((220, 30, 30), (30, 30, 220))):
        path = folder / f"image{index}.png"
        Image.new("RGB", (40, 30), colour).save(path)
        media["image"].append(str(path))
        frames = [np.zeros((32, 32, 3), dtype=np.uint8) for _ in range(10)]
        for frame_index, frame in enumerate(frames):
            frame[..., index * 2] = 40 + frame_index * 20
        path = write_mp4(folder / f"clip{index}.mp4", frames)
        media["video"].append(str(path))
        media["audio"].append(str(write_tone(folder / f"tone{index}.wav", frequency=300 + 500 * index)))
    return media


def turn(media_types, question, answer):
    content = [*({"type": kind} for kind in media_types), {"type": "text", "text": question}]
    return [{"role": "user", "content": content}, {"role": "assistant", "content": [{"type": "text", "text": answer}]}]


def chat_rows(media: dict[str, list[str]]) -> list[dict]:
    """Rows of every modality whose answer depends on the media item (so the bridge has something to learn)."""
    colours = ("red", "blue")
    rows = []
    for index, colour in enumerate(colours):
        rows.append(make_row(turn(["image"], "What colour is it?", f"A {colour} square."),
                             images=[media["image"][index]]))
        rows.append(make_row(turn(["video"], "What is it?", f"A {colour} light."), videos=[media["video"][index]]))
        rows.append(make_row(turn(["audio"], "What sound is it?", f"A {'low' if index == 0 else 'high'} tone."),
                             audios=[media["audio"][index]]))
        rows.append(make_row(turn(["video", "audio"], "Describe it.", f"A {colour} light and a tone."),
                             videos=[media["video"][index]], audios=[media["audio"][index]]))
    return rows


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A DatasetDict saved with save_to_disk (train / validation), the layout the miniature world writes."""
    folder = tmp_path_factory.mktemp("data")
    media = write_media(folder / "media")
    rows = chat_rows(media)
    # Stage 2 data answer differently from stage 1's, so its loss starts high again and has room to fall.
    instruction_rows = [
        make_row(turn(["image"], "Name the colour in one word.", colour), images=[media["image"][index]])
        for index, colour in enumerate(("red", "blue"))
    ] + [
        make_row(turn(["video", "audio"], "Tell me what you see and hear.", f"I see a {colour} light, I hear a tone."),
                 videos=[media["video"][index]], audios=[media["audio"][index]])
        for index, colour in enumerate(("red", "blue"))
    ]
    DatasetDict(
        {
            "train": Dataset.from_list(rows * 2, features=CHAT_ROW_FEATURES),
            "instruction": Dataset.from_list(instruction_rows * 4, features=CHAT_ROW_FEATURES),
            "validation": Dataset.from_list(rows[:4], features=CHAT_ROW_FEATURES),
        }
    ).save_to_disk(folder / "rows")
    return folder / "rows"


def run_script(config: dict, tmp_path: Path, *extra: str, name: str = "config", timeout: int = 300):
    """`chatbridge train --config` on `config` (the resume test runs `training/sft_chatbridge.py`, the same main)."""
    config_path = tmp_path / f"{name}.yaml"
    config_path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "transformers_chatbridge.cli", "train", "--config", str(config_path), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, env=_env(),
    )
    assert result.returncode == 0, result.stderr[-6000:]
    return result


def _env():
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "2", "TOKENIZERS_PARALLELISM": "false"}


def losses(output_dir: Path) -> list[float]:
    state = json.loads((output_dir / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def assert_loss_falls(history: list[float]):
    # Batches differ in modality mix, so compare the means of the first and the last five steps. Only the bridge
    # trains and the random LLM stays frozen, so the fall is small (about 2-7% in 20 steps) but deterministic.
    assert len(history) >= 10 and all(np.isfinite(history))
    first, last = np.mean(history[:5]), np.mean(history[-5:])
    assert last < 0.99 * first, history


def state_dict_of(folder: Path) -> dict[str, torch.Tensor]:
    tensors = {}
    for file in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(file))
    return tensors


# --- stage 1 -> stage 2 ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stage1(components, data_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("stage1")
    config = base_config(
        folder / "out",
        data_dir,
        training_stage="alignment",
        vision_model=str(components["vision"]),
        audio_model=str(components["audio"]),
        language_model=str(components["llm"]),
        chatbridge_config=TINY_BRIDGE_CONFIG,
        max_steps=20,
    )
    result = run_script(config, folder)
    return folder / "out", result


@pytest.fixture(scope="module")
def stage2(stage1, data_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("stage2")
    config = base_config(
        folder / "out",
        data_dir,
        training_stage="instruction",
        model_name_or_path=str(stage1[0]),
        dataset_paths=[f"{data_dir}:instruction"],
        max_length=96,
        max_steps=20,
        # The loss on the same rows before and after training (eval mode, no dropout), not the noisy batch losses.
        eval_strategy="steps",
        eval_steps=20,
        eval_on_start=True,
        eval_dataset_paths=[f"{data_dir}:instruction"],
    )
    started = time.perf_counter()
    result = run_script(config, folder)
    return folder / "out", result, time.perf_counter() - started


def test_stage1_from_components_trains_the_bridge(stage1):
    output, _ = stage1
    assert_loss_falls(losses(output))


def test_cached_tower_outputs_train_as_the_towers_do(stage1, components, data_dir, tmp_path):
    """`tower_output_cache_gib`: the same losses step by step, with the towers run once per media item. Equal losses
    also need the run seeded before the bridge is built from components (its weights start random)."""
    config = base_config(
        tmp_path / "out", data_dir, training_stage="alignment", vision_model=str(components["vision"]),
        audio_model=str(components["audio"]), language_model=str(components["llm"]),
        chatbridge_config=TINY_BRIDGE_CONFIG, max_steps=20, tower_output_cache_gib=0.1,
    )  # fmt: skip
    result = run_script(config, tmp_path)
    np.testing.assert_allclose(losses(tmp_path / "out"), losses(stage1[0]), rtol=1e-5)
    # The rows hold 2 distinct images, 2 videos of 4 frames and 2 tones of one segment, read over 10 epochs
    logged = re.search(r"Tower output cache: (\d+) items computed, (\d+) reused", result.stderr)
    computed, reused = map(int, logged.groups())
    assert computed == 2 + 2 * 4 + 2 * 1 and reused > 5 * computed


def test_group_by_length_batches_chat_rows(stage1, data_dir, tmp_path):
    """The Trainer's `train_sampling_strategy: group_by_length` measures `input_ids`, which chat rows lack: the
    script hands it the lengths it checked."""
    config = base_config(
        tmp_path / "out", data_dir, training_stage="instruction", model_name_or_path=str(stage1[0]),
        dataset_paths=[f"{data_dir}:instruction"], max_length=96, max_steps=6,
        train_sampling_strategy="group_by_length",
    )  # fmt: skip
    run_script(config, tmp_path)
    assert len(losses(tmp_path / "out")) == 6 and all(np.isfinite(losses(tmp_path / "out")))


def test_stage2_from_the_stage1_checkpoint_trains(stage2):
    output, _, _ = stage2
    state = json.loads((output / "trainer_state.json").read_text())
    before, after = [entry["eval_loss"] for entry in state["log_history"] if "eval_loss" in entry]
    assert after < 0.995 * before, (before, after)
    state = json.loads((output / "trainer_state.json").read_text())
    print(f"tiny stage 2: {state['log_history'][-1]['train_samples_per_second']:.1f} samples/s")


def parameters_of(folder: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's parameters as the loaded model names them (the file's key names may differ)."""
    from transformers import AutoModelForMultimodalLM

    import transformers_chatbridge  # noqa: F401

    model = AutoModelForMultimodalLM.from_pretrained(folder)
    return {name: parameter.detach() for name, parameter in model.named_parameters()}


def test_stage1_leaves_towers_and_llm_bitwise_unchanged(stage1, components):
    output, _ = stage1
    saved = parameters_of(output)
    # The causal LM's decoder is ChatBridge's `model.language_model`, its head ChatBridge's `lm_head`.
    component = {
        **{f"model.vision_tower.{name}": tensor for name, tensor in state_dict_of(components["vision"]).items()},
        **{f"model.audio_tower.{name}": tensor for name, tensor in state_dict_of(components["audio"]).items()},
        **{
            name if name == "lm_head.weight" else f"model.language_model.{name.removeprefix('model.')}": tensor
            for name, tensor in state_dict_of(components["llm"]).items()
        },
    }
    compared = [name for name in saved if name in component]
    assert "lm_head.weight" in compared and "model.language_model.embed_tokens.weight" in compared
    for name in compared:
        assert torch.equal(saved[name], component[name]), name
    # Beyond the components the checkpoint holds the bridge, plus `ln_audio`, which stays the identity (frozen).
    new = {name.split(".")[1] for name in saved if name not in component}
    assert new == set(BRIDGE) | {"audio_layernorm"}, new
    assert torch.equal(saved["model.audio_layernorm.weight"], torch.ones_like(saved["model.audio_layernorm.weight"]))
    assert not saved["model.audio_layernorm.bias"].any()


def test_stage2_changes_exactly_the_paper_trainable_set(stage1, stage2):
    from transformers import AutoModelForMultimodalLM

    before, after = parameters_of(stage1[0]), parameters_of(stage2[0])
    assert before.keys() == after.keys()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    trainable = set(AutoModelForMultimodalLM.from_pretrained(stage2[0]).set_training_stage("instruction"))
    assert {name.split(".")[1] for name in trainable} == set(BRIDGE)
    assert changed == trainable
    # The script logs the same set.
    assert f"Stage 'instruction' trains {len(trainable)} tensors" in stage2[1].stderr


def test_stage2_checkpoint_loads_and_answers_through_the_pipeline(stage2, data_dir):
    from transformers import AutoModelForMultimodalLM, GenerationConfig, pipeline

    import transformers_chatbridge  # noqa: F401

    output = stage2[0]
    model = AutoModelForMultimodalLM.from_pretrained(output)
    assert type(model).__name__ == "ChatBridgeForConditionalGeneration"
    generation = GenerationConfig.from_pretrained(output)
    separator = model.config.text_config.eos_token_id
    assert separator in generation.eos_token_id and len(generation.eos_token_id) == 2
    image = str(data_dir.parent / "media" / "image0.png")
    pipe = pipeline("chatbridge", model=str(output))
    answer = pipe(text="What colour is it?", images=image, max_new_tokens=8)
    assert isinstance(answer[0]["generated_text"], str)


# --- LoRA --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lora_run(stage1, data_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lora")
    config = base_config(
        folder / "out", data_dir, training_stage="instruction", model_name_or_path=str(stage1[0]),
        dataset_paths=[f"{data_dir}:instruction"], max_length=96, max_steps=10, save_strategy="steps", save_steps=5,
        use_peft=True, lora_r=4, lora_alpha=8, lora_target_modules=["q_proj", "v_proj"], merge_lora=True,
    )
    run_script(config, folder)
    return folder / "out"


@pytest.fixture(scope="module")
def lora_batch(lora_run, tmp_path_factory):
    from transformers import AutoProcessor

    from transformers_chatbridge.data import ChatBridgeDataCollator

    batch = ChatBridgeDataCollator(AutoProcessor.from_pretrained(lora_run))(
        chat_rows(write_media(tmp_path_factory.mktemp("lora-media")))[:4]
    )
    batch.pop("labels")
    return batch


def logits_of(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(**batch).logits


def test_lora_folder_holds_the_adapter_beside_the_model_it_applies_to(lora_run, stage1):
    assert (lora_run / "adapter_config.json").is_file() and (lora_run / "config.json").is_file()
    adapter = load_file(lora_run / "adapter_model.safetensors")
    # LoRA sits in the LLM only, not in BEATs' q_proj/v_proj.
    assert adapter and all(".language_model." in name and "lora_" in name for name in adapter)
    base = load_file(lora_run / "model.safetensors")
    assert not any("lora_" in name or "base_layer" in name for name in base)
    start = parameters_of(stage1[0])
    assert base.keys() >= start.keys()
    # The base beside the adapter carries the bridge trained with it; towers and LLM are the stage 1 ones.
    changed = {name.split(".")[1] for name in start if not torch.equal(base[name], start[name])}
    assert changed and changed <= set(BRIDGE), changed
    settings = json.loads((lora_run / "adapter_config.json").read_text())
    assert Path(settings["base_model_name_or_path"]) == lora_run


def test_lora_folder_loads_as_the_trained_model_everywhere(lora_run, stage1, lora_batch):
    from transformers import AutoModelForMultimodalLM, pipeline

    from transformers_chatbridge.inference.session import load_model

    merged = AutoModelForMultimodalLM.from_pretrained(lora_run / "merged")
    assert not any("lora" in name for name, _ in merged.named_parameters())
    expected = logits_of(merged, lora_batch)
    loaded = AutoModelForMultimodalLM.from_pretrained(lora_run)
    assert any("lora_" in name for name, _ in loaded.named_parameters())
    torch.testing.assert_close(logits_of(loaded, lora_batch), expected, atol=1e-4, rtol=1e-4)
    pipe = pipeline("chatbridge", model=str(lora_run))
    torch.testing.assert_close(logits_of(pipe.model, lora_batch), expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits_of(load_model(str(lora_run))[0], lora_batch), expected, atol=1e-4, rtol=1e-4)
    # The adapter and the bridge changed something: the trained model is not the stage 1 model.
    start = AutoModelForMultimodalLM.from_pretrained(stage1[0])
    assert not torch.allclose(logits_of(start, lora_batch), expected, atol=1e-3)


def test_published_lora_folder_names_its_repo_as_the_adapter_base(lora_run, lora_batch, tmp_path):
    from transformers import AutoModelForMultimodalLM

    from transformers_chatbridge.hub.publish import publish

    staged = tmp_path / "staged"
    publish(lora_run, "someone/chatbridge-lora", dry_run=staged)
    assert json.loads((staged / "adapter_config.json").read_text())["base_model_name_or_path"] == "someone/chatbridge-lora"
    assert (staged / "model.safetensors").is_file() and (staged / "adapter_model.safetensors").is_file()
    # The source folder keeps naming itself.
    assert Path(json.loads((lora_run / "adapter_config.json").read_text())["base_model_name_or_path"]) == lora_run
    torch.testing.assert_close(
        logits_of(AutoModelForMultimodalLM.from_pretrained(staged), lora_batch),
        logits_of(AutoModelForMultimodalLM.from_pretrained(lora_run / "merged"), lora_batch),
        atol=1e-4, rtol=1e-4,
    )


def test_resumed_lora_run_restores_the_bridge_and_ends_where_the_whole_run_did(lora_run, stage1, data_dir, tmp_path):
    config = base_config(
        tmp_path / "out", data_dir, training_stage="instruction", model_name_or_path=str(stage1[0]),
        dataset_paths=[f"{data_dir}:instruction"], max_length=96, max_steps=10, save_strategy="no",
        use_peft=True, lora_r=4, lora_alpha=8, lora_target_modules=["q_proj", "v_proj"],
        resume_from_checkpoint=str(lora_run / "checkpoint-5"),
    )
    run_script(config, tmp_path)
    whole, resumed = load_file(lora_run / "model.safetensors"), load_file(tmp_path / "out" / "model.safetensors")
    for name in whole:
        torch.testing.assert_close(resumed[name], whole[name], atol=1e-6, rtol=1e-5, msg=name)
    torch.testing.assert_close(
        load_file(tmp_path / "out" / "adapter_model.safetensors"), load_file(lora_run / "adapter_model.safetensors"),
        atol=1e-6, rtol=1e-5,
    )


@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_stage_folders_load_the_same_weights_through_every_entry_point(stage, request, lora_batch):
    from transformers import AutoModel, AutoModelForMultimodalLM, pipeline

    folder = request.getfixturevalue(stage)[0]
    full = AutoModelForMultimodalLM.from_pretrained(folder)
    expected = logits_of(full, lora_batch)
    base, loading = AutoModel.from_pretrained(folder, output_loading_info=True)
    assert type(base).__name__ == "ChatBridgeModel"
    assert not loading["missing_keys"] and set(loading["unexpected_keys"]) <= {"lm_head.weight"}
    with torch.no_grad():
        hidden = base.eval()(**lora_batch).last_hidden_state
    torch.testing.assert_close(full.lm_head(hidden), expected)
    torch.testing.assert_close(logits_of(pipeline("chatbridge", model=str(folder)).model, lora_batch), expected)


def test_lora_checkpoints_load_as_the_model_at_their_step(lora_run, stage1):
    from transformers import AutoModelForMultimodalLM

    checkpoint = lora_run / "checkpoint-5"
    at_step = AutoModelForMultimodalLM.from_pretrained(checkpoint)
    bridge = "model.language_projection.weight"
    values = {
        "checkpoint": dict(at_step.named_parameters())[bridge],
        "start": parameters_of(stage1[0])[bridge],
        "end": parameters_of(lora_run)[bridge],
    }
    assert not torch.equal(values["checkpoint"], values["start"])
    assert not torch.equal(values["checkpoint"], values["end"])
    assert any("lora_" in name for name, _ in at_step.named_parameters())


# --- QLoRA ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def qlora_start(tmp_path_factory):
    """A ChatBridge checkpoint whose LLM is 64 wide: bitsandbytes' 4-bit CPU kernel packs blocks of 64 features."""
    folder = tmp_path_factory.mktemp("qlora-start")
    model, processor = tiny_chatbridge(text_hidden_size=64)
    with torch.no_grad():
        model.lm_head.weight.mul_(25.0)  # as in `components`: answers that depend on the bridge's embeddings
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def qlora_run(qlora_start, data_dir, tmp_path_factory):
    pytest.importorskip("bitsandbytes")
    folder = tmp_path_factory.mktemp("qlora")
    config = base_config(
        folder / "out", data_dir, training_stage="instruction", model_name_or_path=str(qlora_start),
        dataset_paths=[f"{data_dir}:instruction"], max_length=96, max_steps=20,
        load_in_4bit=True, bnb_4bit_quant_type="nf4", use_bnb_nested_quant=True,
        use_peft=True, lora_r=4, lora_alpha=8, lora_target_modules=["q_proj", "v_proj"], merge_lora=True,
        eval_strategy="steps", eval_steps=20, eval_on_start=True, eval_dataset_paths=[f"{data_dir}:instruction"],
        per_device_eval_batch_size=8,
    )  # fmt: skip
    run_script(config, folder)
    return folder / "out"


def eval_losses(output: Path) -> list[float]:
    state = json.loads((output / "trainer_state.json").read_text())
    return [entry["eval_loss"] for entry in state["log_history"] if "eval_loss" in entry]


def test_qlora_trains_a_4bit_llm_with_the_bridge_in_full_precision(qlora_run, qlora_start):
    before, after = eval_losses(qlora_run)
    assert after < 0.99 * before, (before, after)
    settings = json.loads((qlora_run / "config.json").read_text())["quantization_config"]
    assert settings["load_in_4bit"] and settings["bnb_4bit_quant_type"] == "nf4"
    adapter = load_file(qlora_run / "adapter_model.safetensors")
    assert adapter and all(".language_model." in name and "lora_" in name for name in adapter)
    trained, start = parameters_of(qlora_run), parameters_of(qlora_start)
    for name, value in trained.items():
        if name.startswith(("model.vision_tower.", "model.audio_tower.")):
            assert torch.equal(value, start[name]), name
    changed = {name.split(".")[1] for name in start if name in trained and not torch.equal(trained[name], start[name])}
    assert {"qformer", "language_projection", "image_query_tokens"} <= changed, changed
    assert all(trained[name].dtype == torch.float32 for name in trained if name.split(".")[1] in BRIDGE)


def test_qlora_folder_loads_as_the_trained_model(qlora_run, data_dir):
    """The folder reproduces the run's last evaluation loss: 4-bit LLM, adapter and trained bridge all loaded."""
    from datasets import load_from_disk
    from transformers import AutoModelForMultimodalLM, AutoProcessor, pipeline

    from transformers_chatbridge.data import ChatBridgeDataCollator
    from transformers_chatbridge.inference.session import load_model

    model = AutoModelForMultimodalLM.from_pretrained(qlora_run).eval()
    assert type(model.model.language_model.layers[0].self_attn.q_proj.base_layer).__name__ == "Linear4bit"
    assert type(model.model.qformer.encoder.layer[0].attention.attention.query).__name__ == "Linear"
    rows = load_from_disk(data_dir)["instruction"]
    collator = ChatBridgeDataCollator(AutoProcessor.from_pretrained(qlora_run), max_length=96)
    with torch.no_grad():
        batch_losses = [model(**collator([rows[i] for i in range(start, start + 8)])).loss for start in (0, 8)]
    assert torch.stack(batch_losses).mean().item() == pytest.approx(eval_losses(qlora_run)[-1], rel=1e-3)
    # The pipeline (generate, eval) and the chat loader (chat, serve) load the same model.
    batch = collator([rows[i] for i in range(4)])
    batch.pop("labels")
    expected = logits_of(model, batch)
    for loaded in (pipeline("chatbridge", model=str(qlora_run)).model, load_model(str(qlora_run))[0]):
        assert any("lora_" in name for name, _ in loaded.named_parameters())
        torch.testing.assert_close(logits_of(loaded, batch), expected)


def test_qlora_merges_into_the_full_precision_llm_it_started_from(qlora_run, qlora_start):
    from transformers import AutoModelForMultimodalLM

    merged = AutoModelForMultimodalLM.from_pretrained(qlora_run / "merged")
    assert type(merged.model.language_model.layers[0].self_attn.q_proj).__name__ == "Linear"
    assert "quantization_config" not in json.loads((qlora_run / "merged" / "config.json").read_text())
    merged, start, trained = (
        dict(model.named_parameters()) for model in (merged, AutoModelForMultimodalLM.from_pretrained(qlora_start),
                                                     AutoModelForMultimodalLM.from_pretrained(qlora_run))
    )  # fmt: skip
    assert merged.keys() == start.keys()
    for name, value in merged.items():
        part = name.split(".")[1]
        if part in BRIDGE:  # the trained bridge
            assert torch.equal(value, trained[name]), name
        elif part == "language_model" and name.endswith(("q_proj.weight", "v_proj.weight")):  # the adapter merged in
            assert value.dtype == start[name].dtype and not torch.equal(value, start[name]), name
        else:  # towers and the rest of the LLM: the full-precision start, not 4-bit weights
            assert torch.equal(value, start[name]), name


# --- resume ------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_resume_after_sigkill_ends_with_the_same_loss(stage1, data_dir, tmp_path):
    common = dict(
        training_stage="instruction", model_name_or_path=str(stage1[0]), dataset_paths=[f"{data_dir}:train"],
        # Enough steps after the first checkpoint that the kill lands mid-run even on an idle machine.
        max_length=96, max_steps=40, per_device_train_batch_size=2, save_strategy="steps", save_steps=3,
    )
    reference = tmp_path / "reference"
    run_script(base_config(reference, data_dir, **common), tmp_path, name="reference")

    output = tmp_path / "interrupted"
    config_path = tmp_path / "interrupted.yaml"
    config_path.write_text(yaml.safe_dump(base_config(output, data_dir, **common)))
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--config", str(config_path)], cwd=REPO, env=_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while not (output / "checkpoint-3" / "trainer_state.json").is_file():
            assert process.poll() is None, "the run ended before its first checkpoint was written"
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(0.5)  # let the checkpoint's last files land, then kill the run mid-training
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert not (output / "trainer_state.json").exists()
    # A kill can also land while a checkpoint is being written: such a folder has no trainer_state.json (the last file
    # a checkpoint gets). Resuming must skip it, whichever way this run's kill landed.
    partial = output / "checkpoint-39"
    partial.mkdir()
    shutil.copy(output / "checkpoint-3" / "config.json", partial / "config.json")
    resumed_run = run_script(base_config(output, data_dir, **common), tmp_path, "--resume_from_checkpoint", "true",
                             name="resume")  # fmt: skip
    assert f"Skipping {partial}" in resumed_run.stderr

    expected, resumed = losses(reference), losses(output)
    assert len(expected) == 40
    np.testing.assert_allclose(resumed[-3:], expected[-3:], atol=1e-5, rtol=0)


@pytest.mark.parametrize("flag", [True, "true"])
def test_resume_true_takes_the_newest_complete_checkpoint(tmp_path, flag):
    for step, complete in ((3, True), (6, True), (9, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (tmp_path / "checkpoint-6" / "trainer_state.json").write_text('{"global_step": ')  # cut off mid-write
    assert sft._as_resume_argument(flag, str(tmp_path)) == str(tmp_path / "checkpoint-3")
    assert sft._as_resume_argument("false", str(tmp_path)) is None
    assert sft._as_resume_argument(str(tmp_path / "checkpoint-6"), str(tmp_path)) == str(tmp_path / "checkpoint-6")


# --- recipes -----------------------------------------------------------------------------------------------------------

PAPER = {  # recipe -> (lr, min lr, warmup, steps, max_length)
    "stage1_alignment.yaml": (1e-4, 1e-5, 5000, 150000, 96),
    "stage2_multis.yaml": (1e-5, 8e-7, 500, 10000, 284),
    "stage2_multis_lora.yaml": (1e-5, 8e-7, 500, 10000, 284),
    "stage2_multis_qlora.yaml": (1e-5, 8e-7, 500, 10000, 284),
}


RECIPES = sorted([*(REPO / "training" / "recipes").glob("*.yaml"), *sft.RECIPES.glob("*.yaml")])


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda path: path.name)
def test_recipes_parse_with_the_script_parser(recipe):
    # bf16 needs an accelerator to validate; everything else is parsed as written.
    _, args, model_args, chatbridge_args, _ = sft.make_parser().parse_args_and_config(
        args=["--config", str(recipe), "--bf16", "false"]
    )
    assert chatbridge_args.dataset_paths and args.weight_decay == 0.05
    assert args.lr_scheduler_type == "cosine_with_min_lr"
    if recipe.name in PAPER:
        lr, min_lr, warmup, steps, max_length = PAPER[recipe.name]
        assert (args.learning_rate, args.lr_scheduler_kwargs["min_lr"], args.warmup_steps) == (lr, min_lr, warmup)
        assert (args.max_steps, args.max_length) == (steps, max_length)
        gpus = 1 if model_args.load_in_4bit else 8  # QLoRA: one GPU
        assert args.per_device_train_batch_size * args.gradient_accumulation_steps * gpus == 256
        assert model_args.use_peft == recipe.name.endswith(("_lora.yaml", "_qlora.yaml"))
        assert model_args.load_in_4bit == recipe.name.endswith("_qlora.yaml")
    else:
        assert args.use_cpu and args.learning_rate == 1e-3 and args.max_steps <= 1000


def test_hub_style_dataset_folder_resolves_media_paths_and_splits_the_stages(tmp_path):
    """A folder with Parquet under data/ (such as the miniature world) loads by split, media paths made absolute;
    each training stage gets its own rows of the `stage` column."""
    from transformers_chatbridge.data.miniature import build_miniature, load_miniature

    build_miniature(tmp_path / "world", size=8, seed=0, progress=False)
    rows = training_data.load_rows(f"{tmp_path / 'world'}:validation")
    paths = [path for row in rows for column in ("images", "videos", "audios") for path in row[column]]
    assert paths and all(Path(path).is_absolute() and Path(path).is_file() for path in paths)

    stages = load_miniature(tmp_path / "world")["validation"]["stage"]
    for stage in (1, 2):
        staged = training_data.load_rows(f"{tmp_path / 'world'}:validation", stage=stage)
        assert len(staged) == stages.count(stage) > 0
    assert len(rows) == len(stages)


def test_two_dataset_folders_of_one_name_each_give_their_own_rows(tmp_path):
    """Two runs' worlds are both called `miniature/`: each must train on its own rows, and a world rebuilt in place
    on its new ones (`load_dataset(DIR)` alone would hand every later folder the first one's cached rows)."""
    from transformers_chatbridge.data.miniature import build_miniature, load_miniature

    small, large = tmp_path / "a" / "miniature", tmp_path / "b" / "miniature"
    build_miniature(small, size=4, seed=0, progress=False)
    build_miniature(large, size=8, seed=1, progress=False)
    for world in (small, large):
        rows = training_data.load_rows(f"{world}:train")
        assert sorted(rows["id"]) == sorted(load_miniature(world)["train"]["id"])
        assert all(path.startswith(str(world.resolve())) for row in rows for path in row["images"])

    build_miniature(small, size=6, seed=0, overwrite=True, progress=False)
    streamed = training_data.load_rows(f"{small}:train", streaming=True)
    assert len(list(streamed)) == len(load_miniature(small)["train"]) > 0
