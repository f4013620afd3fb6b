"""MULTIS (stage-2 instruction) builders, from their sources' own formats.

`--task` selects the builder; the modules hold one source family each (this one: VQAv2, COCO, MSR-VTT, AudioCaps,
the conversation JSON and the release loader; `multis_image.py`, `multis_video.py`, `multis_audio_video.py`).

| task | source format |
|---|---|
| ti-shortqa | VQAv2: `v2_OpenEnded_mscoco_*_questions.json` + `v2_mscoco_*_annotations.json` (both as sources) |
| ti-normalqa | Visual Genome QA (`question_answers.json`; images `VG_100K/` or `VG_100K_2/<image_id>.jpg`) |
| ti-cap | COCO captions JSON (`captions_train2014.json`) |
| ti-ocr | TextCaps (`TextCaps_0.1_train.json`) and / or OCR-VQA (`dataset.json`; images `<id>.jpg`) |
| ti-det, ti-rea, ti-conv | LLaVA-Instruct-150K JSON (`detail_23k`, `complex_reasoning_77k`, `conversation_58k`) |
| tv-shortqa | MSR-VTT QA JSON (`train_qa.json`: [{question, answer, video_id, id}], video `video{video_id}.mp4`) |
| tv-cap | MSR-VTT captions (`train_val_videodatainfo.json`: `sentences` [{video_id, caption, sen_id}]) |
| tv-det, tv-rea, tv-conv | Video-ChatGPT `VideoInstruct100K.json` ([{video_id, q, a}]; a rule splits det / rea) |
| ta-cap | AudioCaps CSV (`audiocap_id,youtube_id,start_time,caption`) |
| tva-cap | VALOR-32K (`desc_train.json`: [{video_id, desc}]) or AVSD (its `caption`) |
| tva-det, tva-conv | AVSD (DSTC7 `train_set4DSTC7-AVSD.json`): `caption` + `summary`; the `dialog` |
| release | MULTIS as released: conversation JSON (below); the task comes from each record |

The ti-normalqa, ti-ocr, tv-det/rea/conv and tva-* builders also read conversation JSON (a file whose records
carry `conversations`), every row getting the task given. Audio-video rows hold one video and one audio item
(`videos` and `audios` columns): the audio is a sibling `<stem>.wav` / `.flac` of the video, else the video file
itself when it has an audio track (the processor reads an MP4's audio track with PyAV), else the record is skipped
(`missing_media`).

Every answer is the source's own text: VQAv2's `multiple_choice_answer`, the caption, the `gpt` turns.

Conversation JSON (MiniGPT-4 / LLaVA style; this is the format LLaVA-Instruct-150K uses, and the format we assume
for the MULTIS release, which we have not seen): a JSON list (or JSON lines) of records
`{"id": ..., "image"|"video"|"audio": path (or a list of paths), "task": optional task name,
"conversations": [{"from": "human", "value": "<image>\\nWhat is ..."}, {"from": "gpt", "value": "..."}, ...]}`.
Turns alternate human / gpt starting with human (`user`/`assistant` accepted too); a leading `system` turn is
dropped. The markers `<image>`, `<video>`, `<audio>` (each followed by an optional newline) are removed from the
text and their media items are put at the start of the turn that held them, in marker order (the released
prompt introduces the media before the question). A record whose media have no marker gets them at the start of
its first human turn; a marker without a file, or a file count that differs from the marker count, skips the
record (`malformed_conversation`). A record with a `video` and an `audio` is audio-video. For `release`, the task
is the record's `task`, else the file name's stem if it is a MULTIS task name, else `multis-<modality>`.

Media paths are relative to `media_root` (LLaVA's `image` is a COCO train2017 file name: pass the folder holding
them). AudioCaps audio is looked up as `media_root/<youtube_id>_<start_time>.{wav,flac}`, then
`Y<youtube_id>_<start_time>`, `Y<youtube_id>`, `<youtube_id>`, `<audiocap_id>` (each `.wav` then `.flac`: the
layouts common downloaders write).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path

from ...modalities import MODALITIES
from .common import (
    BAD_CONVERSATION, BAD_RECORD, EMPTY_CAPTION, EMPTY_TEXT, MISSING_MEDIA, NO_ANSWER,
    BuildContext, Skip, assistant_turn, clean_text, iter_sources, media_turn, read_json,
)
from .stage1 import coco_caption_records
from .templates import CAPTION, SHORT_ANSWER, short_qa

MULTIS_TASKS = (
    "ti-shortqa", "ti-normalqa", "ti-cap", "ti-ocr", "ti-det", "ti-rea", "ti-conv",
    "tv-shortqa", "tv-cap", "tv-det", "tv-rea", "tv-conv",
    "ta-cap",
    "tva-cap", "tva-det", "tva-conv",
)
MARKER = re.compile(r"<(image|video|audio)>\n?")
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


def single_turn(ctx: BuildContext, *, record: str, task: str, source: str, modality: str, question: str,
                answer: str, images=(), videos=(), audios=()) -> dict:
    kinds = ["image"] * len(images) + ["video"] * len(videos) + ["audio"] * len(audios)
    return ctx.row(id=f"{source}-{task}-{record}", stage=2, task=task, modality=modality, source=source,
                   answer=answer, messages=[media_turn(kinds, question), assistant_turn(answer)],
                   images=images, videos=videos, audios=audios)


# ---------------------------------------------------------------------------------------------------------------
# VQAv2 -> ti-shortqa
# ---------------------------------------------------------------------------------------------------------------


def build_vqav2(sources, ctx: BuildContext) -> Iterator:
    questions, annotations = [], {}
    subtype = None
    files = list(iter_sources(sources, ["*questions*.json", "*annotations*.json"]))
    for source_file in files:
        data = read_json(source_file)
        if "questions" in data:
            subtype = subtype or data.get("data_subtype")
            questions += [(question, source_file, data.get("data_subtype")) for question in data["questions"]]
        if "annotations" in data:
            annotations.update({a["question_id"]: a for a in data["annotations"]})
    if not questions:
        raise ValueError(f"No VQAv2 questions file (a JSON with `questions`) among {', '.join(map(str, files))}.")
    task = ctx.task or "ti-shortqa"
    found: dict = {}
    for question, source_file, data_subtype in questions:
        record = str(question.get("question_id"))
        annotation = annotations.get(question.get("question_id"))
        if annotation is None:
            yield Skip(record, NO_ANSWER, "no annotation for this question_id", str(source_file))
            continue
        answer = clean_text(annotation.get("multiple_choice_answer"))
        if not answer:
            yield Skip(record, EMPTY_TEXT, "empty multiple_choice_answer", str(source_file))
            continue
        image_id = question.get("image_id")
        folder = data_subtype or subtype or "train2014"
        name = f"COCO_{folder}_{int(image_id):012d}.jpg"
        if image_id not in found:
            found[image_id] = ctx.find_media(name, f"{folder}/{name}", f"{int(image_id):012d}.jpg")
        path = found[image_id]
        if path is None:
            yield Skip(record, MISSING_MEDIA, name, str(source_file))
            continue
        question_text = clean_text(question.get("question"))
        if not question_text:
            yield Skip(record, EMPTY_TEXT, "empty question", str(source_file))
            continue
        prompt = short_qa(question_text, ctx.choose(SHORT_ANSWER, task, record))
        yield single_turn(ctx, record=record, task=task, source="vqav2", modality="image", question=prompt,
                          answer=answer, images=[path])


# ---------------------------------------------------------------------------------------------------------------
# Captions: COCO -> ti-cap, MSR-VTT -> tv-cap, AudioCaps -> ta-cap
# ---------------------------------------------------------------------------------------------------------------


def caption_instruction(ctx, *, record, task, source, modality, caption, media, source_file):
    caption = clean_text(caption)
    if not caption:
        return Skip(record, EMPTY_CAPTION, "", source_file)
    column = {"image": "images", "video": "videos", "audio": "audios"}[modality]
    return single_turn(ctx, record=record, task=task, source=source, modality=modality,
                       question=ctx.choose(CAPTION[modality], task, record), answer=caption, **{column: [media]})


def build_coco_captions(sources, ctx: BuildContext) -> Iterator:
    task = ctx.task or "ti-cap"
    for item in coco_caption_records(sources, ctx, ["captions_*.json"]):
        if isinstance(item, Skip):
            yield item
            continue
        record, path, caption, source_file = item
        yield caption_instruction(ctx, record=record, task=task, source="coco", modality="image",
                                  caption=caption, media=path, source_file=source_file)


def msrvtt_video(ctx: BuildContext, video_id) -> tuple[Path | None, str]:
    name = str(video_id)
    if not name.startswith("video"):
        name = f"video{name}"
    return ctx.find_media(f"{name}.mp4", f"{name}.avi", f"{name}.webm"), f"{name}.mp4"


def _msrvtt_video_once(ctx: BuildContext, found: dict, video_id, record: str, source_file: str):
    """The clip of `video_id`, looked up once per id in `found`, or a `Skip` saying why there is none."""
    if video_id is None:
        return Skip(record, BAD_RECORD, "no video_id", source_file)
    if video_id not in found:
        found[video_id] = msrvtt_video(ctx, video_id)
    path, name = found[video_id]
    return Skip(record, MISSING_MEDIA, name, source_file) if path is None else path


def build_msrvtt_captions(sources, ctx: BuildContext) -> Iterator:
    task = ctx.task or "tv-cap"
    for source_file in iter_sources(sources, ["*.json"]):
        data = read_json(source_file)
        sentences = data.get("sentences", []) if isinstance(data, dict) else data
        found: dict = {}
        for index, sentence in enumerate(sentences):
            record = str(sentence.get("sen_id", f"#{index}"))
            path = _msrvtt_video_once(ctx, found, sentence.get("video_id"), record, str(source_file))
            if isinstance(path, Skip):
                yield path
                continue
            yield caption_instruction(ctx, record=record, task=task, source="msrvtt", modality="video",
                                      caption=sentence.get("caption"), media=path, source_file=str(source_file))


def build_msrvtt_qa(sources, ctx: BuildContext) -> Iterator:
    task = ctx.task or "tv-shortqa"
    for source_file in iter_sources(sources, ["*qa*.json"]):
        data = read_json(source_file)
        found: dict = {}
        for index, item in enumerate(data):
            record = str(item.get("id", f"#{index}"))
            answer, question = clean_text(item.get("answer")), clean_text(item.get("question"))
            if not answer or not question:
                yield Skip(record, EMPTY_TEXT, "empty answer" if not answer else "empty question", str(source_file))
                continue
            path = _msrvtt_video_once(ctx, found, item.get("video_id", item.get("video")), record, str(source_file))
            if isinstance(path, Skip):
                yield path
                continue
            prompt = short_qa(question, ctx.choose(SHORT_ANSWER, task, record))
            yield single_turn(ctx, record=record, task=task, source="msrvtt-qa", modality="video", question=prompt,
                              answer=answer, videos=[path])


def audiocaps_candidates(record: dict) -> list[str]:
    youtube, start, audiocap = (str(record.get(k) or "").strip() for k in ("youtube_id", "start_time", "audiocap_id"))
    stems = [f"{youtube}_{start}", f"Y{youtube}_{start}", f"Y{youtube}", youtube, audiocap] if youtube else [audiocap]
    return [f"{stem}.{ext}" for stem in stems if stem and stem != "_" for ext in ("wav", "flac")]


def build_audiocaps(sources, ctx: BuildContext) -> Iterator:
    task = ctx.task or "ta-cap"
    for source_file in iter_sources(sources, ["*.csv"]):
        with open(source_file, encoding="utf-8", newline="") as handle:
            for line, record in enumerate(csv.DictReader(handle), start=2):
                name = str(record.get("audiocap_id") or f"line {line}")
                candidates = audiocaps_candidates(record)
                path = ctx.find_media(*candidates)
                if path is None:
                    yield Skip(name, MISSING_MEDIA, candidates[0] if candidates else "no youtube_id", str(source_file))
                    continue
                yield caption_instruction(ctx, record=name, task=task, source="audiocaps", modality="audio",
                                          caption=record.get("caption"), media=path, source_file=str(source_file))


# ---------------------------------------------------------------------------------------------------------------
# Conversation JSON: LLaVA-Instruct-150K -> ti-det / ti-rea / ti-conv, and the MULTIS release
# ---------------------------------------------------------------------------------------------------------------


def _read_records(path: Path) -> list:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    if isinstance(data, dict):
        data = data.get("data", data.get("annotations", [data]))
    return data


def convert_conversation(record: dict, media_kinds: dict[str, list]) -> tuple[list[dict], list[str]] | str:
    """(chat messages, answers) of a conversation record, or a string saying why it is malformed.

    `media_kinds` maps each modality to its paths; marker order in the text must agree with them by count."""
    turns = list(record.get("conversations") or [])
    if turns and str(turns[0].get("from", "")).lower() == "system":
        turns = turns[1:]
    if len(turns) < 2:
        return "fewer than two turns"
    messages, answers = [], []
    markers = dict.fromkeys(MODALITIES, 0)
    for index, turn in enumerate(turns):
        role = ROLES.get(str(turn.get("from", "")).lower())
        expected = "user" if index % 2 == 0 else "assistant"
        if role != expected:
            return f"turn {index} is from {turn.get('from')!r}, expected {'human' if expected == 'user' else 'gpt'}"
        value = str(turn.get("value") or "")
        kinds = MARKER.findall(value) if role == "user" else []
        if role == "assistant" and MARKER.search(value):
            return f"media marker in answer turn {index}"
        for kind in kinds:
            markers[kind] += 1
        text = MARKER.sub("", value).strip()
        if role == "assistant":
            if not text:
                return f"empty answer in turn {index}"
            answers.append(text)
            messages.append(assistant_turn(text))
        else:
            if not text and not kinds:
                return f"empty question in turn {index}"
            messages.append(media_turn(kinds, text or None))
    unmarked = []
    for kind in MODALITIES:
        count = len(media_kinds.get(kind, []))
        if markers[kind] == 0 and count:
            unmarked += [kind] * count
        elif markers[kind] != count:
            return f"{markers[kind]} <{kind}> marker(s) but {count} {kind} file(s)"
    if unmarked:  # media without markers open the first human turn
        messages[0]["content"] = [{"type": kind} for kind in unmarked] + messages[0]["content"]
    # Tail: a conversation must end with an answer; an odd trailing human turn is malformed.
    if messages[-1]["role"] != "assistant":
        return "ends with a human turn"
    return messages, answers


def is_conversation_data(data) -> bool:
    """Whether parsed JSON is the conversation format (a list of records, the first one with `conversations`)."""
    return isinstance(data, list) and bool(data) and isinstance(data[0], dict) and "conversations" in data[0]


def conversation_rows(records, source_file: Path, ctx: BuildContext, *, release: bool = False) -> Iterator:
    """Rows (or Skips) of the conversation records of one file; `release` takes each row's task from its record."""
    source = "multis" if release else "llava"
    for index, record in enumerate(records):
        name = str(record.get("id", f"#{index}")) if isinstance(record, dict) else f"#{index}"
        if not isinstance(record, dict):
            yield Skip(name, BAD_RECORD, f"not an object: {type(record).__name__}", str(source_file))
            continue
        paths: dict[str, list[Path]] = {}
        missing = None
        for kind in MODALITIES:
            value = record.get(kind)
            if value is None or value == "" or value == []:
                continue
            for item in value if isinstance(value, list) else [value]:
                path = ctx.find_media(str(item))
                if path is None:
                    missing = str(item)
                    break
                paths.setdefault(kind, []).append(path)
            if missing:
                break
        if missing:
            yield Skip(name, MISSING_MEDIA, missing, str(source_file))
            continue
        converted = convert_conversation(record, paths)
        if isinstance(converted, str):
            yield Skip(name, BAD_CONVERSATION, converted, str(source_file))
            continue
        messages, answers = converted
        kinds = [kind for kind in MODALITIES if kind in paths]
        modality = "audio-video" if kinds == ["video", "audio"] else "+".join(kinds) or "text"
        if release:
            task = record.get("task") or (source_file.stem if source_file.stem in MULTIS_TASKS else None)
            task = task or f"multis-{modality}"
        else:
            task = ctx.task
        yield ctx.row(id=f"{source}-{task}-{name}", stage=2, task=task, modality=modality, source=source,
                      answer=" | ".join(answers), messages=messages, images=paths.get("image", []),
                      videos=paths.get("video", []), audios=paths.get("audio", []))


def build_conversations(sources, ctx: BuildContext) -> Iterator:
    release = ctx.task in (None, "release")
    for source_file in iter_sources(sources, ["*.json", "*.jsonl"]):
        yield from conversation_rows(_read_records(source_file), source_file, ctx, release=release)


# The builders of this module; the package's `MULTIS_BUILDERS` adds those of the other multis_* modules.
BUILDERS = {
    "ti-shortqa": build_vqav2,
    "ti-cap": build_coco_captions,
    "ti-det": build_conversations,
    "ti-rea": build_conversations,
    "ti-conv": build_conversations,
    "tv-shortqa": build_msrvtt_qa,
    "tv-cap": build_msrvtt_captions,
    "ta-cap": build_audiocaps,
    "release": build_conversations,
}
