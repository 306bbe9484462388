"""Raise the kernel's read-ahead for this mount (FUSE starts every mount at 128 KiB).

Why: when a file's pages are cached by the kernel (every content file after its first open),
the kernel asks rcfs for at most the mount's read-ahead per request. At 128 KiB a 64 MiB
recording is 512 round trips through the Python server, at 1 MiB (the largest FUSE request
here) 64: a read from rcfs's block cache after a remount goes 1.6-2.4x faster (measured with
``scripts/bench_mount.py``). The API sees no difference (a file is one download whatever the
kernel asks), and small reads stay small (the kernel grows read-ahead only for sequential
readers).

The knob is ``/sys/class/bdi/MAJOR:MINOR/read_ahead_kb`` of the mount's anonymous device,
writable by root only: rcfs run as a user leaves the kernel's value and says so in the log.
The device is found in /proc/self/mountinfo, never by a stat of the mountpoint (which, from
inside the server, would wait on the server itself).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_READ_AHEAD_KIB = 1024
"""The largest FUSE request (256 pages): larger read-ahead only splits into more of them."""

_SYSFS = Path("/sys/class/bdi")
_MOUNTINFO = Path("/proc/self/mountinfo")


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_device(mountpoint: str | os.PathLike[str], mountinfo: str | None = None) -> str | None:
    """``MAJOR:MINOR`` of the newest mount at ``mountpoint`` (None if it is not mounted)."""
    target = os.path.abspath(mountpoint)
    if mountinfo is None:
        try:
            mountinfo = _MOUNTINFO.read_text()
        except OSError:
            return None
    found = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) >= 5 and _unescape(fields[4]) == target:
            found = fields[2]  # later lines are newer mounts stacked on the same path
    return found


def raise_read_ahead(mountpoint: str | os.PathLike[str], kib: int = DEFAULT_READ_AHEAD_KIB, *,
                     sysfs: Path = _SYSFS, mountinfo: str | None = None) -> int | None:
    """Set the mount's read-ahead to ``kib`` KiB unless it is already at least that.

    Returns the read-ahead in effect afterwards (None when it cannot be known). Never
    raises: a read-ahead left at the kernel's default only costs speed."""
    if kib <= 0:
        return None
    dev = mount_device(mountpoint, mountinfo)
    if dev is None:
        log.debug("read-ahead: %s not found in mountinfo", mountpoint)
        return None
    knob = sysfs / dev / "read_ahead_kb"
    try:
        current = int(knob.read_text().strip())
    except (OSError, ValueError) as exc:
        log.debug("read-ahead: cannot read %s: %s", knob, exc)
        return None
    if current >= kib:
        return current
    try:
        knob.write_text(f"{kib}\n")
    except OSError as exc:
        log.info("read-ahead stays at the kernel's %d KiB (%s needs root: %s); cached "
                 "reads take more round trips", current, knob, exc.strerror or exc)
        return current
    log.info("read-ahead of %s raised from %d to %d KiB", mountpoint, current, kib)
    return kib
