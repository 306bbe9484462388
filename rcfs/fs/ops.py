"""pyfuse3 ``Operations`` for rcfs: a thin adapter from kernel requests to the namespace.

What the tree is (path resolution, ``.rcfs``, each mailbox's ``Outbox``, plugin folders)
belongs to ``rcfs.namespace.view.NamespaceView``, which also says what size a file shows
(exact, proved by a read, estimated: kept by the content reader). This class keeps what only
the kernel interface needs: inode and handle tables, attribute conversion (``attrs``), the
error boundary (``guard``) and kernel cache invalidation. Reads of content run through
``reading.ContentIo``; the outbox's write operations are in ``writes.WriteOps``; extended
attributes in ``xattrs.XattrOps``.

Every handler answers from memory when the namespace index knows the answer; the only
waits are a bounded first load of an extension never seen before and content reads, which
carry a deadline. No exception escapes a handler (``guard``).
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Sequence

import pyfuse3
import trio

from rcfs.fs.attrs import MountOptions, negative_entry
from rcfs.fs.guard import guard
from rcfs.fs.handles import Handle
from rcfs.fs.inodes import ROOT, Path
from rcfs.fs.writes import WriteOps
from rcfs.fs.xattrs import XattrOps
from rcfs.namespace.calls_csv import CALLS
from rcfs.namespace.entries import Entry
from rcfs.namespace.store import Listed
from rcfs.namespace.view import is_probe_name

log = logging.getLogger(__name__)

__all__ = ["ROOT", "MountOptions", "RcfsOperations"]


class RcfsOperations(XattrOps, WriteOps):
    """The pyfuse3 handlers (module docstring); state and shared helpers in ``OpsCore``."""

    # -- lookups and attributes ---------------------------------------------------------------

    @guard("lookup")
    async def lookup(self, parent_inode: int, name: bytes,
                     ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        self.counters["lookups"] += 1
        text = os.fsdecode(name)
        if is_probe_name(text):
            self.counters["probe_misses"] += 1
            return negative_entry()
        parent = self._path_of(parent_inode)
        if text == ".":
            path = parent
        elif text == "..":
            path = parent[:-1]
        else:
            path = (*parent, text)
        if len(path) >= 1:
            await self.view.ensure(path)
        entry = self.view.resolve(path)
        if entry is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        await self.view.size_from_cache(entry)
        inode = self.inodes.inode(path)
        self._issued(inode, path)
        return self.attrs.entry(inode, entry, path)

    @guard("getattr")
    async def getattr(self, inode: int,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        self.counters["getattrs"] += 1
        path, entry = self._entry_of(inode)
        await self.view.size_from_cache(entry)
        return self.attrs.entry(inode, entry, path)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        # Not guarded (forget has no reply), so nothing here may raise.
        for inode, n in inode_list:
            self.counters["forgets"] += 1
            if not self.inodes.forget(inode, n):
                continue
            self.attrs.reported.pop(inode, None)  # the kernel dropped its attributes
            path = self.inodes.path(inode)
            try:
                gone = path is not None and self.view.resolve(path) is None
            except Exception:
                log.exception("forget of inode %d (%s)", inode, path)
                continue
            if gone:  # (an open file holds a kernel reference: it is never forgotten)
                self.inodes.drop(inode)
                self.attrs.drop(inode)

    # -- directories --------------------------------------------------------------------------

    @guard("opendir")
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        path = self._path_of(inode)
        await self.view.ensure(path)
        entry = self.view.resolve(path)
        if entry is None or not entry.is_dir:
            raise pyfuse3.FUSEError(errno.ENOTDIR if entry else errno.ENOENT)
        listing = self.view.listing(path, entry)
        if listing is None:
            children = self.view.children(path, entry)
            for child in children.values():
                await self.view.size_from_cache(child)
            return self.handles.open_dir(path, sorted(children), None)
        names, items, files = listing
        self._probe_sizes(path, files)
        return self.handles.open_dir(path, names, items)

    @guard("readdir")
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        self.counters["readdirs"] += 1
        listing = self.handles.dir(fh)
        if listing is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        folder, names, items = listing
        children: dict[str, Entry] = {}
        if items is None and folder:
            # One walk for the folder, not one per child. The root is the exception: an
            # extension folder resolved alone also shows its Outbox.
            parent = self.view.resolve(folder)
            children = self.view.children(folder, parent) if parent is not None else {}
        for i in range(start_id, len(names)):
            name = names[i]
            path = (*folder, name)
            item = items[i] if items is not None else None
            if item is not None:
                inode = self.inodes.inode(path)
                attr = self.attrs.listed(inode, item, live=folder[1:2] == (CALLS,))
            else:
                entry = children.get(name) if children else self.view.resolve(path)
                if entry is None:
                    continue  # vanished since opendir
                inode = self.inodes.inode(path)
                attr = self.attrs.entry(inode, entry, path)
            if not pyfuse3.readdir_reply(token, os.fsencode(name), attr, i + 1):
                return
            self._issued(inode, path)

    @guard("releasedir")
    async def releasedir(self, fh: int) -> None:
        self.handles.close_dir(fh)

    def _probe_sizes(self, folder: Path, files: list[Listed]) -> None:
        """Sizes learned by downloads of an earlier session survive in the content cache:
        look them up in the background (no request), never while a listing waits, and
        refresh the attributes of the files whose size turned up."""
        if self._nursery is None:
            return
        names = self.view.to_probe(files)
        if names:
            self._nursery.start_soon(self.view.probe, folder, names, self._invalidate_path)

    # -- files --------------------------------------------------------------------------------

    @guard("open")
    async def open(self, inode: int, flags: int,
                   ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        path, entry = self._entry_of(inode)
        if entry.is_dir:
            raise pyfuse3.FUSEError(errno.EISDIR)
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            return await self._open_write(inode, path, entry, flags)
        data = self.view.inline_data(path, entry)
        opened = None
        if entry.content is not None:
            opened = await self.io.open(inode, path, entry, ctx.pid)
        handle = Handle(entry, inode, data, content=opened)
        fh = self.handles.add(handle)
        info = pyfuse3.FileInfo(fh=fh)
        learned = opened is not None and opened.learned
        # Immutable content keeps the page cache across opens; a live file (status.json,
        # the outbox's status files, the Calls/ CSVs) needs direct I/O so reads never see
        # an older version.
        live = self.view.is_live(path, entry)
        # The page cache only when the kernel's size is the exact one, else it clamps reads
        # to an estimate (a cp got 148012 of 148128 bytes without an error, in the soak):
        # the size last given to it is the proven one, or this open proved it and the
        # kernel dropped the estimate it held (``fresh``: its next read asks for the new
        # size). A size learned without proof (a 200's Content-Length) reads directly.
        size = self.view.size(entry)
        stale = (self.attrs.reported.get(inode) != size
                 or not self.view.size_proven(entry, size))
        fresh = opened is not None and opened.fresh
        handle.page_cache = not live and (fresh if learned else not stale)
        info.keep_cache = handle.page_cache and not learned  # no page of an estimate
        info.direct_io = not handle.page_cache
        return info

    @guard("read")
    async def read(self, fh: int, off: int, size: int) -> bytes:
        handle = self.handles.get(fh)
        if handle is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        self.counters["reads"] += 1
        if handle.data is not None:
            return handle.data[off:off + size]
        if handle.entry.local_path is not None:
            return await trio.to_thread.run_sync(_read_local, handle.entry.local_path, off, size)
        if handle.content is None:
            return b""
        path = self.inodes.path(handle.inode) or (handle.entry.name,)
        data = await self.io.read(handle.content, path, off, size)
        self.counters["read_bytes"] += len(data)
        self._check_size(handle, path, off + len(data), len(data) < size)
        return data

    def _check_size(self, handle: Handle, path: Path, end: int, short: bool) -> None:
        """A read that ended at ``end`` (before what was asked: ``short``) against the size
        the kernel holds: a wrong one is corrected, and never padded with zeros."""
        shown = self.attrs.reported.get(handle.inode)  # by getattr, lookup or a listing
        if shown is None:
            return
        if short and end < shown:
            # Reads end only at the real end: the size shown was wrong (a size the API or a
            # response gave, larger than the content). ls -l and the kernel get the size the
            # reader knows now.
            self.attrs.drop(handle.inode)
            self._invalidate_attr(handle.inode)
            if handle.page_cache:
                # The kernel would pad this page with zeros and, if any attribute update
                # raced this read, serve them up to the wrong size: an error instead, until
                # a getattr has given it the right size (never bytes the file lacks).
                log.warning("%s: content ends at byte %d, before the %d bytes shown; read "
                            "refused (EIO) until the kernel has the new size",
                            "/".join(path), end, shown)
                raise pyfuse3.FUSEError(errno.EIO)
            return
        known = self.view.size(handle.entry)
        if known is not None and known != shown and handle.size_told != known:
            # A response changed the size since the kernel was given it (an API size smaller
            # than the content would end page-cache reads early): its attributes are
            # dropped, so a read reaching the old end asks for the new size first.
            handle.size_told = known
            self.attrs.drop(handle.inode)
            self._invalidate_attr(handle.inode)

    @guard("flush")
    async def flush(self, fh: int) -> None:
        handle = self.handles.get(fh)
        if handle is not None and handle.outbox is not None and self.outbox is not None:
            try:
                await self.outbox.flush(handle.outbox)
            except Exception:
                # A refused file is gone from the outbox: the kernel must not go on showing
                # it from cached attributes once close() has returned the error (a `test -e`
                # right after a failed `cp` saw it). Attributes only: safe from a flush.
                await self._attrs_stale(handle.inode)
                raise

    @guard("fsync")
    async def fsync(self, fh: int, datasync: bool) -> None:
        await self.flush(fh)

    @guard("release")
    async def release(self, fh: int) -> None:
        handle = self.handles.pop(fh)
        if handle is None:
            return
        if handle.outbox is not None and self.outbox is not None:
            await self.outbox.release(handle.outbox)
        elif handle.content is not None:
            self.io.close(handle.content)

    # -- filesystem ---------------------------------------------------------------------------

    @guard("statfs")
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        st = pyfuse3.StatvfsData()
        st.f_bsize = st.f_frsize = 4096
        used = self.reader.cache.used
        st.f_blocks = max(1, used // 4096)
        st.f_bfree = st.f_bavail = 0
        st.f_files = len(self.inodes)
        st.f_ffree = st.f_favail = 0
        st.f_namemax = 255
        return st


def _read_local(path: str, off: int, size: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(off)
        return fh.read(size)
