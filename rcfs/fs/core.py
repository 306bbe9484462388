"""The state of the FUSE adapter and what every handler group shares: the inode and handle
tables, the namespace view, attribute conversion, and kernel cache invalidation.

``RcfsOperations`` (ops.py) is this plus the handler groups: lookups, folders and reads in
ops.py, the outbox's writes in writes.py, extended attributes in xattrs.py.
"""

from __future__ import annotations

import errno
import logging
import os
from typing import Any

import pyfuse3
import trio

from rcfs.fs.attrs import AttrMaker, MountOptions
from rcfs.fs.handles import Handles
from rcfs.fs.inodes import InodeTable, Path
from rcfs.fs.reading import ContentIo
from rcfs.namespace.entries import Entry
from rcfs.namespace.view import NamespaceView
from rcfs.outbox.protocol import OutboxFs, Rel

log = logging.getLogger(__name__)

__all__ = ["OpsCore"]


class OpsCore(pyfuse3.Operations):
    """State and helpers every group of handlers shares."""

    # No writeback cache: there is nothing to write outside the outbox.
    enable_writeback_cache = False

    def __init__(self, view: NamespaceView, options: MountOptions | None = None,
                 outbox: OutboxFs | None = None) -> None:
        """``view``: the tree (built by the mount, which gives it to the plugins too);
        ``outbox``: the operations of the Outbox folders the view shows."""
        super().__init__()
        self.view = view
        self.outbox = outbox
        self.reader = view.reader  # statfs: what the content cache holds
        self.options = options or MountOptions()
        self.inodes = InodeTable()
        self.handles = Handles()
        self.attrs = AttrMaker(self.view, self.options)
        self.io = ContentIo(self.view, self.options, self._attrs_stale)
        self._outbox_inodes: dict[str, set[int]] = {}  # folder -> inodes shown in its Outbox
        self._nursery: trio.Nursery | None = None
        self.counters = dict.fromkeys(("lookups", "getattrs", "readdirs", "reads",
                                       "read_bytes", "probe_misses", "getxattrs",
                                       "listxattrs", "forgets"), 0)
        self.counters.update(self.io.counters)
        self.io.counters = self.counters  # one dict: status.json shows them together

    def bind(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.io.bind(nursery)

    def readers_status(self) -> dict[str, Any]:
        """Who reads (status.json): opens per class, the requests waiting now."""
        return self.io.status()

    # -- inodes -------------------------------------------------------------------------------

    def _path_of(self, inode: int) -> Path:
        path = self.inodes.path(inode)
        if path is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return path

    def _entry_of(self, inode: int) -> tuple[Path, Entry]:
        path = self._path_of(inode)
        entry = self.view.resolve(path)
        if entry is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return path, entry

    def _issued(self, inode: int, path: Path) -> None:
        """The kernel now holds one more reference to ``inode`` (lookup, readdirplus,
        create, mkdir); an Outbox entry joins the ones ``outbox_changed`` invalidates."""
        self.inodes.looked_up(inode)
        if self.view.in_outbox(path):
            self._outbox_inodes.setdefault(path[0], set()).add(inode)

    def _new_entry_attr(self, path: Path) -> pyfuse3.EntryAttributes:
        entry = self.view.resolve(path)
        if entry is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        inode = self.inodes.inode(path)
        self._issued(inode, path)
        return self.attrs.entry(inode, entry, path)

    # -- freshness: kernel cache invalidation -------------------------------------------------

    def tree_changed(self, ext_id: str, removed: list[Path], folders: list[Path]) -> None:
        """Index callback: files that left the tree leave the kernel's cache; folders whose
        listing changed get fresh attributes (mtime, link count) at once."""
        top = self.view.folder_of(ext_id)
        if top is None:
            return
        for rel in removed:
            parent_ino = self.inodes.known((top, *rel[:-1]))
            if parent_ino is not None:
                self._forget_entry(parent_ino, rel[-1])
        for rel in folders:
            for depth in range(len(rel) + 1):
                ino = self.inodes.known((top, *rel[:depth]))
                if ino is not None:
                    self._invalidate_attr(ino)

    def outbox_changed(self, ext_id: str | None) -> None:
        """The outbox changed behind the kernel's back (a job's state, a status file, a
        move to Sent/): drop the attributes the kernel holds for that Outbox's entries."""
        names = list(self._outbox_inodes) if ext_id is None else self.view.outbox_folders(
            ext_id)
        for name in names:
            inodes = self._outbox_inodes.get(name, set())
            for inode in list(inodes):
                if self.inodes.path(inode) is None:
                    inodes.discard(inode)  # dropped after the kernel forgot it
                else:
                    self._invalidate_attr(inode)

    def outbox_gone(self, ext_id: str, rel: Rel) -> None:
        """A job left mailbox ``ext_id``'s Outbox outside a FUSE request (moved to Sent/)."""
        path = self.view.outbox_path(ext_id, rel)
        if path is not None:
            self.forget_path(path)

    def forget_path(self, path: Path) -> None:
        """A path that vanished outside a FUSE request (an outbox job moved to Sent/)."""
        parent_ino = self.inodes.known(path[:-1])
        if parent_ino is not None:
            self._forget_entry(parent_ino, path[-1])

    async def _attrs_stale(self, inode: int) -> bool:
        """The attributes the kernel holds for ``inode`` are stale (an open learned the
        exact size; the outbox refused the file at close): gone before the caller replies.
        True when the kernel confirmed it dropped them (its next read asks for new ones)."""
        self.attrs.drop(inode)
        # Attributes only (no page locks): safe to wait for from open or flush, in a thread.
        with trio.move_on_after(2):
            return await self._invalidate_inode(inode)
        return False

    def _invalidate_path(self, path: Path) -> None:
        inode = self.inodes.known(path)
        if inode is not None:
            self._invalidate_attr(inode)

    def _invalidate_attr(self, inode: int) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(self._invalidate_inode, inode)

    @staticmethod
    async def _invalidate_inode(inode: int) -> bool:
        try:
            await trio.to_thread.run_sync(pyfuse3.invalidate_inode, inode, True,
                                          abandon_on_cancel=True)
        except OSError as exc:
            log.debug("invalidate_inode(%d): %s", inode, exc)
            return False
        return True

    def _forget_entry(self, parent_ino: int, name: str) -> None:
        try:
            pyfuse3.invalidate_entry_async(parent_ino, os.fsencode(name), ignore_enoent=True)
        except (OSError, RuntimeError) as exc:  # not mounted (fs-API tests)
            log.debug("invalidate_entry(%d, %s): %s", parent_ino, name, exc)
