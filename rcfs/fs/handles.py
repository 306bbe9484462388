"""Open files and open folders: what a FUSE file handle (``fh``) stands for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rcfs.fs.reading import OpenContent
from rcfs.namespace.entries import Entry

Path = tuple[str, ...]

__all__ = ["DirHandle", "Handle", "Handles"]

DirHandle = tuple[Path, list[str], list[Any] | None]
"""(folder, sorted names, what each name is: an index listing's items, taken at opendir, so
readdir continues without querying again; None: resolve each name by path)."""


@dataclass
class Handle:
    entry: Entry
    inode: int
    data: bytes | None  # inline snapshot (texts, status.json)
    outbox: int | None = None  # the outbox's handle of a file opened for writing
    content: OpenContent | None = None  # content files: who reads, holding the blocks
    page_cache: bool = False  # reads go through the kernel's page cache (not direct I/O)
    size_told: int | None = None  # the new size the kernel was last told to ask for


class Handles:
    """File and folder handles; numbers are never reused while the mount lives."""

    def __init__(self) -> None:
        self._files: dict[int, Handle] = {}
        self._dirs: dict[int, DirHandle] = {}
        self._next = 1

    def _new(self) -> int:
        fh = self._next
        self._next += 1
        return fh

    def add(self, handle: Handle) -> int:
        fh = self._new()
        self._files[fh] = handle
        return fh

    def get(self, fh: int) -> Handle | None:
        return self._files.get(fh)

    def pop(self, fh: int) -> Handle | None:
        return self._files.pop(fh, None)

    def open_dir(self, folder: Path, names: list[str], items: list[Any] | None) -> int:
        fh = self._new()
        self._dirs[fh] = (folder, names, items)
        return fh

    def dir(self, fh: int) -> DirHandle | None:
        return self._dirs.get(fh)

    def close_dir(self, fh: int) -> None:
        self._dirs.pop(fh, None)

    def __len__(self) -> int:
        return len(self._files) + len(self._dirs)
