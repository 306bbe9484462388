"""Shared pieces of the desktop tests (tests/desktop/test_desktop_*.py): real desktop programs
(gio, xdg-mime, GNOME's thumbnail factory, mpv) on a real mount at RingCentral's default
request counts, with the 60 s window and penalty scaled to 6 s."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from tests.emulator_proc import ROOT, EmulatorProc
from tests.mount_helper import REAL_WINDOW, is_content, run
from tests.programs import require_programs

WINDOW = REAL_WINDOW
"""The desktop modules' emulator is conftest's ``emu``: RingCentral's default counts per
window, the window and the penalty scaled to 6 s (``REAL_LIMITS``)."""

SYSTEM_PYTHON = "/usr/bin/python3"
FACTORY = ROOT / "tests" / "desktop_factory.py"

# shared-mime-info's type for each extension rcfs gives a content file.
TYPE_OF_EXTENSION = {
    ".mp3": "audio/mpeg", ".wav": "audio/x-wav", ".pdf": "application/pdf",
    ".tif": "image/tiff", ".tiff": "image/tiff", ".jpg": "image/jpeg", ".png": "image/png",
    ".gif": "image/gif", ".txt": "text/plain", ".mp4": "video/mp4", ".3gp": "video/3gpp",
}



def require_factory() -> None:
    """GNOME's thumbnail factory through the system python3 (gir1.2-gnomedesktop-3.0)."""
    require_programs("bwrap", "evince-thumbnailer", "gdk-pixbuf-thumbnailer",
                     "totem-video-thumbnailer")
    # A Python module of the system's python3 and, below, kernel namespaces: not programs on
    # PATH, so plain skips (a desktop test is a mount test: conftest fails its skip under CI).
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GnomeDesktop', '3.0'); "
         "from gi.repository import GnomeDesktop"],
        capture_output=True, text=True, timeout=60, check=False)
    if probe.returncode != 0:
        pytest.skip(f"GNOME thumbnail factory unavailable: {probe.stderr[-300:]}")
    # The factory sandboxes every thumbnailer with bwrap --unshare-all: no namespaces, no
    # thumbnails (say so instead of failing on a generic thumbnailer error).
    sandbox = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--unshare-all", "true"],
                             capture_output=True, text=True, timeout=60, check=False)
    if sandbox.returncode != 0:
        pytest.skip(f"bwrap cannot create its sandbox here: {sandbox.stderr[-300:]}")


def desktop_env(home: Path) -> dict[str, str]:
    """A minimal XDG session environment: its own HOME, config and cache, the system's data."""
    for sub in ("config", "cache", "data", "runtime"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    (home / "runtime").chmod(0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "DBUS_"))}
    env.update({
        "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"), "XDG_DATA_HOME": str(home / "data"),
        "XDG_RUNTIME_DIR": str(home / "runtime"), "XDG_DATA_DIRS": "/usr/local/share:/usr/share",
        "XDG_CONFIG_DIRS": "/etc/xdg", "GSETTINGS_BACKEND": "memory", "LC_ALL": "C.UTF-8",
    })
    return env


def remove_sandbox_leftovers(cache_home: str) -> None:
    """Remove the factory's ``/tmp/gnome-desktop-thumbnailer-XXXXXX`` folders that hold our
    cache path. With ``$XDG_CACHE_HOME`` under /tmp (a test's), bwrap creates the mount point
    of the GStreamer cache inside the sandbox's /tmp, which is that folder on the host, so
    gnome-desktop cannot remove it; with a real ~/.cache this does not happen."""
    rel = Path(cache_home).relative_to("/tmp") if cache_home.startswith("/tmp/") \
        else None
    if rel is None:
        return
    for leftover in Path("/tmp").glob("gnome-desktop-thumbnailer-*"):
        if (leftover / rel).exists():
            shutil.rmtree(leftover, ignore_errors=True)


def run_factory(paths: Iterable[Path], env: dict[str, str], timeout: float = 240.0
                ) -> list[dict[str, Any]]:
    """Thumbnail ``paths`` with GNOME's factory as Nautilus does; one record per path."""
    try:
        res = run([SYSTEM_PYTHON, str(FACTORY), *map(str, paths)], env=env, timeout=timeout)
    finally:
        remove_sandbox_leftovers(env["XDG_CACHE_HOME"])
    out: list[dict[str, Any]] = json.loads(res.stdout)
    return out


def fail_records(env: dict[str, str]) -> list[Path]:
    """The failure records GNOME's factory wrote (``thumbnails/fail/<app>/<md5>.png``)."""
    fail = Path(env["XDG_CACHE_HOME"]) / "thumbnails" / "fail"
    return sorted(fail.glob("*/*.png")) if fail.exists() else []


def png_text(path: Path) -> dict[str, str]:
    """The tEXt chunks of a PNG (Thumb::URI, Thumb::MTime of a thumbnail or failure)."""
    import struct
    import zlib

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    out: dict[str, str] = {}
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            out[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            out[key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
        pos += 12 + length
    return out


def content_of(entries: Iterable[dict[str, Any]], ident: str) -> list[dict[str, Any]]:
    """The content downloads in ``entries`` of the message or recording ``ident``."""
    return [e for e in entries if is_content(e) and f"/{ident}/" in e["path"] + "/"]


def throttled(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e["status"] == 429]


def by_group(entries: Iterable[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in entries:
        out[e["group"]] = out.get(e["group"], 0) + 1
    return out


def fill_window(emu: EmulatorProc, group: str, limit: int) -> float:
    """Seconds left until the oldest of the last ``limit`` requests of ``group`` leaves the
    window (0 when the group's window is not full now)."""
    entries = [e for e in emu.requests() if e["group"] == group and e["status"] != 429]
    recent: list[float] = [float(e["time"]) for e in entries if e["time"] > time.time() - WINDOW]
    if len(recent) < limit:
        return 0.0
    return max(0.0, sorted(recent)[-limit] + WINDOW - time.time())


def ident_of(path: Path) -> str:
    """The RingCentral id in a file name (``... [5209304010].pdf`` or ``[id]-1.jpg``)."""
    import re

    m = re.search(r"\[(\d+)\](?:-\d+)?\.[A-Za-z0-9.]+$", path.name)
    assert m is not None, path.name
    return m.group(1)
