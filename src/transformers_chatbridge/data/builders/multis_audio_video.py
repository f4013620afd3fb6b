"""MULTIS audio-video builders (`tva-cap`, `tva-det`, `tva-conv`) from VALOR-32K and AVSD.

An audio-video row holds one video item and one audio item (the `videos` and `audios` columns, as in the miniature
world and the release loader), both at the start of the first user turn. The audio of a clip is, in order: a
sibling `<stem>.wav` / `<stem>.flac` of the video file, `<id>.wav|flac` under `media_root` or `media_root/audio/`,
else the video file itself when it has an audio stream (checked with PyAV when building; the processor's audio
feature extractor reads an MP4's audio track with PyAV, since libsndfile cannot). A clip with neither is skipped as
`missing_media` (the detail says so), as is a record whose video is not found.

- VALOR-32K `desc_<split>.json`: `[{"video_id", "desc"}]` (AudioSet clips, one audio-visual description each).
  Video `<video_id>.{mp4,mkv,webm,avi}` (also under `videos/`). `tva-cap` only: its descriptions are one sentence,
  so `tva-det` / `tva-conv` refuse it.
- AVSD (DSTC7 `train_set4DSTC7-AVSD.json`): `{"dialogs": [{"image_id", "caption", "summary", "dialog":
  [{"question", "answer"}, ...]}]}` (Charades videos). Video `<image_id>.{mp4,...}` (also under
  `Charades_v1_480/`). `tva-cap`: the `caption`; `tva-det`: `caption` and `summary` joined (what the Charades
  annotator described, then the questioner's summary of what was seen and heard); `tva-conv`: the `dialog` as a
  multi-turn conversation kept whole (its questions refer back to earlier turns). A dialog with an empty question or
  answer (the test file hides the last answer) is skipped (`malformed_conversation`).

A folder source is read for `desc_train.json` and `train_set4DSTC7-AVSD.json`; a conversation JSON file (records
with `conversations`) is read as such.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .common import (
    BAD_CONVERSATION, BAD_RECORD, EMPTY_CAPTION, MISSING_MEDIA, BuildContext, Skip, assistant_turn, clean_text,
    iter_sources, media_turn,
)
from .multis import conversation_rows, is_conversation_data
from .multis_image import read_source, records_with
from .multis_video import VIDEO_EXTENSIONS
from .templates import CAPTION, DETAIL

AUDIO_EXTENSIONS = ("wav", "flac")
UNDISCLOSED = "__UNDISCLOSED__"


def has_audio_track(path: Path) -> bool:
    """Whether PyAV finds an audio stream in `path` (False when it cannot open it)."""
    import av  # noqa: PLC0415 (only the audio-video builders need it)

    try:
        with av.open(str(path), mode="r") as container:
            return bool(container.streams.audio)
    except Exception:  # noqa: BLE001 (any decoder error means no usable track)
        return False


class AudioVideoFinder:
    """(video, audio) paths of a clip id, looked up once per id, or a detail string saying what is missing."""

    def __init__(self, ctx: BuildContext, folders: tuple[str, ...]):
        self.ctx = ctx
        self.folders = ("", *folders)
        self.cache: dict = {}

    def __call__(self, clip_id: str) -> tuple[Path, Path] | str:
        if clip_id not in self.cache:
            self.cache[clip_id] = self._find(clip_id)
        return self.cache[clip_id]

    def _find(self, clip_id: str) -> tuple[Path, Path] | str:
        video = self.ctx.find_media(*(f"{folder}/{clip_id}.{ext}" if folder else f"{clip_id}.{ext}"
                                      for folder in self.folders for ext in VIDEO_EXTENSIONS))
        if video is None:
            return f"{clip_id}.mp4 (no video)"
        audio = self.ctx.find_media(*(video.with_suffix(f".{ext}") for ext in AUDIO_EXTENSIONS))
        audio = audio or self.ctx.find_media(*(f"{folder}{clip_id}.{ext}" for folder in ("", "audio/")
                                               for ext in AUDIO_EXTENSIONS))
        if audio is None and has_audio_track(video):
            audio = video
        if audio is None:
            return f"{clip_id}: no {clip_id}.wav/.flac and {video.name} has no audio track"
        return video, audio


def av_row(ctx: BuildContext, *, record: str, task: str, source: str, media: tuple[Path, Path], turns) -> dict:
    """A row whose first user turn opens with the clip's video and audio; `turns` = [(question, answer), ...]."""
    messages = []
    for number, (question, answer) in enumerate(turns):
        messages += [media_turn(["video", "audio"] if number == 0 else [], question), assistant_turn(answer)]
    return ctx.row(id=f"{source}-{task}-{record}", stage=2, task=task, modality="audio-video", source=source,
                   answer=" | ".join(answer for _, answer in turns), messages=messages, videos=[media[0]],
                   audios=[media[1]])


def valor_rows(data: list, source_file: Path, ctx: BuildContext) -> Iterator:
    task = ctx.task or "tva-cap"
    if task != "tva-cap":
        raise ValueError(f"{source_file}: VALOR-32K holds one-sentence descriptions: build tva-cap from it; "
                         f"{task} needs AVSD (train_set4DSTC7-AVSD.json).")
    find = AudioVideoFinder(ctx, ("videos",))
    for index, item in enumerate(data):
        if not isinstance(item, dict) or not item.get("video_id"):
            yield Skip(f"#{index}", BAD_RECORD, "no video_id", str(source_file))
            continue
        record = str(item["video_id"])
        desc = clean_text(item.get("desc"))
        if not desc:
            yield Skip(record, EMPTY_CAPTION, "empty desc", str(source_file))
            continue
        media = find(record)
        if isinstance(media, str):
            yield Skip(record, MISSING_MEDIA, media, str(source_file))
            continue
        yield av_row(ctx, record=record, task=task, source="valor", media=media,
                     turns=[(ctx.choose(CAPTION["audio-video"], task, record), desc)])


def avsd_rows(data: dict, source_file: Path, ctx: BuildContext) -> Iterator:
    task = ctx.task or "tva-conv"
    find = AudioVideoFinder(ctx, ("Charades_v1_480", "videos"))
    for index, dialog in enumerate(data.get("dialogs") or []):
        if not isinstance(dialog, dict) or not dialog.get("image_id"):
            yield Skip(f"#{index}", BAD_RECORD, "no image_id", str(source_file))
            continue
        record = str(dialog["image_id"])
        if task == "tva-conv":
            turns = [(clean_text(turn.get("question")), clean_text(turn.get("answer"))) if isinstance(turn, dict)
                     else ("", "") for turn in dialog.get("dialog") or []]
            bad = next((i for i, (q, a) in enumerate(turns) if not q or not a or a == UNDISCLOSED), None)
            if not turns or bad is not None:
                detail = "no dialog turns" if not turns else f"turn {bad} has an empty or undisclosed question/answer"
                yield Skip(record, BAD_CONVERSATION, detail, str(source_file))
                continue
        else:
            parts = [clean_text(dialog.get("caption"))]
            if task == "tva-det":
                parts.append(clean_text(dialog.get("summary")))
            text = " ".join(dict.fromkeys(part for part in parts if part))  # joined, a repeated text once
            if not text:
                yield Skip(record, EMPTY_CAPTION, "empty caption" + (" and summary" if task == "tva-det" else ""),
                           str(source_file))
                continue
            templates = DETAIL["audio-video"] if task == "tva-det" else CAPTION["audio-video"]
            turns = [(ctx.choose(templates, task, record), text)]
        media = find(record)
        if isinstance(media, str):
            yield Skip(record, MISSING_MEDIA, media, str(source_file))
            continue
        yield av_row(ctx, record=record, task=task, source="avsd", media=media, turns=turns)


def build_audio_video(sources, ctx: BuildContext) -> Iterator:
    for source_file in iter_sources(sources, ["desc_train.json", "train_set4DSTC7-AVSD.json"]):
        data = read_source(source_file)
        if is_conversation_data(data):
            yield from conversation_rows(data, source_file, ctx)
        elif isinstance(data, dict) and isinstance(data.get("dialogs"), list):
            yield from avsd_rows(data, source_file, ctx)
        elif records_with(data, "desc"):
            yield from valor_rows(data, source_file, ctx)
        else:
            raise ValueError(f"{source_file}: neither VALOR-32K ([{{video_id, desc}}]) nor AVSD ({{dialogs: [...]}}) "
                             "nor conversation JSON.")


BUILDERS = {"tva-cap": build_audio_video, "tva-det": build_audio_video, "tva-conv": build_audio_video}
