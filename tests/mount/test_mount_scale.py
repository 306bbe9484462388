"""The metadata index at scale (issue 12): about 100,000 messages (the emulator's
``--scale 20000``: five mailboxes), at RingCentral's default request counts with the window
and the penalty scaled down to 6 s.

One mount, in order: a first sync in pages during which a Heavy 429 on the call log hides
no message-store folder; a full ``find`` under the RSS target; idle refreshes that write
under 64 KiB each (``/proc/<pid>/io``); a remount that lists everything known within 1 s,
with every request to RingCentral failing (so nothing it shows came from the network).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.emulator_proc import EmulatorProc
from tests.mount_helper import Mounted, RequestLog, brief, require_fuse, run, wait_for

pytestmark = [pytest.mark.mount, pytest.mark.slow]

SCALE = 20000
WINDOW = "6"
RSS_LIMIT_MB = 150
IDLE_WRITE_LIMIT = 64 * 1024
REFRESH = 2.0
MESSAGE_AREAS = ("Voicemail", "Fax", "Texts")


@pytest.fixture(scope="module")
def big() -> Iterator[EmulatorProc]:
    require_fuse()
    emu = EmulatorProc("--scale", str(SCALE), "--window", WINDOW, "--penalty", WINDOW,
                       timeout=300, check_openapi=False)
    try:
        yield emu
    finally:
        emu.stop(check=False)


def _proc_io(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise KeyError("VmRSS")


def _mailboxes(m: Mounted) -> list[Path]:
    return [m.root / n for n in sorted(os.listdir(m.root))
            if n not in (".rcfs", "Calls", "Exports")]


def _folders(m: Mounted) -> list[str]:
    """Every folder of every mailbox (the months and conversations included), listed."""
    out = []
    for box in _mailboxes(m):
        for area in os.listdir(box):
            if area != "Outbox":
                out += [f"{box.name}/{area}/{sub}" for sub in os.listdir(box / area)]
    return out


def _months(m: Mounted) -> dict[str, list[str]]:
    """Every message-store folder's listing (what must survive a remount unchanged)."""
    out = {}
    for box in _mailboxes(m):
        for area in MESSAGE_AREAS:
            for sub in sorted(os.listdir(box / area)):
                out[f"{box.name}/{area}/{sub}"] = sorted(os.listdir(box / area / sub))
    return out


def _first_sync(m: Mounted, big: EmulatorProc) -> list[Path]:
    """The first sync under a throttled call log: listings never block on the network,
    months appear as pages arrive, every mailbox loads. Returns the mailboxes."""
    boxes = _mailboxes(m)
    assert len(boxes) == 5
    for box in boxes:  # look at Recordings: the call log is asked for, and throttled
        started = time.monotonic()
        os.listdir(box / "Recordings")
        assert time.monotonic() - started < 6, "a listing blocked on the network"

    def loading_visible() -> bool:
        exts = m.status()["extensions"].values()
        return any(e["progress"].get("pages", 0) >= 1 for e in exts)

    wait_for(loading_visible, 60, "first-sync progress in status.json")

    def message_folders_listed() -> bool:
        for box in boxes:
            started = time.monotonic()
            months = os.listdir(box / "Voicemail")
            assert time.monotonic() - started < 6, "a listing blocked on the network"
            if not months:
                return False
        return True

    # Months appear as pages arrive, whatever the call log is doing.
    wait_for(message_folders_listed, 120, "every mailbox's Voicemail months")
    wait_for(lambda: all(e["loaded"] and not e["loading"]
                         for e in m.status()["extensions"].values()), 240,
             "the first sync of every mailbox")
    status = m.status()["extensions"]
    assert any(e["calls"]["last_error"] or e["calls"]["loaded"] for e in status.values())
    for box in boxes:
        for area in ("Voicemail", "Fax"):
            assert os.listdir(box / area), f"{box.name}/{area} is empty"
    assert sum(1 for box in boxes if os.listdir(box / "Texts")) >= 4  # a queue has none
    total = sum(e["progress"].get("messages", 0) for e in status.values())
    assert total >= 5 * SCALE, status
    return boxes


def _find_then_idle(m: Mounted, big: EmulatorProc, boxes: list[Path], pid: int) -> None:
    """A full ``find`` within the memory limit, then idle refreshes that write almost
    nothing."""
    # Single-flight: five mailboxes' Recordings opened at once asked for the account's
    # recording format (one Heavy request) once, and synced the call log together.
    probes = [e for e in big.requests() if re.search(r"/recording/\d+$", e["path"])]
    assert len(probes) <= 1, brief(probes)
    found = run(["find", str(m.root)], timeout=300).stdout.count("\n")
    assert found > 5 * SCALE
    rss = _rss_mb(pid)
    assert rss <= RSS_LIMIT_MB, f"RSS {rss} MB after a full find"

    # Idle refreshes (folders in use, nothing new on the server) write almost nothing.
    log = RequestLog(big).mark()
    before = _proc_io(pid, "write_bytes")
    for _ in range(int(4 * REFRESH)):
        for box in boxes:
            os.listdir(box / "Voicemail")
        time.sleep(1.0)
    written = _proc_io(pid, "write_bytes") - before
    refreshes = [e for e in log.since() if e["path"].endswith("/message-sync")]
    assert len(refreshes) >= 5, brief(log.since())
    assert written / len(refreshes) < IDLE_WRITE_LIMIT, (written, len(refreshes))
    print(f"\nfirst sync + find: RSS {rss} MB; idle: {written} bytes written by "
          f"{len(refreshes)} refreshes")


def _remount_offline(m: Mounted, listing: dict[str, list[str]]) -> None:
    """Remounted with RingCentral failing every request: everything known lists at once."""
    m.start(timeout=60)
    # rcfs times its own start once its probe of the mountpoint is answered, which may come
    # a moment after the first answer this helper got.
    wait_for(lambda: "answer_s" in m.status()["startup"], 10,
             "rcfs to record when its mount answered")
    startup = m.status()["startup"]
    # From the loaded program to the mount answering (Python's own start-up excluded).
    assert startup["answer_s"] < 1.0, startup
    started = time.monotonic()
    folders = _folders(m)
    took = time.monotonic() - started
    assert len(folders) > 250
    assert took < 1.0, f"listing every folder after a remount took {took:.2f}s"
    started = time.monotonic()
    assert _months(m) == listing
    print(f"remount: answered {startup['answer_s']}s after start, {len(folders)} folders "
          f"in {took:.2f}s, every file in {time.monotonic() - started:.2f}s")


def test_scale_first_sync_find_idle_writes_and_remount(big: EmulatorProc,
                                                       tmp_path: Path) -> None:
    # One Heavy 429 on the call log while the message store is still loading.
    big.fault(kind="status", status=429, path="/call-log", count=1, retry_after=6)
    # The polling path: idle refreshes are what it measures (with the push socket
    # connected there are none; push freshness has its own tests, test_mount_push.py).
    m = Mounted(big, tmp_path, refresh_interval=REFRESH, timezone="UTC", push=False)
    with m:
        assert m.proc is not None
        boxes = _first_sync(m, big)
        _find_then_idle(m, big, boxes, m.proc.pid)
        listing = _months(m)

    # Remount with RingCentral failing every request: everything known lists at once.
    big.fault(kind="status", status=503, origin="platform")
    try:
        _remount_offline(m, listing)
    finally:
        m.unmount()
        big.clear_faults()
