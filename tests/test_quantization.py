"""4-bit and 8-bit loading (bitsandbytes' CPU backend, torchao) of a tiny model: the LLM alone is quantized, answers
stay close to the full-precision model's, and every command's `--load-in-4bit` / `--load-in-8bit` reaches the model."""

import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn
from transformers import AutoModel, AutoModelForMultimodalLM, BitsAndBytesConfig, TorchAoConfig, pipeline

from transformers_chatbridge.inference.quantization import quantization_config
from transformers_chatbridge.inference.session import load_model
from transformers_chatbridge.testing import tiny_chatbridge

from sample_media import write_sample_media

pytest.importorskip("bitsandbytes")
torchao_quantization = pytest.importorskip("torchao.quantization")

# bitsandbytes' 4-bit CPU kernel packs weights in blocks of 64 input features: the LLM here is 64 wide.
TEXT_HIDDEN_SIZE = 64
KEPT = ("model.vision_tower", "model.audio_tower", "model.audio_projection", "model.qformer", "model.language_projection",
        "lm_head")  # fmt: skip
QUANTIZED_LINEAR = {"Linear4bit", "Linear8bitLt"}

CONFIGS = {
    "bnb-4bit": lambda: quantization_config("4bit"),
    "bnb-8bit": lambda: quantization_config("8bit"),
    "torchao-int8": lambda: TorchAoConfig(torchao_quantization.Int8WeightOnlyConfig()),
}
# Teacher-forced top-1 agreement with the full-precision model (each position scored on the same prefix) and the
# lowest cosine similarity of a position's logits, per media kind (about 50 positions each). Random weights give
# near-uniform logits, so rounding flips close calls; measured (lowest kind): 0.84 / 0.989 (4-bit NF4), 0.94 / 0.9999
# (LLM.int8), 0.98 / 1.0 (torchao int8).
BOUNDS = {"bnb-4bit": (0.8, 0.98), "bnb-8bit": (0.9, 0.999), "torchao-int8": (0.95, 0.999)}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quantization")
    tiny_chatbridge(folder / "model", text_hidden_size=TEXT_HIDDEN_SIZE)
    write_sample_media(folder)
    return folder


@pytest.fixture(scope="module")
def full(folder):
    return AutoModelForMultimodalLM.from_pretrained(folder / "model").eval()


@pytest.fixture(scope="module")
def batches(folder, full):
    """One batch per media kind (image, video, audio, video with its audio), each with two questions."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(folder / "model")
    questions = ["###Human: What is it?###Assistant: It is", "###Human: Describe it in detail.###Assistant: I see"]
    media = {
        "image": {"images": [str(folder / "red.png")] * 2},
        "video": {"videos": [str(folder / "clip.mp4")] * 2},
        "audio": {"audio": [str(folder / "tone.wav")] * 2},
        "video+audio": {"videos": [str(folder / "clip.mp4")] * 2, "audio": [str(folder / "tone.wav")] * 2},
    }
    placeholders = {"image": "<image>", "video": "<video>", "audio": "<audio>", "video+audio": "<video><audio>"}
    return {
        kind: processor(
            text=[placeholders[kind] + question for question in questions], padding=True, return_tensors="pt",
            **inputs,
        )  # fmt: skip
        for kind, inputs in media.items()
    }


def logits_of(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits.float()


def quantized_layers(model) -> dict[str, str]:
    return {name: type(module).__name__ for name, module in model.named_modules() if isinstance(module, nn.Linear)}


def is_quantized(module: nn.Linear) -> bool:
    return type(module).__name__ in QUANTIZED_LINEAR or type(module.weight).__name__ != "Parameter"


@pytest.mark.parametrize("name", CONFIGS)
def test_the_llm_alone_is_quantized_and_the_rest_is_the_saved_weights(name, folder, full):
    model = AutoModelForMultimodalLM.from_pretrained(folder / "model", quantization_config=CONFIGS[name]())
    linear = {name: module for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    llm = [module for key, module in linear.items() if key.startswith("model.language_model.")]
    assert llm and all(is_quantized(module) for module in llm)
    kept = {key: module for key, module in linear.items() if key.startswith(KEPT)}
    assert {key.split(".")[1] if key.startswith("model.") else key for key in kept} == {
        "vision_tower", "audio_tower", "audio_projection", "qformer", "language_projection", "lm_head"
    }  # fmt: skip
    assert not any(is_quantized(module) for module in kept.values())
    reference = dict(full.named_parameters())
    for key, parameter in model.named_parameters():
        if key.startswith(KEPT) or "query_tokens" in key or "frame_embedding" in key:
            assert parameter.dtype == reference[key].dtype and torch.equal(parameter, reference[key]), key


@pytest.mark.parametrize("name", CONFIGS)
def test_quantized_logits_stay_close_for_every_media_kind(name, full, folder, batches):
    model = AutoModelForMultimodalLM.from_pretrained(folder / "model", quantization_config=CONFIGS[name]())
    agreement_bound, cosine_bound = BOUNDS[name]
    for kind, batch in batches.items():
        expected, got = logits_of(full, batch), logits_of(model, batch)
        mask = batch["attention_mask"].bool()
        agreement = (got.argmax(-1) == expected.argmax(-1))[mask].float().mean().item()
        cosine = nn.functional.cosine_similarity(got[mask], expected[mask], dim=-1).min().item()
        assert agreement >= agreement_bound and cosine >= cosine_bound, (kind, agreement, cosine)


def test_a_skip_list_of_the_user_replaces_the_default(folder):
    config = BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=["lm_head"])
    model = AutoModelForMultimodalLM.from_pretrained(folder / "model", quantization_config=config)
    assert type(model.model.qformer.encoder.layer[0].attention.attention.query).__name__ == "Linear8bitLt"
    assert type(model.lm_head).__name__ == "Linear"


def test_the_base_model_through_automodel_keeps_its_towers_and_bridge(folder):
    model = AutoModel.from_pretrained(folder / "model", quantization_config=quantization_config("4bit"))
    layers = quantized_layers(model)
    assert {kind for key, kind in layers.items() if key.startswith("language_model.")} == {"Linear4bit"}
    assert {kind for key, kind in layers.items() if not key.startswith("language_model.")} == {"Linear"}


@pytest.mark.parametrize("bits", ["4bit", "8bit"])
def test_a_saved_quantized_model_reloads_as_itself(bits, folder, batches, tmp_path):
    model = AutoModelForMultimodalLM.from_pretrained(folder / "model", quantization_config=quantization_config(bits))
    # Saved before its first forward: bitsandbytes' CPU backend repacks 4-bit weights for its kernel then (block
    # scales rounded to bf16) and unpacks them to save, so a model saved after a forward computes with those scales.
    model.save_pretrained(tmp_path)
    expected = logits_of(model, batches["video+audio"])
    settings = json.loads((tmp_path / "config.json").read_text())["quantization_config"]
    assert settings["llm_int8_skip_modules"] == list(KEPT)
    reloaded = AutoModelForMultimodalLM.from_pretrained(tmp_path)
    assert quantized_layers(reloaded) == quantized_layers(model)
    torch.testing.assert_close(logits_of(reloaded, batches["video+audio"]), expected)


def test_pipeline_and_chat_loader_take_the_quantization(folder, batches):
    pipe = pipeline("chatbridge", model=str(folder / "model"), model_kwargs={"quantization_config": quantization_config("4bit")})
    chat_model, _ = load_model(str(folder / "model"), quantization="4bit")
    for model in (pipe.model, chat_model):
        assert type(model.model.language_model.layers[0].mlp.up_proj).__name__ == "Linear4bit"
        assert type(model.model.qformer.encoder.layer[0].attention.attention.query).__name__ == "Linear"
    torch.testing.assert_close(logits_of(pipe.model, batches["image"]), logits_of(chat_model, batches["image"]))
    answer = pipe(text="What is it?", images=str(folder / "red.png"), max_new_tokens=4, return_full_text=False)
    assert isinstance(answer[0]["generated_text"], str)


def generate(folder, *extra) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "transformers_chatbridge.cli", "generate", "--model", str(folder / "model"),
         "--input", str(folder / "questions.jsonl"), "--output", str(folder / "out" / "answers.jsonl"),
         "--max-new-tokens", "3", *extra],
        env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def test_generate_loads_in_4bit_and_a_rerun_in_another_precision_is_refused(folder):
    (folder / "questions.jsonl").write_text(
        "".join(json.dumps(line) + "\n" for line in [{"text": "What is it?", "images": "red.png"}, {"text": "Hi?"}])
    )
    first = generate(folder, "--load-in-4bit")
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads((folder / "out" / "answers.jsonl.run.json").read_text())["quantization"] == "4bit"
    both = generate(folder, "--load-in-4bit", "--load-in-8bit")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    other = generate(folder, "--load-in-8bit", "--overwrite")
    assert other.returncode == 0 and "MatMul8bitLt" not in other.stderr  # no log line per matrix product
    (folder / "out" / "answers.jsonl").write_text("")  # an interrupted run: resumed only in the same precision
    refused = generate(folder)
    assert refused.returncode == 2 and "quantization: was '8bit', now None" in refused.stderr


@pytest.mark.parametrize("command", ["chat", "serve", "eval"])
def test_every_model_command_offers_the_flags(command):
    result = subprocess.run(
        [sys.executable, "-m", "transformers_chatbridge.cli", command, "--help"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0 and "--load-in-4bit" in result.stdout and "--load-in-8bit" in result.stdout
