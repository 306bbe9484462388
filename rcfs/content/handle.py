"""An open content file (``ContentHandle``): reads through the reader while holding the
file against eviction."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rcfs.api.scheduler import Priority
from rcfs.content.source import ContentRef

if TYPE_CHECKING:
    from rcfs.content.reader import ContentReader


class ContentHandle:
    """An open file: reads through the reader, holding the file against eviction."""

    def __init__(self, reader: ContentReader, ref: ContentRef) -> None:
        self.reader = reader
        self.ref = ref
        self._closed = False
        reader.cache.hold(ref.key)

    async def read(self, offset: int, size: int, *, deadline: float | None = None,
                   priority: Priority = Priority.INTERACTIVE) -> bytes:
        """``reader.read`` of this file."""
        if self._closed:
            raise ValueError("read from a closed content handle")
        return await self.reader.read(self.ref, offset, size, deadline=deadline,
                                      priority=priority)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.reader.cache.release(self.ref.key)

    def __enter__(self) -> ContentHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
