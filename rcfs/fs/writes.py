"""Writes: read-only everywhere except each mailbox's Outbox (new faxes and texts), and
deleting messages when the mount allows it. Everything else answers EROFS (a rename out
of an Outbox too: the target is read-only), and a rename into another mailbox's Outbox
EXDEV."""

from __future__ import annotations

import errno
import logging
import os
from typing import Any

import pyfuse3

from rcfs.fs.core import OpsCore
from rcfs.fs.guard import guard
from rcfs.fs.handles import Handle
from rcfs.fs.inodes import Path
from rcfs.namespace.entries import Entry
from rcfs.outbox.protocol import OutboxFs, Rel

log = logging.getLogger(__name__)

__all__ = ["WriteOps"]


class WriteOps(OpsCore):
    @guard("unlink")
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        path = (*self._path_of(parent_inode), os.fsdecode(name))
        target = self.view.outbox_target(path)
        if target is not None and self.outbox is not None:
            await self.outbox.unlink(*target)
            return
        entry = self.view.resolve(path)
        if entry is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        if not self.options.allow_delete or entry.message_id is None:
            raise pyfuse3.FUSEError(errno.EROFS)
        await self.view.delete_message(entry)
        parent_ino = self.inodes.known(path[:-1])
        if parent_ino is not None:
            self._forget_entry(parent_ino, path[-1])

    def _require_outbox(self, path: Path) -> tuple[OutboxFs, str, Rel]:
        """(outbox, extension id, path below Outbox); EROFS anywhere else."""
        target = self.view.outbox_target(path)
        if target is None or self.outbox is None:
            raise pyfuse3.FUSEError(errno.EROFS)
        return self.outbox, *target

    async def _open_write(self, inode: int, path: Path, entry: Entry,
                          flags: int) -> pyfuse3.FileInfo:
        """An open for writing: only files of an Outbox (a job's document), else EROFS."""
        target = self.view.outbox_target(path)
        if target is None or self.outbox is None or not entry.writable:
            log.info("refused write open of %s: read-only outside the outbox", "/".join(path))
            raise pyfuse3.FUSEError(errno.EROFS)
        oh = await self.outbox.open_write(*target, bool(flags & os.O_TRUNC))
        info = pyfuse3.FileInfo(fh=self.handles.add(Handle(entry, inode, None, outbox=oh)))
        info.direct_io = True
        return info

    @guard("mkdir")
    async def mkdir(self, parent_inode: int, name: bytes, mode: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        path = (*self._path_of(parent_inode), os.fsdecode(name))
        outbox, ext_id, rel = self._require_outbox(path)
        await outbox.mkdir(ext_id, rel)
        return self._new_entry_attr(path)

    @guard("rmdir")
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        path = (*self._path_of(parent_inode), os.fsdecode(name))
        outbox, ext_id, rel = self._require_outbox(path)
        await outbox.rmdir(ext_id, rel)

    @guard("create")
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: pyfuse3.RequestContext
                     ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        path = (*self._path_of(parent_inode), os.fsdecode(name))
        outbox, ext_id, rel = self._require_outbox(path)
        oh = await outbox.create(ext_id, rel)
        attr = self._new_entry_attr(path)
        entry = self.view.resolve(path)
        assert entry is not None
        info = pyfuse3.FileInfo(fh=self.handles.add(Handle(entry, attr.st_ino, None,
                                                           outbox=oh)))
        info.direct_io = True
        return info, attr

    @guard("write")
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        handle = self.handles.get(fh)
        if handle is None or handle.outbox is None or self.outbox is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        return await self.outbox.write(handle.outbox, off, buf)

    @guard("rename")
    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int,
                     name_new: bytes, flags: int, ctx: pyfuse3.RequestContext) -> None:
        old = (*self._path_of(parent_inode_old), os.fsdecode(name_old))
        new = (*self._path_of(parent_inode_new), os.fsdecode(name_new))
        outbox, ext_id, rel_old = self._require_outbox(old)
        target = self._require_outbox(new)  # out of Outbox/: read-only there, EROFS
        if target[1] != ext_id:
            raise pyfuse3.FUSEError(errno.EXDEV)  # another mailbox's outbox
        await outbox.rename(ext_id, rel_old, target[2])
        self.inodes.rename(old, new)

    @guard("setattr")
    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes,
                      fields: pyfuse3.SetattrFields, fh: int | None,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        path, entry = self._entry_of(inode)
        target = self.view.outbox_target(path)
        if target is None or self.outbox is None or not entry.writable:
            raise pyfuse3.FUSEError(errno.EROFS)
        if fields.update_size:
            handle = self.handles.get(fh) if fh is not None else None
            await self.outbox.truncate(handle.outbox if handle else None, *target,
                                       attr.st_size)
        # mode/owner/times of outbox files are accepted and ignored (cp -p, rsync -a).
        _, entry = self._entry_of(inode)
        return self.attrs.entry(inode, entry, path)

    async def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise pyfuse3.FUSEError(errno.EROFS)

    symlink = link = mknod = _refuse
