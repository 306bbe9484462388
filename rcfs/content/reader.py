"""Reads of immutable content at one download per file (design: the ``rcfs.content`` docstring).

``ContentReader`` is the public face; it is built in layers, one module each:
``reader_state`` (per-file state, ``_File`` and ``_Stream``), ``downloads`` (the streams
and their writers), ``readpath`` (serving a read, planning waits) and this module (the
API: reads, sizes, prefetch, pins, shutdown). ``ContentHandle`` (``handle.py``) and
``ReaderConfig`` (``reader_config.py``) are importable from here, as before the split.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import trio

from rcfs.api.errors import BudgetExhaustedError, RateLimitedError
from rcfs.api.scheduler import Priority
from rcfs.content.blockcache import BlockCache, FileInfo
from rcfs.content.errors import (
    ContentThrottledError,
    ContentTimeoutError,
    ContentUnavailableError,
)
from rcfs.content.handle import ContentHandle
from rcfs.content.reader_config import ReaderConfig
from rcfs.content.reader_state import _File
from rcfs.content.readpath import _ReadPath
from rcfs.content.source import ContentRef, ContentSource

log = logging.getLogger(__name__)

__all__ = ["ContentHandle", "ContentReader", "ReaderConfig", "open_reader"]


class ContentReader(_ReadPath):
    """Serves ``read(ref, offset, size)`` from the block cache, spending at most one
    download per file in the common case (module and package docstrings).

    Downloads run in ``nursery`` so they outlive the read (and the handle) that started
    them: a paid-for stream always finishes into the cache. Built as
    ``ContentReader(cache, source, nursery, config)`` (``_ReaderState.__init__``).
    """

    # -- public API -----------------------------------------------------------------------

    async def read(self, ref: ContentRef, offset: int, size: int, *,
                   deadline: float | None = None,
                   priority: Priority = Priority.INTERACTIVE) -> bytes:
        """Exactly ``content[offset:offset + size]`` (shorter only at EOF).

        ``deadline`` is absolute trio time (default: ``read_deadline_s`` from now). Cached
        bytes never touch the network; otherwise the read joins or starts a download and
        raises ``ContentUnavailableError`` (or its subclasses) rather than wait past the
        deadline.
        """
        if offset < 0 or size < 0:
            raise ValueError(f"bad read: offset={offset} size={size}")
        self.counters["reads"] += 1
        f = self._files.get(ref.key)
        if f is not None and f.loaded.is_set():
            hit = self._from_memory(f, offset, size)
            if hit is not None:
                self.counters["bytes_read"] += len(hit)
                self._touch(f)
                return hit
        if deadline is None:
            deadline = trio.current_time() + self.config.read_deadline_s
        f = await self._file(ref)
        f.readers += 1
        self.cache.hold(f.key)
        try:
            self._touch(f)
            with trio.move_on_at(deadline):
                data = await self._read(f, offset, size, deadline, priority)
                self.counters["bytes_read"] += len(data)
                return data
            self.counters["timeouts"] += 1
            raise self._timed_out(f, offset)
        finally:
            f.readers -= 1
            self._drop_unwanted(f)
            self.cache.release(f.key)

    def open(self, ref: ContentRef) -> ContentHandle:
        """A handle for the reads of one open file; while any is open the file's blocks
        are not evicted. Closing does not stop a running download."""
        return ContentHandle(self, ref)

    def known_size(self, ref: ContentRef) -> int | None:
        """The exact size if it is known without any I/O: a proven one (a download of this
        session, or the cache's record once ``probe_size`` looked it up), else what a
        response claimed (a Content-Length not yet proved by its body), else the API's
        metadata. A claim that differs from the API's size is shown: the size is then
        proved by neither, so opens read directly and reads end at the real end (shown the
        smaller one, the kernel would end page-cache reads there, short of the content)."""
        size = self.known_size_of(ref.key)
        return size if size is not None else ref.size

    def known_size_of(self, key: str) -> int | None:
        """``known_size`` by content key, without the API's metadata (listings from the
        metadata index carry that themselves)."""
        proven = self.sizes.confirmed.get(key)
        if proven is not None:
            return proven
        f = self._files.get(key)
        if f is not None and f.size is not None:
            return f.size  # what the latest response claimed
        return self._sizes.get(key)

    def proven_size(self, key: str) -> int | None:
        """The size proved by a response or the cache's record: the only one worth
        persisting elsewhere (a claim may be a lie that would outlive its correction)."""
        return self.sizes.confirmed.get(key)

    async def probe_size(self, ref: ContentRef) -> int | None:
        """``known_size``, else the size a download of an earlier session persisted in the
        cache (one local lookup per file and session, never a request)."""
        size = self.known_size(ref)
        if size is not None or ref.key in self._probed:
            return size
        self._probed.add(ref.key)
        info = await self.cache.info(ref.key)
        if info is not None and info.size is not None:
            self.sizes.confirmed[ref.key] = info.size  # the cache records proven sizes only
        return self.known_size(ref)

    async def size(self, ref: ContentRef, *, deadline: float | None = None,
                   priority: Priority = Priority.INTERACTIVE) -> int:
        """The file's exact size: known or persisted, else learned from the first response
        of the download this starts (never a HEAD request; the download goes on into the
        cache, so the reads that follow join it). Raises ``ContentUnavailableError`` (a
        throttled, offline or timed-out subclass) when it cannot be known by ``deadline``."""
        known = await self.probe_size(ref)
        if known is not None:
            return known
        if deadline is None:
            deadline = trio.current_time() + self.config.read_deadline_s
        f = await self._file(ref)
        f.readers += 1
        self.cache.hold(f.key)
        try:
            with trio.move_on_at(deadline):
                while f.size is None:
                    if not any(not s.done for s in f.streams):
                        if trio.current_time() < f.gone_until and f.gone_error is not None:
                            raise self._unavailable(f, 0, f.gone_error)
                        first = 0
                        while first in f.present:
                            first += 1
                        s = self._start_stream(f, first * f.block_size, priority, deadline)
                        while f.size is None and not s.done:
                            await f.changed.wait()
                        if f.size is None and s.error is not None:
                            raise self._unavailable(f, s.start, s.error)
                        continue
                    await f.changed.wait()
            if f.size is None:
                self.counters["timeouts"] += 1
                raise self._timed_out(f, 0)
            self._sizes[f.key] = f.size
            return f.size
        finally:
            f.readers -= 1
            self._drop_unwanted(f)
            self.cache.release(f.key)

    def why_waiting(self, ref: ContentRef) -> str:
        """What a read of ``ref`` is waiting for, in words (for the log)."""
        f = self._files.get(ref.key)
        if f is None:
            return "not started"
        s = f.live
        if s is None:
            return "no download running"
        if not s.opened and s.sent:
            return "request sent, waiting for its answer"
        if not s.opened:
            return (f"waiting for a {f.ref.group} request slot "
                    f"({self.source.describe(f.ref.group)})")
        return f"downloading, at byte {s.pos} ({(s.rate or 0) / 1e6:.2f} MB/s)"

    def _drop_unwanted(self, f: _File) -> None:
        """The last reader left (timed out, interrupted, the process died): a download
        started for readers that is still waiting for a request slot is no longer wanted
        (sending it would spend budget nobody asked for). One whose request has its slot goes
        on: the budget is spent, and its bytes will serve the next read instead of a second
        request."""
        if f.readers:
            return
        for s in f.streams:
            if s.wanted and not s.opened and not s.sent and not s.done:
                log.debug("%s: dropping queued download %d (no reader left)", f.key, s.id)
                s.scope.cancel()

    def _timed_out(self, f: _File, offset: int) -> ContentUnavailableError:
        """The deadline passed: throttled when no download ever got a request slot."""
        why = self._why_slow(f)
        if isinstance(f.last_error, BudgetExhaustedError | RateLimitedError):
            return ContentThrottledError(f.key, offset, why)
        return ContentTimeoutError(f.key, offset, why)

    async def cached_info(self, ref: ContentRef) -> FileInfo | None:
        """What the cache holds for ``ref`` (size and type survive block eviction)."""
        return await self.cache.info(ref.key)

    def prefetch(self, ref: ContentRef) -> trio.Event | None:
        """Download ``ref`` into the cache in the background, only with spare budget and at
        PREFETCH priority. Returns an event set when that download ended (complete or
        not: look at the cache), or None when nothing was started."""
        if (self._prefetching >= self.config.max_prefetch_streams
                or self._interactive_waiting
                or self.source.spare(ref.group) <= 0):
            return None
        self._prefetching += 1
        self.counters["prefetches"] += 1
        done = trio.Event()
        self._nursery.start_soon(self._prefetch, ref, done)
        return done

    async def pin(self, ref: ContentRef, pinned: bool = True) -> None:
        """Keep ``ref`` offline (exempt from eviction), or make it evictable again. Fetching
        is the caller's choice (``prefetch``, or the bulk path of the pinning loop)."""
        f = await self._file(ref)
        await self.cache.pin(ref.key, pinned, block_size=f.block_size)

    async def aclose(self, timeout: float = 10.0) -> None:
        """Stop the downloads, then wait (at most ``timeout``) for the blocks they already
        received to reach the disk: those bytes were paid for. Call before closing the
        cache; safe to call from a cancelled scope."""
        self._closing = True
        for f in self._files.values():
            for s in f.streams:
                s.scope.cancel()
        with trio.move_on_after(timeout) as scope:
            scope.shield = True
            while self._writes:
                await self._writes[0].wait()

    def stats(self) -> dict[str, Any]:
        streams = [s for f in self._files.values() for s in f.streams]
        return {**self.counters, "active_streams": len(streams),
                "memory_bytes": self._mem.bytes, "files": len(self._files),
                "cache": self.cache.stats()}

    async def settle(self, ref: ContentRef | None = None) -> None:
        """Wait until the downloads of ``ref`` (or of every file) have finished."""
        while True:
            busy = [f for f in self._files.values()
                    if (ref is None or f.key == ref.key) and (f.streams or f.pending)]
            if not busy:
                return
            await busy[0].changed.wait()

    def forget(self, key: str) -> None:
        """Blocks of ``key`` reached the cache without this reader (the bulk export path):
        drop its idle view of the file so the next read looks at the cache again."""
        self._probed.discard(key)  # its size is in the cache's record now
        f = self._files.get(key)
        if f is not None and not f.busy() and f.loaded.is_set():
            del self._files[key]


@contextlib.asynccontextmanager
async def open_reader(cache: BlockCache, source: ContentSource,
                      config: ReaderConfig | None = None) -> AsyncIterator[ContentReader]:
    """A reader with its own nursery; leaving the block stops running downloads (after
    flushing the blocks they received to the cache)."""
    async with trio.open_nursery() as nursery:
        reader = ContentReader(cache, source, nursery, config)
        try:
            yield reader
        finally:
            await reader.aclose()
            nursery.cancel_scope.cancel()
