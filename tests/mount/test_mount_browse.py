"""Browsing a real rcfs mount (issue 5): the tree, names, attributes, xattrs, probe names.

One emulator and one mount for the module (the tests only read, except the read-status
round trip, which restores what it changed). The mount refreshes every 600 s, so after the
first load every request the emulator sees was caused by the test itself.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import time
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.emulator_proc import EmulatorProc
from tests.mount_helper import (
    OUTBOX,
    Mounted,
    RequestLog,
    brief,
    content_requests,
    files_under,
    folder_name,
    id_of,
    message_of,
    messages_of,
    module_mount,
    recordings_of,
    run,
    wait_for,
    walk,
    warm_truth,
)
from tests.programs import require_programs

pytestmark = [pytest.mark.mount, pytest.mark.usefixtures("healthy")]

AREAS = {"Voicemail", "Fax", "Texts", "Recordings", "Greetings"}
MONTH = re.compile(r"^\d{4}-\d{2}$")
STAMP = r"(\d{4}-\d{2}-\d{2} \d{2}\.\d{2}\.\d{2})"
DUR = r"\((\d+h)?\d+m\d{2}s\)"
PATTERNS = {
    "Voicemail": re.compile(STAMP + r" from .+ " + DUR + r" \[(\d+)\](-\d+)?"
                            r"(\.mp3|\.wav|\.transcript\.txt)$"),
    "Fax": re.compile(STAMP + r" (in|out) .+ \((\d+) pages?\) \[(\d+)\](-\d+)?\.(pdf|tif)$"),
    "Texts": re.compile(STAMP + r" (in|out) \[(\d+)\](-\d+\.(jpg|png|gif)|\.txt)$"),
    "Recordings": re.compile(STAMP + r" (in|out) .+ " + DUR + r" \[(\d+)\]\.(mp3|wav)$"),
    "Greetings": re.compile(r"^[A-Za-z]+ \[(\d+)\]\.(wav|mp3)$"),
}
EXT_OF_MIME = {"audio/mpeg": ".mp3", "audio/x-wav": ".wav", "audio/wav": ".wav",
               "application/pdf": ".pdf", "image/tiff": ".tif", "text/plain": ".txt",
               "image/jpeg": ".jpg",
               "image/png": ".png", "image/gif": ".gif"}
INVISIBLE = set("\u200b\u200c\u200d\u200e\u200f\u2060\ufeff\u202a\u202b\u202c\u202d\u202e"
                "\u2066\u2067\u2068\u2069")


@pytest.fixture(scope="module")
def mnt(emu: EmulatorProc, rest: httpx.Client,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounted]:
    warm_truth(rest, emu)  # before the mount spends the (shared) budget
    with module_mount(emu, tmp_path_factory.mktemp("browse")) as m:
        yield m



@pytest.fixture(scope="module")
def admin_messages(emu: EmulatorProc, rest: httpx.Client) -> dict[str, dict[str, Any]]:
    return {str(m["id"]): m for m in messages_of(rest, emu.user(admin=True)["extension_id"])}




def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _stamp(iso: str) -> str:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC).strftime(
        "%Y-%m-%d %H.%M.%S")



# -- the tree ---------------------------------------------------------------------------------


def test_root_has_one_folder_per_mailbox_and_status(mnt: Mounted, summary: dict[str, Any]
                                                     ) -> None:
    expected = {folder_name(e) for e in summary["extensions"]}
    assert len(expected) == 5
    # An admin also gets Exports/ and the account-level Calls/ (issue 13's own suites).
    assert set(os.listdir(mnt.root)) == expected | {".rcfs", "Exports", "Calls"}
    for name in expected:
        assert set(os.listdir(mnt.root / name)) - {OUTBOX, "Calls"} == AREAS, name
    status = mnt.status()
    assert status["pid"] == mnt.proc.pid  # type: ignore[union-attr]
    assert {e["folder"] for e in status["extensions"].values()} == expected
    assert all(e["loaded"] and e["last_error"] is None for e in status["extensions"].values())
    assert os.listdir(mnt.root / ".rcfs") == ["status.json"]


def test_non_admin_sees_only_their_own_mailbox(emu: EmulatorProc, rest: httpx.Client,
                                               tmp_path: Path) -> None:
    user = emu.user(admin=False)
    with Mounted(emu, tmp_path, user=user, refresh_interval=600, timezone="UTC") as m:
        assert set(os.listdir(m.root)) == {folder_name(user), ".rcfs"}
        vm = m.folder() / "Voicemail"
        months = os.listdir(vm)
        assert months and all(MONTH.match(x) for x in months)
        mine = {str(x["id"]) for x in messages_of(rest, user["extension_id"])}
        shown = {id_of(p.name) for p in files_under(m.folder())
                 if p.parent.parent.name != "Recordings" and p.parent.name != "Greetings"}
        assert shown == mine
        assert m.alive


def test_ls_lR_sends_no_request(mnt: Mounted, emu: EmulatorProc) -> None:
    require_programs("ls")
    # Recordings (call log, Heavy) and Greetings (answering rules, Medium) load when first
    # looked at, not at mount (issue 10): look once, wait until both are loaded.
    for box in os.listdir(mnt.root):
        if box not in (".rcfs", "Calls", "Exports"):
            os.listdir(mnt.root / box / "Recordings")
            os.listdir(mnt.root / box / "Greetings")
    wait_for(lambda: all(e["calls"]["loaded"] and e["greetings_loaded"]
                         for e in mnt.status()["extensions"].values()), 30,
             "call log and greetings loaded")
    log = RequestLog(emu).mark()
    started = time.monotonic()
    out = run(["ls", "-lR", str(mnt.root)]).stdout
    took = time.monotonic() - started
    sent = log.since()
    assert content_requests(sent) == []
    # Browsing answers from the index: not even a listing request once the tree is loaded.
    assert sent == [], brief(sent)
    files = [p for p in files_under(mnt.root, outbox=True, extras=True)
             if ".rcfs" not in p.parts]
    listed = [ln for ln in out.splitlines() if ln.startswith("-r")]
    assert len(listed) == len(files) > 500
    assert took < 30


def test_every_message_recording_and_greeting_has_a_file(
        mnt: Mounted, rest: httpx.Client, summary: dict[str, Any]) -> None:
    require_programs("find")
    found = run(["find", str(mnt.root), "-type", "f", "-print0"]).stdout.split("\0")
    found = [f for f in found if f]
    assert len(found) == len(list(files_under(mnt.root, outbox=True, extras=True)))
    found = [f for f in found if OUTBOX not in Path(f).parts
             and not {"Calls", "Exports"} & set(Path(f).relative_to(mnt.root).parts[:2])]
    for ext in summary["extensions"]:
        top = mnt.root / folder_name(ext)
        rel = [Path(f).relative_to(top) for f in found if Path(f).is_relative_to(top)]
        by_area: dict[str, set[str]] = {a: set() for a in AREAS}
        for r in rel:
            by_area[r.parts[0]].add(id_of(r.name))
        msgs = messages_of(rest, str(ext["id"]))
        for area, kinds in (("Voicemail", {"VoiceMail"}), ("Fax", {"Fax"}),
                            ("Texts", {"SMS", "Pager"})):
            want = {str(m["id"]) for m in msgs if m["type"] in kinds}
            assert by_area[area] == want, (ext["name"], area)
        recs = recordings_of(rest, str(ext["id"]))
        assert len(by_area["Recordings"]) == ext["recordings"] == len(recs)
        assert by_area["Recordings"] == set(recs)
        assert by_area["Greetings"] == set(ext["greetings"])


def test_names_are_safe_typed_and_sorted_by_time(mnt: Mounted) -> None:
    seen_ids: dict[tuple[str, str], str] = {}
    for dirpath, dirs, files in walk(mnt.root):
        rel = Path(dirpath).relative_to(mnt.root).parts
        for name in dirs + files:
            raw = os.fsencode(name)
            assert len(raw) <= 255 and b"/" not in raw and b"\0" not in raw, name
            assert name not in (".", "..")
            assert not name.startswith(".") or rel == () and name == ".rcfs", name
            assert not any(ch in INVISIBLE or unicodedata.category(ch) in ("Cc", "Cf")
                           for ch in name), ascii(name)
            assert unicodedata.is_normalized("NFC", name), ascii(name)
        if len(rel) < 2 or not files:
            continue
        area = rel[1]
        if area in ("Voicemail", "Fax", "Recordings"):
            assert len(rel) == 3 and MONTH.match(rel[2]), rel
        for name in files:
            m = PATTERNS[area].search(name)
            assert m is not None, (area, name)
            if area != "Greetings":
                assert m.group(1).startswith(rel[2]) or area == "Texts", (rel, name)
            path = Path(dirpath) / name
            mime = os.getxattr(path, "user.mime_type").decode()
            assert name.endswith(EXT_OF_MIME[mime]), (name, mime)
            key = (rel[0], name[:-len(EXT_OF_MIME[mime])].rsplit(" [", 1)[1])
            assert key not in seen_ids, (name, seen_ids.get(key))
            seen_ids[key] = name
        if area != "Greetings":
            # Sorted by name is sorted by time.
            by_name = sorted(files)
            times = [os.stat(Path(dirpath) / f).st_mtime for f in by_name]
            assert times == sorted(times), dirpath
    assert len(seen_ids) > 500


def test_names_and_mtimes_follow_the_messages(mnt: Mounted,
                                              admin_messages: dict[str, dict[str, Any]]
                                              ) -> None:
    top = mnt.folder()
    checked = 0
    for path in files_under(top):
        area = path.relative_to(top).parts[0]
        if area in ("Recordings", "Greetings"):
            continue
        msg = admin_messages[id_of(path.name)]
        st = os.stat(path)
        assert abs(st.st_mtime - _epoch(msg["creationTime"])) < 0.002, path.name
        assert path.name.startswith(_stamp(msg["creationTime"])), path.name
        direction = "in" if msg["direction"] == "Inbound" else "out"
        if area == "Voicemail":
            audio = [a for a in msg["attachments"] if a["type"] == "AudioRecording"][0]
            assert f"({audio['vmDuration'] // 60}m{audio['vmDuration'] % 60:02d}s)" in path.name
            assert f" from {msg['from']['phoneNumber']}" in path.name
        elif area == "Fax":
            pages = msg["faxPageCount"]
            assert f" {direction} " in path.name
            assert f"({pages} page{'s' if pages != 1 else ''})" in path.name
        else:
            assert f" {direction} [" in path.name
        checked += 1
    assert checked == sum(1 for _ in files_under(top)) - sum(
        1 for _ in files_under(top / "Recordings")) - sum(1 for _ in files_under(
            top / "Greetings"))
    assert checked > 100


def test_recording_names_and_mtimes_follow_the_call_log(mnt: Mounted, emu: EmulatorProc,
                                                        rest: httpx.Client) -> None:
    user = emu.user(admin=True)
    recs = recordings_of(rest, user["extension_id"])
    files = list(files_under(mnt.folder() / "Recordings"))
    assert len(files) == len(recs) > 0
    for path in files:
        rec = recs[id_of(path.name)]
        call = rec["call"]
        assert abs(os.stat(path).st_mtime - _epoch(call["startTime"])) < 0.002
        assert path.name.startswith(_stamp(call["startTime"]))
        assert path.parent.name == _stamp(call["startTime"])[:7]
        dur = call["duration"]
        assert f"({dur // 60}m{dur % 60:02d}s)" in path.name or dur >= 3600


# -- attributes -------------------------------------------------------------------------------


def test_stat_modes_links_blocks_and_known_sizes(mnt: Mounted, emu: EmulatorProc,
                                                 admin_messages: dict[str, dict[str, Any]]
                                                 ) -> None:
    require_programs("stat")
    top = mnt.folder()
    dirs = [top, top / "Voicemail", *sorted((top / "Voicemail").iterdir())[:2]]
    out = run(["stat", "-c", "%a|%h|%s|%F", *map(str, dirs)]).stdout.splitlines()
    for d, line in zip(dirs, out, strict=True):
        mode, nlink, _size, kind = line.split("|")
        assert (mode, kind) == ("555", "directory"), d
        subdirs = sum(1 for c in d.iterdir() if c.is_dir())  # Outbox included
        assert int(nlink) == 2 + subdirs, d
    # Sizes the API states (transcripts, MMS pictures) and inline texts: exact before any
    # download, and no download to know them.
    log = RequestLog(emu).mark()
    known: list[tuple[Path, int]] = []
    for path in files_under(top):
        msg = admin_messages.get(id_of(path.name))
        if msg is None:
            continue
        if path.name.endswith(".transcript.txt"):
            att = [a for a in msg["attachments"] if a["type"] == "AudioTranscription"][0]
            known.append((path, att["size"]))
        elif path.suffix in (".jpg", ".png", ".gif"):
            n = int(re.search(r"\]-(\d+)\.", path.name).group(1))  # type: ignore[union-attr]
            att = [a for a in msg["attachments"] if a["type"] == "MmsAttachment"][n - 1]
            known.append((path, att["size"]))
        elif path.parent.parent.name == "Texts" and path.suffix == ".txt":
            known.append((path, len((msg.get("subject") or "").encode())))
    assert len(known) > 20
    assert any(p.suffix == ".jpg" for p, _ in known)
    out = run(["stat", "-c", "%a|%h|%s|%b|%B|%Y|%F", *(str(p) for p, _ in known)]
              ).stdout.splitlines()
    for (path, size), line in zip(known, out, strict=True):
        mode, nlink, st_size, blocks, bsize, mtime, kind = line.split("|")
        assert (mode, nlink) == ("444", "1"), path
        assert kind == ("regular file" if size else "regular empty file"), path
        assert int(st_size) == size, path.name
        assert int(blocks) * int(bsize) >= size and int(blocks) == (size + 511) // 512
        assert int(mtime) == int(os.stat(path).st_mtime)
    assert content_requests(log.since()) == []


def test_unknown_size_is_learned_at_open(mnt: Mounted, emu: EmulatorProc) -> None:
    # Faxes have no size in the API: stat shows an estimate from the page count (never 0:
    # GIO types a 0-byte file as text) until the file is opened; the open learns the exact
    # size from the download it starts anyway (one content request, no HEAD) before it
    # returns.
    fax = sorted(files_under(mnt.folder(emu.user(admin=False, index=1)) / "Fax"))[0]
    pages = int(re.search(r"\((\d+) pages?\)", fax.name).group(1))  # type: ignore[union-attr]
    assert os.stat(fax).st_size >= pages * 1000
    log = RequestLog(emu).mark()
    fd = os.open(fax, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    real = len(emu.content("message", id_of(fax.name)))
    assert size == real > 0
    assert os.stat(fax).st_size == real
    stat_out = run(["stat", "-c", "%s %b", str(fax)]).stdout.split()
    assert stat_out == [str(real), str((real + 511) // 512)]
    sent = content_requests(log.since())
    assert len(sent) == 1 and (sent[0]["range"], sent[0]["status"]) == ("bytes=0-", 206), \
        brief(sent)


def test_statfs_is_local(mnt: Mounted, emu: EmulatorProc) -> None:
    require_programs("stat", "df")
    log = RequestLog(emu).mark()
    vfs = os.statvfs(mnt.root)
    assert vfs.f_namemax == 255 and vfs.f_bsize > 0
    out = run(["stat", "-f", "-c", "%l %T", str(mnt.root)]).stdout.split()
    assert out[0] == "255" and out[1].startswith("fuse")
    df = run(["df", "-P", str(mnt.root)]).stdout
    assert "rcfs" in df.splitlines()[1]
    assert log.since() == []


def test_io_size_and_kernel_read_ahead(mnt: Mounted) -> None:
    """st_blksize makes cp/cat read 1 MiB at a time; the mount's read-ahead is raised to
    1 MiB after the kernel's INIT (root only: otherwise the log says it stays at 128 KiB)."""
    from rcfs.fs.readahead import mount_device

    fax = sorted(files_under(mnt.folder() / "Fax"))[0]
    assert os.stat(fax).st_blksize == 1 << 20
    dev = mount_device(mnt.mountpoint)
    assert dev is not None
    value = int(Path(f"/sys/class/bdi/{dev}/read_ahead_kb").read_text())
    log = mnt.log_path.read_text(errors="replace")  # the whole log: this line comes early
    if os.geteuid() == 0:
        assert value == 1024 and "raised from 128 to 1024 KiB" in log
    else:
        assert value == 128 and "needs root" in log


def test_getfattr_dumps_the_message_attributes(mnt: Mounted,
                                               admin_messages: dict[str, dict[str, Any]]
                                               ) -> None:
    require_programs("getfattr")
    vm = sorted(files_under(mnt.folder() / "Voicemail"))
    vm = [p for p in vm if p.suffix in (".mp3", ".wav")]
    fax = sorted(files_under(mnt.folder() / "Fax"))[0]
    rec = sorted(files_under(mnt.folder() / "Recordings"))[0]
    out = run(["getfattr", "-d", "--absolute-names", str(vm[0]), str(fax), str(rec)]).stdout
    dumps: dict[str, dict[str, str]] = {}
    current = ""
    for line in out.splitlines():
        if line.startswith("# file: "):
            current = line[len("# file: "):]
            dumps[current] = {}
        elif "=" in line:
            key, _, value = line.partition("=")
            dumps[current][key] = value.strip('"')
    v = dumps[str(vm[0])]
    msg = admin_messages[id_of(vm[0].name)]
    audio = [a for a in msg["attachments"] if a["type"] == "AudioRecording"][0]
    assert v["user.rc.id"] == str(msg["id"])
    assert v["user.rc.type"] == "VoiceMail"
    assert v["user.rc.direction"] == msg["direction"]
    assert v["user.rc.read_status"] == msg["readStatus"]
    assert v["user.rc.duration"] == str(audio["vmDuration"])
    assert v["user.rc.from"].startswith(msg["from"]["phoneNumber"])
    assert msg["to"][0]["phoneNumber"] in v["user.rc.to"]
    assert v["user.mime_type"] == audio["contentType"]
    f = dumps[str(fax)]
    fmsg = admin_messages[id_of(fax.name)]
    assert (f["user.rc.type"], f["user.rc.pages"]) == ("Fax", str(fmsg["faxPageCount"]))
    assert f["user.mime_type"] == "application/pdf"
    r = dumps[str(rec)]
    assert r["user.rc.type"] == "CallRecording" and r["user.rc.id"] == id_of(rec.name)
    assert int(r["user.rc.duration"]) > 0
    assert r["user.mime_type"] in ("audio/mpeg", "audio/wav", "audio/x-wav")
    for d in dumps.values():
        assert {"user.rc.id", "user.rc.type", "user.rc.from", "user.rc.to",
                "user.rc.direction"} <= d.keys()
    # Directories have no attributes, and listing them is not an error.
    assert os.listxattr(mnt.folder()) == []


def test_setfattr_read_status_updates_the_message(mnt: Mounted, emu: EmulatorProc,
                                                  rest: httpx.Client,
                                                  admin_messages: dict[str, dict[str, Any]]
                                                  ) -> None:
    require_programs("setfattr", "getfattr")
    target = next(p for p in sorted(files_under(mnt.folder() / "Voicemail"))
                  if admin_messages[id_of(p.name)]["readStatus"] == "Unread"
                  and p.suffix == ".mp3")
    mid = id_of(target.name)
    ext_id = emu.user(admin=True)["extension_id"]

    def api_status() -> str:
        return message_of(rest, ext_id, mid)["readStatus"]  # type: ignore[no-any-return]

    log = RequestLog(emu).mark()
    run(["setfattr", "-n", "user.rc.read_status", "-v", "Read", str(target)])
    puts = [e for e in log.since() if e["method"] == "PUT"]
    assert len(puts) == 1 and puts[0]["path"].endswith(f"/message-store/{mid}")
    assert puts[0]["status"] == 200
    assert api_status() == "Read"
    assert os.getxattr(target, "user.rc.read_status") == b"Read"
    # Other files of the same message show it too.
    for other in target.parent.glob(f"*[[]{mid}[]]*"):
        assert os.getxattr(other, "user.rc.read_status") == b"Read"
    bad = run(["setfattr", "-n", "user.rc.read_status", "-v", "Maybe", str(target)],
              check=False)
    assert bad.returncode != 0 and "Invalid argument" in bad.stderr
    with pytest.raises(OSError) as err:
        os.setxattr(target, "user.rc.type", b"Fax")
    assert err.value.errno == errno.ENOTSUP
    run(["setfattr", "-n", "user.rc.read_status", "-v", "Unread", str(target)])
    assert api_status() == "Unread"
    assert os.getxattr(target, "user.rc.read_status") == b"Unread"


def test_ls_l_does_not_ask_each_file_for_labels_or_acls(mnt: Mounted) -> None:
    """`ls -l` asks every file for its SELinux label and its POSIX ACL unless the first
    answer says the file system has none (EOPNOTSUPP): two FUSE round trips per file that
    made `ls -l` of a 10,000-text folder take seconds."""
    require_programs("ls")
    folder = Path(max(walk(mnt.folder()), key=lambda w: len(w[2]))[0])
    entries = len(os.listdir(folder))
    assert entries >= 5
    before = mnt.status()["filesystem"]["getxattrs"]
    out = run(["ls", "-l", str(folder)]).stdout
    asked = mnt.status()["filesystem"]["getxattrs"] - before
    assert len(out.splitlines()) == entries + 1  # "total" line
    assert asked <= 4, (asked, entries)
    assert not re.search(r"^\S{10}[.+] ", out, re.M)  # no label/ACL marker after the mode


def test_probe_names_answer_enoent_locally(mnt: Mounted, emu: EmulatorProc) -> None:
    probes = [".hidden", ".Trash", ".Trash-0", ".Trash-1000", ".directory", "desktop.ini",
              "Thumbs.db", ".DS_Store", "autorun.inf"]
    dirs = [mnt.root, mnt.folder(), mnt.folder() / "Voicemail",
            sorted((mnt.folder() / "Fax").iterdir())[0]]
    before = mnt.status()["filesystem"]["probe_misses"]
    log = RequestLog(emu).mark()
    started = time.monotonic()
    for d in dirs:
        for name in probes:
            with pytest.raises(FileNotFoundError):
                os.stat(d / name)
    assert time.monotonic() - started < 2.0
    assert mnt.status()["filesystem"]["probe_misses"] - before == len(dirs) * len(probes)
    assert log.since() == []


def test_mode_bits_of_every_entry(mnt: Mounted) -> None:
    for dirpath, dirs, files in walk(mnt.folder()):
        for d in dirs:
            st = os.stat(Path(dirpath) / d)
            assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o555
        for f in files:
            st = os.stat(Path(dirpath) / f)
            assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o444
            assert st.st_nlink == 1 and st.st_uid == os.getuid()


def test_folder_mtimes_are_their_newest_entry(mnt: Mounted) -> None:
    top = mnt.folder()
    for dirpath, dirs, files in walk(top):
        entries = [Path(dirpath) / n for n in dirs + files]
        if not entries:
            continue
        newest = max(os.stat(p).st_mtime for p in entries)
        assert os.stat(dirpath).st_mtime == newest, dirpath
    areas = [top / a for a in sorted(AREAS)]
    assert os.stat(top).st_mtime == max(os.stat(a).st_mtime for a in areas)
    assert os.stat(top / "Voicemail").st_mtime > 1e9  # not 1970
