"""The miniature world (`transformers_chatbridge.data.miniature`): its test split, its novel split, and a control.

| task | split of the `chatbridge data miniature` folder | media |
|---|---|---|
| miniature | test (new instances of seen attribute combinations) | the row's own |
| miniature-novel | novel (attribute combinations never drawn in training) | the row's own |
| miniature-no-media | test | none: the same questions asked without their media (a control that must fall to chance) |

Every sample asks a row's own question, as the row asks it, and is right when the reply equals the row's own reply
(`exact_match`: case, punctuation and articles normalised). The generator wrote that reply from the instance's
attributes, so it checks every attribute the question is about. Groups are MULTIS task kinds:

- question kinds: ti-shortqa, ti-normalqa, ti-ocr, ti-rea, tv-shortqa, tv-rea, and every turn of the conversations
  ti-conv, tv-conv, tva-conv (turn k is asked after the row's own k earlier turns, the media in the first);
- caption kinds: ti-cap, tv-cap, ta-cap, tva-cap, scored by CIDEr-D and by exact match (every attribute right).
"""

from __future__ import annotations

from pathlib import Path

from ..tasks import Sample, Task, first_line

# This module's benchmarks, in the order `chatbridge eval --help` lists them (collected by `evaluation.registry`).
TASKS: list[Task] = []

MINIATURE_QA_KINDS = ("ti-shortqa", "ti-normalqa", "ti-ocr", "ti-rea", "tv-shortqa", "tv-rea")
MINIATURE_CONVERSATION_KINDS = ("ti-conv", "tv-conv", "tva-conv")
MINIATURE_CAPTION_KINDS = ("ti-cap", "tv-cap", "ta-cap", "tva-cap")
MINIATURE_KINDS = MINIATURE_QA_KINDS + MINIATURE_CONVERSATION_KINDS + MINIATURE_CAPTION_KINDS


def _turns(row: dict) -> list[tuple[str, str]]:
    """(question, reply) of each turn of a row."""
    def text(message):
        return " ".join(item["text"] for item in message["content"] if item["type"] == "text" and item["text"])

    messages = row["messages"]
    return [(text(messages[i]), text(messages[i + 1])) for i in range(0, len(messages) - 1, 2)]


def miniature_samples(row: dict, with_media: bool = True) -> list[Sample]:
    """The samples of one row: one per turn (a single-turn row has one)."""
    media = {"images": row["images"], "videos": row["videos"], "audio": row["audios"]} if with_media else {}
    turns = _turns(row)
    if len(turns) == 1:
        return [Sample(row["id"], turns[0][0], media, [turns[0][1]], group=row["task"])]
    return [
        Sample(f"{row['id']}-turn{k}", question, media, [reply], group=row["task"], history=tuple(turns[:k]))
        for k, (question, reply) in enumerate(turns)
    ]


def _miniature_loader(split: str, with_media: bool = True):
    def load(data_dir: Path) -> list[Sample]:
        from transformers_chatbridge.data.miniature import load_miniature

        rows = load_miniature(data_dir)[split]
        # Stage-1 rows and detailed descriptions have no question to check.
        return [sample for row in rows if row["task"] in MINIATURE_KINDS for sample in miniature_samples(row, with_media)]

    return load


def _miniature_metrics(group: str) -> tuple[str, ...]:
    return ("cider", "exact_match") if group in MINIATURE_CAPTION_KINDS else ("exact_match",)


for _name, _split, _with_media, _description in (
    ("miniature", "test", True, "Miniature world, test split"),
    ("miniature-novel", "novel", True, "Miniature world, novel split (unseen attribute combinations)"),
    ("miniature-no-media", "test", False, "Miniature world, test split asked without its media (control)"),
):
    TASKS.append(
        Task(
            name=_name,
            modality="mixed",
            loader=_miniature_loader(_split, _with_media),
            prompt="{question}",
            metrics_by_group=_miniature_metrics,
            postprocess=first_line,  # exact_match normalises case, punctuation and articles itself
            max_new_tokens=40,
            description=f"{_description}: exact match of the reply per task kind, CIDEr-D per caption modality.",
        )
    )
