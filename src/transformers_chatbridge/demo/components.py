"""The frozen parts of the demo's ChatBridge, made the way a real user would have them: pretrained before the bridge.

They stand in for Vicuna, EVA-CLIP and BEATs, trained here in a few minutes on the miniature world:

- the language model: a small LLaMA with a byte-level BPE tokenizer, trained on the world's training rows with every
  media item replaced by its description in words ("Given following image: a red circle at the top left."). It
  learns to answer from a description in its context; the bridge's queries later take the description's place.
- the vision tower (`Blip2VisionModel`): attribute classification (shape, colour, corner, count, printed word) on
  freshly drawn images and video frames of every (shape, colour) combination, and, patch by patch, what lies under
  each patch (shape, colour, word), also on audio-video frames, which show two shapes.
- the audio tower (BEATs): attribute classification (pitch, rhythm, timbre) on freshly drawn tones of every
  (pitch, timbre) combination.

Each part is checked before it is frozen and saved: the language model's accuracy at answering the validation
questions from their descriptions, the towers' attribute accuracy on fresh instances.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import (
    Blip2VisionConfig,
    Blip2VisionModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..chat_templates import RESPONSE_MARKERS, load_chat_template
from ..configuration_beats import BeatsConfig
from ..data import miniature
from ..data.packing import packed_batch
from ..feature_extraction_beats import BeatsFeatureExtractor
from ..image_processing_chatbridge import ChatBridgeImageProcessor
from ..modeling_beats import BeatsModel
from ..modeling_chatbridge import sincos_code
from ..testing import build_tiny_tokenizer

PLACEHOLDER = re.compile(r"<image>|<video>|<audio>")
# An answer in the Vicuna v0 format: from the space after "Assistant:" through the "###" that ends it.
ANSWER = re.compile(r"Assistant:( .*?###)", re.S)
SEPARATOR = RESPONSE_MARKERS["vicuna_v0"][1]


@dataclass
class PretrainingSettings:
    """Sizes and steps of one part's pretraining."""

    steps: int
    batch_size: int
    learning_rate: float
    hidden_size: int
    num_layers: int
    pool_size: int = 0  # fresh instances drawn for a tower (0 for the language model: it reads the world's rows)


@dataclass
class PartCheck:
    """What a pretrained part scored before it was frozen; `passed` compares `scores` with the bar. `diagnostics` are
    reported beside them but not held to it (a single patch of a printed word cannot name the whole word)."""

    name: str
    scores: dict[str, float]
    bar: float
    seconds: float
    diagnostics: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return min(self.scores.values()) >= self.bar


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX tiles)."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


@contextmanager
def _eager_attention(model: nn.Module) -> Iterator[None]:
    """Eager attention in every transformers model inside `model`, restored after: in bf16 on the CPU it runs these
    small heads about twice as fast as PyTorch's SDPA."""
    models = [module for module in model.modules() if isinstance(module, PreTrainedModel)]
    restore = [(module, module.config._attn_implementation) for module in models]
    for module in models:
        module.set_attn_implementation("eager")
    try:
        yield
    finally:
        for module, implementation in restore:
            module.set_attn_implementation(implementation)


def _train(
    model: nn.Module,
    loss_of_batch: Callable[[list[int]], torch.Tensor],
    num_examples: int,
    settings: PretrainingSettings,
    progress: Callable[[int, float], None],
    seed: int,
) -> None:
    """AdamW with warmup and cosine decay over shuffled epochs of `num_examples` examples."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, settings.steps // 20)

    def factor(step: int) -> float:
        return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / settings.steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    generator = np.random.default_rng(seed)
    order: list[int] = []
    # bf16 autocast where the CPU has it natively: the parts train 2-3 times faster; the weights stay fp32.
    bf16 = native_bf16()
    model.train()
    with _eager_attention(model) if bf16 else nullcontext():
        for step in range(settings.steps):
            if len(order) < settings.batch_size:
                order += generator.permutation(num_examples).tolist()
            batch, order = order[: settings.batch_size], order[settings.batch_size :]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = loss_of_batch(batch)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            progress(step, loss.item())
    model.eval()


# ---------------------------------------------------------------------------------------------------------------
# The language model
# ---------------------------------------------------------------------------------------------------------------


def described_text(row: dict, tokenizer: PreTrainedTokenizerBase, template: str, generation_prompt: bool = False) -> str:
    """The row in the chat format with each media item replaced by its description (without the last answer when
    `generation_prompt`)."""
    messages = row["messages"][:-1] if generation_prompt else row["messages"]
    text = tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=generation_prompt
    )
    descriptions = iter(miniature.media_descriptions(row["modality"], json.loads(row["attributes"])))
    return PLACEHOLDER.sub(lambda _: next(descriptions), text)


def _reference(row: dict) -> str:
    return row["messages"][-1]["content"][0]["text"]


def build_world_tokenizer(rows: Sequence[dict], vocab_size: int) -> PreTrainedTokenizerBase:
    """A byte-level BPE over the world's described texts; `###` is its own token so generation can stop on it, and a
    printed word has the same tokens in a caption ('"CAT"') as in an answer (' CAT'): answering is then copying."""
    template = load_chat_template("vicuna_v0")
    renderer = build_tiny_tokenizer()
    corpus = (described_text(row, renderer, template) for row in rows)
    tokenizer = build_tiny_tokenizer(vocab_size, corpus=corpus, isolate="[A-Z]{2,}")
    tokenizer.add_tokens([SEPARATOR])
    return tokenizer


def _encode_with_answer_labels(tokenizer: PreTrainedTokenizerBase, text: str) -> tuple[list[int], list[int]]:
    """Token ids and labels that supervise only the answers and the `###` ending each one."""
    encoded = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    spans = [match.span(1) for match in ANSWER.finditer(text)]
    labels = [
        token if any(start <= a and b <= end for start, end in spans) else -100
        for token, (a, b) in zip(encoded["input_ids"], encoded["offset_mapping"])
    ]
    return encoded["input_ids"], labels


def answer_accuracy(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerBase, rows: Sequence[dict], batch_size: int = 64
) -> dict[str, float]:
    """Exact-match accuracy per task of greedy answers to the rows' last question, read from descriptions."""
    template = load_chat_template("vicuna_v0")
    separator = tokenizer.convert_tokens_to_ids(SEPARATOR)
    correct: dict[str, list[bool]] = defaultdict(list)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        prompts = [described_text(row, tokenizer, template, generation_prompt=True) for row in chunk]
        inputs = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
        with torch.no_grad():
            output = model.generate(
                **inputs, max_new_tokens=96, do_sample=False, eos_token_id=[separator], pad_token_id=tokenizer.pad_token_id
            )
        answers = tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        for row, answer in zip(chunk, answers):
            correct[row["task"]].append(answer.split(SEPARATOR)[0].strip() == _reference(row).strip())
    return {task: sum(values) / len(values) for task, values in sorted(correct.items())}


def pretrain_language_model(
    train_rows: Sequence[dict],
    check_rows: Sequence[dict],
    out_dir: Path,
    settings: PretrainingSettings,
    vocab_size: int,
    progress: Callable[[int, float], None],
    seed: int = 0,
) -> dict[str, float]:
    """Train the stand-in LLM on the described rows, save it with its tokenizer; returns its accuracy per task."""
    tokenizer = build_world_tokenizer(train_rows, vocab_size)
    template = load_chat_template("vicuna_v0")
    examples = [_encode_with_answer_labels(tokenizer, described_text(row, tokenizer, template)) for row in train_rows]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=settings.hidden_size,
        intermediate_size=3 * settings.hidden_size,
        num_hidden_layers=settings.num_layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)

    def loss_of_batch(indices: list[int]) -> torch.Tensor:
        return model(**packed_batch([examples[i] for i in indices], tokenizer.pad_token_id)).loss

    _train(model, loss_of_batch, len(examples), settings, progress, seed)
    scores = answer_accuracy(model, tokenizer, check_rows)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return scores


# ---------------------------------------------------------------------------------------------------------------
# The towers: attribute classifiers whose encoders are kept
# ---------------------------------------------------------------------------------------------------------------

IMAGE_LABELS = {
    "shape": miniature.SHAPES,
    "colour": tuple(miniature.COLOURS),
    "position": miniature.POSITIONS,
    "count": (1, 2, 3),
    "word": (None, *miniature.WORDS),
}
# What lies under each patch of a picture; the last class of each is "nothing of that kind here".
PATCH_LABELS = {"shape": miniature.SHAPES, "colour": tuple(miniature.COLOURS), "word": miniature.WORDS}
PATCH_SIZE = 8
# A patch takes the label of the mark covering most of its pixels when that mark covers at least this many (a few
# stray pixels of a neighbour's edge would otherwise teach noise); patches with less are left out of the loss.
PATCH_COVERAGE = 8
AUDIO_LABELS = {"pitch": tuple(miniature.PITCHES), "timbre": miniature.TIMBRES, "rhythm": miniature.RHYTHMS}


def _label_row(attributes: dict, labels: dict[str, tuple]) -> list[int]:
    """Class index of each attribute the instance has; -100 (ignored) for the ones it lacks."""
    return [values.index(attributes[name]) if name in attributes else -100 for name, values in labels.items()]


def patch_targets(marks: Sequence[miniature.Mark]) -> list[list[int]]:
    """Per patch (row-major), the class of each `PATCH_LABELS` attribute of the mark covering it."""
    grid = miniature.IMAGE_SIZE // PATCH_SIZE
    nothing = [len(values) for values in PATCH_LABELS.values()]
    if not marks:
        return [nothing] * grid * grid
    masks = np.stack([miniature.mark_mask(mark) for mark in marks])
    coverage = masks.reshape(len(marks), grid, PATCH_SIZE, grid, PATCH_SIZE).sum(axis=(2, 4)).reshape(len(marks), -1)
    rows = []
    for patch in range(grid * grid):
        top = int(coverage[:, patch].argmax())
        if coverage[top, patch] == 0:
            rows.append(nothing)
        elif coverage[top, patch] < PATCH_COVERAGE:
            rows.append([-100] * len(PATCH_LABELS))
        else:
            mark = marks[top]
            found = {"shape": mark.shape, "colour": mark.colour, "word": mark.text}
            rows.append([values.index(found[name]) if found[name] else len(values) for name, values in PATCH_LABELS.items()])
    return rows


class _AttributeHeads(nn.Module):
    """An encoder with one linear classifier per attribute over its max-pooled tokens (a mean would dilute a small
    shape's few patches among the background's) and, for a ViT, one per attribute of what lies under each patch:
    the bridge's queries read the patch tokens, and a picture with two different shapes (an audio-video frame) has
    no single answer for a pooled head."""

    def __init__(self, encoder: nn.Module, hidden_size: int, labels: dict[str, tuple], patch_labels: dict | None = None):
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleList(nn.Linear(hidden_size, len(values)) for values in labels.values())
        self.patch_heads = nn.ModuleList(nn.Linear(hidden_size, len(values) + 1) for values in (patch_labels or {}).values())

    def logits(self, **inputs) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        hidden = self.encoder(**inputs).last_hidden_state
        pooled = hidden.amax(dim=1)
        patches = hidden[:, 1:]  # after the class token
        return [head(pooled) for head in self.heads], [head(patches) for head in self.patch_heads]

    def loss(self, targets: dict[str, torch.Tensor], **inputs) -> torch.Tensor:
        pooled, patches = self.logits(**inputs)
        loss = sum(
            nn.functional.cross_entropy(logits, targets["pooled"][:, k], ignore_index=-100)
            for k, logits in enumerate(pooled)
        )
        for k, logits in enumerate(patches):
            loss = loss + nn.functional.cross_entropy(
                logits.flatten(0, 1), targets["patches"][..., k].flatten(), ignore_index=-100
            )
        return loss

    @torch.no_grad()
    def accuracy(
        self, targets: dict[str, torch.Tensor], labels: dict, patch_labels: dict, batch_size: int = 256, **inputs
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Accuracy per attribute (pooled heads), and per patch attribute over the patches that show one."""
        pooled, patches = [], []
        for start in range(0, len(targets["pooled"]), batch_size):
            chunk = {key: value[start : start + batch_size] for key, value in inputs.items()}
            pooled_logits, patch_logits = self.logits(**chunk)
            pooled.append(torch.stack([logits.argmax(-1) for logits in pooled_logits], dim=-1))
            patches += [torch.stack([logits.argmax(-1) for logits in patch_logits], dim=-1)] if patch_logits else []
        predicted, truth = torch.cat(pooled), targets["pooled"]
        scores = {name: _hit_rate(predicted[:, k], truth[:, k], truth[:, k] != -100) for k, name in enumerate(labels)}
        by_patch = {}
        predicted = torch.cat(patches) if patches else None
        for k, (name, values) in enumerate(patch_labels.items()):
            truth = targets["patches"][..., k]
            by_patch[f"{name} at patch"] = _hit_rate(predicted[..., k], truth, (truth >= 0) & (truth < len(values)))
        return scores, by_patch


def _hit_rate(predicted: torch.Tensor, truth: torch.Tensor, counted: torch.Tensor) -> float:
    return (predicted[counted] == truth[counted]).float().mean().item()


def _fresh_instances(modality: str, count: int, seed: int) -> Iterator[tuple[dict, dict]]:
    rng = np.random.default_rng([seed, miniature.MODALITIES.index(modality)])
    for index in range(count):
        yield miniature.draw_instance(modality, index, rng)


def vision_examples(count: int, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Pixel values and targets (pooled attributes, what lies under each patch): `count` images, the frames of
    `count // 8` videos and of as many audio-video clips (two shapes, one flashing: only their patches are
    labelled)."""
    images, pooled, patches = [], [], []
    for modality, n in (("image", count), ("video", count // 8), ("audio-video", count // 8)):
        for attributes, parameters in _fresh_instances(modality, n, seed):
            marks = miniature.picture_marks(modality, attributes, parameters)
            if modality == "image":
                images.append(miniature.render_image(attributes, parameters))
                known = attributes
            else:
                images += miniature.render_video(modality, attributes, parameters)
                known = {"shape": attributes["shape"], "colour": attributes["colour"]} if modality == "video" else {}
            pooled += [_label_row(known, IMAGE_LABELS)] * len(marks)
            patches += [patch_targets(picture) for picture in marks]
    size = miniature.IMAGE_SIZE
    pixels = ChatBridgeImageProcessor(size={"height": size, "width": size})(images, return_tensors="pt")["pixel_values"]
    return pixels, {"pooled": torch.tensor(pooled), "patches": torch.tensor(patches)}


def audio_examples(count: int, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Fbank features (as the processor makes them) and targets: `count` tones plus `count // 4` clip soundtracks."""
    waveforms, targets = [], []
    for modality, n in (("audio", count), ("audio-video", count // 4)):
        for attributes, parameters in _fresh_instances(modality, n, seed):
            waveforms.append(miniature.render_audio(modality, attributes, parameters))
            known = attributes if modality == "audio" else {"pitch": attributes["pitch"], "timbre": attributes["timbre"]}
            targets.append(_label_row(known, AUDIO_LABELS))
    features = BeatsFeatureExtractor()(waveforms, sampling_rate=miniature.SAMPLE_RATE, return_tensors="pt")
    return features["input_features"][:, 0], {"pooled": torch.tensor(targets)}


def _pretrain_tower(
    encoder: nn.Module,
    input_name: str,
    examples: Callable[[int, int], tuple[torch.Tensor, dict[str, torch.Tensor]]],
    labels: dict[str, tuple],
    out_dir: Path,
    settings: PretrainingSettings,
    progress: Callable[[int, float], None],
    seed: int,
    patch_labels: dict[str, tuple] | None = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """Train the encoder with attribute heads, check it on fresh instances, save it; returns the check's accuracy per
    attribute and per patch attribute."""
    inputs, targets = examples(settings.pool_size, seed)
    classifier = _AttributeHeads(encoder, settings.hidden_size, labels, patch_labels)

    def loss_of_batch(indices: list[int]) -> torch.Tensor:
        return classifier.loss({key: value[indices] for key, value in targets.items()}, **{input_name: inputs[indices]})

    _train(classifier, loss_of_batch, len(inputs), settings, progress, seed)
    check_inputs, check_targets = examples(max(64, settings.pool_size // 4), seed + 1)
    scores = classifier.accuracy(check_targets, labels, patch_labels or {}, **{input_name: check_inputs})
    encoder.save_pretrained(out_dir)
    return scores


def sincos_position_embedding(dim: int, grid: int) -> torch.Tensor:
    """(1, 1 + grid * grid, dim) fixed 2-D sine-cosine position embedding (zero for the class token), as MAE starts
    its ViT: with the small random default, a ViT trained for a minute never learned where a shape is."""
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    patches = torch.cat([sincos_code(rows.flatten(), dim // 2), sincos_code(cols.flatten(), dim // 2)], dim=1)
    return torch.cat([torch.zeros(1, dim), patches])[None]


def pretrain_vision_tower(
    out_dir: Path, settings: PretrainingSettings, progress: Callable[[int, float], None], seed: int = 0
) -> tuple[dict[str, float], dict[str, float]]:
    """The stand-in for EVA-CLIP: a small ViT over the world's 64 px pictures; returns its attribute accuracy and its
    accuracy at naming what lies under a patch."""
    config = Blip2VisionConfig(
        hidden_size=settings.hidden_size,
        intermediate_size=4 * settings.hidden_size,
        num_hidden_layers=settings.num_layers,
        num_attention_heads=4,
        image_size=miniature.IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        initializer_range=0.02,  # Blip2VisionConfig's default (1e-10) would make a tower blind to its input
    )
    torch.manual_seed(seed)
    tower = Blip2VisionModel(config)
    grid = miniature.IMAGE_SIZE // config.patch_size
    tower.embeddings.position_embedding.data = sincos_position_embedding(config.hidden_size, grid)
    return _pretrain_tower(
        tower, "pixel_values", vision_examples, IMAGE_LABELS, out_dir, settings, progress, seed, PATCH_LABELS
    )


def pretrain_audio_tower(
    out_dir: Path, settings: PretrainingSettings, progress: Callable[[int, float], None], seed: int = 0
) -> dict[str, float]:
    """The stand-in for BEATs: a small BEATs over the tones' fbank; returns its attribute accuracy."""
    config = BeatsConfig(
        hidden_size=settings.hidden_size,
        intermediate_size=2 * settings.hidden_size,
        num_hidden_layers=settings.num_layers,
        num_attention_heads=4,
        patch_embedding_size=settings.hidden_size,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        layerdrop=0.0,
    )
    torch.manual_seed(seed)
    scores, _ = _pretrain_tower(
        BeatsModel(config), "input_features", audio_examples, AUDIO_LABELS, out_dir, settings, progress, seed
    )
    return scores
