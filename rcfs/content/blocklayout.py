"""How the block cache lays out what it stores, and what each item costs against the budget.

Keys in the one diskcache ``Cache`` (``blockcache`` has the whole picture):

``b:<bs>:<key>:<index>``  a block: 36-byte header (``HEADER``: magic, block size, index,
                          length, checksum, digest of the key) + payload. The magic names
                          the checksum (``CHECKSUMS``): CRC-32C for blocks written where
                          google-crc32c has its compiled form, zlib's CRC-32 otherwise and
                          for blocks of earlier versions, which stay readable.
``f:<key>``               the file's record (``FileInfo`` is what callers see of it).
``lru-NNN`` / ``meta-NNN`` the prefix queues of files with blocks and of size-only records.
``s:used``                bytes charged, the sum of every stored item's charge.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import google_crc32c

MAGIC = b"RCB1"  # checksum: zlib's CRC-32
MAGIC_C = b"RCB2"  # checksum: CRC-32C
HEADER = struct.Struct("<4sIIII16s")  # magic, block size, index, length, checksum, key digest

CHECKSUMS: dict[bytes, Callable[[bytes], int]] = {MAGIC: zlib.crc32, MAGIC_C: google_crc32c.value}
"""The checksum each block magic names. CRC-32C runs where a block is written and read,
in the writer and loader threads beside the trio thread on a machine with two cores:
google-crc32c's compiled form (SSE4.2) checks 1 MiB at ~26 GB/s here against zlib's ~4,
which made cold reads with their cache writes ~30% faster (median 613 against 466 MiB/s,
3 paired runs of 4 files; README, Benchmarks)."""
WRITE_MAGIC = MAGIC_C if google_crc32c.implementation == "c" else MAGIC
"""Blocks are written with CRC-32C only where it is fast: the pure-Python fallback of
google-crc32c (no wheel for the platform) would be far slower than zlib."""

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

_MIN_FILE_SIZE = 1 << 15  # diskcache's disk_min_file_size: smaller values live in SQLite

_Q_BLOCKS = "lru"
_Q_META = "meta"
_USED = "s:used"


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
