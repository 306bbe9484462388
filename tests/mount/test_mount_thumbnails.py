"""The thumbnail policy through a real mount (README "who goes first"), with a stand-in
thumbnailer: ``cat`` copied under the name ``gdk-pixbuf-thumbnailer`` (rcfs classes readers
by their executable's name, so this is what a real one looks like to it; the real GNOME
thumbnailers are exercised by the desktop tests).

* ``cached``: an uncached fax is refused at once (EAGAIN) without a request; once an
  interactive read cached it, the thumbnailer reads it, and the failure record a desktop
  wrote meanwhile is deleted so the desktop tries again.
* ``always``: an uncached audio file is refused at once (EIO, no request: no thumbnail can
  come of RingCentral audio); an uncached fax is downloaded for it (on spare budget).
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.emulator_proc import EmulatorProc
from tests.mount_helper import (
    REAL_LIMITS,
    Mounted,
    RequestLog,
    brief,
    files_under,
    require_fuse,
    wait_for,
)
from tests.programs import require_programs

pytestmark = pytest.mark.mount


def _thumbnailer(tmp_path: Path) -> Path:
    exe = tmp_path / "bin" / "gdk-pixbuf-thumbnailer"
    exe.parent.mkdir()
    shutil.copy(require_programs("cat")[0], exe)
    return exe


def _fail_record(cache_home: Path, path: Path) -> Path:
    """What GNOME's factory writes when a thumbnailer fails (a PNG with Thumb::URI)."""
    uri = "file://" + quote(str(path), safe="/!$&'()*+,;=:@-._~")
    record = cache_home / "thumbnails" / "fail" / "gnome-thumbnail-factory" / (
        hashlib.md5(uri.encode(), usedforsecurity=False).hexdigest() + ".png")
    record.parent.mkdir(parents=True, exist_ok=True)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))
    record.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"tEXt", b"Thumb::URI\0" + uri.encode())
                       + chunk(b"IEND", b""))
    return record



def test_cached_mode_refuses_then_repairs_the_failure_record(
        start_emulator: Callable[..., EmulatorProc], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    require_fuse()
    cache_home = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))  # the mount process inherits it
    emu = start_emulator("--data-seed", "1", *REAL_LIMITS)
    thumb = _thumbnailer(tmp_path)
    with Mounted(emu, tmp_path / "m", refresh_interval=600, timezone="UTC",
                 thumbnails="cached") as mnt:
        mnt.wait_loaded()
        fax = sorted(files_under(mnt.mailbox("102") / "Fax"))[0]
        log = RequestLog(emu).mark()
        res = subprocess.run([str(thumb), str(fax)], capture_output=True, timeout=30,
                             check=False)
        assert res.returncode != 0 and b"Resource temporarily unavailable" in res.stderr
        assert log.content() == [], brief(log.content())
        record = _fail_record(cache_home, fax)  # what the desktop would write now
        data = fax.read_bytes()  # the user opens it (interactive): downloaded, cached
        assert len(log.content()) == 1
        wait_for(lambda: not record.exists(), 10, "the failure record to be removed",
                 on_fail=mnt.log)
        res = subprocess.run([str(thumb), str(fax)], capture_output=True, timeout=30,
                             check=True)
        assert res.stdout == data
        assert len(log.content()) == 1  # served from the cache
        st = mnt.status()["readers"]
        assert st["opens_by_class"]["background"] >= 2
        assert st["thumbnails"]["records_removed"] == 1


def test_always_mode_skips_audio_and_reads_documents(
        start_emulator: Callable[..., EmulatorProc], tmp_path: Path) -> None:
    require_fuse()
    emu = start_emulator("--data-seed", "1", *REAL_LIMITS)
    thumb = _thumbnailer(tmp_path)
    with Mounted(emu, tmp_path / "m", refresh_interval=600, timezone="UTC") as mnt:
        mnt.wait_loaded()
        box = mnt.mailbox("103")
        audio = next(p for p in files_under(box / "Voicemail") if p.suffix == ".mp3")
        fax = sorted(files_under(box / "Fax"))[0]
        log = RequestLog(emu).mark()
        res = subprocess.run([str(thumb), str(audio)], capture_output=True, timeout=30,
                             check=False)
        assert res.returncode != 0 and b"Input/output error" in res.stderr
        assert log.content() == [], brief(log.content())
        res = subprocess.run([str(thumb), str(fax)], capture_output=True, timeout=60,
                             check=True)
        assert len(log.content()) == 1
        assert res.stdout == fax.read_bytes() and res.stdout[:5] == b"%PDF-"
        assert len(log.content()) == 1
        assert [e for e in log.since() if e["status"] == 429] == []
