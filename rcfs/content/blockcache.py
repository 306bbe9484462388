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
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import re
import sqlite3
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import diskcache
import trio

from rcfs.private import DIR_MODE, FILE_MODE, private_dir
from rcfs.storeheal import Healed, open_healing, sqlite_problem

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_BUDGET",
    "BlockCache",
    "CacheBusyError",
    "FileInfo",
    "parse_size",
]

FORMAT = "v1"
MAGIC = b"RCB1"
HEADER = struct.Struct("<4sIIII16s")  # magic, block size, index, payload length, crc32, key digest

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

# -- on-disk accounting ---------------------------------------------------------------------
# Charges are deliberately pessimistic so the real footprint (``du``) stays under the budget:
# a value file costs whole 4 KiB filesystem blocks, every row costs its SQLite record and
# index entries plus a directory entry, and a fixed reserve covers the database's base size,
# the WAL (bounded by ``_checkpoint``), the shared-memory file and 256 value directories.
PAGE = 4096
ENTRY_OVERHEAD = 512
RECORD_CHARGE = 2048
FIXED_OVERHEAD = 3 << 20
WAL_LIMIT = 1 << 20
"""Checkpoint-and-truncate the WAL past this: with readers in other threads SQLite's passive
auto-checkpoints cannot reset it, and it grows (2.3 MiB seen with 6 concurrent writers)."""
MIN_BUDGET = FIXED_OVERHEAD + (4 << 20)

_SETTINGS: dict[str, Any] = {
    "eviction_policy": "none",  # we evict ourselves (pins, held files, a hard budget)
    "size_limit": 1 << 62,
    "cull_limit": 0,
    "statistics": 0,
    "sqlite_wal_autocheckpoint": 128,  # pages: the WAL stays ~0.5 MiB
    "sqlite_journal_size_limit": 1 << 20,  # truncate the WAL back after checkpoints
}

_MIN_FILE_SIZE = 1 << 15  # diskcache's disk_min_file_size: smaller values live in SQLite
_SETTINGS["disk_min_file_size"] = _MIN_FILE_SIZE

_Q_BLOCKS = "lru"
_Q_META = "meta"
_USED = "s:used"

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


def _round_up(n: int, unit: int) -> int:
    return -(-n // unit) * unit


def block_charge(stored_len: int) -> int:
    """Bytes a stored value of ``stored_len`` bytes is charged against the budget: whole
    filesystem blocks for a value file, the blob plus 1/8 page slack inside SQLite."""
    if stored_len >= _MIN_FILE_SIZE:
        return _round_up(stored_len, PAGE) + ENTRY_OVERHEAD
    return _round_up(stored_len + stored_len // 8 + ENTRY_OVERHEAD, 64)


def _digest(key: str) -> bytes:
    return hashlib.blake2b(key.encode(), digest_size=16).digest()


def _bkey(block_size: int, key: str, index: int) -> str:
    return f"b:{block_size}:{key}:{index}"


def _fkey(key: str) -> str:
    return f"f:{key}"


@dataclass(frozen=True)
class FileInfo:
    """What the cache knows about one content object."""

    key: str
    block_size: int
    size: int | None
    content_type: str | None
    present: frozenset[int]
    pinned: bool

    @property
    def nblocks(self) -> int | None:
        return None if self.size is None else -(-self.size // self.block_size)

    @property
    def complete(self) -> bool:
        n = self.nblocks
        return n is not None and all(i in self.present for i in range(n))


def _bits_to_set(bits: int) -> frozenset[int]:
    out = []
    i = 0
    while bits:
        if bits & 1:
            out.append(i)
        bits >>= 1
        i += 1
    return frozenset(out)


def _charge_of(rec: dict[str, Any], index: int) -> int:
    """The charge of a stored block: every block is full but the short ones listed."""
    return block_charge(HEADER.size + rec["short"].get(index, rec["bs"]))


def _record_charge(bits: int) -> int:
    return RECORD_CHARGE + _round_up(bits.bit_length() // 8 + 1, 64)


class _Parts:
    """A read-only file-like over header + payload without joining them (no 1 MiB copy)."""

    def __init__(self, *parts: bytes) -> None:
        self._parts = [memoryview(p) for p in parts if p]

    def read(self, n: int = -1) -> memoryview | bytes:
        if not self._parts:
            return b""
        part = self._parts[0]
        if n < 0 or len(part) <= n:
            self._parts.pop(0)
            return part
        self._parts[0] = part[n:]
        return part[:n]


class _FlatDisk(diskcache.Disk):  # type: ignore[misc]
    """Value files in 256 directories (diskcache's default makes up to 65,536, each a 4 KiB
    inode that nobody charges), named ``ab/<hex>.val``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._made_dirs: set[str] = set()  # value folders known to exist

    def filename(self, key: Any = diskcache.UNKNOWN, value: Any = diskcache.UNKNOWN
                 ) -> tuple[str, str]:
        name = os.urandom(16).hex()
        filename = os.path.join(name[:2], name[2:] + ".val")
        return filename, os.path.join(self._directory, filename)

    def _write(self, full_path: str, iterator: Any, mode: str, encoding: str | None = None
               ) -> int | None:
        """diskcache's writer, private: folders 0700 and value files 0600 whatever the
        umask (cached voicemails are nobody else's business)."""
        full_dir = os.path.dirname(full_path)
        made = self._made_dirs
        for count in range(1, 11):
            # One mkdir per folder and process (a failed open tries it again): a mkdir that
            # fails with EEXIST for every block cost as much as creating the file.
            if count > 1 or full_dir not in made:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(full_dir, DIR_MODE)
                made.add(full_dir)
            try:
                writer = open(full_path, mode, encoding=encoding,  # noqa: SIM115
                              opener=lambda p, flags: os.open(p, flags, FILE_MODE))
            except OSError:
                if count == 10:
                    raise
                continue
            with writer:
                size = 0
                for chunk in iterator:
                    size += len(chunk)
                    writer.write(chunk)
                return size
        return None

    def remove(self, file_path: str) -> None:
        # Keep the directories (the default removes empty ones, then recreates them).
        with contextlib.suppress(OSError):
            os.remove(os.path.join(self._directory, file_path))


class BlockCache:
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

    def _checkpoint(self) -> None:
        """Keep the WAL small (in the writer's thread, after its transaction)."""
        wal = self.root / "db" / "cache.db-wal"
        try:
            if wal.stat().st_size <= WAL_LIMIT:
                return
        except FileNotFoundError:
            return
        con = sqlite3.connect(self.root / "db" / "cache.db", timeout=10)
        try:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:  # busy: the next write tries again
            log.debug("WAL checkpoint deferred: %s", exc)
        finally:
            con.close()

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

    def _sync_get(self, key: str, index: int, block_size: int) -> tuple[bytes | None, int, bool]:
        value = self._cache.get(_bkey(block_size, key, index))
        if value is None:
            # Absent although asked for: clear the bit if the record still claims it.
            return None, self._sync_drop_block(key, index, block_size), False
        if isinstance(value, bytes) and len(value) >= HEADER.size:
            magic, bs, idx, length, crc, digest = HEADER.unpack_from(value)
            payload = memoryview(value)[HEADER.size:]
            if (magic == MAGIC and bs == block_size and idx == index
                    and length == len(payload) and 0 < length <= block_size
                    and digest == _digest(key) and zlib.crc32(payload) == crc):
                return bytes(payload), 0, False
        return None, self._sync_drop_block(key, index, block_size), True

    def _sync_drop_block(self, key: str, index: int, block_size: int) -> int:
        """Delete one block and clear its bit; returns the bytes uncharged."""
        c = self._cache
        with c.transact(retry=True):
            c.delete(_bkey(block_size, key, index), retry=True)
            rec = c.get(_fkey(key))
            if rec is None or rec["bs"] != block_size or not rec["bits"] >> index & 1:
                return 0
            freed = _charge_of(rec, index)
            rec["bits"] &= ~(1 << index)
            rec["short"].pop(index, None)
            rec["bc"] -= freed
            c.set(_fkey(key), rec, retry=True)
            c.incr(_USED, -freed, default=0, retry=True)
        return freed

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

    def _new_record(self, block_size: int) -> dict[str, Any]:
        return {"bs": block_size, "size": None, "ct": None, "bits": 0, "pin": False,
                "q": None, "bc": 0, "rc": _record_charge(0), "short": {}}

    def _requeue(self, rec: dict[str, Any], key: str) -> None:
        """Move the file to the back (most recent end) of its queue; pinned files have none."""
        c = self._cache
        if rec["q"] is not None:
            c.delete(rec["q"], retry=True)
            rec["q"] = None
        if not rec["pin"]:
            rec["q"] = c.push(key, prefix=_Q_BLOCKS if rec["bits"] else _Q_META, retry=True)

    def _sync_put(self, key: str, blocks: dict[int, bytes], block_size: int,
                  size: int | None, content_type: str | None) -> int:
        """Returns the change in charged bytes (already applied to ``s:used``)."""
        c = self._cache
        digest = _digest(key)
        with c.transact(retry=True):
            rec = c.get(_fkey(key))
            dropped = 0
            pinned = False
            if rec is not None and rec["bs"] != block_size:
                pinned = rec["pin"]
                dropped = self._sync_drop_file(key, rec)  # stored with another block size
                rec = None
            delta: int = 0
            if rec is None:
                rec = self._new_record(block_size)
                rec["pin"] = pinned
                delta += rec["rc"]
            was_meta = rec["bits"] == 0
            for index, data in blocks.items():
                if rec["bits"] >> index & 1:
                    continue  # already stored
                header = HEADER.pack(MAGIC, block_size, index, len(data), zlib.crc32(data),
                                     digest)
                if HEADER.size + len(data) < _MIN_FILE_SIZE:  # inline in SQLite
                    c.set(_bkey(block_size, key, index), header + data, retry=True)
                else:
                    # As a file-like: diskcache then writes what read() returns, while a large
                    # bytes value is iterated line by line (hundreds of writes per block).
                    c.set(_bkey(block_size, key, index), _Parts(header, data), read=True,
                          retry=True)
                rec["bits"] |= 1 << index
                if len(data) < block_size:
                    rec["short"][index] = len(data)
                charge = _charge_of(rec, index)
                rec["bc"] += charge
                delta += charge
            rc = _record_charge(rec["bits"])
            delta += rc - rec["rc"]
            rec["rc"] = rc
            if size is not None:
                rec["size"] = size
            if content_type is not None:
                rec["ct"] = content_type
            if rec["q"] is None or (was_meta and rec["bits"]):
                self._requeue(rec, key)
            c.set(_fkey(key), rec, retry=True)
            c.incr(_USED, delta, default=0, retry=True)
        self._checkpoint()
        return delta - dropped

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

    def _sync_meta(self, key: str, block_size: int, size: int | None,
                   content_type: str | None) -> int:
        c = self._cache
        with c.transact(retry=True):
            rec = c.get(_fkey(key))
            delta = 0
            if rec is None:
                rec = self._new_record(block_size)
                delta = rec["rc"]
                self._requeue(rec, key)
            elif (rec["size"], rec["ct"]) == (size, content_type) or (
                    size is None and content_type is None):
                return 0
            if size is not None:
                rec["size"] = size
            if content_type is not None:
                rec["ct"] = content_type
            c.set(_fkey(key), rec, retry=True)
            if delta:
                c.incr(_USED, delta, default=0, retry=True)
        return delta

    async def touch(self, key: str) -> None:
        """Mark ``key`` most recently used."""
        await self._run(self._sync_touch, key)

    def _sync_touch(self, key: str) -> None:
        c = self._cache
        with c.transact(retry=True):
            rec = c.get(_fkey(key))
            if rec is None or rec["pin"]:
                return
            self._requeue(rec, key)
            c.set(_fkey(key), rec, retry=True)

    async def pin(self, key: str, pinned: bool = True, *, block_size: int | None = None) -> None:
        """Exempt ``key`` from eviction ("keep offline"), or make it evictable again."""
        bs = block_size or self.block_size
        if pinned and await self.info(key) is None:
            await self.set_meta(key, block_size=bs, size=None, content_type=None)
        await self._run(self._sync_pin, key, pinned)

    def _sync_pin(self, key: str, pinned: bool) -> None:
        c = self._cache
        with c.transact(retry=True):
            rec = c.get(_fkey(key))
            if rec is None or rec["pin"] == pinned:
                return
            rec["pin"] = pinned
            self._requeue(rec, key)
            c.set(_fkey(key), rec, retry=True)

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

    # -- eviction -------------------------------------------------------------------------

    def _sync_drop_file(self, key: str, rec: dict[str, Any], *, keep_meta: bool = False) -> int:
        """Delete a file's blocks (and its record unless ``keep_meta``); inside a transaction.
        Returns the bytes uncharged."""
        c = self._cache
        for index in _bits_to_set(rec["bits"]):
            c.delete(_bkey(rec["bs"], key, index), retry=True)
        freed: int = rec["bc"]
        if rec["q"] is not None:
            c.delete(rec["q"], retry=True)
            rec["q"] = None
        if keep_meta:
            rec["bits"], rec["short"], rec["bc"] = 0, {}, 0
            rc = _record_charge(0)
            freed += rec["rc"] - rc
            rec["rc"] = rc
            self._requeue(rec, key)
            c.set(_fkey(key), rec, retry=True)
        else:
            freed += rec["rc"]
            c.delete(_fkey(key), retry=True)
        c.incr(_USED, -freed, default=0, retry=True)
        return freed

    def _sync_evict(self, excess: int, held: frozenset[str]) -> tuple[int, int]:
        """Free at least ``excess`` bytes: whole files from the front of the LRU queue (their
        size/type record survives in the meta queue), then size-only records. Held files are
        moved to the back (they are in use, so recently used)."""
        c = self._cache
        freed = files = 0
        for prefix, keep_meta in ((_Q_BLOCKS, True), (_Q_META, False)):
            seen: set[str] = set()
            while freed < excess:
                with c.transact(retry=True):
                    qkey, key = c.peek(prefix=prefix, side="front", retry=True)
                    if qkey is None:
                        break
                    rec = c.get(_fkey(key))
                    if rec is None or rec["q"] != qkey:
                        c.delete(qkey, retry=True)  # stale queue entry
                        continue
                    if key in held:
                        if key in seen:
                            break  # every remaining file is held
                        seen.add(key)
                        self._requeue(rec, key)
                        c.set(_fkey(key), rec, retry=True)
                        continue
                    freed += self._sync_drop_file(key, rec, keep_meta=keep_meta)
                    files += prefix == _Q_BLOCKS
        self._checkpoint()
        return freed, files

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


DB_FILE = "cache.db"
DISKCACHE_SCHEMA: dict[str, set[str]] = {
    "Settings": {"key", "value"},
    "Cache": {"rowid", "key", "raw", "store_time", "expire_time", "access_time",
              "access_count", "tag", "size", "mode", "filename", "value"},
}
"""The tables and columns diskcache reads (a database without them is not ours to use)."""


def _open_db(db: Path) -> tuple[diskcache.Cache, int]:
    """Open diskcache in ``db`` with a private database file (SQLite gives its WAL and
    shared-memory files the database file's mode), and read the usage counter."""
    private_dir(db)
    os.close(os.open(db / DB_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE))
    cache = diskcache.Cache(str(db), disk=_FlatDisk, **_SETTINGS)
    try:
        used = int(cache.get(_USED, 0))
    except BaseException:
        cache.close()
        raise
    return cache, used


def _strip_values(aside: Path) -> None:
    """A moved-aside cache keeps its database (for a bug report), not its block files."""
    for sub in aside.iterdir():
        if sub.is_dir() and not sub.is_symlink():
            for val in sub.glob("*.val"):
                val.unlink()
            with contextlib.suppress(OSError):
                sub.rmdir()


def disk_usage(path: Path) -> int:
    """Allocated bytes under ``path`` (st_blocks, so sparse and rounded like ``du``)."""
    total = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in [*names, "."]:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def iter_value_files(path: Path) -> list[Path]:
    """The block value files under a cache root (tests corrupt them)."""
    return sorted(path.rglob("*.val"))

