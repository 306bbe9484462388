"""Reads of immutable content at one download per file (design: the ``rcfs.content`` docstring).

State per file (``_File``): what the block cache holds (``present``), the downloads running
for it (``_Stream``, each one open-ended GET filling consecutive blocks), blocks between the
network and the disk (``pending``), and an event that is set and replaced whenever any of
that changes, which every waiting reader watches. A read walks its blocks: memory, then
disk, then the partial block of a stream that is filling it, and otherwise decides
(``_plan``) between waiting for a stream that will get there and opening a new one.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import logging
import math
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import trio

from rcfs.api.errors import (
    ApiError,
    BudgetExhaustedError,
    NotSentError,
    RateLimitedError,
    RcError,
)
from rcfs.api.scheduler import Priority
from rcfs.content.blockcache import BlockCache, FileInfo
from rcfs.content.errors import (
    ContentNotFoundError,
    ContentOfflineError,
    ContentThrottledError,
    ContentTimeoutError,
    ContentUnavailableError,
)
from rcfs.content.sizes import FileSizes
from rcfs.content.source import ContentBody, ContentRef, ContentSource

log = logging.getLogger(__name__)

__all__ = ["ContentHandle", "ContentReader", "ReaderConfig", "open_reader"]


@dataclass
class ReaderConfig:
    """Tuning knobs; the defaults are what the tests and the benchmark justify."""

    read_deadline_s: float = 30.0
    """Deadline of a read when the caller gives none: a read never hangs."""
    wait_ahead_s: float = 2.0
    """A read ahead of a running download waits for it when it should arrive within this."""
    max_streams_per_file: int = 2
    """Downloads a file may start by choice (a seek ahead) per session; a read that nothing
    else will ever serve, or one that would otherwise miss its deadline, may still open one."""
    initial_rate: float = 1 << 20
    """Bytes/s assumed for a download before its rate is measured."""
    connect_guess_s: float = 0.5
    """Added to the ETA of a download whose first response has not arrived."""
    rate_wait_s: float = 0.5
    """A seek ahead of a download that has answered but has no measured rate yet (younger
    than this) waits for the measurement instead of judging by ``initial_rate``: on a fast
    link that guess would open a second download the first makes redundant at once."""
    stall_s: float = 2.0
    """No byte for this long: the download's ETA counts as unknown (a seek may open another)."""
    stall_timeout_s: float = 60.0
    """No byte for this long: the download is abandoned (a later read reopens)."""
    memory_bytes: int = 64 << 20
    """Verified blocks kept in RAM (sequential small reads hit one block many times)."""
    write_queue_blocks: int = 32
    """Completed blocks a download may have waiting for the disk before it pauses: the
    network outruns checksum + write (~1 GB/s vs ~0.4 GB/s here), and a cold read should
    go at the network's pace while the disk catches up (the blocks are in RAM anyway)."""
    write_batch_blocks: int = 16
    """Queued blocks stored in one cache transaction."""
    disk_read_ahead_blocks: int = 8
    """Blocks loaded from disk ahead of a sequential reader (each costs a thread's file
    read and checksum, ~2-3 ms on a cold page cache: one at a time cannot keep up with a
    reader; the cache's ``READ_THREADS`` run this many at once)."""
    write_queue_bytes: int = 96 << 20
    """Bytes all downloads together may have waiting for the disk (many concurrent
    downloads on a slow disk must not each hold ``write_queue_blocks``)."""
    touch_interval_s: float = 60.0
    """How often an open file is marked recently used in the cache's LRU."""
    gone_ttl_s: float = 60.0
    """A 404/410 is remembered this long: reads fail without a request."""
    extra_backoff_s: float = 5.0
    """After an optional download failed to start (no budget), don't try another this long."""
    max_prefetch_streams: int = 1
    prefetch_deadline_s: float = 10.0
    idle_states: int = 512
    """Idle per-file states kept (their cached-block maps) before pruning."""


class _Action(enum.Enum):
    WAIT = 1
    OPEN = 2


@dataclass(eq=False)
class _Stream:
    """One running download: bytes ``start..`` of the file into consecutive blocks."""

    id: int
    start: int
    priority: Priority
    block_size: int
    pos: int = 0
    buf: bytearray = field(default_factory=bytearray)
    optional: bool = False
    wanted: bool = True  # started for a reader (not a prefetch): dropped if all leave early
    opened: bool = False
    done: bool = False
    stop: bool = False
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    error: BaseException | None = None
    rate: float | None = None
    opened_at: float = 0.0
    last_byte_at: float = 0.0
    _mark_t: float = 0.0
    _mark_pos: int = 0

    def __post_init__(self) -> None:
        self.pos = self._mark_pos = self.start

    @property
    def buf_start(self) -> int:
        """Offset of ``buf[0]``; always a block boundary."""
        return self.pos - len(self.buf)

    @property
    def block(self) -> int:
        """The next block this stream will complete."""
        return self.buf_start // self.block_size

    def on_open(self, now: float) -> None:
        self.opened = True
        self.opened_at = self.last_byte_at = self._mark_t = now

    def measure(self, now: float) -> None:
        """Update the EWMA of the byte rate, one sample per 0.2 s at most."""
        self.last_byte_at = now
        dt = now - self._mark_t
        if dt >= 0.2:
            sample = (self.pos - self._mark_pos) / dt
            self.rate = sample if self.rate is None else 0.5 * self.rate + 0.5 * sample
            self._mark_t, self._mark_pos = now, self.pos

    def current_rate(self, now: float) -> float | None:
        """The measured rate, or the average since the first response while too young for
        an EWMA sample (on a fast link a whole file arrives before the first one)."""
        if self.rate is not None:
            return self.rate
        elapsed = now - self.opened_at
        if self.opened and elapsed > 0.02 and self.pos > self.start:
            return (self.pos - self.start) / elapsed
        return None


@dataclass(eq=False)
class _File:
    ref: ContentRef
    block_size: int
    size: int | None
    content_type: str | None
    present: set[int] = field(default_factory=set)
    pending: dict[int, bytes] = field(default_factory=dict)
    loads: dict[int, trio.Event] = field(default_factory=dict)
    streams: list[_Stream] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)
    loaded: trio.Event = field(default_factory=trio.Event)
    load_error: BaseException | None = None
    streams_opened: int = 0
    readers: int = 0
    touched_at: float = -math.inf
    gone_until: float = -math.inf
    gone_error: BaseException | None = None
    no_extra_until: float = -math.inf
    last_error: BaseException | None = None
    saved_meta: tuple[int | None, str | None] = (None, None)
    wake_at: float = math.inf
    """A download notifies for new bytes only once it reaches this offset (the least one a
    waiting read needs): a read does not wake per network chunk."""

    @property
    def key(self) -> str:
        return self.ref.key

    @property
    def nblocks(self) -> int | None:
        return None if self.size is None else -(-self.size // self.block_size)

    def notify(self) -> None:
        self.wake_at = math.inf
        self.changed.set()
        self.changed = trio.Event()

    def busy(self) -> bool:
        return bool(self.readers or self.streams or self.pending or self.loads)


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


class ContentReader:
    """Serves ``read(ref, offset, size)`` from the block cache, spending at most one
    download per file in the common case (module and package docstrings).

    Downloads run in ``nursery`` so they outlive the read (and the handle) that started
    them: a paid-for stream always finishes into the cache.
    """

    def __init__(self, cache: BlockCache, source: ContentSource, nursery: trio.Nursery,
                 config: ReaderConfig | None = None) -> None:
        self.cache = cache
        self.source = source
        self.config = config or ReaderConfig()
        self._nursery = nursery
        self._files: dict[str, _File] = {}
        self._mem = _BlockLRU(self.config.memory_bytes)
        self._ids = itertools.count(1)
        self._prefetching = 0
        self._interactive_waiting = 0
        self._writes: list[trio.Event] = []
        self._queues: set[_WriteQueue] = set()
        self._closing = False
        self._sizes: dict[str, int] = {}  # exact sizes learned (this session or the cache's)
        self._probed: set[str] = set()  # keys whose persisted size was looked up
        self.sizes = FileSizes()  # estimates, sizes proved by reads, background probes
        self.counters: dict[str, int] = dict.fromkeys(
            ("reads", "bytes_read", "bytes_network", "memory_hits", "disk_loads",
             "streams_opened", "streams_failed", "requests", "waits", "timeouts",
             "prefetches"), 0)

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
        """The exact size if it is known without any I/O: API metadata, a download of this
        session, or the cache's record once ``probe_size`` looked it up."""
        size = self.known_size_of(ref.key)
        return size if size is not None else ref.size

    def known_size_of(self, key: str) -> int | None:
        """``known_size`` by content key, without the API's metadata (listings from the
        metadata index carry that themselves)."""
        f = self._files.get(key)
        if f is not None and f.size is not None:
            return f.size  # a download corrects wrong metadata
        return self._sizes.get(key)

    async def probe_size(self, ref: ContentRef) -> int | None:
        """``known_size``, else the size a download of an earlier session persisted in the
        cache (one local lookup per file and session, never a request)."""
        size = self.known_size(ref)
        if size is not None or ref.key in self._probed:
            return size
        self._probed.add(ref.key)
        info = await self.cache.info(ref.key)
        if info is not None and info.size is not None:
            self._sizes[ref.key] = info.size
        return self._sizes.get(ref.key)

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
        live = [s for s in f.streams if not s.done]
        if not live:
            return "no download running"
        s = live[0]
        if not s.opened:
            return (f"waiting for a {f.ref.group} request slot "
                    f"({self.source.describe(f.ref.group)})")
        return f"downloading, at byte {s.pos} ({(s.rate or 0) / 1e6:.2f} MB/s)"

    def _drop_unwanted(self, f: _File) -> None:
        """The last reader left (timed out, interrupted, the process died): a download
        started for readers that is still waiting for a request slot is no longer wanted
        (sending it would spend budget nobody asked for). One that is running goes on."""
        if f.readers:
            return
        for s in f.streams:
            if s.wanted and not s.opened and not s.done:
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

    # -- per-file state -------------------------------------------------------------------

    async def _file(self, ref: ContentRef) -> _File:
        f = self._files.get(ref.key)
        if f is None:
            if len(self._files) >= self.config.idle_states:
                self._prune()
            f = _File(ref, self.cache.block_size, ref.size, ref.content_type)
            self._files[ref.key] = f
            try:
                info = await self.cache.info(ref.key)
            except BaseException as exc:
                f.load_error = exc
                self._files.pop(ref.key, None)
                f.loaded.set()
                raise
            if info is not None:
                f.block_size = info.block_size
                f.present = set(info.present)
                f.size = info.size if info.size is not None else f.size
                f.content_type = info.content_type or f.content_type
                f.saved_meta = (info.size, info.content_type)
            f.loaded.set()
        elif not f.loaded.is_set():
            await f.loaded.wait()
            if f.load_error is not None:
                return await self._file(ref)
        if f.ref.uri != ref.uri and ref.uri:
            f.ref = ref  # a refreshed URI (same content) is used for the next download
        return f

    def _prune(self) -> None:
        for key, f in list(self._files.items()):
            if not f.busy() and f.loaded.is_set():
                del self._files[key]

    def _touch(self, f: _File) -> None:
        now = trio.current_time()
        if now - f.touched_at >= self.config.touch_interval_s and f.present:
            f.touched_at = now
            self._nursery.start_soon(self._touch_task, f.key)

    async def _touch_task(self, key: str) -> None:
        try:
            await self.cache.touch(key)
        except Exception:  # the LRU order is an optimisation; never fail a read for it
            log.exception("cache touch of %s failed", key)

    # -- the read loop --------------------------------------------------------------------

    def _from_memory(self, f: _File, offset: int, size: int) -> bytes | None:
        """The read served without a checkpoint when every block it needs is in RAM (the
        common case of a FUSE read: 128 KiB of a 1 MiB block a sequential reader is in);
        None sends it down the general path. Needs the size: EOF must be exact."""
        if f.size is None:
            return None
        end = min(offset + size, f.size)
        if offset >= end:
            return b""
        bs = f.block_size
        first, last = offset // bs, (end - 1) // bs
        blocks = []
        for bi in range(first, last + 1):
            data = self._in_ram(f, bi)
            if data is None or len(data) < min(bs, f.size - bi * bs):
                return None
            blocks.append(data)
        self.counters["memory_hits"] += len(blocks)
        self._load_ahead(f, last + 1)
        lo = offset - first * bs
        if len(blocks) == 1:
            data = blocks[0]
            if lo == 0 and end - offset == len(data):
                return data
            with memoryview(data) as view:
                return bytes(view[lo:lo + end - offset])
        joined = b"".join(blocks)
        with memoryview(joined) as view:
            return bytes(view[lo:lo + end - offset])

    async def _read(self, f: _File, offset: int, size: int, deadline: float,
                    priority: Priority) -> bytes:
        # Pieces are views of cached blocks (or copies of a download's buffer): the result
        # is copied once, and not at all when one piece is a whole block.
        pieces: list[bytes | memoryview] = []
        pos, end = offset, offset + size
        mine: list[_Stream] = []
        while pos < end:
            if f.size is not None:
                end = min(end, f.size)
                if pos >= end:
                    break
            piece = await self._piece(f, pos, end - pos, deadline, priority, mine)
            if not piece:
                break
            pieces.append(piece)
            pos += len(piece)
        if len(pieces) == 1:
            return pieces[0] if isinstance(pieces[0], bytes) else bytes(pieces[0])
        return b"".join(pieces)

    async def _piece(self, f: _File, pos: int, n: int, deadline: float, priority: Priority,
                     mine: list[_Stream]) -> bytes | memoryview:
        """Bytes from ``pos`` (at most ``n``, within one block); b"" at EOF."""
        bs = f.block_size
        bi, within = divmod(pos, bs)
        while True:
            data = await self._cached_block(f, bi)
            if data is not None:
                if within >= len(data):
                    return b""  # only the last block is short: pos is past EOF
                if within == 0 and n >= len(data):
                    return data
                return memoryview(data)[within:within + n]
            # What this piece needs of the block being filled: served (copied early, HTTPDirFS's
            # trick) once a download has all of it, not chunk by chunk.
            need = min(pos + n, (bi + 1) * bs)
            if f.size is not None:
                need = min(need, f.size)
            for s in f.streams:
                if not s.done and s.buf_start <= pos < s.pos and s.pos >= need:
                    at = pos - s.buf_start
                    with memoryview(s.buf) as view:  # one copy; no view kept (buf grows)
                        return bytes(view[at:at + need - pos])
            if f.size is not None and pos >= f.size:
                return b""
            for s in mine:
                if s.done and s.error is not None and not s.optional:
                    raise self._unavailable(f, pos, s.error)
            if trio.current_time() < f.gone_until and f.gone_error is not None:
                raise self._unavailable(f, pos, f.gone_error)
            if self._closing:
                raise ContentUnavailableError(f.key, pos, "rcfs is shutting down")
            action, optional = self._plan(f, pos, deadline)
            if action is _Action.OPEN:
                mine.append(self._start_stream(f, bi * bs, priority, deadline,
                                               optional=optional))
                continue
            f.wake_at = min(f.wake_at, need)
            await self._wait(f, priority)

    async def _cached_block(self, f: _File, bi: int) -> bytes | None:
        """Block ``bi`` from memory, the pending writes or disk (single-flight per block).
        A block read from disk starts loading the next one, so a sequential reader finds
        it in RAM (the disk read overlaps the reads of this block)."""
        while True:
            data = self._in_ram(f, bi)
            if data is not None:
                self.counters["memory_hits"] += 1
                self._load_ahead(f, bi + 1)
                return data
            if bi not in f.present:
                return None
            ev = f.loads.get(bi)
            if ev is not None:
                await ev.wait()
                continue
            data = await self._load(f, bi)
            if data is not None:
                self._load_ahead(f, bi + 1)
            return data

    def _in_ram(self, f: _File, bi: int) -> bytes | None:
        """Block ``bi`` if it is in RAM: the verified-block LRU or a download's pending
        writes."""
        return self._mem.get((f.key, bi)) or f.pending.get(bi)

    def _load_ahead(self, f: _File, bi: int) -> None:
        """Start loading blocks ``bi``.. (``disk_read_ahead_blocks`` of them) from disk if
        they are there and not in RAM, so a sequential reader finds every next block in RAM
        (the disk reads, in threads, overlap the reads of the current block)."""
        want = [j for j in range(bi, bi + self.config.disk_read_ahead_blocks)
                if j in f.present and j not in f.loads and not self._mem.has((f.key, j))
                and j not in f.pending]
        if not want:
            return
        # Blocks loaded ahead wait in the RAM cache until they are read: with many readers
        # loading at once, a deep window would evict them before use, so each gets a share.
        loading = 1 + sum(1 for g in self._files.values() if g.loads and g is not f)
        share = max(2, self._mem.max_bytes // (2 * loading * f.block_size))
        for j in want:
            if j < bi + share:
                f.loads[j] = trio.Event()  # claimed now: a read arriving first waits
                self._nursery.start_soon(self._load, f, j, True)

    async def _load(self, f: _File, bi: int, claimed: bool = False) -> bytes | None:
        """Read block ``bi`` from disk into RAM; None (and the bit cleared) if it is gone."""
        ev = f.loads[bi] if claimed else f.loads.setdefault(bi, trio.Event())
        try:
            data = await self.cache.get_block(f.key, bi, f.block_size)
        except Exception:
            if not claimed:
                raise
            log.exception("%s: reading block %d ahead failed", f.key, bi)
            return None
        finally:
            del f.loads[bi]
            ev.set()
        if data is None:
            f.present.discard(bi)  # evicted meanwhile, or corrupt (dropped by the cache)
            f.notify()
            return None
        self.counters["disk_loads"] += 1
        self._mem.put((f.key, bi), data)
        return data

    async def _wait(self, f: _File, priority: Priority) -> None:
        """Wait for any change to the file's state, re-planning at least every 0.25 s so a
        stalled or slowed download is noticed."""
        self.counters["waits"] += 1
        interactive = priority <= Priority.METADATA
        self._interactive_waiting += interactive
        try:
            with trio.move_on_after(0.25):
                await f.changed.wait()
        finally:
            self._interactive_waiting -= interactive

    def _eta(self, s: _Stream, pos: int, now: float) -> float:
        """Seconds until stream ``s`` delivers byte ``pos``."""
        remaining = pos + 1 - s.pos
        if remaining <= 0:
            return 0.0
        if not s.opened:
            return self.config.connect_guess_s + remaining / self.config.initial_rate
        if now - s.last_byte_at > self.config.stall_s:
            return math.inf
        return remaining / (s.current_rate(now) or self.config.initial_rate)

    def _plan(self, f: _File, pos: int, deadline: float) -> tuple[_Action, bool]:
        """Wait for a download that will reach ``pos``, or open one at its block; the flag
        says whether that download is optional (another one would get there eventually)."""
        cfg = self.config
        bi = pos // f.block_size
        now = trio.current_time()
        coming = [s for s in f.streams if not s.done and not s.stop and s.block <= bi]
        if not coming:
            return _Action.OPEN, False  # nothing else will ever serve this read
        best = min(coming, key=lambda s: self._eta(s, pos, now))
        if (best.opened and best.current_rate(now) is None
                and now - best.opened_at < cfg.rate_wait_s):
            return _Action.WAIT, False  # its rate is unknown, not slow: measure it first
        eta = self._eta(best, pos, now)
        # What a new download from this block would take: connect, then the bytes before
        # ``pos`` at the rate the running one achieves.
        rate = best.current_rate(now) or cfg.initial_rate
        eta_new = cfg.connect_guess_s + (pos % f.block_size + 1) / rate
        gain = eta - eta_new
        if eta <= cfg.wait_ahead_s or gain <= cfg.wait_ahead_s or now < f.no_extra_until:
            return _Action.WAIT, False
        if f.streams_opened < cfg.max_streams_per_file and self.source.spare(f.ref.group) > 0:
            return _Action.OPEN, True  # a seek far ahead, and the budget has room to spare
        if eta > deadline - now:
            return _Action.OPEN, True  # waiting would miss the deadline: better a request
        return _Action.WAIT, False

    def _unavailable(self, f: _File, pos: int, exc: BaseException) -> ContentUnavailableError:
        if isinstance(exc, ContentUnavailableError):
            return exc
        err: ContentUnavailableError
        if isinstance(exc, ApiError) and exc.status in (404, 410):
            err = ContentNotFoundError(f.key, pos, f"not found upstream ({exc})")
        elif isinstance(exc, BudgetExhaustedError):
            err = ContentThrottledError(
                f.key, pos, f"not cached and the {exc.group} request budget is empty for "
                            f"{exc.wait_s:.0f} s")
        elif isinstance(exc, RateLimitedError):
            err = ContentThrottledError(f.key, pos, f"throttled by RingCentral ({exc})")
        elif _caused_by(exc, NotSentError):
            err = ContentOfflineError(f.key, pos, f"RingCentral unreachable ({exc})")
        else:
            err = ContentUnavailableError(f.key, pos, f"download failed: {exc}")
        err.__cause__ = exc
        return err

    def _why_slow(self, f: _File) -> str:
        live = [s for s in f.streams if not s.done]
        if f.last_error is not None:
            return f"timed out; last download error: {f.last_error}"
        if not live:
            return "timed out with no download running"
        s = live[0]
        if not s.opened:
            return (f"timed out waiting for the {f.ref.group} request to be sent or answered "
                    f"({self.source.describe(f.ref.group)})")
        return f"timed out; download at byte {s.pos} ({(s.rate or 0) / 1e6:.2f} MB/s)"

    # -- downloads ------------------------------------------------------------------------

    def _start_stream(self, f: _File, start: int, priority: Priority,
                      deadline: float | None, *, optional: bool = False,
                      wanted: bool = True) -> _Stream:
        s = _Stream(next(self._ids), start, priority, f.block_size, optional=optional,
                    wanted=wanted)
        s._mark_t = s.last_byte_at = trio.current_time()
        f.streams.append(s)
        f.streams_opened += 1
        self.counters["streams_opened"] += 1
        self.cache.hold(f.key)
        log.debug("%s: download from byte %d (stream %d, %s)", f.key, start, s.id,
                  priority.name)
        self._nursery.start_soon(self._run_stream, f, s, deadline)
        return s

    async def _run_stream(self, f: _File, s: _Stream, deadline: float | None) -> None:
        # Completed blocks go to a writer task through a small queue, so the download keeps
        # reading while the previous blocks are checksummed and written.
        q = _WriteQueue()
        self._writes.append(q.written)
        self._queues.add(q)
        self._nursery.start_soon(self._writer, f, q)
        try:
            try:
                with s.scope:
                    await self._download(f, s, deadline, q)
            finally:
                q.close()  # the writer finishes what was queued, even after a cancel
            await q.written.wait()
            await self._save_meta(f)
        except Exception as exc:
            s.error = f.last_error = exc
            self.counters["streams_failed"] += 1
            if not s.opened and isinstance(exc, ApiError):
                self.counters["requests"] += 1  # the server answered the first request
            if isinstance(exc, ApiError) and exc.status in (404, 410):
                f.gone_until = trio.current_time() + self.config.gone_ttl_s
                f.gone_error = exc
            if s.optional:
                f.no_extra_until = trio.current_time() + self.config.extra_backoff_s
            if isinstance(exc, RcError):
                log.info("%s: download from byte %d failed: %s", f.key, s.start, exc)
            else:
                log.warning("%s: download from byte %d failed", f.key, s.start, exc_info=True)
        finally:
            s.done = True
            f.streams.remove(s)
            f.notify()
            with trio.move_on_after(30) as scope:  # the cache hold outlives queued writes
                scope.shield = True
                await q.written.wait()
            self.cache.release(f.key)

    async def _download(self, f: _File, s: _Stream, deadline: float | None,
                        q: _WriteQueue) -> None:
        body: ContentBody | None = None
        try:
            async with self.source.open(f.ref, s.start, priority=s.priority,
                                        deadline=deadline) as body:
                s.on_open(trio.current_time())
                self.counters["requests"] += 1
                self._learn(f, body.total_size, body.content_type)
                f.notify()
                complete = await self._pump(f, s, body, q)
                self._learn(f, body.total_size, body.content_type)
                if complete:
                    if f.size is None:
                        f.size = s.pos
                    if s.buf:
                        await self._queue(f, q, s.block, bytes(s.buf))
                        s.buf.clear()
        finally:
            if body is not None:
                self.counters["requests"] += body.requests - 1  # continuations

    async def _writer(self, f: _File, q: _WriteQueue) -> None:
        """Write queued blocks into the cache; a failed write leaves the block uncached."""
        try:
            # A batch is admitted to the cache as a whole: keep it a small part of the budget.
            most = max(1, min(self.config.write_batch_blocks,
                              self.cache.capacity // (4 * f.block_size)))
            while items := await q.get(most):
                # All that is queued, in one transaction: a 1 MiB block costs ~1 ms of
                # checksum and file write, its own SQLite transaction as much again.
                blocks = {bi: data for bi, data in items if bi not in f.present}
                try:
                    if blocks and await self.cache.put_blocks(
                            f.key, blocks, block_size=f.block_size, size=f.size,
                            content_type=f.content_type):
                        f.present.update(blocks)
                        f.saved_meta = (f.size, f.content_type)
                except Exception:
                    log.exception("%s: writing blocks %s to the cache failed", f.key,
                                  sorted(blocks))
                finally:
                    for bi, _data in items:
                        f.pending.pop(bi, None)
                    q.done(len(items))
                    f.notify()
        finally:
            for bi in q.drop():  # cancelled: what is left stays in the RAM cache only
                f.pending.pop(bi, None)
            q.written.set()
            self._writes.remove(q.written)
            self._queues.discard(q)

    async def _pump(self, f: _File, s: _Stream, body: ContentBody, q: _WriteQueue) -> bool:
        """Move pieces into blocks until EOF (True) or the stream became redundant (False)."""
        it: AsyncIterator[tuple[int, bytes]] = body.__aiter__()
        try:
            return await self._pump_pieces(f, s, it, q)
        finally:
            if isinstance(it, AsyncGenerator):  # close it now, not in the garbage collector
                with trio.CancelScope(shield=True):
                    await it.aclose()

    async def _pump_pieces(self, f: _File, s: _Stream, it: AsyncIterator[tuple[int, bytes]],
                           q: _WriteQueue) -> bool:
        bs = f.block_size
        # One cancel scope for the whole body (cheaper than one per chunk): its deadline is
        # the stall timeout while waiting for a chunk, and off while blocks are queued.
        with trio.CancelScope() as stall:
            while True:
                stall.deadline = trio.current_time() + self.config.stall_timeout_s
                try:
                    offset, chunk = await it.__anext__()
                except StopAsyncIteration:
                    return True
                stall.deadline = math.inf
                if offset != s.pos:  # pragma: no cover - the source guarantees contiguity
                    raise RuntimeError(f"non-contiguous piece at {offset}, expected {s.pos}")
                s.buf += chunk
                s.pos += len(chunk)
                self.counters["bytes_network"] += len(chunk)
                s.measure(trio.current_time())
                at_eof = f.size is not None and s.pos >= f.size
                while len(s.buf) >= bs or (at_eof and s.buf):
                    # Full blocks, and the short last one as soon as its last byte is here
                    # (not at the end of the body, which a shutdown might not wait for).
                    bi = (s.pos - len(s.buf)) // bs
                    with memoryview(s.buf) as view:
                        data = bytes(view[:bs])
                    del s.buf[:len(data)]
                    await self._queue(f, q, bi, data)
                    if self._redundant(f, s):
                        s.stop = True
                        log.debug("%s: stream %d stops at block %d (rest covered)", f.key,
                                  s.id, s.block)
                        return False
                if s.pos >= f.wake_at:
                    f.notify()
        raise TimeoutError(f"no byte for {self.config.stall_timeout_s:.0f} s")

    async def _queue(self, f: _File, q: _WriteQueue, bi: int, data: bytes) -> None:
        """Block ``bi`` is complete: readers find it in ``pending`` (then in RAM) at once and
        the writer will store it; the download pauses here while the writer is more than
        ``write_queue_blocks`` behind (the block is queued before that wait, so a cancelled
        download loses nothing it received)."""
        self._mem.put((f.key, bi), data)
        if bi in f.present:
            return
        f.pending[bi] = data
        f.notify()
        q.put(bi, data)
        # Past the global bound a download waits only while its own writer has work (that
        # writer's progress is what wakes it), so the wait always ends.
        while len(q) > self.config.write_queue_blocks or (
                len(q) > 1 and self._queued_bytes() > self.config.write_queue_bytes):
            await q.progress()

    def _queued_bytes(self) -> int:
        return sum(q.bytes for q in self._queues)

    def _redundant(self, f: _File, s: _Stream) -> bool:
        """True when everything from ``s``'s next block on is cached or will be written by
        another download already at or ahead of it (whose data ``s`` would only repeat)."""
        j = s.block
        n = f.nblocks
        while True:
            if n is not None and j >= n:
                return True
            if j in f.present or j in f.pending:
                j += 1
                continue
            return any(o is not s and not o.done and not o.stop and o.block == j
                       and (j > s.block or o.id < s.id) for o in f.streams)

    def _learn(self, f: _File, total: int | None, content_type: str | None) -> None:
        if total is not None and total != f.size:
            if f.size is not None:
                log.info("%s: size %d (metadata said %d)", f.key, total, f.size)
            f.size = total
        if f.size is not None:
            self._sizes[f.key] = f.size
        if content_type and not f.content_type:
            f.content_type = content_type

    async def _save_meta(self, f: _File) -> None:
        meta = (f.size, f.content_type)
        if meta != f.saved_meta:
            await self.cache.set_meta(f.key, block_size=f.block_size, size=f.size,
                                      content_type=f.content_type)
            f.saved_meta = meta

    # -- prefetch -------------------------------------------------------------------------

    async def _prefetch(self, ref: ContentRef, done: trio.Event) -> None:
        try:
            f = await self._file(ref)
            if any(not s.done for s in f.streams):
                return
            n = f.nblocks
            first = 0
            while first in f.present and (n is None or first < n):
                first += 1
            if n is not None and first >= n:
                return
            deadline = trio.current_time() + self.config.prefetch_deadline_s
            s = self._start_stream(f, first * f.block_size, Priority.PREFETCH, deadline,
                                   wanted=False)
            while not s.done:
                await f.changed.wait()
        finally:
            self._prefetching -= 1
            done.set()


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """``exc`` or an exception it was raised from is a ``kind`` (a download that gave up
    after its connection attempts failed wraps the connection error)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


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
