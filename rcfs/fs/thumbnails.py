"""What thumbnailers get (config ``thumbnails = always | cached | never``), and why no file is
left with a permanent failed thumbnail.

Desktops record a thumbnailer's failure for good: GNOME's thumbnail factory (Nautilus, the
file chooser) writes ``~/.cache/thumbnails/fail/gnome-thumbnail-factory/<md5 of URI>.png``
and never tries that file again while its mtime stays the same, which for rcfs is forever.
Any error a thumbnailer sees (EAGAIN after a long wait, EIO, EACCES) becomes such a record.

* ``always`` (default): thumbnailers read every file, but their downloads use only spare
  budget (the scheduler's BACKGROUND class) and may wait ``thumbnail_wait`` (600 s) for it:
  a slow read is not a failure (GNOME's factory has no timeout; evince's 15 s limit starts
  after the document is loaded), and they never delay what the user clicked or copies.
  Except audio: RingCentral's audio has no cover art, so totem's thumbnailer fails on it
  even when cached; an uncached audio file is refused at once (EIO) instead of spending a
  Heavy request for a thumbnail that cannot exist (the failure record is the same).
* ``cached``: thumbnailers are served files that are fully in the cache and refused
  (EAGAIN) for the rest: browsing a folder costs no request.
* ``never``: thumbnailers are refused every content file (EACCES).

(Findings behind this: docs/thumbnailers.md, from reading gnome-desktop
43.2, nautilus 43.2, evince 43.1, totem 43.0 and by running the real factory.)

Whenever rcfs refuses a thumbnailer or its read fails, it remembers the file; once that
file is fully cached (someone opened or copied it), rcfs deletes the failure records the
desktops wrote for it, so the next visit of the folder makes the thumbnail from the cache.
At mount, records left from earlier sessions are checked the same way (``repair``): the
record's ``Thumb::URI`` names the file.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path as FsPath
from urllib.parse import quote, unquote

import pyfuse3
import trio

from rcfs.content.reader import ContentReader
from rcfs.content.source import ContentRef
from rcfs.fs.readers import Reader, ReaderClass

log = logging.getLogger(__name__)

MODES = ("always", "cached", "never")
__all__ = ["MODES", "ThumbnailPolicy", "failure_records"]

# g_filename_to_uri() leaves these unescaped in a path; older code escaped more, so the
# variants a desktop may have hashed are all tried.
_SAFE_VARIANTS = ("/!$&'()*+,;=:@-._~", "/!$&'()*+,=:@-._~", "/-._~")
_MAX_REMEMBERED = 4096


def _cache_home() -> FsPath:
    return FsPath(os.environ.get("XDG_CACHE_HOME") or FsPath.home() / ".cache")


def failure_records(path: str, cache_home: FsPath | None = None) -> list[FsPath]:
    """The failure records desktops may have written for the file at ``path``."""
    root = (cache_home or _cache_home()) / "thumbnails" / "fail"
    try:
        apps = [d for d in root.iterdir() if d.is_dir()]
    except OSError:
        return []
    digests = {hashlib.md5(("file://" + quote(path, safe=safe)).encode(),
                           usedforsecurity=False).hexdigest() for safe in _SAFE_VARIANTS}
    return [app / f"{d}.png" for app in apps for d in digests if (app / f"{d}.png").exists()]


AUDIO_EXTENSIONS = (".mp3", ".wav", ".m4a", ".amr", ".ogg", ".3gp")


def is_audio(ref: ContentRef, name: str) -> bool:
    ct = (ref.content_type or "").lower()
    return ct.startswith("audio/") or name.lower().endswith(AUDIO_EXTENSIONS)


def record_uri(png: FsPath) -> str | None:
    """The ``Thumb::URI`` text chunk of a thumbnail (or failure record) PNG."""
    try:
        data = png.read_bytes()[:65536]
    except OSError:
        return None
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"tEXt" and body.startswith(b"Thumb::URI\0"):
            return body.split(b"\0", 1)[1].decode("latin-1")
        if kind == b"zTXt" and body.startswith(b"Thumb::URI\0"):
            try:
                return zlib.decompress(body.split(b"\0", 1)[1][1:]).decode("latin-1")
            except zlib.error:
                return None
        if kind == b"IEND":
            break
        pos += 12 + length
    return None


class ThumbnailPolicy:
    def __init__(self, mode: str = "always", mountpoint: str = "", *, wait_s: float = 600.0,
                 cache_home: FsPath | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"thumbnails = {mode!r}: one of {', '.join(MODES)}")
        self.mode = mode
        self.mountpoint = mountpoint
        self.wait_s = wait_s
        self.cache_home = cache_home
        self._failed: dict[str, str] = {}  # content key -> the file's path on the mount
        self.counters = {"refused": 0, "failed": 0, "records_removed": 0}

    def stats(self) -> dict[str, object]:
        return {"mode": self.mode, **self.counters, "files_to_retry": len(self._failed)}

    async def admit(self, who: Reader, ref: ContentRef, path: tuple[str, ...],
                    reader: ContentReader) -> None:
        """Refuse a thumbnailer's open when the policy says so (raises FUSEError)."""
        if who.cls is not ReaderClass.BACKGROUND:
            return
        code = errno.EACCES
        if self.mode != "never":
            info = await reader.cached_info(ref)
            if info is not None and info.complete:
                return
            if is_audio(ref, path[-1] if path else ""):
                code = errno.EIO  # no thumbnail can come of it: spend no request
            elif self.mode == "always":
                return
            else:
                code = errno.EAGAIN
                self.remember(ref.key, path)
        self.counters["refused"] += 1
        log.debug("%s: refused to %s (thumbnails = %s)", "/".join(path), who, self.mode)
        raise pyfuse3.FUSEError(code)

    def waiting_for(self, key: str) -> bool:
        """A thumbnailer failed on ``key`` and the file is not known to be cached yet."""
        return key in self._failed

    def failed(self, ref: ContentRef, path: tuple[str, ...]) -> None:
        """A thumbnailer's open or read failed: it has probably recorded a failure."""
        self.counters["failed"] += 1
        self.remember(ref.key, path)

    def remember(self, key: str, path: tuple[str, ...]) -> None:
        if self.mode == "never" or not self.mountpoint:
            return
        if len(self._failed) >= _MAX_REMEMBERED:
            self._failed.pop(next(iter(self._failed)))
        self._failed[key] = os.path.join(self.mountpoint, *path)

    async def cached(self, ref: ContentRef, reader: ContentReader) -> None:
        """Called when a handle of ``ref`` closes: if a thumbnailer failed on it and it is
        now fully cached, remove the failure records so the desktop tries again."""
        path = self._failed.get(ref.key)
        if path is None:
            return
        info = await reader.cached_info(ref)
        if info is None or not info.complete:
            return
        del self._failed[ref.key]
        records = await trio.to_thread.run_sync(failure_records, path, self.cache_home)
        for record in records:
            try:
                await trio.to_thread.run_sync(record.unlink)
                self.counters["records_removed"] += 1
                log.info("%s: removed the failed-thumbnail record %s (now cached)", path,
                         record)
            except OSError as exc:
                log.info("%s: cannot remove %s: %s", path, record, exc)

    async def repair(self, content_of: Callable[[tuple[str, ...]], ContentRef | None],
                     reader: ContentReader) -> int:
        """Delete failure records (from any session) of files under this mount that are
        now fully cached and not audio; returns how many."""
        if self.mode == "never" or not self.mountpoint:
            return 0
        root = (self.cache_home or _cache_home()) / "thumbnails" / "fail"
        prefix = self.mountpoint.rstrip("/") + "/"

        def candidates() -> list[tuple[FsPath, str]]:
            out = []
            try:
                records = [r for d in root.iterdir() if d.is_dir() for r in d.glob("*.png")]
            except OSError:
                return []
            for record in records:
                uri = record_uri(record)
                if uri and uri.startswith("file://"):
                    path = unquote(uri[len("file://"):])
                    if path.startswith(prefix):
                        out.append((record, path))
            return out

        removed = 0
        for record, path in await trio.to_thread.run_sync(candidates):
            parts = tuple(path[len(prefix):].split("/"))
            ref = content_of(parts)
            if ref is None or is_audio(ref, parts[-1]):
                continue
            info = await reader.cached_info(ref)
            if info is None or not info.complete:
                self.remember(ref.key, parts)  # removed once it is cached
                continue
            try:
                await trio.to_thread.run_sync(record.unlink)
            except OSError as exc:
                log.info("%s: cannot remove %s: %s", path, record, exc)
                continue
            removed += 1
            self.counters["records_removed"] += 1
        if removed:
            log.info("removed %d failed-thumbnail records of files now cached", removed)
        return removed
