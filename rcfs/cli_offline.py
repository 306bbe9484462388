"""``rcfs pin`` / ``rcfs unpin`` / ``rcfs export``: talk to a running mount through it.

The commands need no credentials and no second session: they set extended attributes on
the mount (``user.rc.pin`` on any path, ``user.rc.export`` on ``Exports/``), exactly what
``setfattr`` can do, and follow progress in the mount's ``.rcfs/status.json``. A refusal
comes back as the errno of ``setxattr`` (ENOSPC: the cache budget cannot hold the pin;
EINVAL: a bad request), and the mount's log says why.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

__all__ = ["add_commands", "mount_root", "progress_line"]

POLL_S = 0.5
PLAIN_EVERY_S = 10.0


def mount_root(path: Path) -> Path | None:
    """The rcfs mount ``path`` is in (None when it is in none)."""
    path = path.absolute()
    for candidate in (path, *path.parents):
        if os.path.ismount(candidate):
            try:
                with open("/proc/mounts") as fh:
                    kinds = {line.split()[1].replace("\\040", " "): line.split()[2]
                             for line in fh if len(line.split()) > 2}
            except OSError:
                return candidate
            return candidate if kinds.get(str(candidate)) == "fuse.rcfs" else None
    return None


def _status(root: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((root / ".rcfs" / "status.json").read_text())
        return data
    except (OSError, ValueError):
        return {}


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def _eta(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def progress_line(p: dict[str, Any], width: int = 24) -> str:
    """One line of pinning progress (files, bytes, requests left, ETA from the budget)."""
    total = int(p.get("files_total", 0))
    done = int(p.get("files_done", 0))
    frac = done / total if total else 1.0
    bar = "#" * int(frac * width) + "." * (width - int(frac * width))
    left = sum(int(n) for n in (p.get("requests_left") or {}).values())
    return (f"[{bar}] {done}/{total} files, {_mib(p.get('bytes_done', 0))} of "
            f"{_mib(p.get('bytes_total', 0))}, {left} requests left, "
            f"ETA {_eta(float(p.get('eta_s', 0)))} ({p.get('state', '?')})")


class _Progress:
    """A bar redrawn in place on a terminal; plain lines (on change, at most every 10 s)
    otherwise, so a log stays readable."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.last = ""
        self.last_at = 0.0

    def show(self, line: str) -> None:
        if self.tty:
            self.out.write("\r\033[K" + line)
            self.out.flush()
        elif line != self.last and time.monotonic() - self.last_at >= PLAIN_EVERY_S or (
                not self.last):
            print(line, file=self.out, flush=True)
            self.last_at = time.monotonic()
        self.last = line

    def end(self, line: str) -> None:
        if self.tty:
            self.out.write("\r\033[K")
        print(line, file=self.out, flush=True)


def _set(path: Path, name: str, value: bytes, what: str) -> bool:
    try:
        os.setxattr(path, name, value)
        return True
    except OSError as exc:
        why = {errno.ENOSPC: "the cache budget cannot hold it (see the mount's log)",
               errno.ENOENT: "no such file or folder",
               errno.ENOTSUP: "not supported here"}.get(exc.errno or 0, exc.strerror)
        print(f"rcfs: cannot {what} {path}: {why}", file=sys.stderr)
        return False


def _wait(root: Path, check: Callable[[dict[str, Any]], tuple[bool, str]],
          timeout: float) -> dict[str, Any]:
    bar = _Progress(sys.stdout)
    deadline = time.monotonic() + timeout
    while True:
        status = _status(root)
        done, line = check(status)
        if done:
            bar.end(line)
            return status
        bar.show(line)
        if time.monotonic() > deadline:
            bar.end(line + " (still running; stopped waiting)")
            return status
        time.sleep(POLL_S)


def _covered(rel: str, planned: list[str]) -> bool:
    return any(rel == p or rel.startswith(p + "/") or not p for p in planned)


def _pin(args: argparse.Namespace, value: bytes) -> int:
    wanted: dict[Path, list[str]] = {}
    for raw in args.paths:
        path = Path(raw)
        root = mount_root(path)
        if root is None:
            print(f"rcfs: {raw} is not inside an rcfs mount", file=sys.stderr)
            return 2
        if not _set(path, "user.rc.pin", value, "pin" if value == b"1" else "unpin"):
            return 1
        rel = path.absolute().relative_to(root).as_posix()
        wanted.setdefault(root, []).append("" if rel == "." else rel)
    if value != b"1" or args.no_wait:
        return 0
    asked = time.time()

    for root, rels in sorted(wanted.items()):
        def check(status: dict[str, Any], rels: list[str] = rels) -> tuple[bool, str]:
            p = status.get("pinning") or {}
            planned = list(p.get("planned") or [])
            done = (float(p.get("updated", 0)) >= asked and p.get("state") == "idle"
                    and all(_covered(r, planned) for r in rels)
                    and p.get("files_done") == p.get("files_total"))
            return done, progress_line(p)

        _wait(root, check, args.timeout)
    return 0


def _export(args: argparse.Namespace) -> int:
    if args.mountpoint:
        root = Path(args.mountpoint)
    else:
        from rcfs.cli import _find_mounts

        mounts = _find_mounts()
        if len(mounts) == 1:
            root = mounts[0]
        else:
            print(f"rcfs: name the mountpoint (found {len(mounts)} rcfs mounts)",
                  file=sys.stderr)
            return 2
    folder = root / "Exports"
    if not folder.is_dir():
        print(f"rcfs: {root} has no Exports/ (these credentials cannot create reports)",
              file=sys.stderr)
        return 1
    rid = uuid.uuid4().hex
    request = {"from": args.date_from, "to": args.date_to, "request_id": rid,
               "types": args.types.split(",") if args.types else [],
               "extensions": args.extension or []}
    if not _set(folder, "user.rc.export", json.dumps(request).encode(), "export from"):
        return 1
    if args.no_wait:
        print(f"export {rid} queued")
        return 0

    def check(status: dict[str, Any]) -> tuple[bool, str]:
        task: dict[str, Any] = next(
            (t for t in status.get("exports", []) if t.get("request_id") == rid), {})
        state = task.get("status", "Queued")
        final = state in ("Completed", "Failed", "Cancelled", "Error")
        steps = ("Queued", "Accepted", "InProgress", "Completed")
        n = steps.index(state) + 1 if state in steps else len(steps)
        bar = "#" * (6 * n) + "." * (6 * (len(steps) - n))
        where = root / task["folder"] if task.get("folder") else folder
        extra = f": {task.get('error')}" if task.get("error") else ""
        return final, f"[{bar}] {state}{extra}  {where}"

    status = _wait(root, check, args.timeout)
    task: dict[str, Any] = next(
        (t for t in status.get("exports", []) if t.get("request_id") == rid), {})
    return 0 if task.get("status") == "Completed" else 1


def add_commands(sub: Any) -> None:
    p = sub.add_parser("pin", help="keep files or folders offline (downloads in background)")
    p.add_argument("paths", nargs="+")
    p.add_argument("--no-wait", action="store_true", help="return once pinned")
    p.add_argument("--timeout", type=float, default=7 * 86400.0)
    p.set_defaults(func=lambda a: _pin(a, b"1"))
    u = sub.add_parser("unpin", help="let pinned files be evicted again")
    u.add_argument("paths", nargs="+")
    u.set_defaults(func=lambda a: _pin(a, b"0"), no_wait=True, timeout=0.0)
    e = sub.add_parser("export", help="create a compliance export (message-store report)")
    e.add_argument("--from", dest="date_from", required=True, help="YYYY-MM-DD or ISO time")
    e.add_argument("--to", dest="date_to", required=True, help="YYYY-MM-DD (inclusive)")
    e.add_argument("--types", help="comma list of Fax,VoiceMail,SMS (default: all)")
    e.add_argument("--extension", action="append", metavar="N",
                   help="recorded with the task (RingCentral exports the whole account)")
    e.add_argument("--no-wait", action="store_true")
    e.add_argument("--timeout", type=float, default=6 * 3600.0)
    e.add_argument("mountpoint", nargs="?")
    e.set_defaults(func=_export)
