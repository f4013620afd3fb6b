"""Training ChatBridge with TRL: the SFT entry point (`sft.main`, `chatbridge train`) and LoRA folders (`lora`)."""

from .lora import restore_bridge, save_lora_folder
from .sft import ChatBridgeArguments, load_mixture, load_rows, main, make_parser, train

__all__ = ["ChatBridgeArguments", "load_mixture", "load_rows", "main", "make_parser", "restore_bridge",
           "save_lora_folder", "train"]
