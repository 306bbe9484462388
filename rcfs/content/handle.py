"""An open content file (``ContentHandle``): reads through the reader while holding the
file against eviction, and proves a size from a read that ends short."""

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
        """``reader.read`` of this file; a read that ends short at the exact size proves
        that size (``FileSizes.confirmed``)."""
        if self._closed:
            raise ValueError("read from a closed content handle")
        data = await self.reader.read(self.ref, offset, size, deadline=deadline,
                                      priority=priority)
        self.reader.sizes.after_read(self.ref.key, offset, size, len(data),
                                     self.reader.known_size(self.ref))
        return data

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.reader.cache.release(self.ref.key)

    def __enter__(self) -> ContentHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
