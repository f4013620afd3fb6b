"""Chat rows and ChatBridgeDataCollator: labels on the answers, mixed batches, lengths, workers and SFTTrainer."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset, Features, Value

from transformers_chatbridge.data import CHAT_ROW_FEATURES, IGNORE_INDEX, ChatBridgeDataCollator, make_row, row_messages
from transformers_chatbridge.testing import tiny_chatbridge

from sample_media import write_mp4, write_sample_media, write_tone


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = write_sample_media(tmp_path_factory.mktemp("collator-media"))
    return {"image": str(folder / "red.png"), "video": str(folder / "clip.mp4"), "audio": str(folder / "tone.wav")}


def turn(media_types, question, answer):
    content = [*({"type": kind} for kind in media_types), {"type": "text", "text": question}]
    return [{"role": "user", "content": content}, {"role": "assistant", "content": [{"type": "text", "text": answer}]}]


@pytest.fixture(scope="module")
def rows(media):
    """name -> (row, labelled runs expected: each answer plus its `###`, as the token boundaries fall)."""
    image, video, audio = media["image"], media["video"], media["audio"]
    return {
        "image": (
            make_row(turn(["image"], "What is in the picture?", "A red circle."), images=[image]),
            [" A red circle.###"],
        ),
        "video": (make_row(turn(["video"], "What is it?", "A dog runs."), videos=[video]), [" A dog runs.###"]),
        # "Birds" does not merge with the space before it in the tiny tokenizer: the answer span starts after it.
        "audio": (
            make_row(turn(["audio"], "What sound does this make?", "Birds are singing."), audios=[audio]),
            [" Birds are singing.###"],
        ),
        "video+audio": (
            make_row(turn(["video", "audio"], "Describe it.", "A dog runs and barks."), videos=[video], audios=[audio]),
            [" A dog runs and barks.###"],
        ),
        "two turns": (
            make_row(
                turn(["audio"], "What makes this sound?", "A dog.")
                + turn(["image", "audio"], "And now?", "A bird singing."),
                images=[image],
                audios=[audio, audio],
            ),
            [" A dog.###", " A bird singing.###"],
        ),
        "text": (make_row(turn([], "Hi", "Hello there.")), [" Hello there.###"]),
    }


def labelled_runs(tokenizer, input_ids, labels):
    mask = labels != IGNORE_INDEX
    assert torch.equal(labels[mask], input_ids[mask])
    edges = torch.diff(torch.cat([torch.tensor([0]), mask.int(), torch.tensor([0])])).nonzero().flatten().view(-1, 2)
    return [tokenizer.decode(input_ids[start:end]) for start, end in edges.tolist()]


# --- rows ------------------------------------------------------------------------------------------------------------


def test_rows_round_trip_through_datasets(rows, media):
    partial = {"messages": turn(["image"], "Q?", "A.")[:1], "images": [media["image"]]}  # no videos/audios, no keys
    listed = [row for row, _ in rows.values()] + [partial]
    dataset = Dataset.from_list(listed, features=CHAT_ROW_FEATURES)
    assert dataset.features == CHAT_ROW_FEATURES
    for original, stored in zip(listed, dataset):
        assert row_messages(stored) == row_messages(original)
    # A key left out of a content item, or a media column left out of a row, reads back as None.
    assert dataset[-1]["videos"] is None
    assert dataset[-1]["messages"][0]["content"][0] == {"type": "image", "text": None, "path": None}
    assert row_messages(dataset[-1])[0]["content"][0] == {"type": "image", "path": media["image"]}


def test_row_messages_fill_paths_in_order_and_keep_inline_paths(rows, media):
    messages = row_messages(rows["two turns"][0])
    assert messages[0]["content"][0] == {"type": "audio", "path": media["audio"]}
    assert messages[2]["content"][:2] == [
        {"type": "image", "path": media["image"]},
        {"type": "audio", "path": media["audio"]},
    ]
    assert messages[1] == {"role": "assistant", "content": [{"type": "text", "text": "A dog."}]}
    content = [{"type": "video", "path": "v.mp4"}, {"type": "text", "text": "Q"}]
    inline = {"messages": [{"role": "user", "content": content}]}
    assert row_messages(inline) == inline["messages"]


def test_make_row_names_every_count_mismatch():
    mismatch = r"1 image item\(s\) in messages but 0 path\(s\) in `images`.*0 audio item\(s\) in messages but 1"
    with pytest.raises(ValueError, match=mismatch):
        make_row(turn(["image"], "Q", "A"), audios=["a.wav"])
    with pytest.raises(ValueError, match="no source"):
        row_messages({"messages": turn(["video"], "Q", "A"), "images": None, "videos": None, "audios": None})


# --- collator --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["image", "video", "audio", "video+audio", "two turns", "text"])
def test_labels_cover_exactly_the_answers_and_separators(tiny, rows, name):
    _, processor = tiny
    row, expected = rows[name]
    batch = ChatBridgeDataCollator(processor)([row])
    assert labelled_runs(processor.tokenizer, batch["input_ids"][0], batch["labels"][0]) == expected


def test_mixed_batch_collates_with_media_in_order(tiny, rows, media):
    _, processor = tiny
    # The last row carries its path inline, without media columns.
    inline = {
        "messages": [
            {"role": "user", "content": [{"type": "image", "path": media["image"]}, {"type": "text", "text": "Q?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "A red circle."}]},
        ]
    }
    examples = [row for row, _ in rows.values()] + [inline]
    collator = ChatBridgeDataCollator(processor)
    batch = collator(examples)
    media_keys = {"pixel_values", "pixel_values_videos", "input_features", "input_features_mask"}
    assert set(batch) == {"input_ids", "attention_mask", "labels", *media_keys}
    assert batch["pixel_values"].shape == (3, 3, 32, 32)  # image row, second turn of the two-turn row, inline row
    assert batch["pixel_values_videos"].shape == (2, 4, 3, 32, 32)
    assert batch["input_features"].shape[0] == batch["input_features_mask"].shape[0] == 4
    ids, labels, attention = batch["input_ids"], batch["labels"], batch["attention_mask"]
    for token_id in (processor.image_token_id, processor.video_token_id, processor.audio_token_id):
        assert (labels[ids == token_id] == IGNORE_INDEX).all()
    assert (ids == processor.image_token_id).sum() == 3 * processor.num_image_tokens
    assert (labels[attention == 0] == IGNORE_INDEX).all() and (attention == 0).any()
    assert (attention[:, 0] == 1).all()  # right padding
    expected = [runs for _, runs in rows.values()] + [[" A red circle.###"]]
    assert [labelled_runs(processor.tokenizer, i, l) for i, l in zip(ids, labels)] == expected
    # The text-only length estimate used for max_length is exact.
    assert collator.sequence_lengths([row_messages(row) for row in examples]) == attention.sum(1).tolist()


def test_loss_is_finite_and_backward_reaches_the_trainable_parameters(rows):
    model, processor = tiny_chatbridge()
    trainable = model.set_training_stage("instruction")
    batch = ChatBridgeDataCollator(processor)([row for row, _ in rows.values()])
    loss = model(**batch).loss
    assert torch.isfinite(loss)
    loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    assert grads and set(grads) <= set(trainable)
    assert any(name.startswith("qformer") or "query" in name for name in grads)


def _segments(packed) -> list[tuple[int, int, int]]:
    """(row, start, end) of each sequence of a packed batch, padding included (positions restart at 0 at each)."""
    segments = []
    for row, positions in enumerate(packed["position_ids"].tolist()):
        starts = [k for k, p in enumerate(positions) if p == 0] + [len(positions)]
        segments += [(row, a, b) for a, b in zip(starts, starts[1:])]
    return segments


def test_a_packed_batch_gives_the_padded_batchs_loss_and_gradients_with_media_in_order(media, tmp_path):
    """Packed, the rows are reordered (longest first) before their media are read: every item still meets its own
    placeholders, so loss and gradients equal the padded batch's, in fewer rows."""
    high = str(write_tone(tmp_path / "high.wav", frequency=1760.0))
    dark = str(write_mp4(tmp_path / "dark.mp4", [np.full((32, 32, 3), 255 - 20 * k, dtype=np.uint8) for k in range(12)]))
    blue = str(Path(media["image"]).with_name("blue.png"))
    examples = [
        make_row(turn(["image"], "Colour?", "Red."), images=[media["image"]]),
        make_row(turn(["video", "audio"], "Describe the clip and its sound in detail.", "Light grows and a tone "
                      "plays all along, steady and clear."), videos=[media["video"]], audios=[high]),  # fmt: skip
        make_row(turn(["audio"], "What sound?", "A tone.") + turn(["image", "audio"], "And now?", "Blue, higher."),
                 images=[blue], audios=[media["audio"], high]),  # fmt: skip
        make_row(turn([], "Hi", "Hello there.")),
        make_row(turn(["video"], "What happens?", "It darkens."), videos=[dark]),
        make_row(turn(["image"], "Which colour is the picture?", "Blue."), images=[blue]),
    ]
    model, processor = tiny_chatbridge()
    model.set_training_stage("instruction")
    model.eval()  # no dropout: the two batches must see the same function

    def loss_and_gradients(batch):
        model.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    padded = ChatBridgeDataCollator(processor)(examples)
    packed = ChatBridgeDataCollator(processor, pack=True)(examples)
    assert "attention_mask" not in packed and packed["use_cache"] is False
    assert packed["input_ids"].shape[1] == padded["input_ids"].shape[1]
    assert packed["input_ids"].shape[0] < len(examples)
    assert (packed["position_ids"] == 0).sum() >= len(examples)  # each example restarts its positions
    loss, gradients = loss_and_gradients(padded)
    packed_loss, packed_gradients = loss_and_gradients(packed)
    assert packed_loss == pytest.approx(loss, rel=1e-5)
    assert gradients.keys() == packed_gradients.keys()
    for name, gradient in gradients.items():
        torch.testing.assert_close(packed_gradients[name], gradient, rtol=1e-4, atol=1e-6, msg=name)
    # Each example's embeddings, its media features included, are the same packed as padded.
    media_keys = ("pixel_values", "pixel_values_videos", "input_features", "input_features_mask")

    def embedded_examples(batch, segments):
        with torch.no_grad():
            embeds, _ = model.model.embed_inputs(batch["input_ids"], **{key: batch[key] for key in media_keys})
        return {tuple(batch["input_ids"][row, a:b].tolist()): embeds[row, a:b] for row, a, b in segments}

    lengths = padded["attention_mask"].sum(1).tolist()
    by_ids = embedded_examples(padded, [(row, 0, length) for row, length in enumerate(lengths)])
    packed_by_ids = embedded_examples(packed, _segments(packed))
    assert by_ids.keys() <= packed_by_ids.keys()
    for ids, embeds in by_ids.items():
        torch.testing.assert_close(packed_by_ids[ids], embeds, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="padding_side='right'"):
        ChatBridgeDataCollator(processor, pack=True, padding_side="left")


def test_too_long_row_raises_before_reading_media_or_is_skipped(tiny, rows, caplog):
    _, processor = tiny
    short = rows["text"][0]  # 17 tokens
    # 30 tokens; its file does not exist, so measuring it after reading the media would raise another error.
    missing = {**make_row(turn(["video"], "What is it?", "A dog runs."), videos=["missing.mp4"]), "id": "clip-7"}
    with pytest.raises(ValueError, match=r"row 1 \(id 'clip-7'\) of the batch is 30 tokens long, over max_length=20"):
        ChatBridgeDataCollator(processor, max_length=20)([short, missing])
    collator = ChatBridgeDataCollator(processor, max_length=20, skip_too_long=True)
    with caplog.at_level(logging.WARNING, logger="transformers_chatbridge.data.collator"):
        batch = collator([short, missing, short])
    assert batch["input_ids"].shape[0] == 2 and "pixel_values_videos" not in batch
    assert collator.num_skipped == 1 and collator.skipped_rows == ["clip-7"]
    assert "Skipping row 1 (id 'clip-7')" in caplog.text
    with pytest.raises(ValueError, match="Every row of the batch"):
        collator([missing])
    assert collator.num_skipped == 2
    # A row exactly max_length long is kept.
    assert ChatBridgeDataCollator(processor, max_length=17)([short])["input_ids"].shape == (1, 17)


def test_dataloader_with_two_workers_decodes_in_the_workers(tiny, rows):
    _, processor = tiny
    features = Features({**CHAT_ROW_FEATURES, "id": Value("string")})
    listed = [{**row, "id": f"{name}-{copy}"} for copy in range(2) for name, (row, _) in rows.items()]
    dataset = Dataset.from_list(listed, features=features)
    collator = ChatBridgeDataCollator(processor)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, collate_fn=collator, num_workers=2)
    batches = list(loader)
    assert [batch["input_ids"].shape[0] for batch in batches] == [4, 4, 4]
    assert sum(batch["pixel_values_videos"].shape[0] for batch in batches if "pixel_values_videos" in batch) == 4
    assert all((batch["labels"] != IGNORE_INDEX).any(dim=1).all() for batch in batches)


def test_sft_trainer_trains_the_trainable_parameters_only(rows, tmp_path):
    from trl import SFTConfig, SFTTrainer

    model, processor = tiny_chatbridge()
    trainable = set(model.set_training_stage("instruction"))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    listed = [row for row, _ in rows.values()] + [rows["image"][0], rows["video+audio"][0]]  # 8 rows
    dataset = Dataset.from_list(listed, features=CHAT_ROW_FEATURES)
    args = SFTConfig(
        output_dir=str(tmp_path),
        max_steps=3,
        per_device_train_batch_size=2,
        learning_rate=1e-3,
        report_to=[],
        remove_unused_columns=False,
        dataset_kwargs={"skip_prepare_dataset": True},
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
    )
    collator = ChatBridgeDataCollator(processor)
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=dataset, data_collator=collator, processing_class=processor
    )
    result = trainer.train()
    assert result.global_step == 3 and np.isfinite(result.training_loss)
    changed = {name for name, p in model.named_parameters() if not torch.equal(p.detach(), before[name])}
    assert changed and changed <= trainable
    assert all(not p.requires_grad for name, p in model.named_parameters() if name not in trainable)
