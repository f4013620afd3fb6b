"""Shared machinery of the stage-1 and MULTIS builders: skip records, the build context, caption limits, media
look-up, the Parquet writer (Hub-style folder) and the loading / streaming / mixing helpers.

A builder is a generator function `builder(sources, ctx)` that yields, for every source record it reads, either a
row (`ctx.row(...)`) or a `Skip` naming the record and why it was not turned into a row. The driver
(`transformers_chatbridge.data.builders.build_dataset`) counts both, so nothing is dropped without being counted.
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import random
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Features, Value

from ..rows import CHAT_ROW_FEATURES, make_row

# Extra columns every builder writes, before the chat row columns.
BUILDER_COLUMNS = ("id", "stage", "task", "modality", "source", "answer")
BUILDER_FEATURES = Features(
    {
        "id": Value("string"),
        "stage": Value("int32"),
        "task": Value("string"),
        "modality": Value("string"),
        "source": Value("string"),
        "answer": Value("string"),
        **CHAT_ROW_FEATURES,
    }
)

DEFAULT_MAX_CAPTION_TOKENS = 32
DEFAULT_SHARD_SIZE = 50_000
DEFAULT_SPLIT = "train"

# Skip reasons (the keys of the summary's `skipped` counter and of `skipped.jsonl`'s `reason`).
MISSING_MEDIA = "missing_media"
EMPTY_CAPTION = "empty_caption"
EMPTY_TEXT = "empty_text"
CAPTION_TOO_LONG = "caption_too_long"
NO_CAPTION = "no_caption"
NO_MEDIA = "no_media_in_sample"
UNKNOWN_IMAGE = "unknown_image_id"
NO_ANSWER = "no_annotation"
BAD_RECORD = "malformed_record"
BAD_CONVERSATION = "malformed_conversation"
OTHER_TASK = "other_task"  # a record of the source that belongs to another MULTIS task (built with that --task)
OTHER_SPLIT = "other_split"  # a record of another split of a source that mixes splits in one file (OCR-VQA)


@dataclass
class Skip:
    """A source record that produced no row: `record` names it (an id, a line, a tar member), `reason` is one of
    the reason keys above, `detail` says more (the missing path, the caption's length, ...)."""

    record: str
    reason: str
    detail: str = ""
    source: str = ""

    def to_json(self) -> dict:
        return {"source": self.source, "record": self.record, "reason": self.reason, "detail": self.detail}


class CaptionLimit:
    """Checks caption length against `max_tokens`.

    Without a tokenizer the length is the number of whitespace-separated words (a proxy: LLaMA's tokenizer gives
    about 1.3 tokens per English word, so 32 words is looser than the original's 32 tokens); with `tokenizer` (a
    path or name loadable by `AutoTokenizer.from_pretrained`, or a tokenizer object) it is the tokenizer's count
    without special tokens. `mode="skip"` drops (and counts) a longer caption; `mode="truncate"` keeps its first
    `max_tokens` words / tokens (the original model truncated captions at 32 tokens).
    """

    def __init__(self, max_tokens: int | None = DEFAULT_MAX_CAPTION_TOKENS, tokenizer=None, mode: str = "skip"):
        if mode not in ("skip", "truncate"):
            raise ValueError(f"Caption limit mode must be 'skip' or 'truncate', got {mode!r}.")
        if isinstance(tokenizer, str | Path):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(tokenizer))
        self.max_tokens = max_tokens
        self.tokenizer = tokenizer
        self.mode = mode
        self.unit = "tokens" if tokenizer is not None else "words"

    def _pieces(self, text: str) -> list:
        if self.tokenizer is None:
            return text.split()
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def apply(self, text: str) -> tuple[str | None, str]:
        """(text to use, "") or (None, detail) when the caption is too long and mode is "skip"."""
        if self.max_tokens is None:
            return text, ""
        pieces = self._pieces(text)
        if len(pieces) <= self.max_tokens:
            return text, ""
        if self.mode == "skip":
            return None, f"{len(pieces)} {self.unit} > {self.max_tokens}"
        if self.tokenizer is None:
            return " ".join(pieces[: self.max_tokens]), ""
        return self.tokenizer.decode(pieces[: self.max_tokens], skip_special_tokens=True).strip(), ""


@dataclass
class BuildContext:
    """What a builder needs besides its sources: where media live, where the output goes, the task, the seed of
    the template choice and the caption limit."""

    out_dir: Path
    media_root: Path | None = None
    task: str | None = None
    seed: int = 0
    caption_limit: CaptionLimit = field(default_factory=CaptionLimit)
    options: dict = field(default_factory=dict)
    media: str = "link"
    _placed: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.out_dir = Path(self.out_dir).absolute()
        self.media_root = None if self.media_root is None else Path(self.media_root).absolute()
        if self.media not in MEDIA_MODES:
            raise ValueError(f"media must be one of {', '.join(MEDIA_MODES)}, got {self.media!r}.")

    # -- media ---------------------------------------------------------------------------------------------------
    def find_media(self, *candidates: str | Path, base: Path | None = None) -> Path | None:
        """The first candidate that is a file: absolute candidates as they are, relative ones under `base` (default
        the media root). None if none exists."""
        roots = [base] if base is not None else [self.media_root or Path.cwd()]
        for candidate in candidates:
            if candidate is None or str(candidate) == "":
                continue
            candidate = Path(candidate)
            paths = [candidate] if candidate.is_absolute() else [root / candidate for root in roots]
            for path in paths:
                if path.is_file():
                    return path
        return None

    def media_path(self, path: Path) -> str:
        """The path stored in a media column, relative to the output folder so that the set moves (and is
        published) with its media: a file outside the folder is first linked into `media/linked/` (a hard link; a
        copy across file systems), or, with `media="reference"`, named by a path that climbs out of the folder."""
        path = Path(path).absolute()
        if self.media == "link" and not path.is_relative_to(self.out_dir):
            path = self._link_inside(path)
        return Path(os.path.relpath(path, self.out_dir)).as_posix()

    def _link_inside(self, path: Path) -> Path:
        """`path` placed under `media/linked/`, at its path below the media root (else its folder's name); a
        different file already there sends it to a folder named after its source folder's hash instead."""
        if path not in self._placed:
            root = self.media_root if self.media_root and path.is_relative_to(self.media_root) else path.parent.parent
            target = self.extract_dir / "linked" / path.relative_to(root)
            if target.exists() and not _same_content(target, path):
                target = self.extract_dir / "linked" / hashlib.sha256(bytes(path.parent)).hexdigest()[:12] / path.name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(path, target)
                except OSError:  # another file system, or one without hard links
                    shutil.copy2(path, target)
            self._placed[path] = target
        return self._placed[path]

    @property
    def extract_dir(self) -> Path:
        return self.out_dir / "media"

    # -- templates -----------------------------------------------------------------------------------------------
    def choose(self, options: Sequence[str], *key) -> str:
        """A deterministic choice: the same seed and key (task, record id) always pick the same option, whatever
        the order records come in."""
        rng = random.Random(":".join(str(part) for part in (self.seed, *key)))
        return options[rng.randrange(len(options))]

    # -- rows ----------------------------------------------------------------------------------------------------
    def row(self, *, id: str, stage: int, task: str, modality: str, source: str, answer: str, messages,
            images=(), videos=(), audios=()) -> dict:
        columns = {
            "images": [self.media_path(p) for p in images],
            "videos": [self.media_path(p) for p in videos],
            "audios": [self.media_path(p) for p in audios],
        }
        return {"id": id, "stage": stage, "task": task, "modality": modality, "source": source, "answer": answer,
                **make_row(messages, **columns)}


def _same_content(a: Path, b: Path) -> bool:
    return os.path.samefile(a, b) or filecmp.cmp(a, b, shallow=False)


def clean_text(value) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def media_turn(kinds: Sequence[str], text: str | None = None) -> dict:
    content = [{"type": kind} for kind in kinds]
    if text:
        content.append({"type": "text", "text": text})
    return {"role": "user", "content": content}


def assistant_turn(text: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def read_json(path: Path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


# ---------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------

OWNED_PATHS = ("data", "media", "README.md", "skipped.jsonl", "summary.json")
# How media outside the output folder are stored: linked into it, or referenced by a path climbing out of it.
MEDIA_MODES = ("link", "reference")


class ShardWriter:
    """Writes rows as zstd Parquet shards `data/{split}-NNNNN-of-MMMMM.parquet` (renamed when the count is known)."""

    def __init__(self, out_dir: Path, split: str = DEFAULT_SPLIT, shard_size: int = DEFAULT_SHARD_SIZE):
        self.data_dir = Path(out_dir) / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.split = split
        self.shard_size = shard_size
        self.buffer: list[dict] = []
        self.partial: list[Path] = []
        self.rows = 0

    def add(self, row: dict) -> None:
        self.buffer.append(row)
        if len(self.buffer) >= self.shard_size:
            self._flush()

    def _flush(self) -> None:
        import pyarrow.parquet as pq
        from datasets import Dataset

        if not self.buffer:
            return
        path = self.data_dir / f".{self.split}-{len(self.partial):05d}.partial.parquet"
        table = Dataset.from_list(self.buffer, features=BUILDER_FEATURES).data.table  # carries the features
        pq.write_table(table, path, compression="zstd")
        self.rows += len(self.buffer)
        self.partial.append(path)
        self.buffer = []

    def close(self) -> list[str]:
        self._flush()
        if not self.partial:  # an empty data set still gets one (empty) shard, so the folder loads
            import pyarrow.parquet as pq
            from datasets import Dataset

            path = self.data_dir / f".{self.split}-00000.partial.parquet"
            empty = Dataset.from_dict({name: [] for name in BUILDER_FEATURES}, features=BUILDER_FEATURES)
            pq.write_table(empty.data.table, path, compression="zstd")
            self.partial.append(path)
        names = []
        for index, path in enumerate(self.partial):
            name = f"{self.split}-{index:05d}-of-{len(self.partial):05d}.parquet"
            path.rename(self.data_dir / name)
            names.append(f"data/{name}")
        return names


def prepare_out_dir(out_dir: Path, overwrite: bool, owned_paths: Sequence[str] = OWNED_PATHS) -> Path:
    """An empty output folder; with `overwrite`, only what an earlier build wrote there (`owned_paths`) is removed."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty (overwrite=True / --overwrite replaces an earlier build)")
        for name in owned_paths:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def card(summary: dict) -> str:
    # No `configs` YAML: with one, `datasets` keys its cache on the file patterns alone, so two builds with the same
    # folder name (or a rebuild with --overwrite) would load each other's cached rows; without, the shards are found
    # by their names (`data/{split}-NNNNN-of-NNNNN.parquet`, on the Hub too) and the cache key includes their mtimes.
    split = summary["split"]
    lines = [
        "---",
        "tags:",
        "- chatbridge",
        "---",
        "",
        f"# ChatBridge {summary['kind']} data: {summary['builder']}",
        "",
        f"Shards: `data/{split}-*.parquet` (split `{split}`).",
        "",
        f"Built by `chatbridge data build --kind {summary['kind']} --task {summary['builder']}` from:",
        "",
        *[f"- `{source}`" for source in summary["sources"]],
        "",
        "Rows are in the ChatBridge chat row format (`messages`, `images`, `videos`, `audios`) plus `id`, `stage`",
        "(1 = alignment captions whose user turn is only the media, 2 = MULTIS instructions), `task`, `modality`,",
        "`source` (the corpus format read) and `answer` (the caption or answer as written in the row; multi-turn",
        "rows join their answers with ' | ').",
        *(["Media paths are relative to this folder; the media lie in `media/` (files outside the sources were",
           "hard-linked or copied into `media/linked/`), so the folder moves and publishes with them."]
          if summary["media"] == "link" else
          ["Media paths are relative to this folder and climb out of it (`--media reference`): move it together",
           "with the media it names; `chatbridge publish` refuses it."]),
        "`resolve_media_paths(row, DIR)` makes every path absolute (the training script does it).",
        f"Caption limit (stage 1): {summary['caption_limit']}.",
        "",
        f"{summary['rows']} rows; {summary['skipped_total']} source records skipped (`skipped.jsonl` lists each",
        "one with its reason).",
        "",
        "| task | rows |",
        "|---|---|",
        *[f"| {task} | {n} |" for task, n in summary["tasks"].items()],
        "",
        "| skip reason | records |",
        "|---|---|",
        *[f"| {reason} | {n} |" for reason, n in summary["skipped"].items()],
    ]
    return "\n".join(lines) + "\n"


def run_builder(builder, sources: Sequence[Path], ctx: BuildContext, *, kind: str, name: str,
                split: str = DEFAULT_SPLIT, shard_size: int = DEFAULT_SHARD_SIZE, overwrite: bool = False,
                progress: bool = True) -> dict:
    """Run `builder` over `sources`, write rows, `skipped.jsonl`, `summary.json` and the README card to
    `ctx.out_dir`; returns the summary (rows, rows per task, skips per reason, seconds, rows/s)."""
    from tqdm.auto import tqdm

    out = prepare_out_dir(ctx.out_dir, overwrite)
    writer = ShardWriter(out, split=split, shard_size=shard_size)
    tasks: Counter = Counter()
    skipped: Counter = Counter()
    start = time.perf_counter()
    with open(out / "skipped.jsonl", "w", encoding="utf-8") as skip_log:
        bar = tqdm(builder(list(sources), ctx), desc=f"{kind} {name}", unit="record", disable=not progress)
        for item in bar:
            if isinstance(item, Skip):
                skipped[item.reason] += 1
                skip_log.write(json.dumps(item.to_json(), ensure_ascii=False) + "\n")
            else:
                tasks[item["task"]] += 1
                writer.add(item)
        files = writer.close()
    seconds = time.perf_counter() - start
    limit = ctx.caption_limit
    summary = {
        "kind": kind,
        "builder": name,
        "split": split,
        "sources": [str(Path(source).absolute()) for source in sources],
        "media_root": None if ctx.media_root is None else str(ctx.media_root),
        "media": ctx.media,
        "files": files,
        "rows": sum(tasks.values()),
        "tasks": dict(sorted(tasks.items())),
        "skipped_total": sum(skipped.values()),
        "skipped": dict(sorted(skipped.items())),
        "caption_limit": "none" if limit.max_tokens is None
        else f"{limit.max_tokens} {limit.unit} ({'longer ones skipped' if limit.mode == 'skip' else 'truncated'})",
        "seed": ctx.seed,
        "seconds": round(seconds, 3),
        "rows_per_second": round(sum(tasks.values()) / seconds, 1) if seconds > 0 else None,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "README.md").write_text(card(summary))
    return summary


def format_summary(summary: dict) -> str:
    lines = [f"{summary['kind']} {summary['builder']}: {summary['rows']} rows, "
             f"{summary['skipped_total']} source records skipped"]
    lines += [f"  task {task}: {n} rows" for task, n in summary["tasks"].items()]
    lines += [f"  skipped ({reason}): {n}" for reason, n in summary["skipped"].items()]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Reading built data sets: in memory, streaming, weighted mixtures
# ---------------------------------------------------------------------------------------------------------------


def iter_sources(sources: Iterable[Path], patterns: Sequence[str]) -> Iterator[Path]:
    """Files of `sources`: files as they are, folders expanded with `patterns` (sorted)."""
    for source in sources:
        source = Path(source)
        if source.is_dir():
            found = sorted({path for pattern in patterns for path in source.glob(pattern)})
            yield from found
        else:
            yield source
