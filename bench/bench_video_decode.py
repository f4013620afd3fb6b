"""Does reading 4 frames of a 90 s clip cost about the same as of a 3 s clip? (goal: ratio <= 2)

Writes a 3 s and a 90 s H.264 clip of the same size and frame rate with PyAV into a temporary folder, times
`ChatBridgeVideoProcessor` (probe, decode of the 4 sampled frames, resize, normalise) on each, and prints a markdown
table. A decoder that reads the whole clip would be ~30x slower on the long clip; a seeking one pays only for the
keyframe interval before each wanted frame, so the table is given for a 2 s keyframe interval (usual for camera and
streaming files) and for x264's default of 250 frames (10 s at 25 fps, the worst case of common encoders).

    python bench/bench_video_decode.py [--runs 7] [--width 320] [--height 240] [--fps 25]
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


def time_processor(processor: ChatBridgeVideoProcessor, path: Path, runs: int) -> list[float]:
    processor(str(path), return_tensors="pt")  # warm-up (imports, first decoder set-up)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        pixels = processor(str(path), return_tensors="pt")["pixel_values_videos"]
        times.append(time.perf_counter() - start)
        assert pixels.shape == (1, 4, 3, 224, 224)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=int, default=25)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    rows = []
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
                medians = {}
                for seconds, path in clips.items():
                    times = time_processor(processor, path, args.runs)
                    stats: dict = {}
                    _, metadata = read_video(path, processor.sample_frames, backend=backend, stats=stats)
                    medians[seconds] = statistics.median(times)
                    label = f"{seconds} s ({metadata.total_num_frames} frames, {path.stat().st_size / 1e6:.1f} MB)"
                    rows.append([label, gop_label, metadata.video_backend, f"{medians[seconds]:.4f}",
                                 f"{min(times):.4f}-{max(times):.4f}",
                                 str(stats["decoded_frames"]) if metadata.video_backend == "pyav" else "n/a", ""])
                ratio = medians[90] / medians[3]
                rows[-1][-1] = f"{ratio:.2f} ({'meets' if ratio <= 2 else 'misses'} goal <= 2)"

    print(f"{args.width}x{args.height} H.264 at {args.fps} fps, 4 frames (uniform rule), {args.runs} runs, "
          f"torch threads {torch.get_num_threads()}")
    print()
    header = ["clip", "keyframe interval", "decoder", "median s", "spread (min-max) s", "PyAV frames decoded",
              "ratio 90 s / 3 s"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
