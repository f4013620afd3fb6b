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

Every module of this package whose name does not start with `_` is imported here, so a new benchmark is one small
module registering its loader, prompt and metrics (`register_task(Task(...))`); `_files` holds the shared file
helpers.
"""

from __future__ import annotations

import importlib
import pkgutil

# Imported first and in this order, so the registry lists the benchmarks as the table does; then any other module.
_MODULES = ("miniature", "image", "video", "audio", "audio_video")

_OTHERS = sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))
for _module in _MODULES + tuple(name for name in _OTHERS if name not in _MODULES):
    importlib.import_module(f"{__name__}.{_module}")

from .audio import load_audiocaps, load_clotho, load_esc50  # noqa: E402
from .audio_video import load_avsd, load_music_avqa, load_valor32k  # noqa: E402
from .image import load_coco_karpathy, load_flickr30k, load_gqa, load_nocaps, load_okvqa, load_vqav2  # noqa: E402
from .video import load_msrvtt_caption, load_msrvtt_qa, load_msvd_qa, load_vatex  # noqa: E402

__all__ = [
    "load_audiocaps", "load_avsd", "load_clotho", "load_coco_karpathy", "load_esc50", "load_flickr30k", "load_gqa",
    "load_msrvtt_caption", "load_msrvtt_qa", "load_msvd_qa", "load_music_avqa", "load_nocaps", "load_okvqa",
    "load_valor32k", "load_vatex", "load_vqav2",
]  # fmt: skip
