"""Small real media files for the tests, written with PIL, soundfile and PyAV (a fresh machine has no ffmpeg)."""

from pathlib import Path

import av
import numpy as np
import soundfile
from PIL import Image


def write_mp4(path: Path, frames: list[np.ndarray] | None = None, fps: int = 10) -> Path:
    """An H.264 mp4 of `frames` (H x W x 3 uint8); by default 12 grey 32x32 frames, each brighter than the last."""
    if frames is None:
        frames = [np.full((32, 32, 3), index * 20, dtype=np.uint8) for index in range(12)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_tone(path: Path, frequency: float = 440.0, seconds: float = 1.0, rate: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * frequency * np.arange(int(rate * seconds)) / rate), rate)
    return path


def write_sample_media(folder: Path) -> Path:
    """red.png, blue.png, a 1 s tone.wav, a 12-frame clip.mp4, and notes.png: a text file posing as an image."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), "red").save(folder / "red.png")
    Image.new("RGB", (30, 40), "blue").save(folder / "blue.png")
    write_tone(folder / "tone.wav")
    write_mp4(folder / "clip.mp4")
    (folder / "notes.png").write_text("not an image, just notes\n")
    return folder
