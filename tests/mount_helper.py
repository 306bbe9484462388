"""Mount rcfs for real against an emulator process, for the mount tests.

One mount is one ``python -m rcfs.cli mount MP --config CFG`` subprocess (never inside the
pytest process: a FUSE server must not share a process with its own clients). ``Mounted``
writes the config, starts the process, waits (bounded) until the mountpoint answers and
``.rcfs/status.json`` reads, and always unmounts: ``fusermount3 -u``, then ``-u -z``, then
the process is killed by its PID. The process also gets SIGTERM if pytest dies
(``die_with_parent``), and rcfs unmounts itself on SIGTERM.

Request accounting reads the emulator's request log: ``content_requests`` picks the
downloads (``.../content`` paths on either host) out of a slice taken with ``RequestLog``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.emulator_proc import ROOT, EmulatorProc

REAL_WINDOW = 6.0
REAL_LIMITS = ("--window", str(REAL_WINDOW), "--penalty", str(REAL_WINDOW))
"""The emulator at RingCentral's default counts per window (Light 50, Medium 40, Heavy 10,
Auth 5) with the 60 s window and penalty scaled to 6 s: what a user gets, ten times faster.
Every mount test runs this way (COMMON rule "test world = real world"); a few use the real
60 s window."""
BUDGET_WINDOW = 3.0
BUDGET_LIMITS = ("--window", str(BUDGET_WINDOW), "--penalty", str(BUDGET_WINDOW))
"""RingCentral's default counts with the window and penalty scaled 20x (3 s), for modules
whose run time is the request budget's (bulk copies, exports) and that assert exact bytes,
request counts and no 429, never how long a user waits: a shorter window makes the mount's
pacing no easier (no 429 is still demanded), only the test faster. Latency claims (a player
starting during a copy) stay at ``REAL_LIMITS``."""
GENEROUS_LIMITS = ("--limits", "Light=100000,Medium=100000,Heavy=100000,Auth=100000")
"""Only for tests of the emulator itself (never for a mount)."""
MOUNT_TIMEOUT = 45.0
# What rcfs logs (with a traceback) when an exception escapes a FUSE handler: a bug, which
# the handler turned into EIO. Any such line fails the test that owns the mount.
UNEXPECTED = "unexpected error in "
UNMOUNT_TIMEOUT = 20.0


def fuse_problem() -> str | None:
    """Why FUSE mounts cannot run here, or None."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    # More than a program on PATH (the device, its access, the setuid bit), so not
    # require_programs: conftest turns a mount test's skip into a failure under CI.
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed (fuse3)"
    setuid = os.stat(shutil.which("fusermount3") or "/").st_mode & 0o4000
    if not os.access("/dev/fuse", os.R_OK | os.W_OK) and os.geteuid() != 0 and not setuid:
        return "/dev/fuse is not accessible and fusermount3 is not setuid"
    return None


def require_fuse() -> None:
    """Skip when FUSE is unavailable (conftest turns that skip into a failure in CI)."""
    problem = fuse_problem()
    if problem:
        pytest.skip(f"cannot mount FUSE here: {problem}")



def mounted_paths() -> list[str]:
    with open("/proc/mounts") as fh:
        return [line.split()[1].replace("\\040", " ") for line in fh]


def mounts_under(top: Path) -> list[str]:
    """Mounts at or below ``top`` (other test runs may mount elsewhere meanwhile)."""
    return [p for p in mounted_paths() if p == str(top) or p.startswith(str(top) + "/")]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def write_config(path: Path, emu: EmulatorProc, *, user: dict[str, Any] | None = None,
                 cache_dir: Path, state_dir: Path, refresh_interval: float = 1.0,
                 **extra: Any) -> Path:
    info = emu.info
    user = user or emu.user(admin=True)
    values: dict[str, Any] = {
        "server": info["platform_url"],
        "media_server": info["media_url"],
        "client_id": info["client_id"],
        "client_secret": info["client_secret"],
        "jwt": user["jwt"],
        "cache_dir": str(cache_dir),
        "state_dir": str(state_dir),
        "refresh_interval": float(refresh_interval),
        "log_level": "info",
    }
    if info.get("ca_cert"):
        values["ca_cert"] = info["ca_cert"]
    values.update(extra)
    path.write_text("".join(f"{k} = {_toml(v)}\n" for k, v in values.items()))
    return path


def folder_name(ext: dict[str, Any]) -> str:
    """The folder rcfs shows for an extension: an emulator user (``extension_number``) or
    an entry of ``/_emulator/summary`` (``number``). Names are NFC in the tree, and ``/``
    becomes ``∕`` (README, safe names)."""
    number = ext["extension_number"] if "extension_number" in ext else ext["number"]
    return unicodedata.normalize("NFC", f"{number} {ext['name']}".replace("/", "\u2215"))


def id_of(name: str) -> str:
    """The message (or recording) id in a content file's name: ``... [123].pdf``,
    ``... [123]-2.jpg``."""
    m = re.search(r"\[(\d+)\](-\d+)?\.[a-z0-9.]+$", name)
    assert m is not None, name
    return m.group(1)


class Mounted:
    """One rcfs mount process. Use as a context manager or call ``start``/``unmount``."""

    def __init__(self, emu: EmulatorProc, workdir: Path, *, user: dict[str, Any] | None = None,
                 refresh_interval: float = 1.0, args: Iterable[str] = (),
                 cache_dir: Path | None = None, state_dir: Path | None = None,
                 mountpoint: Path | None = None, name: str = "mnt", flags: bool = False,
                 env: dict[str, str] | None = None, **config: Any) -> None:
        self.emu = emu
        self.user = user or emu.user(admin=True)
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.mountpoint = mountpoint or workdir / name
        self.cache_dir = cache_dir or workdir / "cache"
        self.state_dir = state_dir or workdir / "state"
        self.config_path = workdir / f"{name}.toml"
        self.log_path = workdir / f"{name}.log"
        self.args = list(args)
        self.refresh_interval = refresh_interval
        self.extra = config
        self.flags = flags  # every option as a flag, no config file
        self.env = env or {}  # extra environment of the rcfs process (e.g. NOTIFY_SOCKET)
        self.proc: subprocess.Popen[bytes] | None = None
        self._logf: Any = None
        self.starts = 0
        self._checked = 0  # log bytes already searched for UNEXPECTED

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = MOUNT_TIMEOUT) -> Mounted:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        write_config(self.config_path, self.emu, user=self.user, cache_dir=self.cache_dir,
                     state_dir=self.state_dir, refresh_interval=self.refresh_interval,
                     **self.extra)
        options = ["--config", str(self.config_path)]
        env = {**os.environ, **self.env} if self.env else None
        if self.flags:
            options = self._flag_options()
            env = {**os.environ, **self.env,
                   "XDG_CONFIG_HOME": str(self.workdir / "no-config")}
        try:
            self.mountpoint.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a dead FUSE mount: rcfs itself cleans it up
            if exc.errno != errno.ENOTCONN:
                raise
        self._close_log()
        self._logf = open(self.log_path, "ab")  # noqa: SIM115
        self.starts += 1
        self._logf.write(f"--- start {self.starts} ---\n".encode())
        self._logf.flush()
        from rcfs.proc import die_with_parent

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rcfs.cli", "mount", str(self.mountpoint), *options,
             *self.args],
            cwd=ROOT, stdout=self._logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent, env=env,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self._close_log()
                raise RuntimeError(f"rcfs mount exited {code} before answering:\n{self.log()}")
            if self._answers():
                return self
            if time.monotonic() > deadline:
                self.unmount()
                raise RuntimeError(f"rcfs did not mount within {timeout:.0f}s:\n{self.log()}")
            time.sleep(0.05)

    def _flag_options(self) -> list[str]:
        """The config as command-line flags (the JWT goes through --jwt-file)."""
        jwt_file = self.workdir / "jwt.txt"
        jwt_file.write_text(self.user["jwt"])
        jwt_file.chmod(0o600)
        info = self.emu.info
        values: dict[str, Any] = {
            "server": info["platform_url"], "media_server": info["media_url"],
            "client_id": info["client_id"], "client_secret": info["client_secret"],
            "jwt_file": jwt_file, "cache_dir": self.cache_dir, "state_dir": self.state_dir,
            "refresh_interval": self.refresh_interval, **self.extra,
        }
        out = []
        for key, value in values.items():
            out += ["--" + key.replace("_", "-"), str(value)]
        return out

    def _answers(self) -> bool:
        try:
            if not os.path.ismount(self.mountpoint):
                return False
            json.loads((self.mountpoint / ".rcfs" / "status.json").read_text())
            return True
        except (OSError, ValueError):
            return False

    def unmount(self) -> int | None:
        """Unmount and wait for the process; returns its exit code (None if it had to be
        killed). Safe to call twice and on a mount that never came up."""
        mp = str(self.mountpoint)
        if mp in mounted_paths():
            res = subprocess.run(["fusermount3", "-u", mp], capture_output=True, timeout=30,
                                 check=False)
            if res.returncode != 0:
                subprocess.run(["fusermount3", "-u", "-z", mp], capture_output=True,
                               timeout=30, check=False)
        code: int | None = None
        if self.proc is not None:
            try:
                code = self.proc.wait(UNMOUNT_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
                code = None
        if mp in mounted_paths():  # the process died and left a dead mount
            subprocess.run(["fusermount3", "-u", "-z", mp], capture_output=True, timeout=30,
                           check=False)
        self._close_log()
        self.check_log()
        return code

    def check_log(self) -> None:
        """Fail if rcfs logged an exception that escaped a handler (since the last check)."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self._checked)
                text = fh.read().decode(errors="replace")
                self._checked = fh.tell()
        except FileNotFoundError:
            return
        bad = [line for line in text.splitlines() if UNEXPECTED in line]
        if bad:
            at = text.index(bad[0])
            raise AssertionError(f"rcfs hit {len(bad)} unexpected error(s) in FUSE handlers "
                                 f"(returned EIO):\n{text[at:at + 4000]}")

    def restart(self, **changes: Any) -> Mounted:
        """Unmount, apply ``changes`` (attributes such as ``emu`` or ``args``), mount again
        with the same cache and state directories."""
        self.unmount()
        for key, value in changes.items():
            setattr(self, key, value)
        return self.start()

    def _close_log(self) -> None:
        if self._logf is not None:
            self._logf.close()
            self._logf = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self._answers()

    def log(self) -> str:
        if self._logf is not None:
            self._logf.flush()
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def __enter__(self) -> Mounted:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.unmount()

    # -- the tree ----------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        return self.mountpoint

    def folder(self, user: dict[str, Any] | None = None) -> Path:
        return self.mountpoint / folder_name(user or self.user)

    def mailbox(self, number: str) -> Path:
        """The folder of extension ``number``, as the mount lists it."""
        return next(p for p in self.root.iterdir() if p.name.startswith(number + " "))

    def status(self) -> dict[str, Any]:
        return json.loads((self.mountpoint / ".rcfs" / "status.json").read_text())  # type: ignore[no-any-return]

    def group_status(self, group: str) -> dict[str, Any]:
        """The status file's entry for a rate-limit group (``{}`` before its first request)."""
        return self.status()["requests"].get(group, {})  # type: ignore[no-any-return]

    def wait_loaded(self, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until every extension has been loaded once (the background first load)."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            exts = st.get("extensions", {})
            if exts and all(e.get("loaded") for e in exts.values()):
                return st
            if time.monotonic() > deadline:
                raise AssertionError(f"extensions not loaded within {timeout}s: {exts}")
            time.sleep(0.1)


# -- request accounting ---------------------------------------------------------------------


def is_content(entry: dict[str, Any]) -> bool:
    """A content download: message attachments, recordings, greetings (either host)."""
    path = entry["path"]
    return "/content" in path and "/message-store-report/" not in path


class RequestLog:
    """A slice of the emulator's request log: ``mark()`` then ``since()``."""

    def __init__(self, emu: EmulatorProc) -> None:
        self.emu = emu
        self.start = 0

    def mark(self) -> RequestLog:
        entries = self.emu.requests()
        self.start = (entries[-1]["seq"] + 1) if entries else 0
        return self

    def since(self) -> list[dict[str, Any]]:
        return self.emu.requests(self.start)

    def content(self) -> list[dict[str, Any]]:
        return [e for e in self.since() if is_content(e)]


def content_requests(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if is_content(e)]


def brief(entries: Iterable[dict[str, Any]]) -> list[str]:
    """Request log entries as short lines, for assertion messages."""
    return [f"{e['method']} {e['path']} range={e['range']} -> {e['status']} {e['bytes']}B"
            for e in entries]


# -- what the emulator serves ---------------------------------------------------------------


_TRUTH: dict[tuple[str, str, str], Any] = {}
"""What the emulator holds, fetched once per emulator: the tests' REST client is the mount's
user and app, so at RingCentral's real counts every lookup spends the mount's budget."""


def _get(rc: httpx.Client, url: str, params: dict[str, Any]) -> httpx.Response:
    """A GET that waits out a 429 (the mount may have used the window) instead of failing."""
    for _ in range(5):
        r = rc.get(url, params=params)
        if r.status_code != 429:
            r.raise_for_status()
            return r
        time.sleep(min(65.0, float(r.headers.get("Retry-After") or 6)))
    r.raise_for_status()
    return r


def warm_truth(rc: httpx.Client, emu: EmulatorProc) -> None:
    """Fetch messages and recordings of every extension before a module mounts (so the
    tests' lookups do not compete with the mount for the request budget)."""
    for ext in emu.admin("GET", "/_emulator/summary")["extensions"]:
        messages_of(rc, str(ext["id"]))
        recordings_of(rc, str(ext["id"]))


def messages_of(rc: httpx.Client, ext_id: str, *, fresh: bool = False
                ) -> list[dict[str, Any]]:
    """Every Alive message of an extension, through the REST API (``rc``: ``api_client`` of
    the admin; keep ONE per test module: every new login opens a session, and the emulator,
    like RingCentral, revokes the oldest past five, which would be the mount's). Fetched
    once per emulator and extension (``_TRUTH``); ``fresh`` fetches again (after a test
    added messages)."""
    key = (str(rc.base_url), "messages", ext_id)
    if key in _TRUTH and not fresh:
        return list(_TRUTH[key])
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        r = _get(rc, f"/restapi/v1.0/account/~/extension/{ext_id}/message-store",
                 params={"dateFrom": "1970-01-01T00:00:00Z", "perPage": 1000, "page": page})
        body = r.json()
        out += body["records"]
        if not body.get("navigation", {}).get("nextPage"):
            _TRUTH[key] = out
            return list(out)
        page += 1


def messages_by_id(rc: httpx.Client, *ext_ids: str, fresh: bool = False
                   ) -> dict[str, dict[str, Any]]:
    """Every Alive message of these extensions by id: what ``expected_bytes`` looks up."""
    return {str(m["id"]): m for ext_id in ext_ids
            for m in messages_of(rc, str(ext_id), fresh=fresh)}


def message_of(rc: httpx.Client, ext_id: str, mid: str) -> dict[str, Any]:
    r = rc.get(f"/restapi/v1.0/account/~/extension/{ext_id}/message-store/{mid}")
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


def recordings_of(rc: httpx.Client, ext_id: str) -> dict[str, dict[str, Any]]:
    """Recording id -> its call-log record's recording (with the call under "call")."""
    key = (str(rc.base_url), "recordings", ext_id)
    if key in _TRUTH:
        return dict(_TRUTH[key])
    out: dict[str, dict[str, Any]] = {}
    r = _get(rc, f"/restapi/v1.0/account/~/extension/{ext_id}/call-log",
             params={"dateFrom": "1970-01-01T00:00:00Z", "perPage": 1000,
                     "view": "Simple", "recordingType": "All"})
    for call in r.json()["records"]:
        rec = call.get("recording")
        if rec:
            out[str(rec["id"])] = {**rec, "call": call}
    _TRUTH[key] = out
    return dict(out)


def expected_bytes(emu: EmulatorProc, path: Path, messages: dict[str, dict[str, Any]]
                   ) -> bytes:
    """The bytes the emulator serves for the file at ``path`` of the tree (admin API, no
    rate budget): message attachments by position, recordings and greetings by id."""
    import re

    parts = path.parts
    area = next(p for p in parts if p in ("Voicemail", "Fax", "Texts", "Recordings",
                                         "Greetings"))
    m = re.search(r"\[(\d+)\](?:-(\d+))?(\.[A-Za-z0-9.]+)$", path.name)
    assert m is not None, f"no [id] in {path.name!r}"
    ident, nth, ext = m.group(1), m.group(2), m.group(3)
    if area == "Recordings":
        return emu.content("recording", ident)
    if area == "Greetings":
        return emu.content("greeting", ident)
    msg = messages[ident]
    atts = msg.get("attachments", [])
    if area == "Texts":
        if nth is None:
            return (msg.get("subject") or "").encode()
        media = [a for a in atts if a["type"] == "MmsAttachment"]
        att = media[int(nth) - 1]
    elif area == "Voicemail":
        kind = "AudioTranscription" if ext == ".transcript.txt" else "AudioRecording"
        same = [a for a in atts if a["type"] == kind]
        att = same[int(nth) - 1 if nth else 0]
    else:  # Fax
        docs = [a for a in atts if a["type"] in ("RenderedDocument",)] or atts
        att = docs[int(nth) - 1 if nth else 0]
    return emu.content("message", f"{ident}/{att['id']}")


OUTBOX = "Outbox"  # issue 6's writable folder: another suite's business


EXTRAS = ("Calls", "Exports")  # issue 13's generated folders: their own suites


def files_under(top: Path, *, outbox: bool = False, extras: bool = False) -> Iterator[Path]:
    """Every file below ``top`` (sorted per folder), leaving out Outbox folders and (unless
    ``extras``) the Calls/ and Exports/ folders."""
    for dirpath, dirs, files in os.walk(top):
        if not outbox and OUTBOX in dirs:
            dirs.remove(OUTBOX)
        if not extras:
            dirs[:] = [d for d in dirs if d not in EXTRAS]
        dirs.sort()
        for name in sorted(files):
            yield Path(dirpath) / name


def find_by_id(top: Path, ident: str) -> list[Path]:
    """The files below ``top`` whose name carries ``[ident]``."""
    return [p for p in files_under(top) if f"[{ident}]" in p.name]


def walk(top: Path) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk`` without Outbox, Calls and Exports folders."""
    for dirpath, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d != OUTBOX and d not in EXTRAS]
        yield dirpath, dirs, files


def run(cmd: list[str], *, timeout: float = 120.0, check: bool = True,
        **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a real program with a bound on its time; a failure shows its output."""
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                         **kwargs)
    if check and res.returncode != 0:
        raise AssertionError(f"{cmd[0]} exited {res.returncode}\nstdout: {res.stdout[-3000:]}"
                             f"\nstderr: {res.stderr[-3000:]}")
    return res


def rcfs_cli(*args: str, timeout: float = 120.0, check: bool = True
             ) -> subprocess.CompletedProcess[str]:
    """Run ``rcfs ARGS...`` (this checkout's, with the test's Python) like a user would."""
    return run([sys.executable, "-m", "rcfs.cli", *args], timeout=timeout, check=check,
               cwd=ROOT)


def cached_state(path: Path) -> str:
    """``user.rc.cached`` of a file or folder: none, partial or full."""
    return os.getxattr(path, "user.rc.cached").decode()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
             interval: float = 0.1, on_fail: Callable[[], str] | None = None) -> Any:
    """Poll ``predicate`` until truthy; fail naming ``what`` (and ``on_fail()``, some
    context) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"\n{on_fail()}" if on_fail else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")
        time.sleep(interval)


@contextlib.contextmanager
def module_mount(emu: EmulatorProc, workdir: Path, **config: Any) -> Iterator[Mounted]:
    """The one mount a test module shares: loaded before its first test (by default a 600 s
    refresh, so any request in the log came from the tests), names in UTC, and a clean exit
    (status 0) asserted after the unmount. ``config`` overrides Mounted's settings."""
    require_fuse()
    m = Mounted(emu, workdir, **{"refresh_interval": 600, "timezone": "UTC", **config})
    try:
        m.start()
        m.wait_loaded()
        yield m
    finally:
        code = m.unmount()
    assert code == 0, f"rcfs exited {code} after unmount:\n{m.log()}"
