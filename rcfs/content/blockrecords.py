"""The block cache's transactions (``_SyncRecords``, the base of ``BlockCache``): they run
in worker threads and touch only diskcache and their arguments, never the trio side's
counters; each returns the change in charged bytes for the caller to apply.

A block, its file's record, the LRU queue entry and the usage counter change in one SQLite
transaction; eviction takes whole files from the front of the LRU queue.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

import diskcache

from rcfs.content.blockdb import _Parts
from rcfs.content.blocklayout import (
    _MIN_FILE_SIZE,
    _Q_BLOCKS,
    _Q_META,
    _USED,
    CHECKSUMS,
    HEADER,
    WAL_LIMIT,
    WRITE_MAGIC,
    _bits_to_set,
    _bkey,
    _charge_of,
    _digest,
    _fkey,
    _record_charge,
)

log = logging.getLogger(__name__)


class _SyncRecords:
    """Blocks, records and queues in one diskcache ``Cache``, from a worker thread."""

    _cache: diskcache.Cache
    root: Path

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

    def _sync_get(self, key: str, index: int, block_size: int) -> tuple[bytes | None, int, bool]:
        # As a file: the payload is read straight into its own bytes object. Reading the
        # whole value and slicing the header off cost one more 1 MiB copy per block, made
        # while holding the GIL that the FUSE thread and the other loads wait for.
        handle = self._cache.get(_bkey(block_size, key, index), read=True)
        if handle is None:
            # Absent although asked for: clear the bit if the record still claims it.
            return None, self._sync_drop_block(key, index, block_size), False
        if isinstance(handle, bytes):  # a small block, stored inline in SQLite
            header, payload = handle[:HEADER.size], handle[HEADER.size:]
        else:
            with handle:
                _no_atime(handle.fileno())
                header = handle.read(HEADER.size)
                payload = handle.read(block_size + 1)  # longer fails the length check
                _drop_pages(handle.fileno())
        if len(header) == HEADER.size:
            magic, bs, idx, length, crc, digest = HEADER.unpack(header)
            checksum = CHECKSUMS.get(magic)
            if (checksum is not None and bs == block_size and idx == index
                    and length == len(payload) and 0 < length <= block_size
                    and digest == _digest(key) and checksum(payload) == crc):
                return payload, 0, False
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
                header = HEADER.pack(WRITE_MAGIC, block_size, index, len(data),
                                     CHECKSUMS[WRITE_MAGIC](data), digest)
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

    def _sync_touch(self, key: str) -> None:
        c = self._cache
        with c.transact(retry=True):
            rec = c.get(_fkey(key))
            if rec is None or rec["pin"]:
                return
            self._requeue(rec, key)
            c.set(_fkey(key), rec, retry=True)

    def _sync_pin(self, key: str, pinned: bool) -> None:
        c = self._cache
        with c.transact(retry=True):
            rec = c.get(_fkey(key))
            if rec is None or rec["pin"] == pinned:
                return
            rec["pin"] = pinned
            self._requeue(rec, key)
            c.set(_fkey(key), rec, retry=True)

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


def _drop_pages(fd: int) -> None:
    """A block just read is in RAM twice: in the bytes the reader keeps (and then in the
    mount's page cache) and in the value file's page cache. The second copy goes back to
    the kernel at once, leaving that memory to the copies in use: after a remount with the
    page cache dropped, 64 MiB files read through rcfs at a median of 866 MiB/s with it and
    760 without (six paired runs of four files, README: Benchmarks). Dirty pages (a block
    read right after it was written) are only sent on their way to the disk."""
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass


def _no_atime(fd: int) -> None:
    """Reading a block must not write: the first read of a value file after it was
    written updates its access time (relatime), an inode write for every block of a
    reread. O_NOATIME needs the file's owner, which the mount is; where it is refused the
    read goes on as before."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NOATIME)
    except OSError:
        pass
