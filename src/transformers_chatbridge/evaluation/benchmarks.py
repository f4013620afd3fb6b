"""The built-in benchmarks: one loader (reading the benchmark's official file format) and one registration each.

Zero-shot prompts (our own phrasing; the paper does not publish its evaluation prompts):

| task | prompt |
|---|---|
| coco_caption | "Write a short caption for this image." |
| vqav2, msrvtt_qa | "{question} Answer the question using a single word or phrase." |
| audiocaps | "Write a short caption for this audio." |
| esc50 | "Which of these sounds is it: {the 50 class names}? Answer with one of them." |
| miniature | the row's own question; "Answer briefly." is added to normal-QA and reasoning questions |

ESC-50 answers are mapped to a class by `classification_accuracy` (`metrics.text.match_class`): the class whose
name (with `_` read as a space) equals the normalised answer, else the longest class name the answer contains as
whole words; an answer naming no class is wrong.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .tasks import SHORT_ANSWER_INSTRUCTION, Sample, Task, first_line, register_task, short_answer

# ---------------------------------------------------------------------------------------------------------------
# The miniature world (transformers_chatbridge.data.miniature): test split and novel split
# ---------------------------------------------------------------------------------------------------------------

MINIATURE_QA_KINDS = ("ti-shortqa", "ti-normalqa", "ti-ocr", "ti-rea", "tv-shortqa", "tv-rea")
MINIATURE_CAPTION_KINDS = ("ti-cap", "tv-cap", "ta-cap", "tva-cap")
MINIATURE_SHORT_SUFFIX = "Answer briefly."  # one of the miniature's own short-answer suffixes


def _miniature_loader(split: str):
    def load(data_dir: Path) -> list[Sample]:
        from transformers_chatbridge.data.miniature import load_miniature

        rows = load_miniature(data_dir)[split]
        samples = []
        for row in rows:
            if row["task"] not in MINIATURE_QA_KINDS + MINIATURE_CAPTION_KINDS:
                continue  # stage-1 rows, detailed descriptions and conversations have no checkable short answer
            question = " ".join(
                item["text"] for item in row["messages"][0]["content"] if item["type"] == "text" and item["text"]
            )
            media = {"images": row["images"], "videos": row["videos"], "audio": row["audios"]}
            samples.append(Sample(row["id"], question, media, [row["answer"]], group=row["task"]))
        return samples

    return load


def _miniature_metrics(group: str) -> tuple[str, ...]:
    return ("cider",) if group in MINIATURE_CAPTION_KINDS else ("exact_match",)


def _miniature_postprocess(text: str) -> str:
    return first_line(text)  # exact_match normalises case, punctuation and articles itself


for _name, _split in (("miniature", "test"), ("miniature-novel", "novel")):
    register_task(
        Task(
            name=_name,
            modality="mixed",
            loader=_miniature_loader(_split),
            prompt="{question}",
            prompt_by_group={
                "ti-normalqa": f"{{question}} {MINIATURE_SHORT_SUFFIX}",
                "ti-rea": f"{{question}} {MINIATURE_SHORT_SUFFIX}",
                "tv-rea": f"{{question}} {MINIATURE_SHORT_SUFFIX}",
            },
            metrics_by_group=_miniature_metrics,
            postprocess=_miniature_postprocess,
            max_new_tokens=30,
            description=f"Miniature world, {_split} split: exact match per QA task kind, CIDEr per caption modality.",
        )
    )

# ---------------------------------------------------------------------------------------------------------------
# Image
# ---------------------------------------------------------------------------------------------------------------


def _find(data_dir: Path, patterns: tuple[str, ...], what: str) -> Path:
    for pattern in patterns:
        found = sorted(data_dir.glob(pattern))
        if found:
            return found[0]
    raise FileNotFoundError(f"no {what} in {data_dir} (looked for {', '.join(patterns)})")


def load_coco_karpathy(data_dir: Path) -> list[Sample]:
    """Karpathy's `dataset_coco.json` (images with `split`, `filepath`, `filename`, `cocoid`, `sentences[].raw`);
    the test split's images are read from `DIR/<filepath>/<filename>` (`DIR/val2014/...`)."""
    karpathy = _find(data_dir, ("dataset_coco.json", "*/dataset_coco.json"), "dataset_coco.json")
    annotations = json.loads(karpathy.read_text())
    samples = []
    for image in annotations["images"]:
        if image.get("split") != "test":
            continue
        path = data_dir / image.get("filepath", "val2014") / image["filename"]
        references = [sentence["raw"].strip() for sentence in image["sentences"]]
        samples.append(Sample(str(image.get("cocoid", image["filename"])), None, {"images": [str(path)]}, references))
    return samples


register_task(
    Task(
        name="coco_caption",
        modality="image",
        loader=load_coco_karpathy,
        prompt="Write a short caption for this image.",
        metrics=("cider", "bleu4"),
        max_new_tokens=30,
        description="COCO captions, Karpathy test split (5,000 images): CIDEr-D and BLEU-4.",
    )
)


def load_vqav2(data_dir: Path) -> list[Sample]:
    """The official `*questions.json` + `*annotations.json` pair (val2014 preferred); images are
    `DIR/<subtype>/COCO_<subtype>_<image_id:012d>.jpg`, the subtype being the files' `data_subtype` (val2014)."""
    questions_file = _find(data_dir, ("*val2014_questions.json", "*questions.json"), "VQAv2 questions file")
    annotations_file = _find(data_dir, ("*val2014_annotations.json", "*annotations.json"), "VQAv2 annotations file")
    questions = json.loads(questions_file.read_text())
    annotations = {item["question_id"]: item for item in json.loads(annotations_file.read_text())["annotations"]}
    subtype = questions.get("data_subtype", "val2014")
    samples = []
    for question in questions["questions"]:
        annotation = annotations[question["question_id"]]
        image = data_dir / subtype / f"COCO_{subtype}_{question['image_id']:012d}.jpg"
        samples.append(
            Sample(
                str(question["question_id"]),
                question["question"],
                {"images": [str(image)]},
                [answer["answer"] for answer in annotation["answers"]],
                group=annotation.get("answer_type"),
            )
        )
    return samples


register_task(
    Task(
        name="vqav2",
        modality="image",
        loader=load_vqav2,
        prompt=f"{{question}} {SHORT_ANSWER_INSTRUCTION}",
        metrics=("vqa_accuracy",),
        postprocess=short_answer,
        max_new_tokens=10,
        description="VQAv2 val (official question and annotation files): VQA accuracy, per answer type.",
    )
)

# ---------------------------------------------------------------------------------------------------------------
# Video
# ---------------------------------------------------------------------------------------------------------------


def load_msrvtt_qa(data_dir: Path) -> list[Sample]:
    """MSRVTT-QA's `test_qa.json` (Xu et al. 2017): a list of `{"id", "video_id", "question", "answer"}`; the video
    is `DIR/videos/video<video_id>.mp4` (or `DIR/video<video_id>.mp4`); an entry may instead give `"video"`, a
    path relative to DIR. Reported per question word (what, who, how, when, where)."""
    test_file = _find(data_dir, ("test_qa.json", "*/test_qa.json", "test.json"), "MSRVTT-QA test file")
    entries = json.loads(test_file.read_text())
    samples = []
    for index, entry in enumerate(entries):
        if "video" in entry:
            video = data_dir / entry["video"]
        else:
            name = f"video{entry['video_id']}.mp4"
            video = data_dir / "videos" / name if (data_dir / "videos").is_dir() else data_dir / name
        question = entry["question"].strip()
        word = question.split()[0].lower() if question else None
        samples.append(
            Sample(str(entry.get("id", index)), question, {"videos": [str(video)]}, [str(entry["answer"])], group=word)
        )
    return samples


register_task(
    Task(
        name="msrvtt_qa",
        modality="video",
        loader=load_msrvtt_qa,
        prompt=f"{{question}} {SHORT_ANSWER_INSTRUCTION}",
        metrics=("exact_match",),
        postprocess=short_answer,
        max_new_tokens=10,
        description="MSRVTT-QA test: accuracy (normalised exact match), per question word.",
    )
)

# ---------------------------------------------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------------------------------------------

AUDIO_EXTENSIONS = ("wav", "flac", "mp3", "ogg")


def _audiocaps_file(data_dir: Path, youtube_id: str, start: str) -> Path | None:
    for folder in (data_dir, data_dir / "audio", data_dir / "test"):
        for stem in (f"{youtube_id}_{start}", f"{youtube_id}_{int(float(start))}", youtube_id):
            for extension in AUDIO_EXTENSIONS:
                if (folder / f"{stem}.{extension}").is_file():
                    return folder / f"{stem}.{extension}"
    return None


def load_audiocaps(data_dir: Path) -> list[Sample]:
    """AudioCaps `test.csv` (audiocap_id, youtube_id, start_time, caption; several rows per clip); the clip is
    `<youtube_id>_<start_time>.<wav|flac|mp3|ogg>` or `<youtube_id>.<ext>` in DIR, DIR/audio or DIR/test.
    Clips whose audio file is absent (AudioCaps clips vanish from YouTube) are left out."""
    clips: dict[tuple[str, str], list[str]] = {}
    with open(_find(data_dir, ("test.csv", "*/test.csv"), "AudioCaps test.csv"), newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            clips.setdefault((row["youtube_id"], row["start_time"]), []).append(row["caption"].strip())
    samples = []
    for (youtube_id, start), captions in clips.items():
        path = _audiocaps_file(data_dir, youtube_id, start)
        if path is not None:
            samples.append(Sample(f"{youtube_id}_{start}", None, {"audio": [str(path)]}, captions))
    return samples


register_task(
    Task(
        name="audiocaps",
        modality="audio",
        loader=load_audiocaps,
        prompt="Write a short caption for this audio.",
        metrics=("cider",),
        max_new_tokens=30,
        description="AudioCaps test: CIDEr-D (clips whose audio is missing are left out).",
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


register_task(
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
