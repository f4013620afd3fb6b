"""Instruction templates of the MULTIS builders (ours: the paper does not publish its phrasings).

Each task has several phrasings; `BuildContext.choose(templates, task, record)` picks one deterministically from
the seed and the record's id. `{m}` is replaced by the medium's noun (image, video, audio clip).
"""

SHORT_ANSWER = (
    "Answer the question using a single word or phrase.",
    "Answer with one word or a short phrase.",
    "Reply with a single word or phrase.",
    "Give a short answer: one word or a phrase.",
)

CAPTION = {
    "image": (
        "Describe the image briefly.",
        "Write a short caption for this image.",
        "Give a one-sentence description of the image.",
        "What does this image show? Answer in one sentence.",
        "Summarize the content of the picture in a sentence.",
    ),
    "video": (
        "Describe the video briefly.",
        "Write a short caption for this video.",
        "Give a one-sentence description of what happens in the video.",
        "What happens in this clip? Answer in one sentence.",
        "Summarize the video in a sentence.",
    ),
    "audio": (
        "Describe the audio briefly.",
        "Write a short caption for this sound.",
        "What can be heard in this audio clip? Answer in one sentence.",
        "Give a one-sentence description of the sound.",
        "Summarize what you hear in a sentence.",
    ),
}


def short_qa(question: str, suffix: str) -> str:
    question = question.strip()
    return f"{question}\n{suffix}" if question else suffix
