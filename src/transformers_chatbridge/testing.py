"""Tiny random ChatBridge models with an offline tokenizer, for tests, the demo and benchmarks."""

import os
from collections.abc import Iterable

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    Blip2QFormerConfig,
    Blip2VisionConfig,
    LlamaConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from .chat_templates import build_processor, stop_token_ids
from .configuration_beats import BeatsConfig
from .configuration_chatbridge import ChatBridgeConfig
from .modeling_chatbridge import ChatBridgeForConditionalGeneration
from .processing_chatbridge import ChatBridgeProcessor

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]
PLACEHOLDER_TOKENS = {"image": "<image>", "video": "<video>", "audio": "<audio>"}

# Enough English (and the Vicuna v0 prompt's words) for a byte-level BPE to learn common merges.
_CORPUS = """
###Human: Given following image: <image>.###Human: What is in the picture?###Assistant: A red circle on a white table.
###Human: Given following video: <video> and its background audio: <audio>.###Assistant: A dog runs and barks.
###Human: Given the following audio: <audio>.###Human: What sound does this make?###Assistant: Birds are singing.
###Human: Given following image: <image> and audio: <audio>.###Human: Describe it.###Assistant: A blue square.
The quick brown fox jumps over the lazy dog. A man is playing a guitar while people sing along in the park.
What colour is the shape? Where is it? How many objects are there? Which animal makes this sound?
green yellow purple orange black white top bottom left right centre triangle square circle star
"""


def build_tiny_tokenizer(
    vocab_size: int = 384, corpus: Iterable[str] | None = None, isolate: str | None = None
) -> PreTrainedTokenizerFast:
    """A deterministic byte-level BPE tokenizer trained here (on `corpus`, else a fixed text): no download needed.

    `isolate`: a regular expression whose matches never merge with their neighbours (e.g. `[A-Z]+`: a capitalised
    word then has the same tokens after a space as after a quote).
    """
    tokenizer = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.pre_tokenizer = (
        byte_level
        if isolate is None
        else pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(isolate), behavior="isolated"), byte_level])
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS + list(PLACEHOLDER_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS.strip().splitlines() if corpus is None else corpus, trainer=trainer)
    bos_id = tokenizer.token_to_id("<s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens=list(PLACEHOLDER_TOKENS.values()),
    )


def tiny_chatbridge_config(
    tokenizer: PreTrainedTokenizerFast, text_hidden_size: int = 32, **overrides
) -> ChatBridgeConfig:
    """Small dimensions everywhere, real initializer ranges so random towers still see their input.

    `text_hidden_size` (4 heads): kernels with shape rules need more than 32, e.g. bitsandbytes' 4-bit CPU kernel
    (a multiple of 64) or vLLM's CPU attention (a head size of at least 32).
    """
    settings = {
        "vision_config": Blip2VisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
            initializer_range=0.02,
        ),
        "audio_config": BeatsConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            patch_embedding_size=16,
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=4,
            layerdrop=0.0,
        ),
        "qformer_config": Blip2QFormerConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            cross_attention_frequency=2,
            use_qformer_text_input=False,
        ),
        "text_config": LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=text_hidden_size,
            intermediate_size=2 * text_hidden_size,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=False,
        ),
        "num_image_query_tokens": 4,
        "num_audio_query_tokens": 4,
        **{f"{modality}_token_id": tokenizer.convert_tokens_to_ids(token) for modality, token in PLACEHOLDER_TOKENS.items()},
    }
    settings.update(overrides)
    return ChatBridgeConfig(**settings)


def tiny_chatbridge(
    save_dir: str | os.PathLike | None = None, seed: int = 0, text_hidden_size: int = 32, **overrides
) -> tuple[ChatBridgeForConditionalGeneration, ChatBridgeProcessor]:
    """A tiny random ChatBridge and its processor; `overrides` replace `ChatBridgeConfig` fields.

    The processor matches the model (32 px images, 4 frames, one audio segment, 4 placeholders per item, the
    Vicuna v0 template) and generation stops at the `###` separator. With `save_dir`, both are written there
    (`from_pretrained`-ready). The global RNG is left untouched.
    """
    tokenizer = build_tiny_tokenizer()
    config = tiny_chatbridge_config(tokenizer, text_hidden_size, **overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ChatBridgeForConditionalGeneration(config).eval()
    processor = build_processor(tokenizer, config)
    model.generation_config.eos_token_id = stop_token_ids(processor)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    if save_dir is not None:
        model.save_pretrained(save_dir)
        processor.save_pretrained(save_dir)
    return model, processor


def causal_lm_of(model: ChatBridgeForConditionalGeneration) -> PreTrainedModel:
    """ChatBridge's language model as a plain causal LM that shares its decoder and head (no copy): a text-only
    baseline for benchmarks, or an LLM folder for `from_components` once saved."""
    with torch.device("meta"):
        language_model = AutoModelForCausalLM.from_config(model.config.text_config)
    setattr(language_model, language_model.base_model_prefix, model.model.language_model)
    language_model.set_output_embeddings(model.lm_head)
    return language_model
