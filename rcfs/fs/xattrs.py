"""Extended attributes: ``user.rc.*`` from the entries and the plugins (pinning, exports),
``user.rc.read_status`` written through to RingCentral (by the namespace view), and the
outbox's own attributes. Other namespaces (security.*, system.*, trusted.*) are not
supported."""

from __future__ import annotations

import errno
import os

import pyfuse3

from rcfs.fs.core import OpsCore
from rcfs.fs.guard import guard

__all__ = ["XattrOps"]


class XattrOps(OpsCore):
    @guard("getxattr")
    async def getxattr(self, inode: int, name: bytes,
                       ctx: pyfuse3.RequestContext) -> bytes:
        self.counters["getxattrs"] += 1
        if not name.startswith(b"user."):
            # security.*, system.* (POSIX ACLs), trusted.*: namespaces rcfs does not support.
            # EOPNOTSUPP rather than ENODATA because tools cache it per file system: `ls -l`
            # (coreutils) then stops asking for the SELinux label and the ACL of every file,
            # two FUSE round trips per entry that the kernel never caches.
            raise pyfuse3.FUSEError(errno.EOPNOTSUPP)
        text = os.fsdecode(name)
        path, entry = self._entry_of(inode)
        for plugin in self.view.plugins:
            found = await plugin.getxattr(path, entry, text)
            if found is not None:
                return found.encode()
        value = entry.xattrs.get(text)
        if value is None:
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
        return value.encode()

    @guard("listxattr")
    async def listxattr(self, inode: int,
                        ctx: pyfuse3.RequestContext) -> list[bytes]:
        self.counters["listxattrs"] += 1
        path, entry = self._entry_of(inode)
        names = set(entry.xattrs)
        for plugin in self.view.plugins:
            names.update(plugin.xattr_names(path, entry))
        return [k.encode() for k in sorted(names)]

    @guard("setxattr")
    async def setxattr(self, inode: int, name: bytes, value: bytes,
                       ctx: pyfuse3.RequestContext) -> None:
        if not name.startswith(b"user."):
            raise pyfuse3.FUSEError(errno.EOPNOTSUPP)  # as getxattr: one answer per namespace
        path, entry = self._entry_of(inode)
        text = os.fsdecode(name)
        target = self.view.outbox_target(path)
        if target is not None and self.outbox is not None:
            await self.outbox.setxattr(*target, text, value)
            return
        for plugin in self.view.plugins:
            if await plugin.setxattr(path, entry, text, value):
                return
        await self.view.setxattr(path, entry, text, value)  # refusals: the errno table

    @guard("removexattr")
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        if not name.startswith(b"user."):
            raise pyfuse3.FUSEError(errno.EOPNOTSUPP)
        path, entry = self._entry_of(inode)
        for plugin in self.view.plugins:
            if await plugin.removexattr(path, entry, os.fsdecode(name)):
                return
        raise pyfuse3.FUSEError(errno.EROFS)
