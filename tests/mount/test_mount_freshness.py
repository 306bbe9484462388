"""Freshness of a real rcfs mount (issue 5): what changes on the server shows up within the
refresh interval, what is deleted disappears, and when RingCentral cannot be reached the
last known listing (and every cached byte) is still served, also across a remount.
"""

from __future__ import annotations

import errno
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.emulator_proc import EmulatorProc
from tests.mount_helper import (
    REAL_LIMITS,
    REAL_WINDOW,
    Mounted,
    RequestLog,
    brief,
    content_requests,
    files_under,
    find_by_id,
    id_of,
    module_mount,
    require_fuse,
    run,
    wait_for,
)
from tests.programs import require_programs

pytestmark = [pytest.mark.mount, pytest.mark.usefixtures("healthy")]

REFRESH = 1.0
# A change shows within one refresh interval of a folder being used, plus the refresh's own
# requests and our polling step.
APPEAR_WITHIN = REFRESH + 2.0


@pytest.fixture(scope="module")
def mnt(emu: EmulatorProc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounted]:
    # The polling path (push freshness has its own tests: test_mount_push.py).
    with module_mount(emu, tmp_path_factory.mktemp("fresh"), refresh_interval=REFRESH,
                      read_timeout=5, push=False) as m:
        yield m




def _poll_until(cond: Callable[[], Any], what: str, timeout: float = 15.0) -> float:
    """Seconds until ``cond()`` holds (polling like a file manager would)."""
    started = time.monotonic()
    wait_for(cond, timeout, what, interval=0.1)
    return time.monotonic() - started


def test_new_messages_and_recordings_appear_within_the_refresh_interval(
        mnt: Mounted, emu: EmulatorProc) -> None:
    admin = emu.user(admin=True)
    top = mnt.folder()
    before = set(files_under(top))
    # The folder is in use (someone looks at it), then the server gets new items.
    os.listdir(top / "Voicemail")
    vm = emu.admin("POST", "/_emulator/messages", {
        "extension_id": admin["extension_id"], "type": "VoiceMail", "from": "+14155550123",
        "from_name": "Fresh Caller", "duration": 7, "transcription": "Call me back."})
    sms = emu.admin("POST", "/_emulator/messages", {
        "extension_id": admin["extension_id"], "type": "SMS", "direction": "Inbound",
        "from": "+14155550124", "text": "brand new conversation"})
    call = emu.admin("POST", "/_emulator/calls", {
        "extension_id": admin["extension_id"], "direction": "Inbound", "from": "+14155550125",
        "from_name": "Recorded Caller", "duration": 12, "recording": True})
    took = _poll_until(lambda: find_by_id(top / "Voicemail", str(vm["id"]))
                       and find_by_id(top / "Texts", str(sms["id"]))
                       and find_by_id(top / "Recordings", str(call["recording_id"])),
                       "the new voicemail, text and recording")
    print(f"new items visible after {took:.2f}s (refresh interval {REFRESH}s)")
    assert took <= APPEAR_WITHIN, took

    audio, transcript = sorted(find_by_id(top / "Voicemail", str(vm["id"])),
                               key=lambda p: p.name.endswith(".txt"))
    assert "Fresh Caller (0m07s)" in audio.name and transcript.name.endswith(
        ".transcript.txt")
    assert transcript.read_bytes() == b"Call me back."
    assert audio.read_bytes() == emu.content("message", str(vm["id"]))
    (text,) = find_by_id(top / "Texts", str(sms["id"]))
    assert text.parent.name == "+14155550124" and text.read_text() == "brand new conversation"
    (rec,) = find_by_id(top / "Recordings", str(call["recording_id"]))
    assert "Recorded Caller" in rec.name and "(0m12s)" in rec.name
    assert rec.read_bytes() == emu.content("recording", str(call["recording_id"]))
    after = set(files_under(top))
    assert after - before == {audio, transcript, text, rec}


def test_deleted_message_disappears_and_open_files_keep_reading(
        mnt: Mounted, emu: EmulatorProc) -> None:
    top = mnt.folder()
    target = next(p for p in files_under(top / "Voicemail") if p.suffix == ".mp3")
    ident = target.name.rsplit("[", 1)[1].split("]")[0]
    siblings = find_by_id(top / "Voicemail", ident)
    expected = emu.content("message", ident)
    # The kernel caches a looked-up name (for an hour for files of known size): the
    # deletion must reach it too.
    os.stat(target)
    fh = open(target, "rb")  # noqa: SIM115
    try:
        head = fh.read(1000)
        emu.admin("DELETE", f"/_emulator/messages/{ident}")
        took = _poll_until(lambda: not find_by_id(top / "Voicemail", ident),
                           "the deleted voicemail to disappear")
        print(f"deleted voicemail gone after {took:.2f}s")
        assert took <= APPEAR_WITHIN, took
        for path in siblings:
            with pytest.raises(FileNotFoundError):
                os.stat(path)
            if path.parent.name in os.listdir(path.parent.parent):
                assert path.name not in os.listdir(path.parent)
            # else: the month folder went with its last message
        # A file already open keeps its bytes.
        rest = fh.read()
        assert head + rest == expected
    finally:
        fh.close()


def _fs_status(mnt: Mounted) -> dict[str, int]:
    fs: dict[str, int] = mnt.status()["filesystem"]
    return fs


def test_inodes_stable_while_referenced_and_dropped_once_forgotten(
        mnt: Mounted, emu: EmulatorProc) -> None:
    """A file keeps its inode number across the kernel forgetting it; a deleted file's
    inode stays while open, and leaves the table once the kernel forgot it."""
    if os.geteuid() != 0:
        pytest.skip("making the kernel forget inodes (drop_caches) needs root")
    top = mnt.folder()
    faxes = sorted(files_under(top / "Fax"))
    keep, doomed = faxes[0], faxes[-1]
    ino = os.stat(keep).st_ino
    ident = doomed.name.rsplit("[", 1)[1].split("]")[0]
    start = _fs_status(mnt)  # every fax already has its inode (files_under looked them up)
    fh = open(doomed, "rb")  # noqa: SIM115
    try:
        doomed_ino = os.fstat(fh.fileno()).st_ino
        emu.admin("DELETE", f"/_emulator/messages/{ident}")
        _poll_until(lambda: not find_by_id(top / "Fax", ident), "the deleted fax to disappear")
        Path("/proc/sys/vm/drop_caches").write_text("2\n")  # dentries and inodes
        assert os.fstat(fh.fileno()).st_ino == doomed_ino  # still open: still there
        assert len(fh.read(100)) > 0
    finally:
        fh.close()
    # Closed: the kernel lets go of the deleted file's inode (at once, or at the next
    # drop_caches), and rcfs drops it from its table.
    Path("/proc/sys/vm/drop_caches").write_text("2\n")
    wait_for(lambda: _fs_status(mnt)["forgets"] > start["forgets"], 10,
             "the kernel to forget inodes")
    wait_for(lambda: _fs_status(mnt)["inodes"] < start["inodes"], 10,
             "the forgotten inode of the deleted fax to leave the table")
    assert os.stat(keep).st_ino == ino  # forgotten by the kernel, same number again
    assert mnt.alive


def test_a_file_the_kernel_forgot_is_served_from_the_page_cache_again(mnt: Mounted) -> None:
    """Once the kernel has forgotten a file (memory pressure; here drop_caches), the next
    open keeps the page cache, so a second read asks rcfs for nothing. It went to direct
    I/O, every read a FUSE request, when the lookup was answered from rcfs's attribute
    cache (README, Benchmarks: "A file the kernel forgot keeps the page cache")."""
    if os.geteuid() != 0:
        pytest.skip("making the kernel forget inodes (drop_caches) needs root")
    fax = sorted(files_under(mnt.folder() / "Fax"))[0]
    data = fax.read_bytes()  # cached (the open may have learned the size: direct I/O)
    assert fax.read_bytes() == data  # the size is proven: the page cache fills

    def content_bytes_read() -> int:
        return _fs_status(mnt)["read_bytes"]  # rcfs's content reads (not status.json's)

    before = content_bytes_read()
    assert fax.read_bytes() == data
    assert content_bytes_read() == before  # from the page cache
    forgets = _fs_status(mnt)["forgets"]
    Path("/proc/sys/vm/drop_caches").write_text("2\n")  # its inode, and so its pages
    wait_for(lambda: _fs_status(mnt)["forgets"] > forgets, 10, "the kernel to forget inodes")
    before = content_bytes_read()
    assert fax.read_bytes() == data
    assert content_bytes_read() > before  # the pages went with the inode: read from rcfs
    before = content_bytes_read()
    assert fax.read_bytes() == data
    assert content_bytes_read() == before  # and the page cache is used again
    assert mnt.alive


def _read_without_stat(path: Path, step: int) -> bytes:
    """The file read with read(2) alone: nothing asks the kernel for its size first."""
    fd = os.open(path, os.O_RDONLY)
    try:
        out = bytearray()
        while chunk := os.read(fd, step):
            out += chunk
        return bytes(out)
    finally:
        os.close(fd)


def test_the_first_open_proves_the_size_and_reads_through_the_page_cache(
        mnt: Mounted, emu: EmulatorProc) -> None:
    """Greetings have no size in the API: the listing shows an estimate, and the first open
    learns the size from its download's first response (a 206 to ``bytes=0-``, whose
    Content-Range total proves it). That open already reads through the page cache, so the
    second read costs rcfs nothing. Read in 4 KiB pieces with read(2) alone (no fstat: the
    kernel's next read is what asks for the size), a greeting smaller than its estimate and
    one larger come out exact: no zeros past the end, nothing cut at the estimate."""
    user = emu.user(admin=False)
    top = mnt.folder(user)
    os.listdir(top / "Greetings")  # loaded on first look
    wait_for(lambda: all(e["greetings_loaded"] for e in mnt.status()["extensions"].values()
                         if e["folder"] == top.name), 30, "greetings loaded")
    greetings = {p: emu.content("greeting", id_of(p.name))
                 for p in sorted(files_under(top / "Greetings"))}
    smaller = [p for p, data in greetings.items() if len(data) < p.stat().st_size]
    larger = [p for p, data in greetings.items() if len(data) > p.stat().st_size]
    assert smaller and larger, {p.name: (p.stat().st_size, len(d)) for p, d in greetings.items()}
    for path in (smaller[0], larger[0]):
        data = greetings[path]
        before = _fs_status(mnt)["read_bytes"]
        assert _read_without_stat(path, 4096) == data, path.name
        assert _fs_status(mnt)["read_bytes"] > before  # rcfs served it
        before = _fs_status(mnt)["read_bytes"]
        assert _read_without_stat(path, 4096) == data, path.name
        assert _fs_status(mnt)["read_bytes"] == before, path.name  # the page cache did
        assert path.stat().st_size == len(data)
    assert mnt.alive


def test_unreachable_api_serves_the_last_known_listing(mnt: Mounted, emu: EmulatorProc,
                                                       tmp_path: Path) -> None:
    require_programs("ls")
    top = mnt.folder(emu.user(admin=False))
    cached = sorted(p for p in files_under(top / "Fax") if p.suffix == ".pdf")[:3]
    for path in cached:  # in the cache now
        path.read_bytes()
    uncached = next(p for p in files_under(top / "Recordings"))
    os.listdir(top / "Greetings")  # loaded on first look (issue 10): look before the outage
    wait_for(lambda: all(e["calls"]["loaded"] and e["greetings_loaded"]
                         for e in mnt.status()["extensions"].values()
                         if e["folder"] == top.name), 30, "greetings loaded")
    listing = run(["ls", "-lR", str(top)]).stdout
    for rule in ({"kind": "status", "status": 503, "origin": "platform"},
                 {"kind": "status", "status": 503, "origin": "media"}):
        emu.fault(**rule)
    try:
        log = RequestLog(emu).mark()

        def refresh_failed() -> bool:
            os.listdir(top / "Voicemail")  # in use: refreshes keep being tried
            ext = next(e for e in mnt.status()["extensions"].values()
                       if e["folder"] == top.name)
            return bool(ext["last_error"])

        _poll_until(refresh_failed, "a failed refresh to show in status.json")
        assert any(e["status"] == 503 for e in log.since()), brief(log.since())
        time.sleep(2 * REFRESH)
        assert run(["ls", "-lR", str(top)]).stdout == listing
        for path in cached:
            assert path.read_bytes() == emu.content(
                "message", path.name.rsplit("[", 1)[1].split("]")[0])
        started = time.monotonic()
        with pytest.raises(OSError) as err:
            uncached.read_bytes()
        assert err.value.errno in (errno.EIO, errno.EAGAIN, errno.ETIMEDOUT)
        assert time.monotonic() - started < 15
    finally:
        emu.clear_faults()
    # Recovery: the next refresh clears the error and new messages show again.
    fresh = emu.admin("POST", "/_emulator/messages", {
        "extension_id": emu.user(admin=False)["extension_id"], "type": "Fax", "pages": 2})
    _poll_until(lambda: os.listdir(top / "Fax") and find_by_id(top / "Fax", str(fresh["id"])),
                "a fax added after the outage")
    ext = next(e for e in mnt.status()["extensions"].values() if e["folder"] == top.name)
    assert ext["last_error"] is None
    assert uncached.read_bytes() == emu.content(
        "recording", uncached.name.rsplit("[", 1)[1].split("]")[0])


def test_mount_with_the_emulator_stopped_lists_and_reads_the_cache(
        start_emulator: Callable[..., EmulatorProc], tmp_path: Path) -> None:
    require_fuse()
    require_programs("cp", "cmp", "find")
    emu = start_emulator("--data-seed", "1", *REAL_LIMITS)
    # The copy of 104's faxes takes more Heavy requests than one window allows: its next
    # slot is up to a window away, so the read deadline must outlast a window (with the
    # emulator's old 40 ms per response the first ten were spread out enough for 5 s).
    m = Mounted(emu, tmp_path / "m", refresh_interval=REFRESH, timezone="UTC",
                read_timeout=REAL_WINDOW + 4)
    try:
        m.start()
        m.wait_loaded()
        box = m.folder(emu.user(admin=False, index=2))  # 104
        tree = run(["find", str(m.root), "-path", "*/Outbox", "-prune", "-o", "-print"]
                   ).stdout.splitlines()
        copy = tmp_path / "copy"
        run(["cp", "-r", str(box / "Fax"), str(copy)], timeout=120)
        faxes = list(files_under(box / "Fax"))
        sizes = {p: os.stat(p).st_size for p in faxes}
        assert m.unmount() == 0
        emu.stop()

        started = time.monotonic()
        m.start()
        print(f"remounted with the emulator stopped in {time.monotonic() - started:.1f}s")
        again = run(["find", str(m.root), "-path", "*/Outbox", "-prune", "-o", "-print"]
                    ).stdout.splitlines()
        assert again == tree
        for path in faxes:
            run(["cmp", str(copy / path.relative_to(box / "Fax")), str(path)])
            assert os.stat(path).st_size == sizes[path] > 0
        never_read = next(p for p in files_under(box / "Voicemail") if p.suffix == ".mp3")
        started = time.monotonic()
        with pytest.raises(OSError) as err:
            never_read.read_bytes()
        # README errno table: offline and not cached -> ENETUNREACH.
        assert err.value.errno == errno.ENETUNREACH, err.value
        assert time.monotonic() - started < 15
        assert m.alive
        assert run(["ls", "-l", str(box / "Fax")]).returncode == 0
    finally:
        m.unmount()


def test_refreshes_share_one_account_call_log_sync(mnt: Mounted, emu: EmulatorProc) -> None:
    # Every mailbox whose Recordings someone looks at is refreshed each interval, all at
    # the same moment; the account's call log (Heavy budget) must be synced once for all
    # of them, never once per mailbox with the same sync token.
    boxes = [mnt.root / n for n in os.listdir(mnt.root) if n not in (".rcfs", "Calls", "Exports")]
    log = RequestLog(emu).mark()
    end = time.monotonic() + 4 * REFRESH + 0.5
    while time.monotonic() < end:  # all five Recordings folders in use the whole time
        for box in boxes:
            os.listdir(box / "Recordings")
        time.sleep(0.2)
    sent = log.since()
    syncs = [e for e in sent if e["path"].endswith("/call-log-sync")]
    msg_syncs = [e for e in sent if e["path"].endswith("/message-sync")]
    per_ext = Counter(e["path"] for e in msg_syncs)
    assert len(per_ext) == 5 and min(per_ext.values()) >= 1, brief(sent)
    # Without the shared sync this would be one per mailbox per interval (about 20); a
    # loaded machine may stretch the intervals, so only the upper bound is tight.
    assert 1 <= len(syncs) <= 5, brief(syncs)
    tokens = [e["query"] for e in syncs]
    assert len(tokens) == len(set(tokens)), "the same sync token was used twice"
    assert content_requests(sent) == []


def test_an_idle_mount_spends_nothing_on_a_timer(mnt: Mounted, emu: EmulatorProc) -> None:
    # Issue 10: nothing Heavy or Medium on a timer while the user does nothing; refreshes
    # stop once no folder was used for five intervals (a timer refresh is not a use).
    for name in os.listdir(mnt.root):
        if name not in (".rcfs", "Calls", "Exports"):
            os.listdir(mnt.root / name / "Voicemail")
    time.sleep(5 * REFRESH + 1)  # the folders leave "in use"
    log = RequestLog(emu).mark()
    time.sleep(4 * REFRESH + 0.5)  # hands off
    sent = log.since()
    assert [e for e in sent if e.get("group") in ("Medium", "Heavy")] == [], brief(sent)
    assert len(sent) <= 5, brief(sent)  # at most the refreshes already under way
