"""Verified blocks in RAM (``_BlockLRU``): the content reader's first stop, since a
sequential reader's 128 KiB FUSE reads hit the same 1 MiB block many times."""

from __future__ import annotations

from collections import OrderedDict


class _BlockLRU:
    """Verified blocks in RAM, bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._d: OrderedDict[tuple[str, int], bytes] = OrderedDict()

    def get(self, key: tuple[str, int]) -> bytes | None:
        data = self._d.get(key)
        if data is not None:
            self._d.move_to_end(key)
        return data

    def has(self, key: tuple[str, int]) -> bool:
        return key in self._d

    def put(self, key: tuple[str, int], data: bytes) -> None:
        old = self._d.pop(key, None)
        if old is not None:
            self.bytes -= len(old)
        if len(data) > self.max_bytes:
            return
        self._d[key] = data
        self.bytes += len(data)
        while self.bytes > self.max_bytes:
            _, victim = self._d.popitem(last=False)
            self.bytes -= len(victim)
