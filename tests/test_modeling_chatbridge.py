"""Behaviour of ChatBridgeModel / ChatBridgeForConditionalGeneration on tiny random models."""

import copy

import pytest
import torch
import torch.nn.functional as F

from transformers_chatbridge import ChatBridgeForConditionalGeneration, ChatBridgeModel
from transformers_chatbridge.testing import tiny_chatbridge

MEDIA_INTRO = {"image": "Given following image: ", "video": "Given following video: ", "audio": "Given the following audio: "}


def media_tensors(model, modality: str, count: int, seed: int) -> torch.Tensor:
    """Random inputs in the shapes the processor produces (tiny image size, 4 frames, short fbank segments)."""
    generator = torch.Generator().manual_seed(seed)
    size = model.config.vision_config.image_size
    shapes = {
        "image": (count, 3, size, size),
        "video": (count, model.config.num_video_frames, 3, size, size),
        "audio": (count, model.config.num_audio_segments, 64, 64),
    }
    return torch.randn(*shapes[modality], generator=generator)


def prompt(model, tokenizer, modalities: list[str], question: str = "What is it?") -> str:
    """A Vicuna v0 prompt with one media message per item, each placeholder expanded to its query count."""
    text = ""
    for modality in modalities:
        count = model.config.num_audio_query_tokens if modality == "audio" else model.config.num_image_query_tokens
        text += f"###Human: {MEDIA_INTRO[modality]}{f'<{modality}>' * count}."
    return text + f"###Human: {question}###Assistant:"


def batch_inputs(
    model, tokenizer, samples: list[list[str]], sample_seeds: list[int] | None = None, padding_side: str = "left"
) -> dict:
    """Tokenised, padded prompts plus the media tensors of all samples, items in order of appearance.

    A sample's media depend only on its seed, so a sample gets the same media alone as in a batch.
    """
    sample_seeds = sample_seeds if sample_seeds is not None else list(range(len(samples)))
    tokenizer.padding_side = padding_side
    encoded = tokenizer([prompt(model, tokenizer, sample) for sample in samples], return_tensors="pt", padding=True)
    inputs = dict(encoded)
    names = {"image": "pixel_values", "video": "pixel_values_videos", "audio": "input_features"}
    for modality, name in names.items():
        tensors = [
            media_tensors(model, modality, 1, seed=10 * sample_seed + position)
            for sample_seed, sample in zip(sample_seeds, samples)
            for position, item in enumerate(sample)
            if item == modality
        ]
        if tensors:
            inputs[name] = torch.cat(tensors)
    return inputs


def test_forward_backward_shapes():
    model, processor = tiny_chatbridge()
    tokenizer = processor.tokenizer
    model.train()
    inputs = batch_inputs(model, tokenizer, [["image", "audio"], ["video"]], padding_side="right")
    labels = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
    output = model(**inputs, labels=labels)
    assert output.logits.shape == (*inputs["input_ids"].shape, model.config.text_config.vocab_size)
    output.loss.backward()
    assert model.model.qformer.layernorm.weight.grad is not None
    assert model.model.image_query_tokens.grad.abs().sum() > 0
    assert model.model.audio_query_tokens.grad.abs().sum() > 0


def test_media_features_have_one_row_per_item_and_query(tiny):
    model = tiny[0]
    hidden = model.config.text_config.hidden_size
    with torch.no_grad():
        assert model.get_image_features(media_tensors(model, "image", 3, 0)).pooler_output.shape == (3, 4, hidden)
        assert model.get_video_features(media_tensors(model, "video", 2, 0)).pooler_output.shape == (2, 4, hidden)
        assert model.get_audio_features(media_tensors(model, "audio", 2, 0)).pooler_output.shape == (2, 4, hidden)


def test_media_changes_the_features(tiny):
    model = tiny[0]
    with torch.no_grad():
        for modality, get_features in (
            ("image", model.get_image_features),
            ("video", model.get_video_features),
            ("audio", model.get_audio_features),
        ):
            first = get_features(media_tensors(model, modality, 1, 0)).pooler_output
            second = get_features(media_tensors(model, modality, 1, 1)).pooler_output
            assert (first - second).abs().max() > 1e-4, modality


def test_loss_counts_only_labelled_positions(tiny):
    model, tokenizer = tiny[0], tiny[1].tokenizer
    inputs = batch_inputs(model, tokenizer, [["image"]])
    labels = torch.full_like(inputs["input_ids"], -100)
    labels[:, -4:] = inputs["input_ids"][:, -4:]
    with torch.no_grad():
        output = model(**inputs, labels=labels)
    shifted_logits, shifted_labels = output.logits[:, :-1], labels[:, 1:]
    expected = F.cross_entropy(shifted_logits.reshape(-1, shifted_logits.shape[-1]), shifted_labels.reshape(-1))
    assert torch.allclose(output.loss, expected, atol=1e-6)
    only_last = F.cross_entropy(output.logits[0, -2:-1], labels[0, -1:])
    assert not torch.allclose(output.loss, only_last)


@pytest.mark.parametrize(
    ("samples", "media", "message"),
    [
        ([["image"], ["image"]], {"pixel_values": 1}, "Sample 1 has 4 image placeholder tokens"),
        ([["audio"], []], {"input_features": 2}, "The batch has 2 audio item(s)"),
    ],
)
def test_placeholder_count_mismatch_names_sample_and_modality(tiny, samples, media, message):
    model, tokenizer = tiny[0], tiny[1].tokenizer
    inputs = batch_inputs(model, tokenizer, samples)
    for name, count in media.items():
        inputs[name] = inputs[name][:1].expand(count, *inputs[name].shape[1:])
    calls = []
    hook = model.model.vision_tower.register_forward_hook(lambda *args: calls.append(1))
    try:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            model(**inputs)
    finally:
        hook.remove()
    assert calls == [], "the error must come before any tower runs"


def test_partial_placeholder_run_is_rejected(tiny):
    model, tokenizer = tiny[0], tiny[1].tokenizer
    inputs = batch_inputs(model, tokenizer, [["image"]])
    image_positions = (inputs["input_ids"][0] == model.config.image_token_id).nonzero()
    inputs["input_ids"][0, image_positions[0]] = tokenizer.pad_token_id
    with pytest.raises(ValueError, match="Sample 0 has 3 image placeholder tokens"):
        model(**inputs)


def test_greedy_generate_with_cache_matches_recomputation(tiny):
    model, tokenizer = tiny[0], tiny[1].tokenizer
    inputs = batch_inputs(model, tokenizer, [["video", "audio"]])
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=8, min_new_tokens=8, do_sample=False)
        media = {key: value for key, value in inputs.items() if key not in ("input_ids", "attention_mask")}
        ids = inputs["input_ids"]
        for _ in range(8):
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False, **media).logits
            logits[:, -1, model.generation_config.eos_token_id] = -torch.inf  # min_new_tokens
            ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=-1)
    assert torch.equal(generated, ids)


def test_left_padded_mixed_batch_matches_each_sample_alone(tiny):
    model, tokenizer = tiny[0], tiny[1].tokenizer
    samples = [["image"], ["video"], ["audio"], ["video", "audio"], ["image", "image"], []]
    batch = batch_inputs(model, tokenizer, samples)
    settings = {"max_new_tokens": 6, "min_new_tokens": 6, "do_sample": False}
    with torch.no_grad():
        batched = model.generate(**batch, **settings)[:, batch["input_ids"].shape[1] :]
        for index, sample in enumerate(samples):
            alone = batch_inputs(model, tokenizer, [sample], sample_seeds=[index])
            single = model.generate(**alone, **settings)[:, alone["input_ids"].shape[1] :]
            assert torch.equal(batched[index], single[0]), f"sample {index} ({sample}) differs when batched"


def test_vision_tower_runs_once_per_generate(tiny):
    model, tokenizer = tiny[0], tiny[1].tokenizer
    inputs = batch_inputs(model, tokenizer, [["image", "video"], ["image"]])
    calls = []
    hook = model.model.vision_tower.register_forward_hook(lambda *args: calls.append(1))
    try:
        with torch.no_grad():
            model.generate(**inputs, max_new_tokens=5, min_new_tokens=5, do_sample=False)
    finally:
        hook.remove()
    assert len(calls) == 2  # one pass for the images, one for the video frames


def test_save_and_load_give_identical_outputs(tiny, tmp_path):
    model, tokenizer = tiny[0], tiny[1].tokenizer
    model.save_pretrained(tmp_path)
    reloaded = ChatBridgeForConditionalGeneration.from_pretrained(tmp_path)
    inputs = batch_inputs(model, tokenizer, [["image", "audio"], ["video"]])
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, reloaded(**inputs).logits)
    assert (tmp_path / "model.safetensors").exists()


def test_base_model_returns_hidden_states(tiny_dir, tiny):
    model, tokenizer = tiny[0], tiny[1].tokenizer
    base = ChatBridgeModel.from_pretrained(tiny_dir)
    inputs = batch_inputs(model, tokenizer, [["audio"]])
    with torch.no_grad():
        hidden = base(**inputs).last_hidden_state
    assert hidden.shape == (*inputs["input_ids"].shape, model.config.text_config.hidden_size)


def test_eager_and_sdpa_agree(tiny_dir, tiny):
    model, tokenizer = tiny[0], tiny[1].tokenizer
    inputs = batch_inputs(model, tokenizer, [["image", "audio"], ["video"]])
    logits = {}
    for implementation in ("eager", "sdpa"):
        loaded = ChatBridgeForConditionalGeneration.from_pretrained(tiny_dir, attn_implementation=implementation)
        assert loaded.model.audio_tower.config._attn_implementation == implementation
        assert loaded.model.language_model.config._attn_implementation == implementation
        with torch.no_grad():
            logits[implementation] = loaded(**inputs).logits
    real = inputs["attention_mask"].bool()  # padded positions attend to nothing; their logits are meaningless
    assert torch.allclose(logits["eager"][real], logits["sdpa"][real], atol=1e-5)


@pytest.mark.parametrize("enable_first", [True, False], ids=["checkpointing-then-train", "train-then-checkpointing"])
def test_gradient_checkpointing_trains(enable_first):
    model, processor = tiny_chatbridge()
    tokenizer = processor.tokenizer
    model.set_training_stage("alignment")
    reference = copy.deepcopy(model)
    steps = [model.activation_checkpointing_enable, model.train]
    for step in steps if enable_first else reversed(steps):
        step()
    reference.train()
    inputs = batch_inputs(model, tokenizer, [["image"], ["audio"]], padding_side="right")
    labels = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
    qformer_calls, llm_calls = [], []
    hooks = [
        model.model.qformer.encoder.layer[0].attention.register_forward_hook(lambda *args: qformer_calls.append(1)),
        model.model.language_model.layers[0].self_attn.register_forward_hook(lambda *args: llm_calls.append(1)),
    ]
    model(**inputs, labels=labels).loss.backward()
    for hook in hooks:
        hook.remove()
    reference(**inputs, labels=labels).loss.backward()
    # Q-Former passes for the images and the audio, each run again during backward.
    assert len(qformer_calls) == 4
    # The frozen LLM holds most activations (the bridge's gradients flow back through it): it is recomputed too,
    # while its submodules stay in eval mode (no dropout).
    assert len(llm_calls) == 2
    assert not any(module.training for module in model.model.language_model.layers[0].children())
    for (name, parameter), (_, expected) in zip(model.named_parameters(), reference.named_parameters()):
        if parameter.requires_grad:
            assert parameter.grad is not None, name
            assert torch.allclose(parameter.grad, expected.grad, atol=1e-6), name


@pytest.mark.parametrize("stage", ["alignment", "instruction"])
def test_training_stage_freezes_towers_and_llm(stage):
    model, processor = tiny_chatbridge()
    tokenizer = processor.tokenizer
    trainable = model.set_training_stage(stage)
    prefixes = {name.split(".")[1] for name in trainable}
    assert prefixes == {"qformer", "image_query_tokens", "audio_query_tokens", "audio_projection", "language_projection"}
    assert trainable == [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    dropout = {"alignment": 0.0, "instruction": 0.1}[stage]
    assert {module.p for module in model.model.qformer.modules() if isinstance(module, torch.nn.Dropout)} == {dropout}

    model.train()
    assert model.model.qformer.training
    assert not model.model.vision_tower.training and not model.model.audio_tower.training
    assert not model.model.language_model.training

    tower_outputs = []
    hooks = [
        tower.register_forward_hook(lambda module, args, output: tower_outputs.append(output.last_hidden_state))
        for tower in (model.model.vision_tower, model.model.audio_tower)
    ]
    frozen_before = {name: p.detach().clone() for name, p in model.named_parameters() if not p.requires_grad}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    inputs = batch_inputs(model, tokenizer, [["image", "audio"], ["video"]], padding_side="right")
    labels = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
    model(**inputs, labels=labels).loss.backward()
    optimizer.step()
    for hook in hooks:
        hook.remove()

    assert tower_outputs and not any(output.requires_grad for output in tower_outputs)
    for name, parameter in model.named_parameters():
        if name in frozen_before:
            assert parameter.grad is None, name
            assert torch.equal(parameter, frozen_before[name]), name
    assert model.model.language_projection.weight.grad is not None


def test_tower_output_cache_reuses_outputs_and_trains_the_bridge_alike():
    """Cached tower outputs give the same loss and gradients; only items never seen before run the towers."""
    model, processor = tiny_chatbridge()
    model.set_training_stage("alignment")
    model.train()
    inputs = batch_inputs(model, processor.tokenizer, [["image", "audio"], ["video", "image"]], padding_side="right")
    labels = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
    calls = []
    for tower in (model.model.vision_tower, model.model.audio_tower):
        tower.register_forward_pre_hook(lambda module, args, kwargs: calls.append(len(next(iter(kwargs.values())))),
                                        with_kwargs=True)  # fmt: skip

    def loss_and_gradients():
        model.zero_grad()
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    expected_loss, expected_gradients = loss_and_gradients()
    calls.clear()
    cache = model.model.enable_tower_output_cache(max_bytes=2**30)
    for repeat in range(2):
        loss, gradients = loss_and_gradients()
        assert torch.equal(loss, expected_loss)
        for name, gradient in gradients.items():
            assert torch.allclose(gradient, expected_gradients[name], atol=1e-7), name
    # The first pass only (two images, one video's frames, one audio clip's segments); the second reuses them.
    assert calls == [2, model.config.num_video_frames, model.config.num_audio_segments]
    assert (cache.misses, cache.hits) == (sum(calls),) * 2

    inputs["pixel_values"] = inputs["pixel_values"].clone()
    inputs["pixel_values"][1] += 0.5  # another image: computed, never answered from the cache
    calls.clear()
    model(**inputs, labels=labels)
    assert calls == [1]


def test_tower_output_cache_keeps_at_most_its_size_and_skips_trainable_towers(tiny):
    model = copy.deepcopy(tiny[0])
    model.set_training_stage("alignment")  # frozen towers
    images = media_tensors(model, "image", 3, seed=0)
    expected = model.model.vision_tower(pixel_values=images).last_hidden_state
    one_item = expected[0].numel() * expected.element_size()
    cache = model.model.enable_tower_output_cache(max_bytes=2 * one_item)
    for repeat in range(2):  # the third image never fits: computed each time, still right
        assert torch.allclose(model.model._frame_memory(images), expected, atol=1e-6)
    assert cache.stored_bytes == 2 * one_item and (cache.hits, cache.misses) == (2, 4)

    model.model.vision_tower.requires_grad_(True)  # a tower that trains must run every time
    assert model.model._frame_memory(images).requires_grad
    assert (cache.hits, cache.misses) == (2, 4)
    with pytest.raises(ValueError, match="must be positive"):
        model.model.enable_tower_output_cache(max_bytes=0)


def test_unknown_training_stage_is_rejected(tiny):
    model = tiny[0]
    with pytest.raises(ValueError, match="Unknown training stage 'pretraining'"):
        model.set_training_stage("pretraining")


def test_device_map_auto_with_offload_gives_the_same_logits(tiny_dir, tiny, tmp_path):
    model, tokenizer = tiny[0], tiny[1].tokenizer
    offloaded = ChatBridgeForConditionalGeneration.from_pretrained(
        tiny_dir, device_map="auto", max_memory={"cpu": "300KB", "disk": "1GB"}, offload_folder=str(tmp_path)
    )
    assert "disk" in set(offloaded.hf_device_map.values())
    inputs = batch_inputs(model, tokenizer, [["image", "audio"], ["video"]])
    with torch.no_grad():
        assert torch.allclose(offloaded(**inputs).logits, model(**inputs).logits, atol=1e-6)


def test_half_precision_keeps_the_qformer_in_float32(tiny_dir, tiny):
    model, tokenizer = tiny[0], tiny[1].tokenizer
    half = ChatBridgeForConditionalGeneration.from_pretrained(tiny_dir, dtype=torch.float16)
    assert half.model.qformer.layernorm.weight.dtype == torch.float32
    assert half.model.image_query_tokens.dtype == torch.float32
    assert half.model.language_model.dtype == torch.float16
    inputs = batch_inputs(model, tokenizer, [["video", "audio"]])
    with torch.no_grad():
        logits = half(**inputs).logits
        reference = model(**inputs).logits
    assert logits.dtype == torch.float16
    assert torch.allclose(logits.float(), reference, atol=5e-3)


def test_resaving_a_loaded_checkpoint_keeps_its_keys(tiny_dir, tmp_path):
    from safetensors import safe_open

    ChatBridgeForConditionalGeneration.from_pretrained(tiny_dir).save_pretrained(tmp_path)
    with safe_open(tiny_dir / "model.safetensors", "pt") as original, safe_open(tmp_path / "model.safetensors", "pt") as resaved:
        assert set(resaved.keys()) == set(original.keys())


# --- transformers 5 contracts --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("modality", ["image", "video", "audio"])
def test_features_are_model_outputs_with_the_llm_space_features_as_pooler_output(modality):
    model, _ = tiny_chatbridge()
    model.set_attn_implementation("eager")  # SDPA computes no attention weights to return
    get_features = getattr(model, f"get_{modality}_features")
    values = media_tensors(model, modality, 2, 0)
    qformer = model.config.qformer_config
    with torch.no_grad():
        output = get_features(values, output_hidden_states=True, output_attentions=True)
        as_tuple = get_features(values, return_dict=False)
    assert output.pooler_output.shape == (2, 4, model.config.text_config.hidden_size)
    assert output.last_hidden_state.shape == (2, 4, qformer.hidden_size)  # the Q-Former's output
    with torch.no_grad():
        projected = model.model.language_projection(output.last_hidden_state)
    torch.testing.assert_close(output.pooler_output, projected)
    assert len(output.hidden_states) == qformer.num_hidden_layers + 1
    assert len(output.attentions) == qformer.num_hidden_layers  # self-attention only, one per layer
    assert output.attentions[0].shape == (2, qformer.num_attention_heads, 4, 4)
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], output.last_hidden_state)
    torch.testing.assert_close(as_tuple[1], output.pooler_output)


def test_forward_output_carries_each_modality_encoder_output(tiny):
    model, tokenizer = tiny[0], tiny[1].tokenizer
    inputs = batch_inputs(model, tokenizer, [["image", "audio"], ["image"]])
    with torch.no_grad():
        output = model(**inputs)
        images = model.get_image_features(inputs["pixel_values"])
        audio = model.get_audio_features(inputs["input_features"])
    torch.testing.assert_close(output.image_outputs.pooler_output, images.pooler_output)
    torch.testing.assert_close(output.audio_outputs.last_hidden_state, audio.last_hidden_state)
    assert output.video_outputs is None


def test_media_work_with_inputs_embeds(tiny):
    model, tokenizer = tiny[0], tiny[1].tokenizer
    inputs = batch_inputs(model, tokenizer, [["image", "audio"], ["video"]])
    input_ids = inputs.pop("input_ids")
    embeds = model.get_input_embeddings()(input_ids)
    settings = {"max_new_tokens": 5, "min_new_tokens": 5, "do_sample": False}
    with torch.no_grad():
        expected = model(input_ids=input_ids, **inputs).logits
        torch.testing.assert_close(model(inputs_embeds=embeds, **inputs).logits, expected)
        from_ids = model.generate(input_ids=input_ids, **inputs, **settings)[:, input_ids.shape[1] :]
        from_embeds = model.generate(inputs_embeds=embeds, **inputs, **settings)
    assert torch.equal(from_embeds, from_ids)


def test_placeholders_found_in_inputs_embeds_are_counted(tiny):
    model, tokenizer = tiny[0], tiny[1].tokenizer
    inputs = batch_inputs(model, tokenizer, [["image"], ["image"]])
    embeds = model.get_input_embeddings()(inputs.pop("input_ids"))
    with pytest.raises(ValueError, match=r"Sample 1 has 4 image placeholder tokens .* 1 image item"):
        model(inputs_embeds=embeds, attention_mask=inputs["attention_mask"], pixel_values=inputs["pixel_values"][:1])


def test_past_key_values_is_the_deprecated_name_of_cache(tiny):
    model, tokenizer = tiny[0], tiny[1].tokenizer
    inputs = batch_inputs(model, tokenizer, [["video", "audio"]])
    ids = inputs.pop("input_ids")
    with torch.no_grad():
        full = model(input_ids=ids, **inputs).logits[:, -1]
        prefix = model(input_ids=ids[:, :-1], **{**inputs, "attention_mask": inputs["attention_mask"][:, :-1]},
                       use_cache=True)
        with pytest.warns(FutureWarning, match="`past_key_values` is deprecated"):
            last = model(input_ids=ids[:, -1:], attention_mask=inputs["attention_mask"], past_key_values=prefix.cache)
    torch.testing.assert_close(last.logits[:, -1], full, atol=1e-5, rtol=1e-5)


def test_encoders_by_modality(tiny):
    model = tiny[0]
    assert model.get_encoder(modality="image") is model.model.vision_tower
    assert model.get_encoder(modality="video") is model.model.vision_tower
    assert model.get_encoder(modality="audio") is model.model.audio_tower
    assert model.get_decoder() is model.model.language_model


def _compile_config(**settings):
    from transformers import CompileConfig

    config = CompileConfig(fullgraph=True, **settings)
    config._compile_all_devices = True  # generate compiles on accelerators only unless told otherwise
    return config


@pytest.mark.parametrize(
    "compile_config",
    [None, pytest.param({"backend": "aot_eager", "mode": None}, id="aot_eager-fullgraph")],
    ids=["static-cache", "aot_eager-fullgraph"],
)
def test_static_cache_and_compiled_decoding_give_the_dynamic_cache_ids(compile_config):
    model, processor = tiny_chatbridge()
    assert model._can_compile_fullgraph
    inputs = batch_inputs(model, processor.tokenizer, [["image", "audio"], ["video"], []])
    settings = {"max_new_tokens": 6, "min_new_tokens": 6, "do_sample": False}
    extra = {} if compile_config is None else {"compile_config": _compile_config(**compile_config)}
    with torch.no_grad():
        dynamic = model.generate(**inputs, **settings)
        static = model.generate(**inputs, cache_implementation="static", **settings, **extra)
    assert torch.equal(static, dynamic)
    assert hasattr(model, "_compiled_call") == (compile_config is not None)


@pytest.mark.slow
def test_inductor_compiled_decoding_gives_the_dynamic_cache_ids():
    model, processor = tiny_chatbridge()
    inputs = batch_inputs(model, processor.tokenizer, [["image", "audio"], ["video"]])
    settings = {"max_new_tokens": 6, "min_new_tokens": 6, "do_sample": False}
    with torch.no_grad():
        dynamic = model.generate(**inputs, **settings)
        compiled = model.generate(
            **inputs, cache_implementation="static", compile_config=_compile_config(mode="default"), **settings
        )
    assert torch.equal(compiled, dynamic)
