"""The chat row format of ChatBridge training data: TRL's vision SFT rows, extended to videos and audio.

A row is what TRL's vision-language SFT datasets hold (`messages` plus an `images` column), with two more columns,
`videos` and `audios`. Every media column holds file paths (strings), in the order the media items of that type
appear in `messages`; the media items themselves carry only their type::

    {
        "messages": [
            {"role": "user", "content": [{"type": "video"}, {"type": "audio"}, {"type": "text", "text": "What?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "A dog barks."}]},
        ],
        "images": [],
        "videos": ["clips/dog.mp4"],
        "audios": ["clips/dog.wav"],
    }

`CHAT_ROW_FEATURES` is its `datasets.Features` schema. In a `datasets.Dataset`, every content item holds every field
(`type`, `text`, `path`; absent ones read back as `None`) and a missing media column reads back as `None`;
`row_messages` turns either form into clean chat messages whose media items carry their `path`, which is what
`ChatBridgeProcessor.apply_chat_template` reads. Rows whose media items already carry a `path` (and no media
columns) are accepted as they are. Extra columns (an `id`, say) may be added to the schema:
`datasets.Features({**CHAT_ROW_FEATURES, "id": datasets.Value("string")})`; the collator names a row by its `id`.
"""

from collections.abc import Iterable, Sequence

from datasets import Features, List, Value

from ..modalities import MEDIA_COLUMNS


CONTENT_ITEM_FEATURES = {"type": Value("string"), "text": Value("string"), "path": Value("string")}

CHAT_ROW_FEATURES = Features(
    {
        "messages": List({"role": Value("string"), "content": List(CONTENT_ITEM_FEATURES)}),
        "images": List(Value("string")),
        "videos": List(Value("string")),
        "audios": List(Value("string")),
    }
)


def _content_items(message: dict) -> list[dict]:
    content = message.get("content")
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content)


def _media_counts(messages: Iterable[dict]) -> dict[str, int]:
    counts = dict.fromkeys(MEDIA_COLUMNS, 0)
    for message in messages:
        for item in _content_items(message):
            if item.get("type") in counts:
                counts[item["type"]] += 1
    return counts


def _check_counts(messages: Sequence[dict], columns: dict[str, Sequence[str]]) -> None:
    counts = _media_counts(messages)
    mismatches = [
        f"{counts[modality]} {modality} item(s) in messages but {len(columns[column])} path(s) in `{column}`"
        for modality, column in MEDIA_COLUMNS.items()
        if counts[modality] != len(columns[column])
    ]
    if mismatches:
        raise ValueError("Media items and media columns disagree: " + "; ".join(mismatches) + ".")


def make_row(
    messages: Sequence[dict],
    images: Sequence[str] = (),
    videos: Sequence[str] = (),
    audios: Sequence[str] = (),
) -> dict:
    """A row in the `CHAT_ROW_FEATURES` format; media items of `messages` keep only their type.

    Every content item gets all three fields (`type`, `text`, `path`), so the row round-trips through `datasets`.
    Raises `ValueError` naming each modality whose item count in `messages` differs from its column's length.
    """
    given = (images, videos, audios)
    columns = {column: [str(path) for path in paths] for column, paths in zip(MEDIA_COLUMNS.values(), given)}
    _check_counts(messages, columns)
    rows_messages = []
    for message in messages:
        content = []
        for item in _content_items(message):
            kind = item.get("type")
            if kind in MEDIA_COLUMNS:
                content.append({"type": kind, "text": None, "path": None})
            elif kind == "text":
                content.append({"type": "text", "text": item.get("text"), "path": None})
            else:
                raise ValueError(f"Unsupported content item type {kind!r} in {item}.")
        rows_messages.append({"role": message["role"], "content": content})
    return {"messages": rows_messages, **columns}


def row_messages(row: dict) -> list[dict]:
    """The row's chat messages, each media item carrying its `path` (taken from the media columns in order).

    `None` fields (as `datasets` stores absent keys) are dropped. With a non-empty column, its length must equal the
    number of items of its type (`ValueError` otherwise); with an empty or missing column, media items must carry
    their own source (`path`, or the processor's other source keys).
    """
    messages = row["messages"]
    columns = {column: row.get(column) or [] for column in MEDIA_COLUMNS.values()}
    counts = _media_counts(messages)
    for modality, column in MEDIA_COLUMNS.items():
        if columns[column] and counts[modality] != len(columns[column]):
            raise ValueError(
                f"Media items and media columns disagree: {counts[modality]} {modality} item(s) in messages but "
                f"{len(columns[column])} path(s) in `{column}`."
            )
    cursors = dict.fromkeys(MEDIA_COLUMNS, 0)
    result = []
    for message in messages:
        content = []
        for item in _content_items(message):
            item = {key: value for key, value in item.items() if value is not None}
            kind = item.get("type")
            if kind in MEDIA_COLUMNS:
                paths = columns[MEDIA_COLUMNS[kind]]
                if paths:
                    item = {"type": kind, "path": str(paths[cursors[kind]])}
                    cursors[kind] += 1
                elif not any(key in item for key in ("path", kind, "url", "base64")):
                    raise ValueError(
                        f"A {kind!r} item has no source: no `path` and an empty or missing `{MEDIA_COLUMNS[kind]}` "
                        f"column ({counts[kind]} {kind} item(s) in messages, 0 path(s) in `{MEDIA_COLUMNS[kind]}`)."
                    )
            content.append(item)
        result.append({"role": message["role"], "content": content})
    return result


__all__ = ["CHAT_ROW_FEATURES", "make_row", "row_messages"]
