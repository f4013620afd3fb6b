"""Training ChatBridge with TRL: the SFT entry point (`sft`, `chatbridge train`), where its rows come from (`data`)
and LoRA folders that load as the trained model (`lora`)."""

from .data import check_row_lengths, load_mixture, load_named, load_rows, training_datasets
from .lora import restore_bridge, save_lora_folder
from .sft import ChatBridgeArguments, main, make_parser, train

__all__ = [
    "ChatBridgeArguments", "check_row_lengths", "load_mixture", "load_named", "load_rows", "main", "make_parser",
    "restore_bridge", "save_lora_folder", "train", "training_datasets",
]  # fmt: skip
