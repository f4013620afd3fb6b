"""`pipeline("chatbridge")`: questions about images, videos and audio, answered with batched generation.

Built on transformers' any-to-any pipeline (input formats, `generate_kwargs`, `return_full_text`, post-processing).
What it changes is where the processor runs: each input is first turned into a prompt and its media, and the
processor then runs once per batch in the collate step (in DataLoader workers when `num_workers` is set), so a
batch of mixed modalities is one left-padded `generate` call.

This file only imports torch and transformers: it travels with checkpoints as remote code.
"""

from collections.abc import Sized

from torch.utils.data import DataLoader
from transformers.pipelines.any_to_any import AnyToAnyPipeline, Chat
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator

from .modalities import CALL_KEYWORDS, MEDIA_COLUMNS, MODALITIES


# The keys a question may hold each modality's media under: the call keyword, the modality, the row column.
MEDIA_KEYS = {
    modality: tuple(dict.fromkeys((CALL_KEYWORDS[modality], modality, MEDIA_COLUMNS[modality])))
    for modality in MODALITIES
}


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


class ChatBridgePipeline(AnyToAnyPipeline):
    r"""
    Answers questions about images, videos and audio with a ChatBridge model.

    Inputs: `pipe(text="What sound does this make?", audio="dog.wav")`; a list of dicts with `text`, `images`,
    `videos`, `audio` (one question each, any mix); chat messages (a list of `{"role", "content"}` dicts whose content
    items may be `{"type": "image"|"video"|"audio", "path": ...}`), or a list of such chats. Plain text is asked
    about its media as one user turn of the processor's chat template; text that already holds `<image>`, `<video>`,
    `<audio>` markers is used as the prompt as is. Output: `[{"input_text": ..., "generated_text": ...}]`, with
    `return_full_text` as in transformers' image-text-to-text pipeline.
    """

    def __call__(self, text=None, images=None, videos=None, audio=None, **kwargs):
        """Plain questions become one chat turn each; a list of questions pairs with equally long media lists."""
        media = {"images": images, "videos": videos, "audio": audio}
        if isinstance(text, str) or (text is None and any(value is not None for value in media.values())):
            return super(AnyToAnyPipeline, self).__call__({"text": text, **media}, **kwargs)
        if isinstance(text, (list, tuple)) and text and all(isinstance(question, str) for question in text):
            samples = [{"text": question} for question in text]
            for key, values in media.items():
                if values is None:
                    continue
                if not isinstance(values, (list, tuple)) or len(values) != len(text):
                    raise ValueError(f"With a list of {len(text)} questions, `{key}` must be a list of {len(text)} items.")
                for sample, value in zip(samples, values):
                    sample[key] = value
            return super(AnyToAnyPipeline, self).__call__(samples, **kwargs)
        return super().__call__(text, images=images, videos=videos, audio=audio, **kwargs)

    def preprocess(self, inputs=None, timeout=None, continue_final_message=None, **processor_kwargs):
        """One input -> its prompt and media; nothing is decoded here (the collate step does it per batch)."""
        processor_kwargs = processor_kwargs.pop("processor_kwargs", None) or processor_kwargs
        if isinstance(inputs, Chat):
            messages = inputs.messages
            if continue_final_message is None:
                continue_final_message = messages[-1]["role"] == "assistant"
            return self._request(messages, inputs, processor_kwargs, continue_final_message)
        if isinstance(inputs, str):
            inputs = {"text": inputs}
        text = inputs.get("text") or ""
        media = {
            modality: [item for key in keys for item in _as_list(inputs.get(key))]
            for modality, keys in MEDIA_KEYS.items()
        }
        if any(getattr(self.processor, f"{modality}_token") in text for modality in MEDIA_KEYS):
            return {"prompt": text, **media, "text": text, "processor_kwargs": processor_kwargs}
        content = [{"type": modality, modality: item} for modality, items in media.items() for item in items]
        messages = [{"role": "user", "content": [*content, {"type": "text", "text": text}]}]
        return self._request(messages, text, processor_kwargs, continue_final_message=False)

    def _request(self, messages: list[dict], original, processor_kwargs: dict, continue_final_message: bool) -> dict:
        prompt = self.processor.apply_chat_template(
            messages, add_generation_prompt=not continue_final_message, continue_final_message=continue_final_message
        )
        return {
            "prompt": prompt,
            **self.processor.media_from_conversation(messages),
            "text": original,
            "processor_kwargs": processor_kwargs,
        }

    def _collate(self, requests: list[dict]):
        """One processor call for the whole batch: left padding, media in order of appearance."""
        media = {
            argument: [item for request in requests for item in request[modality]] or None
            for modality, argument in (("image", "images"), ("video", "videos"), ("audio", "audio"))
        }
        model_inputs = self.processor(
            text=[request["prompt"] for request in requests],
            **media,
            return_tensors="pt",
            padding=True,
            padding_side="left",
            **requests[0]["processor_kwargs"],
        ).to(dtype=self.dtype)
        model_inputs["text"] = [request["text"] for request in requests]
        return model_inputs

    def run_single(self, inputs, preprocess_params, forward_params, postprocess_params):
        model_inputs = self._collate([self.preprocess(inputs, **preprocess_params)])
        return self.postprocess(self.forward(model_inputs, **forward_params), **postprocess_params)

    def get_iterator(
        self, inputs, num_workers: int, batch_size: int, preprocess_params, forward_params, postprocess_params
    ):
        """The base iterator, with the processor running in the collate step for every batch size."""
        dataset_class = PipelineDataset if isinstance(inputs, Sized) else PipelineIterator
        dataset = dataset_class(inputs, self.preprocess, preprocess_params)
        loader = DataLoader(dataset, num_workers=num_workers, batch_size=batch_size, collate_fn=self._collate)
        model_iterator = PipelineIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)


__all__ = ["ChatBridgePipeline"]
