"""Training data for ChatBridge: the chat row format, the data collator, loading and mixing data set folders."""

from .collator import IGNORE_INDEX, ChatBridgeDataCollator
from .loading import align_features, check_weights, load_folder_split, mix_datasets, resolve_media_paths
from .rows import CHAT_ROW_FEATURES, make_row, row_messages

__all__ = [
    "CHAT_ROW_FEATURES",
    "IGNORE_INDEX",
    "ChatBridgeDataCollator",
    "align_features",
    "check_weights",
    "load_folder_split",
    "make_row",
    "mix_datasets",
    "resolve_media_paths",
    "row_messages",
]
