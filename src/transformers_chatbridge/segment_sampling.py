"""The original's segment rule, shared by video frames and audio fbank slices.

Items are cut into `n` contiguous groups and one item is kept per group: the lower middle at evaluation, a random
one in training.
"""

import numpy as np
import torch


def segment_groups(length: int, n: int) -> list[range]:
    """Cut `length` items into `n` contiguous groups of positions, the original's segment rule.

    The item list is first padded with its last item up to `n` items, so there are max(length, n) positions and
    positions >= `length` stand for the last item (map a position p to the item min(p, length - 1)). Group sizes
    differ by at most one and the first (positions mod n) groups are the longer ones. Shared by video frames and
    audio fbank slices (the audio side always has at least `n` slices, so no padding happens there).
    """
    if length < 1 or n < 1:
        raise ValueError(f"segment_groups needs length >= 1 and n >= 1, got length={length}, n={n}")
    positions = max(length, n)
    size, longer = divmod(positions, n)
    groups, start = [], 0
    for g in range(n):
        stop = start + size + (1 if g < longer else 0)
        groups.append(range(start, stop))
        start = stop
    return groups


def segment_indices(
    length: int,
    n: int,
    pick: str = "middle",
    generator: torch.Generator | np.random.Generator | None = None,
) -> list[int]:
    """One item index per `segment_groups` group: the lower middle (`pick="middle"`, position ceil(size/2) - 1 of
    the group, evaluation) or a uniformly random member (`pick="random"`, training). Always returns `n` indices
    (short inputs repeat their last item).

    Random picks use `torch.randint(size, (1,), generator=generator)` per group (the global torch RNG when
    `generator` is None, so `torch.manual_seed` / `transformers.set_seed` make them reproducible); a numpy
    `Generator` is accepted too.
    """
    if pick not in ("middle", "random"):
        raise ValueError(f"pick must be 'middle' or 'random', got {pick!r}")
    chosen = []
    for group in segment_groups(length, n):
        if pick == "middle":
            position = group[(len(group) + 1) // 2 - 1]
        elif isinstance(generator, np.random.Generator):
            position = group[int(generator.integers(len(group)))]
        else:
            position = group[int(torch.randint(len(group), (1,), generator=generator))]
        chosen.append(min(position, length - 1))
    return chosen


__all__ = ["segment_groups", "segment_indices"]
