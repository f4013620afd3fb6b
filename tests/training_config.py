"""The YAML settings every CPU training test starts from (test_training.py, test_training_distributed.py)."""

from pathlib import Path


def base_config(output_dir: Path, data_dir: Path, **overrides) -> dict:
    """What a CPU test run needs: few steps, high lr, no checkpointing, fixed seeds."""
    config = {
        "output_dir": str(output_dir),
        "dataset_paths": [f"{data_dir}:train"],
        "max_steps": 20,
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-3,
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "weight_decay": 0.05,
        "max_length": 64,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": True,
        "bf16": False,
        "activation_checkpointing": False,
        "dataloader_num_workers": 0,
        "seed": 0,
        "data_seed": 0,
        "disable_tqdm": True,
    }
    config.update(overrides)
    return config
