"""MULTIS image builders beyond VQAv2 / COCO / LLaVA: Visual Genome QA (`ti-normalqa`) and the OCR sets TextCaps and
OCR-VQA (`ti-ocr`). Formats (media paths relative to `media_root`):

- Visual Genome `question_answers.json`: `[{"id": image_id, "qas": [{"qa_id", "image_id", "question",
  "answer", ...}]}]`. One row per QA (record = `qa_id`); image `VG_100K/<image_id>.jpg`, else
  `VG_100K_2/<image_id>.jpg`, else `<image_id>.jpg`. The answer is VG's own (a phrase, often with a full stop).
- TextCaps `TextCaps_0.1_<split>.json`: `{"data": [{"image_id", "image_path", "caption_id", "caption_str",
  "reference_strs", ...}]}`. One row per entry with a `caption_str` (record = `<image_id>#<caption_id>`); an entry
  with only `reference_strs` gives one row per reference (`<image_id>#r<i>`); one with neither (the test file) is
  skipped (`no_caption`). Image: `image_path` (`train/<id>.jpg`), else `train_images/<id>.jpg` (the TextVQA
  folder the images ship in), else `<image_path's file name>`.
- OCR-VQA `dataset.json`: `{"<id>": {"imageURL", "questions": [...], "answers": [...], "title", "split", ...}}`.
  One row per question (record = `<id>#<i>`). Image `<id><extension of imageURL>` (what the official download
  script writes), else `images/<id>...`, else `<id>.jpg|.png|.gif`. `split` is 1 train, 2 validation, 3 test:
  building split `train` / `validation` (or `val`) / `test` keeps that split and counts the other questions as
  `other_split`; any other `--split` name keeps all.

A folder source is read for `question_answers.json` (ti-normalqa) or `TextCaps_*_train.json` and `dataset.json`
(ti-ocr); a conversation JSON file (records with `conversations`) is read as such.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from .common import (
    BAD_RECORD, EMPTY_CAPTION, EMPTY_TEXT, MISSING_MEDIA, NO_ANSWER, NO_CAPTION, OTHER_SPLIT, BuildContext, Skip,
    clean_text, iter_sources,
)
from .multis import conversation_rows, is_conversation_data, single_turn
from .templates import NORMAL_QA, OCR_CAPTION, OCR_QA, short_qa

OCR_VQA_SPLITS = {"train": 1, "validation": 2, "val": 2, "test": 3}


def read_source(path: Path):
    """Parsed JSON, or a list of records for JSON lines."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def records_with(data, key: str) -> bool:
    """Whether parsed JSON is a list of records whose first one has `key` (an empty list counts)."""
    return isinstance(data, list) and (not data or (isinstance(data[0], dict) and key in data[0]))


def cached_media(ctx: BuildContext, cache: dict, key, *candidates) -> Path | None:
    """`ctx.find_media(*candidates)`, looked up once per `key`."""
    if key not in cache:
        cache[key] = ctx.find_media(*candidates)
    return cache[key]


# ---------------------------------------------------------------------------------------------------------------
# Visual Genome QA -> ti-normalqa
# ---------------------------------------------------------------------------------------------------------------


def visual_genome_rows(data, source_file: Path, ctx: BuildContext) -> Iterator:
    task = ctx.task or "ti-normalqa"
    found: dict = {}
    for index, image in enumerate(data):
        qas = image.get("qas") if isinstance(image, dict) else None
        if not isinstance(qas, list):
            yield Skip(f"image #{index}", BAD_RECORD, "no `qas` list", str(source_file))
            continue
        for number, qa in enumerate(qas):
            record = str(qa.get("qa_id", f"{image.get('id')}#{number}"))
            question, answer = clean_text(qa.get("question")), clean_text(qa.get("answer"))
            if not question or not answer:
                yield Skip(record, EMPTY_TEXT, "empty answer" if question else "empty question", str(source_file))
                continue
            image_id = qa.get("image_id", image.get("id"))
            if image_id is None:
                yield Skip(record, BAD_RECORD, "no image_id", str(source_file))
                continue
            name = f"{image_id}.jpg"
            path = cached_media(ctx, found, image_id, f"VG_100K/{name}", f"VG_100K_2/{name}", name)
            if path is None:
                yield Skip(record, MISSING_MEDIA, f"VG_100K(_2)/{name}", str(source_file))
                continue
            prompt = short_qa(question, ctx.choose(NORMAL_QA, task, record))
            yield single_turn(ctx, record=record, task=task, source="visual-genome", modality="image",
                              question=prompt, answer=answer, images=[path])


def build_visual_genome(sources, ctx: BuildContext) -> Iterator:
    for source_file in iter_sources(sources, ["question_answers.json"]):
        data = read_source(source_file)
        if is_conversation_data(data):
            yield from conversation_rows(data, source_file, ctx)
        elif records_with(data, "qas"):
            yield from visual_genome_rows(data, source_file, ctx)
        else:
            raise ValueError(f"{source_file}: not Visual Genome's question_answers.json (a list of {{id, qas}}).")


# ---------------------------------------------------------------------------------------------------------------
# TextCaps and OCR-VQA -> ti-ocr
# ---------------------------------------------------------------------------------------------------------------


def textcaps_rows(data: dict, source_file: Path, ctx: BuildContext) -> Iterator:
    task = ctx.task or "ti-ocr"
    found: dict = {}
    for index, entry in enumerate(data.get("data") or []):
        image_id = str(entry.get("image_id") or "")
        if not image_id:
            yield Skip(f"#{index}", BAD_RECORD, "no image_id", str(source_file))
            continue
        if entry.get("caption_str") is not None:
            captions = [(f"{image_id}#{entry.get('caption_id', index)}", entry["caption_str"])]
        else:
            captions = [(f"{image_id}#r{i}", text) for i, text in enumerate(entry.get("reference_strs") or [])]
        if not captions:
            yield Skip(image_id, NO_CAPTION, "no caption_str or reference_strs", str(source_file))
            continue
        image_path = str(entry.get("image_path") or "")
        name = PurePosixPath(image_path).name if image_path else f"{image_id}.jpg"
        path = cached_media(ctx, found, image_id, image_path, f"train_images/{image_id}.jpg", name)
        for record, caption in captions:
            caption = clean_text(caption)
            if not caption:
                yield Skip(record, EMPTY_CAPTION, "", str(source_file))
            elif path is None:
                yield Skip(record, MISSING_MEDIA, image_path or name, str(source_file))
            else:
                yield single_turn(ctx, record=record, task=task, source="textcaps", modality="image",
                                  question=ctx.choose(OCR_CAPTION, task, record), answer=caption, images=[path])


def ocr_vqa_rows(data: dict, source_file: Path, ctx: BuildContext) -> Iterator:
    task = ctx.task or "ti-ocr"
    keep_split = OCR_VQA_SPLITS.get(str(ctx.options.get("split", "")).lower())
    for book, entry in data.items():
        if not isinstance(entry, dict):
            yield Skip(str(book), BAD_RECORD, f"not an object: {type(entry).__name__}", str(source_file))
            continue
        questions, answers = list(entry.get("questions") or []), list(entry.get("answers") or [])
        records = [f"{book}#{i}" for i in range(max(len(questions), len(answers)))]
        if not records:
            yield Skip(str(book), NO_ANSWER, "no questions", str(source_file))
            continue
        split = entry.get("split")
        if keep_split is not None and split is not None and str(split) != str(keep_split):
            for record in records:
                yield Skip(record, OTHER_SPLIT, f"split {split}", str(source_file))
            continue
        extension = PurePosixPath(str(entry.get("imageURL") or "")).suffix or ".jpg"
        name = f"{book}{extension}"
        path = ctx.find_media(name, f"images/{name}", f"{book}.jpg", f"{book}.png", f"{book}.gif")
        for i, record in enumerate(records):
            question = clean_text(questions[i]) if i < len(questions) else ""
            answer = clean_text(answers[i]) if i < len(answers) else ""
            if i >= len(questions) or i >= len(answers):
                yield Skip(record, BAD_RECORD, f"{len(questions)} questions but {len(answers)} answers",
                           str(source_file))
            elif not question or not answer:
                yield Skip(record, EMPTY_TEXT, "empty answer" if question else "empty question", str(source_file))
            elif path is None:
                yield Skip(record, MISSING_MEDIA, name, str(source_file))
            else:
                prompt = short_qa(question, ctx.choose(OCR_QA, task, record))
                yield single_turn(ctx, record=record, task=task, source="ocr-vqa", modality="image",
                                  question=prompt, answer=answer, images=[path])


def build_ocr(sources, ctx: BuildContext) -> Iterator:
    """TextCaps and OCR-VQA files (any mix, told apart by their structure) or conversation JSON."""
    for source_file in iter_sources(sources, ["TextCaps_*_train.json", "dataset.json"]):
        data = read_source(source_file)
        if is_conversation_data(data):
            yield from conversation_rows(data, source_file, ctx)
        elif isinstance(data, dict) and isinstance(data.get("data"), list):
            yield from textcaps_rows(data, source_file, ctx)
        elif isinstance(data, dict) and any(isinstance(v, dict) and "questions" in v for v in data.values()):
            yield from ocr_vqa_rows(data, source_file, ctx)
        else:
            raise ValueError(f"{source_file}: neither TextCaps ({{data: [...]}}) nor OCR-VQA's dataset.json "
                             "({id: {questions, answers, ...}}) nor conversation JSON.")


BUILDERS = {"ti-normalqa": build_visual_genome, "ti-ocr": build_ocr}
