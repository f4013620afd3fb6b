"""Audio front end of ChatBridge: waveform -> normalised kaldi fbank segments for the BEATs encoder.

The pipeline reproduces the original ChatBridge audio preprocessing (`load_wav` + `BlipAudioEvalProcessor`) step by
step, because BEATs only gives the released model's outputs on exactly those features:

1. float32 waveform in [-1, 1] (PCM16 / 32768, what `torchaudio.load` returns), channels first;
2. if the rate is not 16 kHz, resample ALL channels with `torchaudio.functional.resample` (its defaults);
3. keep channel 0 only (the original passes `channel=-1` to kaldi, which means the first channel: no mixing);
4. multiply by 2**15 and compute `torchaudio.compliance.kaldi.fbank` (64 mel bins, 25 ms / 10 ms, kaldi defaults);
5. normalise `(fbank - mean) / (2 * std)` BEFORE padding, so padded rows are exactly zero;
6. zero-pad to whole 1024-frame slices (always: a whole extra zero slice when the length is a multiple of 1024,
   and at least `num_segments` slices), group the slices into `num_segments` contiguous groups and keep one slice
   per group: the lower-middle one (evaluation) or a random one (training).

Every step but the padding works on each frame's own samples (the normalisation uses fixed statistics, the resampler
a kernel of bounded width), so the extractor computes the same numbers from the clip's length alone plus the samples
under the chosen slices: only those are read (see `audio_reading`), resampled (channel 0; channels never mix) and
featurised. A one-hour file costs what its ten-second segments do.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any

import numpy as np
import torch
import torchaudio.compliance.kaldi as ta_kaldi
import torchaudio.transforms as ta_transforms
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature
from transformers.utils import TensorType, logging

from .audio_reading import ArrayClip, AudioClip, open_audio_file
from .segment_sampling import segment_indices


logger = logging.get_logger(__name__)

_SEGMENT_SAMPLINGS = ("middle", "random")
_NOT_FINITE = "the waveform contains NaN or infinite samples"
# Integer PCM arrays are scaled like soundfile / torchaudio.load do for the same sample format.
_INT_SCALES = {np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31, np.dtype(np.int8): 2.0**7}


@functools.lru_cache(maxsize=16)
def resampling_kernel_size(orig_freq: int, new_freq: int) -> int:
    """Elements of the sinc kernel `torchaudio.transforms.Resample` (default settings) builds for these rates: it
    grows with the product of the rates divided by their common factor (44101 Hz -> 16 kHz: 7e8, 2.8 GB)."""
    common = math.gcd(orig_freq, new_freq)
    orig, new = orig_freq // common, new_freq // common
    width = math.ceil(6 * orig / (min(orig, new) * 0.99))
    return new * (2 * width + orig)


def _resampler(orig_freq: int, new_freq: int) -> ta_transforms.Resample:
    """`torchaudio.transforms.Resample` with its defaults (what the original uses), cached per rate pair.

    Not `torchaudio.functional.resample`: the transform builds its kernel in float64 and stores it as float32, the
    function builds it in the waveform's float32; the two differ by ~3e-6 in the waveform, which the log of nearly
    empty mel bins blows up to ~0.4 in the fbank. Kept out of the instance so it never reaches the saved config.
    """
    return ta_transforms.Resample(orig_freq, new_freq)


class BeatsFeatureExtractor(SequenceFeatureExtractor):
    r"""
    Turns audio (files, bytes, arrays or `datasets`-style dicts) into the normalised kaldi fbank segments that
    ChatBridge's BEATs encoder reads: `input_features` of shape `(clips, num_segments, max_length, num_mel_bins)`
    and `input_features_mask` of shape `(clips, num_segments, max_length)` (1 = frame of real audio, 0 = padding).

    Args:
        feature_size (`int`, defaults to 64): feature dimension (= `num_mel_bins`).
        sampling_rate (`int`, defaults to 16000): rate the fbank is computed at; other rates are resampled to it.
        padding_value (`float`, defaults to 0.0): value of padded frames (after normalisation, as the original).
        num_mel_bins (`int`, defaults to 64): mel bins of the kaldi fbank (ChatBridge uses 64, not BEATs' 128).
        frame_length (`float`, defaults to 25): kaldi window length in milliseconds.
        frame_shift (`float`, defaults to 10): kaldi frame shift in milliseconds.
        max_length (`int`, defaults to 1024): frames per segment (one BEATs pass; 10.24 s).
        num_segments (`int`, defaults to 1): segments kept per clip (the released demo uses 1).
        segment_sampling (`str`, defaults to `"middle"`): `"middle"` keeps the lower-middle slice of each group
            (evaluation / the original eval processor); `"random"` keeps a uniformly random slice per group (training).
        mean (`float`, defaults to 15.41663), std (`float`, defaults to 6.55582): normalisation
            `(fbank - mean) / (2 * std)` of the original.
        waveform_scale (`float`, defaults to 32768): factor applied to the [-1, 1] waveform before kaldi (PCM16 range).
        min_sampling_rate (`int`, defaults to 1000), max_sampling_rate (`int`, defaults to 384000): the sample rates
            accepted; others raise a `ValueError` naming the item.
        max_resampling_kernel (`int`, defaults to 2**24): the largest resampling kernel (elements, 4 bytes each) built
            for a rate. A rate whose kernel would be larger (one sharing no common factor with `sampling_rate`, such as
            44101 Hz) is read as the nearest rate whose kernel fits (44100 Hz; a speed error of a few parts per
            million), with a warning naming the item.
    """

    model_input_names = ["input_features", "input_features_mask"]

    def __init__(
        self,
        feature_size: int = 64,
        sampling_rate: int = 16000,
        padding_value: float = 0.0,
        num_mel_bins: int = 64,
        frame_length: float = 25,
        frame_shift: float = 10,
        max_length: int = 1024,
        num_segments: int = 1,
        segment_sampling: str = "middle",
        mean: float = 15.41663,
        std: float = 6.55582,
        waveform_scale: float = 32768,
        min_sampling_rate: int = 1000,
        max_sampling_rate: int = 384000,
        max_resampling_kernel: int = 2**24,
        **kwargs,
    ) -> None:
        super().__init__(feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value, **kwargs)
        if feature_size != num_mel_bins:
            raise ValueError(f"feature_size ({feature_size}) must equal num_mel_bins ({num_mel_bins}).")
        self.num_mel_bins = num_mel_bins
        self.frame_length = frame_length
        self.frame_shift = frame_shift
        self.max_length = max_length
        self.num_segments = self._check_num_segments(num_segments)
        self.segment_sampling = self._check_segment_sampling(segment_sampling)
        self.mean = mean
        self.std = std
        self.waveform_scale = waveform_scale
        self.min_sampling_rate = min_sampling_rate
        self.max_sampling_rate = max_sampling_rate
        self.max_resampling_kernel = max_resampling_kernel

    # ------------------------------------------------------------------ argument checks

    @staticmethod
    def _check_num_segments(num_segments: Any) -> int:
        if isinstance(num_segments, bool) or not isinstance(num_segments, (int, np.integer)) or num_segments < 1:
            raise ValueError(f"num_segments must be a positive integer, got {num_segments!r}.")
        return int(num_segments)

    @staticmethod
    def _check_segment_sampling(segment_sampling: Any) -> str:
        if segment_sampling not in _SEGMENT_SAMPLINGS:
            raise ValueError(f"segment_sampling must be one of {_SEGMENT_SAMPLINGS}, got {segment_sampling!r}.")
        return segment_sampling

    @property
    def window_samples(self) -> int:
        """Samples in one kaldi window at `sampling_rate` (400 at 16 kHz / 25 ms): the shortest usable clip."""
        # Same arithmetic as torchaudio's kaldi module, so the check agrees with what fbank accepts.
        return int(self.sampling_rate * self.frame_length * 0.001)

    @property
    def shift_samples(self) -> int:
        """Samples between two kaldi frames (160 at 16 kHz / 10 ms)."""
        return int(self.sampling_rate * self.frame_shift * 0.001)

    # ------------------------------------------------------------------ loading

    @staticmethod
    def _to_float_array(array: Any, where: str) -> np.ndarray:
        """Array-like -> float32 numpy with integer PCM scaled to [-1, 1]."""
        if isinstance(array, torch.Tensor):
            array = array.detach().to("cpu")
            if array.dtype in (torch.bfloat16, torch.float16):
                array = array.float()
            array = array.numpy()
        array = np.asarray(array)
        if array.dtype in _INT_SCALES:
            return (array.astype(np.float32) / np.float32(_INT_SCALES[array.dtype])).astype(np.float32)
        if array.dtype == np.uint8:  # 8-bit PCM is unsigned with 128 as zero
            return ((array.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"{where}: unsupported sample dtype {array.dtype}; pass float (in [-1, 1]) or int PCM.")
        return array.astype(np.float32, copy=False)

    def _load_item(self, item: Any, index: int, sampling_rate: int | None) -> tuple[AudioClip, str]:
        """Any supported item -> (its clip, label used in error messages); files are opened, not decoded."""
        if isinstance(item, dict):
            if item.get("array") is not None:
                rate = item["sampling_rate"] if item.get("sampling_rate") is not None else sampling_rate
                label = f"Audio item {index} (dict{', ' + repr(item['path']) if item.get('path') else ''})"
                return self._array_item(item["array"], rate, label), label
            if item.get("bytes") is not None:
                return self._load_item(bytes(item["bytes"]), index, sampling_rate)
            if item.get("path") is not None:
                return self._load_item(item["path"], index, sampling_rate)
            raise ValueError(
                f"Audio item {index}: a dict needs 'array' (+ 'sampling_rate'), 'bytes' or 'path'; "
                f"got keys {list(item)}."
            )
        if isinstance(item, (str, os.PathLike)):
            path = os.fspath(item)
            if not os.path.isfile(path):
                hint = " (URLs are not fetched: download the file first)" if "://" in path else ""
                raise FileNotFoundError(f"Audio item {index}: no such file {path!r}{hint}.")
            where = f"Cannot read audio file {path!r} (audio item {index})"
            return open_audio_file(path, where), f"Audio item {index} ({path!r})"
        if isinstance(item, (bytes, bytearray, memoryview)):
            data = bytes(item)
            where = f"Cannot read audio file '<{len(data)} bytes>' (audio item {index})"
            return open_audio_file(data, where), f"Audio item {index} (<{len(data)} bytes>)"
        if isinstance(item, (np.ndarray, torch.Tensor, list, tuple)):
            label = f"Audio item {index} (array)"
            return self._array_item(item, sampling_rate, label), label
        raise ValueError(
            f"Audio item {index}: unsupported type {type(item).__name__}; pass a path, bytes, a numpy array / torch "
            "tensor with sampling_rate, or a dict {'array', 'sampling_rate'}."
        )

    def _array_item(self, array: Any, rate: Any, label: str) -> ArrayClip:
        """Validate an in-memory waveform: channels first, needs an explicit rate."""
        if rate is None:
            # transformers' feature extractors take a bare array as being at their own rate, with a warning.
            logger.warning(
                f"{label} has no sampling rate: assuming {self.sampling_rate} Hz, the rate {type(self).__name__} "
                "computes at. Pass `sampling_rate=` (or a dict with 'sampling_rate'); a wrong rate gives silently wrong "
                "features."
            )
            rate = self.sampling_rate
        wave = self._to_float_array(array, label)
        if wave.ndim == 1:
            wave = wave[None, :]
        elif wave.ndim == 2:
            if wave.shape[0] > wave.shape[1]:
                raise ValueError(
                    f"{label}: 2-D waveforms must be channels first (channels, samples); got shape {wave.shape}, "
                    "which looks like (samples, channels): pass `array.T`."
                )
        else:
            raise ValueError(
                f"{label}: expected a waveform of shape (samples,) or (channels, samples), got {wave.shape}."
            )
        if not np.isfinite(wave).all():  # in memory anyway: refused wherever it is, not only under the segments
            raise ValueError(f"{label}: {_NOT_FINITE}.")
        if wave.size and np.abs(wave).max(initial=0.0) > 1.0 + 1e-3:
            logger.warning_once(
                "BeatsFeatureExtractor expects float waveforms in [-1, 1] (PCM16 / 32768); got values outside "
                "that range (already scaled by 2**15?)."
            )
        return ArrayClip(wave, rate)

    def _check_clip(self, clip: AudioClip, label: str) -> int:
        """Cheap checks on the clip's header before anything is read, so bad items fail early and clearly; returns
        the rate the clip is resampled from."""
        rate = clip.sampling_rate
        valid = isinstance(rate, (int, float, np.integer, np.floating)) and not isinstance(rate, bool)
        if not (valid and math.isfinite(rate) and rate > 0 and float(rate).is_integer()):
            raise ValueError(f"{label}: sampling rate must be a positive integer, got {rate!r}.")
        rate = int(rate)
        if not self.min_sampling_rate <= rate <= self.max_sampling_rate:
            raise ValueError(
                f"{label}: sampling rate {rate} Hz is outside the supported {self.min_sampling_rate}-"
                f"{self.max_sampling_rate} Hz (min_sampling_rate / max_sampling_rate)."
            )
        if clip.channels == 0 or clip.num_samples == 0:
            raise ValueError(f"{label}: the audio is empty (shape {(clip.channels, clip.num_samples)}).")
        if self._resampled_length(clip.num_samples, rate) < self.window_samples:
            raise ValueError(
                f"{label}: the clip is too short ({clip.num_samples} samples at {rate} Hz = "
                f"{1000.0 * clip.num_samples / rate:.1f} ms); at least {self.frame_length} ms "
                f"({self.window_samples} samples at {self.sampling_rate} Hz) are needed for one fbank frame."
            )
        return self._resampling_rate(rate, label)

    def _resampling_rate(self, rate: int, label: str) -> int:
        """`rate`, or the nearest rate whose resampling kernel fits `max_resampling_kernel` (rounded to ever coarser
        steps: 10 Hz, 50 Hz, 100 Hz, ...)."""
        if rate == self.sampling_rate or resampling_kernel_size(rate, self.sampling_rate) <= self.max_resampling_kernel:
            return rate
        for step in (10, 50, 100, 500, 1000, 8000):
            nearby = max(step, round(rate / step) * step)
            if resampling_kernel_size(nearby, self.sampling_rate) <= self.max_resampling_kernel:
                logger.warning(
                    f"{label}: resampling from {rate} Hz would build a kernel of "
                    f"{resampling_kernel_size(rate, self.sampling_rate):,} elements (max_resampling_kernel "
                    f"{self.max_resampling_kernel:,}); reading it as {nearby} Hz (a speed error of "
                    f"{1e6 * abs(nearby - rate) / rate:.0f} ppm)."
                )
                return nearby
        raise ValueError(f"{label}: no rate near {rate} Hz can be resampled within max_resampling_kernel.")

    # ------------------------------------------------------------------ the original pipeline

    def _strides(self, rate: int) -> tuple[int, int]:
        """(input, output) samples of one resampler stride: the two rates divided by their common factor."""
        common = math.gcd(rate, self.sampling_rate)
        return rate // common, self.sampling_rate // common

    def _resampled_length(self, num_samples: int, rate: int) -> int:
        """Samples of the clip at `sampling_rate`, computed as torchaudio's resampler truncates its output (through
        a float32 tensor, which for clips over ~17 M samples can differ from the exact ceiling by one)."""
        if rate == self.sampling_rate:
            return num_samples
        orig, new = self._strides(rate)
        return int(torch.ceil(torch.as_tensor(new * num_samples / orig)))

    def _input_range(self, start: int, stop: int, rate: int, num_samples: int) -> tuple[int, int]:
        """Input samples to resample so that output samples [start, stop) come out as resampling the whole clip
        gives them: whole strides of the resampler, with enough context on both sides for its kernel."""
        if rate == self.sampling_rate:
            return start, stop
        orig, new = self._strides(rate)
        margin = -(-_resampler(rate, self.sampling_rate).width // orig) + 1
        first, last = start // new - margin, (stop - 1) // new + margin + 1
        return max(0, first * orig), min(num_samples, last * orig)

    def resample(self, piece: np.ndarray, piece_start: int, start: int, stop: int, rate: int) -> torch.Tensor:
        """Samples [start, stop) at `sampling_rate` from the input samples beginning at `piece_start` (as chosen by
        `_input_range`), equal to those of the whole clip resampled with torchaudio's defaults (as the original)."""
        wave = torch.from_numpy(piece)
        if rate == self.sampling_rate:
            return wave
        orig, new = self._strides(rate)
        offset = piece_start // orig * new
        return _resampler(rate, self.sampling_rate)(wave[None])[0, start - offset : stop - offset]

    def compute_fbank(self, waveform: torch.Tensor) -> torch.Tensor:
        """Mono waveform in [-1, 1] at `self.sampling_rate` -> raw (un-normalised) kaldi fbank (frames, mel)."""
        return ta_kaldi.fbank(
            (waveform * self.waveform_scale).unsqueeze(0),
            num_mel_bins=self.num_mel_bins,
            sample_frequency=self.sampling_rate,
            frame_length=self.frame_length,
            frame_shift=self.frame_shift,
        )

    def normalize(self, fbank: torch.Tensor) -> torch.Tensor:
        """The original's normalisation (before padding, so padding stays at `padding_value`)."""
        return (fbank - self.mean) / (self.std * 2)

    @staticmethod
    def padded_slice_count(num_frames: int, num_segments: int, max_length: int = 1024) -> int:
        """Slices of the fbank after the original's padding: max(max_length * n - L, max_length - L % max_length)
        zero rows, so there is always padding and at least `num_segments` slices."""
        pad = max(max_length * num_segments - num_frames, max_length - num_frames % max_length)
        return (num_frames + pad) // max_length

    def _read_segments(
        self, clip: AudioClip, label: str, n: int, sampling: str, generator: torch.Generator | None
    ) -> tuple[int, list[tuple[int, np.ndarray | None, int, int, int]]]:
        """The clip's resampling rate and, per chosen segment: its real frames, the input samples they come from
        (with where they start) and the range of output samples they cover; padding-only segments read nothing.

        The slices are those of the original's padded fbank (see `padded_slice_count`), picked by the shared segment
        rule; frame f covers output samples [f * shift, f * shift + window).
        """
        rate = self._check_clip(clip, label)
        num_frames = 1 + (self._resampled_length(clip.num_samples, rate) - self.window_samples) // self.shift_samples
        chosen = segment_indices(self.padded_slice_count(num_frames, n, self.max_length), n, sampling, generator)
        spans = []
        for index in chosen:
            first = index * self.max_length
            frames = min(max(num_frames - first, 0), self.max_length)
            start = first * self.shift_samples
            spans.append((frames, start, start + (frames - 1) * self.shift_samples + self.window_samples))
        ranges = [self._input_range(start, stop, rate, clip.num_samples) for frames, start, stop in spans if frames]
        try:
            pieces = iter(clip.read(ranges))
        except Exception as error:  # decoders raise several types for data broken past the header
            raise ValueError(f"{label}: cannot read the audio: {error}") from error
        starts = iter(piece_start for piece_start, _ in ranges)
        plan = []
        for frames, start, stop in spans:
            piece, piece_start = (next(pieces), next(starts)) if frames else (None, 0)
            if piece is not None and not np.isfinite(piece).all():
                raise ValueError(f"{label}: {_NOT_FINITE} under its segments.")
            plan.append((frames, piece, piece_start, start, stop))
        return rate, plan

    # ------------------------------------------------------------------ public entry point

    def __call__(
        self,
        audio: Any,
        sampling_rate: int | None = None,
        num_segments: int | None = None,
        segment_sampling: str | None = None,
        return_tensors: str | TensorType | None = None,
        generator: torch.Generator | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Featurise one audio item or a list of items.

        Args:
            audio: one item or a list/tuple of items. An item is a path (wav/flac/ogg/mp3/... read with soundfile,
                PyAV as fallback), the raw bytes of such a file, a float waveform in [-1, 1] as numpy array / torch
                tensor / list of floats of shape (samples,) or (channels, samples) -- channels FIRST; (samples,
                channels) is refused -- or a `datasets` Audio dict `{"array", "sampling_rate"}` (or
                `{"path", "bytes"}` undecoded). A 2-D array is one multi-channel clip, not a batch; a list/tuple is
                a batch, except a flat list of numbers (one mono waveform). Integer PCM arrays
                (int16/int32/int8/uint8) are scaled to [-1, 1] like soundfile does.
            sampling_rate: rate of array items without their own; required for them. Files and dicts carrying a
                rate use their own.
            num_segments, segment_sampling: override the instance settings for this call.
            return_tensors: `"pt"` for torch tensors, `"np"`/None for numpy arrays.
            generator: optional `torch.Generator` for `segment_sampling="random"` (else the global torch RNG).

        Returns:
            `BatchFeature` with `input_features` float32 (clips, n, max_length, num_mel_bins) and
            `input_features_mask` int64 (clips, n, max_length): 1 for frames of real audio, 0 for padding.

        Clips shorter than one kaldi window (25 ms) raise a ValueError rather than being zero-padded: the original
        cannot featurise them either, and a silent all-padding segment would hide a broken input.
        """
        n = self._check_num_segments(self.num_segments if num_segments is None else num_segments)
        sampling = self._check_segment_sampling(self.segment_sampling if segment_sampling is None else segment_sampling)
        if isinstance(audio, (list, tuple)) and len(audio) and all(
            isinstance(x, (int, float, np.number)) and not isinstance(x, bool) for x in audio
        ):
            audio = [audio]  # a plain list of numbers is one mono waveform
        elif not isinstance(audio, (list, tuple)):
            audio = [audio]
        if len(audio) == 0:
            raise ValueError("No audio given: pass one item or a non-empty list of items.")

        # Open, check and read every item first (only the samples its segments use), so a bad item fails before
        # any fbank is computed and a long file costs no more than its segments.
        loaded = [self._read_segments(*self._load_item(item, index, sampling_rate), n, sampling, generator)
                  for index, item in enumerate(audio)]
        features, masks = [], []
        for rate, plan in loaded:
            segments = torch.full((n, self.max_length, self.num_mel_bins), float(self.padding_value))
            mask = torch.zeros((n, self.max_length), dtype=torch.long)
            for i, (frames, piece, piece_start, start, stop) in enumerate(plan):
                if frames:
                    wave = self.resample(piece, piece_start, start, stop, rate)
                    segments[i, :frames] = self.normalize(self.compute_fbank(wave))
                    mask[i, :frames] = 1
            features.append(segments.numpy())
            masks.append(mask.numpy())
        data = {"input_features": np.stack(features).astype(np.float32), "input_features_mask": np.stack(masks)}
        return BatchFeature(data=data, tensor_type=return_tensors)


__all__ = ["BeatsFeatureExtractor"]
