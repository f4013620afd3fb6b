"""training/sft_chatbridge.py under `accelerate launch` with 2 CPU processes (DDP, gloo) trains exactly as one process.

Same global batch, same samples per step: 2 processes x 2 rows and 1 process x 4 rows (and 1 process x 2 rows x 2
accumulation steps) must log the same per-step losses and gradient norms.

Why the global batches hold the same rows: the Trainer's `RandomSampler` is replaced by accelerate's
`SeedableRandomSampler` (seeded with `data_seed`, re-seeded per epoch) in every process, whatever the process
count, so all runs draw the same permutation. With 2 processes, `BatchSamplerShard` cuts that permutation into
per-device batches of 2 and hands batch 2k to rank 0 and 2k+1 to rank 1, so global step k is permutation positions
4k..4k+3 -- exactly the single process's batch of 4 (or its two accumulated micro-batches of 2).

Why the losses are equal and not just close: `num_items_in_batch` (answer tokens of the whole global batch) is
gathered across ranks, each rank's loss is its token-loss sum / that count x world size, DDP averages the gradients
and the Trainer logs the mean over ranks, so every run optimises and logs sum(token losses) / global token count.
The stage is `alignment` (Q-Former dropout 0.0): with the instruction stage's dropout 0.1 each rank would draw its
own dropout masks and the runs would differ by design.

Tolerance: the runs differ only in floating-point summation order (per-rank padding to a shorter length, gloo's
all-reduce of the gradients, one batched matmul split in two), float32 throughout. Measured on 2 CPU cores the
losses and gradient norms agree to 2e-7 relative (one or two float32 ulps). The test allows 1e-5 relative: 50x the
measured noise, yet far below what a real fault moves: the loss changes by ~3e-3 relative from one batch to the
next (wrong rows in a step), a per-rank mean instead of the global token mean shifts it by the ranks' token-count
imbalance (~1e-2), and the gradient norms show both far more plainly.

Note on the launch command: `accelerate launch --cpu --num_processes 2 --config_file ddp.yaml` silently runs ONE
process (with `--cpu` accelerate takes its simple launcher, which spawns several processes only through mpirun).
The DDP config is launched without `--cpu` (torchrun starts the processes) and the script's `use_cpu: true` makes
the Trainer's accelerator use the CPU, so the process group is gloo. `--mixed_precision no` overrides the config's
bf16 (accelerate exports it as ACCELERATE_MIXED_PRECISION, which TrainingArguments picks up even with `bf16: false`).
Left at bf16, the CPU autocast moves the losses by about 1e-5 relative and the gradient norms by about 1e-3 (measured),
which this test's tolerance rejects. It checks from the Trainer's startup log that two processes ran.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import yaml
from datasets import Dataset
from PIL import Image

from transformers_chatbridge.data import CHAT_ROW_FEATURES, make_row
from transformers_chatbridge.testing import tiny_chatbridge
from training_config import base_config

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "training" / "sft_chatbridge.py"
DDP_CONFIG = REPO / "training" / "accelerate" / "ddp.yaml"
FSDP_CONFIG = REPO / "training" / "accelerate" / "fsdp.yaml"
ACCELERATE = Path(sys.executable).with_name("accelerate")
RTOL = 1e-5
STEPS = 6  # 16 rows, 4 per global step: the run crosses an epoch boundary (per-epoch reshuffle must agree too)

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env() -> dict[str, str]:
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _rows(folder: Path) -> list[dict]:
    """Image, video, audio and video+audio rows of different lengths (so the ranks pad differently)."""
    import av

    folder.mkdir(parents=True)
    rows = []
    for index, (colour, rgb) in enumerate((("red", (220, 30, 30)), ("blue", (30, 30, 220)))):
        image = folder / f"image{index}.png"
        Image.new("RGB", (40, 30), rgb).save(image)
        video = folder / f"clip{index}.mp4"
        with av.open(str(video), "w") as container:
            stream = container.add_stream("libx264", rate=10)
            stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
            for frame_index in range(10):
                frame = np.zeros((32, 32, 3), dtype=np.uint8)
                frame[..., index * 2] = 40 + frame_index * 20
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())
        audio = folder / f"tone{index}.wav"
        soundfile.write(audio, 0.3 * np.sin(2 * np.pi * (300 + 500 * index) * np.arange(16000) / 16000), 16000)

        def turn(kinds, question, answer):
            content = [*({"type": kind} for kind in kinds), {"type": "text", "text": question}]
            return [{"role": "user", "content": content},
                    {"role": "assistant", "content": [{"type": "text", "text": answer}]}]

        rows += [
            make_row(turn(["image"], "What colour is it?", f"A {colour} square."), images=[str(image)]),
            make_row(turn(["video"], "What is it?", f"A {colour} light that slowly gets brighter."), videos=[str(video)]),
            make_row(turn(["audio"], "What sound is it?", f"A {'low' if index == 0 else 'high'} tone."),
                     audios=[str(audio)]),
            make_row(turn(["video", "audio"], "Describe it.", f"A {colour} light and a tone."),
                     videos=[str(video)], audios=[str(audio)]),
        ]
    return rows


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    tiny_chatbridge(save_dir=folder / "model")
    Dataset.from_list(_rows(folder / "media") * 2, features=CHAT_ROW_FEATURES).save_to_disk(folder / "rows")
    return folder


def _config(setup: Path, output: Path, **overrides) -> Path:
    config = base_config(
        output,
        setup / "rows",
        dataset_paths=[str(setup / "rows")],
        model_name_or_path=str(setup / "model"),
        training_stage="alignment",
        max_steps=STEPS,
        **overrides,
    )
    path = output.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(config))
    return path


def _run(command: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, env=_env())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


def _history(output: Path) -> tuple[np.ndarray, np.ndarray]:
    log = json.loads((output / "trainer_state.json").read_text())["log_history"]
    steps = [entry for entry in log if "loss" in entry]
    assert [entry["step"] for entry in steps] == list(range(1, STEPS + 1))
    return np.array([entry["loss"] for entry in steps]), np.array([entry["grad_norm"] for entry in steps])


@pytest.fixture(scope="module")
def single(setup):
    output = setup / "single"
    _run([sys.executable, str(SCRIPT), "--config", str(_config(setup, output, per_device_train_batch_size=4))])
    return _history(output)


def _launch_two_processes(accelerate_config: Path, config: Path) -> str:
    """The script under `accelerate launch` on 2 CPU processes, 2 rows each; returns its log."""
    result = _run([
        str(ACCELERATE), "launch", "--config_file", str(accelerate_config), "--num_processes", "2",
        "--main_process_port", str(_free_port()), "--mixed_precision", "no", "--num_cpu_threads_per_process", "1",
        str(SCRIPT), "--config", str(config),
    ])
    # Two processes really ran: 2 rows per device, 4 per step, no accumulation (the Trainer's startup log, rank 0).
    log = result.stdout + result.stderr
    assert "Instantaneous batch size per device = 2" in log
    assert "Total train batch size (w. parallel, distributed & accumulation) = 4" in log
    return log


def _assert_same_history(output: Path, single: tuple[np.ndarray, np.ndarray]) -> None:
    expected_loss, expected_norm = single
    loss, norm = _history(output)
    print(f"\nloss rel. diff {np.max(np.abs(loss / expected_loss - 1)):.2e}, "
          f"grad norm rel. diff {np.max(np.abs(norm / expected_norm - 1)):.2e}, losses {expected_loss.round(5)}")
    np.testing.assert_allclose(loss, expected_loss, rtol=RTOL, atol=0)
    np.testing.assert_allclose(norm, expected_norm, rtol=RTOL, atol=0)


def test_two_process_ddp_matches_one_process_with_the_same_global_batch(setup, single):
    output = setup / "ddp"
    _launch_two_processes(DDP_CONFIG, _config(setup, output, per_device_train_batch_size=2, log_level="info"))
    # The training moves the loss by far more than the tolerance, so equal histories mean equal updates.
    expected_loss = single[0]
    assert np.ptp(expected_loss) > 100 * RTOL * expected_loss.max()
    _assert_same_history(output, single)


def test_gradient_accumulation_matches_one_large_batch(setup, single):
    output = setup / "accumulated"
    _run([sys.executable, str(SCRIPT), "--config",
          str(_config(setup, output, per_device_train_batch_size=2, gradient_accumulation_steps=2))])
    _assert_same_history(output, single)


def test_two_process_fsdp_matches_one_process_with_the_same_global_batch(setup, single):
    """The FSDP2 config (training/accelerate/fsdp.yaml) shards the model over 2 CPU processes and trains as one."""
    output = setup / "fsdp"
    log = _launch_two_processes(FSDP_CONFIG, _config(setup, output, per_device_train_batch_size=2, log_level="info"))
    assert "FSDP" in log or "fsdp" in log
    _assert_same_history(output, single)

    # The saved checkpoint is whole (gathered from the shards) and loads as a plain model.
    from transformers_chatbridge import ChatBridgeForConditionalGeneration

    saved = ChatBridgeForConditionalGeneration.from_pretrained(output).state_dict()
    reference = ChatBridgeForConditionalGeneration.from_pretrained(setup / "single").state_dict()
    assert saved.keys() == reference.keys()
    for name, tensor in reference.items():
        torch.testing.assert_close(saved[name], tensor, rtol=1e-4, atol=1e-6, msg=name)
