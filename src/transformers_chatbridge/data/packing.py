"""Packed batches: a batch's examples end to end in rows as wide as the longest one, instead of one padded row each.

Written here because TRL's `padding_free` flattens a batch into one sequence for variable-length attention kernels
(FlashAttention) and refuses media rows; where attention has no such kernel (the CPU, SDPA) one long row would cost
more than the padding it saves. Rows as wide as the batch's longest example keep each attention block as small as the
padded batch's. Transformers reads a packed row from its `position_ids`: without an attention mask and a cache, each
restart at 0 begins a new sequence, and attention stays within it.
"""

from collections.abc import Sequence

import torch

IGNORE_INDEX = -100


def packing_layout(lengths: Sequence[int]) -> list[list[int]]:
    """The examples of each row, by index: first fit, longest first, in rows as wide as the longest example."""
    width = max(lengths)
    rows: list[list[int]] = []
    free: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda index: -lengths[index]):
        row = next((row for row, space in enumerate(free) if space >= lengths[index]), len(rows))
        if row == len(rows):
            rows.append([])
            free.append(width)
        rows[row].append(index)
        free[row] -= lengths[index]
    return rows


def packed_batch(
    examples: Sequence[tuple[list[int], list[int]]], pad_token_id: int, layout: list[list[int]] | None = None
) -> dict:
    """(token ids, labels) examples packed into rows (`layout`, by default `packing_layout` of their lengths), the
    model arguments for them: `input_ids`, `labels`, `position_ids` counting from 0 at each example, and
    `use_cache=False` (with a cache transformers does not split a row into its sequences). The loss is the padded
    batch's, on fewer tokens, as long as every example starts on an unsupervised token: otherwise the end of the
    example before it would be trained to predict it. Padding left at a row's end is a sequence of its own."""
    supervised_start = next((index for index, (_, labels) in enumerate(examples) if labels[0] != IGNORE_INDEX), None)
    if supervised_start is not None:
        raise ValueError(f"Example {supervised_start} of the batch starts on a supervised token: packed, it would be "
                         "predicted from the end of the example before it.")  # fmt: skip
    layout = packing_layout([len(ids) for ids, _ in examples]) if layout is None else layout
    width = max(len(ids) for ids, _ in examples)
    batch: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "position_ids": []}
    for row in layout:
        space = width - sum(len(examples[index][0]) for index in row)
        batch["input_ids"].append([token for index in row for token in examples[index][0]] + [pad_token_id] * space)
        batch["labels"].append([label for index in row for label in examples[index][1]] + [IGNORE_INDEX] * space)
        batch["position_ids"].append([p for index in row for p in range(len(examples[index][0]))] + list(range(space)))
    return {**{key: torch.tensor(value) for key, value in batch.items()}, "use_cache": False}


__all__ = ["packed_batch", "packing_layout"]
