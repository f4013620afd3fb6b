"""Local stand-ins for the Hub files transformers' processor tests read (`url_to_local_path`).

transformers' CI downloads its fixture images, videos and sounds from the Hub before the tests run; here nothing may be
downloaded, so each URL becomes a small file of the same name and kind, written on first use.
"""

import os
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import av
import numpy as np
import soundfile
from PIL import Image

FOLDER = Path(os.environ.get("CHATBRIDGE_COMMON_MEDIA", tempfile.gettempdir())) / "hub-stand-ins"


def _image(path: Path) -> None:
    gradient = np.linspace(0, 255, 320 * 240 * 3, dtype=np.float32).reshape(240, 320, 3)
    Image.fromarray(gradient.astype(np.uint8)).save(path)


def _video(path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for index in range(30):
            frame = np.full((240, 320, 3), index * 8, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def _sound(path: Path) -> None:
    rate = 16000
    wave = 0.3 * np.sin(2 * np.pi * 440 * np.arange(2 * rate) / rate)
    soundfile.write(path, wave, rate, format=path.suffix.lstrip(".").upper())


WRITERS = {".png": _image, ".jpg": _image, ".mp4": _video, ".wav": _sound, ".mp3": _sound}


def url_to_local_path(url: str) -> str:
    name = Path(urlparse(url).path).name
    path = FOLDER / name
    if not path.exists():
        FOLDER.mkdir(parents=True, exist_ok=True)
        WRITERS[path.suffix](path)
    return str(path)
