"""`ChatBridgeDataCollator`: chat rows -> one training batch (input ids, labels on the answers, media tensors).

The collator reads the media files itself, in `__call__`, so a `DataLoader(..., collate_fn=collator,
num_workers=N)` decodes images, videos and audio in its worker processes. The processor runs once per batch.
"""

import contextlib
import logging
from dataclasses import dataclass, field

import torch

from ..media_cache import DecodedMediaCache
from ..modalities import MODALITIES
from .packing import IGNORE_INDEX, packed_batch, packing_layout
from .rows import row_messages

logger = logging.getLogger(__name__)


def _row_name(index: int, row: dict) -> str:
    row_id = row.get("id") if isinstance(row, dict) else None
    return f"row {index}" + (f" (id {row_id!r})" if row_id is not None else "")


@dataclass
class ChatBridgeDataCollator:
    """Collate chat rows (see `transformers_chatbridge.data.rows`) into a ChatBridge training batch.

    Args:
        processor (`ChatBridgeProcessor`): renders the chat template, tokenizes, expands the media markers into
            placeholder tokens and reads the media.
        max_length (`int`, *optional*): the longest sequence (placeholder tokens included) a row may have. Rows are
            never truncated, since a cut could split a run of placeholder tokens or drop an answer: a longer row
            raises a `ValueError` naming it, or, with `skip_too_long=True`, is dropped from its batch (logged and
            counted in `num_skipped`). Lengths are measured on the rendered text before any media is read.
        skip_too_long (`bool`, defaults to `False`): drop too-long rows instead of raising. A batch whose rows are
            all too long raises.
        padding_side (`str`, defaults to `"right"`): training pads on the right, as TRL's collators do: a padded
            batch carries no `position_ids`, so with right padding every row's tokens keep the positions
            they have alone (positions 0..n-1), exactly as at inference on that row; left padding also works with
            the model but shifts the positions of the shorter rows.
        pack (`bool`, defaults to `False`): lay the batch's rows end to end in rows as wide as its longest
            (`transformers_chatbridge.data.packing`), with `position_ids` restarting at each and no attention mask,
            instead of padding each: the same loss on fewer tokens where attention has no variable-length kernel.
            The rows are reordered before their media are read, so media and placeholders stay in the same order.
        media_cache_bytes (`int`, defaults to 0): keep decoded image and video files in memory up to this many
            bytes and reuse them when a later batch reads the same file with the same frames
            (`transformers_chatbridge.media_cache`): training reads each file once per epoch and, in MULTIS-style
            data, once per task about it. The batches are exactly those without it. 0 turns it off.
        processor_kwargs (`dict`, *optional*): more processor arguments, e.g.
            `{"videos_kwargs": {"frame_sampling": "segment_random"}, "audio_kwargs": {"segment_sampling": "random"}}`
            for training-time sampling.

    Returns (from `__call__`) a dict of tensors: `input_ids`, `attention_mask`, `labels` (the token ids of each
    answer and of the `###` separator that ends it; -100 on prompts, placeholder tokens and padding) and the media
    tensors the processor makes for the batch (`pixel_values`, `pixel_values_videos`, `input_features`,
    `input_features_mask`), ready for `model(**batch)`; packed, `position_ids` and `use_cache` in place of
    `attention_mask`.

    `num_skipped` counts the rows dropped by this collator object and `skipped_rows` lists them (their `id`, else
    their index in the batch); in `DataLoader` workers each worker holds its own copy, so there the logged warnings
    are the record.
    """

    processor: object
    max_length: int | None = None
    skip_too_long: bool = False
    padding_side: str = "right"
    pack: bool = False
    media_cache_bytes: int = 0
    processor_kwargs: dict | None = None
    num_skipped: int = field(default=0, init=False)
    skipped_rows: list = field(default_factory=list, init=False)
    media_cache: DecodedMediaCache | None = field(default=None, init=False)

    def __post_init__(self):
        if self.padding_side not in ("left", "right"):
            raise ValueError(f"`padding_side` must be 'left' or 'right', got {self.padding_side!r}.")
        if self.pack and self.padding_side != "right":
            raise ValueError("Packed batches are built from right-padded rows: pass padding_side='right' with pack=True.")
        if self.max_length is not None and self.max_length < 1:
            raise ValueError(f"`max_length` must be a positive number of tokens, got {self.max_length}.")
        if self.media_cache_bytes < 0:
            raise ValueError(f"`media_cache_bytes` must be >= 0, got {self.media_cache_bytes}.")
        if self.media_cache_bytes:
            self.media_cache = DecodedMediaCache(self.media_cache_bytes)

    def sequence_lengths(self, conversations: list[list[dict]]) -> list[int]:
        """Token count of each conversation, placeholders expanded, from the rendered text only (no media read)."""
        processor = self.processor
        texts = processor.apply_chat_template(conversations, tokenize=False)
        replacements = {
            modality: [
                getattr(processor, f"replace_{modality}_token")({}, index)
                for index in range(sum(text.count(getattr(processor, f"{modality}_token")) for text in texts))
            ]
            for modality in MODALITIES
        }
        expanded, _ = processor.get_text_with_replacements(
            list(texts), replacements["image"], replacements["video"], replacements["audio"]
        )
        tokenizer = processor.tokenizer
        starts_with_bos = tokenizer.bos_token is not None and texts and texts[0].startswith(tokenizer.bos_token)
        encoded = tokenizer(expanded, add_special_tokens=not starts_with_bos)["input_ids"]
        return [len(ids) for ids in encoded]

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        if not examples:
            raise ValueError("ChatBridgeDataCollator got an empty batch.")
        conversations = [row_messages(row) for row in examples]
        lengths = self.sequence_lengths(conversations) if self.max_length is not None or self.pack else None
        if self.max_length is not None:
            kept = []
            for index, (row, length) in enumerate(zip(examples, lengths)):
                if length <= self.max_length:
                    kept.append(index)
                    continue
                message = (
                    f"{_row_name(index, row)} of the batch is {length} tokens long, over max_length={self.max_length}"
                )
                if not self.skip_too_long:
                    raise ValueError(
                        f"{message}; rows are not truncated (a cut would split placeholder tokens or drop an answer). "
                        "Shorten or split the row, raise max_length, or pass skip_too_long=True."
                    )
                self.num_skipped += 1
                row_id = row.get("id") if isinstance(row, dict) else None
                self.skipped_rows.append(index if row_id is None else row_id)
                logger.warning("Skipping %s (%d skipped so far).", message, self.num_skipped)
            if not kept:
                raise ValueError(
                    f"Every row of the batch ({len(examples)}) is longer than max_length={self.max_length}; "
                    "nothing is left to train on."
                )
            conversations = [conversations[index] for index in kept]
            lengths = [lengths[index] for index in kept]
        if self.pack:
            layout = packing_layout(lengths)
            conversations = [conversations[index] for row in layout for index in row]
            lengths = [lengths[index] for row in layout for index in row]

        with self.media_cache.active() if self.media_cache is not None else contextlib.nullcontext():
            inputs = self.processor.apply_chat_template(
                conversations,
                tokenize=True,
                return_dict=True,
                return_assistant_tokens_mask=True,
                return_tensors="pt",
                processor_kwargs={"padding": True, "padding_side": self.padding_side, **(self.processor_kwargs or {})},
            )
        batch = {key: value for key, value in inputs.items() if key != "assistant_masks"}
        input_ids = batch["input_ids"]
        if self.max_length is not None and input_ids.shape[1] > self.max_length:
            raise RuntimeError(
                f"The batch is {input_ids.shape[1]} tokens long although every row was measured at most "
                f"max_length={self.max_length}: the length estimate disagrees with the processor."
            )
        labels = input_ids.clone()
        labels[inputs["assistant_masks"] == 0] = IGNORE_INDEX
        labels[batch["attention_mask"] == 0] = IGNORE_INDEX
        for token_id in (self.processor.image_token_id, self.processor.video_token_id, self.processor.audio_token_id):
            labels[input_ids == token_id] = IGNORE_INDEX
        batch["labels"] = labels
        return self._packed(batch, lengths, [len(row) for row in layout]) if self.pack else batch

    def _packed(self, batch: dict[str, torch.Tensor], lengths: list[int], row_sizes: list[int]) -> dict:
        """The padded batch, its rows already in packing order, packed: the first `row_sizes[0]` rows into one, and
        so on."""
        found = batch.pop("attention_mask").sum(dim=1).tolist()
        if found != lengths:
            raise RuntimeError(
                f"The processor made rows of {found} tokens where {lengths} were measured: the length estimate "
                "disagrees with the processor, so the rows cannot be packed as planned."
            )
        layout, start = [], 0
        for size in row_sizes:
            layout.append(list(range(start, start + size)))
            start += size
        examples = [
            (ids[:length].tolist(), labels[:length].tolist())
            for ids, labels, length in zip(batch.pop("input_ids"), batch.pop("labels"), lengths)
        ]
        return {**batch, **packed_batch(examples, self.processor.tokenizer.pad_token_id, layout)}


__all__ = ["IGNORE_INDEX", "ChatBridgeDataCollator"]
