"""The outbox on a real mount against the emulator: what a user does with cp, mv, mkdir,
setfattr, and what RingCentral (the emulator's log of every send) received."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.emulator_proc import EmulatorProc
from tests.mount_helper import Mounted, require_fuse, run
from tests.outbox_support import (
    FAST_CONFIG,
    emulator_args,
    jpeg,
    outbox,
    pdf,
    png,
    sends,
    to,
    wait,
    wav,
    write_file,
    xattr,
)

pytestmark = pytest.mark.mount


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmulatorProc, Mounted]]:
    require_fuse()
    emu = EmulatorProc(*emulator_args())
    try:
        with Mounted(emu, tmp_path_factory.mktemp("outbox"), **FAST_CONFIG) as m:
            yield emu, m
    finally:
        emu.stop()



def finished(box: Path, name: str, timeout: float = 30.0) -> str:
    status = box / (name + ".status.txt")
    wait(status.exists, timeout, f"{status}")
    return status.read_text()


def test_fax_pdf_cp_sends_exactly_one_fax_with_the_same_bytes(
        env: tuple[EmulatorProc, Mounted], tmp_path: Path) -> None:
    emu, m = env
    number = "+12125550101"
    doc = pdf(3, "contract")
    src = tmp_path / "contract.pdf"
    src.write_bytes(doc)
    ob = outbox(m)
    os.mkdir(ob / "Fax" / "212-555-0101")  # normalised to E.164
    assert number in os.listdir(ob / "Fax")
    # The server answers the send 2 s late, so the file is certainly still waiting when
    # its state is read: README "State", a waiting file shows queued, sending or sent.
    emu.fault(kind="delay", path="/fax$", method="POST", seconds=2.0, count=1)
    try:
        run(["cp", str(src), str(ob / "Fax" / number)])
        queued = ob / "Fax" / number / "contract.pdf"
        assert xattr(queued, "user.rc.status") in ("queued", "sending")
        wait(lambda: xattr(queued, "user.rc.status") == "sending", 10, "the fax sending")
    finally:
        emu.clear_faults()
    text = finished(ob / "Sent" / "Fax" / number, "contract.pdf")
    assert "sent: the fax went through" in text and "Pages:       3" in text
    got = to(emu, number, "fax")
    assert len(got) == 1, got
    assert [a["sha256"] for a in got[0]["attachments"]] == [sha(doc)]
    assert got[0]["attachments"][0]["content_type"] == "application/pdf"
    assert (ob / "Sent" / "Fax" / number / "contract.pdf").read_bytes() == doc
    assert not queued.exists()
    assert xattr(ob / "Sent" / "Fax" / number / "contract.pdf", "user.rc.status") == "delivered"


def test_sms_and_mms(env: tuple[EmulatorProc, Mounted], tmp_path: Path) -> None:
    emu, m = env
    number = "+14155550102"
    ob = outbox(m)
    os.mkdir(ob / "Text" / number)
    assert write_file(ob / "Text" / number / "hello.txt", "Héllo from rcfs 👋\n".encode()) == 0
    photo = jpeg(5)
    assert write_file(ob / "Text" / number / "photo.jpg", photo) == 0
    finished(ob / "Sent" / "Text" / number, "hello.txt")
    finished(ob / "Sent" / "Text" / number, "photo.jpg")
    sms = to(emu, number, "sms")
    mms = to(emu, number, "mms")
    assert [s["request"]["text"] for s in sms] == ["Héllo from rcfs 👋"]
    assert len(mms) == 1 and [a["sha256"] for a in mms[0]["attachments"]] == [sha(photo)]
    status = (ob / "Sent" / "Text" / number / "hello.txt.status.txt").read_text()
    assert "delivered" in status


def test_mms_job_folder_text_and_pictures(env: tuple[EmulatorProc, Mounted]) -> None:
    emu, m = env
    number = "+14155550103"
    rdir = outbox(m) / "Text" / number
    os.mkdir(rdir)
    os.mkdir(rdir / ".trip")
    assert write_file(rdir / ".trip" / "a-note.txt", b"Look at these") == 0
    assert write_file(rdir / ".trip" / "b.png", png(1)) == 0
    assert write_file(rdir / ".trip" / "c.jpg", jpeg(2)) == 0
    assert not to(emu, number)  # a draft is never sent
    os.rename(rdir / ".trip", rdir / "trip")
    finished(outbox(m) / "Sent" / "Text" / number, "trip")
    got = to(emu, number, "mms")
    assert len(got) == 1
    assert got[0]["request"]["text"] == "Look at these"
    assert [a["filename"] for a in got[0]["attachments"]] == ["b.png", "c.jpg"]
    assert sorted(os.listdir(outbox(m) / "Sent" / "Text" / number / "trip")) == [
        "a-note.txt", "b.png", "c.jpg"]


def test_multi_document_fax_with_options(env: tuple[EmulatorProc, Mounted]) -> None:
    emu, m = env
    number = "+12125550104"
    rdir = outbox(m) / "Fax" / number
    os.mkdir(rdir)
    os.setxattr(rdir, "user.rc.fax_resolution", b"low")
    os.setxattr(rdir, "user.rc.cover_index", b"2")
    os.mkdir(rdir / ".offer")
    os.setxattr(rdir / ".offer", "user.rc.cover_page_text", "Offer – 2 documents".encode())
    one, two = pdf(2, "terms"), b"Plain text page\n" * 10
    assert write_file(rdir / ".offer" / "1-terms.pdf", one) == 0
    assert write_file(rdir / ".offer" / "2-notes.txt", two) == 0
    os.rename(rdir / ".offer", rdir / "offer")
    assert xattr(rdir / "offer", "user.rc.fax_resolution") == "Low"
    text = finished(outbox(m) / "Sent" / "Fax" / number, "offer")
    got = to(emu, number, "fax")
    assert len(got) == 1, got
    req = got[0]["request"]
    assert req.get("faxResolution") == "Low" and req.get("coverIndex") == 2
    assert req.get("coverPageText") == "Offer – 2 documents"
    assert [a["sha256"] for a in got[0]["attachments"]] == [sha(one), sha(two)]
    assert [a["content_type"] for a in got[0]["attachments"]] == ["application/pdf",
                                                                   "text/plain"]
    assert "fax_resolution=Low" in text


def test_greeting_upload(env: tuple[EmulatorProc, Mounted]) -> None:
    emu, m = env
    audio = wav()
    before = len(sends(emu, "greeting"))
    assert write_file(outbox(m) / "Greetings" / "Voicemail.wav", audio) == 0
    text = finished(outbox(m) / "Sent" / "Greetings", "Voicemail.wav")
    got = sends(emu, "greeting")[before:]
    assert len(got) == 1
    assert got[0]["request"]["type"] == "Voicemail"
    assert got[0]["request"]["answeringRuleId"] == "business-hours-rule"
    assert got[0]["attachments"][0]["sha256"] == sha(audio)
    assert "uploaded" in text


@pytest.mark.parametrize(("folder", "name", "data", "code"), [
    ("Fax", "program.exe", b"MZ\x90\x00" + bytes(range(256)) * 8, errno.EINVAL),
    ("Fax", "song.mp3", b"ID3\x03\x00" + b"\x00" * 400, errno.EINVAL),
    ("Fax", "empty.pdf", b"", errno.ENODATA),
    ("Fax", "cut.pdf", pdf(2)[:-20], errno.EINVAL),  # truncated: no %%EOF
    ("Fax", "liar.pdf", b"<html><body>not a pdf</body></html>", errno.EINVAL),
    ("Text", "long.txt", b"x" * 1001, errno.EMSGSIZE),
    ("Text", "emoji.txt", "😀".encode() * 501, errno.EMSGSIZE),  # 1002 UTF-16 units
    ("Text", "latin1.txt", "café".encode("latin-1"), errno.EILSEQ),
    ("Text", "big.png", png() + b"\x00" * 1_600_000, errno.EFBIG),
    ("Text", "blob.bin", bytes(range(256)) * 4, errno.EINVAL),
])
def test_invalid_files_fail_at_close_and_are_not_sent(
        env: tuple[EmulatorProc, Mounted], folder: str, name: str, data: bytes,
        code: int) -> None:
    emu, m = env
    number = "+12125550105" if folder == "Fax" else "+14155550105"
    rdir = outbox(m) / folder / number
    if not rdir.exists():
        os.mkdir(rdir)
    assert write_file(rdir / name, data) == code
    assert not (rdir / name).exists()
    assert not to(emu, number)


def test_cp_prints_the_reason(env: tuple[EmulatorProc, Mounted], tmp_path: Path) -> None:
    emu, m = env
    number = "+12125550106"
    os.mkdir(outbox(m) / "Fax" / number)
    src = tmp_path / "movie.mp4"
    src.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    res = run(["cp", str(src), str(outbox(m) / "Fax" / number)], check=False)
    assert res.returncode != 0 and "Invalid argument" in res.stderr
    assert not to(emu, number)


def test_names_and_folders_are_checked(env: tuple[EmulatorProc, Mounted]) -> None:
    emu, m = env
    ob = outbox(m)
    for bad in ("hello", "+12", "555-1234"):
        with pytest.raises(OSError) as exc:
            os.mkdir(ob / "Fax" / bad)
        assert exc.value.errno == errno.EINVAL
    assert write_file(ob / "Greetings" / "Hello.wav", wav()) == errno.EINVAL
    assert write_file(ob / "Fax" / "+19995550000" / "x.pdf", pdf()) == errno.ENOENT
    with pytest.raises(OSError) as exc:
        os.setxattr(ob / "Fax", "user.rc.fax_resolution", b"Ultra")
    assert exc.value.errno == errno.EINVAL
    os.mkdir(ob / "Fax" / "+12125550107")
    with pytest.raises(OSError) as exc:
        os.mkdir(ob / "Fax" / "+12125550107" / "bundle")  # job folders start as drafts
    assert exc.value.errno == errno.EINVAL
    rdir = ob / "Text" / "+14155550107"
    os.mkdir(rdir)
    os.mkdir(rdir / ".many")
    for i in range(11):
        assert write_file(rdir / ".many" / f"p{i:02}.png", png(i)) == 0
    with pytest.raises(OSError) as exc:
        os.rename(rdir / ".many", rdir / "many")
    assert exc.value.errno == errno.E2BIG
    assert (rdir / ".many").is_dir()  # still a draft
    assert not to(emu, "+14155550107")


def test_draft_cancel_and_status(env: tuple[EmulatorProc, Mounted]) -> None:
    emu, m = env
    number = "+12125550108"
    rdir = outbox(m) / "Fax" / number
    os.mkdir(rdir)
    assert write_file(rdir / ".later.pdf", pdf()) == 0
    assert xattr(rdir / ".later.pdf", "user.rc.status") == "draft"
    os.unlink(rdir / ".later.pdf")
    with pytest.raises(OSError) as exc:
        os.rmdir(outbox(m) / "Fax")
    assert exc.value.errno in (errno.EACCES, errno.EPERM, errno.ENOTEMPTY)
    assert not to(emu, number)
    os.rmdir(rdir)
    assert number not in os.listdir(outbox(m) / "Fax")
    st = json.loads((m.mountpoint / ".rcfs" / "status.json").read_text())
    assert isinstance(st["outbox"], list)


def test_failed_send_is_visible_with_the_error(env: tuple[EmulatorProc, Mounted]) -> None:
    emu, m = env
    ob = outbox(m)
    # The emulator fails faxes to …9999 (InvalidNumber) and refuses an SMS from a number
    # the user does not own (400 MSG-245).
    os.mkdir(ob / "Fax" / "+12125559999")
    assert write_file(ob / "Fax" / "+12125559999" / "x.pdf", pdf()) == 0
    text = finished(ob / "Failed" / "Fax" / "+12125559999", "x.pdf")
    assert "SendingFailed" in text and "InvalidNumber" in text
    assert xattr(ob / "Failed" / "Fax" / "+12125559999" / "x.pdf", "user.rc.error")
    rdir = ob / "Text" / "+14155550109"
    os.mkdir(rdir)
    os.setxattr(rdir, "user.rc.from", b"+16505559876")
    assert write_file(rdir / "hi.txt", b"hi") == 0
    text = finished(ob / "Failed" / "Text" / "+14155550109", "hi.txt")
    assert "MSG-245" in text and "HTTP 400" in text
    assert not to(emu, "+14155550109")
    # Moving it back (with a valid sender) sends it again, once.
    os.setxattr(rdir, "user.rc.from", b"")
    os.rename(ob / "Failed" / "Text" / "+14155550109" / "hi.txt", rdir / "hi.txt")
    finished(ob / "Sent" / "Text" / "+14155550109", "hi.txt")
    assert len(to(emu, "+14155550109")) == 1


def test_rcfs_status_lists_the_queue(env: tuple[EmulatorProc, Mounted]) -> None:
    emu, m = env
    number = "+14155550110"
    os.mkdir(outbox(m) / "Text" / number)
    emu.fault(kind="delay", path="/sms$", method="POST", seconds=2, count=1)
    try:
        assert write_file(outbox(m) / "Text" / number / "wait.txt", b"one moment") == 0
        res = run([sys.executable, "-m", "rcfs.cli", "status", str(m.mountpoint)])
        assert "outbox: 1 queued" in res.stdout and number in res.stdout, res.stdout
        finished(outbox(m) / "Sent" / "Text" / number, "wait.txt")
    finally:
        emu.clear_faults()
    assert len(to(emu, number)) == 1


def test_unlink_of_sent_files(env: tuple[EmulatorProc, Mounted]) -> None:
    emu, m = env
    number = "+14155550111"
    os.mkdir(outbox(m) / "Text" / number)
    assert write_file(outbox(m) / "Text" / number / "bye.txt", b"bye") == 0
    box = outbox(m) / "Sent" / "Text" / number
    finished(box, "bye.txt")
    subprocess.run(["rm", "-r", str(box)], check=True, timeout=30)
    assert number not in os.listdir(outbox(m) / "Sent" / "Text")


def test_rsync_and_setfattr_work_as_users_expect(env: tuple[EmulatorProc, Mounted],
                                                 tmp_path: Path) -> None:
    """rsync writes a dot-named temp file and renames it into place: one fax per file.
    Options can be given with setfattr on the recipient folder beforehand."""
    emu, m = env
    number = "+12125550112"
    rdir = outbox(m) / "Fax" / number
    os.mkdir(rdir)
    run(["setfattr", "-n", "user.rc.fax_resolution", "-v", "High", str(rdir)])
    src = tmp_path / "docs"
    src.mkdir()
    docs = {f"d{i}.pdf": pdf(1, f"rsync{i}") for i in range(3)}
    for name, data in docs.items():
        (src / name).write_bytes(data)
    run(["rsync", "-rt", f"{src}/", f"{rdir}/"])
    for name in docs:
        finished(outbox(m) / "Sent" / "Fax" / number, name)
    got = to(emu, number, "fax")
    assert sorted(a["sha256"] for s in got for a in s["attachments"]) == sorted(
        sha(d) for d in docs.values())
    assert len(got) == 3 and all(s["request"].get("faxResolution") == "High" for s in got)
    res = run(["getfattr", "-d", str(outbox(m) / "Sent" / "Fax" / number / "d0.pdf")])
    assert 'user.rc.status="delivered"' in res.stdout


def test_outbox_attributes_are_cached_briefly_and_changes_show_at_once(
        env: tuple[EmulatorProc, Mounted]) -> None:
    """Outbox entries are live but their timeouts are not 0 (a file manager's stat storm
    costs one request per second, not one per stat); a job's changes reach the kernel
    through invalidation, so they show at once anyway."""
    emu, m = env
    number = "+14155550177"
    ob = outbox(m)
    os.mkdir(ob / "Text" / number)
    status = ob / "Sent" / "Text" / number / "ping.txt.status.txt"
    assert write_file(ob / "Text" / number / "ping.txt", b"ping\n") == 0
    wait(lambda: status.exists() and "delivered" in status.read_text(), 30,
         "the text to be delivered")
    sent = ob / "Sent" / "Text" / number / "ping.txt"
    os.stat(sent)
    before = m.status()["filesystem"]
    for _ in range(200):
        os.stat(sent)
        os.stat(status)
    after = m.status()["filesystem"]
    asked = (after["getattrs"] + after["lookups"]) - (before["getattrs"] + before["lookups"])
    assert asked <= 12, f"{asked} requests for 400 stats"  # at most a few per second
    # The job's record changes (its status file is hidden): the kernel's cached view of
    # the folder follows at once, the sent file stays.
    assert os.stat(status).st_size > 0
    os.unlink(status)
    assert not status.exists() and "ping.txt.status.txt" not in os.listdir(sent.parent)
    assert sent.exists() and os.stat(sent).st_size == 5
    assert xattr(sent, "user.rc.status") == "delivered"
