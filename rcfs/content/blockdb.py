"""The block cache's database on disk: diskcache's settings, value files in 256 private
folders (``_FlatDisk``, written from ``_Parts`` without joining header and payload), and
opening the database (``_open_db``, checked against ``DISKCACHE_SCHEMA`` and healed by
``rcfs.storeheal``), plus the footprint helpers the budget is measured with."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import diskcache

from rcfs.content.blocklayout import _MIN_FILE_SIZE, _USED
from rcfs.private import DIR_MODE, FILE_MODE, private_dir

_SETTINGS: dict[str, Any] = {
    "eviction_policy": "none",  # we evict ourselves (pins, held files, a hard budget)
    "size_limit": 1 << 62,
    "cull_limit": 0,
    "statistics": 0,
    "sqlite_wal_autocheckpoint": 128,  # pages: the WAL stays ~0.5 MiB
    "sqlite_journal_size_limit": 1 << 20,  # truncate the WAL back after checkpoints
}

_SETTINGS["disk_min_file_size"] = _MIN_FILE_SIZE


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
