"""BEATs port: parity with the original release format, attention backends, strict loading, save/load, training."""

import copy
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from transformers_chatbridge.configuration_beats import BeatsConfig
from transformers_chatbridge.convert.original_checkpoint import load_original_beats
from transformers_chatbridge.modeling_beats import BeatsModel


FIXTURES = Path(__file__).parent / "fixtures" / "original_tiny"
BEATS_PT = FIXTURES / "beats.pt"


def tiny_config(**overrides) -> BeatsConfig:
    values = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        patch_embedding_size=16,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        num_buckets=32,
        max_distance=64,
        layerdrop=0.0,
    )
    values.update(overrides)
    return BeatsConfig(**values)


def random_features(seed: int, batch: int = 2, frames: int = 128, mel: int = 32) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, frames, mel, generator=generator)


@pytest.fixture(scope="module")
def reference() -> dict[str, torch.Tensor]:
    return load_file(FIXTURES / "tensors.safetensors")


@pytest.fixture(scope="module")
def original_checkpoint() -> dict:
    return torch.load(BEATS_PT, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def original_model() -> BeatsModel:
    return load_original_beats(BEATS_PT)


def test_parity_with_original(original_model, reference):
    assert not original_model.training
    with torch.no_grad():
        hidden = original_model(input_features=reference["audio_fbank"][:, 0]).last_hidden_state
    expected = reference["audio_beats_hidden"]
    assert hidden.shape == expected.shape == (1, 256, 32)
    assert (hidden - expected).abs().max().item() < 1e-4


def test_audio_memory_matches_original(original_model, reference):
    # audio_trans(ln_audio(BEATs)): ln_audio is an identity LayerNorm in every real checkpoint.
    weights = torch.load(FIXTURES / "chatbridge.pth", map_location="cpu", weights_only=True)["model"]
    with torch.no_grad():
        hidden = original_model(input_features=reference["audio_fbank"][:, 0]).last_hidden_state
        normed = torch.nn.functional.layer_norm(hidden, (hidden.shape[-1],), eps=1e-5)
        memory = torch.nn.functional.linear(normed, weights["audio_trans.weight"], weights["audio_trans.bias"])
    assert (memory - reference["audio_memory"]).abs().max().item() < 1e-4


def test_eager_and_sdpa_agree():
    torch.manual_seed(0)
    config = tiny_config()
    # _from_config writes the choice into the config object it is given, so each model gets its own copy.
    eager = BeatsModel._from_config(copy.deepcopy(config), attn_implementation="eager").eval()
    sdpa = BeatsModel._from_config(copy.deepcopy(config), attn_implementation="sdpa").eval()
    with torch.no_grad():
        # Make the gated relative bias matter: at init it is ~0.02 and would hide a wrong mask.
        eager.encoder.relative_attention_bias.weight.normal_(0.0, 2.0)
        for layer in eager.encoder.layers:
            layer.self_attn.grep_a.normal_(1.0, 0.5)
            layer.self_attn.grep_linear.weight.normal_(0.0, 0.5)
    sdpa.load_state_dict(eager.state_dict())
    assert eager.config._attn_implementation == "eager"
    assert sdpa.config._attn_implementation == "sdpa"
    features = random_features(1)
    with torch.no_grad():
        out_eager = eager(input_features=features).last_hidden_state
        out_sdpa = sdpa(input_features=features).last_hidden_state
    assert out_eager.shape == (2, (128 // 16) * (32 // 16), 32)
    assert (out_eager - out_sdpa).abs().max().item() < 1e-5


def test_relative_position_buckets():
    model = BeatsModel(tiny_config(num_buckets=320, max_distance=800))
    # key minus query -> bucket: 160 per direction, exact below 80, logarithmic up to max_distance, then clamped.
    relative = torch.tensor([0, -5, 5, -79, -80, -400, 400, -800, -10000, 10000])
    expected = torch.tensor([0, 5, 165, 79, 80, 135, 295, 159, 159, 319])
    torch.testing.assert_close(model.encoder._relative_position_bucket(relative), expected)
    bias = model.encoder.compute_position_bias(6)
    assert bias.shape == (1, 4, 6, 6)
    table = model.encoder.relative_attention_bias.weight
    torch.testing.assert_close(bias[0, :, 1, 4], table[163])  # key 4 - query 1 = +3 -> bucket 160 + 3


def test_hidden_states_and_tuple_output():
    torch.manual_seed(0)
    model = BeatsModel(tiny_config()).eval()
    features = random_features(2)
    with torch.no_grad():
        outputs = model(input_features=features, output_hidden_states=True)
        as_tuple = model(input_features=features, return_dict=False)
    assert len(outputs.hidden_states) == model.config.num_hidden_layers + 1
    torch.testing.assert_close(outputs.hidden_states[-1], outputs.last_hidden_state)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 1
    torch.testing.assert_close(as_tuple[0], outputs.last_hidden_state)


def _write_modified(tmp_path: Path, checkpoint: dict, name: str, cfg=None, model=None) -> Path:
    modified = {"cfg": dict(cfg if cfg is not None else checkpoint["cfg"]), "model": dict(checkpoint["model"])}
    if model is not None:
        modified["model"] = model
    path = tmp_path / name
    torch.save(modified, path)
    return path


def test_loader_rejects_unexpected_key(tmp_path, original_checkpoint):
    state = dict(original_checkpoint["model"])
    state["encoder.extra_module.weight"] = torch.zeros(3)
    path = _write_modified(tmp_path, original_checkpoint, "extra.pt", model=state)
    with pytest.raises(ValueError, match=r"encoder\.extra_module\.weight") as error:
        load_original_beats(path)
    assert "extra.pt" in str(error.value)


def test_loader_rejects_missing_key(tmp_path, original_checkpoint):
    state = dict(original_checkpoint["model"])
    del state["encoder.layers.1.fc2.bias"]
    path = _write_modified(tmp_path, original_checkpoint, "missing.pt", model=state)
    with pytest.raises(ValueError, match=r"encoder\.layers\.1\.fc2\.bias"):
        load_original_beats(path)


def test_loader_rejects_unshared_relative_bias(tmp_path, original_checkpoint):
    state = dict(original_checkpoint["model"])
    key = "encoder.layers.1.self_attn.relative_attention_bias.weight"
    state[key] = state[key] + 1.0
    path = _write_modified(tmp_path, original_checkpoint, "unshared.pt", model=state)
    with pytest.raises(ValueError, match=r"encoder\.layers\.1\.self_attn\.relative_attention_bias\.weight"):
        load_original_beats(path)


def test_loader_rejects_unsupported_variant(tmp_path, original_checkpoint):
    cfg = dict(original_checkpoint["cfg"], layer_norm_first=True)
    path = _write_modified(tmp_path, original_checkpoint, "prenorm.pt", cfg=cfg)
    with pytest.raises(ValueError, match="layer_norm_first"):
        load_original_beats(path)


def test_loader_drops_predictor_head(tmp_path, original_checkpoint, original_model, reference):
    state = dict(original_checkpoint["model"])
    state["predictor.weight"] = torch.zeros(5, 32)
    state["predictor.bias"] = torch.zeros(5)
    cfg = dict(original_checkpoint["cfg"], finetuned_model=True, predictor_class=5, predictor_dropout=0.1)
    model = load_original_beats(_write_modified(tmp_path, original_checkpoint, "finetuned.pt", cfg=cfg, model=state))
    features = reference["audio_fbank"][:, 0]
    with torch.no_grad():
        torch.testing.assert_close(
            model(input_features=features).last_hidden_state,
            original_model(input_features=features).last_hidden_state,
            rtol=0,
            atol=0,
        )


def test_save_and_reload_round_trip(tmp_path, original_model, reference):
    original_model.save_pretrained(tmp_path / "beats")
    reloaded, info = BeatsModel.from_pretrained(tmp_path / "beats", output_loading_info=True)
    assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    reloaded.eval()
    features = reference["audio_fbank"][:, 0]
    with torch.no_grad():
        expected = original_model(input_features=features).last_hidden_state
        actual = reloaded(input_features=features).last_hidden_state
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


def test_gradient_checkpointing_backward():
    torch.manual_seed(0)
    model = BeatsModel(tiny_config(layerdrop=0.0))
    checkpointed = copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        checkpointed.gradient_checkpointing_enable()
    assert all(layer.gradient_checkpointing for layer in checkpointed.encoder.layers)
    model.train()
    checkpointed.train()
    features = random_features(3)

    for module in (model, checkpointed):
        module(input_features=features).last_hidden_state.square().mean().backward()

    for (name, param), (_, param_ckpt) in zip(model.named_parameters(), checkpointed.named_parameters()):
        assert param_ckpt.grad is not None, name
        torch.testing.assert_close(param_ckpt.grad, param.grad, msg=name)
    assert checkpointed.encoder.relative_attention_bias.weight.grad.abs().sum() > 0
    assert checkpointed.encoder.layers[1].self_attn.grep_a.grad.abs().sum() > 0


def test_random_init_uses_initializer_range():
    torch.manual_seed(0)
    model = BeatsModel(tiny_config(initializer_range=0.5)).eval()
    fc1_std = model.encoder.layers[0].fc1.weight.std().item()
    assert 0.4 < fc1_std < 0.6
    # The weight-normed positional conv follows the original's own scale, and starts with weight == v.
    conv = model.encoder.pos_conv_embed.conv
    weight_v = conv.parametrizations.weight.original1
    expected_std = (4.0 / (conv.kernel_size[0] * conv.in_channels)) ** 0.5
    assert abs(weight_v.std().item() / expected_std - 1.0) < 0.1
    torch.testing.assert_close(conv.weight, weight_v)
    with torch.no_grad():
        first = model(input_features=random_features(4)).last_hidden_state
        second = model(input_features=random_features(5)).last_hidden_state
    assert first.std().item() > 0.1
    assert (first - second).abs().max().item() > 1e-2


def test_layerdrop_only_in_training():
    torch.manual_seed(0)
    model = BeatsModel(tiny_config(layerdrop=1.0))
    features = random_features(6)
    with torch.no_grad():
        model.train()
        skipped = model(input_features=features, output_hidden_states=True)
        model.eval()
        full = model(input_features=features, output_hidden_states=True)
    # Every layer dropped in training: the output is the encoder input; eval always runs every layer.
    torch.testing.assert_close(skipped.last_hidden_state, skipped.hidden_states[0])
    torch.testing.assert_close(full.hidden_states[0], skipped.hidden_states[0])
    assert (full.last_hidden_state - full.hidden_states[0]).abs().max().item() > 1e-2


def test_max_source_positions_is_the_length_of_the_longest_input():
    """Serving engines (vLLM) bound an audio item by it: the encoder's output for one whole segment."""
    from transformers_chatbridge import BeatsFeatureExtractor

    extractor = BeatsFeatureExtractor()
    features = torch.randn(1, extractor.max_length, extractor.num_mel_bins)
    with torch.no_grad():
        output = BeatsModel(tiny_config()).eval()(input_features=features).last_hidden_state
    assert output.shape[1] == BeatsConfig().max_source_positions
