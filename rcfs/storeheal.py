"""Self-healing local stores: a SQLite store rcfs can rebuild is moved aside, never fatal.

The block cache and the metadata index hold nothing that RingCentral cannot give again, so a
database that SQLite reports damaged (a crash on a disk that lies about fsync, a truncated
copy, a flipped bit) or whose schema this version does not know must not stop the mount. The
store is renamed to ``<name>.corrupt-<UTC time>`` (kept for a bug report, older copies
pruned), a new one is created in its place, and the caller counts the event for
``status.json``. Only the first ``KEEP`` moved-aside copies survive: a cache can be large.

Usage (blocking code, run it in a worker thread)::

    thing, healed = open_healing("block cache", db_dir, lambda: open_store(db_dir),
                                 check=lambda: sqlite_problem(db_dir / "cache.db", schema))
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

__all__ = ["KEEP", "Healed", "StoreDamagedError", "move_aside", "open_healing",
           "sqlite_problem"]

KEEP = 1
"""Moved-aside copies kept per store (the newest): enough to diagnose, bounded on disk."""

ASIDE_MARK = ".corrupt-"

T = TypeVar("T")


class StoreDamagedError(Exception):
    """The store is unusable (damaged, or a schema this version does not know)."""


@dataclass(frozen=True)
class Healed:
    """One store that was moved aside and rebuilt (shown in ``status.json``)."""

    store: str
    path: str
    moved_to: str
    reason: str
    at: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sqlite_problem(db: Path, schema: Mapping[str, set[str]] | None = None) -> str | None:
    """Why the SQLite file ``db`` cannot be trusted, or None (also None when it is absent
    or empty: a new store is created there).

    ``PRAGMA quick_check`` walks every page (a truncated or bit-flipped b-tree is caught here,
    at open, rather than as an error in the middle of a read). ``schema`` maps each table the
    store needs to the columns it reads; an existing database lacking one is "unknown schema".
    """
    try:
        if db.stat().st_size == 0:
            return None
    except FileNotFoundError:
        return None
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as exc:
        return f"cannot open: {exc}"
    try:
        rows = con.execute("PRAGMA quick_check").fetchall()
        verdict = "; ".join(str(r[0]) for r in rows[:3])
        if verdict != "ok":
            return f"integrity check failed: {verdict}"
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables or schema is None:
            return None  # a new, empty database
        for table, columns in schema.items():
            if table not in tables:
                return f"unknown schema (no table {table})"
            have = {r[1] for r in con.execute(f"PRAGMA table_info('{table}')")}
            if not columns <= have:
                return f"unknown schema (table {table} lacks {', '.join(sorted(columns - have))})"
        return None
    except sqlite3.Error as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        con.close()


def move_aside(path: Path, *, keep: int = KEEP, strip: Callable[[Path], None] | None = None
               ) -> Path:
    """Rename ``path`` (file or folder) to ``<name>.corrupt-<UTC time>`` beside it and prune
    older copies down to ``keep``. ``strip`` may then shrink the copy (drop bulk that has no
    diagnostic value). Returns the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}{ASIDE_MARK}{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}{ASIDE_MARK}{stamp}-{n}")
    os.rename(path, target)
    # SQLite side files belong with their database.
    for side in ("-wal", "-shm", "-journal"):
        extra = path.with_name(path.name + side)
        if extra.exists():
            os.rename(extra, target.with_name(target.name + side))
    if strip is not None:
        with contextlib.suppress(OSError):
            strip(target)
    _prune(path, keep)
    return target


def _prune(path: Path, keep: int) -> None:
    """Remove all but the newest ``keep`` moved-aside copies of ``path``."""
    prefix = path.name + ASIDE_MARK
    copies = sorted((p for p in path.parent.iterdir() if p.name.startswith(prefix)
                     and not p.name.endswith(("-wal", "-shm", "-journal"))),
                    key=lambda p: p.name, reverse=True)
    for old in copies[keep:]:
        for p in (old, *(old.with_name(old.name + s) for s in ("-wal", "-shm", "-journal"))):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()


def open_healing(store: str, path: Path, opener: Callable[[], T], *,
                 check: Callable[[], str | None] | None = None,
                 strip: Callable[[Path], None] | None = None) -> tuple[T, Healed | None]:
    """Open a rebuildable store, moving it aside once if it is damaged.

    ``check`` runs first (e.g. ``sqlite_problem``); ``opener`` then opens or creates the
    store, and a ``sqlite3.DatabaseError`` or ``StoreDamagedError`` from it also counts as
    damage. The second open (on a fresh path) is not guarded: if that fails, the disk or the
    configuration is at fault and the caller's error is the right one. Logs one warning.
    """
    try:
        reason = check() if check is not None else None
        if reason is None:
            return opener(), None
    except (sqlite3.DatabaseError, StoreDamagedError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
    moved = move_aside(path, strip=strip)
    log.warning("%s %s was damaged (%s); moved aside to %s and rebuilt (its contents are "
                "fetched again as needed)", store, path, reason, moved.name)
    return opener(), Healed(store, str(path), str(moved), reason, time.time())
