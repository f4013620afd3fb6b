"""The built-in benchmarks: one loader (reading the benchmark's official file format) and one registration each.

One module per kind of media, each with a table of its tasks, data, zero-shot prompts and metrics:

| module | tasks |
|---|---|
| `miniature` | miniature, miniature-novel |
| `image` | coco_caption, flickr30k, nocaps, vqav2, okvqa, gqa |
| `video` | msrvtt_qa, msvd_qa, msrvtt_caption, vatex |
| `audio` | audiocaps, clotho, esc50 |
| `audio_video` | valor32k, music_avqa, avsd |

The prompts are our own phrasing (the paper does not publish its evaluation prompts), in the paper's zero-shot setting:
"{question} Answer the question using a single word or phrase." for short-answer QA, "Write a short caption for this
image." (video, audio, video and its sound) for captioning. `docs/evaluation.md` gives each benchmark's folder layout
and where to download its files.

Each module lists its benchmarks in `TASKS` (a loader, prompt and metrics each); `evaluation.registry` names the
modules, so a new benchmark is a `Task` in one of them (or a new module named there). `_files` holds the shared
file helpers.
"""

from .audio import load_audiocaps, load_clotho, load_esc50
from .audio_video import load_avsd, load_music_avqa, load_valor32k
from .image import load_coco_karpathy, load_flickr30k, load_gqa, load_nocaps, load_okvqa, load_vqav2
from .video import load_msrvtt_caption, load_msrvtt_qa, load_msvd_qa, load_vatex

__all__ = [
    "load_audiocaps", "load_avsd", "load_clotho", "load_coco_karpathy", "load_esc50", "load_flickr30k", "load_gqa",
    "load_msrvtt_caption", "load_msrvtt_qa", "load_msvd_qa", "load_music_avqa", "load_nocaps", "load_okvqa",
    "load_valor32k", "load_vatex", "load_vqav2",
]  # fmt: skip
