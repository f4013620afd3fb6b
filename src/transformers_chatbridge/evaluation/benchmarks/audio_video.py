"""Audio-video benchmarks (a video and its sound track): VALOR-32K captioning, MUSIC-AVQA, AVSD dialogue.

Each sample gives the model the video and, as its audio, a separately extracted sound track when there is one
(`audio/<video stem>.wav`, `.flac`, ..., or the same next to the video) or else the video file itself (its sound
track is decoded with PyAV); a video without a sound track is asked about as a video only. The prompt then opens
with "Given following video: <video> and its background audio: <audio>." (the released model's sentence).

Zero-shot prompts (our own phrasing: the paper does not publish its evaluation prompts):

| task | data | prompt | metrics (groups) |
|---|---|---|---|
| valor32k | VALOR-32K test (3,500 videos) | "Write a short caption for this video and its sound." | CIDEr-D, BLEU-4 |
| music_avqa | MUSIC-AVQA test | short answer (1) | answer accuracy (per question type) |
| avsd | AVSD DSTC7 test (1,710 dialogues) | history, then "{question} Answer in one sentence." | CIDEr-D, BLEU-4 |

(1) "{question} Answer the question using a single word or phrase."

MUSIC-AVQA is scored as the classification its answers form (42 answers, the vocabulary being every answer of the
test file): a generated answer maps to the answer it names (`classification_accuracy`: equal after normalisation,
else the longest answer it contains as whole words), digits first written as words ("2" -> "two").

AVSD: each dialogue's withheld turn (the one whose answer is `__UNDISCLOSED__`, else its last turn) is answered after
the earlier turns, which are given as chat turns; the dialogue's caption and summary are not shown. Its references are
the six answers of the official multi-reference file when it is there, else the labelled test file's answer.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ..tasks import SHORT_ANSWER_INSTRUCTION, Sample, Task, first_line, short_answer
from ._files import (
    VIDEO_EXTENSIONS, MediaIndex, find_file, literal_list, read_json, soundtrack_index, video_with_soundtrack
)  # fmt: skip

# This module's benchmarks, in the order `chatbridge eval --help` lists them (collected by `evaluation.registry`).
TASKS: list[Task] = []

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------------------
# VALOR-32K captioning
# ---------------------------------------------------------------------------------------------------------------


def load_valor32k(data_dir: Path) -> list[Sample]:
    """VALOR-32K `desc_test.json`: a list of `{"video_id", "desc"}` (`desc` one audio-visual caption, or a list),
    `video_id` being `<YouTube id>_<start>_<end>`. Clips are `<video_id>.<ext>` in DIR/videos, DIR/test or DIR;
    clips that are absent (they come from YouTube) are left out, with a warning."""
    entries = read_json(find_file(data_dir, ("desc_test.json", "*/desc_test.json"), "VALOR-32K desc_test.json"))
    captions: dict[str, list[str]] = {}
    for entry in entries:
        descriptions = entry["desc"] if isinstance(entry["desc"], list) else [entry["desc"]]
        captions.setdefault(str(entry["video_id"]), []).extend(text.strip() for text in descriptions if text.strip())
    videos = MediaIndex(data_dir, ("videos", "test", "."), VIDEO_EXTENSIONS)
    soundtracks = soundtrack_index(data_dir)
    samples, missing = [], 0
    for video_id, references in captions.items():
        video = videos.find(video_id)
        if video is None:
            missing += 1
            continue
        samples.append(Sample(video_id, None, video_with_soundtrack(video, soundtracks, video_id), references))
    if missing:
        logger.warning("VALOR-32K: %d of %d clips are not in %s and are left out", missing, len(captions), data_dir)
    return samples


TASKS.append(
    Task(
        name="valor32k",
        modality="audio-video",
        loader=load_valor32k,
        prompt="Write a short caption for this video and its sound.",
        metrics=("cider", "bleu4"),
        max_new_tokens=30,
        description="VALOR-32K test (audio-visual captions): CIDEr-D and BLEU-4 (absent clips left out).",
    )
)

# ---------------------------------------------------------------------------------------------------------------
# MUSIC-AVQA
# ---------------------------------------------------------------------------------------------------------------

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
MUSIC_AVQA_VIDEO_FOLDERS = ("MUSIC-AVQA-videos-Real", "MUSIC-AVQA-videos-Synthetic", "videos", ".")


def fill_template(question: str, values: list) -> str:
    """A MUSIC-AVQA question with its `<Object>`, `<LL_Instrument>`, ... placeholders replaced in order by the
    template values (underscores read as spaces: `acoustic_guitar` -> `acoustic guitar`)."""
    values = iter(str(value).replace("_", " ") for value in values)
    return re.sub(r"<[^<>]+>", lambda match: next(values, match.group(0)), question).strip()


def music_avqa_answer(text: str) -> str:
    """A short answer with its digits as words ("2" -> "two"): MUSIC-AVQA's counts are words."""
    return re.sub(r"\b(10|[0-9])\b", lambda match: NUMBER_WORDS[int(match.group(1))], short_answer(text))


def load_music_avqa(data_dir: Path) -> list[Sample]:
    """MUSIC-AVQA `avqa-test.json`: a list of `{"video_id", "question_id", "type", "question_content",
    "templ_values", "anser"}` (`anser`, sic; `type` and `templ_values` are lists written as text). Videos are
    `<video_id>.mp4` in DIR/MUSIC-AVQA-videos-Real (the official archive's folder), DIR/MUSIC-AVQA-videos-Synthetic,
    DIR/videos or DIR. Reported per question type (`Audio/Counting`, `Audio-Visual/Temporal`, ...)."""
    patterns = ("avqa-test.json", "*/avqa-test.json", "*/*/avqa-test.json")
    entries = read_json(find_file(data_dir, patterns, "MUSIC-AVQA avqa-test.json"))
    answers = [str(entry.get("anser", entry.get("answer"))) for entry in entries]
    classes = tuple(dict.fromkeys(answers))
    videos = MediaIndex(data_dir, MUSIC_AVQA_VIDEO_FOLDERS, VIDEO_EXTENSIONS)
    soundtracks = soundtrack_index(data_dir)
    media: dict[str, dict[str, list[str]]] = {}
    samples = []
    for entry, answer in zip(entries, answers):
        video_id = str(entry["video_id"])
        if video_id not in media:
            video = videos.find(video_id) or videos.expected(f"{video_id}.mp4")
            media[video_id] = video_with_soundtrack(video, soundtracks, video_id)
        question = fill_template(entry["question_content"], literal_list(entry.get("templ_values")))
        group = "/".join(str(kind) for kind in literal_list(entry.get("type"))) or None
        samples.append(Sample(str(entry["question_id"]), question, media[video_id], [answer], group=group,
                              choices=classes))  # fmt: skip
    return samples


TASKS.append(
    Task(
        name="music_avqa",
        modality="audio-video",
        loader=load_music_avqa,
        prompt=f"{{question}} {SHORT_ANSWER_INSTRUCTION}",
        metrics=("classification_accuracy",),
        postprocess=music_avqa_answer,
        max_new_tokens=10,
        description="MUSIC-AVQA test: answer accuracy (the answer mapped to the answer class it names), per question "
        "type.",
    )
)

# ---------------------------------------------------------------------------------------------------------------
# AVSD
# ---------------------------------------------------------------------------------------------------------------

UNDISCLOSED = "__UNDISCLOSED__"
AVSD_DIALOGUE_FILES = (
    "test_set4DSTC7-AVSD.json", "test_set4DSTC8-AVSD.json", "test_set4DSTC*-AVSD.json", "*/test_set4DSTC*-AVSD.json"
)  # fmt: skip


def _withheld_turn(turns: list[dict]) -> int:
    return next((index for index, turn in enumerate(turns) if turn.get("answer") == UNDISCLOSED), len(turns) - 1)


def _avsd_references(data_dir: Path, dialogue_file: Path) -> tuple[dict[str, list[str]], dict[str, list[dict]]]:
    """({video: the multi-reference file's answers}, {video: the labelled test file's turns}), either may be empty.

    The multi-reference file (`<dialogue file>_multiref.json`, COCO style) names each scored turn `<video>_<turn>`
    in `images[].name`, with its answers in `annotations[]` (`image_id`, `caption`). The labelled test file
    (`lbl_<dialogue file>.json`) is the dialogue file with the withheld answers filled in."""
    stem = dialogue_file.stem
    multiref: dict[str, list[str]] = {}
    for pattern in (f"{stem}_multiref.json", f"*/{stem}_multiref.json", "*multiref*.json", "*/*multiref*.json"):
        found = sorted(data_dir.glob(pattern))
        if found:
            coco = read_json(found[0])
            video_of = {image["id"]: str(image.get("name", image.get("file_name", image["id"]))).rsplit("_", 1)[0]
                        for image in coco["images"]}  # fmt: skip
            for annotation in coco["annotations"]:
                multiref.setdefault(video_of[annotation["image_id"]], []).append(annotation["caption"].strip())
            break
    labelled: dict[str, list[dict]] = {}
    found = sorted(data_dir.glob(f"lbl_{stem}.json")) + sorted(data_dir.glob(f"*/lbl_{stem}.json"))
    if found:
        labelled = {dialog["image_id"]: dialog["dialog"] for dialog in read_json(found[0])["dialogs"]}
    return multiref, labelled


def load_avsd(data_dir: Path) -> list[Sample]:
    """AVSD (DSTC7, or DSTC8) test dialogues, `test_set4DSTC7-AVSD.json` (`{"dialogs": [{"image_id", "caption",
    "summary", "dialog": [{"question", "answer"}, ...]}]}`, the withheld answer being `__UNDISCLOSED__`), with the
    references of `test_set4DSTC7-AVSD_multiref.json` (DSTC7's evaluation package, 6 answers per dialogue) or else
    of `lbl_test_set4DSTC7-AVSD.json`. Videos are the Charades clips `<image_id>.mp4` in DIR/Charades_v1_480 (the
    official archive's folder), DIR/videos or DIR. A dialogue without any reference is left out, with a warning."""
    dialogue_file = find_file(data_dir, AVSD_DIALOGUE_FILES, "AVSD test dialogue file")
    multiref, labelled = _avsd_references(data_dir, dialogue_file)
    videos = MediaIndex(data_dir, ("Charades_v1_480", "videos", "."), VIDEO_EXTENSIONS)
    soundtracks = soundtrack_index(data_dir)
    samples, unreferenced = [], []
    for dialog in read_json(dialogue_file)["dialogs"]:
        video_id, turns = str(dialog["image_id"]), dialog["dialog"]
        if not turns:
            continue
        turn = _withheld_turn(turns)
        references = multiref.get(video_id)
        if not references and video_id in labelled and turn < len(labelled[video_id]):
            references = [labelled[video_id][turn]["answer"]]
        if not references and turns[turn].get("answer") not in (None, "", UNDISCLOSED):
            references = [turns[turn]["answer"]]
        if not references or any(reference == UNDISCLOSED for reference in references):
            unreferenced.append(video_id)
            continue
        video = videos.find(video_id) or videos.expected(f"{video_id}.mp4")
        history = tuple((item["question"].strip(), item["answer"].strip()) for item in turns[:turn])
        samples.append(Sample(f"{video_id}_{turn}", turns[turn]["question"].strip(),
                              video_with_soundtrack(video, soundtracks, video_id), references, history=history))
    if unreferenced and not samples:
        raise FileNotFoundError(
            f"AVSD: the dialogues of {dialogue_file.name} withhold their answers and no reference file is in "
            f"{data_dir} (put {dialogue_file.stem}_multiref.json or lbl_{dialogue_file.name} next to it)"
        )
    if unreferenced:
        logger.warning("AVSD: %d dialogues have no reference answer and are left out", len(unreferenced))
    return samples


TASKS.append(
    Task(
        name="avsd",
        modality="audio-video",
        loader=load_avsd,
        prompt="{question} Answer in one sentence.",
        metrics=("cider", "bleu4"),
        postprocess=first_line,
        max_new_tokens=30,
        description="AVSD (DSTC7) test: the withheld answer of each dialogue after its earlier turns, CIDEr-D and "
        "BLEU-4 against its references.",
    )
)
