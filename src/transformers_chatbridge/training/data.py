"""Where a training run's rows come from: the project's `dataset_paths`, or TRL's own data arguments.

One source per run (two at once is an error): `dataset_paths` (+ `dataset_weights`: folders, `FOLDER:SPLIT`,
Parquet globs, mixed by probability), TRL's `dataset_name` (+ `dataset_config`, `dataset_train_split`,
`dataset_test_split`), or TRL's `datasets:` mixture block (each entry as `load_dataset` takes it, `fraction` as TRL
reads it). A Hub-style folder (Parquet under `data/`), local or a Hub data set repo, is read by the package's folder
loader so that its media paths, relative to the folder, resolve; other sources go through `datasets.load_dataset`.
Rows of the other training stage are dropped where a `stage` column marks them.
"""

import glob
import logging
import os
import re

from datasets import Features, Value

from ..data import CHAT_ROW_FEATURES, align_features, row_messages

logger = logging.getLogger(__name__)

# What the collator reads; other columns of a data set are dropped so that sets built apart can be mixed.
ROW_FEATURES = Features({**CHAT_ROW_FEATURES, "id": Value("string")})
ROW_COLUMNS = tuple(ROW_FEATURES)


def _split_spec(spec: str) -> tuple[str, str | None]:
    """`FOLDER:SPLIT` -> (FOLDER, SPLIT); anything else (including an existing path holding a colon) -> (spec, None)."""
    path, colon, split = spec.rpartition(":")
    if colon and path and re.fullmatch(r"[\w.-]+", split) and not os.path.exists(spec):
        return path, split
    return spec, None


def _training_rows(dataset, stage: int | None):
    """Keep the rows of this training stage when the data set marks them (a `stage` column: 1 alignment captions,
    2 instructions, as the miniature world and `chatbridge data build` write it), then only the row columns."""
    if stage is not None and "stage" in dataset.column_names:
        dataset = dataset.filter(lambda row: row["stage"] == stage)
    return dataset.select_columns([name for name in dataset.column_names if name in ROW_COLUMNS])


def load_rows(spec: str, streaming: bool = False, stage: int | None = None):
    """One `dataset_paths` entry as a `Dataset` (an `IterableDataset` when `streaming`), rows of `stage` only."""
    from datasets import DatasetDict, load_dataset, load_from_disk

    from ..data import load_folder_split

    path, split = _split_spec(spec)
    if os.path.isdir(path) and glob.glob(os.path.join(path, "data", "*.parquet")):
        # A Hub-style data set folder (Parquet under data/, a card naming the splits; e.g. the miniature world):
        # its media paths are relative to the folder.
        return _training_rows(load_folder_split(path, split or "train", streaming), stage)
    if os.path.isdir(path):
        dataset = load_from_disk(path)
        if isinstance(dataset, DatasetDict):
            split = split or "train"
            if split not in dataset:
                raise ValueError(f"Dataset {spec!r} has no split {split!r}; its splits: {', '.join(dataset)}.")
            dataset = dataset[split]
        elif split is not None:
            raise ValueError(f"Dataset {spec!r}: {path} holds a single Dataset, not splits; drop ':{split}'.")
        dataset = _training_rows(dataset, stage)
        return dataset.to_iterable_dataset() if streaming else dataset
    if split is not None:
        raise ValueError(f"Dataset {spec!r}: a split can only be named for a save_to_disk folder; {path} is not one.")
    files = sorted(glob.glob(path))
    if not files:
        raise FileNotFoundError(f"Dataset {spec!r}: no save_to_disk folder or Parquet file matches {path}.")
    return _training_rows(load_dataset("parquet", data_files=files, split="train", streaming=streaming), stage)


def load_mixture(
    specs: list[str],
    weights: list[float] | None,
    streaming: bool,
    seed: int,
    stopping_strategy: str,
    stage: int | None = None,
):
    """The rows of every entry of `specs`, mixed (`data.mix_datasets`) when there are several."""
    from ..data import check_weights, mix_datasets

    if not specs:
        raise ValueError("No training data: set `dataset_paths`.")
    check_weights(weights, len(specs), "dataset_weights")
    return mix_datasets([load_rows(spec, streaming, stage) for spec in specs], weights, seed, stopping_strategy)

# File suffix -> the `datasets` builder that reads it, for a data set given as one file.
FILE_BUILDERS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv"}


def load_named(path: str, name: str | None = None, split: str = "train", streaming: bool = False,
               data_dir: str | None = None, data_files=None):
    """A data set named as TRL names one (`dataset_name`, or a `datasets:` entry): a local folder or file, or a Hub
    data set repo (downloaded whole, media included, then read as a local folder)."""
    from datasets import load_dataset

    from ..data import load_folder_split, resolve_media_paths

    if os.path.isfile(path):
        suffix = os.path.splitext(path)[1].lower()
        if suffix not in FILE_BUILDERS:
            raise ValueError(f"Dataset {path!r}: a file must be one of {', '.join(FILE_BUILDERS)}.")
        dataset = load_dataset(FILE_BUILDERS[suffix], data_files=path, split="train", streaming=streaming)
        root = os.path.dirname(os.path.abspath(path))  # media paths are relative to the file's folder
        return dataset.map(resolve_media_paths, fn_kwargs={"root": root}, features=dataset.features)
    if not os.path.isdir(path):
        from huggingface_hub import snapshot_download

        path = snapshot_download(path, repo_type="dataset")
    if glob.glob(os.path.join(path, "data", "*.parquet")) and data_files is None and data_dir is None:
        return load_folder_split(path, split, streaming)
    if glob.glob(os.path.join(path, "*.arrow")) or os.path.isfile(os.path.join(path, "dataset_dict.json")):
        return load_rows(f"{path}:{split}" if split else path, streaming)
    return load_dataset(path, name=name, data_dir=data_dir, data_files=data_files, split=split, streaming=streaming)


def _with_fractions(datasets: list, fractions: list[float | None], streaming: bool):
    """TRL's `fraction`: target shares of the mixture, which is as large as it can be without repeating a row. The
    parts are cast to the row features first (a JSON file's inferred types differ from a Parquet folder's)."""
    from datasets import concatenate_datasets

    datasets = [align_features(dataset, ROW_FEATURES) for dataset in datasets]
    if all(fraction is None for fraction in fractions):
        return concatenate_datasets(datasets) if len(datasets) > 1 else datasets[0]
    if any(fraction is None for fraction in fractions) or streaming:
        raise ValueError("`fraction` must be set for every entry of `datasets:` or for none, and not with streaming.")
    if min(fractions) <= 0:
        raise ValueError(f"`fraction` values must be positive, got {fractions}.")
    shares = [fraction / sum(fractions) for fraction in fractions]
    total = min(len(dataset) / share for dataset, share in zip(datasets, shares))
    return concatenate_datasets(
        [dataset.select(range(min(len(dataset), round(share * total)))) for dataset, share in zip(datasets, shares)]
    )


def training_datasets(script_args, dataset_args, chatbridge_args, training_args, stage: int):
    """(train, eval) rows of this stage from the run's one data source; eval is None without `eval_strategy`."""
    sources = [name for name, given in (("dataset_paths", chatbridge_args.dataset_paths),
                                        ("dataset_name", script_args.dataset_name),
                                        ("datasets", dataset_args.datasets if dataset_args else None)) if given]  # fmt: skip
    if len(sources) > 1:
        raise ValueError(f"Training data is given twice ({' and '.join(sources)}); name it one way.")
    if not sources:
        raise ValueError("No training data: set `dataset_paths`, `dataset_name` or a `datasets:` block.")
    if chatbridge_args.dataset_weights is not None and sources != ["dataset_paths"]:
        raise ValueError("`dataset_weights` weighs `dataset_paths`; a `datasets:` block takes `fraction` per entry.")
    streaming = script_args.dataset_streaming or bool(dataset_args and dataset_args.streaming)
    seed, test = training_args.seed, None
    if sources == ["dataset_paths"]:
        train = load_mixture(chatbridge_args.dataset_paths, chatbridge_args.dataset_weights, streaming, seed,
                             chatbridge_args.mixing_stopping_strategy, stage)  # fmt: skip
    elif sources == ["dataset_name"]:
        named = (script_args.dataset_name, script_args.dataset_config)
        train = _training_rows(load_named(*named, script_args.dataset_train_split, streaming), stage)
        if training_args.eval_strategy != "no" and not chatbridge_args.eval_dataset_paths:
            test = _training_rows(load_named(*named, script_args.dataset_test_split, streaming), stage)
    else:
        parts = []
        for entry in dataset_args.datasets:
            rows = load_named(entry.path, entry.name, entry.split, streaming, entry.data_dir, entry.data_files)
            parts.append(_training_rows(rows.select_columns(entry.columns) if entry.columns else rows, stage))
        train = _with_fractions(parts, [entry.fraction for entry in dataset_args.datasets], streaming)
        if dataset_args.test_split_size is not None:
            if streaming:
                raise ValueError("`test_split_size` cannot split a streamed data set; give `eval_dataset_paths`.")
            split = train.train_test_split(test_size=dataset_args.test_split_size, seed=seed)
            train, test = split["train"], split["test"]
    if training_args.eval_strategy == "no":
        return train, None
    if chatbridge_args.eval_dataset_paths:
        # Several evaluation sets are reported apart (eval_<spec>_loss), as the Trainer does for a dict.
        test = {spec: load_rows(spec, streaming, stage) for spec in chatbridge_args.eval_dataset_paths}
        test = next(iter(test.values())) if len(test) == 1 else test
    if test is None:
        raise ValueError("`eval_strategy` is set but there is no evaluation data: give `eval_dataset_paths`, "
                         "`dataset_test_split` (with `dataset_name`) or `test_split_size` (with `datasets:`).")
    return train, test


def check_row_lengths(dataset, collator, batch_size: int = 256, length_column: str | None = None):
    """Every row's length (placeholders expanded, from the text alone) against the collator's `max_length`, over the
    whole data set before the first step: a long row then stops the run at once, naming it, instead of mid-way (or,
    with `skip_too_long`, is left out here). A streamed data set is checked per batch by the collator.

    With `length_column`, the rows kept carry their length in that column: what the Trainer's
    `train_sampling_strategy="group_by_length"` batches by (chat rows have no `input_ids` for it to measure).
    """
    from datasets import Dataset

    if not isinstance(dataset, Dataset) or (collator.max_length is None and length_column is None):
        return dataset
    lengths = []
    for start in range(0, len(dataset), batch_size):
        rows = dataset.select(range(start, min(start + batch_size, len(dataset))))
        lengths += collator.sequence_lengths([row_messages(row) for row in rows])
    if length_column is not None:
        dataset = dataset.remove_columns([length_column]) if length_column in dataset.column_names else dataset
        dataset = dataset.add_column(length_column, lengths)
    too_long = [index for index, length in enumerate(lengths) if collator.max_length and length > collator.max_length]
    if not too_long:
        return dataset
    ids = dataset["id"] if "id" in dataset.column_names else None
    named = ", ".join(f"row {index}{f' (id {ids[index]!r})' if ids else ''}: {lengths[index]} tokens"
                      for index in too_long[:5])  # fmt: skip
    message = (f"{len(too_long)} of {len(dataset)} rows are longer than max_length={collator.max_length} "
               f"({named}{', ...' if len(too_long) > 5 else ''})")  # fmt: skip
    if not collator.skip_too_long:
        raise ValueError(f"{message}. Rows are not truncated (a cut would split placeholder tokens or drop an answer): "
                         "shorten them, raise max_length, or set skip_too_long.")
    logger.warning("Leaving out %s.", message)
    return dataset.select(sorted(set(range(len(dataset))) - set(too_long)))


__all__ = ["check_row_lengths", "load_mixture", "load_named", "load_rows", "training_datasets"]
