"""Reading data set folders and mixing data sets: the one loader and the one mixture of the package.

A Hub-style data set folder (Parquet under `data/`, media beside it; what `chatbridge data build` and the miniature
world write) names its media relative to itself: the loader makes them absolute, so rows can be handed to the
processor from anywhere.
"""

import os
from collections.abc import Sequence
from pathlib import Path

from ..modalities import MEDIA_COLUMNS


def resolve_media_paths(row: dict, root: str | os.PathLike) -> dict:
    """The row with relative media paths made absolute against `root`, the folder a data set's paths are relative
    to (a Hub-style data set folder keeps its media beside `data/*.parquet`)."""
    root = Path(root).resolve()
    return {
        **row,
        **{column: [str(root / path) for path in row.get(column) or []] for column in MEDIA_COLUMNS.values()},
    }


def load_folder_split(directory: str | os.PathLike, split: str = "train", streaming: bool = False):
    """One split of a Hub-style data set folder (`data/*.parquet`, media beside them) with absolute media paths.

    The split's files are resolved as `load_dataset(DIR)` resolves them (the card's `configs`, the Hub's file
    names) but read by the Parquet builder from those files: `load_dataset(DIR)` keys its Arrow cache on the
    folder's name alone, so two folders of one name (two runs' `miniature/`, say) would share the first one's rows.
    """
    from datasets import load_dataset, load_dataset_builder

    root = Path(directory).resolve()
    files = load_dataset_builder(str(root)).config.data_files or {}
    if split not in files:
        raise ValueError(f"Data set folder {root} has no split {split!r}; its splits: {', '.join(map(str, files))}.")
    dataset = load_dataset("parquet", data_files={split: files[split]}, split=split, streaming=streaming)
    # The paths change, not the schema: saying so keeps a streamed split's column names known.
    return dataset.map(resolve_media_paths, fn_kwargs={"root": str(root)}, features=dataset.features)


def check_weights(weights: Sequence[float] | None, count: int, name: str = "weights") -> None:
    """One non-negative weight per data set, with a positive sum (checked before any data set is loaded)."""
    if weights is not None and (len(weights) != count or min(weights) < 0 or sum(weights) <= 0):
        raise ValueError(f"`{name}` needs {count} non-negative weights with a positive sum, got {list(weights)}.")


def mix_datasets(datasets: Sequence, weights: Sequence[float] | None = None, seed: int = 0,
                 stopping_strategy: str = "all_exhausted", features=None):
    """Weighted mixture (all `Dataset` or all `IterableDataset`) with `interleave_datasets`: each example is drawn
    from data set i with probability weights[i] / sum(weights) (equal without weights). With `features`, columns
    outside them are dropped and missing ones added empty, so sets built apart mix."""
    from datasets import interleave_datasets

    datasets = list(datasets)
    check_weights(weights, len(datasets))
    probabilities = None if weights is None else [w / sum(weights) for w in weights]
    if features is not None:
        datasets = [align_features(dataset, features) for dataset in datasets]
    if len(datasets) == 1:
        return datasets[0]
    return interleave_datasets(datasets, probabilities=probabilities, seed=seed, stopping_strategy=stopping_strategy)


def align_features(dataset, features):
    """`dataset` with exactly the columns of `features`, cast to them (missing ones added empty)."""
    names = dataset.column_names
    if names is not None:
        extra = [name for name in names if name not in features]
        if extra:
            dataset = dataset.remove_columns(extra)
        for name in [name for name in features if name not in dataset.column_names]:
            dataset = dataset.map(lambda row, name=name: {name: None})
    return dataset.cast(features)


__all__ = ["align_features", "check_weights", "load_folder_split", "mix_datasets", "resolve_media_paths"]
