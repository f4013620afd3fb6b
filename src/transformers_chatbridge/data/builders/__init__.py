"""Builders of ChatBridge training data from the public corpora's own formats.

- Stage 1 (alignment captions; `stage1.py`): `coco`, `cc3m` / `laion`, `webdataset`, `webvid`, `wavcaps`.
- MULTIS (stage-2 instructions; the table is in `multis.py`): `ti-shortqa` (VQAv2), `ti-normalqa` (Visual Genome
  QA), `ti-cap` (COCO), `ti-ocr` (TextCaps, OCR-VQA), `ti-det` / `ti-rea` / `ti-conv` (LLaVA-Instruct-150K),
  `tv-shortqa` / `tv-cap` (MSR-VTT), `tv-det` / `tv-rea` / `tv-conv` (Video-ChatGPT VideoInstruct100K), `ta-cap`
  (AudioCaps), `tva-cap` (VALOR-32K, AVSD), `tva-det` / `tva-conv` (AVSD), `release` (the MULTIS conversation
  JSON). The ti-det/rea/conv builder and those of the other JSON sources (Visual Genome, TextCaps / OCR-VQA,
  VideoInstruct, VALOR / AVSD) also read conversation JSON.

`build_dataset(kind, task, sources, out_dir, media_root=...)` writes a Hub-style folder::

    OUT/README.md           card: shards, rows per task, skips per reason
    OUT/data/train-NNNNN-of-MMMMM.parquet
    OUT/media/...           media a builder extracted (WebDataset images); paths to them are relative to OUT
    OUT/skipped.jsonl       one line per skipped source record: source, record, reason, detail
    OUT/summary.json        the summary returned

Rows follow `CHAT_ROW_FEATURES` plus `BUILDER_COLUMNS` (`id`, `stage`, `task`, `modality`, `source`, `answer`).
`datasets.load_dataset(OUT)` and the training script's `OUT:train` read it; `data.load_folder_split(OUT, split,
streaming=...)` also makes media paths absolute; `data.mix_datasets([...], weights, features=BUILDER_FEATURES)`
interleaves built data sets with probabilities.
"""

from pathlib import Path

from . import multis, multis_audio_video, multis_image, multis_video
from .common import (
    BUILDER_COLUMNS, BUILDER_FEATURES, DEFAULT_MAX_CAPTION_TOKENS, BuildContext, CaptionLimit, Skip,
    format_summary, run_builder,
)
from .multis import MULTIS_TASKS, convert_conversation
from .stage1 import STAGE1_BUILDERS, STAGE1_TASKS

_MODULE_BUILDERS = {**multis.BUILDERS, **multis_image.BUILDERS, **multis_video.BUILDERS, **multis_audio_video.BUILDERS}
MULTIS_BUILDERS = {task: _MODULE_BUILDERS[task] for task in (*MULTIS_TASKS, "release")}  # all 16 tasks, in order
BUILDERS = {"stage1": STAGE1_BUILDERS, "multis": MULTIS_BUILDERS}


def build_dataset(kind: str, task: str, sources, out_dir, *, media_root=None, seed: int = 0,
                  max_caption_tokens: int | None = DEFAULT_MAX_CAPTION_TOKENS, tokenizer=None,
                  long_captions: str = "skip", split: str = "train", shard_size: int = 50_000,
                  overwrite: bool = False, progress: bool = True, media: str = "link") -> dict:
    """Build one data set; returns its summary (rows, rows per task, skips per reason, rows/s).

    `kind` is "stage1" or "multis"; `task` a stage-1 format name or a MULTIS task (see `BUILDERS`). The caption
    limit (`max_caption_tokens`, counted in whitespace words, or in `tokenizer` tokens when one is given) applies
    to stage-1 captions; MULTIS answers are kept whole. `split` names the shards (and selects OCR-VQA's split).
    `media` says how media outside `out_dir` are stored: "link" places them in `out_dir/media/linked/` (hard links,
    copies across file systems), "reference" names them by relative paths that climb out of `out_dir`.
    """
    if kind not in BUILDERS:
        raise ValueError(f"Unknown kind {kind!r}; choose from {', '.join(BUILDERS)}.")
    if task not in BUILDERS[kind]:
        raise ValueError(f"Unknown {kind} task {task!r}; choose from {', '.join(BUILDERS[kind])}.")
    sources = [Path(source) for source in ([sources] if isinstance(sources, str | Path) else sources)]
    missing = [str(source) for source in sources if not source.exists()]
    if missing:
        raise FileNotFoundError(f"Source(s) not found: {', '.join(missing)}.")
    limit = CaptionLimit(max_caption_tokens if kind == "stage1" else None, tokenizer, long_captions)
    ctx = BuildContext(out_dir=Path(out_dir), media_root=media_root, task=None if kind == "stage1" else task,
                       seed=seed, caption_limit=limit, options={"split": split}, media=media)
    return run_builder(BUILDERS[kind][task], sources, ctx, kind=kind, name=task, split=split,
                       shard_size=shard_size, overwrite=overwrite, progress=progress)


__all__ = [
    "BUILDERS",
    "BUILDER_COLUMNS",
    "BUILDER_FEATURES",
    "MULTIS_BUILDERS",
    "MULTIS_TASKS",
    "STAGE1_TASKS",
    "BuildContext",
    "CaptionLimit",
    "Skip",
    "build_dataset",
    "convert_conversation",
    "format_summary",
]
