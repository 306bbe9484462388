"""The README's errno table, row by row, through real mounts, and interruptible waits.

These run the emulator at RingCentral's real 60 s window and penalty (default counts), so
an empty Heavy budget stays empty for the whole test: a read that needs a request waits
(interactive readers are next in line, but the line is a minute long), a read whose
deadline comes first fails with EAGAIN at once, and a reader killed while it waits ends
within a second (rcfs watches its pending signals) while the mount stays healthy and the
queued download it no longer needs is never sent.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.emulator_proc import EmulatorProc
from tests.mount_helper import (
    REAL_LIMITS,
    Mounted,
    RequestLog,
    brief,
    files_under,
    require_fuse,
    wait_for,
)

pytestmark = pytest.mark.mount

REAL_60 = ("--window", "60", "--penalty", "60")


@pytest.fixture
def mount_on(tmp_path: Path, start_emulator: Callable[..., EmulatorProc]
             ) -> Iterator[Callable[..., tuple[EmulatorProc, Mounted]]]:
    """Factory: an emulator (seed 1, default counts, ``limits`` flags) and a loaded mount."""
    mounts: list[Mounted] = []

    def make(limits: tuple[str, ...], **config: Any) -> tuple[EmulatorProc, Mounted]:
        require_fuse()
        emu = start_emulator("--data-seed", "1", *limits)
        m = Mounted(emu, tmp_path / f"m{len(mounts)}", refresh_interval=600, timezone="UTC",
                    **config)
        mounts.append(m)
        m.start()
        m.wait_loaded()
        return emu, m

    yield make
    for m in mounts:
        m.unmount()




def _exhaust_heavy(mnt: Mounted, recordings: list[Path]) -> list[Path]:
    """Read recordings until the mount's Heavy budget is spent; return the unread ones.
    Each is read by a new ``cat`` (one file per process: interactive, so the last slot of
    the window, which bulk readers leave free, is taken too)."""
    left = list(recordings)
    while mnt.group_status("Heavy").get("remaining", 10) > 0:
        subprocess.run(["cat", str(left.pop(0))], stdout=subprocess.DEVNULL, check=True,
                       timeout=60)
    return left


def _wait_until_waiting(mnt: Mounted, pid: int) -> dict[str, Any]:
    def waiting() -> dict[str, Any] | None:
        for w in mnt.status()["readers"]["waiting"]:
            if w["pid"] == pid or w.get("tgid") == pid:
                return w  # type: ignore[no-any-return]
        return None
    return wait_for(waiting, 30, f"pid {pid} waiting in rcfs",  # type: ignore[no-any-return]
                    on_fail=lambda: str(mnt.status()["readers"]))


def _ended_within(proc: subprocess.Popen[bytes], sig: signal.Signals, mnt: Mounted) -> float:
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        # What the reader and rcfs were doing, for the failure message.
        stack = Path(f"/proc/{proc.pid}/stack")
        where = stack.read_text() if os.geteuid() == 0 and stack.exists() else "?"
        readers = mnt.status()["readers"]
        proc.kill()
        proc.wait(10)
        raise AssertionError(
            f"{sig.name}: the reader did not end within 10 s; its kernel stack:\n{where}\n"
            f"rcfs's readers: {readers}\nrcfs's log:\n{mnt.log()[-4000:]}") from None
    return time.monotonic() - t0


def test_ctrl_c_and_sigkill_end_a_wait_for_budget_within_a_second(
        mount_on: Callable[..., tuple[EmulatorProc, Mounted]]) -> None:
    emu, mnt = mount_on(REAL_60)
    recs = sorted(files_under(mnt.mailbox("104") / "Recordings"))
    left = _exhaust_heavy(mnt, recs)
    assert len(left) >= 3
    log = RequestLog(emu).mark()
    # A Python reader (handles SIGINT: KeyboardInterrupt) and cat (killed outright). The
    # reader installs Python's handler itself: started from a background job (`scripts/test
    # &`), it would inherit SIGINT ignored, and an ignored signal is never pending.
    py = subprocess.Popen([sys.executable, "-c",
                           "import signal, sys; "
                           "signal.signal(signal.SIGINT, signal.default_int_handler); "
                           "open(sys.argv[1], 'rb').read()", str(left[0])],
                          stderr=subprocess.PIPE)
    cat = subprocess.Popen(["cat", str(left[1])], stdout=subprocess.DEVNULL)
    try:
        seen = _wait_until_waiting(mnt, py.pid)
        _wait_until_waiting(mnt, cat.pid)
        assert seen["class"] == "interactive"
        assert mnt.group_status("Heavy")["queue"]["interactive"]["waiting"] == 2
        # A wait of more than 5 s is logged once: the file, the process, the reason.
        line = wait_for(lambda: next((ln for ln in mnt.log().splitlines()
                                      if "has waited" in ln and f"pid {py.pid} " in ln), None),
                        15, "the slow-wait log line")
        assert left[0].name in line and "waiting for a Heavy request slot" in line, line
        took_int = _ended_within(py, signal.SIGINT, mnt)
        took_kill = _ended_within(cat, signal.SIGKILL, mnt)
    except BaseException:
        if py.stderr is not None:
            py.stderr.close()  # not read: an unclosed pipe would fail a later test
        raise
    finally:
        for p in (py, cat):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert took_int < 1.5 and took_kill < 1.5, (took_int, took_kill)
    assert py.returncode != 0 and cat.returncode == -signal.SIGKILL
    assert py.stderr is not None
    with py.stderr:
        assert b"KeyboardInterrupt" in py.stderr.read()
    # The downloads they no longer want leave the queue (nothing is sent for them later).
    wait_for(lambda: not mnt.group_status("Heavy").get("queued"), 5, "an empty Heavy queue",
             on_fail=lambda: str(mnt.group_status("Heavy")))
    assert log.content() == [], brief(log.content())
    assert mnt.status()["readers"]["interrupted"] >= 2
    # The mount is healthy: a cached file reads, a new listing answers.
    with open(recs[0], "rb") as fh:
        assert fh.read(100)
    assert os.listdir(mnt.root)
    assert mnt.alive
    text = mnt.log()
    assert "SIGINT pending (EINTR)" in text and "SIGKILL pending (EINTR)" in text


def test_throttled_read_past_its_deadline_is_eagain_and_server_error_is_eio(
        mount_on: Callable[..., tuple[EmulatorProc, Mounted]]) -> None:
    emu, mnt = mount_on(REAL_60, read_timeout=3)
    recs = sorted(files_under(mnt.mailbox("104") / "Recordings"))
    left = _exhaust_heavy(mnt, recs)
    log = RequestLog(emu).mark()
    # Throttled: the next Heavy slot is about a minute away, the deadline 3 s: EAGAIN at
    # once (at open: the size cannot be known), no request sent, nothing logged as a bug.
    t0 = time.monotonic()
    with pytest.raises(OSError) as err:
        open(left[0], "rb").close()
    assert err.value.errno == errno.EAGAIN, err.value
    assert time.monotonic() - t0 < 3.5
    assert log.content() == []
    # Server error: RingCentral answers 500 for a fax's content (after rcfs's retries).
    fax = sorted(files_under(mnt.mailbox("101") / "Fax"))[0]
    mid = fax.name.rsplit("[", 1)[1].split("]")[0]
    emu.fault(kind="status", status=500, path=f"/message-store/{mid}/content")
    with pytest.raises(OSError) as err:
        fax.read_bytes()
    assert err.value.errno == errno.EIO, err.value
    # Forbidden: RingCentral answers 403 (the credentials may not read it): EACCES.
    other = sorted(files_under(mnt.mailbox("101") / "Fax"))[1]
    mid = other.name.rsplit("[", 1)[1].split("]")[0]
    emu.fault(kind="status", status=403, path=f"/message-store/{mid}/content")
    with pytest.raises(OSError) as err:
        other.read_bytes()
    assert err.value.errno == errno.EACCES, err.value
    emu.clear_faults()
    assert [e for e in log.since() if e["status"] == 429] == []
    assert mnt.alive


def test_offline_uncached_read_is_enetunreach(
        mount_on: Callable[..., tuple[EmulatorProc, Mounted]]) -> None:
    emu, mnt = mount_on(REAL_LIMITS, read_timeout=5)
    faxes = sorted(files_under(mnt.mailbox("101") / "Fax"))
    cached = faxes[0].read_bytes()
    emu.stop()
    with pytest.raises(OSError) as err:
        faxes[1].read_bytes()
    assert err.value.errno == errno.ENETUNREACH, err.value
    assert faxes[0].read_bytes() == cached  # what is cached still reads offline
    assert mnt.alive
