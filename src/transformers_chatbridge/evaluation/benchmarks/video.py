"""Video benchmarks (the video's frames only): MSR-VTT and MSVD question answering, MSR-VTT and VATEX captioning.

Zero-shot prompts (our own phrasing: the paper does not publish its evaluation prompts):

| task | data | prompt | metrics (groups) |
|---|---|---|---|
| msrvtt_qa | MSRVTT-QA test (72,821 questions) | short answer (1) | exact match (per question word) |
| msvd_qa | MSVD-QA test (13,157 questions) | short answer (1) | exact match (per question word) |
| msrvtt_caption | MSR-VTT test split (2,990 videos, 20 captions each) | caption (2) | CIDEr-D, BLEU-4 |
| vatex | VATEX public test (English, v1.1) or validation | caption (2) | CIDEr-D, BLEU-4 |

(1) "{question} Answer the question using a single word or phrase."  (2) "Write a short caption for this video."
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..tasks import SHORT_ANSWER_INSTRUCTION, Sample, Task, short_answer
from ._files import VIDEO_EXTENSIONS, MediaIndex, find_file, read_json

# This module's benchmarks, in the order `chatbridge eval --help` lists them (collected by `evaluation.registry`).
TASKS: list[Task] = []

logger = logging.getLogger(__name__)

VIDEO_CAPTION_PROMPT = "Write a short caption for this video."
SHORT_ANSWER_PROMPT = f"{{question}} {SHORT_ANSWER_INSTRUCTION}"

# Where MSR-VTT videos (`video<N>.mp4`) are: the 2016 release's TestVideo/TrainValVideo, the common `videos/all`.
MSRVTT_VIDEO_FOLDERS = ("videos", "videos/all", "TestVideo", "TrainValVideo", "test-video", ".")


def _question_word(question: str) -> str | None:
    return question.split()[0].lower() if question.split() else None


# ---------------------------------------------------------------------------------------------------------------
# Question answering
# ---------------------------------------------------------------------------------------------------------------


def load_msrvtt_qa(data_dir: Path) -> list[Sample]:
    """MSRVTT-QA's `test_qa.json` (Xu et al. 2017): a list of `{"id", "video_id", "question", "answer"}`; the video
    is `video<video_id>.mp4` in DIR/videos (or DIR/videos/all, DIR/TestVideo, DIR); an entry may instead give
    `"video"`, a path relative to DIR. Reported per question word (what, who, how, when, where)."""
    test_file = find_file(data_dir, ("test_qa.json", "*/test_qa.json", "test.json"), "MSRVTT-QA test file")
    videos = MediaIndex(data_dir, MSRVTT_VIDEO_FOLDERS, VIDEO_EXTENSIONS)
    samples = []
    for index, entry in enumerate(read_json(test_file)):
        if "video" in entry:
            video = data_dir / entry["video"]
        else:
            name = f"video{entry['video_id']}"
            video = videos.find(name) or videos.expected(f"{name}.mp4")
        question = entry["question"].strip()
        samples.append(Sample(str(entry.get("id", index)), question, {"videos": [str(video)]}, [str(entry["answer"])],
                              group=_question_word(question)))  # fmt: skip
    return samples


def _msvd_mapping(data_dir: Path) -> dict[int, str]:
    """`youtube_mapping.txt` of MSVD-QA: lines `<clip name> vid<N>` (N: the QA files' `video_id`)."""
    try:
        path = find_file(data_dir, ("youtube_mapping.txt", "*/youtube_mapping.txt"), "youtube_mapping.txt")
    except FileNotFoundError:
        return {}
    mapping = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].startswith("vid") and fields[1][3:].isdigit():
            mapping[int(fields[1][3:])] = fields[0]
    return mapping


def load_msvd_qa(data_dir: Path) -> list[Sample]:
    """MSVD-QA's `test_qa.json` (a list of `{"id", "video_id", "question", "answer"}`, `video_id` the number N of
    `vid<N>`) and `youtube_mapping.txt` (`<clip name> vid<N>` per line), with the MSVD clips as distributed:
    `<clip name>.avi` in DIR/YouTubeClips (or DIR/videos, DIR); clips renamed `vid<N>.<ext>` are found too.
    Reported per question word."""
    test_file = find_file(data_dir, ("test_qa.json", "*/test_qa.json"), "MSVD-QA test_qa.json")
    mapping = _msvd_mapping(data_dir)
    videos = MediaIndex(data_dir, ("YouTubeClips", "videos", "."), ("avi",) + VIDEO_EXTENSIONS)
    samples = []
    for index, entry in enumerate(read_json(test_file)):
        number = int(entry["video_id"])
        clip = mapping.get(number)
        names = ([clip] if clip else []) + [f"vid{number}", f"video{number}"]
        video = videos.find(*names) or videos.expected(clip or f"vid{number}")
        question = entry["question"].strip()
        samples.append(Sample(str(entry.get("id", index)), question, {"videos": [str(video)]}, [str(entry["answer"])],
                              group=_question_word(question)))  # fmt: skip
    if samples and not mapping and not any(Path(s.media["videos"][0]).is_file() for s in samples):
        raise FileNotFoundError(f"MSVD-QA: no youtube_mapping.txt in {data_dir} to find the clips of the video ids")
    return samples


for _name, _loader, _description in (
    ("msrvtt_qa", load_msrvtt_qa, "MSRVTT-QA test: accuracy (normalised exact match), per question word."),
    ("msvd_qa", load_msvd_qa, "MSVD-QA test: accuracy (normalised exact match), per question word."),
):
    TASKS.append(
        Task(
            name=_name,
            modality="video",
            loader=_loader,
            prompt=SHORT_ANSWER_PROMPT,
            metrics=("exact_match",),
            postprocess=short_answer,
            max_new_tokens=10,
            description=_description,
        )
    )

# ---------------------------------------------------------------------------------------------------------------
# Captioning
# ---------------------------------------------------------------------------------------------------------------

MSRVTT_CAPTION_FILES = (
    "test_videodatainfo.json", "*/test_videodatainfo.json", "MSRVTT_data.json", "*/MSRVTT_data.json",
    "videodatainfo_2017.json", "train_val_videodatainfo.json", "*/train_val_videodatainfo.json",
)  # fmt: skip


def load_msrvtt_caption(data_dir: Path) -> list[Sample]:
    """MSR-VTT's `test_videodatainfo.json` (`videos[]` with `video_id` "video<N>" and `split`; `sentences[]` with
    `video_id` and `caption`), test split (2,990 videos); a file holding every split in the same format
    (`MSRVTT_data.json`, ...) serves too. Videos as for `msrvtt_qa` (`video<N>.mp4` in DIR/videos, DIR/TestVideo,
    ...). `train_val_videodatainfo.json` has no test videos: the test split is in `test_videodatainfo.json`."""
    looked = []
    for pattern in MSRVTT_CAPTION_FILES:
        for path in sorted(data_dir.glob(pattern)):
            looked.append(path.name)
            info = read_json(path)
            test = [video["video_id"] for video in info.get("videos", []) if video.get("split") == "test"]
            if test:
                return _msrvtt_caption_samples(data_dir, test, info.get("sentences", []))
    found = f"found only {', '.join(looked)}" if looked else f"looked for {', '.join(MSRVTT_CAPTION_FILES)}"
    raise FileNotFoundError(f"no MSR-VTT test-split videos in {data_dir} ({found}): test_videodatainfo.json has them")


def _msrvtt_caption_samples(data_dir: Path, test: list[str], sentences: list[dict]) -> list[Sample]:
    captions: dict[str, list[str]] = {video_id: [] for video_id in test}
    for sentence in sentences:
        if sentence["video_id"] in captions:
            captions[sentence["video_id"]].append(sentence["caption"].strip())
    videos = MediaIndex(data_dir, MSRVTT_VIDEO_FOLDERS, VIDEO_EXTENSIONS)
    return [
        Sample(video_id, None, {"videos": [str(videos.find(video_id) or videos.expected(f"{video_id}.mp4"))]}, refs)
        for video_id, refs in captions.items()
        if refs
    ]


VATEX_FILES = (
    "vatex_public_test_english_v1.1.json", "*/vatex_public_test_english_v1.1.json", "vatex_validation_v1.0.json",
    "*/vatex_validation_v1.0.json",
)  # fmt: skip


def load_vatex(data_dir: Path) -> list[Sample]:
    """VATEX `vatex_public_test_english_v1.1.json` (else `vatex_validation_v1.0.json`): a list of `{"videoID",
    "enCap": [10 English captions]}`, `videoID` being `<YouTube id>_<start>_<end>`. Clips are `<videoID>.<ext>` (or
    `<YouTube id>.<ext>`) in DIR/videos, DIR/test, DIR/val or DIR; clips that are absent (VATEX clips vanish from
    YouTube) are left out, with a warning."""
    entries = read_json(find_file(data_dir, VATEX_FILES, "VATEX English captions file"))
    videos = MediaIndex(data_dir, ("videos", "test", "val", "."), VIDEO_EXTENSIONS)
    samples, missing = [], 0
    for entry in entries:
        references = [caption.strip() for caption in entry.get("enCap") or ()]
        if not references:
            continue
        video = videos.find(entry["videoID"], entry["videoID"].rsplit("_", 2)[0])
        if video is None:
            missing += 1
            continue
        samples.append(Sample(entry["videoID"], None, {"videos": [str(video)]}, references))
    if missing:
        logger.warning("VATEX: %d of %d clips are not in %s and are left out", missing, missing + len(samples),
                       data_dir)  # fmt: skip
    return samples


for _name, _loader, _description in (
    ("msrvtt_caption", load_msrvtt_caption, "MSR-VTT captioning, test split (2,990 videos): CIDEr-D and BLEU-4."),
    ("vatex", load_vatex, "VATEX captioning, English public test (or validation): CIDEr-D and BLEU-4 (absent "
     "clips left out)."),
):  # fmt: skip
    TASKS.append(
        Task(
            name=_name,
            modality="video",
            loader=_loader,
            prompt=VIDEO_CAPTION_PROMPT,
            metrics=("cider", "bleu4"),
            max_new_tokens=30,
            description=_description,
        )
    )
