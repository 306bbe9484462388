"""Inode numbers for tree paths: stable while the mount lives, never reused.

pyfuse3 requires lookup counts: every entry returned by lookup/readdirplus/create
increments a count that ``forget`` decrements. A path's inode stays valid while its count is
positive even when the path left the tree (a deleted message), so open files keep working;
once the kernel forgot it, the server drops it (``drop``), so the table holds the tree plus
what the kernel still references, not every path ever seen.
"""

from __future__ import annotations

import pyfuse3

Path = tuple[str, ...]
ROOT = pyfuse3.ROOT_INODE


class InodeTable:
    def __init__(self) -> None:
        self._by_path: dict[Path, int] = {(): ROOT}
        self._by_inode: dict[int, Path] = {ROOT: ()}
        self._lookups: dict[int, int] = {}
        self._next = ROOT + 1

    def inode(self, path: Path) -> int:
        """The inode of ``path``, allocating one on first sight."""
        ino = self._by_path.get(path)
        if ino is None:
            ino = self._next
            self._next += 1
            self._by_path[path] = ino
            self._by_inode[ino] = path
        return ino

    def rename(self, old: Path, new: Path) -> None:
        """``old`` (and everything below it) is now ``new``: the kernel keeps the moved
        inodes, so they must resolve to the new paths. A replaced target loses its path."""
        for p in [p for p in self._by_path if p[:len(new)] == new]:
            self._by_inode.pop(self._by_path.pop(p), None)
        moved = [(p, i) for p, i in self._by_path.items() if p[:len(old)] == old]
        for p, _ in moved:
            del self._by_path[p]
        for p, i in moved:
            self._by_path[new + p[len(old):]] = i
            self._by_inode[i] = new + p[len(old):]

    def known(self, path: Path) -> int | None:
        return self._by_path.get(path)

    def path(self, inode: int) -> Path | None:
        return self._by_inode.get(inode)

    def looked_up(self, inode: int) -> None:
        self._lookups[inode] = self._lookups.get(inode, 0) + 1

    def forget(self, inode: int, n: int) -> bool:
        """The kernel dropped ``n`` references; True when none is left."""
        left = self._lookups.get(inode, 0) - n
        if left > 0:
            self._lookups[inode] = left
            return False
        self._lookups.pop(inode, None)
        return True

    def drop(self, inode: int) -> None:
        """Forget an unreferenced inode whose path left the tree (its number is not reused:
        should the path come back, it gets a new one)."""
        if inode == ROOT or self.referenced(inode):
            return
        path = self._by_inode.pop(inode, None)
        if path is not None and self._by_path.get(path) == inode:
            del self._by_path[path]

    def referenced(self, inode: int) -> bool:
        return inode == ROOT or self._lookups.get(inode, 0) > 0

    def __len__(self) -> int:
        return len(self._by_inode)
