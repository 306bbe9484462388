"""Inode numbers for tree paths: stable while the mount lives, never reused.

pyfuse3 requires lookup counts: every entry returned by lookup/readdirplus/create
increments a count that ``forget`` decrements. A path's inode stays valid while its count is
positive even when the path left the tree (a deleted message), so open files keep working;
once the kernel forgot it, the server drops it (``drop``), so the table holds the tree plus
what the kernel still references, not every path ever seen.

Inode numbers are dense (allocated in sequence, never reused), so inode -> path and the
lookup counts are arrays indexed by number: after a ``find`` of 100k files that is a few MB
instead of two more dicts of boxed ints (measured with tracemalloc at ``--scale 20000``).
"""

from __future__ import annotations

from array import array

import pyfuse3

Path = tuple[str, ...]
ROOT = pyfuse3.ROOT_INODE


class InodeTable:
    def __init__(self) -> None:
        self._by_path: dict[Path, int] = {(): ROOT}
        # Index ``ino - ROOT``; None once dropped.
        self._by_inode: list[Path | None] = [()]
        self._lookups = array("q", [0])
        self._count = 1  # live paths

    def _slot(self, inode: int) -> int:
        i = inode - ROOT
        return i if 0 <= i < len(self._by_inode) else -1

    def inode(self, path: Path) -> int:
        """The inode of ``path``, allocating one on first sight."""
        ino = self._by_path.get(path)
        if ino is None:
            ino = ROOT + len(self._by_inode)
            self._by_path[path] = ino
            self._by_inode.append(path)
            self._lookups.append(0)
            self._count += 1
        return ino

    def rename(self, old: Path, new: Path) -> None:
        """``old`` (and everything below it) is now ``new``: the kernel keeps the moved
        inodes, so they must resolve to the new paths. A replaced target loses its path."""
        for p in [p for p in self._by_path if p[:len(new)] == new]:
            self._forget_path(self._by_path.pop(p))
        moved = [(p, i) for p, i in self._by_path.items() if p[:len(old)] == old]
        for p, _ in moved:
            del self._by_path[p]
        for p, i in moved:
            self._by_path[new + p[len(old):]] = i
            self._by_inode[i - ROOT] = new + p[len(old):]

    def _forget_path(self, inode: int) -> None:
        i = self._slot(inode)
        if i >= 0 and self._by_inode[i] is not None:
            self._by_inode[i] = None
            self._count -= 1

    def known(self, path: Path) -> int | None:
        return self._by_path.get(path)

    def path(self, inode: int) -> Path | None:
        i = self._slot(inode)
        return self._by_inode[i] if i >= 0 else None

    def looked_up(self, inode: int) -> None:
        i = self._slot(inode)
        if i >= 0:
            self._lookups[i] += 1

    def forget(self, inode: int, n: int) -> bool:
        """The kernel dropped ``n`` references; True when none is left."""
        i = self._slot(inode)
        if i < 0:
            return True
        left = self._lookups[i] - n
        self._lookups[i] = max(0, left)
        return left <= 0

    def drop(self, inode: int) -> None:
        """Forget an unreferenced inode whose path left the tree (its number is not reused:
        should the path come back, it gets a new one)."""
        if inode == ROOT or self.referenced(inode):
            return
        path = self.path(inode)
        self._forget_path(inode)
        if path is not None and self._by_path.get(path) == inode:
            del self._by_path[path]

    def referenced(self, inode: int) -> bool:
        i = self._slot(inode)
        return inode == ROOT or (i >= 0 and self._lookups[i] > 0)

    def __len__(self) -> int:
        return self._count
