"""Who is reading: each process that opens a content file is classed as interactive, bulk
or background, so the request budget goes first to what the user clicked.

* interactive: a process that opened only a few files lately (a player, a PDF viewer, the
  program a file manager started for a double-click). Its requests are next in line.
* bulk: a copy (``cp``, ``rsync``, ``tar``, a file manager's copy) or any process that opened
  many files lately. Bulk processes share what is left in turns (one fairness key each).
* background: thumbnailers and indexers. They only use spare budget and never delay the
  other two.

Everything comes from ``/proc/<pid>`` (``ctx.pid`` of the FUSE request is a thread id):
the names of the process (``comm``, the executable, ``argv[0]``), of its parents (GNOME runs
thumbnailers inside ``bwrap``, KDE in ``kioworker``), and how many distinct files it opened
recently. Reads of ``/proc`` are cached per process for a few seconds.
"""

from __future__ import annotations

import enum
import os
import time
from collections import deque
from dataclasses import dataclass, field

from rcfs.api.scheduler import Priority

__all__ = ["Reader", "ReaderClass", "ReaderClassifier"]


class ReaderClass(enum.Enum):
    INTERACTIVE = "interactive"
    BULK = "bulk"
    BACKGROUND = "background"

    @property
    def priority(self) -> Priority:
        return _PRIORITY[self]


_PRIORITY = {ReaderClass.INTERACTIVE: Priority.INTERACTIVE, ReaderClass.BULK: Priority.BULK,
             ReaderClass.BACKGROUND: Priority.BACKGROUND}

# Names as the kernel shows them (comm is cut to 15 bytes, so names are compared on that).
BACKGROUND_NAMES = frozenset({
    "evince-thumbnailer", "atril-thumbnailer", "xreader-thumbnailer", "papers-thumbnailer",
    "gdk-pixbuf-thumbnailer", "ffmpegthumbnailer", "totem-video-thumbnailer",
    "totem-gallery-thumbnailer",
    "gnome-thumbnail-font", "gsf-office-thumbnailer", "gnome-epub-thumbnailer",
    "gnome-mobi-thumbnailer", "glycin-image-rs", "glycin-svg", "glycin-heif",
    "tumblerd", "tumbler", "thumbnail.so", "kio_thumbnail",
    "tracker-extract", "tracker-extract-3", "tracker-miner-fs", "tracker-miner-fs-3",
    "localsearch-extractor-3", "localsearch-3", "localsearch",
    "baloo_file", "baloo_file_extractor", "baloorunner", "updatedb", "plocate",
})
# Parents whose children are thumbnail workers (bwrap alone is not enough: flatpak uses it).
BACKGROUND_PARENTS = frozenset({"tumblerd", "tracker-extract-3", "localsearch-extractor-3"})
# GNOME's thumbnail factory runs every thumbnailer under bwrap with the file bound at this
# path (gnome-desktop-thumbnail-script.c): any ancestor's command line naming it marks a
# thumbnailer, listed above or not. KDE's thumbnail worker is a kioworker with "thumbnail"
# in its command line.
SANDBOX_MARKERS = ("/tmp/gnome-desktop-file-to-thumbnail", "thumbnail.so")
BULK_NAMES = frozenset({
    "cp", "mv", "rsync", "tar", "bsdtar", "cpio", "pax", "dd", "install", "scp", "sftp-server",
    "rclone", "zip", "7z", "7za", "unison", "borg", "restic", "duplicity", "gio", "gvfsd",
    "nautilus", "nemo", "caja", "thunar", "dolphin", "pcmanfm", "pcmanfm-qt", "krusader",
    "mc", "find", "md5sum", "sha256sum", "sha1sum", "b2sum", "cksum", "diff", "cmp",
    "grep", "rg", "du",
})


def _cut(name: str) -> str:
    return name[:15]


_BACKGROUND = frozenset(_cut(n) for n in BACKGROUND_NAMES)
_BACKGROUND_PARENTS = frozenset(_cut(n) for n in BACKGROUND_PARENTS)
_BULK = frozenset(_cut(n) for n in BULK_NAMES)
_INTERPRETERS = ("python", "perl", "ruby", "node", "kioworker", "kioslave", "kdeinit")


@dataclass(frozen=True)
class Reader:
    """The process behind a FUSE request, as far as scheduling cares."""

    pid: int  # the requesting thread (whose pending signals an interrupt check reads)
    tgid: int  # the process
    comm: str
    cls: ReaderClass
    reason: str

    @property
    def tenant(self) -> str:
        """Fairness key: one per process."""
        return f"{self.cls.value}:{self.tgid}"

    @property
    def priority(self) -> Priority:
        return self.cls.priority

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.comm}, {self.cls.value})"


@dataclass
class _Proc:
    tgid: int
    comm: str
    names: frozenset[str]
    parents: frozenset[str]
    at: float
    sandboxed: bool = False  # it or an ancestor runs as a desktop's thumbnail worker


@dataclass
class ReaderClassifier:
    """Classes readers; ``bulk_files`` distinct files within ``recent_s`` make a process bulk."""

    bulk_files: int = 4
    recent_s: float = 30.0
    proc_ttl_s: float = 5.0
    proc_root: str = "/proc"
    _procs: dict[int, _Proc] = field(default_factory=dict)
    _opened: dict[int, deque[tuple[float, str]]] = field(default_factory=dict)

    def classify(self, pid: int, key: str | None = None) -> Reader:
        """The class of ``pid`` opening ``key`` (None: a request that opens nothing)."""
        now = time.monotonic()
        proc = self._proc(pid, now)
        files = self._note(proc.tgid, key, now)
        comm = proc.comm or "?"
        hit = proc.names & _BACKGROUND
        if hit:
            return Reader(pid, proc.tgid, comm, ReaderClass.BACKGROUND,
                          f"a thumbnailer or indexer ({min(hit)})")
        if proc.parents & _BACKGROUND_PARENTS:
            return Reader(pid, proc.tgid, comm, ReaderClass.BACKGROUND,
                          "started by a thumbnailer service")
        if proc.sandboxed:
            return Reader(pid, proc.tgid, comm, ReaderClass.BACKGROUND,
                          "run by a desktop thumbnail factory")
        hit = proc.names & _BULK
        if hit:
            return Reader(pid, proc.tgid, comm, ReaderClass.BULK, f"a copy tool ({min(hit)})")
        if files >= self.bulk_files:
            return Reader(pid, proc.tgid, comm, ReaderClass.BULK,
                          f"opened {files} files in {self.recent_s:.0f} s")
        return Reader(pid, proc.tgid, comm, ReaderClass.INTERACTIVE,
                      f"opened {files} file(s) in {self.recent_s:.0f} s")

    def _note(self, tgid: int, key: str | None, now: float) -> int:
        """Record that ``tgid`` opened ``key``; distinct files it opened recently."""
        seen = self._opened.setdefault(tgid, deque())
        while seen and now - seen[0][0] > self.recent_s:
            seen.popleft()
        if key is not None and all(k != key for _, k in seen):
            seen.append((now, key))
            if len(seen) > 4 * self.bulk_files:
                seen.popleft()
        if len(self._opened) > 1024:  # forget processes that went quiet
            for t in [t for t, q in self._opened.items() if not q]:
                del self._opened[t]
        return len(seen)

    def _proc(self, pid: int, now: float) -> _Proc:
        cached = self._procs.get(pid)
        if cached is not None and now - cached.at < self.proc_ttl_s:
            return cached
        if len(self._procs) > 1024:
            self._procs = {p: v for p, v in self._procs.items() if now - v.at < self.proc_ttl_s}
        status = _status(self.proc_root, pid)
        tgid = int(status.get("Tgid", pid) or pid)
        names = self._names(tgid)
        comm = _read(f"{self.proc_root}/{tgid}/comm").strip() or status.get("Name", "")
        parents: set[str] = set()
        sandboxed = _marked(_read(f"{self.proc_root}/{tgid}/cmdline"))
        ppid = int(_status(self.proc_root, tgid).get("PPid", "0") or 0)
        for _ in range(4):  # the thumbnailer, bwrap, the factory/service
            if ppid <= 1:
                break
            parents |= self._names(ppid)
            sandboxed = sandboxed or _marked(_read(f"{self.proc_root}/{ppid}/cmdline"))
            ppid = int(_status(self.proc_root, ppid).get("PPid", "0") or 0)
        proc = _Proc(tgid, comm, frozenset(names), frozenset(parents), now, sandboxed)
        self._procs[pid] = proc
        return proc

    def _names(self, pid: int) -> set[str]:
        names = set()
        comm = _read(f"{self.proc_root}/{pid}/comm").strip()
        if comm:
            names.add(_cut(comm))
        try:
            exe = os.readlink(f"{self.proc_root}/{pid}/exe")
            names.add(_cut(os.path.basename(exe.removesuffix(" (deleted)"))))
        except OSError:
            pass
        argv = _read(f"{self.proc_root}/{pid}/cmdline").split("\0")
        if argv and argv[0]:
            first = os.path.basename(argv[0])
            names.add(_cut(first))
            if first.startswith(_INTERPRETERS):  # python3 /usr/bin/x, kioworker thumbnail.so
                names.update(_cut(os.path.basename(a)) for a in argv[1:3]
                             if a and not a.startswith("-"))
        return names


def _marked(cmdline: str) -> bool:
    return any(marker in cmdline for marker in SANDBOX_MARKERS)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(4096)
    except OSError:
        return ""


def _status(root: str, pid: int) -> dict[str, str]:
    out = {}
    for line in _read(f"{root}/{pid}/status").splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out
