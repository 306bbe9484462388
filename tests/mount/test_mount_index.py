"""The metadata index through a real mount (issues 11 and 12): a damaged index is moved
aside and rebuilt from RingCentral with the same listing, and says so in status.json."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.emulator_proc import EmulatorProc
from tests.mount_helper import Mounted, require_fuse

pytestmark = pytest.mark.mount


def _listing(m: Mounted) -> dict[str, list[str]]:
    out = {}
    for dirpath, dirs, files in os.walk(m.root):
        dirs[:] = [d for d in dirs if d not in ("Outbox", ".rcfs")]
        if "Recordings" not in dirpath and "Greetings" not in dirpath:
            out[dirpath] = sorted(files)
    return out


def test_a_damaged_index_is_moved_aside_and_rebuilt(emu: EmulatorProc, tmp_path: Path) -> None:
    require_fuse()
    m = Mounted(emu, tmp_path, refresh_interval=600, timezone="UTC")
    try:
        m.start()
        m.wait_loaded()
        before = _listing(m)
        assert m.unmount() == 0
        (db,) = m.state_dir.rglob("metadata.sqlite3")
        with open(db, "r+b") as fh:  # the header and the first pages, overwritten
            fh.write(b"\xff" * 8192)
        m.start()
        m.wait_loaded()
        status = m.status()
        healed = [h for h in status["rebuilt_stores"] if h["store"] == "metadata index"]
        assert len(healed) == 1, status["rebuilt_stores"]
        assert status["index"]["moved_aside"] == 1
        assert Path(healed[0]["moved_to"]).exists()
        assert _listing(m) == before
    finally:
        m.unmount()
