"""Entries as the kernel's ``EntryAttributes``: modes, sizes, timeouts, and what was shown.

Timeouts say how long the kernel may trust an answer: immutable content with an exact size
for an hour, folders and files with only an estimated size briefly, the outbox (which
changes behind the kernel's back) for a second. ``AttrMaker`` also remembers the size last
given to the kernel for each inode (``reported``): an open decides between the page cache
and direct I/O by whether that size is the exact one.
"""

from __future__ import annotations

import os
import stat
from collections import OrderedDict
from dataclasses import dataclass

import pyfuse3

from rcfs.namespace.entries import Entry
from rcfs.namespace.store import Listed
from rcfs.namespace.tree import Subfolder
from rcfs.namespace.view import CONTROL_DIR, NamespaceView

Path = tuple[str, ...]

FILE_TIMEOUT = 3600.0  # content files are immutable
DIR_TIMEOUT = 5.0  # listings change: keep the kernel's view short-lived
UNKNOWN_SIZE_TIMEOUT = 1.0
IO_SIZE = 1 << 20
"""st_blksize: cp, cat and rsync size their reads by it (coreutils: at least 128 KiB). A
first open that runs with direct I/O (size unknown until then) makes one FUSE request per
read, so 1 MiB reads (the largest FUSE request, the cache's block) mean 8x fewer round trips."""
ATTR_CACHE = 4096
"""Attributes kept per inode (LRU): a listing served again builds nothing, yet a find of
100,000 files does not keep 100,000 of them."""
NEGATIVE_TIMEOUT = 600.0
OUTBOX_TIMEOUT = 1.0
"""Outbox entries are live (files move to Sent/, status files appear and change): a short
timeout, and the outbox's change notifications invalidate the ones the kernel knows."""

__all__ = ["ATTR_CACHE", "DIR_TIMEOUT", "FILE_TIMEOUT", "IO_SIZE", "NEGATIVE_TIMEOUT",
           "OUTBOX_TIMEOUT", "UNKNOWN_SIZE_TIMEOUT", "AttrMaker", "MountOptions",
           "negative_entry"]


@dataclass
class MountOptions:
    uid: int = os.getuid()
    gid: int = os.getgid()
    umask: int = 0o022
    allow_delete: bool = False
    read_timeout: float = 150.0
    """The deadline of one user operation (an open and the reads that follow it): long
    enough by default to ride out a full 60 s window plus a 60 s penalty."""
    thumbnails: str = "always"
    thumbnail_wait: float = 600.0
    mountpoint: str = ""  # for the thumbnail failure records (file:// URIs)


def negative_entry() -> pyfuse3.EntryAttributes:
    """A cached "no such name" (inode 0) for names desktops probe everywhere."""
    neg = pyfuse3.EntryAttributes()
    neg.st_ino = 0
    neg.entry_timeout = NEGATIVE_TIMEOUT
    return neg


class AttrMaker:
    """Builds attributes from entries and index listings, with a small cache."""

    def __init__(self, view: NamespaceView, options: MountOptions) -> None:
        self.view = view
        self.options = options
        # inode -> (entry, attributes) for files whose attributes cannot change while the
        # entry stays equal (known size, outside .rcfs and the outbox): listing a big folder
        # again builds nothing. A changed entry compares unequal and misses.
        self._cache: OrderedDict[int, tuple[Entry, pyfuse3.EntryAttributes]] = OrderedDict()
        self.reported: dict[int, int] = {}  # inode -> the st_size the kernel was last given

    def drop(self, inode: int) -> None:
        """Forget the cached attributes of ``inode`` (its size changed)."""
        self._cache.pop(inode, None)

    def _base(self, inode: int, mtime: float) -> pyfuse3.EntryAttributes:
        attr = pyfuse3.EntryAttributes()
        attr.st_ino = inode
        attr.generation = 0
        mtime_ns = int(mtime * 1e9)
        attr.st_mtime_ns = attr.st_ctime_ns = attr.st_atime_ns = mtime_ns
        attr.st_uid = self.options.uid
        attr.st_gid = self.options.gid
        attr.st_blksize = IO_SIZE
        return attr

    def entry(self, inode: int, entry: Entry, path: Path) -> pyfuse3.EntryAttributes:
        """Attributes of ``entry`` at ``path``, shown as ``inode``."""
        cached = self._cache.get(inode)
        if cached is not None and cached[0] == entry:
            self._cache.move_to_end(inode)
            # Given to the kernel again: after a forget (memory pressure) the open that
            # follows this lookup must see the size as given, or it reads with direct I/O.
            self.reported[inode] = cached[1].st_size
            return cached[1]
        attr = self._base(inode, entry.mtime)
        if entry.is_dir:
            perm = 0o755 if entry.writable else 0o555
            attr.st_mode = stat.S_IFDIR | (perm & ~self.options.umask)
            attr.st_nlink = 2 + self.view.subfolders(path, entry)
            attr.st_size = 0
            attr.entry_timeout = attr.attr_timeout = DIR_TIMEOUT
        else:
            perm = 0o644 if entry.writable else 0o444
            attr.st_mode = stat.S_IFREG | (perm & ~self.options.umask)
            attr.st_nlink = 1
            size = self.view.size(entry, path)
            attr.st_size = size if size is not None else self.view.shown_size(entry)
            self.reported[inode] = attr.st_size
            attr.st_blocks = (attr.st_size + 511) // 512
            known = size is not None and path[:1] != (CONTROL_DIR,) and not entry.live
            attr.entry_timeout = FILE_TIMEOUT if known else UNKNOWN_SIZE_TIMEOUT
            attr.attr_timeout = FILE_TIMEOUT if known else UNKNOWN_SIZE_TIMEOUT
        if self.view.in_outbox(path):
            attr.entry_timeout = attr.attr_timeout = OUTBOX_TIMEOUT
        elif not entry.is_dir and attr.attr_timeout == FILE_TIMEOUT:
            self._cache[inode] = (entry, attr)
            if len(self._cache) > ATTR_CACHE:
                self._cache.popitem(last=False)
        return attr

    def listed(self, inode: int, item: Subfolder | Listed,
               live: bool = False) -> pyfuse3.EntryAttributes:
        """Attributes of one item of an index listing (a folder, or an immutable message
        file), without decoding the file's payload: what makes ``find`` fast. ``live``:
        a file whose bytes change under its name (a Calls CSV) keeps short timeouts."""
        attr = self._base(inode, item[1])
        if isinstance(item, Subfolder):
            attr.st_mode = stat.S_IFDIR | (0o555 & ~self.options.umask)
            attr.st_nlink = 2 + item.subfolders
            attr.entry_timeout = attr.attr_timeout = DIR_TIMEOUT
            return attr
        attr.st_mode = stat.S_IFREG | (0o444 & ~self.options.umask)
        attr.st_nlink = 1
        attr.st_size, exact = self.view.listed_size(item)
        self.reported[inode] = attr.st_size  # readdirplus gives it to the kernel
        attr.st_blocks = (attr.st_size + 511) // 512
        attr.entry_timeout = attr.attr_timeout = (
            FILE_TIMEOUT if exact and not live else UNKNOWN_SIZE_TIMEOUT)
        return attr
