"""ChatBridgeConfig defaults, sub-config resolution and any-tower support."""

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError, StrictDataclassFieldValidationError
from transformers import (
    Blip2QFormerConfig,
    Blip2VisionConfig,
    CLIPVisionConfig,
    CLIPVisionModel,
    GPT2Config,
    SiglipVisionConfig,
    SiglipVisionModel,
    WhisperConfig,
)
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from transformers_chatbridge import BeatsConfig, BeatsModel, ChatBridgeConfig, ChatBridgeForConditionalGeneration
from transformers_chatbridge.testing import build_tiny_tokenizer, tiny_chatbridge


def test_defaults_are_the_released_model():
    config = ChatBridgeConfig()
    vision, audio, qformer, text = config.vision_config, config.audio_config, config.qformer_config, config.text_config
    assert isinstance(vision, Blip2VisionConfig)
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads, vision.intermediate_size) == (
        1408,
        39,
        16,
        6144,
    )
    assert (vision.image_size, vision.patch_size, vision.layer_norm_eps, vision.qkv_bias) == (224, 14, 1e-6, True)
    assert config.vision_layernorm_eps == 1e-5
    assert isinstance(audio, BeatsConfig)
    assert (audio.hidden_size, audio.num_hidden_layers, audio.patch_embedding_size) == (768, 12, 512)
    assert isinstance(qformer, Blip2QFormerConfig)
    assert (qformer.hidden_size, qformer.num_hidden_layers, qformer.cross_attention_frequency) == (768, 12, 2)
    assert (qformer.encoder_hidden_size, qformer.use_qformer_text_input, qformer.layer_norm_eps) == (1408, False, 1e-12)
    assert text.model_type == "llama"
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.intermediate_size) == (
        5120,
        40,
        40,
        13824,
    )
    assert text.vocab_size == 32001 + 3  # Vicuna v0 and the three placeholder tokens
    assert (config.num_image_query_tokens, config.num_audio_query_tokens) == (32, 32)
    assert (config.num_video_frames, config.num_audio_segments, config.video_temporal_embedding) == (4, 1, False)


def test_round_trip_through_dict_keeps_sub_config_types(tmp_path):
    config = ChatBridgeConfig(audio_config=BeatsConfig(hidden_size=64, num_attention_heads=4))
    config.save_pretrained(tmp_path)
    reloaded = ChatBridgeConfig.from_pretrained(tmp_path)
    assert isinstance(reloaded.audio_config, BeatsConfig) and reloaded.audio_config.hidden_size == 64
    assert isinstance(reloaded.vision_config, Blip2VisionConfig)
    assert reloaded.to_dict() == config.to_dict()


def test_qformer_reads_the_vision_width():
    config = ChatBridgeConfig(vision_config=CLIPVisionConfig(hidden_size=48, num_attention_heads=4))
    assert config.qformer_config.encoder_hidden_size == 48


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("video_token_id", 32001, "must differ"),
        ("audio_token_id", 40000, "outside the language model's vocabulary"),
        ("num_video_frames", 0, "num_video_frames must be at least 1"),
    ],
)
def test_bad_settings_are_rejected_when_the_config_is_built(field, value, message):
    with pytest.raises(StrictDataclassClassValidationError, match=message):
        ChatBridgeConfig(**{field: value})


def _towers_run(model, tokenizer, audio_shape):
    """A prompt with an image and an audio clip runs end to end and both media reach the logits."""
    config = model.config
    text = "###Human: " + "<image>" * config.num_image_query_tokens + "<audio>" * config.num_audio_query_tokens
    inputs = tokenizer(text + "###Assistant:", return_tensors="pt")
    size = config.vision_config.image_size
    pixel_values = torch.randn(1, 3, size, size)
    input_features = torch.randn(1, 1, *audio_shape)
    with torch.no_grad():
        logits = model(**inputs, pixel_values=pixel_values, input_features=input_features).logits
        other_image = model(**inputs, pixel_values=pixel_values + 1, input_features=input_features).logits
        other_audio = model(**inputs, pixel_values=pixel_values, input_features=input_features + 1).logits
    assert logits.shape[:2] == inputs["input_ids"].shape
    assert (logits - other_image).abs().max() > 1e-5
    assert (logits - other_audio).abs().max() > 1e-5


def test_default_towers_are_blip2_vit_and_beats(tiny):
    model = tiny[0]
    assert type(model.model.vision_tower).__name__ == "Blip2VisionModel"
    assert model.model.vision_tower.post_layernorm.eps == 1e-5
    assert model.model.vision_tower.encoder.layers[0].layer_norm1.eps == 1e-6
    assert isinstance(model.model.audio_tower, BeatsModel)


def test_clip_vision_whisper_audio_and_gpt2_text_work_as_towers():
    vocab_size = len(build_tiny_tokenizer())
    model, processor = tiny_chatbridge(
        vision_config=CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8
        ),
        audio_config=WhisperConfig(
            d_model=32,
            encoder_layers=2,
            encoder_attention_heads=4,
            encoder_ffn_dim=64,
            decoder_layers=1,
            decoder_attention_heads=4,
            decoder_ffn_dim=64,
            num_mel_bins=16,
            max_source_positions=20,
        ),
        text_config=GPT2Config(
            vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=4, n_positions=512, tie_word_embeddings=True
        ),
    )
    assert isinstance(model.model.vision_tower, CLIPVisionModel)
    assert isinstance(model.model.audio_tower, WhisperEncoder)
    assert model.model.language_model.config.model_type == "gpt2"
    # Whisper's encoder takes (mel bins, 2 * max_source_positions) per segment.
    _towers_run(model, processor.tokenizer, audio_shape=(16, 40))


def test_siglip_vision_tower():
    model, processor = tiny_chatbridge(
        vision_config=SiglipVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8
        )
    )
    assert isinstance(model.model.vision_tower, SiglipVisionModel)
    _towers_run(model, processor.tokenizer, audio_shape=(64, 64))


def test_temporal_embedding_is_opt_in_and_starts_at_zero():
    model, _ = tiny_chatbridge(video_temporal_embedding=True)
    embedding = model.model.video_frame_embedding
    assert embedding.shape == (1, model.config.num_video_frames, 1, model.config.vision_config.hidden_size)
    assert torch.count_nonzero(embedding) == 0
    assert "model.video_frame_embedding" in model.set_training_stage("alignment")
    default, _ = tiny_chatbridge()
    assert default.model.video_frame_embedding is None


def test_frame_order_reaches_the_queries_only_with_the_temporal_embedding():
    """Without it the Q-Former's memory is an unordered set of frame tokens: a clip and its reverse look the same."""
    frames = torch.randn(1, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))

    def order_effect(model) -> float:
        with torch.no_grad():
            return (model.get_video_features(frames).pooler_output - model.get_video_features(frames.flip(1)).pooler_output).abs().max().item()

    default, _ = tiny_chatbridge()
    assert order_effect(default) < 1e-7
    ordered, _ = tiny_chatbridge(video_temporal_embedding=True)
    assert order_effect(ordered) < 1e-7  # it starts at zero
    with torch.no_grad():
        ordered.model.video_frame_embedding.normal_(std=10.0)  # as after training
    assert order_effect(ordered) > 1e-5


def test_sincos_start_of_the_temporal_embedding_orders_the_frames_and_survives_a_reload(tmp_path):
    model, _ = tiny_chatbridge(tmp_path, video_temporal_embedding=True, video_temporal_embedding_init="sincos")
    code = model.model.video_frame_embedding[0, :, 0]
    distance = torch.cdist(code, code)
    # every frame differs from every other, and farther frames differ more
    assert distance[0, 1] > 0.5 and distance[0, 1] < distance[0, 2] < distance[0, 3]
    with torch.no_grad():
        model.model.video_frame_embedding.mul_(3.0)  # trained values must not be re-initialised on loading
        model.save_pretrained(tmp_path)
    reloaded = ChatBridgeForConditionalGeneration.from_pretrained(tmp_path)
    assert reloaded.config.video_temporal_embedding_init == "sincos"
    torch.testing.assert_close(reloaded.model.video_frame_embedding, model.model.video_frame_embedding)
    with pytest.raises(StrictDataclassFieldValidationError, match="video_temporal_embedding_init"):
        tiny_chatbridge(video_temporal_embedding=True, video_temporal_embedding_init="sine")
    with pytest.raises(StrictDataclassClassValidationError, match="exists only with video_temporal_embedding=True"):
        tiny_chatbridge(video_temporal_embedding_init="sincos")
