"""Auto* resolution, remote code in a Python without the package, and building from pretrained components."""

import json
import os
import subprocess
import sys
import textwrap

import torch
from PIL import Image
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoModelForMultimodalLM,
    Blip2VisionModel,
)

from transformers_chatbridge import (
    BeatsConfig,
    BeatsModel,
    ChatBridgeConfig,
    ChatBridgeForConditionalGeneration,
    ChatBridgeModel,
)
from transformers_chatbridge.testing import causal_lm_of, tiny_chatbridge


def image_prompt(model, tokenizer):
    text = "###Human: Given following image: " + "<image>" * model.config.num_image_query_tokens
    inputs = tokenizer(text + ".###Human: What is it?###Assistant:", return_tensors="pt")
    size = model.config.vision_config.image_size
    return {**inputs, "pixel_values": torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(3))}


def test_auto_classes_resolve(tiny_dir):
    assert isinstance(AutoConfig.from_pretrained(tiny_dir), ChatBridgeConfig)
    assert type(AutoModel.from_pretrained(tiny_dir)) is ChatBridgeModel
    assert type(AutoModelForImageTextToText.from_pretrained(tiny_dir)) is ChatBridgeForConditionalGeneration
    assert type(AutoModelForMultimodalLM.from_pretrained(tiny_dir)) is ChatBridgeForConditionalGeneration


def test_beats_resolves_on_its_own(tmp_path, tiny):
    model = tiny[0]
    model.model.audio_tower.save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), BeatsConfig)
    reloaded = AutoModel.from_pretrained(tmp_path)
    assert type(reloaded) is BeatsModel
    features = torch.randn(2, 64, 64)
    with torch.no_grad():
        assert torch.equal(reloaded(features).last_hidden_state, model.model.audio_tower(features).last_hidden_state)


def test_checkpoint_names_its_remote_code(tiny_dir):
    auto_map = json.loads((tiny_dir / "config.json").read_text())["auto_map"]
    assert auto_map == {
        "AutoConfig": "configuration_chatbridge.ChatBridgeConfig",
        "AutoModel": "modeling_chatbridge.ChatBridgeModel",
        "AutoModelForImageTextToText": "modeling_chatbridge.ChatBridgeForConditionalGeneration",
        "AutoModelForMultimodalLM": "modeling_chatbridge.ChatBridgeForConditionalGeneration",
    }
    for code in ("configuration_chatbridge.py", "modeling_chatbridge.py", "configuration_beats.py", "modeling_beats.py"):
        assert (tiny_dir / code).exists(), code


REMOTE_CODE_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["transformers_chatbridge"] = None  # any import of the package now fails
    try:
        import transformers_chatbridge
    except ImportError:
        pass
    else:
        raise SystemExit("the package is still importable")

    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoModelForMultimodalLM, AutoProcessor

    checkpoint, inputs_file, output_file, image_file = sys.argv[1:]
    inputs = load_file(inputs_file)
    processor = AutoProcessor.from_pretrained(checkpoint, trust_remote_code=True)
    assert type(processor).__module__.startswith("transformers_modules"), type(processor).__module__
    messages = [{"role": "user", "content": [{"type": "image", "path": image_file}, {"type": "text", "text": "Hi?"}]}]
    chat_inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    model = AutoModelForMultimodalLM.from_pretrained(checkpoint, trust_remote_code=True)
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    assert AutoConfig.from_pretrained(checkpoint, trust_remote_code=True).model_type == "chatbridge"
    assert type(AutoModel.from_pretrained(checkpoint, trust_remote_code=True)).__name__ == "ChatBridgeModel"
    assert type(AutoModelForImageTextToText.from_pretrained(checkpoint, trust_remote_code=True)).__name__ == (
        "ChatBridgeForConditionalGeneration"
    )
    with torch.no_grad():
        logits = model(**inputs).logits
        generated = model.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False)
        chat_logits = model(**chat_inputs).logits
    save_file(
        {
            "logits": logits.contiguous(),
            "generated": generated.contiguous(),
            "chat_logits": chat_logits.contiguous(),
            "chat_input_ids": chat_inputs["input_ids"].contiguous(),
            "chat_pixel_values": chat_inputs["pixel_values"].contiguous(),
        },
        output_file,
    )
    """
)


def test_remote_code_loads_where_the_package_is_not_importable(tiny_dir, tiny, tmp_path):
    model, processor = tiny
    tokenizer = processor.tokenizer
    inputs = image_prompt(model, tokenizer)
    from safetensors.torch import load_file, save_file

    save_file({key: value.contiguous() for key, value in inputs.items()}, tmp_path / "inputs.safetensors")
    script = tmp_path / "load_remote.py"
    script.write_text(REMOTE_CODE_SCRIPT)
    image_file = tmp_path / "square.png"
    Image.new("RGB", (50, 40), "blue").save(image_file)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "1"}
    arguments = [str(tiny_dir), str(tmp_path / "inputs.safetensors"), str(tmp_path / "out.st"), str(image_file)]
    result = subprocess.run(
        [sys.executable, str(script), *arguments],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    remote = load_file(tmp_path / "out.st")
    with torch.no_grad():
        assert torch.equal(remote["logits"], model(**inputs).logits)
        expected = model.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False)
        messages = [{"role": "user", "content": [{"type": "image", "path": str(image_file)}, {"type": "text", "text": "Hi?"}]}]
        chat_inputs = processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        )
        assert torch.equal(remote["chat_input_ids"], chat_inputs["input_ids"])
        assert torch.equal(remote["chat_pixel_values"], chat_inputs["pixel_values"])
        assert torch.allclose(remote["chat_logits"], model(**chat_inputs).logits, atol=1e-6)
    assert torch.equal(remote["generated"], expected)


def test_from_components_keeps_pretrained_parts_and_adds_a_fresh_bridge(tmp_path, tiny):
    donor = tiny[0]
    vision, audio, language = donor.model.vision_tower, donor.model.audio_tower, causal_lm_of(donor)
    vision.save_pretrained(tmp_path / "vision")
    audio.save_pretrained(tmp_path / "audio")
    language.save_pretrained(tmp_path / "llm")
    vocab_size = language.config.vocab_size

    model = ChatBridgeForConditionalGeneration.from_components(
        vision_model=str(tmp_path / "vision"),
        audio_model=str(tmp_path / "audio"),
        language_model=str(tmp_path / "llm"),
        num_image_query_tokens=3,
    )
    assert isinstance(model.model.vision_tower, Blip2VisionModel)
    assert isinstance(model.model.audio_tower, BeatsModel)
    for part, original in ((model.model.vision_tower, vision), (model.model.audio_tower, audio)):
        for (name, tensor), (_, expected) in zip(part.state_dict().items(), original.state_dict().items()):
            assert torch.equal(tensor, expected), name
    # Placeholders were appended after the LLM's vocabulary, whose old rows are untouched.
    assert (model.config.image_token_id, model.config.video_token_id, model.config.audio_token_id) == (
        vocab_size,
        vocab_size + 1,
        vocab_size + 2,
    )
    embeddings = model.get_input_embeddings().weight
    assert embeddings.shape[0] == vocab_size + 3
    assert torch.equal(embeddings[:vocab_size], language.get_input_embeddings().weight)
    assert model.model.image_query_tokens.shape[1] == 3
    assert torch.count_nonzero(model.model.audio_query_tokens) == 0
    assert model.model.image_query_tokens.std() > 0
    qformer_weight = model.model.qformer.encoder.layer[0].attention.attention.query.weight
    assert not torch.equal(qformer_weight, donor.model.qformer.encoder.layer[0].attention.attention.query.weight)

    model.save_pretrained(tmp_path / "stage1")
    reloaded = AutoModelForMultimodalLM.from_pretrained(tmp_path / "stage1")
    assert torch.equal(reloaded.get_input_embeddings().weight, embeddings)


def test_from_components_accepts_modules():
    donor, _ = tiny_chatbridge()
    language = AutoModelForCausalLM.from_config(donor.config.text_config)
    model = ChatBridgeForConditionalGeneration.from_components(
        vision_model=donor.model.vision_tower,
        audio_model=donor.model.audio_tower,
        language_model=language,
        image_token_id=4,
        video_token_id=5,
        audio_token_id=6,
    )
    assert model.model.language_model is language.get_decoder()
    assert torch.equal(model.lm_head.weight, language.lm_head.weight)
    assert model.model.vision_tower is donor.model.vision_tower
    implementations = {part.config._attn_implementation for part in (model.model.vision_tower, model.model.audio_tower)}
    assert implementations == {"sdpa"}, "the components keep their attention implementation"
    assert model.get_input_embeddings().weight.shape[0] == donor.config.text_config.vocab_size
