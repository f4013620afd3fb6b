"""Decoded media files kept in memory, for loops that read the same files again and again.

A training run decodes each image and video once per epoch and, in MULTIS-style data, once more for every task that
asks about it; an evaluation, once per question about it. On small models opening, probing and decoding the files
then costs a good part of the step. No library keeps decoded files across calls, hence this module. It is off unless
a caller activates a cache (`with cache.active(): ...`, as `ChatBridgeDataCollator(media_cache_bytes=...)` does
around its processor call, and `evaluate(media_cache_gib=...)` around its answering); the image and video loaders
look it up with `active_media_cache()`.

Entries are keyed by the file's resolved path, size, modification time and inode, and by everything else the
decoding depends on (frame indices, pixel limits): a rewritten file or another frame sampling is decoded again,
never answered from memory. Only file paths are cached (not bytes or arrays), and entries are kept until they fill
`max_bytes`; files beyond it are decoded each time.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Hashable, Iterator
from typing import Any

_ACTIVE: contextvars.ContextVar[DecodedMediaCache | None] = contextvars.ContextVar("chatbridge_media_cache", default=None)


class BoundedCache:
    """Entries kept until they fill `max_bytes` (later ones are not kept); `hits` and `misses` count the work saved
    and done. The bookkeeping both of the package's caches share: this module's and the towers' outputs
    (`modeling_chatbridge.TowerOutputCache`)."""

    def __init__(self, max_bytes: int):
        if max_bytes <= 0:
            raise ValueError(f"`max_bytes` must be positive, got {max_bytes}.")
        self.max_bytes = max_bytes
        self.stored_bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: dict[Hashable, Any] = {}

    def get(self, key: Hashable, count: bool = True) -> Any:
        """The entry under `key` or None; a found entry counts as a hit unless `count` is False (for what the
        work itself needs, such as a video's metadata, or where the caller counts)."""
        value = self._entries.get(key)
        if value is not None and count:
            self.hits += 1
        return value

    def put(self, key: Hashable, value: Any, nbytes: int, count: bool = True) -> None:
        """Record the work done for `key` (a miss unless `count` is False) and keep its result if it fits."""
        self.misses += count
        if key not in self._entries and self.stored_bytes + nbytes <= self.max_bytes:
            self._entries[key] = value
            self.stored_bytes += nbytes


class DecodedMediaCache(BoundedCache):
    """Decoded media by file and request, up to `max_bytes`; `hits` and `misses` count the decodes saved and done."""

    @staticmethod
    def file_key(source: Any) -> tuple | None:
        """What identifies a file's current content: (resolved path, size, modification time, inode); None for
        anything that is not the path of an existing file (bytes, arrays, images: their loaders read them anew)."""
        if not isinstance(source, (str, os.PathLike)):
            return None
        try:
            status = os.stat(source)
        except OSError:
            return None  # the loader raises its own error naming the file
        return os.path.realpath(source), status.st_size, status.st_mtime_ns, status.st_ino

    @contextlib.contextmanager
    def active(self) -> Iterator[DecodedMediaCache]:
        """Make this cache the one the loaders use, in this thread or task, for the `with` block."""
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)


def active_media_cache() -> DecodedMediaCache | None:
    return _ACTIVE.get()


__all__ = ["BoundedCache", "DecodedMediaCache", "active_media_cache"]
