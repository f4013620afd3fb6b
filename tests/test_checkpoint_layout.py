"""Checkpoint layout: LLaVA's keys, `AutoModel` as the base model, and folders of release 0.1.0 loading unchanged.

`fixtures/layout_0_1_0` was written by release 0.1.0 (`tiny_chatbridge(save_dir=..., seed=3)`), which nested the whole
causal LM under `model.language_model`; `reference_outputs.safetensors` holds that code's inputs and logits.
"""

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForMultimodalLM, pipeline

from transformers_chatbridge import ChatBridgeForConditionalGeneration, ChatBridgeModel

RELEASE_0_1_0 = Path(__file__).parent / "fixtures" / "layout_0_1_0"
TOP_LEVEL = {"vision_tower", "audio_tower", "audio_layernorm", "audio_projection", "qformer", "image_query_tokens",
             "audio_query_tokens", "language_projection", "language_model"}


def keys_of(folder: Path) -> set[str]:
    with safe_open(folder / "model.safetensors", "pt") as weights:
        return set(weights.keys())


def assert_current_layout(keys: set[str]):
    assert "lm_head.weight" in keys and "model.language_model.embed_tokens.weight" in keys
    assert not any(key.startswith(("model.language_model.model.", "model.language_model.lm_head")) for key in keys)
    assert {key.split(".")[1] for key in keys - {"lm_head.weight"}} == TOP_LEVEL


@pytest.fixture(scope="module")
def reference():
    tensors = load_file(RELEASE_0_1_0 / "reference_outputs.safetensors")
    return tensors, tensors.pop("logits")


def test_saved_keys_follow_llava_layout(tiny_dir):
    assert_current_layout(keys_of(tiny_dir))


def test_auto_model_is_the_base_model_with_the_saved_weights(tiny_dir, tiny, reference):
    full = tiny[0]
    base, loading = AutoModel.from_pretrained(tiny_dir, output_loading_info=True)
    assert isinstance(base, ChatBridgeModel)
    assert not loading["missing_keys"] and loading["unexpected_keys"] == {"lm_head.weight"}
    inputs, _ = reference
    with torch.no_grad():
        torch.testing.assert_close(full.lm_head(base.eval()(**inputs).last_hidden_state), full(**inputs).logits)


def test_release_0_1_0_folder_loads_unchanged_through_every_entry_point(reference):
    inputs, logits = reference
    assert "model.language_model.lm_head.weight" in keys_of(RELEASE_0_1_0)
    full, loading = AutoModelForMultimodalLM.from_pretrained(RELEASE_0_1_0, output_loading_info=True)
    assert isinstance(full, ChatBridgeForConditionalGeneration)
    assert not loading["missing_keys"] and not loading["unexpected_keys"]
    base = AutoModel.from_pretrained(RELEASE_0_1_0)
    pipe = pipeline("chatbridge", model=str(RELEASE_0_1_0))
    with torch.no_grad():
        assert torch.equal(full.eval()(**inputs).logits, logits)
        assert torch.equal(full.lm_head(base.eval()(**inputs).last_hidden_state), logits)
        assert torch.equal(pipe.model(**inputs).logits, logits)


def test_release_0_1_0_folder_is_saved_again_in_the_current_layout(reference, tmp_path):
    inputs, logits = reference
    AutoModelForMultimodalLM.from_pretrained(RELEASE_0_1_0).save_pretrained(tmp_path)
    assert_current_layout(keys_of(tmp_path))
    with torch.no_grad():
        assert torch.equal(AutoModelForMultimodalLM.from_pretrained(tmp_path).eval()(**inputs).logits, logits)
