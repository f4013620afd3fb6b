"""ChatBridgeProcessor: loading, placeholder expansion, chat templates, decoding, and hostile images."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoProcessor

from transformers_chatbridge import ChatBridgeProcessor
from transformers_chatbridge.image_processing_chatbridge import ChatBridgeImageProcessor, load_image
from transformers_chatbridge.chat_templates import load_chat_template
from transformers_chatbridge.testing import tiny_chatbridge

from sample_media import write_sample_media

FIXTURES = Path(__file__).parent / "fixtures" / "original_tiny"


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return write_sample_media(tmp_path_factory.mktemp("media"))


def count(ids, token_id):
    return (torch.as_tensor(ids) == token_id).sum(-1).tolist()


def test_round_trip_through_auto_processor(tiny_dir):
    processor = AutoProcessor.from_pretrained(tiny_dir)
    assert isinstance(processor, ChatBridgeProcessor)
    assert processor.num_image_tokens == 4 and processor.num_audio_tokens == 4
    assert processor.chat_template == load_chat_template("vicuna_v0")
    assert type(processor.video_processor).__name__ == "ChatBridgeVideoProcessor"
    assert type(processor.feature_extractor).__name__ == "BeatsFeatureExtractor"
    assert isinstance(processor.image_processor, ChatBridgeImageProcessor)
    assert processor.image_processor.size == {"height": 32, "width": 32}
    saved = json.loads((tiny_dir / "processor_config.json").read_text())
    assert saved["auto_map"]["AutoProcessor"] == "processing_chatbridge.ChatBridgeProcessor"


def test_every_marker_expands_to_the_model_query_count(tiny, media):
    _, processor = tiny
    text = [
        "###Human: <image> and <audio>.###Assistant:",
        "###Human: <video>.###Human: <image><image>###Assistant:",
        "###Human: no media###Assistant:",
    ]
    red = Image.open(media / "red.png")
    inputs = processor(
        text=text,
        images=[red, str(media / "red.png"), (media / "red.png").read_bytes()],
        videos=[str(media / "clip.mp4")],
        audio=[str(media / "tone.wav")],
        return_tensors="pt",
    )
    assert count(inputs["input_ids"], processor.image_token_id) == [4, 8, 0]
    assert count(inputs["input_ids"], processor.video_token_id) == [0, 4, 0]
    assert count(inputs["input_ids"], processor.audio_token_id) == [4, 0, 0]
    assert inputs["pixel_values"].shape == (3, 3, 32, 32)
    assert inputs["pixel_values_videos"].shape == (1, 4, 3, 32, 32)
    assert inputs["input_features"].shape == (1, 1, 1024, 64)
    assert (inputs["attention_mask"][:, 0] == 0).any() and (inputs["attention_mask"][:, -1] == 1).all()  # left pad


@pytest.mark.parametrize(
    ("text", "media_kwargs", "message"),
    [
        (
            ["<image>", "<image>"],
            {"images": ["missing.png"]},
            r"The total number of <image> tokens in the prompts should be the same as the number of images passed\. "
            r"Found total 2 <image> tokens and 1 images\. Sample 1 has 1 <image> marker",
        ),
        (["<audio>", "plain"], {"audio": ["missing.wav", "missing.wav"]}, "1 audio item\\(s\\) have no <audio>"),
        (
            ["plain", "<video>"],
            {"videos": []},
            r"Found 1 <video> tokens in the text but no videos were passed\. Sample 1 has 1 <video> marker",
        ),
        (["<video>"], {"videos": ["missing.mp4", "missing.mp4"]}, "and 2 videos"),
    ],
)
def test_marker_count_mismatch_names_sample_and_modality_before_decoding(tiny, text, media_kwargs, message):
    _, processor = tiny
    # The files do not exist: reading them first would raise a different error.
    with pytest.raises(ValueError, match=message):
        processor(text=text, **media_kwargs)


def test_missing_image_file_is_named(tiny):
    _, processor = tiny
    with pytest.raises(ValueError, match="'missing.png' does not exist"):
        processor(text=["<image>"], images=["missing.png"])


def test_vicuna_template_one_image_turn_byte_for_byte(tiny):
    _, processor = tiny
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert prompt == "###Human: Given following image: <image>.###Human: What is this?###Assistant:"


def test_vicuna_template_audio_video_turn_byte_for_byte(tiny):
    _, processor = tiny
    content = [{"type": "video"}, {"type": "audio"}, {"type": "text", "text": "What is happening?"}]
    prompt = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
    assert prompt == (
        "###Human: Given following video: <video> and its background audio: <audio>.###"
        "Human: What is happening?###Assistant:"
    )


TWO_TURNS = [
    {"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "What makes this sound?"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "A dog."}]},
    {"role": "user", "content": [{"type": "image"}, {"type": "audio"}, {"type": "text", "text": "And now?"}]},
    {"role": "assistant", "content": "A bird singing."},
]


def test_vicuna_template_two_turns_byte_for_byte(tiny):
    _, processor = tiny
    assert processor.apply_chat_template(TWO_TURNS) == (
        "###Human: Given the following audio: <audio>.###Human: What makes this sound?###Assistant: A dog.###"
        "Human: Given following image: <image> and audio: <audio>.###Human: And now?###Assistant: A bird singing.###"
    )


def test_assistant_mask_covers_exactly_the_answers_and_separators(tiny, media):
    _, processor = tiny
    conversation = [dict(message) for message in TWO_TURNS]
    conversation[0] = {"role": "user", "content": [{"type": "audio", "path": str(media / "tone.wav")}, TWO_TURNS[0]["content"][1]]}
    conversation[2] = {
        "role": "user",
        "content": [
            {"type": "image", "path": str(media / "red.png")},
            {"type": "audio", "path": str(media / "tone.wav")},
            {"type": "text", "text": "And now?"},
        ],
    }
    inputs = processor.apply_chat_template(
        conversation, tokenize=True, return_dict=True, return_assistant_tokens_mask=True, return_tensors="pt"
    )
    ids, mask = inputs["input_ids"][0], inputs["assistant_masks"][0].bool()
    assert processor.tokenizer.decode(ids[mask]) == " A dog.### A bird singing.###"
    runs = torch.diff(torch.cat([torch.tensor([0]), mask.int(), torch.tensor([0])])).nonzero().flatten().view(-1, 2)
    answers = [processor.tokenizer.decode(ids[start:end]) for start, end in runs.tolist()]
    assert answers == [" A dog.###", " A bird singing.###"]
    assert not mask[ids == processor.audio_token_id].any()


def test_chatml_preset_marks_answers(tiny):
    _, processor = tiny
    prompt = processor.apply_chat_template(TWO_TURNS[:2], chat_template=load_chat_template("chatml"))
    assert prompt == (
        "<|im_start|>user\n<audio>What makes this sound?<|im_end|>\n<|im_start|>assistant\nA dog.<|im_end|>\n"
    )


def test_chat_template_output_generates_on_the_tiny_model(tiny, media):
    model, processor = tiny
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "video", "path": str(media / "clip.mp4")},
                {"type": "audio", "path": str(media / "tone.wav")},
                {"type": "text", "text": "What is happening?"},
            ],
        }
    ]
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    answers = processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert len(answers) == 1 and isinstance(answers[0], str)
    assert "###" not in answers[0]


def test_decoding_stops_at_the_separator(tiny):
    _, processor = tiny
    tokenizer = processor.tokenizer
    prompt = tokenizer("###Human: Hi###Assistant:", return_tensors="pt")["input_ids"]
    answer = tokenizer(" red circle###Human: more", add_special_tokens=False, return_tensors="pt")["input_ids"]
    sequence = torch.cat([prompt, answer], dim=1)
    assert processor.batch_decode(answer) == [" red circle"]
    assert processor.post_process_image_text_to_text(sequence, prompt_length=prompt.shape[1]) == [" red circle"]
    assert processor.post_process_image_text_to_text(sequence) == ["###Human: Hi###Assistant: red circle"]


def test_generation_config_stops_at_the_separator(tiny):
    model, processor = tiny
    separator = processor.tokenizer.convert_tokens_to_ids("###")
    assert separator in model.generation_config.eos_token_id


def test_reference_image_preprocessing_is_exact():
    image_processor = ChatBridgeImageProcessor()
    reference = load_file(FIXTURES / "preproc_image.safetensors")
    for name, file in (("gray", "gray_83x120.png"), ("rgb_gradient", "rgb_gradient_97x61.png"), ("rgba", "rgba_150x90.png")):
        pixel_values = image_processor(load_image(str(FIXTURES / "media" / file)), return_tensors="pt")["pixel_values"]
        assert pixel_values.shape == (1, 3, 224, 224)
        assert torch.equal(pixel_values[0, :, ::8, ::8], reference[f"{name}_pixel_values_s8"]), name


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("one_pixel.png", lambda path: Image.new("RGB", (1, 1), "blue").save(path)),
        ("wide.png", lambda path: Image.new("RGB", (4000, 120), "green").save(path)),
        ("cmyk.jpg", lambda path: Image.new("CMYK", (50, 40), (0, 255, 255, 0)).save(path)),
        ("palette.gif", lambda path: Image.new("RGB", (30, 30), "red").convert("P").save(path)),
        ("alpha.png", lambda path: Image.new("RGBA", (30, 20), (255, 0, 0, 10)).save(path)),
        ("grey16.png", lambda path: Image.fromarray(np.full((20, 20), 65535, dtype=np.uint16)).save(path)),
    ],
)
def test_unusual_images_become_rgb_pixel_values(tiny, tmp_path, name, make):
    _, processor = tiny
    path = tmp_path / name
    make(path)
    image = load_image(str(path))
    assert image.mode == "RGB"
    pixel_values = processor(text=["<image>"], images=[str(path)], return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (1, 3, 32, 32)
    assert torch.isfinite(pixel_values).all()


def test_sixteen_bit_grey_keeps_its_brightness(tmp_path):
    Image.fromarray(np.full((4, 4), 32896, dtype=np.uint16)).save(tmp_path / "mid.png")
    assert np.asarray(load_image(str(tmp_path / "mid.png")))[0, 0].tolist() == [128, 128, 128]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("truncated.jpg", lambda: _jpeg(Image.effect_noise((64, 64), 50).convert("RGB"))[:300], "Cannot decode image"),
        ("text.png", lambda: b"this is not an image\n", "not an image file"),
    ],
)
def test_broken_image_files_raise_naming_the_file(tiny, tmp_path, name, content, message):
    _, processor = tiny
    path = tmp_path / name
    path.write_bytes(content())
    with pytest.raises(ValueError, match=message) as error:
        processor(text=["<image>"], images=[str(path)])
    assert name in str(error.value)


def test_arrays_and_tensors_are_images_too(tiny):
    _, processor = tiny
    array = np.full((30, 40, 3), 200, dtype=np.uint8)
    tensor = torch.full((3, 30, 40), 200, dtype=torch.uint8)
    inputs = processor(text=["<image><image>"], images=[array, tensor], return_tensors="pt")
    assert inputs["pixel_values"].shape == (2, 3, 32, 32)
    assert torch.allclose(inputs["pixel_values"][0], inputs["pixel_values"][1])


def test_audio_padding_mask_hides_padded_beats_patches(tmp_path):
    """With `audio_padding_mask`, the audio queries read only the BEATs tokens that hold real frames."""
    model, processor = tiny_chatbridge(audio_padding_mask=True)
    soundfile.write(tmp_path / "short.wav", np.sin(np.arange(8000) / 5.0) * 0.3, 16000)  # 0.5 s: 48 real frames
    features = processor.feature_extractor(str(tmp_path / "short.wav"), return_tensors="pt")
    mask = features["input_features_mask"]
    assert mask.sum() == 48
    bridge = model.model
    with torch.no_grad():
        masked = model.get_audio_features(features["input_features"], mask).pooler_output
        unmasked = model.get_audio_features(features["input_features"]).pooler_output
        # By hand: the Q-Former over only the tokens of the first 3 BEATs time patches (48 frames / 16).
        hidden = bridge.audio_tower(features["input_features"][:, 0]).last_hidden_state
        memory = bridge.audio_projection(bridge.audio_layernorm(hidden))[:, : 3 * 4]
        expected = bridge._query(memory, bridge.audio_query_tokens).pooler_output
    assert torch.allclose(masked, expected, atol=1e-5)
    assert not torch.allclose(masked, unmasked, atol=1e-4)


def test_placeholder_counts_for_serving_engines(tiny):
    _, processor = tiny
    counts = processor._get_num_multimodal_tokens(
        image_sizes=[(480, 640), (32, 32)], video_sizes=[(8, 64, 64)], audio_lengths=[16000, 480000]
    )
    assert counts.num_image_tokens == [4, 4] and counts.num_image_patches == [1, 1]
    assert counts.num_video_tokens == [4]
    assert counts.num_audio_tokens == [4, 4]
    # The counts are the placeholders the processor really writes.
    inputs = processor(text="<image><video><audio>", images=[np.zeros((32, 32, 3), np.uint8)],
                       videos=[np.zeros((4, 32, 32, 3), np.uint8)], audio=[np.zeros(16000, np.float32)],
                       sampling_rate=16000)
    for modality, expected in (("image", 4), ("video", 4), ("audio", 4)):
        token_id = getattr(processor, f"{modality}_token_id")
        assert sum(1 for token in inputs["input_ids"][0] if token == token_id) == expected


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares `width` x `height` RGB pixels and holds none: what a decompression bomb shows before
    decoding."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_images_over_the_pixel_cap_are_refused_before_decoding(tiny, tmp_path):
    _, processor = tiny
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_only(13000, 13000))
    with pytest.raises(ValueError, match=r"'.*bomb\.png' is 13000x13000 = 169,000,000 pixels, more than max_image_pix"):
        processor(text="<image>", images=[str(bomb)])
    small = tmp_path / "small.png"
    Image.new("RGB", (32, 32), (10, 20, 30)).save(small)
    assert processor(text="<image>", images=[str(small)], return_tensors="pt")["pixel_values"].shape == (1, 3, 32, 32)
    processor.image_processor.max_image_pixels = 1000  # a setting, saved with the processor
    try:
        with pytest.raises(ValueError, match=r"32x32 = 1,024 pixels, more than max_image_pixels \(1,000\)"):
            processor(text="<image>", images=[str(small)])
    finally:
        processor.image_processor.max_image_pixels = type(processor.image_processor).max_image_pixels
