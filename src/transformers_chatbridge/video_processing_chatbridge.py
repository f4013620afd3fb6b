"""Video processor of ChatBridge: frame sampling rules of the original model and seeking video decoding.

ChatBridge encodes a video as `num_frames` (4) frames, each a 224x224 image (bicubic resize, no crop, CLIP mean/std);
the model input is `pixel_values_videos` of shape (videos, frames, 3, 224, 224).

Frame sampling (`frame_sampling`, saved with the processor):
- `"uniform"` (default): the released demo's rule (`load_video(sampling="uniform")`): indices
  floor(k * length / n_eff) for k = 0 .. n_eff - 1, n_eff = min(num_frames, length), starting at frame 0.
  The original returns fewer than `num_frames` frames for clips shorter than `num_frames`; here the last sampled
  frame is repeated up to `num_frames` (what the segment rule does too), so every video of a batch has the same
  number of frames.
- `"segment_middle"`: the rule of the training data at evaluation (and the original's frame-directory branch):
  `segment_groups` cuts the (last-frame padded) frame list into `num_frames` contiguous groups and the lower-middle
  frame of each group is taken.
- `"segment_random"`: same groups, one uniformly random frame per group (the training rule). The draw uses torch's
  global RNG (like the BEATs feature extractor's random slice), so `transformers.set_seed` makes it reproducible.

The group rule itself lives in `segment_sampling`, shared with the BEATs feature extractor's fbank slices.

Decoding (`read_video`) never decodes a whole clip to get a few frames: every file is first probed with PyAV (open,
find the video stream, decode the first frame), so that bad files fail with a `ValueError` naming the file before
decord (whose C++ checks give unclear errors and are reported to crash on some broken inputs) ever sees them.
Plain H.264/HEVC/MPEG-4/MJPEG files without display rotation are then read with decord (`get_batch` seeks to the
keyframe before each frame, like the released demo); everything else (VP8/VP9/AV1, WebM, MPEG-TS, rotation
metadata, files decord refuses) is read with PyAV by seeking to the keyframe before each wanted frame and decoding
forward to it.
"""

from __future__ import annotations

import bisect
import io
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import numpy as np
import torch
from transformers.image_utils import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    ChannelDimension,
    PILImageResampling,
    infer_channel_dimension_format,
)
from transformers.processing_utils import Unpack, VideosKwargs
from transformers.video_processing_utils import BaseVideoProcessor
from transformers.video_utils import VideoMetadata, make_batched_metadata

from .media_cache import DecodedMediaCache, active_media_cache
from .segment_sampling import segment_indices


logger = logging.getLogger(__name__)

FRAME_SAMPLING_RULES = ("uniform", "segment_middle", "segment_random")
VIDEO_BACKENDS = ("auto", "pyav", "decord")

# decord is used only where it is known to seek and decode correctly; the rest goes through PyAV.
_DECORD_CODECS = frozenset({"h264", "hevc", "mpeg4", "mjpeg"})
_DECORD_FORMATS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi"})

VideoSource = str | os.PathLike | bytes | bytearray | memoryview

# Consecutive packets the decoder may reject before a stream counts as undecodable from that point on.
_MAX_BAD_PACKETS = 64


# --------------------------------------------------------------------------------------------------------------------
# Frame sampling rules
# --------------------------------------------------------------------------------------------------------------------


def uniform_indices(length: int, n: int) -> list[int]:
    """The released demo's rule: floor(k * length / n_eff) for k = 0 .. n_eff - 1, n_eff = min(n, length).

    Returns min(n, length) indices (the original's output for short clips). The original computes
    `np.arange(0, length, length / n_eff).astype(int)` in floating point; this exact integer form gives the same
    indices for n = 1, 2, 4, 8, 16, 32 (checked for every length up to 200000) but differs from the float version for
    some other n (e.g. length 17, n 7: numpy yields 8 indices), where the float result is a rounding artefact.
    """
    if length < 1 or n < 1:
        raise ValueError(f"uniform_indices needs length >= 1 and n >= 1, got length={length}, n={n}")
    n_eff = min(n, length)
    return [k * length // n_eff for k in range(n_eff)]


def sample_frame_indices(
    length: int,
    n: int,
    rule: str = "uniform",
    generator: torch.Generator | np.random.Generator | None = None,
) -> list[int]:
    """`n` frame indices of a `length`-frame video under `rule` (one of `FRAME_SAMPLING_RULES`).

    Always `n` indices: the uniform rule's short-clip output is padded by repeating its last index, so that every
    video of a batch has `n` frames. `generator` only matters for `"segment_random"` (see `segment_indices`).
    """
    if rule == "uniform":
        indices = uniform_indices(length, n)
        return indices + [indices[-1]] * (n - len(indices))
    if rule == "segment_middle":
        return segment_indices(length, n, "middle")
    if rule == "segment_random":
        return segment_indices(length, n, "random", generator=generator)
    raise ValueError(f"frame_sampling must be one of {FRAME_SAMPLING_RULES}, got {rule!r}")


# --------------------------------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------------------------------


def _source_name(source: VideoSource) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<video bytes, {len(source)} B>"
    return os.fspath(source)


@dataclass
class _DisplayTransform:
    """Display orientation of a stream: rotate counter-clockwise by `quarter_turns` x 90 degrees, then mirror
    horizontally if `hflip` (the convention of FFmpeg's display matrix as written by PyAV's `set_display_rotation`)."""

    quarter_turns: int = 0
    hflip: bool = False

    @property
    def identity(self) -> bool:
        return self.quarter_turns == 0 and not self.hflip

    def apply(self, frame: np.ndarray) -> np.ndarray:
        if self.quarter_turns:
            frame = np.rot90(frame, k=self.quarter_turns)
        if self.hflip:
            frame = frame[:, ::-1]
        return np.ascontiguousarray(frame)


def _display_transform(frame, name: str) -> _DisplayTransform:
    """Read the display matrix side data of a decoded frame (PyAV does not apply it when converting to arrays)."""
    import av  # noqa: PLC0415 (imported when a video is decoded, not with the processor)

    for side_data in frame.side_data:
        if side_data.type != av.sidedata.sidedata.Type.DISPLAYMATRIX:
            continue
        matrix = np.frombuffer(bytes(side_data), dtype=np.int32)
        if matrix.size < 9:
            return _DisplayTransform()
        a, b, c, d = (float(v) / 65536.0 for v in (matrix[0], matrix[1], matrix[3], matrix[4]))
        hflip = a * d - b * c < 0
        if hflip:  # undo the mirror (it negates the first column) to read the pure rotation
            a, c = -a, -c
        degrees = math.degrees(math.atan2(c, a))
        quarter_turns = round(degrees / 90.0) % 4
        if abs(degrees - 90.0 * round(degrees / 90.0)) > 1.0:
            logger.warning("%s: display rotation of %.1f degrees rounded to a multiple of 90", name, degrees)
        return _DisplayTransform(quarter_turns, hflip)
    return _DisplayTransform()


class _PyAVVideo:
    """One opened video read with PyAV: probe on open, then seek-and-decode reads of chosen frame indices.

    Frame k of a constant-frame-rate stream is the frame presented k / fps after the first one; it is reached by
    seeking to the keyframe before it (`container.seek(..., backward=True)`, the container's own index) and decoding
    forward, so reading 4 frames costs about the same for a 3 s and a 90 s clip. Where the container's frame count
    and duration x rate disagree (variable frame rate) or the rate is unknown, the presentation timestamps of all
    packets are collected first (one demux pass: reads the file, decodes nothing) and frame k is the k-th of them.
    """

    def __init__(self, source: VideoSource, name: str, max_pixels: int | None = None):
        import av  # noqa: PLC0415 (imported when a video is decoded, not with the processor)

        self._av = av
        self.name = name
        self.max_pixels = max_pixels
        self._source = source
        self.decoded_frames = 0
        self.seeks = 0
        self.last_error: Exception | None = None
        self.timestamps: list[int] | None = None
        self.container = self._open()
        try:
            self._probe()
        except BaseException:
            self.close()
            raise

    # -- opening and probing ------------------------------------------------------------------------------------------

    def _open(self):
        source = self._source
        if isinstance(source, (bytes, bytearray, memoryview)):
            source = io.BytesIO(bytes(source))
        try:
            return self._av.open(source, mode="r", metadata_errors="ignore")
        except (self._av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as error:
            raise ValueError(f"Cannot open video {self.name}: {error}") from error

    def _reopen(self) -> None:
        self.close()
        self.container = self._open()
        self.stream = self.container.streams.video[0]

    def close(self) -> None:
        container, self.container = getattr(self, "container", None), None
        if container is not None:
            container.close()

    def _probe(self) -> None:
        streams = self.container.streams.video
        if not streams:
            kinds = sorted({stream.type for stream in self.container.streams})
            raise ValueError(f"Video {self.name} has no video stream (streams: {kinds or 'none'})")
        self.stream = streams[0]
        self.codec = self.stream.codec_context.name if self.stream.codec_context else None
        self.format = self.container.format.name
        self._check_resolution()
        first = next(self._decoded(), None)
        if first is None:
            detail = f": {self.last_error}" if self.last_error is not None else ""
            raise ValueError(
                f"Video {self.name} has no decodable frame (zero frames, truncated or corrupt data{detail})"
            )
        self.transform = _display_transform(first, self.name)
        height, width = first.height, first.width
        if self.transform.quarter_turns % 2:
            height, width = width, height
        self.height, self.width = height, width
        self.time_base = self.stream.time_base
        rate = self.stream.guessed_rate or self.stream.average_rate or self.stream.base_rate
        self.fps = Fraction(rate) if rate else None
        self.origin = first.pts
        self.window = max(8, round(float(self.fps))) if self.fps else 8
        self.frame_count = self._frame_count()

    def _check_resolution(self) -> None:
        """Refuse, from the stream header and before any frame is decoded, frames larger than `max_pixels`."""
        context = self.stream.codec_context
        width, height = (context.width, context.height) if context else (0, 0)
        if self.max_pixels is not None and width * height > self.max_pixels:
            raise ValueError(
                f"Video {self.name} has {width}x{height} = {width * height:,} pixels per frame, more than "
                f"max_video_pixels ({self.max_pixels:,}); no frame was decoded."
            )

    def _frame_count(self) -> int | None:
        """`stream.frames` when the container reports it and it agrees with duration x frame rate (constant frame
        rate: frames are then found from their timestamps alone). Otherwise (no count, as in Matroska/WebM/MPEG-TS;
        count and duration disagreeing, i.e. variable frame rate; no rate or timestamps) the presentation timestamps
        of all packets, or failing those duration x rate. None when nothing is known (then the caller counts the
        frames with a decode pass)."""
        reported = int(self.stream.frames) if self.stream.frames and self.stream.frames > 0 else None
        duration = None
        if self.stream.duration and self.time_base:
            duration = float(self.stream.duration * self.time_base)
        elif self.container.duration:
            duration = self.container.duration / self._av.time_base
        estimate = duration * float(self.fps) if duration and self.fps else None
        constant_rate = reported is not None and estimate is not None and abs(estimate - reported) < 1.0
        if constant_rate and self.origin is not None:
            return reported
        self.timestamps = self._packet_timestamps()
        if self.timestamps:
            return len(self.timestamps)
        if reported is not None:
            return reported
        return max(1, round(estimate)) if estimate else None

    def _packet_timestamps(self) -> list[int] | None:
        """Sorted presentation timestamps of all video packets (None if some packet has none): one demux pass from
        the start, reading the file without decoding it (as decord does when it opens a file)."""
        self._reopen()
        stamps = []
        try:
            for packet in self.container.demux(self.stream):
                if packet.size == 0:
                    continue
                if packet.pts is None:
                    return None
                stamps.append(int(packet.pts))
        except self._av.FFmpegError as error:  # truncated: keep the packets read so far
            self.last_error = error
        return sorted(set(stamps)) or None

    # -- frame indices and timestamps ---------------------------------------------------------------------------------

    @property
    def can_seek(self) -> bool:
        return bool(self.timestamps) or (
            self.fps is not None and self.time_base is not None and self.origin is not None
        )

    def _timestamp(self, index: int) -> int:
        if self.timestamps:
            return self.timestamps[min(index, len(self.timestamps) - 1)]
        return self.origin + int(math.floor(Fraction(index) / self.fps / self.time_base))

    def _index_of(self, timestamp: int) -> int:
        if self.timestamps:
            position = bisect.bisect_left(self.timestamps, timestamp)
            if position < len(self.timestamps) and self.timestamps[position] == timestamp:
                return position
            return max(position - 1, 0)  # not a packet timestamp (e.g. an index entry's dts): the frame before
        return round(float((timestamp - self.origin) * self.time_base * self.fps))

    # -- decoding -----------------------------------------------------------------------------------------------------

    def _to_array(self, frame) -> np.ndarray:
        return self.transform.apply(frame.to_ndarray(format="rgb24"))

    def _decoded(self):
        """Frames decoded from the current position. Packets the decoder rejects are skipped (the decoder recovers
        at the next keyframe); a run of `_MAX_BAD_PACKETS` rejected packets or a demuxer error ends the iteration,
        so corrupt files end quickly instead of raising mid-way or hanging."""
        bad = 0
        try:
            for packet in self.container.demux(self.stream):
                try:
                    frames = packet.decode()
                except self._av.FFmpegError as error:
                    self.last_error, bad = error, bad + 1
                    if bad >= _MAX_BAD_PACKETS:
                        return
                    continue
                bad = 0
                for frame in frames:
                    self.decoded_frames += 1
                    yield frame
        except self._av.FFmpegError as error:  # demuxer: truncated or unreadable data
            self.last_error = error

    def _frames(self):
        """Decoded (index, frame) pairs from the current position (index None where a frame has no timestamp)."""
        for frame in self._decoded():
            yield (None if frame.pts is None else self._index_of(frame.pts)), frame

    def _seek(self, index: int) -> None:
        self.container.seek(self._timestamp(index), stream=self.stream, backward=True, any_frame=False)
        self.seeks += 1

    def _keyframe_before(self, index: int) -> int | None:
        """Approximate index of the keyframe a seek to `index` would land on, from the demuxer's index. Only a
        complete index (an entry per frame, as MP4/MOV and AVI have from the start) is used; MPEG-TS and others
        build a partial one while reading, and then this is None (unknown). MP4 indexes decode timestamps, so the
        result can be a few frames early."""
        entries = self.stream.index_entries
        if not self.frame_count or len(entries) < self.frame_count:
            return None
        try:
            position = entries.search_timestamp(self._timestamp(index), backward=True)
        except (self._av.FFmpegError, OverflowError, TypeError):
            return None
        return self._index_of(entries[position].timestamp) if position >= 0 else None

    def _should_seek(self, index: int, last_index: int | None) -> bool:
        """Seek unless the wanted frame is close ahead or a seek would land on a keyframe already decoded past."""
        if last_index is None:
            return True
        if index - last_index <= self.window:
            return False
        keyframe = self._keyframe_before(index)
        return keyframe is None or keyframe > last_index

    def _frames_from(self, index: int):
        """Seek so that frame `index` is ahead, then return the frame iterator.

        Demuxers seek by decode timestamps (MP4 with B-frames) or by byte position (MPEG-TS), so the keyframe found
        can lie after the wanted frame, or nothing is decoded after the seek; then seek again further back (doubling
        the step) until the first decoded frame is not after the wanted one.
        """
        back = 0
        while True:
            start = max(index - back, 0)
            try:
                self._seek(start)
            except self._av.FFmpegError as error:
                logger.debug("%s: seek to frame %d failed: %s", self.name, start, error)
                return iter(())
            frames = self._frames()
            first = next(frames, None)
            if first is None and start == 0:
                return iter(())
            if first is not None and (first[0] is None or first[0] <= index or start == 0):
                return _chain_first(first, frames)
            overshoot = first[0] - start if first is not None else 0
            back = max(2 * back, self.window, 2 * overshoot)

    def read(self, indices: Sequence[int]) -> dict[int, np.ndarray]:
        """Frames at `indices` by seeking (sorted unique decode); frames that could not be reached are missing from
        the result (the caller then falls back to `scan`)."""
        wanted = sorted(set(int(i) for i in indices))
        if not self.can_seek:
            return {}
        found: dict[int, np.ndarray] = {}
        frames, last_index, last_array = None, None, None
        for index in wanted:
            if last_index is not None and last_index >= index:
                found[index] = last_array  # a gap in the timestamps: the frame after it stands for the missing one
                continue
            if frames is None or self._should_seek(index, last_index):
                frames = self._frames_from(index)
            for frame_index, frame in frames:
                if frame_index is None:  # a frame without timestamp: leave it to the sequential scan
                    return found
                last_index = frame_index
                if frame_index >= index:
                    last_array = found[index] = self._to_array(frame)
                    break
            else:
                break  # end of decodable data: this and later indices are missing
        return found

    def scan(self, indices: Sequence[int] = ()) -> tuple[dict[int, np.ndarray], int]:
        """One sequential decode pass from the start: the frames at `indices` (by decoding order position) and the
        number of decodable frames. Only used where seeking cannot work: no frame count or timestamps, seeks that
        find nothing (some MPEG-TS files), truncated files."""
        wanted = set(int(i) for i in indices)
        found: dict[int, np.ndarray] = {}
        self._reopen()
        count = 0
        for count, frame in enumerate(self._decoded(), start=1):
            if count - 1 in wanted:
                found[count - 1] = self._to_array(frame)
        return found, count


def _chain_first(first, rest):
    yield first
    yield from rest


def _decord_suitable(video: _PyAVVideo) -> bool:
    return video.transform.identity and video.codec in _DECORD_CODECS and video.format in _DECORD_FORMATS


def _metadata(total: int, fps: float | None, video: _PyAVVideo, backend: str) -> VideoMetadata:
    return VideoMetadata(
        total_num_frames=total,
        fps=fps,
        width=video.width,
        height=video.height,
        duration=total / fps if fps else None,
        video_backend=backend,
    )


def _read_with_decord(
    source: VideoSource, video: _PyAVVideo, sample_indices_fn: Callable[..., Sequence[int]]
) -> tuple[np.ndarray, VideoMetadata]:
    from decord import VideoReader, cpu

    if isinstance(source, (bytes, bytearray, memoryview)):
        reader = VideoReader(io.BytesIO(bytes(source)), ctx=cpu(0))
    else:
        reader = VideoReader(os.fspath(source), ctx=cpu(0))
    total = len(reader)
    fps = float(reader.get_avg_fps() or 0.0) or (float(video.fps) if video.fps else None)
    metadata = _metadata(total, fps, video, "decord")
    indices = [int(i) for i in sample_indices_fn(metadata=metadata)]
    batch = reader.get_batch(indices)
    frames = batch.asnumpy() if hasattr(batch, "asnumpy") else np.asarray(batch)  # decord's bridge may be torch
    if frames.shape != (len(indices), video.height, video.width, 3):
        raise RuntimeError(f"decord returned frames of shape {frames.shape}")
    metadata.frames_indices = indices
    return np.ascontiguousarray(frames, dtype=np.uint8), metadata


def _read_with_pyav(
    video: _PyAVVideo, sample_indices_fn: Callable[..., Sequence[int]]
) -> tuple[np.ndarray, VideoMetadata]:
    """Seek-and-decode the sampled frames. Only where that cannot work does a sequential decode pass run: the
    container reports no frame count (the pass counts the frames), a seek finds nothing, or frames the container
    promises cannot be decoded (truncated files: sample again over the decodable frames)."""
    total, scanned = video.frame_count, None
    if total is None:
        logger.info("%s reports no frame count or duration: counting frames with a decode pass", video.name)
        total = video.scan()[1]
    for attempt in range(2):
        if total < 1:
            break
        fps = float(video.fps) if video.fps else None
        metadata = _metadata(total, fps, video, "pyav")
        indices = [int(i) for i in sample_indices_fn(metadata=metadata)]
        found = video.read(indices) if attempt == 0 else video.scan(indices)[0]
        if all(i in found for i in indices):
            metadata.frames_indices = indices
            return np.stack([found[i] for i in indices]), metadata
        if attempt == 0:
            found, scanned = video.scan(indices)
            if all(i in found for i in indices) and scanned >= total:
                reason = "seeking did not reach the sampled frames" if video.can_seek else "no usable timestamps"
                logger.info("%s: %s; decoded them sequentially", video.name, reason)
                metadata.frames_indices = indices
                return np.stack([found[i] for i in indices]), metadata
            logger.warning(
                "%s: %d frames reported but %d decodable (truncated?): sampling over the decodable frames",
                video.name,
                total,
                scanned,
            )
            total = scanned
    raise ValueError(
        f"Video {video.name} is truncated or corrupt: the sampled frames cannot be decoded "
        f"(container reports {video.frame_count} frames, {scanned} decodable)"
    )


def read_video(
    video: VideoSource,
    sample_indices_fn: Callable[..., Sequence[int]] | None = None,
    backend: str = "auto",
    stats: dict[str, Any] | None = None,
    max_pixels: int | None = None,
) -> tuple[np.ndarray, VideoMetadata]:
    """Decode the frames chosen by `sample_indices_fn(metadata=VideoMetadata)` from a video file or its bytes.

    Returns uint8 frames (T, H, W, 3) in display orientation and the metadata (with `frames_indices`,
    `video_backend`). Without `sample_indices_fn` every frame is decoded. `backend`: "auto" (decord for plain
    H.264/HEVC/MPEG-4/MJPEG files without rotation, PyAV otherwise and wherever decord fails), "pyav" or "decord".
    Any unreadable input raises `ValueError` naming the file and the problem. `stats`, if given, receives the
    PyAV work done (`decoded_frames` including the probe's first frame, `seeks`) so tests and benchmarks can check
    that only the needed frames were decoded. A stream whose header declares frames of more than `max_pixels` pixels
    is refused before any frame is decoded. While a `DecodedMediaCache` is active, a file path is opened only for
    frames not read before (and `stats` only reports such reads).
    """
    if backend not in VIDEO_BACKENDS:
        raise ValueError(f"backend must be one of {VIDEO_BACKENDS}, got {backend!r}")
    name = _source_name(video)
    if not isinstance(video, (bytes, bytearray, memoryview)):
        if not os.path.isfile(video):
            raise ValueError(f"Cannot open video {name}: no such file")
    if sample_indices_fn is None:

        def sample_indices_fn(metadata: VideoMetadata, **_: Any) -> list[int]:
            return list(range(metadata.total_num_frames))

    def decode(sample_indices_fn: Callable[..., Sequence[int]]) -> tuple[np.ndarray, VideoMetadata]:
        probe = _PyAVVideo(video, name, max_pixels)
        try:
            return _read(video, name, probe, sample_indices_fn, backend)
        finally:
            if stats is not None:
                stats.update(decoded_frames=probe.decoded_frames, seeks=probe.seeks)
            probe.close()

    cache = active_media_cache()
    file_key = cache.file_key(video) if cache is not None else None
    if file_key is None:
        return decode(sample_indices_fn)
    return _read_through_cache(cache, ("video", file_key, backend, max_pixels), sample_indices_fn, decode)


def _read_through_cache(
    cache: DecodedMediaCache,
    key: tuple,
    sample_indices_fn: Callable[..., Sequence[int]],
    decode: Callable[[Callable[..., Sequence[int]]], tuple[np.ndarray, VideoMetadata]],
) -> tuple[np.ndarray, VideoMetadata]:
    """One decode per file and choice of frames. The first read records the metadata the frame rule was asked with
    (twice where decord gave up and PyAV read the file); later reads ask the rule the same questions without opening
    the file, so a random rule draws exactly what it would draw without the cache."""
    requests = cache.get((*key, "requests"), count=False)
    if requests is None:
        asked = []

        def recorded(metadata: VideoMetadata, **kwargs: Any) -> Sequence[int]:
            asked.append(replace(metadata))
            return sample_indices_fn(metadata=metadata, **kwargs)

        frames, metadata = decode(recorded)
        cache.put((*key, "requests"), tuple(asked), 0, count=False)
    else:
        for request in requests:
            metadata = replace(request)
            indices = [int(i) for i in sample_indices_fn(metadata=metadata)]
        metadata.frames_indices = indices
        frames = cache.get((*key, tuple(indices)))
        if frames is not None:
            return frames.copy(), metadata
        frames, _ = decode(lambda **_: indices)
    cache.put((*key, tuple(metadata.frames_indices)), frames.copy(), frames.nbytes)
    return frames, metadata


def _read(
    video: VideoSource,
    name: str,
    probe: _PyAVVideo,
    sample_indices_fn: Callable[..., Sequence[int]],
    backend: str,
) -> tuple[np.ndarray, VideoMetadata]:
    """decord where asked or suitable (falling back to PyAV in "auto" mode when it fails), else PyAV."""
    if backend == "decord" or (backend == "auto" and _decord_suitable(probe)):
        try:
            return _read_with_decord(video, probe, sample_indices_fn)
        except ImportError:
            if backend == "decord":
                raise
        except Exception as error:  # decord raises its own error types (DECORDError, RuntimeError, ...)
            if backend == "decord":
                raise ValueError(f"decord cannot read video {name}: {error}") from error
            logger.info("decord cannot read %s (%s); decoding with PyAV", name, error)
    return _read_with_pyav(probe, sample_indices_fn)


# --------------------------------------------------------------------------------------------------------------------
# Processor
# --------------------------------------------------------------------------------------------------------------------


class ChatBridgeVideoProcessorKwargs(VideosKwargs, total=False):
    """
    frame_sampling (`str`, *optional*, defaults to `"uniform"`):
        How `num_frames` frames are chosen: `"uniform"` (released demo), `"segment_middle"` (evaluation rule of the
        training data) or `"segment_random"` (training rule).
    """

    frame_sampling: str


def _is_frame(item: Any) -> bool:
    from PIL import Image

    return isinstance(item, Image.Image) or (isinstance(item, (np.ndarray, torch.Tensor)) and item.ndim == 3)


def _is_source(item: Any) -> bool:
    return isinstance(item, (str, os.PathLike, bytes, bytearray, memoryview))


def split_videos(videos: Any) -> list[Any]:
    """The videos of a processor input, one entry per video: file paths / bytes, frame lists or (T, ...) arrays.

    A list of frames (PIL images, 3-D arrays) is ONE video; a 5-D array is a batch; nested lists (per sample) are
    flattened and empty lists contribute nothing. `len(split_videos(x))` is the number of videos the processor
    returns for `x`.
    """
    if _is_source(videos):
        return [videos]
    if isinstance(videos, (np.ndarray, torch.Tensor)):
        if videos.ndim == 4:
            return [videos]
        if videos.ndim == 5:
            return list(videos)
        if videos.ndim == 3:
            return [[videos]]
        raise ValueError(
            f"A video array must have 4 dimensions (T, H, W, C) or (T, C, H, W), got {tuple(videos.shape)}"
        )
    if _is_frame(videos):
        return [[videos]]
    if isinstance(videos, (list, tuple)):
        if not videos:
            return []  # no video (e.g. a sample without one in a per-sample list)
        if all(_is_frame(item) for item in videos):
            return [list(videos)]
        batch = []
        for item in videos:
            batch.extend(split_videos(item))
        return batch
    raise ValueError(
        f"Unsupported video input of type {type(videos).__name__}: pass a path, bytes, a list of frames "
        "(PIL images or H x W x 3 arrays) or a (T, H, W, 3) / (T, 3, H, W) array"
    )


def _frame_array(frame: Any) -> np.ndarray | torch.Tensor:
    from PIL import Image

    if isinstance(frame, Image.Image):
        return np.asarray(frame if frame.mode == "RGB" else frame.convert("RGB"))
    return frame


def _stack_frames(frames: list[Any], position: int) -> np.ndarray | torch.Tensor:
    shapes = {tuple(frame.shape) for frame in frames}
    if len(shapes) != 1:
        raise ValueError(f"The frames of video {position} have different shapes: {sorted(shapes)}")
    if any(isinstance(frame, torch.Tensor) for frame in frames):
        return torch.stack([torch.as_tensor(frame) for frame in frames])
    return np.stack(frames)


class ChatBridgeVideoProcessor(BaseVideoProcessor):
    r"""
    Video processor of ChatBridge: samples `num_frames` frames (4) with the `frame_sampling` rule, resizes each to
    224x224 (bicubic, aspect ratio not kept, no crop), rescales by 1/255 and normalises with the CLIP mean/std.

    Accepts a path, the bytes of a video file, a list of frames (PIL images or H x W x 3 arrays; the sampling rule
    applies to the list too), a (T, H, W, 3) or (T, 3, H, W) array or tensor, or a list of any of these. Returns
    `pixel_values_videos` (videos, num_frames, 3, 224, 224) with `return_tensors="pt"`. Files are decoded with
    `read_video` (decord where suitable, else PyAV; only the sampled frames are decoded).

    Differences from the original demo: decord resized while decoding (FFmpeg scaler) where this processor resizes
    decoded RGB frames with torchvision's antialiased bicubic (close, not bit-exact); clips shorter than `num_frames`
    repeat their last sampled frame instead of giving fewer frames.
    """

    resample = PILImageResampling.BICUBIC
    image_mean = OPENAI_CLIP_MEAN
    image_std = OPENAI_CLIP_STD
    size = {"height": 224, "width": 224}
    default_to_square = True
    do_resize = True
    do_center_crop = False
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    do_convert_rgb = True
    do_sample_frames = True
    num_frames = 4
    frame_sampling = "uniform"
    # Frames larger than this (pixels, from the stream header) are refused before decoding: 4096 x 4096.
    max_video_pixels = 4096 * 4096
    valid_kwargs = ChatBridgeVideoProcessorKwargs
    model_input_names = ["pixel_values_videos"]
    # Not a saved setting: which decoder reads files ("auto", "pyav" or "decord"); see `read_video`.
    video_backend = "auto"

    def __init__(self, **kwargs: Unpack[ChatBridgeVideoProcessorKwargs]) -> None:
        super().__init__(**kwargs)
        if self.frame_sampling not in FRAME_SAMPLING_RULES:
            raise ValueError(f"frame_sampling must be one of {FRAME_SAMPLING_RULES}, got {self.frame_sampling!r}")

    def to_dict(self) -> dict[str, Any]:
        """The saved settings; `video_backend` is a runtime choice of this machine, not a property of the model."""
        output = super().to_dict()
        output.pop("video_backend", None)
        return output

    def sample_frames(
        self,
        metadata: VideoMetadata,
        num_frames: int | None = None,
        fps: int | float | None = None,
        frame_sampling: str | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Indices of the `num_frames` frames to keep under the `frame_sampling` rule (always `num_frames` of them)."""
        if fps is not None:
            raise ValueError("ChatBridge samples a fixed number of frames: pass `num_frames`, not `fps`")
        num_frames = num_frames if num_frames is not None else self.num_frames
        rule = frame_sampling if frame_sampling is not None else self.frame_sampling
        if metadata.total_num_frames is None or metadata.total_num_frames < 1:
            raise ValueError(f"Cannot sample frames from a video with {metadata.total_num_frames} frames")
        return np.asarray(sample_frame_indices(int(metadata.total_num_frames), int(num_frames), rule), dtype=np.int64)

    def fetch_videos(
        self, video_url_or_urls: VideoSource | list[VideoSource], sample_indices_fn: Callable | None = None
    ) -> tuple[Any, Any]:
        """Decode files (paths or bytes) with the seeking `read_video` instead of the base class's whole-clip
        loaders."""
        if isinstance(video_url_or_urls, list):
            return list(zip(*[self.fetch_videos(x, sample_indices_fn=sample_indices_fn) for x in video_url_or_urls]))
        return read_video(
            video_url_or_urls, sample_indices_fn=sample_indices_fn, backend=self.video_backend,
            max_pixels=self.max_video_pixels,
        )  # fmt: skip

    def _decode_and_sample_videos(
        self,
        videos: Any,
        video_metadata: Any = None,
        do_sample_frames: bool | None = None,
        sample_indices_fn: Callable | None = None,
    ) -> tuple[list[np.ndarray | torch.Tensor], list[VideoMetadata]]:
        """Decode files and sample every kind of input with the same rule (the base class refuses to sample lists
        of frames and reads files with whole-clip decoders)."""
        items = split_videos(videos)
        if not items:
            raise ValueError("No video given: pass a path, bytes, a list of frames or an array")
        given_metadata = make_batched_metadata(items, video_metadata) if video_metadata is not None else None
        out_videos, out_metadata = [], []
        for position, item in enumerate(items):
            if _is_source(item):
                frames, metadata = self.fetch_videos(item, sample_indices_fn=sample_indices_fn)
                out_videos.append(frames)
                out_metadata.append(metadata)
                continue
            length = len(item)
            if length == 0:
                raise ValueError(f"Video {position} has no frames")
            metadata = given_metadata[position] if given_metadata else VideoMetadata(total_num_frames=length)
            metadata.total_num_frames = length
            indices = (
                [int(i) for i in sample_indices_fn(metadata=metadata)] if sample_indices_fn else list(range(length))
            )
            if isinstance(item, list):
                converted: dict[int, Any] = {}
                for i in indices:
                    if i not in converted:
                        converted[i] = _frame_array(item[i])
                frames = _stack_frames([converted[i] for i in indices], position)
            elif isinstance(item, torch.Tensor):
                frames = item[torch.as_tensor(indices, dtype=torch.long)]
            else:
                frames = np.asarray(item)[np.asarray(indices, dtype=np.int64)]
            metadata.frames_indices = indices
            if metadata.height is None and frames.ndim == 4:
                channel_dim = infer_channel_dimension_format(frames, num_channels=(1, 3, 4))
                height_axis = 2 if channel_dim == ChannelDimension.FIRST else 1
                metadata.height, metadata.width = int(frames.shape[height_axis]), int(frames.shape[height_axis + 1])
            out_videos.append(frames)
            out_metadata.append(metadata)
        return out_videos, out_metadata

    def _prepare_input_videos(
        self,
        videos: list[np.ndarray | torch.Tensor],
        do_convert_rgb: bool | None = None,
        input_data_format: str | ChannelDimension | None = None,
        device: str | None = None,
    ) -> list[torch.Tensor]:
        """Infer the channel layout per video: a batch may mix decoded (T, H, W, 3) files and (T, 3, H, W) tensors."""
        return [
            super(ChatBridgeVideoProcessor, self)._prepare_input_videos(
                [video], do_convert_rgb=do_convert_rgb, input_data_format=input_data_format, device=device
            )[0]
            for video in videos
        ]


__all__ = [
    "FRAME_SAMPLING_RULES",
    "ChatBridgeVideoProcessor",
    "read_video",
    "sample_frame_indices",
    "split_videos",
    "uniform_indices",
]
