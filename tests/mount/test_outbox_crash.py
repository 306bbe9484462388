"""Crash tests: kill -9 the rcfs process at every dangerous moment of a send, remount, and
count what the emulator received. Every case must end with exactly one message.

(a) after close returned, before the POST: ``queued`` (journal: queued) and
    ``before_post`` (journal: sending, but nothing went out: the message store is checked,
    nothing found, sent once after the settle time);
(b) while the POST is in flight (the emulator has created the message and delays its
    response);
(c) after the POST succeeded but before the journal recorded it (``after_post``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.emulator_proc import EmulatorProc
from tests.mount_helper import Mounted, require_fuse
from tests.outbox_support import (
    FAST_CONFIG,
    FAX_TO,
    SMS_TO,
    emulator_args,
    failpoint_marker,
    kill9,
    outbox,
    pdf,
    sends,
    wait,
    write_file,
)

pytestmark = pytest.mark.mount

CASES = [
    ("fax", "queued"), ("fax", "before_post"), ("fax", "in_flight"), ("fax", "after_post"),
    ("sms", "before_post"), ("sms", "in_flight"), ("sms", "after_post"),
]


@pytest.mark.parametrize(("kind", "moment"), CASES)
def test_kill9_then_remount_sends_exactly_once(
        kind: str, moment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        start_emulator: Callable[..., EmulatorProc]) -> None:
    require_fuse()
    if moment != "in_flight":
        monkeypatch.setenv("RCFS_OUTBOX_FAILPOINT", moment)
    emu = start_emulator(*emulator_args())
    channel, number = ("Fax", FAX_TO) if kind == "fax" else ("Text", SMS_TO)
    name = "contract.pdf" if kind == "fax" else "note.txt"
    data = pdf(2, "crash") if kind == "fax" else f"exactly once ({moment})".encode()
    m = Mounted(emu, tmp_path, **FAST_CONFIG)
    m.start()
    try:
        rdir = outbox(m) / channel / number
        os.mkdir(rdir)
        if moment == "in_flight":
            emu.fault(kind="delay", path=f"/{'fax' if kind == 'fax' else 'sms'}$",
                      method="POST", seconds=5, count=1)
        assert write_file(rdir / name, data) == 0  # close returned: accepted and spooled
        if moment == "in_flight":
            wait(lambda: sends(emu, kind), 15, "the emulator to receive the POST")
        else:
            wait(lambda: failpoint_marker(m, moment), 15, f"failpoint {moment}",
                 on_fail=m.log)
        kill9(m)
        expected_before = 1 if moment in ("in_flight", "after_post") else 0
        assert len(sends(emu, kind)) == expected_before
        emu.clear_faults()
        monkeypatch.delenv("RCFS_OUTBOX_FAILPOINT", raising=False)
        m.start()
        # The job survived the crash and is visible at once, where it was written.
        box = outbox(m) / "Sent" / channel / number
        status = box / (name + ".status.txt")
        wait(status.exists, 30, "the job to finish after the remount", on_fail=m.log)
        got = sends(emu, kind)
        assert len(got) == 1, got
        if kind == "fax":
            assert got[0]["attachments"][0]["sha256"] == hashlib.sha256(data).hexdigest()
        else:
            assert got[0]["request"]["text"] == data.decode()
        text = status.read_text()
        if expected_before:
            assert "found in the message store" in text, text
        elif moment == "before_post":
            assert "not in the message store" in text, text
        assert (box / name).read_bytes() == data
    finally:
        m.unmount()
