"""An in-memory content source for ContentReader tests: ``FakeSource`` serves files from a
dict from any start and logs every request it sends, ``reader_on`` opens a reader over a
fresh block cache. Shared by tests/unit/test_content_reader*.py and the emulator's
tests/emulator/test_content_reader.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import trio
import trio.testing
from hypothesis import strategies as st

from rcfs.api.errors import ApiError
from rcfs.api.scheduler import Priority
from rcfs.content.blockcache import BlockCache
from rcfs.content.reader import ContentReader, ReaderConfig, open_reader
from rcfs.content.source import ContentRef

BS = 64 * 1024  # the block size of every cache these tests open


T = TypeVar("T")


class Entered(Generic[T]):
    """An async context manager that enters as ``value`` (or raises it). A class, not an
    ``@asynccontextmanager`` generator: one abandoned mid-way by a cancelled task would be
    finalized by the garbage collector, and trio warns (an error under pytest)."""

    def __init__(self, value: T | BaseException | None = None, *, hang: bool = False,
                 sent: Callable[[], T | BaseException | None] | None = None) -> None:
        self.value, self.hang, self.sent = value, hang, sent

    async def __aenter__(self) -> T:
        if self.sent is not None:
            # The request leaves here, after a checkpoint, as with RcClient (whose scheduler
            # and socket checkpoint first): a download cancelled before its task ran sends
            # nothing. What ``sent`` returns, if anything, is the answer.
            await trio.lowlevel.checkpoint()
            answer = self.sent()
            if answer is not None:
                self.value = answer
        if self.hang:
            await trio.sleep_forever()
        if isinstance(self.value, BaseException):
            raise self.value
        assert self.value is not None
        return self.value

    async def __aexit__(self, *exc: object) -> None:
        return None


@dataclass
class FakeBody:
    data: bytes
    start: int
    chunk: int
    delay: float
    announce: bool
    content_type: str | None = "audio/wav"
    requests: int = 1
    fail_at: int | None = None
    total_size: int | None = None
    size_proven: bool = False

    def __post_init__(self) -> None:
        if self.announce:  # as a 206's Content-Range total
            self.total_size = len(self.data)
            self.size_proven = True

    def __aiter__(self) -> AsyncIterator[tuple[int, bytes]]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[tuple[int, bytes]]:
        pos = self.start
        while pos < len(self.data):
            if self.fail_at is not None and pos >= self.fail_at:
                raise ApiError(500, "CMN-101", "boom")
            if self.delay:
                await trio.sleep(self.delay)
            else:
                await trio.lowlevel.checkpoint()
            piece = self.data[pos:pos + self.chunk]
            if pos + len(piece) == len(self.data):
                self.total_size = len(self.data)  # the end of a body of unknown length
                self.size_proven = True
            yield pos, piece
            pos += len(piece)
        self.total_size = len(self.data)
        self.size_proven = True


@dataclass
class FakeSource:
    """Serves ``files[ref.key]`` from any start; ``opens`` logs (key, start, priority) of
    every request sent."""

    files: dict[str, bytes]
    chunk: int = 16 * 1024
    delay: float = 0.0
    announce: bool = True
    spare_budget: int = 0
    fail: BaseException | None = None
    hang: bool = False
    fail_at: int | None = None
    opens: list[tuple[str, int, Priority]] = field(default_factory=list)

    def open(self, ref: ContentRef, start: int, *, priority: Priority,
             deadline: float | None) -> Entered[FakeBody]:
        def sent() -> None:
            self.opens.append((ref.key, start, priority))

        if self.fail is not None:
            return Entered(self.fail, hang=self.hang, sent=sent)
        return Entered(FakeBody(self.files[ref.key], start, self.chunk, self.delay,
                                 self.announce, fail_at=self.fail_at), hang=self.hang,
                        sent=sent)

    def spare(self, group: str) -> int:
        return self.spare_budget

    def describe(self, group: str) -> str:
        return f"fake budget, {self.spare_budget} spare"


def ref_for(key: str, *, size: int | None = None, group: str = "Heavy") -> ContentRef:
    kind, *ids = key.split("/")
    return ContentRef(kind, tuple(ids), f"https://media.example.com/{key}/content", group,
                      size, None)


@asynccontextmanager
async def reader_on(path: Path, source: Any, config: ReaderConfig | None = None,
                    budget: int | str = "256 MiB") -> AsyncIterator[ContentReader]:
    cache = await BlockCache.open(path, budget=budget, block_size=BS)
    try:
        async with open_reader(cache, source, config) as reader:
            yield reader
    finally:
        await cache.aclose()


async def read_all(reader: ContentReader, ref: ContentRef, step: int = 128 * 1024) -> bytes:
    out = bytearray()
    while True:
        piece = await reader.read(ref, len(out), step)
        out += piece
        if len(piece) < step:
            return bytes(out)


async def read_concurrently(reader: ContentReader, ref: ContentRef, data: bytes,
                            reads: list[tuple[int, int]]) -> None:
    """Every (offset, length) of ``reads`` at once; each returns exactly ``data``'s bytes."""

    async def one(off: int, n: int) -> None:
        assert await reader.read(ref, off, n) == data[off:off + n]

    async with trio.open_nursery() as nursery:
        for off, n in reads:
            nursery.start_soon(one, off, n)


# Concurrent reads (offset, length) for the property tests: offsets past a file's end too.
reads_st = st.lists(st.tuples(st.integers(0, 700_000), st.integers(0, 200_000)),
                    min_size=1, max_size=12)
