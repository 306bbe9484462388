"""Fakes for the fs-API tests (``tests/fs_api/``): request contexts, a fixed metadata
index, an outbox that records calls, an in-memory content source, and ``Fs``, which wires
them to a real ``RcfsOperations`` with a real content reader and block cache; and the two
helpers both modules use (``fuse_errno``, ``wait_until``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pyfuse3
import pytest
import trio

from rcfs.api.scheduler import Priority
from rcfs.content.blockcache import BlockCache
from rcfs.content.reader import ContentReader, open_reader
from rcfs.content.source import ContentRef
from rcfs.fs.inodes import ROOT
from rcfs.fs.ops import MountOptions, RcfsOperations
from rcfs.namespace.entries import Entry
from rcfs.namespace.index import MetadataIndex
from rcfs.namespace.store import Listed
from rcfs.namespace.tree import Listing, Subfolder
from rcfs.namespace.view import OUTBOX, NamespaceView

BS = 64 * 1024
ALICE, BOB = "101 Alice", "102 Bob"


def payload(n: int, seed: int) -> bytes:
    return bytes((i * 7 + seed) % 251 for i in range(n))


VM1 = payload(123_457, 1)  # a recording: the API gives no size
VM2 = payload(70_000, 2)  # a fax: the API gives its size
BLOBS = {"vm/1": VM1, "vm/2": VM2}


def ref(key: str, size: int | None) -> ContentRef:
    kind, *ids = key.split("/")
    return ContentRef(kind, tuple(ids), f"https://media.example.com/{key}", "Heavy", size,
                      "audio/mpeg")


# -- fakes ----------------------------------------------------------------------------------


@dataclass
class Ctx:
    """What handlers read of a ``pyfuse3.RequestContext``."""

    pid: int = os.getpid()
    uid: int = os.getuid()
    gid: int = os.getgid()
    umask: int = 0o022


CTX = cast(pyfuse3.RequestContext, Ctx())


@dataclass
class Body:
    data: bytes
    start: int
    total_size: int | None = None
    # False: a 200's Content-Length, proved once the body has ended; True: a 206's
    # Content-Range total, proof with the first response.
    size_proven: bool = False
    content_type: str | None = "audio/mpeg"
    requests: int = 1
    last_piece: trio.Event | None = None  # set: the last piece may go (held till then)

    def __post_init__(self) -> None:
        self.total_size = len(self.data)

    def __aiter__(self) -> AsyncIterator[tuple[int, bytes]]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[tuple[int, bytes]]:
        for pos in range(self.start, len(self.data), 16 * 1024):
            await trio.lowlevel.checkpoint()
            last = pos + 16 * 1024 >= len(self.data)
            if last and self.last_piece is not None:
                await self.last_piece.wait()
            self.size_proven = self.size_proven or last
            yield pos, self.data[pos:pos + 16 * 1024]


@dataclass
class Source:
    """Serves ``BLOBS``; ``fail`` is raised by every open (the request's error). Answers
    as a server without range support (200: the size a claim until the body ends) unless
    ``ranges`` (206: the Content-Range total proves it at once)."""

    fail: BaseException | None = None
    opens: list[tuple[str, int]] = field(default_factory=list)
    last_piece: trio.Event | None = None  # holds every body's last piece until set
    ranges: bool = False

    @asynccontextmanager
    async def open(self, ref: ContentRef, start: int, *, priority: Priority,
                   deadline: float | None) -> AsyncIterator[Body]:
        self.opens.append((ref.key, start))
        if self.fail is not None:
            raise self.fail
        yield Body(BLOBS[ref.key], start, size_proven=self.ranges, last_piece=self.last_piece)

    def spare(self, group: str) -> int:
        return 0

    def describe(self, group: str) -> str:
        return "fake budget"


def mailbox(ext_id: str, big: int = 0) -> Entry:
    root = Entry.directory("", 1000.0)
    vm = root.subdir("Voicemail")
    vm.add(Entry("vm1.mp3", 1001.0, content=ref("vm/1", None), message_id="m1",
                 extension_id=ext_id, xattrs={"user.rc.duration": "75"}))
    vm.add(Entry("vm2.pdf", 1002.0, content=ref("vm/2", len(VM2)), message_id="m2",
                 extension_id=ext_id))
    texts = root.subdir("Texts")
    texts.add(Entry("hello.txt", 1003.0, data=b"hello\n", message_id="m3", extension_id=ext_id))
    many = root.subdir("Many")
    for i in range(big):
        many.add(Entry(f"f{i:03d}.txt", 1004.0, data=b"x" * i, extension_id=ext_id))
    return root


class Index:
    """The surface of ``MetadataIndex`` the FUSE layer uses, over fixed trees. Folders come
    back as index folders (``children=None``, listed through ``listing``), as the real index
    returns them. ``fail``: raised by ``ensure_loaded`` (the errno rows)."""

    def __init__(self) -> None:
        self.trees = {"101": mailbox("101", big=40), "102": mailbox("102")}
        self.names = {"101": ALICE, "102": BOB}
        self.states = dict.fromkeys(self.trees, object())
        self.fail: BaseException | None = None
        self.recorded: dict[str, int] = {}
        self.deleted: list[tuple[str, str]] = []
        self.read_status: list[tuple[str, str, str]] = []

    def folders(self) -> dict[str, str]:
        return {name: ext for ext, name in self.names.items()}

    def folder_name(self, ext_id: str) -> str:
        return self.names[ext_id]

    async def ensure_loaded(self, ext_id: str, area: str | None = None) -> None:
        if self.fail is not None:
            raise self.fail

    def touch(self, ext_id: str, area: str | None = None) -> None:
        pass

    def node(self, ext_id: str, rel: tuple[str, ...]) -> Entry | None:
        found = self.trees[ext_id].walk(rel)
        if found is None or not found.is_dir:
            return found
        return Entry(rel[-1] if rel else self.names[ext_id], found.mtime, is_dir=True)

    def children(self, ext_id: str, rel: tuple[str, ...]) -> dict[str, Entry]:
        folder = self.trees[ext_id].walk(rel)
        assert folder is not None and folder.children is not None
        return {name: self.node(ext_id, (*rel, name)) or kid
                for name, kid in folder.children.items()}

    def subfolders(self, ext_id: str, rel: tuple[str, ...]) -> int:
        folder = self.trees[ext_id].walk(rel)
        assert folder is not None and folder.children is not None
        return sum(1 for kid in folder.children.values() if kid.is_dir)

    def listing(self, ext_id: str, rel: tuple[str, ...]) -> Listing | None:
        folder = self.trees[ext_id].walk(rel)
        if folder is None or folder.children is None:
            return None
        folders = [Subfolder(k.name, k.mtime, self.subfolders(ext_id, (*rel, k.name)))
                   for k in folder.children.values() if k.is_dir]
        files: list[Listed] = [
            (k.name, k.mtime, k.size if k.content is None else k.content.size,
             k.content.key if k.content else None, None, None, None)
            for k in folder.children.values() if not k.is_dir]
        return Listing(sorted(folders), sorted(files))

    def record_size(self, key: str, size: int) -> None:
        self.recorded[key] = size

    async def set_read_status(self, ext_id: str, message_id: str, status: str) -> None:
        self.read_status.append((ext_id, message_id, status))

    async def delete_message(self, ext_id: str, message_id: str) -> None:
        self.deleted.append((ext_id, message_id))

    def remove(self, ext_id: str, rel: tuple[str, ...]) -> None:
        folder = self.trees[ext_id].walk(rel[:-1])
        assert folder is not None and folder.children is not None
        del folder.children[rel[-1]]


class Outbox:
    """An ``OutboxFs`` with one writable folder per mailbox; records what it was asked."""

    def __init__(self) -> None:
        self.roots: dict[str, Entry] = {}
        self.calls: list[tuple[Any, ...]] = []

    def root(self, ext_id: str) -> Entry:
        if ext_id not in self.roots:
            top = Entry.directory(OUTBOX, writable=True)
            fax = top.add(Entry.directory("fax", writable=True))
            fax.add(Entry("draft.txt", 0.0, data=b"", writable=True))
            self.roots[ext_id] = top
        return self.roots[ext_id]

    def __getattr__(self, name: str) -> Any:
        async def call(*args: Any) -> int:
            self.calls.append((name, *args))
            return len(self.calls)
        return call


@dataclass
class Kernel:
    """What the FUSE layer told the kernel to forget (``invalidate_*``)."""

    inodes: list[int] = field(default_factory=list)
    entries: list[tuple[int, bytes]] = field(default_factory=list)


@dataclass
class Fs:
    ops: RcfsOperations
    index: Index
    outbox: Outbox
    source: Source
    reader: ContentReader
    kernel: Kernel

    async def lookup(self, *path: str) -> pyfuse3.EntryAttributes:
        inode = ROOT
        attr = None
        for name in path:
            attr = await self.ops.lookup(inode, os.fsencode(name), CTX)
            inode = attr.st_ino
        assert attr is not None
        return attr

    async def listdir(self, *path: str) -> list[str]:
        inode = (await self.lookup(*path)).st_ino if path else ROOT
        fh = await self.ops.opendir(inode, CTX)
        try:
            return [name for name, _, _ in await readdir(self.ops, fh)]
        finally:
            await self.ops.releasedir(fh)


@asynccontextmanager
async def make_fs(tmp: Path, kernel: Kernel,
                  options: MountOptions | None = None) -> AsyncIterator[Fs]:
    index, outbox, source = Index(), Outbox(), Source()
    cache = await BlockCache.open(tmp / "cache", budget="64 MiB", block_size=BS)
    try:
        async with open_reader(cache, source) as reader:
            view = NamespaceView(cast(MetadataIndex, index), reader, outbox,
                                 status=lambda: {"state": "ok"})
            ops = RcfsOperations(view, options, outbox=cast(Any, outbox))
            async with trio.open_nursery() as nursery:
                ops.bind(nursery)
                yield Fs(ops, index, outbox, source, reader, kernel)
                nursery.cancel_scope.cancel()
    finally:
        await cache.aclose()


Reply = list[tuple[str, pyfuse3.EntryAttributes, int]]


async def readdir(ops: RcfsOperations, fh: int, start: int = 0) -> Reply:
    got: Reply = []
    await ops.readdir(fh, start, cast(pyfuse3.ReaddirToken, got))
    return got


async def fuse_errno(call: Any) -> int:
    """The errno of the ``FUSEError`` that awaiting ``call`` raises (it must raise one)."""
    with pytest.raises(pyfuse3.FUSEError) as err:
        await call
    return err.value.errno


async def wait_until(cond: Any) -> None:
    """Until ``cond()`` holds (what the operations do in their nursery), at most 5 s."""
    with trio.fail_after(5):
        while not cond():
            await trio.sleep(0.01)
