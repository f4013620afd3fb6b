"""The miniature world: a deterministic synthetic multimodal data set small enough to train on 2 CPU cores.

`build_miniature(out_dir, size=..., seed=...)` draws instances of four modalities and writes their media and rows:

- image (64x64 PNG): 1-3 shapes (circle, square, triangle, star) of one of 6 colours in one quadrant, on a tinted
  light background with pixel noise; every second image also prints a 3-letter word in the other half (for OCR).
- video (64x64 MP4, H.264 yuv420p, 8 frames at 4 fps = 2 s): one shape moving left, right, up or down.
- audio (16 kHz mono 16-bit WAV, 1-2 s): a tone with a pitch (low/mid/high), a rhythm (steady/beeping) and a
  timbre (sine/square).
- audio-video (MP4 + its own WAV, 2 s): two shapes; the sounding one moves and flashes on each beep of its tone,
  the other stays still and silent.

Rows use the project's chat row format (`CHAT_ROW_FEATURES`) plus `MINIATURE_COLUMNS`: `id`, `stage` (1: caption
rows whose user turn holds only the media items; 2: the 16 MULTIS task kinds), `task`, `modality`, `question_kind`,
`answer` (the checkable ground truth: the short answer of QA, OCR and reasoning rows, the reference text of caption
and description rows, the short answers joined by " | " for conversations), `instance` and `attributes` (the
generator's attributes of the instance as canonical JSON).

Layout of the output folder (movable: every path in it is relative to it)::

    DIR/README.md                 data set card; its YAML header names the Parquet file of each split
    DIR/ground_truth.json         seed, size, held-out combinations, every instance's attributes, parameters, files
    DIR/data/{split}.parquet      rows of train / validation / test / novel
    DIR/media/{split}/{modality}/{instance}.{png,mp4,wav}

The media columns hold paths relative to DIR. `load_miniature(DIR)` returns a `datasets.DatasetDict` whose media
paths are absolute (ready for `ChatBridgeDataCollator`); `datasets.load_dataset(DIR)` also reads the splits (paths
then stay relative: join them to DIR), but it caches by the folder's name, so a second world in another folder of the
same name reads back the first one's rows; `transformers_chatbridge.data.load_folder_split(DIR, split)` does not.

Splits: validation and test hold new instances (fresh positions, sizes, backgrounds, noise, timings; their own
files); the `novel` split holds only attribute combinations never drawn elsewhere (`HELD_OUT_SHAPE_COLOURS` for
every drawn shape, `HELD_OUT_PITCH_TIMBRES` for every tone). The same seed gives byte-identical rows and media.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw, ImageFont

from .builders.common import prepare_out_dir
from .loading import load_folder_split
from .rows import CHAT_ROW_FEATURES, make_row

SHAPES = ("circle", "square", "triangle", "star")
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 60, 220),
    "yellow": (230, 200, 20),
    "purple": (140, 40, 180),
    "orange": (245, 130, 20),
}
POSITIONS = ("top left", "top right", "bottom left", "bottom right")
OPPOSITE_POSITION = dict(zip(POSITIONS, reversed(POSITIONS)))
DIRECTIONS = ("left", "right", "up", "down")
EXIT_EDGE = {"left": "left", "right": "right", "up": "top", "down": "bottom"}
ENTRY_EDGE = {"left": "right", "right": "left", "up": "bottom", "down": "top"}
PITCHES = {"low": 220.0, "mid": 440.0, "high": 880.0}
RHYTHMS = ("steady", "beeping")
TIMBRES = ("sine", "square")
TIMBRE_WORDS = {"sine": "sine", "square": "square-wave"}
WORDS = ("CAT", "SUN", "BOX", "DOG", "HAT", "KEY", "MAP", "PEN", "CUP", "BUS")
WARM_COLOURS = ("red", "orange", "yellow")
CORNERS = {"circle": 0, "square": 4, "triangle": 3, "star": 10}
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}

# Combinations drawn only in the `novel` split (each shape and each colour, pitch and timbre is still seen alone).
HELD_OUT_SHAPE_COLOURS = (("circle", "green"), ("square", "purple"), ("triangle", "orange"), ("star", "blue"))
HELD_OUT_PITCH_TIMBRES = (("low", "square"), ("high", "sine"))

IMAGE_SIZE = 64
VIDEO_FRAMES = 8
VIDEO_FPS = 4
SAMPLE_RATE = 16000
SPLITS = ("train", "validation", "test", "novel")
MODALITIES = ("image", "video", "audio", "audio-video")
MEDIA_EXTENSIONS = {"image": ("png",), "video": ("mp4",), "audio": ("wav",), "audio-video": ("mp4", "wav")}
# Draws outside the data set's splits (e.g. pretraining the towers that stand in for EVA-CLIP and BEATs) may use
# every combination: `draw_instance(..., split=ALL_COMBINATIONS)`.
ALL_COMBINATIONS = "all"
DEFAULT_SIZE = 200
DEFAULT_SEED = 0

STAGE1_TASKS = {modality: f"stage1-{modality}" for modality in MODALITIES}
TASKS_BY_MODALITY = {
    "image": ("ti-shortqa", "ti-normalqa", "ti-cap", "ti-ocr", "ti-det", "ti-rea", "ti-conv"),
    "video": ("tv-shortqa", "tv-cap", "tv-det", "tv-rea", "tv-conv"),
    "audio": ("ta-cap",),
    "audio-video": ("tva-cap", "tva-det", "tva-conv"),
}
MULTIS_TASKS = tuple(task for tasks in TASKS_BY_MODALITY.values() for task in tasks)

MINIATURE_COLUMNS = ("id", "stage", "task", "modality", "question_kind", "answer", "instance", "attributes")


def _miniature_features():
    from datasets import Features, Value

    extra = {name: Value("int32") if name == "stage" else Value("string") for name in MINIATURE_COLUMNS}
    return Features({**extra, **CHAT_ROW_FEATURES})


# ---------------------------------------------------------------------------------------------------------------
# Instances: attributes (what a question asks about) and parameters (how this one instance looks or sounds).
# ---------------------------------------------------------------------------------------------------------------


def _instance_counts(size: int) -> dict[str, dict[str, int]]:
    """Instances per split and modality; `size` is the number of training images."""
    size = max(1, int(size))
    # As many audio-video clips as images: the bridge has to tell apart two shapes and bind each to its role (the
    # sounding one, the silent one), and with half as many it gave the other shape in one answer in six.
    train = {"image": size, "video": max(1, size // 2), "audio": max(1, size // 2), "audio-video": size}
    held = {"image": max(2, size // 4), "video": max(1, size // 8), "audio": max(1, size // 8)}
    held["audio-video"] = held["video"]
    return {"train": train, "validation": dict(held), "test": dict(held), "novel": dict(held)}


def _rng(seed: int, split: str, modality: str, index: int, attempt: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS.index(split), MODALITIES.index(modality), index, attempt])


def _choice(rng: np.random.Generator, options):
    options = list(options)
    return options[int(rng.integers(len(options)))]


def _shape_colour_pairs(split: str) -> list[tuple[str, str]]:
    pairs = [(shape, colour) for shape in SHAPES for colour in COLOURS]
    if split == ALL_COMBINATIONS:
        return pairs
    if split == "novel":
        return list(HELD_OUT_SHAPE_COLOURS)
    return [pair for pair in pairs if pair not in HELD_OUT_SHAPE_COLOURS]


def _pitch_timbre_pairs(split: str) -> list[tuple[str, str]]:
    if split == ALL_COMBINATIONS:
        return [(p, t) for p in PITCHES for t in TIMBRES]
    if split == "novel":
        return list(HELD_OUT_PITCH_TIMBRES)
    return [(p, t) for p in PITCHES for t in TIMBRES if (p, t) not in HELD_OUT_PITCH_TIMBRES]


def _background(rng) -> list[int]:
    base = int(rng.integers(200, 246))
    return [int(np.clip(base + rng.integers(-12, 13), 180, 255)) for _ in range(3)]


def _draw_instance(split: str, modality: str, index: int, rng) -> tuple[dict, dict]:
    """Attributes and parameters of one instance (the parameters fix every pixel and sample)."""
    if modality == "image":
        shape, colour = _choice(rng, _shape_colour_pairs(split))
        count = int(rng.integers(1, 4))
        attributes = {
            "shape": shape,
            "colour": colour,
            "position": _choice(rng, POSITIONS),
            "count": count,
            "word": _choice(rng, WORDS) if index % 2 == 0 else None,
        }
        parameters = {
            "shape_size": int(rng.integers(14, 21)) if count == 1 else int(rng.integers(8, 12)),
            "jitter": [int(rng.integers(-3, 4)), int(rng.integers(-3, 4))],
            "background": _background(rng),
            "noise_seed": int(rng.integers(2**31)),
            "word_offset": [int(rng.integers(-4, 5)), int(rng.integers(-2, 3))],
        }
    elif modality == "video":
        shape, colour = _choice(rng, _shape_colour_pairs(split))
        attributes = {"shape": shape, "colour": colour, "direction": _choice(rng, DIRECTIONS)}
        parameters = {
            "shape_size": int(rng.integers(10, 17)),
            "lane": int(rng.integers(12, 53)),
            "start": int(rng.integers(6, 14)),
            "travel": int(rng.integers(32, 46)),
            "background": _background(rng),
            "noise_seed": int(rng.integers(2**31)),
        }
    elif modality == "audio":
        pitch, timbre = _choice(rng, _pitch_timbre_pairs(split))
        attributes = {"pitch": pitch, "rhythm": _choice(rng, RHYTHMS), "timbre": timbre}
        parameters = {
            "duration": round(float(rng.uniform(1.0, 2.0)), 3),
            "detune": round(float(rng.uniform(-0.03, 0.03)), 4),
            "amplitude": round(float(rng.uniform(0.3, 0.6)), 3),
            "beep_period": round(float(rng.uniform(0.2, 0.4)), 3),
            "onset": round(float(rng.uniform(0.0, 0.15)), 3),
            "noise_seed": int(rng.integers(2**31)),
        }
    else:
        pairs = _shape_colour_pairs(split)
        shape, colour = _choice(rng, pairs)
        others = [(s, c) for s, c in pairs if s != shape and c != colour]
        other_shape, other_colour = _choice(rng, others)
        pitch, timbre = _choice(rng, _pitch_timbre_pairs(split))
        attributes = {
            "shape": shape,
            "colour": colour,
            "direction": _choice(rng, DIRECTIONS),
            "pitch": pitch,
            "timbre": timbre,
            "still_shape": other_shape,
            "still_colour": other_colour,
        }
        period = _choice(rng, (2, 4))
        parameters = {
            "shape_size": int(rng.integers(10, 14)),
            "lane_half": int(rng.integers(2)),  # 0: mover in the first half (top/left), still shape in the other
            "lane": int(rng.integers(12, 21)),
            "still_at": [int(rng.integers(12, 53)), int(rng.integers(44, 53))],
            "start": int(rng.integers(6, 12)),
            "travel": int(rng.integers(32, 44)),
            "beep_period_frames": period,
            "beep_phase": int(rng.integers(period)),
            "detune": round(float(rng.uniform(-0.03, 0.03)), 4),
            "amplitude": round(float(rng.uniform(0.3, 0.6)), 3),
            "background": _background(rng),
            "noise_seed": int(rng.integers(2**31)),
        }
    return attributes, parameters


def draw_instance(modality: str, index: int, rng: np.random.Generator, split: str = ALL_COMBINATIONS):
    """(attributes, parameters) of a fresh instance, for `render_image` / `render_video` / `render_audio`."""
    return _draw_instance(split, modality, index, rng)


def combinations_of(modality: str, attributes: dict) -> set[tuple[str, str, str]]:
    """The attribute combinations an instance draws: ("shape-colour", s, c) per shape, ("pitch-timbre", p, t)."""
    combos = set()
    if "shape" in attributes:
        combos.add(("shape-colour", attributes["shape"], attributes["colour"]))
    if "still_shape" in attributes:
        combos.add(("shape-colour", attributes["still_shape"], attributes["still_colour"]))
    if "pitch" in attributes:
        combos.add(("pitch-timbre", attributes["pitch"], attributes["timbre"]))
    return combos


# ---------------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------------


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, centre, size: int, fill, outline=None) -> None:
    cx, cy = centre
    r = size / 2
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill, outline=outline)
    elif shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill, outline=outline)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill, outline=outline)
    else:
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * 0.45
            angle = -np.pi / 2 + k * np.pi / 5
            points.append((cx + radius * np.cos(angle), cy + radius * np.sin(angle)))
        draw.polygon(points, fill=fill, outline=outline)


def _add_noise(image: Image.Image, noise_seed: int, amplitude: int = 8) -> np.ndarray:
    pixels = np.asarray(image, dtype=np.int16)
    noise = np.random.default_rng(noise_seed).integers(-amplitude, amplitude + 1, size=pixels.shape)
    return np.clip(pixels + noise, 0, 255).astype(np.uint8)


_FONT = []


def _font():
    if not _FONT:
        try:
            _FONT.append(ImageFont.load_default(size=13))  # Pillow's embedded FreeType font
        except (TypeError, ImportError, OSError):  # Pillow without FreeType: the bitmap font
            _FONT.append(ImageFont.load_default())
    return _FONT[0]


@dataclass(frozen=True)
class Mark:
    """One thing drawn on a picture: a shape (`text` None) or the printed word (`shape`, `colour` None)."""

    shape: str | None
    colour: str | None
    centre: tuple[float, float]
    size: int = 0
    flashing: bool = False
    text: str | None = None


def _image_marks(attributes: dict, parameters: dict) -> list[Mark]:
    half = IMAGE_SIZE // 2
    top = attributes["position"].startswith("top")
    left = attributes["position"].endswith("left")
    qx = (0 if left else half) + half // 2 + parameters["jitter"][0]
    qy = (0 if top else half) + half // 2 + parameters["jitter"][1]
    offsets = {1: [(0, 0)], 2: [(-7, 0), (7, 0)], 3: [(-8, 6), (8, 6), (0, -7)]}[attributes["count"]]
    marks = [
        Mark(attributes["shape"], attributes["colour"], (qx + dx, qy + dy), parameters["shape_size"])
        for dx, dy in offsets
    ]
    if attributes["word"]:
        wx = half + parameters["word_offset"][0]
        wy = (half + half // 2 if top else half // 2) + parameters["word_offset"][1]
        marks.append(Mark(None, None, (wx, wy), text=attributes["word"]))
    return marks


def _path_point(direction: str, lane: int, start: int, travel: int, frame: int) -> tuple[float, float]:
    along = start + travel * frame / (VIDEO_FRAMES - 1)
    if direction in ("left", "up"):
        along = IMAGE_SIZE - along
    return (along, lane) if direction in ("left", "right") else (lane, along)


def _beeping_frames(parameters: dict) -> list[bool]:
    """Which of an audio-video clip's frames fall on a beep (its sounding shape flashes in them)."""
    period, phase = parameters["beep_period_frames"], parameters["beep_phase"]
    return [((k + phase) % period) < period // 2 for k in range(VIDEO_FRAMES)]


def _frame_marks(modality: str, attributes: dict, parameters: dict) -> list[list[Mark]]:
    beeps = _beeping_frames(parameters) if modality == "audio-video" else [False] * VIDEO_FRAMES
    size, lane, still = parameters["shape_size"], parameters["lane"], []
    if modality == "audio-video":
        lane = lane if parameters["lane_half"] == 0 else IMAGE_SIZE - lane
        sx, sy = parameters["still_at"]
        if parameters["lane_half"] == 1:
            sy = IMAGE_SIZE - sy
        centre = (sx, sy) if attributes["direction"] in ("left", "right") else (sy, sx)
        still = [Mark(attributes["still_shape"], attributes["still_colour"], centre, size)]
    path = (attributes["direction"], lane, parameters["start"], parameters["travel"])
    return [
        still + [Mark(attributes["shape"], attributes["colour"], _path_point(*path, k), size, flashing=beeps[k])]
        for k in range(VIDEO_FRAMES)
    ]


def picture_marks(modality: str, attributes: dict, parameters: dict) -> list[list[Mark]]:
    """What each picture of an instance shows (one list for an image, one per frame of a clip), in drawing order."""
    if modality == "image":
        return [_image_marks(attributes, parameters)]
    return _frame_marks(modality, attributes, parameters)


def _paint(marks: list[Mark], background: list[int]) -> Image.Image:
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), tuple(background))
    draw = ImageDraw.Draw(image)
    for mark in marks:
        if mark.text is not None:
            draw.text(mark.centre, mark.text, fill=(0, 0, 0), font=_font(), anchor="mm")
            continue
        colour = COLOURS[mark.colour]
        if mark.flashing:  # the sounding shape flashes: a bright halo and a lighter fill while its tone sounds
            _draw_shape(draw, mark.shape, mark.centre, mark.size + 6, (255, 255, 255))
            colour = tuple(min(255, c + 50) for c in colour)
        _draw_shape(draw, mark.shape, mark.centre, mark.size, colour)
    return image


def mark_mask(mark: Mark) -> np.ndarray:
    """(IMAGE_SIZE, IMAGE_SIZE) boolean mask of the pixels a mark covers (a flashing shape's halo excluded)."""
    image = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
    draw = ImageDraw.Draw(image)
    if mark.text is not None:
        draw.text(mark.centre, mark.text, fill=255, font=_font(), anchor="mm")
    else:
        _draw_shape(draw, mark.shape, mark.centre, mark.size, 255)
    return np.asarray(image) > 0


def render_image(attributes: dict, parameters: dict) -> np.ndarray:
    """The 64x64 RGB picture of an image instance."""
    return _add_noise(_paint(_image_marks(attributes, parameters), parameters["background"]), parameters["noise_seed"])


def render_video(modality: str, attributes: dict, parameters: dict) -> list[np.ndarray]:
    """The 8 RGB frames of a video or audio-video instance."""
    return [
        _add_noise(_paint(marks, parameters["background"]), parameters["noise_seed"] + k, amplitude=6)
        for k, marks in enumerate(_frame_marks(modality, attributes, parameters))
    ]


def render_audio(modality: str, attributes: dict, parameters: dict) -> np.ndarray:
    """The float32 16 kHz waveform of an audio or audio-video instance."""
    if modality == "audio-video":
        duration = VIDEO_FRAMES / VIDEO_FPS
        frame_on = _beeping_frames(parameters)
    else:
        duration = parameters["duration"]
    t = np.arange(int(round(duration * SAMPLE_RATE))) / SAMPLE_RATE
    frequency = PITCHES[attributes["pitch"]] * (1 + parameters["detune"])
    wave = np.sin(2 * np.pi * frequency * t)
    if attributes["timbre"] == "square":
        wave = 0.6 * np.sign(wave)
    if modality == "audio-video":
        frame_of_sample = np.minimum((t * VIDEO_FPS).astype(int), VIDEO_FRAMES - 1)
        gate = np.asarray(frame_on, dtype=np.float64)[frame_of_sample]
    elif attributes["rhythm"] == "beeping":
        gate = (((t - parameters["onset"]) % parameters["beep_period"]) < parameters["beep_period"] / 2).astype(float)
        gate[t < parameters["onset"]] = 0.0
    else:
        gate = (t >= parameters["onset"]).astype(float)
    ramp = int(0.005 * SAMPLE_RATE)  # 5 ms fades against clicks
    gate = np.convolve(gate, np.ones(ramp) / ramp, mode="same")
    noise = np.random.default_rng(parameters["noise_seed"]).normal(0.0, 0.005, size=t.shape)
    return (parameters["amplitude"] * wave * gate + noise).astype(np.float32)


def write_png(path: Path, pixels: np.ndarray) -> None:
    Image.fromarray(pixels).save(path, format="PNG", optimize=False)


def rgb_to_yuv420p(pixels: np.ndarray) -> np.ndarray:
    """BT.601 limited-range yuv420p planes (chroma averaged over 2x2 blocks) in PyAV's (3h/2, w) layout.

    Done in numpy because libswscale's conversion inside `stream.encode` is not reproducible from run to run.
    """
    rgb = pixels.astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    cb = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    cr = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    h, w = y.shape

    def sub(plane):
        return plane.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    planes = [np.clip(np.rint(plane), 0, 255).astype(np.uint8).ravel() for plane in (y, sub(cb), sub(cr))]
    return np.concatenate(planes).reshape(h * 3 // 2, w)


# One thread and no lookahead / macroblock tree: with them x264's output changed from run to run under CPU load.
X264_PARAMS = "threads=1:lookahead-threads=1:sync-lookahead=0:rc-lookahead=0:mbtree=0"


def write_mp4(path: Path, frames: list[np.ndarray], fps: int = VIDEO_FPS) -> None:
    """H.264 yuv420p MP4 with reproducible bytes: numpy colour conversion, `X264_PARAMS`, bit-exact muxer."""
    with av.open(str(path), "w", format="mp4", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream(
            "libx264",
            rate=fps,
            options={"crf": "18", "preset": "medium", "threads": "1", "x264-params": X264_PARAMS},
        )
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        for pixels in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb_to_yuv420p(pixels), format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_wav(path: Path, waveform: np.ndarray) -> None:
    sf.write(str(path), waveform, SAMPLE_RATE, subtype="PCM_16", format="WAV")


# ---------------------------------------------------------------------------------------------------------------
# Texts: captions, questions (several phrasings per kind) and answers.
# ---------------------------------------------------------------------------------------------------------------


def _plural(shape: str, count: int) -> str:
    return shape if count == 1 else shape + "s"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def image_caption(a: dict) -> str:
    count = a["count"]
    head = f"{_article(a['colour'])} {a['colour']}" if count == 1 else f"{NUMBER_WORDS[count]} {a['colour']}"
    caption = f"{head} {_plural(a['shape'], count)} at the {a['position']}"
    if a["word"]:
        where = "below" if a["position"].startswith("top") else "above"
        caption += f' with the word "{a["word"]}" {where}'
    return caption


def video_caption(a: dict) -> str:
    return f"{_article(a['colour'])} {a['colour']} {a['shape']} moving {a['direction']}"


def audio_caption(a: dict) -> str:
    return f"a {a['pitch']}-pitched {a['rhythm']} {TIMBRE_WORDS[a['timbre']]} tone"


def audio_video_caption(a: dict) -> str:
    return (
        f"{_article(a['colour'])} {a['colour']} {a['shape']} moving {a['direction']} beeps with a {a['pitch']}-pitched "
        f"{TIMBRE_WORDS[a['timbre']]} tone beside a still {a['still_colour']} {a['still_shape']}"
    )


CAPTIONS = {"image": image_caption, "video": video_caption, "audio": audio_caption, "audio-video": audio_video_caption}

IMAGE_QUESTIONS = {
    "colour": ("What colour is the shape?", "Which colour are the objects?", "What is the colour of the shape shown?"),
    "shape": ("What shape is shown?", "Which kind of shape is in the picture?", "What is the shape in the image?"),
    "position": ("Where is the shape?", "In which corner are the shapes?", "Which part of the image holds the shape?"),
    "count": ("How many shapes are there?", "How many objects can you see?", "Count the shapes in the image."),
}
SHORT_SUFFIXES = ("Answer briefly.", "Answer with a word or a number.", "Short answer, please.")
OCR_QUESTIONS = ("What word is written in the image?", "Read the text in the image.", "What does the printed word say?")
IMAGE_CAP_QUESTIONS = ("Describe the image briefly.", "Write a short caption for this image.", "What is in the image?")
DETAIL_QUESTIONS = (
    "Describe the {m} in detail.",
    "Give a detailed description of the {m}.",
    "Tell me everything in the {m}.",
)
IMAGE_REASONING = {
    "opposite": (
        "If the shapes moved to the opposite corner, where would they be?",
        "Which corner is diagonally across from the shapes?",
    ),
    "warmth": ("Is the colour of the shapes warm or cool?", "Would you call this colour warm or cool?"),
    "corners": ("How many corners do the shapes have in total?", "Count all the corners of the shapes together."),
    "add_one": ("If one more shape of the same kind were added, how many would there be?",),
}
VIDEO_QUESTIONS = {
    "direction": ("Which way does the shape move?", "In which direction is the object moving?", "Where is it heading?"),
    "colour": ("What colour is the moving shape?", "Which colour is the object in the video?", "What is its colour?"),
    "shape": ("What shape moves in the video?", "Which kind of shape is moving?", "What is the moving object?"),
}
VIDEO_CAP_QUESTIONS = (
    "Describe the video briefly.",
    "Give a short caption for the video.",
    "What happens in this clip?",
)
VIDEO_REASONING = {
    "exit": ("If the shape keeps moving, through which edge will it leave the frame?", "Where will the shape exit?"),
    "entry": ("From which side of the frame did the shape come?", "Which edge did the shape start from?"),
}
AUDIO_CAP_QUESTIONS = ("Describe the sound.", "What do you hear?", "Give a short caption for the audio.")
AV_CAP_QUESTIONS = (
    "Describe the video and its sound briefly.",
    "Give a short caption for this clip with its audio.",
    "What do you see and hear?",
)
AV_QUESTIONS = {
    "source": ("Which shape makes the sound?", "What is the source of the beeping?", "Which object is beeping?"),
    "sound": ("What sound does the moving shape make?", "How does the moving object sound?"),
    "silent": ("Which shape stays silent?", "Which object makes no sound?"),
    "direction": ("Which way does the sounding shape move?", "In which direction does the beeping object go?"),
    "pitch": ("Is the beep low, mid or high in pitch?", "How high is the tone?"),
}


def _image_answer(kind: str, a: dict) -> tuple[str, str]:
    """(short answer, sentence) for an image question kind."""
    count, noun = a["count"], _plural(a["shape"], a["count"])
    be = "is" if count == 1 else "are"
    if kind == "colour":
        return a["colour"], f"The {noun} {be} {a['colour']}."
    if kind == "shape":
        return a["shape"], ("It is " + _article(a["shape"]) + " " if count == 1 else "They are ") + noun + "."
    if kind == "position":
        return a["position"], f"The {noun} {be} at the {a['position']}."
    if kind == "count":
        return str(count), f"There {be} {count} {noun}."
    return a["word"], f'The word "{a["word"]}" is written in the image.'


def _image_reasoning(kind: str, a: dict) -> tuple[str, str]:
    count, noun = a["count"], _plural(a["shape"], a["count"])
    be = "is" if count == 1 else "are"
    if kind == "opposite":
        opposite = OPPOSITE_POSITION[a["position"]]
        return opposite, f"The {noun} {be} at the {a['position']}, so the opposite corner is the {opposite}."
    if kind == "warmth":
        warmth = "warm" if a["colour"] in WARM_COLOURS else "cool"
        return warmth, f"The {noun} {be} {a['colour']}, which is a {warmth} colour."
    if kind == "corners":
        total = CORNERS[a["shape"]] * count
        corners = CORNERS[a["shape"]]
        return str(total), f"Each {a['shape']} has {corners} corners and there {be} {count}, so {total} in total."
    return str(count + 1), f"There {be} {count} now, so one more makes {count + 1}."


def _image_detail(a: dict) -> str:
    count = a["count"]
    text = f"The image shows {image_caption(a).split(' with the word')[0]} on a plain light background."
    text += f" {'It sits' if count == 1 else 'They sit'} in the {a['position']} quarter of the picture."
    if a["word"]:
        half = "lower" if a["position"].startswith("top") else "upper"
        text += f' The word "{a["word"]}" is printed in black in the {half} half.'
    else:
        text += " There is no text."
    return text


def _video_answer(kind: str, a: dict) -> tuple[str, str]:
    if kind == "direction":
        return a["direction"], f"The {a['shape']} moves {a['direction']}."
    if kind == "colour":
        return a["colour"], f"The moving {a['shape']} is {a['colour']}."
    return a["shape"], f"It is {_article(a['colour'])} {a['colour']} {a['shape']}."


def _video_reasoning(kind: str, a: dict) -> tuple[str, str]:
    if kind == "exit":
        edge = EXIT_EDGE[a["direction"]]
        return edge, f"It moves {a['direction']}, so it will leave through the {edge} edge."
    edge = ENTRY_EDGE[a["direction"]]
    return edge, f"It moves {a['direction']}, so it came from the {edge} edge."


def _video_detail(a: dict) -> str:
    return (
        f"{_article(a['colour']).capitalize()} {a['colour']} {a['shape']} moves {a['direction']} across a plain light "
        f"background. It starts near the {ENTRY_EDGE[a['direction']]} edge and ends near the "
        f"{EXIT_EDGE[a['direction']]} edge after two seconds. Nothing else is in the video."
    )


def _av_answer(kind: str, a: dict) -> tuple[str, str]:
    mover, still = f"{a['colour']} {a['shape']}", f"{a['still_colour']} {a['still_shape']}"
    sound = f"{a['pitch']}-pitched {TIMBRE_WORDS[a['timbre']]} beeping"
    if kind == "source":
        return mover, f"The {mover} makes the sound: it flashes with every beep."
    if kind == "sound":
        return sound, f"It makes a {sound}."
    if kind == "silent":
        return still, f"The {still} stays still and silent."
    if kind == "direction":
        return a["direction"], f"The sounding {a['shape']} moves {a['direction']}."
    return a["pitch"], f"The tone is {a['pitch']}-pitched."


def _av_detail(a: dict) -> str:
    return (
        f"Two shapes are shown: {_article(a['colour'])} {a['colour']} {a['shape']} and {_article(a['still_colour'])} "
        f"{a['still_colour']} {a['still_shape']}. The {a['colour']} {a['shape']} moves {a['direction']} and flashes "
        f"each time a {a['pitch']}-pitched {TIMBRE_WORDS[a['timbre']]} tone beeps, so the sound comes from it. "
        f"The {a['still_colour']} {a['still_shape']} stays still and makes no sound."
    )


def media_descriptions(modality: str, a: dict) -> list[str]:
    """Each media item of an instance in words, in row order: what a language model reads in place of the media
    when it learns to answer from a description (the skill the bridge's queries then reuse)."""
    if modality == "image":
        return [image_caption(a)]
    if modality == "video":
        return [video_caption(a)]
    if modality == "audio":
        return [audio_caption(a)]
    mover = f"{_article(a['colour'])} {a['colour']} {a['shape']}"
    return [
        f"{mover} moving {a['direction']} and flashing beside a still {a['still_colour']} {a['still_shape']}",
        f"a {a['pitch']}-pitched {TIMBRE_WORDS[a['timbre']]} beeping tone",
    ]


def _user(media: list[str], text: str | None = None) -> dict:
    content = [{"type": kind} for kind in media]
    if text is not None:
        content.append({"type": "text", "text": text})
    return {"role": "user", "content": content}


def _assistant(text: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def _conversation(media, turns) -> list[dict]:
    messages = []
    for i, (question, reply) in enumerate(turns):
        messages += [_user(media if i == 0 else [], question), _assistant(reply)]
    return messages


def _task_rows(modality: str, a: dict, rng) -> list[tuple[str, str, str, list[dict]]]:
    """(task, question kind, answer, messages) of every row of one instance, stage 1 first."""
    media = {"image": ["image"], "video": ["video"], "audio": ["audio"], "audio-video": ["video", "audio"]}[modality]
    caption = CAPTIONS[modality](a)
    rows = [(STAGE1_TASKS[modality], "caption", caption, [_user(media), _assistant(caption)])]

    def ask(kinds_to_questions, answer_fn):
        kind = _choice(rng, kinds_to_questions)
        return kind, _choice(rng, kinds_to_questions[kind]), answer_fn(kind, a)

    def conversation(task, questions, answer_fn, n_turns=3):
        kinds = [str(k) for k in rng.permutation(list(questions))[:n_turns]]
        turns = [(_choice(rng, questions[k]), answer_fn(k, a)) for k in kinds]
        rows.append((task, "+".join(kinds), " | ".join(short for _, (short, _) in turns),
                     _conversation(media, [(q, sentence) for q, (_, sentence) in turns])))

    def single(task, kind, question, answer, reply):
        rows.append((task, kind, answer, [_user(media, question), _assistant(reply)]))

    detail = _choice(rng, DETAIL_QUESTIONS).format(m={"image": "image", "video": "video"}.get(modality, "clip"))
    if modality == "image":
        kind, question, (short, _) = ask(IMAGE_QUESTIONS, _image_answer)
        single("ti-shortqa", kind, f"{question} {_choice(rng, SHORT_SUFFIXES)}", short, short)
        kind, question, (short, sentence) = ask(IMAGE_QUESTIONS, _image_answer)
        single("ti-normalqa", kind, question, short, sentence)
        single("ti-cap", "caption", _choice(rng, IMAGE_CAP_QUESTIONS), caption, caption)
        if a["word"]:
            single("ti-ocr", "word", _choice(rng, OCR_QUESTIONS), a["word"], a["word"])
        text = _image_detail(a)
        single("ti-det", "detail", detail, text, text)
        kind, question, (short, sentence) = ask(IMAGE_REASONING, _image_reasoning)
        single("ti-rea", kind, question, short, sentence)
        questions = dict(IMAGE_QUESTIONS, **({"word": OCR_QUESTIONS} if a["word"] else {}))
        conversation("ti-conv", questions, _image_answer)
    elif modality == "video":
        kind, question, (short, _) = ask(VIDEO_QUESTIONS, _video_answer)
        single("tv-shortqa", kind, f"{question} {_choice(rng, SHORT_SUFFIXES)}", short, short)
        single("tv-cap", "caption", _choice(rng, VIDEO_CAP_QUESTIONS), caption, caption)
        text = _video_detail(a)
        single("tv-det", "detail", detail, text, text)
        kind, question, (short, sentence) = ask(VIDEO_REASONING, _video_reasoning)
        single("tv-rea", kind, question, short, sentence)
        conversation("tv-conv", VIDEO_QUESTIONS, _video_answer)
    elif modality == "audio":
        single("ta-cap", "caption", _choice(rng, AUDIO_CAP_QUESTIONS), caption, caption)
    else:
        single("tva-cap", "caption", _choice(rng, AV_CAP_QUESTIONS), caption, caption)
        text = _av_detail(a)
        single("tva-det", "detail", detail, text, text)
        conversation("tva-conv", AV_QUESTIONS, _av_answer)
    return rows


def text_rows(count: int, seed: int, any_word: bool = False) -> list[dict]:
    """Rows of `count` freshly drawn instances per modality, every combination allowed, without media files: text
    for pretraining a language model (with `media_descriptions` in the media's place), never a split's instances.

    `any_word`: printed words are random capital-letter strings instead of the world's ten, so a model that
    answers "what word is written" must copy the word from the description; it cannot recall a likely one.
    """
    rows = []
    for modality in MODALITIES:
        rng = np.random.default_rng([seed, len(SPLITS), MODALITIES.index(modality)])
        for index in range(count):
            attributes, _ = draw_instance(modality, index, rng)
            if any_word and attributes.get("word"):
                attributes["word"] = "".join(chr(65 + int(k)) for k in rng.integers(26, size=3))
            for task, kind, answer, messages in _task_rows(modality, attributes, rng):
                rows.append({"task": task, "stage": 1 if task.startswith("stage1-") else 2, "modality": modality,
                             "question_kind": kind, "answer": answer, "attributes": _canonical(attributes),
                             "messages": messages})  # fmt: skip
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------------------------


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _card(summary: dict, size: int, seed: int) -> str:
    yaml = "\n".join(f"  - split: {split}\n    path: data/{split}.parquet" for split in SPLITS)
    lines = [
        "---",
        "configs:",
        "- config_name: default",
        "  data_files:",
        yaml,
        "---",
        "",
        f"# ChatBridge miniature world (size {size}, seed {seed})",
        "",
        "Synthetic multimodal rows made by `chatbridge data miniature` (`transformers_chatbridge.data.miniature`):",
        "64x64 PNG shape images (shape, colour, quadrant, count, optional printed word), 8-frame 4 fps 64x64 MP4",
        "videos of a moving shape, 16 kHz WAV tones (pitch, rhythm, timbre) and audio-video clips where the",
        "moving shape flashes with each beep of its own WAV.",
        "",
        "- `data/{split}.parquet`: rows in the ChatBridge chat row format (`messages`, `images`, `videos`, `audios`)",
        "  plus `id`, `stage` (1 = caption rows whose user turn is only the media, 2 = MULTIS task kinds), `task`,",
        "  `modality`, `question_kind`, `answer` (checkable ground truth; conversations join answers with ' | ')",
        "  and `instance`/`attributes` (the generator's attributes, JSON).",
        "- Media paths are relative to this folder. `transformers_chatbridge.data.miniature.load_miniature(DIR)`",
        "  returns a `DatasetDict` with absolute paths; `datasets.load_dataset(DIR)` reads the same rows with",
        "  relative paths (it caches by the folder's name: another world in a folder of the same name reads back",
        "  the first one's rows; `transformers_chatbridge.data.load_folder_split(DIR, split)` reads this one's).",
        "- `ground_truth.json`: held-out combinations and every instance's attributes, rendering parameters, files.",
        "- Splits: train; validation and test (new instances of seen combinations); novel (only the held-out",
        "  (shape, colour) and (pitch, timbre) combinations, never drawn in the other splits): report it on its own.",
        "",
        "| split | rows | instances |",
        "|---|---|---|",
    ]
    for split in SPLITS:
        lines.append(f"| {split} | {summary[split]['rows']} | {summary[split]['instances']} |")
    return "\n".join(lines) + "\n"


OWNED_PATHS = ("data", "media", "ground_truth.json", "README.md")


def build_miniature(
    out_dir, size: int = DEFAULT_SIZE, seed: int = DEFAULT_SEED, overwrite: bool = False, progress: bool = True
) -> dict:
    """Write the miniature world to `out_dir`; returns a summary: rows and instances per split, rows per task."""
    import pyarrow.parquet as pq
    from datasets import Dataset
    from tqdm.auto import tqdm

    out = prepare_out_dir(out_dir, overwrite, OWNED_PATHS)
    (out / "data").mkdir(exist_ok=True)

    counts = _instance_counts(size)
    jobs = [(split, modality, i) for split in SPLITS for modality in MODALITIES for i in range(counts[split][modality])]
    seen: set[tuple[str, str, str]] = set()
    rows_by_split: dict[str, list[dict]] = {split: [] for split in SPLITS}
    instances_by_split: dict[str, list[dict]] = {split: [] for split in SPLITS}
    features = _miniature_features()

    for split, modality, index in tqdm(jobs, desc="miniature world", unit="instance", disable=not progress):
        for attempt in range(100):  # a fresh draw if this exact (attributes, parameters) tuple exists already
            rng = _rng(seed, split, modality, index, attempt)
            attributes, parameters = _draw_instance(split, modality, index, rng)
            key = (modality, _canonical(attributes), _canonical(parameters))
            if key not in seen:
                seen.add(key)
                break
        instance = f"{split}-{modality}-{index:05d}"
        folder = out / "media" / split / modality
        folder.mkdir(parents=True, exist_ok=True)
        files = {ext: f"media/{split}/{modality}/{instance}.{ext}" for ext in MEDIA_EXTENSIONS[modality]}
        if modality == "image":
            write_png(out / files["png"], render_image(attributes, parameters))
        if "mp4" in files:
            write_mp4(out / files["mp4"], render_video(modality, attributes, parameters))
        if "wav" in files:
            write_wav(out / files["wav"], render_audio(modality, attributes, parameters))
        instances_by_split[split].append(
            {"instance": instance, "modality": modality, "attributes": attributes, "parameters": parameters,
             "files": sorted(files.values())}
        )
        columns = {
            "images": [files["png"]] if "png" in files else [],
            "videos": [files["mp4"]] if "mp4" in files else [],
            "audios": [files["wav"]] if "wav" in files else [],
        }
        for task, kind, answer, messages in _task_rows(modality, attributes, rng):
            row = make_row(messages, **columns)
            rows_by_split[split].append(
                {
                    "id": f"{instance}-{task}",
                    "stage": 1 if task.startswith("stage1-") else 2,
                    "task": task,
                    "modality": modality,
                    "question_kind": kind,
                    "answer": answer,
                    "instance": instance,
                    "attributes": _canonical(attributes),
                    **row,
                }
            )

    summary = {"size": size, "seed": seed}
    for split in SPLITS:
        table = Dataset.from_list(rows_by_split[split], features=features).data.table  # carries the features
        pq.write_table(table, out / "data" / f"{split}.parquet", compression="zstd")
        summary[split] = {
            "rows": len(rows_by_split[split]),
            "instances": len(instances_by_split[split]),
            "tasks": dict(sorted(Counter(row["task"] for row in rows_by_split[split]).items())),
        }
    ground_truth = {
        "seed": seed,
        "size": size,
        "held_out": {
            "shape_colour": [list(pair) for pair in HELD_OUT_SHAPE_COLOURS],
            "pitch_timbre": [list(pair) for pair in HELD_OUT_PITCH_TIMBRES],
        },
        "splits": list(SPLITS),
        "instances": instances_by_split,
    }
    (out / "ground_truth.json").write_text(json.dumps(ground_truth, indent=1, sort_keys=True) + "\n")
    (out / "README.md").write_text(_card(summary, size, seed))
    return summary


def load_miniature(directory):
    """The miniature world in `directory` as a `datasets.DatasetDict`, media paths made absolute (each split read by
    the package's one folder loader)."""
    from datasets import DatasetDict

    root = Path(directory).resolve()
    splits = json.loads((root / "ground_truth.json").read_text())["splits"]
    return DatasetDict({split: load_folder_split(root, split) for split in splits})


def format_summary(summary: dict) -> str:
    lines = [f"miniature world: size {summary['size']}, seed {summary['seed']}"]
    for split in SPLITS:
        tasks = ", ".join(f"{task} {n}" for task, n in summary[split]["tasks"].items())
        lines.append(f"  {split}: {summary[split]['rows']} rows from {summary[split]['instances']} instances ({tasks})")
    return "\n".join(lines)


__all__ = [
    "ALL_COMBINATIONS",
    "HELD_OUT_PITCH_TIMBRES",
    "HELD_OUT_SHAPE_COLOURS",
    "MINIATURE_COLUMNS",
    "MULTIS_TASKS",
    "STAGE1_TASKS",
    "build_miniature",
    "combinations_of",
    "draw_instance",
    "format_summary",
    "load_miniature",
    "media_descriptions",
    "text_rows",
]
