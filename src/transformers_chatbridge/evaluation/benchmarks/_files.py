"""What the benchmark loaders share: finding the annotation file and the media files of a benchmark folder."""

from __future__ import annotations

import ast
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png")
VIDEO_EXTENSIONS = ("mp4", "avi", "mkv", "webm", "mov")
AUDIO_EXTENSIONS = ("wav", "flac", "mp3", "ogg")

# Where a separately extracted sound track of a video is looked for (`<folder>/<video stem>.<audio extension>`).
SOUNDTRACK_FOLDERS = ("audio", "audios", "wav")


def find_file(data_dir: Path, patterns: tuple[str, ...], what: str) -> Path:
    """The first file matching one of `patterns` (globs relative to `data_dir`, tried in order)."""
    for pattern in patterns:
        found = sorted(path for path in data_dir.glob(pattern) if path.is_file())
        if found:
            return found[0]
    raise FileNotFoundError(f"no {what} in {data_dir} (looked for {', '.join(patterns)})")


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def literal_list(value: Any) -> list:
    """A list stored as its text (`'["Audio", "Counting"]'`, `"['cello']"`), or the list itself."""
    if isinstance(value, list):
        return value
    if not isinstance(value, str) or not value.strip():
        return []
    try:
        parsed = json.loads(value)
    except ValueError:
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return [value]
    return list(parsed) if isinstance(parsed, (list, tuple)) else [parsed]


class MediaIndex:
    """The media files of some folders of a benchmark, found by file name or stem.

    Each folder (relative to the benchmark folder; "." is the folder itself) is listed once, not recursively; a file
    of an earlier folder wins over one of the same name in a later folder. `expected` is where a file that is absent
    should be (in the first folder that exists), so that a sample can keep its path and be reported as missing.
    """

    def __init__(self, data_dir: Path, folders: tuple[str, ...], extensions: tuple[str, ...]):
        self.data_dir = data_dir
        self.folders = [data_dir / folder for folder in folders]
        self.extensions = tuple(f".{extension.lower()}" for extension in extensions)
        self.files: dict[str, Path] = {}
        for folder in self.folders:
            if not folder.is_dir():
                continue
            with os.scandir(folder) as entries:
                for entry in sorted(entries, key=lambda entry: entry.name):
                    stem, extension = os.path.splitext(entry.name)
                    if extension.lower() in self.extensions and entry.is_file():
                        path = Path(entry.path)
                        self.files.setdefault(entry.name, path)
                        self.files.setdefault(stem, path)

    def find(self, *names: str) -> Path | None:
        """The first of `names` (file names or stems) that is a file in one of the folders."""
        for name in names:
            if name in self.files:
                return self.files[name]
        return None

    def expected(self, name: str) -> Path:
        folder = next((folder for folder in self.folders if folder.is_dir()), self.folders[0])
        has_extension = os.path.splitext(name)[1].lower() in self.extensions
        return folder / (name if has_extension else f"{name}{self.extensions[0]}")


def has_audio_stream(path: Path) -> bool:
    """Whether a video file has a sound track (read from its header with PyAV)."""
    stat = path.stat()
    return _has_audio_stream(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4096)
def _has_audio_stream(path: str, mtime_ns: int, size: int) -> bool:
    import av  # noqa: PLC0415 (only the audio-video benchmarks need it)

    try:
        with av.open(path) as container:
            return bool(container.streams.audio)
    except Exception:  # an unreadable file: the runner reports it when the sample is answered
        return True


def soundtrack_index(data_dir: Path) -> MediaIndex:
    """Separately extracted sound tracks of a benchmark's videos (`audio/<video stem>.wav`, ...)."""
    return MediaIndex(data_dir, SOUNDTRACK_FOLDERS, AUDIO_EXTENSIONS)


def video_with_soundtrack(video: Path, soundtracks: MediaIndex, *stems: str) -> dict[str, list[str]]:
    """Media of an audio-video sample: the video, and as its audio either its separately extracted sound track (found
    in `soundtracks` by one of `stems`, by default the video's stem, or next to the video: `<video stem>.wav`, ...)
    or the video file itself (its sound track is decoded with PyAV). A video that exists and has no sound track is
    asked about as a video only."""
    media = {"videos": [str(video)]}
    audio = soundtracks.find(*(stems or (video.stem,)))
    if audio is None:
        siblings = (video.with_name(f"{video.stem}.{extension}") for extension in AUDIO_EXTENSIONS)
        audio = next((sibling for sibling in siblings if sibling.is_file()), None)
    if audio is not None:
        media["audio"] = [str(audio)]
    elif not video.is_file() or has_audio_stream(video):
        media["audio"] = [str(video)]
    return media
