"""Image benchmarks: COCO, Flickr30K and NoCaps captioning; VQAv2, OK-VQA and GQA question answering.

Zero-shot prompts (our own phrasing: the paper does not publish its evaluation prompts):

| task | data | prompt | metrics (groups) |
|---|---|---|---|
| coco_caption | COCO, Karpathy test split (5,000 images) | caption (1) | CIDEr-D, BLEU-4 |
| flickr30k | Flickr30K, Karpathy test split (1,000 images) | caption (1) | CIDEr-D, BLEU-4 |
| nocaps | NoCaps validation (4,500 images) | caption (1) | CIDEr-D, BLEU-4 (per domain) |
| vqav2 | VQAv2 val2014 | short answer (2) | VQA accuracy (per answer type) |
| okvqa | OK-VQA val2014 (5,046 questions) | short answer (2) | VQA accuracy (per knowledge category) |
| gqa | GQA test-dev balanced (12,578 questions) | short answer (2) | exact match (per structural type) |

(1) "Write a short caption for this image."  (2) "{question} Answer the question using a single word or phrase."
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..tasks import SHORT_ANSWER_INSTRUCTION, Sample, Task, short_answer
from ._files import IMAGE_EXTENSIONS, MediaIndex, find_file, read_json

# This module's benchmarks, in the order `chatbridge eval --help` lists them (collected by `evaluation.registry`).
TASKS: list[Task] = []

IMAGE_CAPTION_PROMPT = "Write a short caption for this image."
SHORT_ANSWER_PROMPT = f"{{question}} {SHORT_ANSWER_INSTRUCTION}"

# ---------------------------------------------------------------------------------------------------------------
# Captioning: Karpathy's split files (COCO, Flickr30K) and NoCaps' COCO-style file
# ---------------------------------------------------------------------------------------------------------------


def _load_karpathy(data_dir: Path, file_name: str, image_path: Callable[[dict], Path]) -> list[Sample]:
    """The test split of one of Karpathy's `dataset_*.json` files: `images[]` with `split`, `filename`,
    `sentences[].raw` (and `filepath`, `cocoid` for COCO); the sample id is `cocoid`, else the file name without its
    extension."""
    annotations = read_json(find_file(data_dir, (file_name, f"*/{file_name}"), file_name))
    samples = []
    for image in annotations["images"]:
        if image.get("split") != "test":
            continue
        references = [sentence["raw"].strip() for sentence in image["sentences"]]
        sample_id = str(image.get("cocoid", Path(image["filename"]).stem))
        samples.append(Sample(sample_id, None, {"images": [str(image_path(image))]}, references))
    return samples


def load_coco_karpathy(data_dir: Path) -> list[Sample]:
    """Karpathy's `dataset_coco.json` (images with `split`, `filepath`, `filename`, `cocoid`, `sentences[].raw`);
    the test split's images are read from `DIR/<filepath>/<filename>` (`DIR/val2014/...`)."""
    return _load_karpathy(
        data_dir, "dataset_coco.json", lambda image: data_dir / image.get("filepath", "val2014") / image["filename"]
    )


def load_flickr30k(data_dir: Path) -> list[Sample]:
    """Karpathy's `dataset_flickr30k.json` (images with `split`, `filename`, `sentences[].raw`), test split; images
    are `<filename>` in DIR/flickr30k-images (the official archive's folder), DIR/flickr30k_images, DIR/images or
    DIR. The sample id is the file name without `.jpg` (the Flickr photo id)."""
    images = MediaIndex(data_dir, ("flickr30k-images", "flickr30k_images", "images", "."), IMAGE_EXTENSIONS)
    return _load_karpathy(
        data_dir, "dataset_flickr30k.json", lambda image: images.find(image["filename"]) or
        images.expected(image["filename"])
    )  # fmt: skip


def load_nocaps(data_dir: Path) -> list[Sample]:
    """NoCaps validation, `nocaps_val_4500_captions.json` (COCO style: `images[]` with `id`, `file_name`,
    `open_images_id`, `domain`; `annotations[]` with `image_id`, `caption`, 10 per image). Images are `<file_name>`
    in DIR/validation (the Open Images validation archive's folder), DIR/val, DIR/images or DIR. Reported per
    domain (in-domain, near-domain, out-domain) and over the whole set."""
    patterns = ("nocaps_val_4500_captions.json", "*/nocaps_val_4500_captions.json", "nocaps_val*.json")
    annotations = read_json(find_file(data_dir, patterns, "NoCaps validation captions file"))
    captions: dict[int, list[str]] = {}
    for annotation in annotations.get("annotations", []):
        captions.setdefault(annotation["image_id"], []).append(annotation["caption"].strip())
    images = MediaIndex(data_dir, ("validation", "val", "images", "."), IMAGE_EXTENSIONS)
    samples = []
    for image in annotations["images"]:
        if not captions.get(image["id"]):
            continue  # the test split's image info: no captions to score against
        name = image["file_name"]
        path = images.find(name, str(image.get("open_images_id", name))) or images.expected(name)
        samples.append(Sample(str(image["id"]), None, {"images": [str(path)]}, captions[image["id"]],
                              group=image.get("domain")))  # fmt: skip
    return samples


for _name, _loader, _description in (
    ("coco_caption", load_coco_karpathy, "COCO captions, Karpathy test split (5,000 images): CIDEr-D and BLEU-4."),
    ("flickr30k", load_flickr30k, "Flickr30K, Karpathy test split (1,000 images): CIDEr-D and BLEU-4."),
    ("nocaps", load_nocaps, "NoCaps validation (4,500 images): CIDEr-D and BLEU-4, per domain and overall."),
):
    TASKS.append(
        Task(
            name=_name,
            modality="image",
            loader=_loader,
            prompt=IMAGE_CAPTION_PROMPT,
            metrics=("cider", "bleu4"),
            max_new_tokens=30,
            description=_description,
        )
    )

# ---------------------------------------------------------------------------------------------------------------
# Question answering: the VQA question/annotation pair (VQAv2, OK-VQA) and GQA
# ---------------------------------------------------------------------------------------------------------------

# OK-VQA's `question_type` codes (its knowledge categories, in the paper's order).
OKVQA_CATEGORIES = {
    "one": "Vehicles and Transportation",
    "two": "Brands, Companies and Products",
    "three": "Objects, Material and Clothing",
    "four": "Sports and Recreation",
    "five": "Cooking and Food",
    "six": "Geography, History, Language and Culture",
    "seven": "People and Everyday Life",
    "eight": "Plants and Animals",
    "nine": "Science and Technology",
    "ten": "Weather and Climate",
    "other": "Other",
}


def _load_vqa(
    data_dir: Path, questions: tuple[str, ...], annotations: tuple[str, ...], what: str, group: Callable[[dict], str]
) -> list[Sample]:
    """A VQA-format pair (`{"data_subtype", "questions": [{"image_id", "question_id", "question"}]}` and
    `{"annotations": [{"question_id", "answers": [{"answer"}] * 10, ...}]}`); images are
    `DIR/<subtype>/COCO_<subtype>_<image_id:012d>.jpg`, the subtype being the questions' `data_subtype` (val2014)."""
    questions_file = read_json(find_file(data_dir, questions, f"{what} questions file"))
    annotations_file = read_json(find_file(data_dir, annotations, f"{what} annotations file"))
    by_id = {item["question_id"]: item for item in annotations_file["annotations"]}
    subtype = questions_file.get("data_subtype", "val2014")
    samples = []
    for question in questions_file["questions"]:
        annotation = by_id[question["question_id"]]
        image = data_dir / subtype / f"COCO_{subtype}_{question['image_id']:012d}.jpg"
        samples.append(
            Sample(
                str(question["question_id"]),
                question["question"],
                {"images": [str(image)]},
                [answer["answer"] for answer in annotation["answers"]],
                group=group(annotation),
            )
        )
    return samples


def load_vqav2(data_dir: Path) -> list[Sample]:
    """The official `*questions.json` + `*annotations.json` pair (val2014 preferred); images are
    `DIR/<subtype>/COCO_<subtype>_<image_id:012d>.jpg`, the subtype being the files' `data_subtype` (val2014)."""
    return _load_vqa(
        data_dir, ("*val2014_questions.json", "*questions.json"), ("*val2014_annotations.json", "*annotations.json"),
        "VQAv2", lambda annotation: annotation.get("answer_type"),
    )  # fmt: skip


def load_okvqa(data_dir: Path) -> list[Sample]:
    """OK-VQA val: `OpenEnded_mscoco_val2014_questions.json` + `mscoco_val2014_annotations.json` (VQA format, 10
    answers per question; v1.1's `answer` fields are the stemmed answers, scored as given) and the COCO val2014 images
    in DIR/val2014. Reported per knowledge category (`question_type`)."""
    return _load_vqa(
        data_dir, ("OpenEnded_mscoco_val2014_questions.json", "*val2014_questions.json", "*questions.json"),
        ("mscoco_val2014_annotations.json", "*val2014_annotations.json", "*annotations.json"), "OK-VQA",
        lambda annotation: OKVQA_CATEGORIES.get(annotation.get("question_type"), annotation.get("question_type")),
    )  # fmt: skip


def load_gqa(data_dir: Path) -> list[Sample]:
    """GQA `testdev_balanced_questions.json` (`{question_id: {"imageId", "question", "answer", "types": {"structural",
    ...}, ...}}`); images are `<imageId>.jpg` in DIR/images (the official archive's folder) or DIR. Reported per
    structural type (verify, query, choose, logical, compare)."""
    patterns = ("testdev_balanced_questions.json", "*/testdev_balanced_questions.json")
    questions = read_json(find_file(data_dir, patterns, "GQA test-dev balanced questions file"))
    images = MediaIndex(data_dir, ("images", "."), IMAGE_EXTENSIONS)
    samples = []
    for question_id, question in questions.items():
        image = images.find(question["imageId"]) or images.expected(f"{question['imageId']}.jpg")
        group = (question.get("types") or {}).get("structural")
        samples.append(
            Sample(str(question_id), question["question"], {"images": [str(image)]}, [question["answer"]], group=group)
        )
    return samples


for _name, _loader, _metric, _description in (
    ("vqav2", load_vqav2, "vqa_accuracy", "VQAv2 val (official question and annotation files): VQA accuracy, per "
     "answer type."),
    ("okvqa", load_okvqa, "vqa_accuracy", "OK-VQA val (5,046 questions): VQA accuracy, per knowledge category."),
    ("gqa", load_gqa, "exact_match", "GQA test-dev balanced (12,578 questions): accuracy (normalised exact match), per "
     "structural type."),
):  # fmt: skip
    TASKS.append(
        Task(
            name=_name,
            modality="image",
            loader=_loader,
            prompt=SHORT_ANSWER_PROMPT,
            metrics=(_metric,),
            postprocess=short_answer,
            max_new_tokens=10,
            description=_description,
        )
    )
