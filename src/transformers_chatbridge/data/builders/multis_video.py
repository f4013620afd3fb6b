"""MULTIS video instruction builders (`tv-det`, `tv-rea`, `tv-conv`) from Video-ChatGPT's `VideoInstruct100K.json`.

Format: a JSON list of `{"video_id": "v_k_ZXmr8pmrs", "q": "...", "a": "..."}` (ActivityNet videos); a record is
named `<video_id>#<index in the file>`. Video: `<video_id>.{mp4,mkv,webm,avi}`, also without / with the `v_` prefix
and under `videos/` (the layouts the released archives and common downloaders write). Questions are already
instructions, so they are used as written (media first), and the answer is the source's `a`.

The file mixes detailed descriptions, summaries and reasoning / temporal / spatial questions without labelling them.
The rule (`is_descriptive`): a question is a description request when it asks to describe, summarize, give an
overview of, narrate or walk through, or asks what happens / is happening, and speaks of the whole video (`video`,
`clip`, `footage`, `content`, `events`, `scene`), or asks for anything "in detail". Then:

- `tv-det`: the descriptive records; the others are counted as skipped (`other_task`, build them with `tv-rea`).
- `tv-rea`: the other records; the descriptive ones are counted as `other_task`.
- `tv-conv`: every record, grouped by video in file order into multi-turn conversations of at most
  `CONVERSATION_PAIRS` question-answer pairs (the pairs of one video are independent questions, so splitting a
  long run keeps rows short without losing context; each row is named `<video_id>/<part>`).

A folder source is read for `VideoInstruct*.json`; a conversation JSON file (records with `conversations`) is read
as such for any of the three tasks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from .common import (
    BAD_RECORD, EMPTY_TEXT, MISSING_MEDIA, OTHER_TASK, BuildContext, Skip, assistant_turn, clean_text, iter_sources,
    media_turn,
)
from .multis import conversation_rows, is_conversation_data, single_turn
from .multis_image import read_source, records_with

CONVERSATION_PAIRS = 3
VIDEO_EXTENSIONS = ("mp4", "mkv", "webm", "avi")
DESCRIBE = re.compile(
    r"\b(describe|description|summar(?:y|ize|ise)|overview|narrate|walk me through|what happens|"
    r"what(?: is|'s) happening|what is going on)\b", re.IGNORECASE)
WHOLE_VIDEO = re.compile(r"\b(video|clip|footage|content|events?|scene)\b", re.IGNORECASE)
IN_DETAIL = re.compile(r"\bin detail\b|\bdetailed\b", re.IGNORECASE)


def is_descriptive(question: str) -> bool:
    """The documented rule that sends a VideoInstruct100K question to tv-det (True) or tv-rea (False)."""
    return bool(IN_DETAIL.search(question) or (DESCRIBE.search(question) and WHOLE_VIDEO.search(question)))


def video_candidates(video_id: str, folders=("", "videos")) -> list[str]:
    stems = [video_id]
    stems.append(video_id[2:] if video_id.startswith("v_") else f"v_{video_id}")
    return [f"{folder}/{stem}.{ext}" if folder else f"{stem}.{ext}"
            for folder in folders for stem in stems for ext in VIDEO_EXTENSIONS]


def video_instruct_rows(data: list, source_file: Path, ctx: BuildContext) -> Iterator:
    task = ctx.task or "tv-det"
    found: dict = {}
    pairs: dict[str, list] = {}  # tv-conv: video_id -> [(record, question, answer, path)] in file order
    for index, item in enumerate(data):
        if not isinstance(item, dict) or not item.get("video_id"):
            yield Skip(f"#{index}", BAD_RECORD, "no video_id", str(source_file))
            continue
        video_id = str(item["video_id"])
        record = f"{video_id}#{index}"
        question, answer = clean_text(item.get("q")), clean_text(item.get("a"))
        if not question or not answer:
            yield Skip(record, EMPTY_TEXT, "empty a" if question else "empty q", str(source_file))
            continue
        if task in ("tv-det", "tv-rea") and is_descriptive(question) != (task == "tv-det"):
            other = "tv-rea" if task == "tv-det" else "tv-det"
            yield Skip(record, OTHER_TASK, other, str(source_file))
            continue
        if video_id not in found:
            found[video_id] = ctx.find_media(*video_candidates(video_id))
        path = found[video_id]
        if path is None:
            yield Skip(record, MISSING_MEDIA, f"{video_id}.mp4", str(source_file))
            continue
        if task == "tv-conv":
            pairs.setdefault(video_id, []).append((question, answer, path))
            continue
        yield single_turn(ctx, record=record, task=task, source="video-chatgpt", modality="video",
                          question=question, answer=answer, videos=[path])
    for video_id, video_pairs in pairs.items():
        for part, start in enumerate(range(0, len(video_pairs), CONVERSATION_PAIRS)):
            chunk = video_pairs[start:start + CONVERSATION_PAIRS]
            messages = []
            for number, (question, answer, _) in enumerate(chunk):
                messages += [media_turn(["video"] if number == 0 else [], question), assistant_turn(answer)]
            yield ctx.row(id=f"video-chatgpt-{task}-{video_id}/{part}", stage=2, task=task, modality="video",
                          source="video-chatgpt", answer=" | ".join(answer for _, answer, _ in chunk),
                          messages=messages, videos=[chunk[0][2]])


def build_video_instruct(sources, ctx: BuildContext) -> Iterator:
    for source_file in iter_sources(sources, ["VideoInstruct*.json"]):
        data = read_source(source_file)
        if is_conversation_data(data):
            yield from conversation_rows(data, source_file, ctx)
        elif records_with(data, "q"):
            yield from video_instruct_rows(data, source_file, ctx)
        else:
            raise ValueError(f"{source_file}: not Video-ChatGPT's VideoInstruct100K.json (a list of "
                             "{video_id, q, a}) nor conversation JSON.")


BUILDERS = {"tv-det": build_video_instruct, "tv-rea": build_video_instruct, "tv-conv": build_video_instruct}
