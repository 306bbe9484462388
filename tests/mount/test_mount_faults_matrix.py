"""The fault matrix through a real mount (issue 11): for each content fault the emulator can
inject, plus a revoked token, a stopped (SIGSTOP) and a killed emulator and a slow one,
``dd``/``cp`` of a file never read before gives either exactly the emulator's bytes or an
errno of the README's table (EAGAIN: throttled or slow; EIO: server error; ENETUNREACH:
offline) within
``read_timeout``; whatever a failed copy wrote is a prefix of the right bytes; the file reads
right once the fault is gone; and a following read of another file works.

RingCentral's default request counts (Light 50, Medium 40, Heavy 10) with windows and
penalties scaled to 6 s. Every row checks in the emulator that its fault really fired.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.emulator_proc import EmulatorProc, api_client
from tests.mount_helper import Mounted, expected_bytes, files_under, messages_of, module_mount, run

pytestmark = pytest.mark.mount

READ_TIMEOUT = 5.0  # the mount's read deadline (config read_timeout), scaled down
# A failing program must end within the deadline; this much more is allowed for a loaded
# two-core machine (process start, kernel read-ahead issuing a second read).
SLACK = 10.0
SCALED = ("--window", "6", "--penalty", "6")
ERRNOS = ("EAGAIN", "EIO", "EACCES", "ENETUNREACH", "ETIMEDOUT", "ENOENT", "EINTR",
          "ENODATA")


def _emulator_args(ports: tuple[int, int, int] | None = None) -> tuple[str, ...]:
    args: tuple[str, ...] = ("--data-seed", "1", *SCALED)
    if ports:
        args += ("--platform-port", str(ports[0]), "--media-port", str(ports[1]),
                 "--admin-port", str(ports[2]))
    return args


class Emu:
    """The module's emulator, which the ``down`` row replaces by a new process on the same
    ports (same seed: same data and credentials, new sessions)."""

    def __init__(self) -> None:
        self.proc = EmulatorProc(*_emulator_args())
        self.old: list[EmulatorProc] = []

    def ports(self) -> tuple[int, int, int]:
        info = self.proc.info
        return tuple(int(info[k].rsplit(":", 1)[1])  # type: ignore[return-value]
                     for k in ("platform_url", "media_url", "admin_url"))

    def replace(self) -> None:
        ports = self.ports()
        self.old.append(self.proc)
        self.proc = EmulatorProc(*_emulator_args(ports))
        self.old[-1].stop()  # killed already; this checks its exchanges against the spec


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emu, Mounted]]:
    emu = Emu()
    try:
        with module_mount(emu.proc, tmp_path_factory.mktemp("matrix"),
                          read_timeout=READ_TIMEOUT) as m:
            yield emu, m
    finally:
        emu.proc.stop()


@dataclass
class Pool:
    """Files not read yet in this mount, per area; each row takes fresh ones."""

    messages: dict[str, dict[str, Any]]
    fresh: dict[str, list[Path]] = field(default_factory=dict)

    def take(self, area: str) -> Path:
        """The longest file left."""
        return self.fresh[area].pop(0)

    def take_short(self, area: str) -> Path:
        return self.fresh[area].pop()


@pytest.fixture(scope="module")
def pool(world: tuple[Emu, Mounted]) -> Pool:
    emu, m = world
    messages: dict[str, dict[str, Any]] = {}
    with api_client(emu.proc) as rc:
        for user in emu.proc.info["users"]:
            for msg in messages_of(rc, user["extension_id"]):
                messages[str(msg["id"])] = msg
    out = Pool(messages)
    # Only the two areas the rows read are listed: listing a mailbox's Greetings folder
    # costs Medium requests (its answering rules and greetings), as many as the rows'
    # window has, and the first rows ran out of budget when they shared the window.
    mailboxes = [d for d in sorted(m.root.iterdir()) if d.name[:1].isdigit()]
    for area, suffix in (("Voicemail", ".mp3"), ("Recordings", ".mp3")):
        found = [p for box in mailboxes if (box / area).is_dir()
                 for p in files_under(box / area)
                 if p.parent.parent.name == area and p.suffix == suffix
                 and (area == "Recordings" or ident(p) in messages)]
        out.fresh[area] = sorted(found, key=seconds_of, reverse=True)  # longest first
        assert len(out.fresh[area]) > 12, (area, len(out.fresh[area]))
    return out


def seconds_of(path: Path) -> int:
    found = re.search(r"\((\d+)m(\d+)s\)", path.name)
    return int(found.group(1)) * 60 + int(found.group(2)) if found else 0


def ident(path: Path) -> str:
    found = re.search(r"\[(\d+)\][^\[]*$", path.name)
    assert found, path.name
    return found.group(1)


def content_path(path: Path) -> str:
    """A regex for the content URL(s) of this file only."""
    if path.parent.parent.name == "Recordings":
        return rf"/recording/{ident(path)}/content"
    return rf"/message-store/{ident(path)}/content/"


@dataclass
class Outcome:
    """What a program got: its output bytes, or the errno it printed, and how long it took."""

    data: bytes
    error: str | None
    seconds: float
    stderr: str


def errno_in(text: str) -> str | None:
    for name in ERRNOS:
        if os.strerror(getattr(errno, name)) in text:
            return name
    return None


def copy(src: Path, dst: Path, skip_blocks: int = 0) -> Outcome:
    """``cp`` the file, or ``dd`` it from block ``skip_blocks`` (64 KiB) on: a seek, so the
    first download is a ranged one."""
    if dst.exists():
        dst.unlink()
    if skip_blocks:
        cmd = ["dd", f"if={src}", f"of={dst}", "bs=64K", f"skip={skip_blocks}", "status=none"]
    else:
        cmd = ["cp", str(src), str(dst)]
    started = time.monotonic()
    res = run(cmd, check=False, timeout=120)
    took = time.monotonic() - started
    data = dst.read_bytes() if dst.exists() else b""
    error = None if res.returncode == 0 else (errno_in(res.stderr) or f"exit {res.returncode}")
    return Outcome(data, error, took, res.stderr.strip())


@dataclass(frozen=True)
class Row:
    name: str
    area: str  # which files: "Voicemail" (Medium) or "Recordings" (Heavy)
    fault: dict[str, Any] | None  # a rule for /_emulator/faults (path added per file)
    expect: frozenset[str]  # "bytes" and/or errno names
    seek: bool = False  # dd from the middle first (ranged request), then cp
    action: str | None = None  # "sigstop" | "down": done to the emulator process
    reread: bool = True  # the file reads right once the fault is gone (same group free)


def row(name: str, area: str, fault: dict[str, Any] | None, *expect: str,
        marks: Any = (), **kw: Any) -> Any:
    return pytest.param(Row(name, area, fault, frozenset(expect), **kw), id=name, marks=marks)


# Order matters: a 429 without Retry-After makes rcfs keep silent in its group for the
# 60 s RingCentral documents, and the emulator going down comes last.
ROWS = [
    row("reset-mid-body", "Voicemail", {"kind": "reset", "count": 1}, "bytes"),
    row("reset-twice-ranged", "Voicemail", {"kind": "reset", "count": 2}, "bytes", seek=True),
    row("short-206", "Voicemail", {"kind": "short206", "count": 2}, "bytes", seek=True),
    row("range-ignored", "Voicemail", {"kind": "ignore_range", "count": 2}, "bytes",
        seek=True),
    row("206-of-a-first-chunk", "Voicemail", {"kind": "partial_200", "count": 1}, "bytes"),
    row("no-content-length", "Voicemail", {"kind": "no_length", "count": 2}, "bytes"),
    row("wrong-content-length", "Voicemail", {"kind": "lie_length", "count": 1}, "bytes",
        "EIO"),
    row("slow-first-byte", "Voicemail", {"kind": "delay", "seconds": 2.0, "count": 1},
        "bytes"),
    row("bandwidth-cap", "Recordings", {"kind": "bandwidth", "bytes_per_second": 4 << 20,
                                        "count": 1}, "bytes"),
    row("429-retry-after", "Voicemail", {"kind": "status", "status": 429, "retry_after": 2,
                                         "count": 1}, "bytes", "EAGAIN"),
    row("500-once", "Voicemail", {"kind": "status", "status": 500, "count": 1}, "bytes",
        "EIO"),
    row("500-always", "Voicemail", {"kind": "status", "status": 500}, "EIO"),
    row("503-once", "Voicemail", {"kind": "status", "status": 503, "retry_after": 1,
                                  "count": 1}, "bytes", "EAGAIN", "EIO"),
    row("503-always", "Voicemail", {"kind": "status", "status": 503, "retry_after": 1},
        "EAGAIN", "EIO"),
    row("token-revoked", "Voicemail", {"kind": "revoke", "count": 1}, "bytes"),
    row("emulator-slow", "Voicemail", {"kind": "delay", "seconds": 3 * READ_TIMEOUT},
        "EAGAIN"),
    row("emulator-stopped", "Voicemail", None, "EAGAIN", action="sigstop"),
    row("429-no-retry-after", "Recordings", {"kind": "status", "status": 429,
                                             "retry_after": None, "count": 1},
        "bytes", "EAGAIN", reread=False),
    row("emulator-down", "Voicemail", None, "ENETUNREACH", action="down"),
]


def fault_applied(emu: Emu, rule_id: int) -> int:
    rules = emu.proc.admin("GET", "/_emulator/faults")
    return sum(r["applied"] for r in rules if r["id"] == rule_id)


def check(out: Outcome, want: bytes, row: Row, what: str) -> None:
    """Right bytes, or an allowed errno within the deadline with a right prefix."""
    if out.error is None:
        assert "bytes" in row.expect, f"{what}: got bytes, expected {sorted(row.expect)}"
        assert len(out.data) == len(want), f"{what}: {len(out.data)} of {len(want)} bytes"
        assert out.data == want, f"{what}: wrong bytes"
        return
    assert out.error in row.expect, (
        f"{what}: {out.error} ({out.stderr}), expected {sorted(row.expect)}")
    assert out.seconds <= READ_TIMEOUT + SLACK, (
        f"{what}: {out.error} after {out.seconds:.1f}s (deadline {READ_TIMEOUT}s)")
    assert want.startswith(out.data), f"{what}: a failed copy wrote wrong bytes"


@pytest.mark.parametrize("case", ROWS)
def test_fault_gives_right_bytes_or_documented_errno(world: tuple[Emu, Mounted], pool: Pool,
                                                     case: Row, tmp_path: Path) -> None:
    emu, m = world
    path = pool.take(case.area)
    want = expected_bytes(emu.proc, path, pool.messages)
    assert len(want) > (3 if case.seek else 1) * 65536, (path, len(want))
    skip = len(want) // 65536 // 2 if case.seek else 0
    rule_id = None
    if case.fault is not None:
        rule_id = emu.proc.fault(**case.fault, path=content_path(path))["id"]
    outcomes: list[tuple[str, Outcome, bytes]] = []
    try:
        if case.action == "sigstop":
            os.kill(emu.proc.proc.pid, signal.SIGSTOP)
        if case.action == "down":
            emu.proc.proc.send_signal(signal.SIGKILL)
            emu.proc.proc.wait(10)
        if skip:
            outcomes.append(("dd from the middle", copy(path, tmp_path / "part", skip),
                             want[skip * 65536:]))
        outcomes.append(("cp", copy(path, tmp_path / "whole"), want))
    finally:
        if case.action == "sigstop":
            os.kill(emu.proc.proc.pid, signal.SIGCONT)
    if rule_id is not None:
        assert fault_applied(emu, rule_id) >= 1, f"the {case.name} fault never fired"
        emu.proc.clear_faults()
    if case.action == "down":
        emu.replace()
    for what, out, expected in outcomes:
        try:
            check(out, expected, case, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- mount log ---\n{m.log()[-4000:]}") from None
    print(f"{case.name}: " + ", ".join(
        f"{what}: {out.error or 'bytes'} in {out.seconds:.1f}s" for what, out, _ in outcomes))
    # The fault is gone: the same file reads right (nothing wrong was cached) ...
    if case.reread:
        again = copy(path, tmp_path / "again")
        assert again.error is None and again.data == want, (
            f"re-read after {case.name}: {again.error} {again.stderr}\n{m.log()[-3000:]}")
        # ... and ls -l shows its real size (a lying Content-Length must not stick).
        assert path.stat().st_size == len(want), (path.stat().st_size, len(want))
    # ... and another file, never read, too: the mount is healthy.
    assert m.alive, f"the mount died:\n{m.log()}"
    other = pool.take_short("Voicemail")
    fresh = copy(other, tmp_path / "other")
    assert fresh.error is None, f"after {case.name}: {fresh.error} {fresh.stderr}"
    assert fresh.data == expected_bytes(emu.proc, other, pool.messages)
    m.check_log()


def test_the_matrix_covered_every_content_fault_kind() -> None:
    """Adding a content fault kind to the emulator means adding a row here."""
    from rcfs.emulator.faults import CONTENT_KINDS

    kinds = {r.values[0].fault["kind"] for r in ROWS if r.values[0].fault}
    assert kinds >= CONTENT_KINDS, CONTENT_KINDS - kinds
    assert {"status", "delay", "revoke"} <= kinds
