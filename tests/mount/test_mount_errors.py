"""Bad input against a real rcfs mount (issue 5): hostile names from the data, reads past
EOF, writes outside the outbox, unknown xattrs, rm with and without --allow-delete, bad
mountpoints. Each gets a clear error, and the mount stays healthy (checked after every test).
"""

from __future__ import annotations

import errno
import os
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.emulator_proc import ROOT, EmulatorProc
from tests.mount_helper import (
    Mounted,
    RequestLog,
    brief,
    files_under,
    id_of,
    message_of,
    module_mount,
    mounts_under,
    run,
    write_config,
)
from tests.outbox_support import pdf, write_file
from tests.programs import require_programs

pytestmark = [pytest.mark.mount, pytest.mark.usefixtures("healthy")]


@pytest.fixture(scope="module")
def mnt(emu: EmulatorProc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounted]:
    with module_mount(emu, tmp_path_factory.mktemp("errors")) as m:
        yield m


@pytest.fixture(scope="module")
def probe_file(mnt: Mounted, emu: EmulatorProc) -> tuple[Path, bytes]:
    """A file whose bytes we know, read after every test to prove the mount still works."""
    path = next(p for p in files_under(mnt.folder() / "Voicemail")
                if p.name.endswith(".transcript.txt"))
    ident = id_of(path.name)
    return path, path.read_bytes() or emu.content("message", ident)


@pytest.fixture(autouse=True)
def probe_still_reads(probe_file: tuple[Path, bytes], mnt: Mounted) -> Iterator[None]:
    """After each test (and after ``healthy``): the probe file still reads."""
    yield
    path, data = probe_file
    assert path.read_bytes() == data
    assert "Traceback" not in mnt.log(), mnt.log()


def _all_names(top: Path) -> list[str]:
    out = []
    for dirpath, dirs, files in os.walk(top):
        out += dirs + files
        out += [str(Path(dirpath).relative_to(top))]
    return out



# -- hostile names ----------------------------------------------------------------------------


def test_hostile_names_from_the_data_are_made_safe(mnt: Mounted) -> None:
    require_programs("ls")
    names = _all_names(mnt.root)
    joined = "\n".join(names)
    # '/' in a caller name, an extension name and conversation names: a look-alike.
    assert "Smith \u2215 Jones LLP" in joined
    assert "200 Support Queue \u2215 Tier 1" in os.listdir(mnt.root)
    # Bells, CR/LF/TAB, DEL: gone (whitespace folded to one space); terminal escape
    # sequences removed whole (no visible "[31m" left behind).
    assert "RoboCaller WIN PRIZE" in joined
    assert "[31m" not in joined and "[0m" not in joined
    # Bidi marks and zero-width characters: dropped; combining characters: composed (NFC).
    assert "\u0645\u0643\u062a\u0628 \u0627\u0644\u0623\u0645\u0644" in joined
    assert "Marie Curie" in joined
    assert "Zo\u00eb Salda\u00f1a-Bj\u00f6rk" in joined
    assert "103 Chlo\u00e9 Nakamura" in os.listdir(mnt.root)  # NFD in the data
    # A caller called ".." and an SMS short code.
    assert any(n.endswith("+15035550102 ..") or "+15035550102 .. " in n for n in names)
    assert "22395" in os.listdir(mnt.folder() / "Texts")
    for name in names:
        raw = os.fsencode(name.rsplit("/", 1)[-1])
        assert len(raw) <= 255
        assert not any(unicodedata.category(c) in ("Cc", "Cf") for c in name), ascii(name)
        assert unicodedata.is_normalized("NFC", name)
    # A caller name far beyond 255 bytes: the name is cut inside the caller's name; time,
    # duration or page count, id and extension all survive.
    long = [p for p in files_under(mnt.root) if "Pinnacle Worldwide" in p.name]
    assert long
    for path in long:
        assert len(os.fsencode(path.name)) <= 255
        area = path.relative_to(mnt.root).parts[1]
        if area in ("Voicemail", "Recordings"):
            assert path.name.split(" [")[0].endswith("s)"), path.name
        if area == "Fax":
            assert " page" in path.name.rsplit(" [", 1)[0][-12:], path.name
        assert os.stat(path).st_mode  # reachable by its name
    # The data's ".." never becomes a directory entry (rcfs lists no "." or ".." at all).
    for d in (mnt.folder() / "Texts", mnt.folder() / "Voicemail", mnt.root):
        entries = run(["ls", "-a1", str(d)]).stdout.splitlines()
        assert entries.count(".") <= 1 and entries.count("..") <= 1


def test_hostile_text_content_is_just_content(mnt: Mounted, emu: EmulatorProc,
                                              rest: httpx.Client) -> None:
    texts = {p.read_text() for p in files_under(mnt.folder() / "Texts") if p.suffix == ".txt"}
    assert "../../etc/passwd" in texts
    assert "invoice\u202efdp.exe" in texts  # bidi override kept inside the file
    assert any(t.startswith("Long message: ") and len(t) > 255 for t in texts)


# -- reads -----------------------------------------------------------------------------------


def test_reads_past_eof_return_nothing(mnt: Mounted, emu: EmulatorProc) -> None:
    require_programs("dd")
    audio = next(p for p in files_under(mnt.folder() / "Voicemail") if p.suffix == ".mp3")
    text = next(p for p in files_under(mnt.folder() / "Texts") if p.suffix == ".txt"
                and p.stat().st_size > 20)
    status = mnt.root / ".rcfs" / "status.json"
    for path in (audio, text, status):
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            assert size > 0, path
            whole = b""
            while chunk := os.read(fd, 65536):
                whole += chunk
            assert len(whole) == size, path
            assert os.pread(fd, 4096, size) == b""
            assert os.pread(fd, 4096, size + 1) == b""
            assert os.pread(fd, 4096, size + 10**12) == b""
            assert os.pread(fd, 4096, size - 10) == whole[-10:]
            os.lseek(fd, size + 5000, os.SEEK_SET)
            assert os.read(fd, 100) == b""
        finally:
            os.close(fd)
    skip = os.stat(audio).st_size // 512 + 10
    res = run(["dd", f"if={audio}", "of=/dev/stdout", "bs=512", f"skip={skip}", "count=4",
               "status=none"])
    assert res.stdout == ""


# -- writes ----------------------------------------------------------------------------------


def test_writes_outside_the_outbox_are_erofs(mnt: Mounted, emu: EmulatorProc) -> None:
    require_programs("sh", "touch", "cp", "mkdir")
    target = next(files_under(mnt.folder() / "Fax"))
    folder = target.parent
    log = RequestLog(emu).mark()
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_APPEND,
                  os.O_WRONLY | os.O_TRUNC, os.O_RDONLY | os.O_TRUNC):
        with pytest.raises(OSError) as err:
            os.open(target, flags)
        assert err.value.errno == errno.EROFS, flags
    attempts: list[Callable[[], object]] = [
        lambda: os.open(folder / "new.txt", os.O_WRONLY | os.O_CREAT, 0o644),
        lambda: os.open(mnt.root / "new.txt", os.O_WRONLY | os.O_CREAT, 0o644),
        lambda: os.mkdir(folder / "newdir"),
        lambda: os.mkdir(mnt.root / "newdir"),
        lambda: os.rmdir(folder),
        lambda: os.rename(target, folder / "renamed.pdf"),
        lambda: os.symlink("/etc/passwd", folder / "link"),
        lambda: os.link(target, folder / "hard"),
        lambda: os.chmod(target, 0o644),
        lambda: os.utime(target, (0, 0)),
        lambda: os.truncate(target, 0),
        lambda: os.removexattr(target, "user.rc.id"),
    ]
    # README (Semantics, Errors): everything outside Outbox/ is read-only, EROFS; a rename
    # only inside Outbox/ (EXDEV is for one across mailboxes: test_mount_outbox_semantics),
    # so a draft moved out of the outbox into a read-only folder is EROFS too.
    drafts = mnt.folder() / "Outbox" / "Fax" / "+12125550999"
    drafts.mkdir()
    assert write_file(drafts / ".draft.pdf", pdf(1, "draft")) == 0
    attempts += [lambda: os.rename(drafts / ".draft.pdf", folder / "moved.pdf"),
                 lambda: os.rename(drafts, folder / "moved")]
    try:
        for attempt in attempts:
            with pytest.raises(OSError) as err:
                attempt()
            assert err.value.errno == errno.EROFS, (attempt, err.value)
        assert os.listdir(drafts) == [".draft.pdf"]
    finally:
        os.unlink(drafts / ".draft.pdf")
        os.rmdir(drafts)
    for cmd in (["sh", "-c", f'echo x > "{target}"'], ["touch", str(folder / "x")],
                ["cp", "/etc/hostname", str(folder)], ["mkdir", str(folder / "d")]):
        res = run(cmd, check=False)
        assert res.returncode != 0 and "Read-only file system" in res.stderr, (cmd, res)
    assert os.listdir(folder) == sorted(os.listdir(folder))
    assert target.read_bytes() == emu.content("message", id_of(target.name))
    writes = [e for e in log.since() if e["method"] != "GET"]
    assert writes == [], brief(writes)


def test_rm_without_allow_delete_is_erofs(mnt: Mounted, emu: EmulatorProc,
                                          rest: httpx.Client) -> None:
    require_programs("rm")
    target = next(p for p in files_under(mnt.folder() / "Voicemail") if p.suffix == ".mp3")
    res = run(["rm", "-f", str(target)], check=False)
    assert res.returncode != 0 and "Read-only file system" in res.stderr
    assert target.exists()
    msg = message_of(rest, emu.user(admin=True)["extension_id"], id_of(target.name))
    assert msg["availability"] == "Alive"


def test_rm_with_allow_delete_moves_the_message_to_deleted(
        emu: EmulatorProc, rest: httpx.Client, tmp_path: Path,
        probe_file: tuple[Path, bytes]) -> None:
    require_programs("rm")
    with Mounted(emu, tmp_path, args=["--allow-delete"], refresh_interval=600,
                 timezone="UTC") as m:
        vm = m.folder() / "Voicemail"
        # Not the module mount's probe: that mount learns of the deletion by push.
        target = next(p for p in files_under(vm) if p.name.endswith(".transcript.txt")
                      and p.name != probe_file[0].name)
        ident = id_of(target.name)
        siblings = [p for p in files_under(vm) if f"[{ident}]" in p.name]
        assert len(siblings) == 2
        log = RequestLog(emu).mark()
        run(["rm", str(target)])
        deletes = [e for e in log.since() if e["method"] == "DELETE"]
        assert len(deletes) == 1 and deletes[0]["path"].endswith(f"/message-store/{ident}")
        assert deletes[0]["status"] == 204, brief(deletes)
        msg = message_of(rest, emu.user(admin=True)["extension_id"], ident)
        assert msg["availability"] == "Deleted"
        for path in siblings:  # the message's other file goes with it
            assert not path.exists()
            if path.parent.exists():
                assert path.name not in os.listdir(path.parent)
        # Recordings and greetings are not messages: still read-only.
        rec = next(files_under(m.folder() / "Recordings"))
        res = run(["rm", "-f", str(rec)], check=False)
        assert res.returncode != 0 and "Read-only file system" in res.stderr
        assert m.alive


# -- xattrs ----------------------------------------------------------------------------------


def test_unknown_xattrs_answer_at_once(mnt: Mounted, emu: EmulatorProc) -> None:
    """Unknown user.* names: ENODATA. Other namespaces (SELinux labels, POSIX ACLs, trusted):
    EOPNOTSUPP, which `ls -l` caches per file system instead of asking for every file."""
    require_programs("getfattr", "setfattr")
    target = next(files_under(mnt.folder() / "Recordings"))
    names = ["user.nope", "user.rc.nope", "security.selinux", "security.capability",
             "security.ima", "system.posix_acl_access", "system.posix_acl_default",
             "trusted.overlay.opaque", "system.nfs4_acl"]
    log = RequestLog(emu).mark()
    started = time.monotonic()
    for _ in range(20):
        for name in names:
            want = errno.ENODATA if name.startswith("user.") else errno.EOPNOTSUPP
            for path in (target, target.parent, mnt.root):
                with pytest.raises(OSError) as err:
                    os.getxattr(path, name)
                assert err.value.errno == want, (path, name)
    took = time.monotonic() - started
    assert took < 10, took
    res = run(["getfattr", "-n", "user.nope", str(target)], check=False)
    assert res.returncode != 0 and "No such attribute" in res.stderr
    for name, value in (("user.nope", "x"), ("security.selinux", "x"), ("trusted.x", "y")):
        res = run(["setfattr", "-n", name, "-v", value, str(target)], check=False)
        assert res.returncode != 0, name
        assert "Operation not supported" in res.stderr, (name, res.stderr)
    # One errno per unsupported namespace, whichever call asks (get, set, remove). The
    # kernel checks capability and POSIX ACL values itself (EINVAL for "x") before rcfs is
    # asked, so those two are not set here.
    for name in names:
        if name.startswith("user.") or name in ("security.capability",
                                                "system.posix_acl_access",
                                                "system.posix_acl_default"):
            continue
        for call in ("get", "set", "remove"):
            with pytest.raises(OSError) as err:
                if call == "get":
                    os.getxattr(target, name)
                elif call == "set":
                    os.setxattr(target, name, b"x")
                else:
                    os.removexattr(target, name)
            assert err.value.errno == errno.EOPNOTSUPP, (name, call, err.value)
    assert log.since() == [], brief(log.since())


# -- mountpoints -----------------------------------------------------------------------------


def _mount_cmd(emu: EmulatorProc, tmp_path: Path, mountpoint: Path) -> list[str]:
    cfg = write_config(tmp_path / "cfg.toml", emu, cache_dir=tmp_path / "c",
                       state_dir=tmp_path / "s")
    return [sys.executable, "-m", "rcfs.cli", "mount", str(mountpoint), "--config", str(cfg)]


@pytest.mark.parametrize("case", ["missing", "not_empty", "a_file", "already_mounted"])
def test_bad_mountpoint_is_refused_clearly(case: str, mnt: Mounted, emu: EmulatorProc,
                                           tmp_path: Path) -> None:
    mp = tmp_path / "mp"
    want = {"missing": "does not exist", "not_empty": "is not empty",
            "a_file": "is not a directory", "already_mounted": "already a mount point"}[case]
    if case == "not_empty":
        mp.mkdir()
        (mp / "keep.txt").write_text("mine")
    elif case == "a_file":
        mp.write_text("a file")
    elif case == "already_mounted":
        mp = mnt.root
    before = mounts_under(mp)
    started = time.monotonic()
    res = run(_mount_cmd(emu, tmp_path, mp), check=False, timeout=60, cwd=ROOT)
    assert time.monotonic() - started < 30
    assert res.returncode != 0
    assert want in res.stderr and str(mp) in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert mounts_under(mp) == before == ([str(mp)] if case == "already_mounted" else [])
    if case == "not_empty":
        assert (mp / "keep.txt").read_text() == "mine"


def test_an_exception_escaping_a_handler_fails_the_test_owning_the_mount(
        tmp_path: Path) -> None:
    """The harness half of "no exception escapes a handler": rcfs answers EIO and logs
    ``unexpected error in <op>``; Mounted.unmount (every fixture's teardown) fails on it."""
    from typing import Any, cast

    m = Mounted(cast(Any, None), tmp_path, user={"extension_number": "1", "name": "x"})
    m.log_path.write_text("2026-11-27 INFO rcfs: mounted\n")
    m.check_log()
    with m.log_path.open("a") as fh:
        fh.write("2026-11-27 ERROR rcfs.fs.ops: unexpected error in read\n"
                 "Traceback (most recent call last):\nKeyError: 7\n")
    with pytest.raises(AssertionError, match="unexpected error in read"):
        m.check_log()
    m.check_log()  # reported once, by the test that caused it
