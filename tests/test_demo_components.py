"""The demo's frozen parts: the vision tower's targets (what lies under each patch of a miniature picture) and the
loop that pretrains the parts."""

import numpy as np
import pytest
import torch
from transformers import Blip2VisionConfig, Blip2VisionModel, LlamaConfig, LlamaForCausalLM

from transformers_chatbridge.data import miniature
from transformers_chatbridge.data.packing import packed_batch
from transformers_chatbridge.demo.components import (
    IMAGE_LABELS,
    PATCH_LABELS,
    PATCH_SIZE,
    PretrainingSettings,
    _AttributeHeads,
    _train,
    patch_targets,
    vision_examples,
)

GRID = miniature.IMAGE_SIZE // PATCH_SIZE
NOTHING = [len(values) for values in PATCH_LABELS.values()]


def _instances(modality: str, count: int = 12):
    rng = np.random.default_rng(3)
    return [miniature.draw_instance(modality, index, rng) for index in range(count)]


def _label(name: str, value) -> int:
    return PATCH_LABELS[name].index(value)


@pytest.mark.parametrize("modality", ["image", "video", "audio-video"])
def test_mark_masks_cover_the_drawn_colour(modality):
    """Every mask lies where its colour is drawn: the masks and the pictures come from the same layout."""
    for attributes, parameters in _instances(modality):
        pictures = (
            [miniature.render_image(attributes, parameters)]
            if modality == "image"
            else miniature.render_video(modality, attributes, parameters)
        )
        for pixels, marks in zip(pictures, miniature.picture_marks(modality, attributes, parameters), strict=True):
            for mark in marks:
                mask = miniature.mark_mask(mark)
                assert mask.sum() > 10, mark
                if mark.text is not None:
                    # black, anti-aliased letters on a light background
                    assert pixels[mask].mean() < np.mean(parameters["background"]) - 60, mark
                    continue
                colour = np.array(miniature.COLOURS[mark.colour]) + (50 if mark.flashing else 0)
                distance = np.abs(pixels[mask].astype(int) - np.clip(colour, 0, 255)).max(axis=-1)
                assert np.median(distance) <= 12, mark


def test_audio_video_frames_label_both_shapes_with_their_own_colours():
    """A frame shows a moving (sometimes flashing) shape and a still one; each shape's patches name that shape."""
    for attributes, parameters in _instances("audio-video"):
        for marks in miniature.picture_marks("audio-video", attributes, parameters):
            targets = np.array(patch_targets(marks))
            assert targets.shape == (GRID * GRID, len(PATCH_LABELS))
            labelled = {(int(shape), int(colour)) for shape, colour, _ in targets if shape >= 0 and shape < NOTHING[0]}
            mover = (_label("shape", attributes["shape"]), _label("colour", attributes["colour"]))
            still = (_label("shape", attributes["still_shape"]), _label("colour", attributes["still_colour"]))
            assert labelled == {mover, still}
            assert (targets[:, 2][targets[:, 2] >= 0] == NOTHING[2]).all()  # no word in a clip


def test_word_patches_and_background():
    """The printed word's patches carry the word and most patches of an image show nothing."""
    for attributes, parameters in _instances("image"):
        marks = miniature.picture_marks("image", attributes, parameters)[0]
        targets = np.array(patch_targets(marks))
        words = set(targets[:, 2][(targets[:, 2] >= 0) & (targets[:, 2] < NOTHING[2])].tolist())
        assert words == ({_label("word", attributes["word"])} if attributes["word"] else set())
        assert (targets == NOTHING).all(axis=1).sum() > GRID * GRID // 2
    assert patch_targets([]) == [NOTHING] * GRID * GRID


def test_patches_a_shape_barely_touches_are_left_out():
    """A 10 px square centred at (12, 12) covers pixels 7-17: 64 pixels of patch (1, 1), 8 or 16 of its edge
    neighbours, 1 to 4 of its corner neighbours (below `PATCH_COVERAGE`: ignored), none of the rest."""
    targets = np.array(patch_targets([miniature.Mark("square", "red", (12, 12), 10)])).reshape(GRID, GRID, -1)
    square = [_label("shape", "square"), _label("colour", "red"), NOTHING[2]]
    for row, col in [(1, 1), (0, 1), (1, 0), (1, 2), (2, 1)]:
        assert targets[row, col].tolist() == square
    for row, col in [(0, 0), (0, 2), (2, 0), (2, 2)]:
        assert targets[row, col].tolist() == [-100] * 3
    assert (targets[3:] == NOTHING).all() and (targets[:, 3:] == NOTHING).all()


def test_vision_examples_leave_pooled_labels_out_for_two_shape_frames():
    pixels, targets = vision_examples(32, seed=0)
    frames = miniature.VIDEO_FRAMES
    assert pixels.shape[0] == 32 + 4 * frames + 4 * frames
    assert targets["patches"].shape == (pixels.shape[0], GRID * GRID, len(PATCH_LABELS))
    assert (targets["pooled"][-4 * frames :] == -100).all()  # audio-video frames: two shapes, no single answer
    assert (targets["pooled"][:32, 0] >= 0).all()


def test_pretraining_learns_and_leaves_the_part_as_it_found_it():
    """Where the CPU has native bf16 the loop trains under autocast with eager attention; either way the part comes
    out in fp32 with the attention it had, and it has learned (the loss falls on a fixed batch)."""
    config = Blip2VisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
        image_size=miniature.IMAGE_SIZE, patch_size=PATCH_SIZE, initializer_range=0.02,
    )  # fmt: skip
    torch.manual_seed(0)
    classifier = _AttributeHeads(Blip2VisionModel(config), 32, IMAGE_LABELS, PATCH_LABELS)
    pixels, targets = vision_examples(16, seed=0)
    implementation = classifier.encoder.config._attn_implementation

    def loss_of_batch(indices):
        return classifier.loss({key: value[indices] for key, value in targets.items()}, pixel_values=pixels[indices])

    everything = list(range(len(pixels)))
    with torch.no_grad():
        before = loss_of_batch(everything).item()
    settings = PretrainingSettings(steps=30, batch_size=8, learning_rate=3e-3, hidden_size=32, num_layers=1)
    _train(classifier, loss_of_batch, len(pixels), settings, lambda step, loss: None, seed=0)
    with torch.no_grad():
        after = loss_of_batch(everything).item()
    assert after < 0.7 * before
    assert classifier.encoder.config._attn_implementation == implementation
    assert {parameter.dtype for parameter in classifier.parameters()} == {torch.float32}



def test_a_packed_batch_gives_the_padded_batchs_loss_and_gradients():
    """The language model's pretraining packs each batch (no padding waste): same loss and gradients as the padded
    batch, in fewer, full rows."""
    rng = np.random.default_rng(0)
    examples = []
    for length in rng.integers(4, 40, size=12):
        ids = rng.integers(3, 50, size=length).tolist()
        labels = [-100 if position < length // 2 else token for position, token in enumerate(ids)]  # a prompt first
        examples.append((ids, labels))
    config = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64, pad_token_id=0)  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)

    def loss_and_gradients(**batch):
        model.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        return loss.item(), [parameter.grad.clone() for parameter in model.parameters()]

    width = max(len(ids) for ids, _ in examples)
    padded = {
        "input_ids": torch.tensor([ids + [0] * (width - len(ids)) for ids, _ in examples]),
        "attention_mask": torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in examples]),
        "labels": torch.tensor([labels + [-100] * (width - len(labels)) for _, labels in examples]),
    }
    packed = packed_batch(examples, pad_token_id=0)
    assert packed["input_ids"].shape[1] == width and packed["input_ids"].shape[0] < len(examples)
    assert sorted(packed["input_ids"][packed["labels"] != -100].tolist()) == sorted(
        label for _, labels in examples for label in labels if label != -100
    )
    loss, gradients = loss_and_gradients(**padded)
    packed_loss, packed_gradients = loss_and_gradients(**packed)
    assert packed_loss == pytest.approx(loss, rel=1e-5)
    for gradient, packed_gradient in zip(gradients, packed_gradients):
        torch.testing.assert_close(packed_gradient, gradient, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="Example 1 of the batch starts on a supervised token"):
        packed_batch([examples[0], (examples[1][0], examples[1][0])], pad_token_id=0)
