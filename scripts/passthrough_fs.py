#!/usr/bin/env python3
"""The smallest pyfuse3 filesystem that serves files from disk: a reference for benchmarks.

It mounts one flat folder read-only and answers every read with one ``os.pread`` of the
backing file in a worker thread: no cache, no checksum, no bookkeeping. Read through it
with the page cache dropped, it shows what any Python FUSE filesystem built on pyfuse3 and
trio gets from this machine's disk, so ``bench_mount.py`` can say how much of rcfs's
block-cache read time is rcfs's own. Mount options are rcfs's (default options,
``noatime``), and so is the read-ahead: raised as rcfs raises its own (root only), to
``--read-ahead-kib`` (``bench_mount.py`` passes the value rcfs's mount got; default rcfs's
default, 1 MiB; 0 leaves the kernel's). Not part of the product.

Usage: ``passthrough_fs.py [--read-ahead-kib N] SOURCE MOUNTPOINT``; it prints ``ready``
once mounted and unmounts on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import stat
import sys
from pathlib import Path

import pyfuse3
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rcfs.fs.readahead import DEFAULT_READ_AHEAD_KIB, raise_read_ahead


class Passthrough(pyfuse3.Operations):
    """Read-only view of the regular files directly in ``source``."""

    def __init__(self, source: Path) -> None:
        super().__init__()
        self.source = source
        self.names = sorted(p.name for p in source.iterdir() if p.is_file())
        self.inodes = {name: pyfuse3.ROOT_INODE + 1 + i for i, name in enumerate(self.names)}

    def _attr(self, inode: int) -> pyfuse3.EntryAttributes:
        attr = pyfuse3.EntryAttributes()
        if inode == pyfuse3.ROOT_INODE:
            attr.st_mode = stat.S_IFDIR | 0o755
        else:
            attr.st_mode = stat.S_IFREG | 0o644
            attr.st_size = (self.source / self._name(inode)).stat().st_size
        attr.st_ino = inode
        attr.entry_timeout = attr.attr_timeout = 300
        return attr

    def _name(self, inode: int) -> str:
        index = inode - pyfuse3.ROOT_INODE - 1
        if not 0 <= index < len(self.names):
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self.names[index]

    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext | None = None
                      ) -> pyfuse3.EntryAttributes:
        return self._attr(inode)

    async def lookup(self, parent: int, name: bytes, ctx: pyfuse3.RequestContext | None = None
                     ) -> pyfuse3.EntryAttributes:
        inode = self.inodes.get(os.fsdecode(name)) if parent == pyfuse3.ROOT_INODE else None
        if inode is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attr(inode)

    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        return inode

    async def readdir(self, fh: int, start: int, token: pyfuse3.ReaddirToken) -> None:
        for i in range(start, len(self.names)):
            name = self.names[i]
            if not pyfuse3.readdir_reply(token, os.fsencode(name),
                                         self._attr(self.inodes[name]), i + 1):
                return

    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext
                   ) -> pyfuse3.FileInfo:
        if flags & (os.O_WRONLY | os.O_RDWR):
            raise pyfuse3.FUSEError(errno.EROFS)
        fd = os.open(self.source / self._name(inode), os.O_RDONLY | os.O_CLOEXEC)
        return pyfuse3.FileInfo(fh=fd, keep_cache=True)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        data: bytes = await trio.to_thread.run_sync(os.pread, fh, size, off)
        return data

    async def release(self, fh: int) -> None:
        os.close(fh)


async def serve(source: Path, mountpoint: Path, read_ahead_kib: int) -> None:
    pyfuse3.init(Passthrough(source), str(mountpoint),
                 set(pyfuse3.default_options) | {"fsname=passthrough", "noatime"})
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pyfuse3.main)
            await trio.to_thread.run_sync(raise_read_ahead, mountpoint, read_ahead_kib)
            print("ready", flush=True)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
    finally:
        pyfuse3.close(unmount=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--read-ahead-kib", type=int, default=DEFAULT_READ_AHEAD_KIB,
                    help="raise the mount's read-ahead to this (root only; 0: the kernel's)")
    ap.add_argument("source", type=Path)
    ap.add_argument("mountpoint", type=Path)
    args = ap.parse_args()
    trio.run(serve, args.source, args.mountpoint, args.read_ahead_kib)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
