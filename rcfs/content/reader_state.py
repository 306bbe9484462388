"""What the content reader keeps: per download (``_Stream``), per file (``_File``), and the
reader's own table of files and counters (``_ReaderState``, the base of the reader's layers).

State per file: what the block cache holds (``present``), the downloads running for it
(``_Stream``, each one open-ended GET filling consecutive blocks), blocks between the
network and the disk (``pending``), and an event that is set and replaced whenever any of
that changes, which every waiting reader watches.

The reader is one object built in layers, one module each, every layer using those below:
``_ReaderState`` (here) -> ``_Downloads`` (``downloads.py``) -> ``_ReadPath``
(``readpath.py``) -> ``ContentReader`` (``reader.py``, the public API).
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field

import trio

from rcfs.api.scheduler import Priority
from rcfs.content.blockcache import BlockCache
from rcfs.content.ramcache import _BlockLRU
from rcfs.content.reader_config import ReaderConfig
from rcfs.content.sizes import FileSizes
from rcfs.content.source import ContentRef, ContentSource
from rcfs.content.writequeue import _WriteQueue

log = logging.getLogger(__name__)


class _BlockBuffer:
    """The bytes a download received past its last complete block, kept as the chunks the
    socket delivered: a block is joined once when it is complete. Appending each chunk to
    one bytearray, copying the block out and shifting the rest down cost three copies of
    every byte on the event loop's thread, the one that also answers FUSE."""

    def __init__(self) -> None:
        self._parts: list[memoryview] = []
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def add(self, chunk: bytes) -> None:
        if chunk:
            self._parts.append(memoryview(chunk))
            self._len += len(chunk)

    def take(self, n: int) -> bytes:
        """The first ``n`` bytes (at most all of them), removed."""
        parts = self._parts
        out: list[memoryview] = []
        need = min(n, self._len)
        got = 0
        while got < need:
            part = parts[0]
            if got + len(part) <= need:
                out.append(parts.pop(0))
                got += len(part)
            else:
                out.append(part[:need - got])
                parts[0] = part[need - got:]
                got = need
        self._len -= got
        if len(out) == 1 and isinstance(out[0].obj, bytes) and len(out[0]) == len(out[0].obj):
            return out[0].obj  # a chunk that is exactly the block: no copy
        return b"".join(out)

    def copy(self, lo: int, hi: int) -> bytes:
        """A copy of bytes ``lo..hi`` (relative to the first kept byte)."""
        out: list[memoryview] = []
        at = 0
        for part in self._parts:
            end = at + len(part)
            if end > lo and at < hi:
                out.append(part[max(lo - at, 0):min(hi, end) - at])
            if end >= hi:
                break
            at = end
        return b"".join(out)


@dataclass(eq=False)
class _Stream:
    """One running download: bytes ``start..`` of the file into consecutive blocks."""

    id: int
    start: int
    priority: Priority
    block_size: int
    pos: int = 0
    buf: _BlockBuffer = field(default_factory=_BlockBuffer)
    optional: bool = False
    wanted: bool = True  # started for a reader (not a prefetch): dropped if all leave early
    opened: bool = False
    sent: bool = False  # its request got a slot (``scheduler.ON_SLOT``): budget is spent
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

    def on_slot(self, group: str, wanted: str) -> None:
        """``scheduler.ON_SLOT``: the grant of a slot in the content request's own group."""
        if group == wanted.lower():
            self.sent = True

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
    def live(self) -> _Stream | None:
        """The first download of this file still running, if any."""
        return next((s for s in self.streams if not s.done), None)

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


class _ReaderState:
    """The reader's state and its table of files (``ContentReader`` documents the whole).

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
        self._sizes: dict[str, int] = {}  # told by responses, claims too (proven: sizes.confirmed)
        self._probed: set[str] = set()  # keys whose persisted size was looked up
        self.sizes = FileSizes()  # estimates, sizes proved by reads, background probes
        self.counters: dict[str, int] = dict.fromkeys(
            ("reads", "bytes_read", "bytes_network", "memory_hits", "disk_loads",
             "streams_opened", "streams_failed", "requests", "waits", "timeouts",
             "prefetches"), 0)

    # -- per-file state -------------------------------------------------------------------

    def _proven(self, f: _File) -> bool:
        """``f.size`` is proved (a Content-Range total, a body delivered to its end, the
        cache's record: ``sizes.confirmed``), not a claim: a 200's Content-Length can be
        larger than its body. Only a proven size is persisted, and only a proven size lets
        the kernel's page cache serve reads."""
        return f.size is not None and self.sizes.confirmed.get(f.key) == f.size

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
                if info.size is not None:  # the cache records proven sizes only
                    f.size = self.sizes.confirmed[ref.key] = info.size
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
