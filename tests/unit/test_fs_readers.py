"""Reader classes from a fake /proc, pending-signal checks, thumbnail failure records."""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path
from urllib.parse import quote

import pytest

from rcfs.api.scheduler import Priority
from rcfs.fs.readers import ReaderClass, ReaderClassifier
from rcfs.fs.thumbnails import failure_records
from rcfs.fs.waits import pending_end


def fake_proc(root: Path, pid: int, comm: str, *, ppid: int = 1, tgid: int | None = None,
              exe: str | None = None, argv: tuple[str, ...] = (), sigpnd: int = 0,
              shdpnd: int = 0, sigblk: int = 0, state: str = "S (sleeping)") -> None:
    d = root / str(pid)
    d.mkdir(parents=True, exist_ok=True)
    (d / "comm").write_text(comm[:15] + "\n")
    (d / "status").write_text(
        f"Name:\t{comm[:15]}\nState:\t{state}\nTgid:\t{tgid or pid}\nPPid:\t{ppid}\n"
        f"SigPnd:\t{sigpnd:016x}\nShdPnd:\t{shdpnd:016x}\nSigBlk:\t{sigblk:016x}\n")
    (d / "cmdline").write_text("\0".join(argv or (comm,)) + "\0")
    if exe:
        os.symlink(exe, d / "exe")


def test_classes_by_name_parent_and_file_count(tmp_path: Path) -> None:
    fake_proc(tmp_path, 10, "mpv", exe="/usr/bin/mpv")
    fake_proc(tmp_path, 11, "cp", exe="/usr/bin/cp", argv=("cp", "-r", "a", "b"))
    fake_proc(tmp_path, 12, "gdk-pixbuf-thumbnailer", exe="/usr/bin/gdk-pixbuf-thumbnailer")
    fake_proc(tmp_path, 20, "tumblerd")
    fake_proc(tmp_path, 21, "bwrap", ppid=20)
    fake_proc(tmp_path, 22, "some-helper", ppid=21)
    fake_proc(tmp_path, 30, "python3", exe="/usr/bin/python3.11", argv=("python3", "copy.py"))
    fake_proc(tmp_path, 31, "python3", tgid=30)  # a thread of 30
    c = ReaderClassifier(proc_root=str(tmp_path))
    mpv = c.classify(10, "rec/1")
    assert mpv.cls is ReaderClass.INTERACTIVE and mpv.priority is Priority.INTERACTIVE
    assert c.classify(11, "rec/2").cls is ReaderClass.BULK
    thumb = c.classify(12, "msg/1/2")
    assert thumb.cls is ReaderClass.BACKGROUND and thumb.priority is Priority.BACKGROUND
    assert c.classify(22, "msg/3/4").cls is ReaderClass.BACKGROUND
    # A script copying files: interactive for its first files, then bulk (threads count
    # for their process, and share its fairness key).
    seen = [c.classify(30 + i % 2, f"rec/{i}") for i in range(6)]
    assert [r.cls for r in seen[:3]] == [ReaderClass.INTERACTIVE] * 3
    assert {r.cls for r in seen[3:]} == {ReaderClass.BULK}
    assert {r.tenant for r in seen[3:]} == {"bulk:30"}
    # The same file again is not a new file.
    assert c.classify(10, "rec/1").cls is ReaderClass.INTERACTIVE


@pytest.mark.parametrize(("fields", "why"), [
    ({}, None),
    ({"shdpnd": 1 << (signal.SIGINT - 1)}, "SIGINT pending"),
    ({"sigpnd": 1 << (signal.SIGKILL - 1)}, "SIGKILL pending"),
    ({"shdpnd": 1 << (signal.SIGTERM - 1), "sigblk": 1 << (signal.SIGTERM - 1)}, None),
    ({"shdpnd": 1 << (signal.SIGUSR1 - 1)}, None),  # dd's progress signal
    ({"shdpnd": 1 << (signal.SIGCHLD - 1)}, None),
    ({"state": "Z (zombie)"}, "the process exited"),
])
def test_pending_end(tmp_path: Path, fields: dict[str, object], why: str | None) -> None:
    fake_proc(tmp_path, 40, "cat", **fields)  # type: ignore[arg-type]
    assert pending_end(40, str(tmp_path)) == why
    assert pending_end(41, str(tmp_path)) == "the process exited"


def test_failure_records_match_the_uri_hash(tmp_path: Path) -> None:
    path = "/home/u/RingCentral/101 Alice/Fax/2026-11/2026-11-20 09.17.27 in +1212 [52].pdf"
    uri = "file://" + quote(path, safe="/!$&'()*+,;=:@-._~")
    record = tmp_path / "thumbnails" / "fail" / "gnome-thumbnail-factory" / (
        hashlib.md5(uri.encode(), usedforsecurity=False).hexdigest() + ".png")
    record.parent.mkdir(parents=True)
    assert failure_records(path, tmp_path) == []
    record.write_bytes(b"png")
    assert failure_records(path, tmp_path) == [record]
    assert failure_records(path + "x", tmp_path) == []


def test_a_process_in_gnomes_thumbnail_sandbox_is_background(tmp_path: Path) -> None:
    fake_proc(tmp_path, 50, "nautilus")
    fake_proc(tmp_path, 51, "bwrap", ppid=50, argv=(
        "bwrap", "--ro-bind", "/m/x.pdf", "/tmp/gnome-desktop-file-to-thumbnail.pdf"))
    fake_proc(tmp_path, 52, "bwrap", ppid=51)
    fake_proc(tmp_path, 53, "some-new-thumbnailer", ppid=52)
    c = ReaderClassifier(proc_root=str(tmp_path))
    who = c.classify(53, "msg/1/2")
    assert who.cls is ReaderClass.BACKGROUND and "thumbnail factory" in who.reason
    # Nautilus itself (a copy) is bulk, not background.
    assert c.classify(50, "msg/1/3").cls is ReaderClass.BULK


def _png_with_uri(uri: str) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0))
            + chunk(b"tEXt", b"Thumb::URI\0" + uri.encode()) + chunk(b"IEND", b""))


async def test_repair_removes_records_of_cached_documents_only(tmp_path: Path) -> None:
    from rcfs.content.source import ContentRef
    from rcfs.fs.thumbnails import ThumbnailPolicy, record_uri

    mount = "/home/u/RC"
    fail = tmp_path / "thumbnails" / "fail" / "gnome-thumbnail-factory"
    fail.mkdir(parents=True)
    refs = {
        ("101 A", "Fax", "f [1].pdf"): ContentRef("msg", ("1", "2"), "u", "Medium", None,
                                                  "application/pdf"),
        ("101 A", "Fax", "g [3].pdf"): ContentRef("msg", ("3", "4"), "u", "Medium", None,
                                                  "application/pdf"),
        ("101 A", "Voicemail", "v [5].mp3"): ContentRef("msg", ("5", "6"), "u", "Medium",
                                                        None, "audio/mpeg"),
    }
    records = {}
    for parts in refs:
        uri = "file://" + quote(mount + "/" + "/".join(parts), safe="/!$&'()*+,;=:@-._~")
        records[parts] = fail / (hashlib.md5(uri.encode(), usedforsecurity=False)
                                 .hexdigest() + ".png")
        records[parts].write_bytes(_png_with_uri(uri))
        assert record_uri(records[parts]) == uri
    other = fail / "other.png"
    other.write_bytes(_png_with_uri("file:///elsewhere/x.pdf"))

    class Info:
        def __init__(self, complete: bool) -> None:
            self.complete = complete

    class FakeReader:
        async def cached_info(self, ref: ContentRef) -> Info:
            return Info(ref.ids[0] in ("1", "5"))  # f.pdf and v.mp3 are cached

    policy = ThumbnailPolicy("always", mount, cache_home=tmp_path)
    removed = await policy.repair(refs.get, FakeReader())  # type: ignore[arg-type]
    assert removed == 1
    assert not records[("101 A", "Fax", "f [1].pdf")].exists()  # cached document: retried
    assert records[("101 A", "Fax", "g [3].pdf")].exists()  # not cached: remembered
    assert records[("101 A", "Voicemail", "v [5].mp3")].exists()  # audio: a true failure
    assert other.exists()
    assert policy.stats()["files_to_retry"] == 1
