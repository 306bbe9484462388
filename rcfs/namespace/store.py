"""The metadata index on disk: one SQLite database, queried, never loaded whole.

Why SQLite directly (not diskcache, which the first index used): diskcache stores one
pickled value per key, so a mailbox was one blob rewritten whole on every refresh (92 MB
per refresh at 100k messages) and loaded whole into RAM at mount. Here every file of the
tree is one row of ``entry``, keyed ``(ext_id, dir, name)``: a folder listing is one range
scan of the primary key, a lookup one point query, and a refresh writes only the rows that
changed inside one transaction (crash safety from SQLite's WAL, not from rewrites).

Tables (``SCHEMA_VERSION`` in ``PRAGMA user_version``; any other version, or a database
SQLite calls corrupt, is moved aside to ``<name>.corrupt-<UTC time>`` (``rcfs.storeheal``,
as the block cache) and rebuilt, with one warning; ``healed`` says so for status.json):

* ``meta(key, value)``: account-wide values (who am I, recording format, the account
  call-log token, the render key of the stored names), pickled.
* ``mailbox(ext_id, state)``: one small pickled row per mailbox (sync tokens, times, flags).
* ``entry(ext_id, dir, name, src, mtime, size, ckey, data)``: the rendered tree; ``src``
  names the object a row came from (``m:<message id>``, ``c:<call id>``, ``g:<greeting
  id>``, ``cm:<YYYY-MM>`` for a month's ``Calls/`` CSV) so an update replaces exactly
  that object's rows; ``size`` (NULL: unknown until
  downloaded) and ``ckey`` (the content key) are all a listing needs, so ``readdir`` never
  decodes ``data``, the JSON of the content reference, inline bytes and extended
  attributes.
* ``call(ext_id, id, start, data)``: every call-log record (pickled
  ``CallLogRecord``), queryable per mailbox and time range (monthly exports).

Pickles are only ever read back by the rcfs that wrote them: the schema version changes
with the models, and a value that fails to unpickle is dropped and fetched again.

Every method is synchronous; the index runs writers in one worker thread and reads on the
trio thread (WAL: readers never wait for the writer).
"""

from __future__ import annotations

import json
import logging
import pickle
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rcfs.content.source import ContentRef
from rcfs.namespace.entries import Entry
from rcfs.storeheal import Healed, move_aside

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
"""1 was the diskcache snapshot (directory ``metadata/``, removed on first open)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS mailbox (ext_id TEXT PRIMARY KEY, state BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS entry (
    ext_id TEXT NOT NULL, dir TEXT NOT NULL, name TEXT NOT NULL, src TEXT NOT NULL,
    mtime REAL NOT NULL, size INTEGER, ckey TEXT, ctype TEXT, duration REAL, pages INTEGER,
    data TEXT NOT NULL,
    PRIMARY KEY (ext_id, dir, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entry_src ON entry (ext_id, src);
CREATE INDEX IF NOT EXISTS entry_ckey ON entry (ckey) WHERE ckey IS NOT NULL;
CREATE TABLE IF NOT EXISTS call (
    ext_id TEXT NOT NULL, id TEXT NOT NULL, start REAL NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (ext_id, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS call_start ON call (ext_id, start);
"""

BY_SRC = "INDEXED BY entry_src"
"""Without statistics SQLite picks the primary key (a scan of the mailbox) for
``ext_id=? AND src=?``; an update of one message must stay one index probe."""

Row = tuple[str, str, float, int | None, str | None, str | None, float | None, int | None,
            str]
"""(dir, name, mtime, size, content key, content type, duration, pages, data JSON) of one
file."""
Listed = tuple[str, float, int | None, str | None, str | None, float | None, int | None]
"""(name, mtime, size, content key, content type, duration, pages): one file of a listing;
the last three are what a size estimate needs while the exact size is unknown."""


def _number(entry: Entry, key: str) -> float | None:
    try:
        return float(entry.xattrs.get(key) or "")
    except ValueError:
        return None


def row(folder: str, entry: Entry) -> Row:
    ref = entry.content
    if entry.data is not None:
        size: int | None = len(entry.data)
    else:
        size = ref.size if ref is not None else 0
    pages = _number(entry, "user.rc.pages")
    return (folder, entry.name, entry.mtime, size, ref.key if ref is not None else None,
            ref.content_type if ref is not None else None, _number(entry, "user.rc.duration"),
            int(pages) if pages is not None else None, encode(entry))


def encode(entry: Entry) -> str:
    ref = entry.content
    return json.dumps({
        "c": [ref.kind, list(ref.ids), ref.uri, ref.group, ref.size, ref.content_type]
        if ref is not None else None,
        "d": entry.data.decode("utf-8", "surrogateescape") if entry.data is not None else None,
        "x": entry.xattrs, "m": entry.message_id, "l": entry.live,
        **({"s": [list(s) for s in entry.siblings]} if entry.siblings else {}),
    }, separators=(",", ":"), ensure_ascii=False)


def decode(name: str, mtime: float, data: str, ext_id: str, size: int | None = None) -> Entry:
    """An entry from its row; ``size`` is the row's column (a size learned by a download
    after the row was written, see ``Store.set_size``)."""
    raw = json.loads(data)
    c = raw["c"]
    ref = (ContentRef(c[0], tuple(c[1]), c[2], c[3], c[4] if c[4] is not None else size, c[5])
           if c else None)
    inline = raw["d"].encode("utf-8", "surrogateescape") if raw["d"] is not None else None
    return Entry(name, mtime, content=ref, data=inline, xattrs=raw["x"],
                 message_id=raw["m"], extension_id=ext_id, live=bool(raw.get("l")),
                 siblings=tuple((a, f) for a, f in raw.get("s", ())))


@dataclass
class Change:
    """What one write did to the tree: folders whose listing changed (``dirs``: dir ->
    (entries now, newest mtime)) and files that left it (for kernel invalidation)."""

    dirs: dict[str, tuple[int, float]]
    removed: list[tuple[str, str]]
    rows_written: int = 0


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.moved_aside = 0
        self.healed: Healed | None = None
        self._lock = threading.Lock()  # one writer at a time (the write connection)
        self._read: sqlite3.Connection
        self._write: sqlite3.Connection
        self._open()

    # -- opening, versions, corruption ----------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA cache_size=-4000")  # 4 MB page cache per connection
        return conn

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        marker = self._marker()
        try:
            conn = self._connect()
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables and version != SCHEMA_VERSION:
                conn.close()
                self._move_aside(f"schema version {version}, this rcfs reads "
                                 f"{SCHEMA_VERSION}")
                conn = self._connect()
            elif marker.exists():
                conn.close()
                self._move_aside(marker.read_text(errors="replace").strip() or "damaged")
                conn = self._connect()
        except sqlite3.DatabaseError as exc:
            self._move_aside(str(exc))
            conn = self._connect()
        conn.executescript(_SCHEMA)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._write = conn
        self._read = self._connect()
        self._read.execute("BEGIN")

    def _marker(self) -> Path:
        return self.path.with_name(self.path.name + ".damaged")

    def check(self) -> str | None:
        """A full integrity check (``PRAGMA quick_check``: a scan of the whole database,
        too slow to make a remount wait for): run in the background after the mount
        answers. A problem is remembered and the next open moves the store aside."""
        conn = sqlite3.connect(self.path, check_same_thread=False)
        try:
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            verdict = str(exc)
        finally:
            conn.close()
        if verdict == "ok":
            return None
        self._marker().write_text(f"integrity check: {verdict}\n")
        log.warning("metadata index %s failed its integrity check (%s): it is rebuilt at the "
                    "next mount", self.path, verdict)
        return str(verdict)

    def refresh_snapshot(self) -> None:
        """Let the reader see what the writer committed. Readers work in a snapshot (an
        open read transaction) that moves only here, on the trio thread, right before the
        FUSE layer is told what changed: a listing never shows a deletion before the
        kernel's cached entry for it is invalidated."""
        self._read.execute("COMMIT")
        self._read.execute("BEGIN")

    def _move_aside(self, why: str) -> None:
        """The same healing as the block cache's (``rcfs.storeheal``): renamed to
        ``<name>.corrupt-<UTC time>`` (the newest copy kept), rebuilt, one warning."""
        target = move_aside(self.path)
        self._marker().unlink(missing_ok=True)
        self.moved_aside += 1
        self.healed = Healed("metadata index", str(self.path), str(target), why, time.time())
        log.warning("metadata index %s unusable (%s): moved aside to %s, rebuilding from "
                    "RingCentral", self.path, why, target.name)

    def close(self) -> None:
        with self._lock:
            self._write.close()
        self._read.close()

    # -- small values ---------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return dict(_unpickled(self._read.execute("SELECT key, value FROM meta")))

    def set_meta(self, values: dict[str, Any]) -> None:
        with self._lock, self._tx():
            self._write.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                    [(k, pickle.dumps(v)) for k, v in values.items()])

    def mailboxes(self) -> dict[str, Any]:
        return dict(_unpickled(self._read.execute("SELECT ext_id, state FROM mailbox")))

    def save_mailbox(self, ext_id: str, state: Any) -> None:
        with self._lock, self._tx():
            self._put_mailbox(ext_id, state)

    def _put_mailbox(self, ext_id: str, state: Any) -> None:
        self._write.execute("INSERT OR REPLACE INTO mailbox VALUES (?, ?)",
                            (ext_id, pickle.dumps(state)))

    def drop_mailbox(self, ext_id: str) -> None:
        with self._lock, self._tx():
            for table in ("mailbox", "entry", "call"):
                self._write.execute(f"DELETE FROM {table} WHERE ext_id=?", (ext_id,))

    # -- the tree -------------------------------------------------------------------------

    def dir_stats(self, ext_id: str) -> dict[str, tuple[int, float]]:
        """dir -> (files, newest mtime): the skeleton of one mailbox, from the index."""
        return {d: (n, m) for d, n, m in self._read.execute(
            "SELECT dir, count(*), max(mtime) FROM entry WHERE ext_id=? GROUP BY dir",
            (ext_id,))}

    def listing(self, ext_id: str, folder: str) -> list[Listed]:
        return self._read.execute(
            "SELECT name, mtime, size, ckey, ctype, duration, pages FROM entry "
            "WHERE ext_id=? AND dir=? ORDER BY name",
            (ext_id, folder)).fetchall()

    def get(self, ext_id: str, folder: str, name: str) -> tuple[float, str, int | None] | None:
        row = self._read.execute(
            "SELECT mtime, data, size FROM entry WHERE ext_id=? AND dir=? AND name=?",
            (ext_id, folder, name)).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def set_size(self, sizes: dict[str, int]) -> list[tuple[str, str]]:
        """Sizes learned by downloads (content key -> bytes) for files the API gave none:
        persisted, so a listing after a remount shows them at once. Returns the
        (mailbox, folder) pairs whose listings changed."""
        touched: set[tuple[str, str]] = set()
        with self._lock, self._tx():
            for key, size in sizes.items():
                rows = self._write.execute(
                    "SELECT ext_id, dir FROM entry WHERE ckey=? AND size IS NULL",
                    (key,)).fetchall()
                if rows:
                    self._write.execute(
                        "UPDATE entry SET size=? WHERE ckey=? AND size IS NULL", (size, key))
                    touched.update((e, d) for e, d in rows)
        return sorted(touched)

    def apply(self, ext_id: str, upserts: dict[str, list[Row]], removed: Iterable[str],
              state: Any = None, calls: Iterable[tuple[str, float, Any]] = (),
              removed_calls: Iterable[str] = ()) -> Change:
        """Replace the rows of each ``src`` in ``upserts`` (unchanged ones are not written),
        delete the rows of each ``src`` in ``removed``, store call records and the mailbox
        state: one transaction."""
        change = Change({}, [])
        touched: set[str] = set()
        with self._lock, self._tx():
            cur = self._write
            for src, rows in upserts.items():
                old = cur.execute(
                    f"SELECT dir, name, mtime, size, ckey, ctype, duration, pages, data "
                    f"FROM entry {BY_SRC} "
                    "WHERE ext_id=? AND src=?", (ext_id, src)).fetchall()
                rows = _keep_learned_sizes(old, rows)
                if sorted(old, key=_order) == sorted(rows, key=_order):
                    continue
                new_keys = {(r[0], r[1]) for r in rows}
                for r in old:
                    if (r[0], r[1]) not in new_keys:
                        change.removed.append((r[0], r[1]))
                    touched.add(r[0])
                cur.execute("DELETE FROM entry WHERE ext_id=? AND src=?", (ext_id, src))
                cur.executemany(
                    "INSERT OR REPLACE INTO entry VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(ext_id, d, n, src, m, z, k, c, u, g, x)
                     for d, n, m, z, k, c, u, g, x in rows])
                touched.update(r[0] for r in rows)
                change.rows_written += len(rows)
            for src in removed:
                old = cur.execute(f"SELECT dir, name FROM entry {BY_SRC} WHERE ext_id=? AND src=?",
                                  (ext_id, src)).fetchall()
                if old:
                    cur.execute("DELETE FROM entry WHERE ext_id=? AND src=?", (ext_id, src))
                    change.removed.extend((d, n) for d, n in old)
                    touched.update(d for d, _n in old)
            cur.executemany("INSERT OR REPLACE INTO call VALUES (?, ?, ?, ?)",
                            [(ext_id, cid, start, pickle.dumps(record))
                             for cid, start, record in calls])
            cur.executemany("DELETE FROM call WHERE ext_id=? AND id=?",
                            [(ext_id, cid) for cid in removed_calls])
            if state is not None:
                self._put_mailbox(ext_id, state)
            for d in touched:
                n, m = cur.execute("SELECT count(*), max(mtime) FROM entry "
                                   "WHERE ext_id=? AND dir=?", (ext_id, d)).fetchone()
                change.dirs[d] = (n, m or 0.0)
        return change

    def sources(self, ext_id: str, prefix: str) -> set[str]:
        """Every ``src`` of one kind (``m:``, ``c:``, ``g:``) in a mailbox (latest
        committed state; for the writer thread)."""
        with self._lock:
            rows = self._write.execute(
                f"SELECT DISTINCT src FROM entry {BY_SRC} WHERE ext_id=? AND src >= ? "
                "AND src < ?", (ext_id, prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)))
            return {s for (s,) in rows}

    def source_ids(self, ext_id: str, prefix: str) -> set[str]:
        """The ids of every ``src`` of one kind in a mailbox, without the prefix (the
        readers' snapshot; one scan of ``entry_src``)."""
        rows = self._read.execute(
            f"SELECT DISTINCT src FROM entry {BY_SRC} WHERE ext_id=? AND src >= ? "
            "AND src < ?", (ext_id, prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)))
        return {s[len(prefix):] for (s,) in rows}

    def files_of(self, ext_id: str, src: str) -> list[tuple[str, str]]:
        """(dir, name) of the files one message, call or greeting became (point query of
        ``entry_src``), in name order."""
        return self._read.execute(
            f"SELECT dir, name FROM entry {BY_SRC} WHERE ext_id=? AND src=? ORDER BY dir, name",
            (ext_id, src)).fetchall()

    def content_row(self, ext_id: str, src: str) -> tuple[str, float, str] | None:
        """(name, mtime, data JSON) of the first downloadable file of one object (a point
        query on ``entry_src``)."""
        found = self._read.execute(
            f"SELECT name, mtime, data FROM entry {BY_SRC} WHERE ext_id=? AND src=? AND "
            "ckey IS NOT NULL ORDER BY dir, name LIMIT 1", (ext_id, src)).fetchone()
        return None if found is None else (found[0], found[1], found[2])

    def message_bytes(self, types: Iterable[str], start: float, end: float,
                      unknown: int) -> int:
        """Bytes of every message file (all mailboxes) of these types created in [start,
        end], ``unknown`` for a file of unknown size: what an account-wide export of that
        range carries (one scan of the message rows; rare, for the bulk-path choice)."""
        kinds = sorted(set(types))
        if not kinds:
            return 0
        marks = ",".join("?" * len(kinds))
        (total,) = self._read.execute(
            "SELECT COALESCE(SUM(COALESCE(size, ?)), 0) FROM entry WHERE src >= 'm:' AND "
            "src < 'm;' AND mtime >= ? AND mtime <= ? AND "
            f"json_extract(data, '$.x.\"user.rc.type\"') IN ({marks})",
            (unknown, start, end, *kinds)).fetchone()
        return int(total)

    def calls(self, ext_id: str, start: float | None = None,
              end: float | None = None) -> list[Any]:
        """Call-log records (``CallLogRecord``) of a mailbox in [start, end), oldest first:
        a month's calls are one range scan of ``call_start``."""
        rows = self._read.execute(
            "SELECT id, data FROM call WHERE ext_id=? AND start >= ? AND start < ? "
            "ORDER BY start", (ext_id, start if start is not None else -1e18,
                               end if end is not None else 1e18))
        return [record for _id, record in _unpickled(rows)]

    def _tx(self) -> _Transaction:
        return _Transaction(self._write)


def _keep_learned_sizes(old: list[Row], rows: list[Row]) -> list[Row]:
    """A size a download learned (``set_size``) stays when the API sends the same content
    again without one: a re-sync of a message or a call must not undo it (a listing after
    a remount would show the estimate until the content cache is probed)."""
    learned = {r[4]: r[3] for r in old if r[3] is not None and r[4] is not None}
    if not learned:
        return rows
    return [(*r[:3], learned[r[4]], *r[4:]) if r[3] is None and r[4] in learned else r
            for r in rows]


def _order(r: Row) -> tuple[str, str]:
    return (r[0], r[1])


def _unpickled(rows: Iterable[tuple[str, bytes]]) -> Iterator[tuple[str, Any]]:
    for key, blob in rows:
        try:
            yield key, pickle.loads(blob)
        except Exception as exc:  # an older model: fetched again instead
            log.info("metadata index: dropping unreadable value %s (%s)", key, exc)


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
