"""ChatBridgeVideoProcessor: the original's frame sampling rules, seeking decoders and hostile files.

Every video here is written by the tests with PyAV. Frames carry their index as a binary marker in the bottom 8 rows
(white block = bit set, LSB first), so each test reads back WHICH frames were decoded, not only how many.
"""

import json
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers.video_utils import VideoMetadata

from transformers_chatbridge.video_processing_chatbridge import (
    ChatBridgeVideoProcessor,
    read_video,
    sample_frame_indices,
    split_videos,
    uniform_indices,
)
from transformers_chatbridge.segment_sampling import segment_groups, segment_indices


FIXTURES = Path(__file__).parent / "fixtures" / "original_tiny"
COLORBARS = FIXTURES / "media" / "colorbars_48f_64x48.mp4"
RAW = {"do_resize": False, "do_rescale": False, "do_normalize": False, "return_tensors": "np"}

# README "Video" index table: (clip frames, n, demo uniform indices, segment-middle indices).
INDEX_TABLE = [
    (3, 4, [0, 1, 2], [0, 1, 2, 2]),
    (3, 8, [0, 1, 2], [0, 1, 2, 2, 2, 2, 2, 2]),
    (10, 4, [0, 2, 5, 7], [1, 4, 6, 8]),
    (10, 8, [0, 1, 2, 3, 5, 6, 7, 8], [0, 2, 4, 5, 6, 7, 8, 9]),
    (57, 4, [0, 14, 28, 42], [7, 21, 35, 49]),
    (57, 8, [0, 7, 14, 21, 28, 35, 42, 49], [3, 11, 18, 25, 32, 39, 46, 53]),
    (300, 4, [0, 75, 150, 225], [37, 112, 187, 262]),
    (300, 8, [0, 37, 75, 112, 150, 187, 225, 262], [18, 56, 94, 132, 170, 207, 244, 281]),
]


# ---------------------------------------------------------------------------------------------------------------------
# Marker-coded test videos
# ---------------------------------------------------------------------------------------------------------------------

BLOCK = 4  # our clips: 4-pixel blocks, 16 bits across 64 columns (the fixture uses 8-pixel blocks, 6 bits used)


def marker_frame(index: int, height: int = 48, width: int = 64) -> np.ndarray:
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = ((index * 37) % 200 + 20, (index * 91) % 200 + 20, 128)
    frame[height - 8 :] = 0
    for bit in range(width // BLOCK):
        if (index >> bit) & 1:
            frame[height - 8 :, BLOCK * bit : BLOCK * (bit + 1)] = 255
    return frame


def read_marker(frame: np.ndarray, block: int = BLOCK, bits: int | None = None) -> int:
    """Index coded in an (H, W, 3) frame: mean of the centre of each block in rows H-6..H-3."""
    height, width = frame.shape[:2]
    value = 0
    for bit in range(bits if bits is not None else width // block):
        cell = frame[height - 6 : height - 2, block * bit + block // 4 : block * bit + 3 * block // 4]
        if cell.mean() > 127:
            value |= 1 << bit
    return value


def write_video(path, frames: int, fps: int = 24, codec: str = "libx264", container: str | None = None,
                pix_fmt: str = "yuv420p", gop: int | None = None, rotation: float | None = None,
                hflip: bool = False, options: dict | None = None, container_options: dict | None = None) -> Path:
    with av.open(str(path), "w", format=container, options=container_options or {}) as output:
        stream = output.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, pix_fmt
        if options:
            stream.options = options
        if gop:
            stream.codec_context.gop_size = gop
        if rotation is not None or hflip:
            stream.set_display_rotation(rotation or 0, hflip=hflip)
        for index in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(marker_frame(index), format="rgb24")):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return Path(path)


def raw_frames(output) -> list[np.ndarray]:
    """(1, T, 3, H, W) uint8 processor output -> list of (H, W, 3) frames."""
    return [np.ascontiguousarray(frame.transpose(1, 2, 0)) for frame in np.asarray(output["pixel_values_videos"][0])]


def markers(output, **kwargs) -> list[int]:
    return [read_marker(frame, **kwargs) for frame in raw_frames(output)]


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    """All test clips, written once: well-formed ones of several kinds and broken ones."""
    folder = tmp_path_factory.mktemp("videos")
    files = {
        "mp4_30": write_video(folder / "clip30.mp4", 30, gop=12),
        "mp4_3": write_video(folder / "three.mp4", 3),
        "mp4_1": write_video(folder / "one.mp4", 1),
        "webm_vp9": write_video(folder / "clip.webm", 30, codec="libvpx-vp9", container="webm"),
        "avi_mjpeg": write_video(folder / "clip.avi", 30, codec="mjpeg", pix_fmt="yuvj420p"),
        "mkv_h264": write_video(folder / "clip.mkv", 30),
        "faststart": write_video(folder / "faststart.mp4", 200, container_options={"movflags": "+faststart"}),
    }
    moov_last = (folder / "clip30.mp4").read_bytes()  # PyAV writes the index (moov) after the data
    (folder / "truncated_moov_last.mp4").write_bytes(moov_last[: len(moov_last) // 2])
    files["truncated_moov_last"] = folder / "truncated_moov_last.mp4"
    faststart = files["faststart"].read_bytes()
    (folder / "truncated_half.mp4").write_bytes(faststart[: len(faststart) // 2])
    files["truncated_half"] = folder / "truncated_half.mp4"
    data_start = faststart.find(b"mdat") + 4
    (folder / "truncated_header_only.mp4").write_bytes(faststart[:data_start])
    files["truncated_header_only"] = folder / "truncated_header_only.mp4"
    noise = np.random.default_rng(0).integers(0, 256, len(faststart) - data_start, dtype=np.uint8).tobytes()
    (folder / "corrupt_payload.mp4").write_bytes(faststart[:data_start] + noise)
    files["corrupt_payload"] = folder / "corrupt_payload.mp4"
    (folder / "text.mp4").write_text("this is not a video\n" * 20)
    files["text"] = folder / "text.mp4"
    (folder / "empty.mp4").write_bytes(b"")
    files["empty"] = folder / "empty.mp4"
    with av.open(str(folder / "audio_only.m4a"), "w") as output:
        stream = output.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode()]:
            output.mux(packet)
    files["audio_only"] = folder / "audio_only.m4a"
    return files


@pytest.fixture(scope="session")
def long_clip(tmp_path_factory):
    """90 s at 10 fps, 64x48, a keyframe every 2 s (900 frames; ~0.2 s to write)."""
    return write_video(tmp_path_factory.mktemp("long") / "ninety_seconds.mp4", 900, fps=10, gop=20)


@pytest.fixture(scope="module")
def processor():
    return ChatBridgeVideoProcessor()


# ---------------------------------------------------------------------------------------------------------------------
# Sampling rules
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length,n,demo,segment", INDEX_TABLE)
def test_index_table(length, n, demo, segment):
    assert uniform_indices(length, n) == demo
    assert segment_indices(length, n, "middle") == segment
    padded = demo + [demo[-1]] * (n - len(demo))  # short clips repeat their last sampled frame
    assert sample_frame_indices(length, n, "uniform") == padded
    assert sample_frame_indices(length, n, "segment_middle") == segment
    processor = ChatBridgeVideoProcessor()
    metadata = VideoMetadata(total_num_frames=length)
    assert processor.sample_frames(metadata, num_frames=n).tolist() == padded
    assert processor.sample_frames(metadata, num_frames=n, frame_sampling="segment_middle").tolist() == segment


@pytest.mark.parametrize("length,n,demo,segment", INDEX_TABLE)
def test_index_table_on_arrays(length, n, demo, segment):
    """The rule applies to frame arrays too: each frame's pixels hold its index."""
    video = np.broadcast_to(np.arange(length, dtype=np.uint8)[:, None, None, None], (length, 2, 2, 3)).copy()
    for rule, expected in (("uniform", demo + [demo[-1]] * (n - len(demo))), ("segment_middle", segment)):
        out = ChatBridgeVideoProcessor()(video, num_frames=n, frame_sampling=rule, **RAW)
        assert out["pixel_values_videos"].shape == (1, n, 3, 2, 2)
        assert out["pixel_values_videos"][0, :, 0, 0, 0].tolist() == [i % 256 for i in expected]


def test_segment_groups_shape():
    for length in range(1, 70):
        for n in range(1, 10):
            groups = segment_groups(length, n)
            sizes = [len(group) for group in groups]
            assert len(groups) == n and groups[0].start == 0 and groups[-1].stop == max(length, n)
            assert all(a.stop == b.start for a, b in zip(groups, groups[1:]))  # contiguous
            assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)  # longer groups first
    with pytest.raises(ValueError):
        segment_groups(0, 4)
    with pytest.raises(ValueError):
        segment_groups(5, 0)


def test_segment_random_picks_inside_groups():
    groups = segment_groups(57, 4)
    generator = torch.Generator().manual_seed(0)
    draws = [segment_indices(57, 4, "random", generator=generator) for _ in range(300)]
    for position, group in enumerate(groups):
        assert {draw[position] for draw in draws} == set(group)  # every member reachable, nothing outside the group
    numpy_draw = segment_indices(57, 4, "random", generator=np.random.default_rng(0))
    assert all(index in group for index, group in zip(numpy_draw, groups))
    assert segment_indices(3, 4, "random")[3] == 2  # padded positions stand for the last frame
    torch.manual_seed(1)
    first = sample_frame_indices(300, 8, "segment_random")
    torch.manual_seed(1)
    assert sample_frame_indices(300, 8, "segment_random") == first  # the global torch seed makes it reproducible
    processor = ChatBridgeVideoProcessor(frame_sampling="segment_random")
    video = np.broadcast_to(np.arange(57, dtype=np.uint8)[:, None, None, None], (57, 2, 2, 3))
    picked = processor(video, **RAW)["pixel_values_videos"][0, :, 0, 0, 0].tolist()
    assert all(index in group for index, group in zip(picked, groups))


def test_settings_saved_and_checked(tmp_path):
    processor = ChatBridgeVideoProcessor(frame_sampling="segment_middle", num_frames=8)
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "video_preprocessor_config.json").read_text())
    assert saved["frame_sampling"] == "segment_middle" and saved["num_frames"] == 8
    assert saved["size"] == {"height": 224, "width": 224} and saved["resample"] == 3  # bicubic, no crop
    loaded = ChatBridgeVideoProcessor.from_pretrained(tmp_path)
    assert loaded.frame_sampling == "segment_middle" and loaded.num_frames == 8
    assert ChatBridgeVideoProcessor().frame_sampling == "uniform"
    with pytest.raises(ValueError, match="frame_sampling"):
        ChatBridgeVideoProcessor(frame_sampling="headtail")
    with pytest.raises(ValueError, match="num_frames"):
        ChatBridgeVideoProcessor()(np.zeros((5, 8, 8, 3), np.uint8), fps=2)


# ---------------------------------------------------------------------------------------------------------------------
# The original's reference clip
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["auto", "pyav"])
@pytest.mark.parametrize("rule,expected", [("uniform", [0, 12, 24, 36]), ("segment_middle", [5, 17, 29, 41])])
def test_fixture_clip_decodes_the_readme_frames(processor, backend, rule, expected):
    processor.video_backend = backend
    try:
        out = processor(str(COLORBARS), frame_sampling=rule, return_metadata=True, **RAW)
    finally:
        processor.video_backend = "auto"
    assert markers(out, block=8, bits=6) == expected
    metadata = out["video_metadata"][0]
    assert metadata.total_num_frames == 48 and metadata.frames_indices == expected
    assert metadata.video_backend == ("decord" if backend == "auto" else "pyav")


def test_fixture_clip_every_frame_index():
    frames, metadata = read_video(COLORBARS, backend="pyav")
    assert [read_marker(frame, block=8, bits=6) for frame in frames] == list(range(48))
    assert frames.shape == (48, 48, 64, 3) and metadata.fps == 24


def test_fixture_output_shape_and_range(processor):
    pixels = processor(COLORBARS, return_tensors="pt")["pixel_values_videos"]
    assert pixels.shape == (1, 4, 3, 224, 224) and pixels.dtype == torch.float32
    mean = torch.tensor(processor.image_mean).view(1, 1, 3, 1, 1)
    std = torch.tensor(processor.image_std).view(1, 1, 3, 1, 1)
    assert (pixels >= (0 - mean) / std - 1e-5).all() and (pixels <= (1 - mean) / std + 1e-5).all()
    # README statistics of the original demo output: min -1.7922626, max 2.1458969 (pure black / white pixels)
    assert pixels.min().item() == pytest.approx(-1.7922626, abs=1e-5)
    assert pixels.max().item() == pytest.approx(2.1458969, abs=1e-5)


def test_fixture_matches_original_preprocessing(processor):
    reference = load_file(FIXTURES / "preproc_video.safetensors")
    # Segment-middle rule: the original resized decord's native RGB frames with PIL bicubic, as we do (torchvision's
    # antialiased bicubic on uint8 follows PIL); measured max |diff| 2.4e-07.
    ours = processor(COLORBARS, frame_sampling="segment_middle", return_tensors="pt")["pixel_values_videos"][0]
    diff = (ours.permute(1, 0, 2, 3)[:, :, ::16, ::16] - reference["framedir_pixel_values_s16"]).abs()
    assert diff.max().item() < 0.02  # one uint8 level is 0.015 after normalisation
    # Demo rule: decord resized while decoding (FFmpeg's scaler on the YUV frame, chroma upsampled by that scaler)
    # where we resize the decoded RGB frame: the same frames, but edges of the colour bars differ. Measured max |diff|
    # 0.356 (about 24 uint8 levels, at bar edges), mean 0.027; this cannot be exact without FFmpeg's scaler.
    ours = processor(COLORBARS, return_tensors="pt")["pixel_values_videos"][0]
    diff = (ours.permute(1, 0, 2, 3)[:, :, ::16, ::16] - reference["demo_pixel_values_s16"]).abs()
    assert diff.max().item() < 0.5 and diff.mean().item() < 0.05


# ---------------------------------------------------------------------------------------------------------------------
# Containers, codecs, inputs
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,backend_used",
    [("webm_vp9", "pyav"), ("avi_mjpeg", "decord"), ("mkv_h264", "decord"), ("mp4_30", "decord")],
)
def test_containers_and_codecs(processor, media, name, backend_used):
    for rule, expected in (("uniform", [0, 7, 15, 22]), ("segment_middle", [3, 11, 19, 26])):
        out = processor(media[name], frame_sampling=rule, return_metadata=True, **RAW)
        assert markers(out) == expected, (name, rule)
        assert out["video_metadata"][0].video_backend == backend_used
        assert out["video_metadata"][0].total_num_frames == 30
    frames, metadata = read_video(media[name], backend="pyav")  # the PyAV path agrees on every frame
    assert [read_marker(frame) for frame in frames] == list(range(30)) and metadata.total_num_frames == 30


def test_streams_without_frame_count_or_constant_rate(processor, tmp_path):
    """Raw H.264 (no count, no timestamps: one decode pass counts the frames), MPEG-TS (no count; seeking near the
    start finds nothing, so a sequential pass reads the frames), variable frame rate MP4 and MKV (frame k is the
    k-th packet timestamp, not k / fps)."""
    for path in (write_video(tmp_path / "raw.h264", 57, container="h264"),
                 write_video(tmp_path / "clip.ts", 57, container="mpegts")):
        out = processor(path, frame_sampling="segment_middle", return_metadata=True, **RAW)
        assert markers(out) == [7, 21, 35, 49] and out["video_metadata"][0].total_num_frames == 57
    gaps_ms = np.random.default_rng(0).choice([20, 40, 100], size=60)
    stamps = np.concatenate([[0], np.cumsum(gaps_ms)[:-1]])
    for suffix in ("mp4", "mkv"):
        path = tmp_path / f"variable_rate.{suffix}"
        with av.open(str(path), "w") as output:
            stream = output.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
            for index in range(60):
                frame = av.VideoFrame.from_ndarray(marker_frame(index), format="rgb24")
                frame.pts, frame.time_base = int(stamps[index]), Fraction(1, 1000)
                for packet in stream.encode(frame):
                    output.mux(packet)
            for packet in stream.encode():
                output.mux(packet)
        for backend in ("auto", "pyav"):
            frames, metadata = read_video(
                path, lambda metadata: sample_frame_indices(metadata.total_num_frames, 8, "segment_middle"),
                backend=backend,
            )
            assert metadata.total_num_frames == 60
            assert [read_marker(frame) for frame in frames] == [3, 11, 19, 27, 35, 42, 49, 56], (suffix, backend)


@pytest.mark.parametrize("rule", ["uniform", "segment_middle", "segment_random"])
def test_one_frame_video(processor, media, rule):
    out = processor(media["mp4_1"], frame_sampling=rule, **RAW)
    assert out["pixel_values_videos"].shape == (1, 4, 3, 48, 64) and markers(out) == [0, 0, 0, 0]


def test_fewer_frames_than_requested(processor, media):
    for rule in ("uniform", "segment_middle"):
        out = processor(media["mp4_3"], frame_sampling=rule, **RAW)
        assert markers(out) == [0, 1, 2, 2]
    pixels = processor([media["mp4_3"], media["mp4_30"]], return_tensors="pt")["pixel_values_videos"]
    assert pixels.shape == (2, 4, 3, 224, 224)  # a short clip batches with a long one


@pytest.mark.parametrize("rotation,hflip", [(90, False), (-90, False), (180, False), (0, True), (90, True)])
def test_rotation_metadata_is_applied(processor, tmp_path, rotation, hflip):
    path = write_video(tmp_path / "rotated.mp4", 10, rotation=rotation, hflip=hflip)
    out = processor(path, return_metadata=True, **RAW)
    assert out["video_metadata"][0].video_backend == "pyav"  # decord ignores display matrices
    frames = raw_frames(out)
    assert frames[0].shape[:2] == ((64, 48) if rotation % 180 else (48, 64))
    upright = [np.rot90(frame[:, ::-1] if hflip else frame, k=-round(rotation / 90)) for frame in frames]
    assert [read_marker(frame) for frame in upright] == [0, 2, 5, 7]


def test_ninety_second_clip_seeks(processor, long_clip):
    out = processor(long_clip, return_metadata=True, **RAW)
    assert markers(out) == [0, 225, 450, 675] and out["video_metadata"][0].total_num_frames == 900
    stats = {}
    frames, metadata = read_video(
        long_clip, lambda metadata: sample_frame_indices(metadata.total_num_frames, 4, "segment_middle"),
        backend="pyav", stats=stats,
    )
    assert [read_marker(frame) for frame in frames] == [112, 337, 562, 787] == metadata.frames_indices
    # Keyframes every 20 frames: at most ~20 decoded per wanted frame, not the 900 of a full decode.
    assert stats["decoded_frames"] <= 4 * 21 + 1 and stats["seeks"] >= 3


def test_list_of_pil_frames(processor):
    frames = [Image.fromarray(marker_frame(i)) for i in range(10)]
    frames[3] = frames[3].convert("L")  # a grey frame in the list is converted to RGB
    assert markers(processor(frames, **RAW)) == [0, 2, 5, 7]
    assert markers(processor(frames, frame_sampling="segment_middle", **RAW)) == [1, 4, 6, 8]
    pixels = processor(frames, return_tensors="pt")["pixel_values_videos"]
    assert pixels.shape == (1, 4, 3, 224, 224)


def test_arrays_and_tensors(processor):
    video = np.stack([marker_frame(i) for i in range(10)])  # (T, H, W, 3) uint8
    assert markers(processor(video, **RAW)) == [0, 2, 5, 7]
    channels_first = torch.from_numpy(video).permute(0, 3, 1, 2).contiguous()  # (T, 3, H, W)
    assert markers(processor(channels_first, frame_sampling="segment_middle", **RAW)) == [1, 4, 6, 8]
    from_array = processor(video, return_tensors="pt")["pixel_values_videos"]
    from_tensor = processor(channels_first, return_tensors="pt")["pixel_values_videos"]
    torch.testing.assert_close(from_array, from_tensor)


def test_bytes_and_mixed_batch(processor, media):
    path = media["mp4_30"]
    from_path = processor(path, return_tensors="pt")["pixel_values_videos"]
    from_bytes = processor(path.read_bytes(), return_tensors="pt")["pixel_values_videos"]
    torch.testing.assert_close(from_path, from_bytes)
    video = np.stack([marker_frame(i) for i in range(30)])
    batch = [str(path), video, [Image.fromarray(frame) for frame in video]]
    pixels = processor(batch, return_tensors="pt")["pixel_values_videos"]
    assert pixels.shape == (3, 4, 3, 224, 224)
    torch.testing.assert_close(pixels[1], pixels[2])
    assert (pixels[0] - pixels[1]).abs().mean() < 0.05  # H.264 round trip of the same frames (lossy chroma)


def test_split_videos_counts_videos(media):
    frames = [Image.fromarray(marker_frame(i)) for i in range(3)]
    video = np.zeros((5, 8, 8, 3), np.uint8)
    assert len(split_videos(frames)) == 1 and len(split_videos(video)) == 1
    assert len(split_videos(np.stack([video, video]))) == 2
    assert len(split_videos([[str(media["mp4_1"])], [], [frames, video]])) == 3  # per-sample lists are flattened
    assert split_videos([]) == []
    with pytest.raises(ValueError, match="No video"):
        ChatBridgeVideoProcessor()([])


# ---------------------------------------------------------------------------------------------------------------------
# Broken files: each works or raises ValueError naming the file
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,message",
    [
        ("truncated_moov_last", "Cannot open video"),
        ("truncated_header_only", "no decodable frame"),
        ("corrupt_payload", "no decodable frame"),
        ("text", "Cannot open video"),
        ("empty", "Cannot open video"),
        ("audio_only", "no video stream"),
    ],
)
def test_bad_files_raise_value_error(processor, media, name, message):
    path = media[name]
    with pytest.raises(ValueError, match=message) as error:
        processor(path)
    assert path.name in str(error.value)


def test_missing_file_raises_value_error(processor, tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        processor(str(tmp_path / "nowhere.mp4"))


def test_truncated_file_uses_the_decodable_frames(processor, media):
    """The index promises 200 frames, half the data is there: sample over the frames that decode."""
    out = processor(media["truncated_half"], return_metadata=True, **RAW)
    decodable = out["video_metadata"][0].total_num_frames
    assert 10 < decodable < 200
    assert markers(out) == uniform_indices(decodable, 4)


def test_bad_files_never_crash_the_interpreter(media):
    """decord can abort the process on some broken inputs: every file goes through PyAV first. Run all of them in a
    fresh interpreter and require a clean exit."""
    names = [
        "truncated_moov_last", "truncated_half", "truncated_header_only", "corrupt_payload", "text", "empty",
        "audio_only", "webm_vp9", "avi_mjpeg", "mkv_h264", "mp4_1",
    ]
    script = textwrap.dedent(
        """
        import sys
        from transformers_chatbridge.video_processing_chatbridge import ChatBridgeVideoProcessor
        processor = ChatBridgeVideoProcessor()
        for path in sys.argv[1:]:
            try:
                shape = tuple(processor(path, return_tensors="pt")["pixel_values_videos"].shape)
                print("ok", shape, flush=True)
            except ValueError:
                print("ValueError", flush=True)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *[str(media[name]) for name in names]],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.split("\n")[: len(names)]
    assert [line.split()[0] for line in lines] == ["ValueError", "ok", "ValueError", "ValueError", "ValueError",
                                                   "ValueError", "ValueError", "ok", "ok", "ok", "ok"]


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_frames_over_the_pixel_cap_are_refused_before_any_is_decoded(tmp_path, backend):
    from sample_media import write_mp4

    clip = write_mp4(tmp_path / "wide.mp4", [np.zeros((120, 160, 3), np.uint8)] * 4)
    processor = ChatBridgeVideoProcessor(max_video_pixels=10_000)
    processor.video_backend = backend
    with pytest.raises(ValueError, match=r"wide\.mp4 has 160x120 = 19,200 pixels per frame, more than max_video_pixels"):
        processor(str(clip), **RAW)
    with pytest.raises(ValueError, match="no frame was decoded"):
        read_video(str(clip), backend=backend, max_pixels=10_000)
    assert ChatBridgeVideoProcessor()(str(clip), **RAW)["pixel_values_videos"].shape[1] == 4  # the default cap: 4096^2
