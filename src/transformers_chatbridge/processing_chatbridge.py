"""ChatBridgeProcessor: tokenizer, image processor, video processor and BEATs feature extractor in one object.

The processor only loads media, expands each `<image>`, `<video>`, `<audio>` marker into the number of placeholder
tokens the model writes features over, and delegates everything else to its sub-processors.
"""

from collections.abc import Sequence

from transformers.processing_utils import AudioKwargs, MultiModalData, ProcessingKwargs, ProcessorMixin, VideosKwargs

from .modalities import MODALITIES
from .video_processing_chatbridge import split_videos


# How transformers' processors name the items of each modality in their messages.
ITEM_NOUNS = {"image": "images", "video": "videos", "audio": "audio inputs"}


class ChatBridgeVideosKwargs(VideosKwargs, total=False):
    frame_sampling: str


class ChatBridgeAudioKwargs(AudioKwargs, total=False):
    num_segments: int
    segment_sampling: str


class ChatBridgeProcessorKwargs(ProcessingKwargs, total=False):
    videos_kwargs: ChatBridgeVideosKwargs
    audio_kwargs: ChatBridgeAudioKwargs


def _count_images(images) -> int:
    """Images in a (possibly nested) structure, without reading any file; a 4-D array or tensor is a batch."""
    if isinstance(images, (list, tuple)):
        return sum(_count_images(image) for image in images)
    return images.shape[0] if getattr(images, "ndim", 0) == 4 else 1


class ChatBridgeProcessor(ProcessorMixin):
    r"""
    Args:
        image_processor ([`ChatBridgeImageProcessor`]): the original evaluation preprocessing; reads files too.
        video_processor ([`ChatBridgeVideoProcessor`]): frame sampling and per-frame preprocessing.
        feature_extractor ([`BeatsFeatureExtractor`]): waveform -> normalised fbank segments.
        tokenizer: the language model's tokenizer, holding the `<image>`, `<video>`, `<audio>` tokens.
        chat_template (`str`, *optional*): Jinja template; the presets live in `chat_templates/`.
        num_image_tokens (`int`, defaults to 32): placeholder tokens per image or video (the model's image queries).
        num_audio_tokens (`int`, defaults to 32): placeholder tokens per audio clip (the model's audio queries).
        response_start (`str`, defaults to `"###Assistant:"`): what opens an answer in the chat format.
        response_end (`str`, defaults to `"###"`): what ends an answer; decoding stops there.
    """

    valid_processor_kwargs = ChatBridgeProcessorKwargs
    text_kwargs = {"padding": True, "padding_side": "left"}

    def __init__(
        self,
        image_processor=None,
        video_processor=None,
        feature_extractor=None,
        tokenizer=None,
        chat_template: str | None = None,
        num_image_tokens: int = 32,
        num_audio_tokens: int = 32,
        image_token: str = "<image>",
        video_token: str = "<video>",
        audio_token: str = "<audio>",
        response_start: str = "###Assistant:",
        response_end: str = "###",
        **kwargs,
    ):
        self.num_image_tokens = num_image_tokens
        self.num_audio_tokens = num_audio_tokens
        self.image_token = image_token
        self.video_token = video_token
        self.audio_token = audio_token
        self.response_start = response_start
        self.response_end = response_end
        for modality in MODALITIES:
            token = getattr(self, f"{modality}_token")
            token_id = tokenizer.convert_tokens_to_ids(token)
            if token_id is None or token_id == tokenizer.unk_token_id:
                raise ValueError(f"The tokenizer has no {token!r} token; add it as a special token first.")
            setattr(self, f"{modality}_token_id", token_id)
        super().__init__(image_processor, video_processor, feature_extractor, tokenizer, chat_template=chat_template)

    def replace_image_token(self, image_inputs: dict, image_idx: int, **kwargs) -> str:
        return self.image_token * self.num_image_tokens

    def replace_video_token(self, video_inputs: dict, video_idx: int, **kwargs) -> str:
        return self.video_token * self.num_image_tokens

    def replace_audio_token(self, audio_inputs: dict, audio_idx: int, **kwargs) -> str:
        return self.audio_token * self.num_audio_tokens

    def prepare_inputs_layout(self, images=None, text=None, videos=None, audio=None, **kwargs):
        """Text and audio as lists; no media is read yet, so bad markers are reported before any decoding."""
        if isinstance(text, str):
            text = [text]
        elif text is not None:
            text = list(text)
        if audio is not None and not isinstance(audio, (list, tuple)):
            audio = [audio]
        return images, text, videos, audio

    def _process_images(self, images, **kwargs):
        """Read files only now, after the markers were checked against the media."""
        return super()._process_images(self.image_processor.fetch_images(images), **kwargs)

    def validate_inputs(self, images=None, text=None, videos=None, audio=None, **kwargs):
        """Markers and media must agree sample by sample; the first sample that does not is named."""
        if images is None and text is None and videos is None and audio is None:
            raise ValueError("Nothing to process: pass text, images, videos or audio.")
        if text is None:
            return
        if not all(isinstance(sample, str) for sample in text):
            raise ValueError("`text` must be a string or a list of strings.")
        media = {"image": (images, _count_images), "video": (videos, lambda items: len(split_videos(items))), "audio": (audio, len)}
        for modality, (items, count_items) in media.items():
            marker = getattr(self, f"{modality}_token")
            markers = [sample.count(marker) for sample in text]
            available = 0 if items is None else count_items(items)
            self._check_marker_counts(modality, marker, markers, available)

    @staticmethod
    def _check_marker_counts(modality: str, marker: str, markers: Sequence[int], available: int):
        """transformers' marker/media mismatch message, then the first sample (or the items) that do not fit."""
        total = sum(markers)
        if total == available:
            return
        noun = ITEM_NOUNS[modality]
        if available == 0:
            headline = f"Found {total} {marker} tokens in the text but no {noun} were passed."
        else:
            headline = (
                f"The total number of {marker} tokens in the prompts should be the same as the number of {noun} "
                f"passed. Found total {total} {marker} tokens and {available} {noun}."
            )
        consumed, detail = 0, f"{available - total} {modality} item(s) have no {marker} of their own in the text"
        for sample, count in enumerate(markers):
            if consumed + count > available:
                left = available - consumed
                detail = f"Sample {sample} has {count} {marker} marker(s) but only {left} {modality} item(s) are left for it"
                break
            consumed += count
        raise ValueError(f"{headline} {detail} (markers per sample: {list(markers)}).")

    def _get_num_multimodal_tokens(
        self, image_sizes=None, video_sizes=None, audio_lengths=None, **kwargs
    ) -> MultiModalData:
        """Placeholder tokens per item, as serving engines ask: a fixed count per image, video or audio clip (the
        model's queries), whatever the item's size or length."""
        data = {}
        if image_sizes is not None:
            data["num_image_tokens"] = [self.num_image_tokens] * len(image_sizes)
            data["num_image_patches"] = [1] * len(image_sizes)
        if video_sizes is not None:
            data["num_video_tokens"] = [self.num_image_tokens] * len(video_sizes)
        if audio_lengths is not None:
            data["num_audio_tokens"] = [self.num_audio_tokens] * len(audio_lengths)
        return MultiModalData(**data)

    # Keys a media content item may hold its source under, per type.
    media_sources = {
        "image": ("image", "url", "path", "base64"),
        "video": ("video", "url", "path"),
        "audio": ("audio", "url", "path"),
    }

    def media_from_conversation(self, messages: list[dict]) -> dict[str, list]:
        """The media items of a chat, per modality, in order of appearance (sources as given: nothing is read)."""
        found = {modality: [] for modality in self.media_sources}
        for message in messages:
            content = message.get("content")
            if isinstance(content, str) or not content:
                continue
            for item in content:
                sources = self.media_sources.get(item.get("type"))
                if sources is None:
                    continue
                values = [item[key] for key in sources if key in item]
                if len(values) != 1:
                    raise ValueError(f"A {item['type']!r} content item needs exactly one of {sources}, got {item}.")
                found[item["type"]].append(values[0])
        return found

    def _multimodal_inputs_from_conversations(self, conversations, audio_loading_params, load_audio_from_video=False):
        """Media of each chat for `apply_chat_template`; audio stays as given for the feature extractor to read."""
        if load_audio_from_video:
            raise ValueError("ChatBridge takes a video's audio track as its own audio item: add it to the message.")
        media = [self.media_from_conversation(conversation) for conversation in conversations]
        audio = [item for found in media for item in found["audio"]]
        # A video given as a list of frame files (transformers' chat convention) is read as one list of frames.
        videos = [
            [self.image_processor.fetch_images(list(item)) if isinstance(item, (list, tuple)) else item for item in found["video"]]
            for found in media
        ]
        return [found["image"] for found in media], videos, audio, {}

    def _adjust_assistant_masks_indices(self, processed_dict: dict, generation_indices: list[list[int]]) -> dict:
        """The training collator's answer masks, from offsets as lists: the shared code walks the offsets pair by
        pair, and a tensor of offsets makes a tensor per pair, a quarter of a training batch's collation time."""
        offsets = processed_dict.get("offset_mapping")
        if hasattr(offsets, "tolist"):
            processed_dict["offset_mapping"] = offsets.tolist()
        return super()._adjust_assistant_masks_indices(processed_dict, generation_indices)

    def _cut_answer(self, text: str) -> str:
        """The answer ends at the first `response_end` after the last `response_start` (or after the start)."""
        start = text.rfind(self.response_start)
        begin = 0 if start < 0 else start + len(self.response_start)
        end = text.find(self.response_end, begin)
        return text if end < 0 else text[:end]

    def batch_decode(self, sequences, **kwargs) -> list[str]:
        """Decode generated answers, each cut at the separator that ends it."""
        return [self._cut_answer(text) for text in self.tokenizer.batch_decode(sequences, **kwargs)]

    def post_process_image_text_to_text(
        self, generated_outputs, skip_special_tokens: bool = True, prompt_length: int | None = None, **kwargs
    ) -> list[str]:
        """Decoded answers: without the first `prompt_length` tokens when given, and cut at the separator."""
        if prompt_length is not None:
            generated_outputs = generated_outputs[:, prompt_length:]
        return self.batch_decode(generated_outputs, skip_special_tokens=skip_special_tokens, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values", "pixel_values_videos", "input_features", "input_features_mask"]


__all__ = ["ChatBridgeProcessor"]
