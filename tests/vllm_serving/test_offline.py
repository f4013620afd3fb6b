"""vLLM's offline engine serves ChatBridge through its transformers backend with transformers' greedy answers."""

import pytest

pytest.importorskip("vllm", reason="vLLM lives in .venv-vllm: run `make test-vllm`")

from vllm_cases import CHAT_QUESTION, MAX_NEW_TOKENS, PROMPTS, audio_rate, case_media, video_metadata  # noqa: E402

# Both run float32 on the same weights; vLLM's attention and fused kernels sum in another order.
LOGPROB_TOLERANCE = 1e-4


def vllm_request(case: str, media: dict) -> dict:
    items = case_media(case, media)
    if "video" in items:
        items["video"] = (items["video"], video_metadata(len(items["video"]), fps=10.0))
    if "audio" in items:
        items["audio"] = (items["audio"], audio_rate(case))
    request = {"prompt": PROMPTS[case]}
    if items:
        request["multi_modal_data"] = items
    return request


def greedy():
    from vllm import SamplingParams

    return SamplingParams(max_tokens=MAX_NEW_TOKENS, temperature=0.0, logprobs=0)


def answer_logprobs(completion) -> list[float]:
    return [step[token].logprob for step, token in zip(completion.logprobs, completion.token_ids)]


def assert_matches(output, reference):
    completion = output.outputs[0]
    assert list(output.prompt_token_ids) == reference.prompt_ids
    assert list(completion.token_ids) == reference.answer_ids
    assert answer_logprobs(completion) == pytest.approx(reference.logprobs, abs=LOGPROB_TOLERANCE)


def test_references_depend_on_the_media(references):
    """Parity means something only if the tiny model's answers move with what it is shown."""
    image, other_image = references["image"].logprobs, references["image2"].logprobs
    assert max(abs(a - b) for a, b in zip(image, other_image)) > 10 * LOGPROB_TOLERANCE


# "resampled audio": a 22.05 kHz clip, resampled by vLLM (torchaudio's resampler) where transformers' feature
# extractor resamples it itself.
@pytest.mark.parametrize("case", ["image", "video", "audio", "video+audio", "resampled audio"])
def test_greedy_ids_match_transformers(llm, media, references, case):
    (output,) = llm.generate(vllm_request(case, media), greedy(), use_tqdm=False)
    assert_matches(output, references[case])


def test_mixed_batch_matches_transformers(llm, media, references):
    """One call, every kind of prompt (and a text-only one) scheduled together."""
    order = ("video+audio", "text", "image", "resampled audio", "audio", "image2", "video")
    outputs = llm.generate([vllm_request(case, media) for case in order], greedy(), use_tqdm=False)
    for case, output in zip(order, outputs):
        assert_matches(output, references[case])


def test_chat_matches_transformers(llm, media, references):
    """`LLM.chat` renders the checkpoint's chat template; transformers' `apply_chat_template` starts with BOS, which
    the template does not write, so it is asked for as in the server's requests."""
    messages = [
        {
            "role": "user",
            "content": [{"type": "image_pil", "image_pil": media["image"]}, {"type": "text", "text": CHAT_QUESTION}],
        }
    ]
    (output,) = llm.chat(messages, greedy(), use_tqdm=False, tokenization_kwargs={"add_special_tokens": True})
    assert_matches(output, references["chat-image"])
