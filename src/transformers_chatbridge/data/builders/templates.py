"""Instruction templates of the MULTIS builders (ours: the paper does not publish its phrasings).

Each task has several phrasings; `BuildContext.choose(templates, task, record)` picks one deterministically from
the seed and the record's id. Sources whose questions are already instructions (LLaVA, Video-ChatGPT, AVSD dialogs)
keep their own wording.
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
    "audio-video": (
        "Describe briefly what you see and hear in this video.",
        "Write a short caption for this video and its sound.",
        "In one sentence, what happens in the clip and what can be heard?",
        "Give a one-sentence description of the video, covering both picture and sound.",
        "Summarize the sights and sounds of this clip in a sentence.",
    ),
    "audio": (
        "Describe the audio briefly.",
        "Write a short caption for this sound.",
        "What can be heard in this audio clip? Answer in one sentence.",
        "Give a one-sentence description of the sound.",
        "Summarize what you hear in a sentence.",
    ),
}


# Visual Genome QA (ti-normalqa): answers are phrases or short sentences, so no one-word constraint.
NORMAL_QA = (
    "Answer the question about the image.",
    "Look at the picture and answer the question.",
    "Answer the question based on what the image shows.",
    "Use the image to answer.",
)

# TextCaps (ti-ocr): captions that read the text in the picture.
OCR_CAPTION = (
    "Describe the image briefly, including any text written in it.",
    "Write a short caption for this image that mentions the words you can read in it.",
    "What does this image show? Answer in one sentence and quote the visible text.",
    "Read the text in the picture and describe the scene in one sentence.",
    "Give a one-sentence description of the image, taking its written text into account.",
)

# OCR-VQA (ti-ocr): questions whose answers are read off the image (book covers).
OCR_QA = (
    "Read the text in the image to answer.",
    "Answer using the text shown in the image.",
    "The answer is written in the picture: give it briefly.",
    "Answer briefly, reading the words on the image.",
)

# AVSD (tva-det): descriptions of what happens and what is heard, several sentences long.
DETAIL = {
    "audio-video": (
        "Describe this video in detail, including what can be heard.",
        "Give a detailed account of what happens in the video and of its sounds.",
        "Explain in detail what the people in the clip do and what you hear.",
        "Watch and listen to the clip, then describe it thoroughly.",
        "What is going on in this video? Describe the scene and its sounds in detail.",
    ),
}


def short_qa(question: str, suffix: str) -> str:
    question = question.strip()
    return f"{question}\n{suffix}" if question else suffix
