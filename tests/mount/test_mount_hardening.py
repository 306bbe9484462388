"""Hardening through real mounts at RingCentral's default request counts (window and
penalty scaled to 6 s): a damaged block cache is rebuilt at mount, cache and state are
private to the user, the login state shows in ``rcfs status``, outbox names are made safe.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.emulator_proc import EmulatorProc
from tests.mount_helper import (
    Mounted,
    expected_bytes,
    files_under,
    messages_of,
    require_fuse,
    run,
    write_config,
)
from tests.outbox_support import FAST_CLOCKS, FAST_CONFIG, pdf, wait, write_file, xattr

pytestmark = pytest.mark.mount

SCALED = ("--window", "6", "--penalty", "6")  # default counts, shorter window
CACHE_DB = "v1/db/cache.db"
NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProc]:
    with EmulatorProc("--data-seed", "1", *SCALED, *FAST_CLOCKS) as proc:
        yield proc



def _voicemails(m: Mounted) -> list[Path]:
    return sorted(p for p in files_under(m.folder() / "Voicemail") if p.suffix == ".mp3")


def _messages(rest: httpx.Client, m: Mounted) -> dict[str, dict[str, Any]]:
    return {str(x["id"]): x for x in messages_of(rest, m.user["extension_id"])}


def _warnings(m: Mounted, needle: str) -> list[str]:
    return [line for line in m.log().splitlines() if needle in line]


def _flip_pages(db: Path) -> None:
    size = db.stat().st_size
    with open(db, "r+b") as fh:
        for off in range(4096, size, 4096):
            fh.seek(off)
            fh.write(b"\xa5\x5a\xa5\x5a\xa5\x5a")


# -- self-healing block cache -----------------------------------------------------------------


def test_damaged_block_cache_is_rebuilt_at_mount(emu: EmulatorProc, rest: httpx.Client,
                                                 tmp_path: Path) -> None:
    """`truncate -s 4096`, then flipped bytes, of the block cache's database between mounts:
    the mount comes up, says so once in its log and in status.json, and serves the right
    bytes (fetched again)."""
    require_fuse()
    m = Mounted(emu, tmp_path, refresh_interval=600, timezone="UTC")
    try:
        m.start()
        m.wait_loaded()
        target = _voicemails(m)[0]
        want = expected_bytes(emu, target, _messages(rest, m))
        assert target.read_bytes() == want
        cache_root = next(m.cache_dir.iterdir())
        for round_, damage in enumerate(("truncate", "flip"), start=1):
            m.unmount()
            db = cache_root / CACHE_DB
            con = sqlite3.connect(db)  # fold the WAL in, as a clean close leaves it
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            con.close()
            if damage == "truncate":
                run(["truncate", "-s", "4096", str(db)])
            else:
                _flip_pages(db)
            m.start()
            st = m.status()
            rebuilt = st["rebuilt_stores"]
            assert len(rebuilt) == 1 and rebuilt[0]["store"] == "block cache", rebuilt
            assert st["content"]["cache"]["rebuilt"] == 1
            assert len(_warnings(m, "moved aside")) == round_, m.log()
            assert target.read_bytes() == want
            assert m.status()["content"]["requests"] >= 1  # fetched again: the cache was new
            # Only the newest moved-aside copy is kept.
            assert len(list((cache_root / "v1").glob("db.corrupt-*"))) == 1
        # A healthy cache is not touched at the next mount.
        m.unmount()
        m.start()
        assert m.status()["rebuilt_stores"] == []
        assert target.read_bytes() == want
        assert m.status()["content"]["requests"] == 0, "served from the rebuilt cache"
    finally:
        code = m.unmount()
    assert code == 0, m.log()


# -- private by default -----------------------------------------------------------------------


def test_cache_and_state_are_private(emu: EmulatorProc, rest: httpx.Client,
                                     tmp_path: Path) -> None:
    """Folders an older rcfs left 0755/0644 are tightened at mount (one log line); a cached
    voicemail is then unreadable to another uid, and everything rcfs made is 0700/0600,
    although the mount was started with umask 022."""
    require_fuse()
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another uid")
    # A world-traversable base (not the 0700 pytest folder), so only rcfs's modes protect.
    base = Path(subprocess.run(["mktemp", "-d", "-p", "/tmp", "rcfs-private-XXXXXX"],
                               capture_output=True, text=True, check=True).stdout.strip())
    try:
        os.chmod(base, 0o755)
        cache_dir, state_dir = base / "cache", base / "state"
        old = cache_dir / "0123456789abcdef" / "v1"
        old.mkdir(parents=True)
        (state_dir / "accounts").mkdir(parents=True)
        for d in (cache_dir, cache_dir / "0123456789abcdef", old, state_dir,
                  state_dir / "accounts"):
            os.chmod(d, 0o755)
        (old / "stale").write_bytes(b"x")
        os.chmod(old / "stale", 0o644)
        control = base / "control"
        control.write_bytes(b"readable")
        os.chmod(control, 0o644)
        old_umask = os.umask(0o022)  # the mount process inherits it
        try:
            m = Mounted(emu, tmp_path, cache_dir=cache_dir, state_dir=state_dir,
                        refresh_interval=600, timezone="UTC")
            m.start()
        finally:
            os.umask(old_umask)
        try:
            m.wait_loaded()
            target = _voicemails(m)[0]
            assert target.read_bytes() == expected_bytes(emu, target, _messages(rest, m))
            assert _warnings(m, "made ") and "private" in _warnings(m, "made ")[0], m.log()
            loose = []
            for top in (cache_dir, state_dir):
                for dirpath, dirs, files in os.walk(top):
                    for name in ("", *dirs, *files):
                        p = Path(dirpath, name)
                        if not p.is_symlink() and stat.S_IMODE(p.lstat().st_mode) & 0o077:
                            loose.append(f"{p}: {oct(stat.S_IMODE(p.lstat().st_mode))}")
            assert not loose, loose
            blocks = [p for p in cache_dir.rglob("*.val")] or [
                p for p in cache_dir.rglob("cache.db")]
            assert blocks
            ok = subprocess.run([*NOBODY, "cat", str(control)], capture_output=True,
                                timeout=30)
            assert ok.returncode == 0 and ok.stdout == b"readable"  # the check can fail
            for path in (blocks[0], *state_dir.rglob("*.json")):
                denied = subprocess.run([*NOBODY, "cat", str(path)], capture_output=True,
                                        timeout=30)
                assert denied.returncode != 0 and b"Permission denied" in denied.stderr, path
        finally:
            assert m.unmount() == 0, m.log()
    finally:
        shutil.rmtree(base)


# -- auth state -------------------------------------------------------------------------------


def _rcfs(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rcfs.cli", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_lost_login_shows_in_status(emu: EmulatorProc, rest: httpx.Client,
                                    tmp_path: Path) -> None:
    """A session from `rcfs login`, then revoked server-side (as a password change does):
    reads fail, and `rcfs status` / status.json say who was logged in, that the session is
    gone and what to do. `rcfs status | head -1` exits without a traceback."""
    require_fuse()
    user = emu.user(admin=False)
    cfg = write_config(tmp_path / "login.toml", emu, user=user, cache_dir=tmp_path / "cache",
                       state_dir=tmp_path / "state")
    res = _rcfs("login", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    # systemd's side of sd_notify: a datagram socket the mount reports STATUS= lines to.
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(15)
    # The mount has no JWT: only the stored session (nothing to log in again with).
    m = Mounted(emu, tmp_path, user=user, refresh_interval=600, timezone="UTC", jwt="",
                env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
    try:
        m.start()
        m.wait_loaded()
        auth = m.status()["auth"]
        assert auth["logged_in"] is True and auth["owner_id"] == user["extension_id"]
        assert auth["user"] == f"{user['extension_number']} {user['name']}"
        assert auth["expires_at"] and auth["last_error"] is None
        text = _rcfs("status", str(m.mountpoint))
        assert text.returncode == 0, text.stderr
        assert f"logged in as {auth['user']}" in text.stdout
        piped = subprocess.run(f"{sys.executable} -m rcfs.cli status {m.mountpoint} | head -1",
                               shell=True, capture_output=True, text=True, timeout=60)
        assert piped.stdout.count("\n") == 1 and "Traceback" not in piped.stderr, piped.stderr
        assert "BrokenPipe" not in piped.stderr

        emu.admin("POST", "/_emulator/revoke", {"extension_id": user["extension_id"]})
        files = _voicemails(m) or sorted(files_under(m.folder()))
        with pytest.raises(OSError):
            files[0].read_bytes()
        auth = m.status()["auth"]
        assert auth["logged_in"] is False, auth
        assert auth["last_error"]["action"] == "run rcfs login", auth
        assert auth["last_error"]["code"] in ("OAU-213", None), auth
        text = _rcfs("status", "--json", str(m.mountpoint))
        assert json.loads(text.stdout)["auth"]["last_error"]["action"] == "run rcfs login"
        text = _rcfs("status", str(m.mountpoint))
        assert "NOT logged in" in text.stdout and "run rcfs login" in text.stdout
        assert m.alive  # a lost login is an error answer, not a dead mount
        # STATUS= follows within seconds, not at the next half minute.
        statuses = _status_lines(notify, until="NOT logged in")
        assert "logged in as" in statuses[0] and "run rcfs login" in statuses[-1], statuses
    finally:
        notify.close()
        assert m.unmount() == 0, m.log()


def _status_lines(sock: socket.socket, until: str) -> list[str]:
    """The STATUS= lines received until one contains ``until`` (bounded by the timeout)."""
    lines: list[str] = []
    while not lines or until not in lines[-1]:
        try:
            message = sock.recv(65536).decode()
        except TimeoutError:
            raise AssertionError(f"no STATUS= with {until!r}; got {lines}") from None
        lines += [x[len("STATUS="):] for x in message.split("\n") if x.startswith("STATUS=")]
    return lines


def test_missing_permission_names_it(emu: EmulatorProc, tmp_path: Path) -> None:
    """The emulator's "limited" app lacks ReadCallLog/ReadCallRecording: status says so."""
    require_fuse()
    m = Mounted(emu, tmp_path, refresh_interval=600, timezone="UTC",
                client_id=emu.info["limited_client_id"],
                client_secret=emu.info["limited_client_secret"])
    try:
        m.start()
        # The call log is read only when Recordings is looked at (issue 10).
        os.listdir(m.folder() / "Recordings")

        def lacks_read_call() -> bool:
            missing = m.status()["auth"].get("missing_permissions") or []
            return any(a.startswith("the app lacks ReadCall") for a in missing)

        # Every refused permission is listed, whichever was refused last (the same app
        # also lacks WebSocket, which the push client may hit after the call log).
        wait(lacks_read_call, 60, "ReadCall* among the missing permissions", interval=0.2,
             on_fail=lambda: json.dumps(m.status()["auth"]))
        auth = m.status()["auth"]
        assert auth["last_error"]["action"] in auth["missing_permissions"], auth
        assert auth["logged_in"] is True  # logged in, but not allowed that
        text = _rcfs("status", str(m.mountpoint)).stdout
        assert "permission: the app lacks ReadCall" in text, text
    finally:
        assert m.unmount() == 0, m.log()


def _three_done(folder: Path) -> bool:
    return folder.is_dir() and sum(n.endswith(".status.txt") for n in os.listdir(folder)) == 3


# -- outbox names -----------------------------------------------------------------------------


def test_outbox_names_are_made_safe(emu: EmulatorProc, tmp_path: Path) -> None:
    """Names with a newline, an ESC sequence and 251 bytes: Sent/ and Failed/ show safe
    names whose `.status.txt` fits in 255 bytes; the original name is kept, escaped, in
    user.rc.original_name and the status text; `cp -r Failed/` copies everything."""
    require_fuse()
    m = Mounted(emu, tmp_path, refresh_interval=600, timezone="UTC", **FAST_CONFIG)
    try:
        m.start()
        ob = m.folder() / "Outbox"
        good, bad = "+12125550177", "+12125559999"  # the emulator fails faxes to ...9999
        for number in (good, bad):
            os.mkdir(ob / "Fax" / number)
        names = {"nl": "two\nlines.pdf", "esc": "\x1b[31mred\x1b[0m.pdf",
                 "long": "L" * 247 + ".pdf"}
        for number in (good, bad):
            for i, name in enumerate(names.values()):
                assert write_file(ob / "Fax" / number / name, pdf(1, f"{number}{i}")) == 0
        for box, number in (("Sent", good), ("Failed", bad)):
            folder = ob / box / "Fax" / number
            wait(functools.partial(_three_done, folder), 60, f"3 jobs in {box}/",
                 interval=0.2, on_fail=m.log)
            listed = os.listdir(folder)
            for name in listed:
                assert not any(ord(c) < 32 or c == "\x7f" for c in name), repr(name)
                assert len(name.encode()) <= 255, len(name.encode())
            shown = sorted(n for n in listed if not n.endswith(".status.txt"))
            assert len(shown) == 3 and len({*shown}) == 3, listed
            originals = {xattr(folder / n, "user.rc.original_name") for n in shown}
            assert originals == {"two\\x0alines.pdf", "\\x1b[31mred\\x1b[0m.pdf",
                                 names["long"]}, originals
            for n in shown:
                text = (folder / (n + ".status.txt")).read_text()
                assert "\x1b" not in text and not any(ord(c) < 32 and c != "\n" for c in text)
                assert "File name:" in text
            assert any("two\\x0alines.pdf" in (folder / (n + ".status.txt")).read_text()
                       for n in shown)
        run(["cp", "-r", str(ob / "Failed"), str(tmp_path / "copy")])
        copied = sorted(p.name for p in (tmp_path / "copy" / "Fax" / bad).iterdir())
        assert len(copied) == 6, copied
    finally:
        assert m.unmount() == 0, m.log()
