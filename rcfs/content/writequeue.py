"""The queue between one download and its writer task (``_WriteQueue``): completed blocks
wait here for the disk, so the download keeps reading the socket while earlier blocks are
checksummed and written."""

from __future__ import annotations

import itertools
from collections import deque

import trio


class _WriteQueue:
    """Blocks from one download to its writer task (a deque: putting never waits)."""

    def __init__(self) -> None:
        self._items: deque[tuple[int, bytes]] = deque()
        self.bytes = 0  # queued payload
        self._closed = False
        self._changed = trio.Event()
        self.written = trio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def put(self, bi: int, data: bytes) -> None:
        self._items.append((bi, data))
        self.bytes += len(data)
        self._notify()

    def close(self) -> None:
        self._closed = True
        self._notify()

    async def get(self, most: int = 1) -> list[tuple[int, bytes]]:
        """The next blocks (at least one, at most ``most``, all that are queued), or an
        empty list once closed and empty. They leave the queue only when the caller calls
        ``done`` (so a download waiting for room does not overrun the disk meanwhile)."""
        while not self._items:
            if self._closed:
                return []
            await self._changed.wait()
        return list(itertools.islice(self._items, most))

    def done(self, n: int) -> None:
        for _ in range(n):
            self.bytes -= len(self._items.popleft()[1])
        self._notify()

    async def progress(self) -> None:
        await self._changed.wait()

    def drop(self) -> list[int]:
        dropped = [bi for bi, _ in self._items]
        self._items.clear()
        self.bytes = 0
        return dropped
