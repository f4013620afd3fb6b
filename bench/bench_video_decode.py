"""Does reading 4 frames of a 90 s clip cost about the same as of a 3 s clip? (goal: ratio <= 2)

Writes a 3 s and a 90 s H.264 clip of the same size and frame rate with PyAV into a temporary folder, times
`ChatBridgeVideoProcessor` (probe, decode of the 4 sampled frames, resize, normalise) on each, and prints a markdown
table. A decoder that reads the whole clip would be ~30x slower on the long clip; a seeking one pays only for the
keyframe interval before each wanted frame, so the table is given for a 2 s keyframe interval (usual for camera and
streaming files) and for x264's default of 250 frames (10 s at 25 fps, the worst case of common encoders).

The two clip lengths alternate within each run, and the ratio is formed per run (median and min-max over runs).

    python bench/bench_video_decode.py [--runs 7] [--width 320] [--height 240] [--fps 25] [--threads 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from benchlib import add_arguments, figure_row, set_threads, simple_table, write_json
from transformers_chatbridge.video_processing_chatbridge import ChatBridgeVideoProcessor, read_video


def write_clip(path: Path, seconds: int, width: int, height: int, fps: int, gop: int) -> Path:
    """Moving gradient + noise so that inter frames are not empty (ultrafast preset: quick to write)."""
    rng = np.random.default_rng(0)
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    with av.open(str(path), "w") as output:
        stream = output.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        stream.codec_context.gop_size = gop
        for index in range(seconds * fps):
            shift = 4.0 * index
            frame = np.stack(np.broadcast_arrays((x + shift) % 256, (y + shift) % 256, (x + y + shift) % 256), axis=-1)
            frame = np.clip(frame + rng.normal(0, 8, frame.shape), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return path


def time_processor(processor: ChatBridgeVideoProcessor, paths: dict[int, Path], runs: int) -> dict[int, list[float]]:
    """Seconds per call for each clip; the clips take turns within each run, so drift hits both alike."""
    times: dict[int, list[float]] = {seconds: [] for seconds in paths}
    for path in paths.values():
        processor(str(path), return_tensors="pt")  # warm-up (imports, first decoder set-up)
    for _ in range(runs):
        for seconds, path in paths.items():
            start = time.perf_counter()
            pixels = processor(str(path), return_tensors="pt")["pixel_values_videos"]
            times[seconds].append(time.perf_counter() - start)
            assert pixels.shape == (1, 4, 3, 224, 224)
    return times


def decord_parts(path: Path, tries: int = 3) -> tuple[float, float]:
    """Median ms of decord's `VideoReader` opening `path` and of its `get_batch` of 4 frames (the uniform rule's)."""
    from decord import VideoReader, cpu

    opens, batches = [], []
    for _ in range(tries):
        start = time.perf_counter()
        reader = VideoReader(str(path), ctx=cpu(0))
        opens.append(time.perf_counter() - start)
        total = len(reader)
        start = time.perf_counter()
        reader.get_batch([int((i + 0.5) * total / 4) for i in range(4)]).asnumpy()
        batches.append(time.perf_counter() - start)
    return 1e3 * statistics.median(opens), 1e3 * statistics.median(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=int, default=25)
    add_arguments(parser)
    args = parser.parse_args()
    set_threads(args)

    rows, results, decoded, decord_ms = [], [], {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-video-") as folder:
        for gop_label, gop in (("2 s", 2 * args.fps), ("250 frames", 250)):
            clips = {
                seconds: write_clip(Path(folder) / f"clip_{seconds}s_gop{gop}.mp4", seconds, args.width, args.height,
                                    args.fps, gop)
                for seconds in (3, 90)
            }
            for backend in ("auto", "pyav"):
                processor = ChatBridgeVideoProcessor()
                processor.video_backend = backend
                times = time_processor(processor, clips, args.runs)
                for seconds, path in clips.items():
                    stats: dict = {}
                    _, metadata = read_video(path, processor.sample_frames, backend=backend, stats=stats)
                    label = f"{seconds} s ({metadata.total_num_frames} frames, {path.stat().st_size / 1e6:.1f} MB)"
                    frames = str(stats["decoded_frames"]) if metadata.video_backend == "pyav" else "n/a"
                    decoded[(gop_label, metadata.video_backend, seconds)] = frames
                    rows.append([label, gop_label, metadata.video_backend, f"{statistics.median(times[seconds]):.4f}",
                                 f"{min(times[seconds]):.4f}-{max(times[seconds]):.4f}", frames, ""])
                ratios = [long / short for long, short in zip(times[90], times[3])]
                row = figure_row(
                    f"4 frames of a 90 s clip / of a 3 s clip, keyframe every {gop_label}, {metadata.video_backend}",
                    ratios, "<= 2x", peer="same decoder on the 3 s clip",
                    details=f"{1e3 * statistics.median(times[90]):.0f} ms vs {1e3 * statistics.median(times[3]):.0f} ms"
                    + (f"; frames decoded {decoded[(gop_label, 'pyav', 90)]} vs {decoded[(gop_label, 'pyav', 3)]}"
                       if metadata.video_backend == "pyav" else ""),
                )  # fmt: skip
                results.append(row)
                if metadata.video_backend == "decord" and not row.met:
                    decord_ms[gop_label] = {seconds: decord_parts(path) for seconds, path in clips.items()}
                rows[-1][-1] = f"{row.ratio:.2f} ({'meets' if row.met else 'misses'} goal <= 2)"

    print(f"{args.width}x{args.height} H.264 at {args.fps} fps, 4 frames (uniform rule), {args.runs} runs, "
          f"torch threads {torch.get_num_threads()}")
    print()
    header = ["clip", "keyframe interval", "decoder", "median s", "spread (min-max) s", "PyAV frames decoded",
              "ratio 90 s / 3 s (median of per-run ratios)"]
    print(simple_table(header, rows))

    notes = []
    if decord_ms:
        measured = "; ".join(
            f"keyframe every {gop_label}: opening {parts[3][0]:.1f} vs {parts[90][0]:.1f} ms, `get_batch` of the 4 "
            f"frames {parts[3][1]:.1f} vs {parts[90][1]:.1f} ms"
            for gop_label, parts in decord_ms.items()
        )
        notes.append(
            f"What limits decord (3 s vs 90 s clip, {measured}): decord indexes every packet of the file when it "
            "opens it, and its `get_batch` costs more on the long file as well, so its time grows with the length of "
            "the file, not only with the keyframe interval. The PyAV reader (the `pyav` rows) seeks through the "
            "container's index and decodes only from the keyframe before each wanted frame; the `auto` backend "
            "picking PyAV over decord for long files would meet the goal at a 2 s keyframe interval (see the `pyav` "
            "row; a change to the library, not made by the benchmark)."
        )
    if any(row.met is False and "pyav" in row.name for row in results):
        notes.append(
            "What limits a missed PyAV row: a seeking decoder starts at the keyframe before each wanted frame and "
            "decodes every frame from there, so its cost grows with the keyframe interval, not with the clip's "
            "length (see the PyAV frames decoded). With x264's default interval of 250 frames (10 s), each of the 4 "
            "frames of the 90 s clip costs up to 250 decoded frames, against at most 75 for the whole 3 s clip; "
            "reading the whole 90 s clip would decode 2250. A cheaper read would have to give up exact frames (take "
            "the keyframe nearest to each wanted time), which the original's frame rule does not do."
        )
    write_json(args, "Video decode: 90 s clip vs 3 s clip (ChatBridgeVideoProcessor)", results,
               f"{args.width}x{args.height} H.264, {args.fps} fps, 4 frames (uniform rule), {args.runs} runs, "
               f"torch threads {torch.get_num_threads()}; decord is what the `auto` backend picks", notes)


if __name__ == "__main__":
    main()
