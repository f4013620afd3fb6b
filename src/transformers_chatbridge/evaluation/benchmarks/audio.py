"""Audio benchmarks: AudioCaps and Clotho captioning, ESC-50 classification.

Zero-shot prompts (our own phrasing: the paper does not publish its evaluation prompts):

| task | data | prompt | metrics |
|---|---|---|---|
| audiocaps | AudioCaps test (975 clips, 5 captions each) | "Write a short caption for this audio." | CIDEr-D |
| clotho | Clotho evaluation split (1,045 clips, 5 captions each) | "Write a short caption for this audio." | CIDEr-D |
| esc50 | ESC-50, all 2,000 clips | "Which of these sounds is it: {choices}? Answer with one of them." | accuracy |

ESC-50's `{choices}` are its 50 class names, `_` read as a space. Answers are mapped to a class by
`classification_accuracy` (`metrics.text.match_class`): the class whose name (with `_` read as a space) equals the
normalised answer, else the longest class name the answer contains as whole words; an answer naming no class is
wrong.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from ..tasks import Sample, Task, short_answer
from ._files import AUDIO_EXTENSIONS, MediaIndex, find_file

# This module's benchmarks, in the order `chatbridge eval --help` lists them (collected by `evaluation.registry`).
TASKS: list[Task] = []

logger = logging.getLogger(__name__)

AUDIO_CAPTION_PROMPT = "Write a short caption for this audio."


def load_audiocaps(data_dir: Path) -> list[Sample]:
    """AudioCaps `test.csv` (audiocap_id, youtube_id, start_time, caption; several rows per clip); the clip is
    `<youtube_id>_<start_time>.<wav|flac|mp3|ogg>` or `<youtube_id>.<ext>` in DIR, DIR/audio or DIR/test.
    Clips whose audio file is absent (AudioCaps clips vanish from YouTube) are left out, with a warning."""
    clips: dict[tuple[str, str], list[str]] = {}
    test_file = find_file(data_dir, ("test.csv", "*/test.csv"), "AudioCaps test.csv")
    with open(test_file, newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            clips.setdefault((row["youtube_id"], row["start_time"]), []).append(row["caption"].strip())
    audio = MediaIndex(data_dir, (".", "audio", "test"), AUDIO_EXTENSIONS)
    samples = []
    for (youtube_id, start), captions in clips.items():
        path = audio.find(f"{youtube_id}_{start}", f"{youtube_id}_{int(float(start))}", youtube_id)
        if path is not None:
            samples.append(Sample(f"{youtube_id}_{start}", None, {"audio": [str(path)]}, captions))
    if len(samples) < len(clips):
        logger.warning("AudioCaps: %d of %d clips are not in %s and are left out", len(clips) - len(samples),
                       len(clips), data_dir)  # fmt: skip
    return samples


CLOTHO_AUDIO_FOLDERS = ("evaluation", "clotho_audio_evaluation/evaluation", "clotho_audio_evaluation", "audio", ".")


def load_clotho(data_dir: Path) -> list[Sample]:
    """Clotho `clotho_captions_evaluation.csv` (file_name, caption_1 ... caption_5) and the evaluation clips,
    `<file_name>` in DIR/evaluation (the folder `clotho_audio_evaluation.7z` unpacks to), or DIR/audio, DIR."""
    patterns = ("clotho_captions_evaluation.csv", "*/clotho_captions_evaluation.csv")
    audio = MediaIndex(data_dir, CLOTHO_AUDIO_FOLDERS, AUDIO_EXTENSIONS)
    samples = []
    with open(find_file(data_dir, patterns, "Clotho evaluation captions"), newline="", encoding="utf-8-sig") as file:
        for row in csv.DictReader(file):
            captions = [row[key].strip() for key in sorted(row, key=str) if key.startswith("caption") and row[key]]
            path = audio.find(row["file_name"]) or audio.expected(row["file_name"])
            samples.append(Sample(row["file_name"], None, {"audio": [str(path)]}, captions))
    return samples


for _name, _loader, _description in (
    ("audiocaps", load_audiocaps, "AudioCaps test: CIDEr-D (clips whose audio is missing are left out)."),
    ("clotho", load_clotho, "Clotho evaluation split (1,045 clips, 5 captions each): CIDEr-D."),
):
    TASKS.append(
        Task(
            name=_name,
            modality="audio",
            loader=_loader,
            prompt=AUDIO_CAPTION_PROMPT,
            metrics=("cider",),
            max_new_tokens=30,
            description=_description,
        )
    )


def load_esc50(data_dir: Path) -> list[Sample]:
    """ESC-50: `meta/esc50.csv` (filename, fold, target, category, ...) and `audio/<filename>`; all 2,000 clips
    (5 folds), the 50 categories ordered by `target` as the choices."""
    with open(data_dir / "meta" / "esc50.csv", newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    classes = tuple(category for _, category in sorted({(int(row["target"]), row["category"]) for row in rows}))
    return [
        Sample(row["filename"], None, {"audio": [str(data_dir / "audio" / row["filename"])]}, [row["category"]],
               choices=classes)
        for row in rows
    ]  # fmt: skip


TASKS.append(
    Task(
        name="esc50",
        modality="audio",
        loader=load_esc50,
        prompt="Which of these sounds is it: {choices}? Answer with one of them.",
        metrics=("classification_accuracy",),
        postprocess=short_answer,
        max_new_tokens=10,
        description="ESC-50 (2,000 clips): classification accuracy, the answer mapped to the class it names.",
    )
)
