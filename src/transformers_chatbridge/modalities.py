"""The media ChatBridge reads, named once for the whole package.

Three spellings meet here. The modality itself ("image") is the type of a content item in a chat message and the
name of its placeholder token (`<image>`). A chat row keeps its media paths in a column ("images": TRL's vision SFT
column, with "videos" and "audios" beside it). A processor or pipeline call takes them as keywords ("images",
"videos", "audio": transformers' names). The order is that of the placeholders' token ids and of media in a message.
"""

MODALITIES = ("image", "video", "audio")
MEDIA_COLUMNS = {"image": "images", "video": "videos", "audio": "audios"}
CALL_KEYWORDS = {"image": "images", "video": "videos", "audio": "audio"}

__all__ = ["CALL_KEYWORDS", "MEDIA_COLUMNS", "MODALITIES"]
