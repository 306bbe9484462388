"""Outbox promises of the README that no other test covers, through a real mount at
RingCentral's default request counts (windows and penalties scaled to 6 s), against an
emulator whose message store lags behind sends (``message_store_lag``):

* after an unclear answer, the job waits ``outbox_settle_time`` for the store before it
  sends again: a resend before the lag has passed would be a duplicate;
* option xattrs: the most specific of ``Fax/``, the recipient folder and the job wins;
* options are frozen when the job is queued;
* ``rm`` of a queued (not draft) job cancels it;
* a rename across mailboxes is EXDEV.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.emulator_proc import EmulatorProc
from tests.mount_helper import Mounted, module_mount, run
from tests.outbox_support import (
    FAST_CLOCKS,
    FAST_CONFIG,
    outbox,
    pdf,
    to,
    wait,
    write_file,
    xattr,
)
from tests.programs import require_programs

pytestmark = [pytest.mark.mount, pytest.mark.usefixtures("no_faults", "healthy")]

LAG = 3.0  # seconds the message store lags behind a send
SETTLE = 2 * LAG  # the mount's outbox_settle_time: longer than the lag, as it must be
HOLD = 4  # Retry-After of a 429 that keeps a job queued while a test acts on it


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProc]:
    with EmulatorProc("--data-seed", "1", "--window", "6", "--penalty", "6", *FAST_CLOCKS,
                      "--set", f"message_store_lag={LAG}") as proc:
        yield proc


@pytest.fixture(scope="module")
def mnt(emu: EmulatorProc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounted]:
    with module_mount(emu, tmp_path_factory.mktemp("outbox-sem"),
                      **{**FAST_CONFIG, "outbox_settle_time": SETTLE}) as m:
        yield m




def finished(m: Mounted, box: str, channel: str, number: str, name: str,
             timeout: float = 60.0) -> str:
    status = outbox(m) / box / channel / number / (name + ".status.txt")
    wait(status.exists, timeout, str(status), on_fail=lambda: m.log()[-3000:])
    return status.read_text()


def fired(emu: EmulatorProc) -> int:
    return sum(r["applied"] for r in emu.admin("GET", "/_emulator/faults"))


# -- the settle time against a lagging message store ----------------------------------------


def test_unclear_send_waits_for_the_lagging_store_and_sends_once(
        mnt: Mounted, emu: EmulatorProc) -> None:
    """The text is created but its answer is lost; for LAG seconds the store does not list
    it. A resend before then would send it twice; rcfs waits SETTLE, finds it, stops."""
    number = "+14155550301"
    emu.fault(kind="reset_response", path="/sms$", method="POST", count=1)
    (outbox(mnt) / "Text" / number).mkdir()
    assert write_file(outbox(mnt) / "Text" / number / "once.txt", b"exactly once") == 0
    text = finished(mnt, "Sent", "Text", number, "once.txt")
    assert fired(emu) == 1
    got = to(emu, number)
    assert len(got) == 1, f"{len(got)} texts sent:\n{text}"
    assert "found in the message store" in text, text
    posts = [e for e in emu.requests() if e["method"] == "POST" and e["path"].endswith("/sms")]
    assert len(posts) == 1, posts


# -- options: most specific wins, frozen when queued ------------------------------------------


def test_most_specific_option_wins(mnt: Mounted, emu: EmulatorProc) -> None:
    fax = outbox(mnt) / "Fax"
    near, far = "+12125550311", "+12125550312"
    os.setxattr(fax, "user.rc.fax_resolution", b"Low")
    os.setxattr(fax, "user.rc.cover_index", b"3")
    os.setxattr(fax, "user.rc.cover_page_text", b"from the Fax folder")
    try:
        os.mkdir(fax / near)
        os.mkdir(fax / far)
        os.setxattr(fax / near, "user.rc.fax_resolution", b"High")  # folder beats Fax/
        os.mkdir(fax / near / ".job")
        os.setxattr(fax / near / ".job", "user.rc.cover_index", b"0")  # job beats both
        os.setxattr(fax / near / ".job", "user.rc.cover_page_text", b"")  # cleared here
        assert write_file(fax / near / ".job" / "a.pdf", pdf(1, "near")) == 0
        os.rename(fax / near / ".job", fax / near / "job")
        assert write_file(fax / far / "b.pdf", pdf(1, "far")) == 0
        finished(mnt, "Sent", "Fax", near, "job")
        finished(mnt, "Sent", "Fax", far, "b.pdf")
    finally:
        for name in ("user.rc.fax_resolution", "user.rc.cover_index",
                     "user.rc.cover_page_text"):
            os.setxattr(fax, name, b"")
    (one,), (two,) = to(emu, near, "fax"), to(emu, far, "fax")
    assert one["request"].get("faxResolution") == "High"
    assert one["request"].get("coverIndex", 0) == 0
    assert "coverPageText" not in one["request"]
    assert two["request"].get("faxResolution") == "Low"
    assert two["request"].get("coverIndex") == 3
    assert two["request"].get("coverPageText") == "from the Fax folder"


def _held_fax(mnt: Mounted, emu: EmulatorProc, number: str, name: str) -> Path:
    """Queue a fax whose first POST is answered 429 (Retry-After HOLD): it stays queued."""
    emu.fault(kind="status", status=429, path="/fax$", method="POST", count=1,
              retry_after=HOLD)
    rdir = outbox(mnt) / "Fax" / number
    rdir.mkdir()
    path = rdir / name
    assert write_file(path, pdf(1, name)) == 0
    wait(lambda: fired(emu) == 1, 30, "the 429 on the fax POST")
    wait(lambda: xattr(path, "user.rc.status") == "queued", 10, "the job queued again")
    return path


def test_options_are_frozen_when_queued(mnt: Mounted, emu: EmulatorProc) -> None:
    number = "+12125550313"
    rdir = outbox(mnt) / "Fax" / number
    rdir.mkdir()
    os.setxattr(rdir, "user.rc.fax_resolution", b"Low")
    emu.fault(kind="status", status=429, path="/fax$", method="POST", count=1,
              retry_after=HOLD)
    assert write_file(rdir / "frozen.pdf", pdf(1, "frozen")) == 0
    wait(lambda: fired(emu) == 1, 30, "the 429 on the fax POST")
    # Queued (waiting out the 429): a later change of the folder does not reach the job.
    os.setxattr(rdir, "user.rc.fax_resolution", b"High")
    os.setxattr(outbox(mnt) / "Fax", "user.rc.cover_index", b"2")
    try:
        assert xattr(rdir / "frozen.pdf", "user.rc.fax_resolution") == "Low"
        text = finished(mnt, "Sent", "Fax", number, "frozen.pdf")
    finally:
        os.setxattr(outbox(mnt) / "Fax", "user.rc.cover_index", b"")
    (got,) = to(emu, number, "fax")
    assert got["request"].get("faxResolution") == "Low", text
    assert got["request"].get("coverIndex", 0) == 0, text


# -- cancel a queued job ----------------------------------------------------------------------


def test_rm_cancels_a_queued_job(mnt: Mounted, emu: EmulatorProc) -> None:
    require_programs("rm")
    number = "+12125550314"
    path = _held_fax(mnt, emu, number, "cancel-me.pdf")
    run(["rm", str(path)])
    assert not path.exists()
    assert "cancel-me.pdf" not in os.listdir(path.parent)
    # Past the Retry-After, the sender has nothing to send.
    wait(lambda: not [j for j in mnt.status().get("outbox", []) if number in str(j)], 30,
         "the job to leave the queue")
    other = _again(mnt, emu)
    assert other  # a later send to another number went through meanwhile
    assert to(emu, number) == []
    assert not (outbox(mnt) / "Sent" / "Fax" / number / "cancel-me.pdf").exists()
    assert not (outbox(mnt) / "Failed" / "Fax" / number / "cancel-me.pdf").exists()


def _again(mnt: Mounted, emu: EmulatorProc) -> list[dict[str, Any]]:
    """Send one more fax after the HOLD, so the queue has certainly been served since."""
    number = "+12125550319"
    (outbox(mnt) / "Fax" / number).mkdir()
    assert write_file(outbox(mnt) / "Fax" / number / "later.pdf", pdf(1, "later")) == 0
    finished(mnt, "Sent", "Fax", number, "later.pdf")
    return to(emu, number, "fax")


# -- rename across mailboxes ------------------------------------------------------------------


def test_rename_across_mailboxes_is_exdev(mnt: Mounted, emu: EmulatorProc) -> None:
    mine = outbox(mnt) / "Fax" / "+12125550315"
    other_user = emu.user(admin=False)
    theirs = mnt.folder(other_user) / "Outbox" / "Fax" / "+12125550315"
    mine.mkdir()
    theirs.mkdir()
    assert write_file(mine / ".draft.pdf", pdf(1, "draft")) == 0
    for src, dst in ((mine / ".draft.pdf", theirs / ".draft.pdf"),
                     (mine, theirs.parent / "+12125550316")):
        with pytest.raises(OSError) as exc:
            os.rename(src, dst)
        assert exc.value.errno == errno.EXDEV, (src, dst, exc.value)
    assert xattr(mine / ".draft.pdf", "user.rc.status") == "draft"
    assert not (theirs / ".draft.pdf").exists()
    os.unlink(mine / ".draft.pdf")
    assert to(emu, "+12125550315") == []


# -- why the settle time matters (last: it remounts) ------------------------------------------


def test_a_settle_time_shorter_than_the_lag_would_send_twice(
        mnt: Mounted, emu: EmulatorProc) -> None:
    """The control of the first test: the same unclear send with a settle time below the
    store's lag is sent twice. So the lag knob does exercise ``outbox_settle_time``, and
    the first test would catch a sender that ignored it."""
    mnt.restart(extra={**mnt.extra, "outbox_settle_time": LAG / 6})
    mnt.wait_loaded()
    number = "+14155550302"
    emu.fault(kind="reset_response", path="/sms$", method="POST", count=1)
    (outbox(mnt) / "Text" / number).mkdir()
    assert write_file(outbox(mnt) / "Text" / number / "twice.txt", b"sent twice") == 0
    text = finished(mnt, "Sent", "Text", number, "twice.txt")
    assert "not in the message store" in text, text
    assert len(to(emu, number)) == 2
