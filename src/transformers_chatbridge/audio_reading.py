"""Audio clips read in pieces: a clip's length first, then only the sample ranges the fbank segments use.

An hour-long file then costs what ten seconds do. Written by hand because soundfile and PyAV either decode a whole
file or seek approximately (libsndfile's MP3 seeks land thousands of samples off), while the feature extractor needs
exact sample ranges: formats whose seeks are exact are read by seeking, the others by one counting pass and one
pass that keeps only the wanted ranges, both in bounded memory.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence

import numpy as np

# libsndfile decodes these with sample-exact seeks; anything else (MPEG) is read front to back.
_EXACT_SEEK_FORMATS = {"WAV", "WAVEX", "W64", "RF64", "AIFF", "AU", "CAF", "FLAC", "OGG", "RAW", "IRCAM", "NIST"}
_BLOCK = 1 << 16


class AudioClip:
    """A clip's channel count, length and rate, and a way to read ranges of its first channel."""

    def __init__(self, channels: int, num_samples: int, sampling_rate: int) -> None:
        self.channels, self.num_samples, self.sampling_rate = channels, num_samples, sampling_rate

    def read(self, ranges: Sequence[tuple[int, int]]) -> list[np.ndarray]:
        """Channel 0 of each `[start, stop)` range, float32 in [-1, 1]."""
        raise NotImplementedError


class ArrayClip(AudioClip):
    """A waveform already in memory, (channels, samples)."""

    def __init__(self, wave: np.ndarray, sampling_rate: int) -> None:
        super().__init__(wave.shape[0], wave.shape[1], sampling_rate)
        self.wave = wave

    def read(self, ranges: Sequence[tuple[int, int]]) -> list[np.ndarray]:
        return [self.wave[0, start:stop] for start, stop in ranges]


class SeekableFileClip(AudioClip):
    """A file libsndfile seeks in exactly: its header gives the length, each range is one seek and one read."""

    def __init__(self, source: str | bytes, channels: int, num_samples: int, sampling_rate: int) -> None:
        super().__init__(channels, num_samples, sampling_rate)
        self.source = source

    def read(self, ranges: Sequence[tuple[int, int]]) -> list[np.ndarray]:
        import soundfile as sf  # noqa: PLC0415

        pieces = []
        with sf.SoundFile(_file_like(self.source)) as file:
            for start, stop in ranges:
                file.seek(start)
                # dtype float32 gives PCM16 / 32768 (and PCM32 / 2**31), the same values as torchaudio.load.
                pieces.append(file.read(stop - start, dtype="float32", always_2d=True)[:, 0].copy())
        return pieces


class StreamedClip(AudioClip):
    """A clip decoded front to back by `blocks` (a function giving an iterator of (channels, samples) float32
    blocks): one pass counts the samples, another keeps the wanted ranges."""

    def __init__(self, blocks: Callable[[], Iterator[tuple[np.ndarray, int]]]) -> None:
        self.blocks = blocks
        channels, count, rate = 1, 0, 0
        for block, rate in blocks():
            channels, count = block.shape[0], count + block.shape[1]
        super().__init__(channels, count, rate)

    def read(self, ranges: Sequence[tuple[int, int]]) -> list[np.ndarray]:
        pieces = [np.zeros(stop - start, np.float32) for start, stop in ranges]
        offset = 0
        for block, _ in self.blocks():
            end = offset + block.shape[1]
            for piece, (start, stop) in zip(pieces, ranges):
                low, high = max(start, offset), min(stop, end)
                if low < high:
                    piece[low - start : high - start] = block[0, low - offset : high - offset]
            offset = end
            if all(stop <= offset for _, stop in ranges):
                break
        return pieces


def _file_like(source: str | bytes) -> str | io.BytesIO:
    return io.BytesIO(source) if isinstance(source, bytes) else source


def _soundfile_blocks(source: str | bytes) -> Callable[[], Iterator[tuple[np.ndarray, int]]]:
    import soundfile as sf  # noqa: PLC0415

    def blocks() -> Iterator[tuple[np.ndarray, int]]:
        with sf.SoundFile(_file_like(source)) as file:
            # Not `file.blocks`: it trusts the header's length, which a cut MP3 overstates.
            while (block := file.read(_BLOCK, dtype="float32", always_2d=True)).shape[0]:
                yield block.T, file.samplerate

    return blocks


def _pyav_blocks(source: str | bytes) -> Callable[[], Iterator[tuple[np.ndarray, int]]]:
    """Decoder for containers libsndfile does not read (m4a/aac, ...)."""
    import av  # noqa: PLC0415 (only needed for formats soundfile cannot read)

    def blocks() -> Iterator[tuple[np.ndarray, int]]:
        with av.open(_file_like(source), mode="r") as container:
            if not container.streams.audio:
                raise ValueError("no audio stream")
            stream = container.streams.audio[0]
            # Planar float keeps the channels apart; FFmpeg converts s16 -> float as x / 32768, like soundfile.
            resampler = av.AudioResampler(format="fltp")
            rate = stream.rate or 0
            for frame in container.decode(stream):
                rate = frame.sample_rate
                for out in resampler.resample(frame):
                    yield out.to_ndarray().astype(np.float32, copy=False), rate
            for out in resampler.resample(None):
                yield out.to_ndarray().astype(np.float32, copy=False), rate

    return blocks


def open_audio_file(source: str | bytes, where: str) -> AudioClip:
    """The clip in a file (a path or its bytes): soundfile (wav/flac/ogg/mp3/...) first, PyAV for what it cannot
    read (both imported here, when a file is read); decoder errors of every kind become one ValueError that starts
    with `where`."""
    import soundfile as sf  # noqa: PLC0415

    try:
        with sf.SoundFile(_file_like(source)) as file:
            header = file.format, file.channels, file.frames, file.samplerate
        if header[0] in _EXACT_SEEK_FORMATS:
            return SeekableFileClip(source, *header[1:])
        return StreamedClip(_soundfile_blocks(source))
    except Exception as error:  # libsndfile raises several types for unreadable input
        sf_error = error
    try:
        return StreamedClip(_pyav_blocks(source))
    except Exception as av_error:
        raise ValueError(f"{where}: soundfile: {sf_error}; PyAV: {av_error}") from av_error


__all__ = ["ArrayClip", "AudioClip", "open_audio_file"]
