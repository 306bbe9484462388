"""On-disk block store over ``diskcache`` with a hard byte budget (design: ``rcfs.content``).

Everything lives in one diskcache ``Cache`` (one SQLite database plus one file per large
value) under ``<root>/v1``, so a block, its file's record, the LRU queue entry and the usage
counter change in one SQLite transaction. Keys:

``b:<bs>:<key>:<index>``  a block: 36-byte header (magic, block size, index, length, CRC32,
                          digest of the key) + payload; verified on every read.
``f:<key>``               the file's record: block size, size, content type, bitmap of
                          present blocks, pinned flag, LRU queue key, charges.
``lru-NNN`` / ``meta-NNN`` diskcache prefix queues (ordered by key) holding a file key: the
                          LRU order of files with blocks, and of size-only records.
``s:used``                bytes charged, the sum of every stored item's charge.

The trio side keeps the budget: ``used + reserved + need <= capacity`` is checked before a
block is written (admission), and eviction (whole files, least recently used first, skipping
held and pinned files) runs synchronously before the write when needed. Every diskcache call
runs in a worker thread behind one ``CapacityLimiter``; thread functions touch only diskcache
and their arguments, never this object's counters.

The cache is split by side: this module is the trio side (``BlockCache``: budget, holds,
threads, the public API); ``blockrecords`` holds the transactions run in worker threads,
``blocklayout`` the keys, header and charges, ``blockdb`` the database's files on disk.
Names other packages used from here before the split are re-exported.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import diskcache
import trio

from rcfs.content.blockdb import (
    DB_FILE,
    DISKCACHE_SCHEMA,
    _open_db,
    _strip_values,
    disk_usage,
    iter_value_files,
)
from rcfs.content.blocklayout import (
    _USED,
    FIXED_OVERHEAD,
    HEADER,
    MIN_BUDGET,
    FileInfo,
    _bits_to_set,
    _fkey,
    _record_charge,
    block_charge,
)
from rcfs.content.blockrecords import _SyncRecords
from rcfs.private import FILE_MODE, private_dir
from rcfs.storeheal import Healed, open_healing, sqlite_problem

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_BUDGET",
    "FIXED_OVERHEAD",
    "HEADER",
    "MIN_BUDGET",
    "BlockCache",
    "CacheBusyError",
    "FileInfo",
    "disk_usage",
    "iter_value_files",
    "parse_size",
]

FORMAT = "v1"

DEFAULT_BLOCK_SIZE = 1 << 20
"""1 MiB: the knee of the measured curve (see the rcfs.content docstring)."""

DEFAULT_BUDGET = 2 << 30
READ_THREADS = 8
"""Threads loading blocks (``get_block``). Each load is a SQLite lookup, one read of a value
file and a CRC; on a cold page cache the disk's latency dominates, so loads in flight are
what counts: 64 value files of 1 MiB read cold at 536 MiB/s one at a time, 783 with 4
threads and 908 with 8 (one 64 MiB file: 1,664), measured on this VM's virtio disk."""
MIN_BLOCK_SIZE = 4096
MAX_BLOCK_SIZE = 64 << 20

T = TypeVar("T")


class CacheBusyError(OSError):
    """Another process has this cache directory open (one owner keeps the budget exact)."""


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)b?\s*$", re.IGNORECASE)


def parse_size(value: str | int) -> int:
    """``"2 GiB"``, ``"500M"``, ``"1.5GB"``, ``1048576`` -> bytes (K/M/G = binary, KB/MB = too:
    a cache budget is about disk blocks, and users write "2G" meaning GiB)."""
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size must be >= 0, got {value}")
        return value
    m = _SIZE_RE.match(value)
    if m is None:
        raise ValueError(f"not a size: {value!r} (try '2 GiB' or '500M')")
    number, unit = float(m.group(1)), m.group(2).lower()
    power = " kmgtp".index(unit) if unit else 0
    return int(number * (1024**power))


class BlockCache(_SyncRecords):
    """A persistent, budgeted, checksummed block store keyed by content key.

    Create with ``await BlockCache.open(directory, budget=..., block_size=...)``. ``hold``/
    ``release`` mark files in use (never evicted while held); ``pin`` exempts a file for good.
    """

    def __init__(self, cache: diskcache.Cache, root: Path, lock_fd: int, *, budget: int,
                 block_size: int, limiter: trio.CapacityLimiter, used: int,
                 read_threads: int = READ_THREADS) -> None:
        self._cache = cache
        self.root = root
        self._lock_fd: int | None = lock_fd
        self.budget = budget
        self.block_size = block_size
        self._limiter = limiter
        # Block reads have threads of their own: a reader's loads neither queue behind a
        # download's writes nor stop at the writers' 4 threads (one cold value file read
        # at a time gives ~500 MiB/s here, 8 in flight ~900: docs in ``READ_THREADS``).
        self._read_limiter = trio.CapacityLimiter(read_threads)
        self._used = used
        self._reserved = 0
        self._held: dict[str, int] = {}
        self._evict_lock = trio.Lock()
        self.evicted_files = 0
        self.corrupt_blocks = 0
        self.rejected_blocks = 0
        self.healed: Healed | None = None  # the database was damaged and rebuilt at open

    # -- lifecycle ------------------------------------------------------------------------

    @classmethod
    async def open(cls, directory: str | os.PathLike[str], *, budget: int | str = DEFAULT_BUDGET,
                   block_size: int = DEFAULT_BLOCK_SIZE,
                   limiter: trio.CapacityLimiter | None = None,
                   read_threads: int = READ_THREADS) -> BlockCache:
        """Open (or create) the cache; O(1) in the number of blocks: nothing is scanned."""
        budget = parse_size(budget)
        if budget < MIN_BUDGET:
            raise ValueError(f"cache budget must be at least {MIN_BUDGET} bytes, got {budget}")
        if not MIN_BLOCK_SIZE <= block_size <= MAX_BLOCK_SIZE:
            raise ValueError(f"block size must be in [{MIN_BLOCK_SIZE}, {MAX_BLOCK_SIZE}]")
        limiter = limiter or trio.CapacityLimiter(4)
        root = Path(directory) / FORMAT

        def _open() -> tuple[diskcache.Cache, int, int, Healed | None]:
            private_dir(root)
            fd = os.open(root / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    raise CacheBusyError(exc.errno, f"cache {root} is in use by another process"
                                         ) from None
                raise
            try:
                (cache, used), healed = open_healing(
                    "block cache", root / "db", lambda: _open_db(root / "db"),
                    check=lambda: sqlite_problem(root / "db" / DB_FILE, DISKCACHE_SCHEMA),
                    strip=_strip_values)
            except BaseException:
                os.close(fd)
                raise
            return cache, fd, used, healed

        cache, fd, used, healed = await trio.to_thread.run_sync(_open, limiter=limiter)
        self = cls(cache, root, fd, budget=budget, block_size=block_size, limiter=limiter,
                   used=used, read_threads=read_threads)
        self.healed = healed
        log.debug("block cache %s opened: %d of %d bytes used", root, used, budget)
        return self

    async def aclose(self) -> None:
        if self._lock_fd is None:
            return
        fd, self._lock_fd = self._lock_fd, None
        cache = self._cache

        def _close() -> None:
            cache.close()
            os.close(fd)

        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(_close, limiter=self._limiter)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._lock_fd is None:
            raise RuntimeError("block cache is closed")
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    # -- accounting -----------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """Bytes available to charged items (the budget minus the fixed reserve)."""
        return self.budget - FIXED_OVERHEAD

    @property
    def used(self) -> int:
        return self._used

    def stats(self) -> dict[str, int]:
        return {"budget": self.budget, "used": self._used, "reserved": self._reserved,
                "held_files": len(self._held), "evicted_files": self.evicted_files,
                "corrupt_blocks": self.corrupt_blocks, "rejected_blocks": self.rejected_blocks,
                "rebuilt": int(self.healed is not None)}

    def hold(self, key: str) -> None:
        """Mark ``key`` in use: eviction skips it until every hold is released."""
        self._held[key] = self._held.get(key, 0) + 1

    def release(self, key: str) -> None:
        n = self._held.get(key, 0) - 1
        if n > 0:
            self._held[key] = n
        else:
            self._held.pop(key, None)

    def held(self, key: str) -> bool:
        return key in self._held

    async def _reserve(self, need: int) -> bool:
        """Reserve ``need`` bytes, evicting first if the budget requires it."""
        if self._used + self._reserved + need <= self.capacity:
            self._reserved += need
            return True
        async with self._evict_lock:
            excess = self._used + self._reserved + need - self.capacity
            if excess > 0:
                freed, files = await self._run(self._sync_evict, excess, frozenset(self._held))
                self._used -= freed
                self.evicted_files += files
            if self._used + self._reserved + need <= self.capacity:
                self._reserved += need
                return True
        return False

    # -- reads ----------------------------------------------------------------------------

    async def info(self, key: str) -> FileInfo | None:
        rec = await self._run(self._cache.get, _fkey(key))
        if rec is None:
            return None
        return FileInfo(key, rec["bs"], rec["size"], rec["ct"], _bits_to_set(rec["bits"]),
                        rec["pin"])

    async def get_block(self, key: str, index: int, block_size: int) -> bytes | None:
        """The verified payload of a block, or None when absent. A block failing any check
        (header, length, CRC, key) is deleted and reported as absent: never served."""
        if self._lock_fd is None:
            raise RuntimeError("block cache is closed")
        data, freed, corrupt = await trio.to_thread.run_sync(
            self._sync_get, key, index, block_size, limiter=self._read_limiter)
        self._used -= freed
        if corrupt:
            self.corrupt_blocks += 1
            log.warning("cache block %s#%d failed verification; dropped", key, index)
        return data

    # -- writes ---------------------------------------------------------------------------

    async def put_block(self, key: str, index: int, data: bytes, *, block_size: int,
                        size: int | None = None, content_type: str | None = None) -> bool:
        """Store a block (admission first). False when the budget cannot make room; the
        caller then serves the bytes from memory only."""
        return await self.put_blocks(key, {index: data}, block_size=block_size, size=size,
                                     content_type=content_type)

    async def put_blocks(self, key: str, blocks: dict[int, bytes], *, block_size: int,
                         size: int | None = None, content_type: str | None = None) -> bool:
        """Store several blocks of one file in one transaction (all or nothing)."""
        for data in blocks.values():
            if not 0 < len(data) <= block_size:
                raise ValueError(f"block of {len(data)} bytes for block size {block_size}")
        if not blocks:
            return True
        need = sum(block_charge(HEADER.size + len(d)) for d in blocks.values()) + \
            _record_charge(1 << max(blocks))
        if not await self._reserve(need):
            self.rejected_blocks += len(blocks)
            return False
        try:
            # Never `self._used += await ...`: that reads the counter before the await and
            # loses the updates of concurrent writers.
            delta = await self._run(self._sync_put, key, blocks, block_size, size,
                                    content_type)
            self._used += delta
        finally:
            self._reserved -= need
        return True

    async def set_meta(self, key: str, *, block_size: int, size: int | None,
                       content_type: str | None) -> None:
        """Remember a file's size and type (learned from a response) even with no block."""
        need = _record_charge(0)
        if not await self._reserve(need):
            return
        try:
            delta = await self._run(self._sync_meta, key, block_size, size, content_type)
            self._used += delta
        finally:
            self._reserved -= need

    async def touch(self, key: str) -> None:
        """Mark ``key`` most recently used."""
        await self._run(self._sync_touch, key)

    async def pin(self, key: str, pinned: bool = True, *, block_size: int | None = None) -> None:
        """Exempt ``key`` from eviction ("keep offline"), or make it evictable again."""
        bs = block_size or self.block_size
        if pinned and await self.info(key) is None:
            await self.set_meta(key, block_size=bs, size=None, content_type=None)
        await self._run(self._sync_pin, key, pinned)

    async def pinned_keys(self) -> list[str]:
        def _scan() -> list[str]:
            out = []
            for k in self._cache.iterkeys():
                if isinstance(k, str) and k.startswith("f:"):
                    rec = self._cache.get(k)
                    if rec is not None and rec["pin"]:
                        out.append(k[2:])
            return out
        return await self._run(_scan)

    # -- maintenance ----------------------------------------------------------------------

    async def disk_usage(self) -> int:
        """Bytes the cache occupies on disk (allocated blocks, like ``du``)."""
        return await self._run(disk_usage, self.root)

    async def check(self) -> int:
        """Repair after a crash: remove value files no row refers to and recompute the usage
        counter from the records. Slow (scans everything); run from a background task."""
        def _check() -> int:
            c = self._cache
            with contextlib.suppress(Exception):
                c.check(fix=True, retry=True)
            total = 0
            with c.transact(retry=True):
                for k in list(c.iterkeys()):
                    if isinstance(k, str) and k.startswith("f:"):
                        rec = c.get(k)
                        if rec is not None:
                            total += rec["bc"] + rec["rc"]
                c.set(_USED, total, retry=True)
            return total
        self._used = await self._run(_check)
        return self._used
