"""What a benchmark is: a loader, a prompt, metrics, answer post-processing (`Task`), and its samples (`Sample`).

A benchmark is one `Task` with a loader `loader(data_dir) -> list[Sample]` that reads its official files, in a small
module of `evaluation/benchmarks/`; `registry.py` names them. Everything else (batching, resuming, scoring, results)
is shared (`runner.py`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..modalities import CALL_KEYWORDS, MODALITIES

# Corpus-level metrics (idf over the evaluated set, brevity penalty): not pooled over groups that choose their
# metrics (the miniature's modalities); per-sample averages (exact match, VQA and classification accuracy) are.
CORPUS_METRICS = ("cider", "bleu4")

SHORT_ANSWER_INSTRUCTION = "Answer the question using a single word or phrase."


@dataclass(frozen=True)
class Sample:
    """One benchmark item: what is asked about which media, and what counts as right.

    `id` must be unique within the benchmark (it keys the predictions file). `question` is the benchmark's own
    question (None for captioning); `media` maps pipeline keys ("images", "videos", "audio") to file paths;
    `references` are the acceptable answers (captions, the 10 VQA answers, the class name); `group` is the kind
    the sample is reported under (a miniature task kind, a VQA answer type; None: only the whole set);
    `choices` are the candidate classes of classification benchmarks; `history` holds the earlier (question, answer)
    turns of a dialogue benchmark (AVSD): the sample is then asked as a chat whose first user turn carries the media.
    """

    id: str
    question: str | None
    media: dict[str, list[str]]
    references: list[str]
    group: str | None = None
    choices: tuple[str, ...] | None = None
    history: tuple[tuple[str, str], ...] = ()


# The order media take in a message: a video directly followed by an audio clip is "a video and its background audio".
MEDIA_ORDER = tuple((CALL_KEYWORDS[modality], modality) for modality in MODALITIES)


def first_line(text: str) -> str:
    """A caption: the first non-empty line of the answer, without surrounding quotes and spaces."""
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip().strip('"').strip()
    return ""


def short_answer(text: str) -> str:
    """A short answer: the first line, lowercased, without a final full stop (the metrics normalise further)."""
    return re.sub(r"[.!]+$", "", first_line(text)).strip().lower()


@dataclass(frozen=True)
class Task:
    """A benchmark. `prompt` is formatted with `question` and `choices` (the candidates joined by ", ").

    `metrics` names `transformers_chatbridge.evaluation.metrics` modules applied to every sample, or, with
    `metrics_by_group`, the metrics of each sample's group. `max_new_tokens` is the default answer budget.
    """

    name: str
    modality: str
    loader: Callable[[Path], list[Sample]]
    prompt: str
    metrics: tuple[str, ...] = ()
    postprocess: Callable[[str], str] = first_line
    metrics_by_group: Callable[[str], tuple[str, ...]] | None = None
    max_new_tokens: int = 30
    description: str = ""
    prompt_by_group: dict[str, str] = field(default_factory=dict)

    def metrics_for(self, group: str | None) -> tuple[str, ...]:
        if self.metrics_by_group is not None and group is not None:
            return self.metrics_by_group(group)
        return self.metrics

    def format_prompt(self, sample: Sample) -> str:
        template = self.prompt_by_group.get(sample.group, self.prompt) if sample.group else self.prompt
        choices = ", ".join(choice.replace("_", " ") for choice in sample.choices or ())
        return template.format(question=sample.question or "", choices=choices).strip()

    def pipeline_inputs(self, sample: Sample):
        """A `pipeline("chatbridge")` input: a question with its media, or a chat when the sample has a history."""
        if not sample.history:
            media = {key: list(sample.media[key]) for key, _ in MEDIA_ORDER if sample.media.get(key)}
            return {"text": self.format_prompt(sample), **media}
        from transformers.pipelines.any_to_any import Chat

        content = [{"type": kind, kind: path} for key, kind in MEDIA_ORDER for path in sample.media.get(key) or ()]
        messages = []
        for question, answer in sample.history:
            messages.append({"role": "user", "content": [*content, {"type": "text", "text": question}]})
            messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
            content = []
        messages.append({"role": "user", "content": [*content, {"type": "text", "text": self.format_prompt(sample)}]})
        return Chat(messages)
