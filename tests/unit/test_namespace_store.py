"""The on-disk metadata index (rcfs/namespace/store.py, tree.py): rows written only when
they change, folder listings from one query, versions and corruption handled by moving the
database aside and rebuilding (issues 11 and 12)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from rcfs.api.models import Extension
from rcfs.content.source import ContentRef
from rcfs.namespace import layout
from rcfs.namespace.entries import Entry
from rcfs.namespace.mailbox import Mailbox, files_per_area, skeleton
from rcfs.namespace.store import SCHEMA_VERSION, Row, Store, row
from rcfs.namespace.tree import TreeView

EXT = "400"


def _row(folder: str, name: str, mtime: float, text: str = "hi") -> Row:
    entry = Entry(name, mtime, data=text.encode(), xattrs={"user.rc.id": name},
                  message_id=name)
    return row(folder, entry)


def _file(folder: str, name: str, mtime: float) -> Row:
    ref = ContentRef("msg", (name, "1"), "https://media/x", "Medium", 12, "audio/mpeg")
    return row(folder, Entry(name, mtime, content=ref))


def test_apply_writes_only_what_changed_and_reports_removals(tmp_path: Path) -> None:
    store = Store(tmp_path / "m.sqlite3")
    first = store.apply(EXT, {"m:1": [_row("Texts/Bob", "a.txt", 10.0)],
                              "m:2": [_file("Voicemail/2026-11", "b.mp3", 20.0)]}, [])
    assert first.rows_written == 2
    assert first.dirs == {"Texts/Bob": (1, 10.0), "Voicemail/2026-11": (1, 20.0)}
    same = store.apply(EXT, {"m:1": [_row("Texts/Bob", "a.txt", 10.0)]}, [])
    assert same.rows_written == 0 and same.dirs == {} and same.removed == []
    renamed = store.apply(EXT, {"m:1": [_row("Texts/Bob", "a2.txt", 11.0)]}, [])
    assert renamed.removed == [("Texts/Bob", "a.txt")]
    gone = store.apply(EXT, {}, ["m:2"])
    assert gone.removed == [("Voicemail/2026-11", "b.mp3")]
    assert gone.dirs == {"Voicemail/2026-11": (0, 0.0)}
    assert store.sources(EXT, "m:") == {"m:1"}
    assert store.dir_stats(EXT) == {"Texts/Bob": (1, 11.0)}
    store.close()


def test_tree_view_lists_a_folder_with_one_query_and_drops_changed_folders(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "m.sqlite3")
    rows = [_file("Fax/2026-11", f"{i:04d}.pdf", float(i)) for i in range(1000)]
    store.apply(EXT, {f"m:{i}": [r] for i, r in enumerate(rows)}, [])
    box = Mailbox(Extension(EXT, "101", "Alice", "User", "Enabled", False))
    box.set_dirs(store.dir_stats(EXT))
    view = TreeView(store, max_cached=1500)
    assert [f.name for f in view.listing(box, ()).folders] == sorted(
        ["Voicemail", "Fax", "Texts", "Recordings", "Greetings", "Calls"])
    month = view.node(box, "101 Alice", ("Fax", "2026-11"))
    assert month is not None and month.is_dir and month.mtime == 999.0
    before = view.queries
    listing = view.listing(box, ("Fax", "2026-11"))
    assert len(listing.files) == 1000 and view.queries == before + 1
    assert listing.files[42] == ("0042.pdf", 42.0, 12, "msg/0042.pdf/1", "audio/mpeg", None,
                                 None)
    view.listing(box, ("Fax", "2026-11"))
    assert view.queries == before + 1  # cached
    found = view.node(box, "101 Alice", ("Fax", "2026-11", "0042.pdf"))
    assert found is not None and found.content is not None and found.content.size == 12
    assert view.node(box, "101 Alice", ("Fax", "2026-12", "x.pdf")) is None
    view.invalidate(EXT, ["Fax/2026-11"])
    view.listing(box, ("Fax", "2026-11"))
    assert view.queries == before + 3
    store.close()


def test_files_per_area_counts_each_folder_under_its_area_once() -> None:
    dirs = {"Voicemail": (2, 1.0), "Voicemail/2026-10": (3, 5.0), "Fax/2026/11": (4, 2.0),
            "Faxes/x": (9, 1.0), "Recordings/2026-11-02": (1, 3.0)}
    counts = files_per_area(dirs)
    assert counts == {area: sum(n for d, (n, _m) in dirs.items()
                                if d == area or d.startswith(area + "/"))
                      for area in layout.AREAS}
    assert counts["Voicemail"] == 5 and counts["Fax"] == 4 and counts["Recordings"] == 1
    box = Mailbox(Extension(EXT, "101", "Alice", "User", "Enabled", False))
    assert box.area_files == dict.fromkeys(layout.AREAS, 0)
    box.set_dirs(dirs)
    assert box.area_files == counts  # kept current with the folders


def test_skeleton_has_every_area_and_newest_mtimes() -> None:
    tree = skeleton({"Voicemail/2026-10": (3, 5.0), "Voicemail/2026-11": (1, 9.0)})
    assert tree[""]["Voicemail"] == 9.0 and tree[""]["Recordings"] == 0.0
    assert tree["Voicemail"] == {"2026-10": 5.0, "2026-11": 9.0}
    assert tree["Greetings"] == {}


def test_an_unknown_schema_version_is_moved_aside_and_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    store = Store(path)
    store.apply(EXT, {"m:1": [_row("Texts/Bob", "a.txt", 1.0)]}, [])
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    again = Store(path)
    assert again.moved_aside == 1
    assert again.dir_stats(EXT) == {}  # rebuilt empty, the old rows never misread
    assert len(list(tmp_path.glob("m.sqlite3.corrupt-*"))) == 1
    again.close()


def test_a_corrupt_database_is_moved_aside_with_one_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "m.sqlite3"
    path.write_bytes(b"this is not an SQLite database" * 200)
    with caplog.at_level(logging.WARNING, logger="rcfs.namespace.store"):
        store = Store(path)
    assert store.moved_aside == 1
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
    store.apply(EXT, {"m:1": [_row("Texts/Bob", "a.txt", 1.0)]}, [])
    assert store.dir_stats(EXT) == {"Texts/Bob": (1, 1.0)}
    bad = list(tmp_path.glob("m.sqlite3.corrupt-*"))
    assert len(bad) == 1 and bad[0].read_bytes().startswith(b"this is not")
    store.close()
    assert Store(path).moved_aside == 0  # the rebuilt one opens cleanly


def test_a_failed_integrity_check_rebuilds_at_the_next_open(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    store = Store(path)
    rows = [_file("Fax/2026-11", f"{i:04d}.pdf", float(i)) for i in range(2000)]
    store.apply(EXT, {f"m:{i}": [r] for i, r in enumerate(rows)}, [])
    assert store.check() is None
    store.close()
    with open(path, "r+b") as fh:  # a data page in the middle, not the schema page
        size = fh.seek(0, 2)
        fh.seek((size // 4096 // 2) * 4096 + 100)
        fh.write(b"\xa5" * 1000)
    damaged = Store(path)  # the cheap checks at open pass: the mount answers at once
    assert damaged.moved_aside == 0
    assert damaged.check() is not None  # the background check finds it...
    damaged.close()
    rebuilt = Store(path)  # ...and the next open rebuilds
    assert rebuilt.moved_aside == 1 and rebuilt.healed is not None
    assert rebuilt.dir_stats(EXT) == {}
    assert rebuilt.check() is None
    rebuilt.close()


def test_a_learned_size_survives_the_api_sending_the_row_again(tmp_path: Path) -> None:
    """The API gives no size for this file; a download learned it. The same message synced
    again (no size) keeps the learned size, and writes nothing."""
    ref = ContentRef("rec", ("7", "1"), "https://media/r", "Heavy", None, "audio/wav")
    sized = row("Recordings/2026-11", Entry("call.wav", 30.0, content=ref))
    store = Store(tmp_path / "m.sqlite3")
    store.apply(EXT, {"c:7": [sized]}, [])
    assert store.set_size({ref.key: 2048}) == [(EXT, "Recordings/2026-11")]
    again = store.apply(EXT, {"c:7": [sized]}, [])
    assert again.rows_written == 0 and again.removed == []
    db = sqlite3.connect(tmp_path / "m.sqlite3")
    assert db.execute("SELECT size FROM entry WHERE name='call.wav'").fetchall() == [(2048,)]
    db.close()
    # Other content under the same source is not given that size.
    other = ContentRef("rec", ("8", "1"), "https://media/s", "Heavy", None, "audio/wav")
    store.apply(EXT, {"c:7": [row("Recordings/2026-11", Entry("other.wav", 31.0,
                                                               content=other))]}, [])
    db = sqlite3.connect(tmp_path / "m.sqlite3")
    assert db.execute("SELECT name, size FROM entry").fetchall() == [("other.wav", None)]
    db.close()
    store.close()
