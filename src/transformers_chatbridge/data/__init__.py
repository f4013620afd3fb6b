"""Training data for ChatBridge: the chat row format and the data collator."""

from .collator import IGNORE_INDEX, ChatBridgeDataCollator
from .rows import CHAT_ROW_FEATURES, MEDIA_COLUMNS, load_folder_split, make_row, resolve_media_paths, row_messages

__all__ = [
    "CHAT_ROW_FEATURES",
    "IGNORE_INDEX",
    "MEDIA_COLUMNS",
    "ChatBridgeDataCollator",
    "load_folder_split",
    "make_row",
    "resolve_media_paths",
    "row_messages",
]
