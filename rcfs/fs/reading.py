"""Content reads on behalf of processes: who reads, how long they may wait, and EINTR.

Each open of a content file is classified (``readers``: interactive, bulk copy, thumbnailer
...), gets one operation deadline shared with its first reads, and learns the file's exact
size before it returns when the cache does not know it (``ContentReader.size``: the first
response of the download the open starts anyway). Every wait for the network is watched
(``waits``) so a killed or interrupted process gets EINTR, and thumbnailers follow their own
policy (``thumbnails``). The bytes themselves come through a ``ContentHandle``, which holds
the file's blocks against eviction while the file is open.
"""

from __future__ import annotations

import errno
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import pyfuse3
import trio

from rcfs.api.errors import RcError
from rcfs.api.scheduler import TENANT
from rcfs.content.reader import ContentHandle
from rcfs.content.source import ContentRef
from rcfs.fs.attrs import MountOptions
from rcfs.fs.readers import Reader, ReaderClass, ReaderClassifier
from rcfs.fs.thumbnails import ThumbnailPolicy
from rcfs.fs.waits import WaitWatch
from rcfs.namespace.entries import Entry
from rcfs.namespace.view import NamespaceView

log = logging.getLogger(__name__)

R = TypeVar("R")
Path = tuple[str, ...]

__all__ = ["ContentIo", "OpenContent"]


@dataclass
class OpenContent:
    """A content file opened for reading."""

    handle: ContentHandle
    reader: Reader  # who opened it
    deadline: float  # the open's operation deadline, shared with its first reads
    learned: bool  # the open had to learn the size (the kernel's may be an estimate)
    fresh: bool = False  # ... proved it, and the kernel dropped the estimate it held


class ContentIo:
    """Opens, reads and closes content files for the FUSE layer."""

    def __init__(self, view: NamespaceView, options: MountOptions,
                 attrs_stale: Callable[[int], Awaitable[bool]]) -> None:
        self.view = view
        self.reader = view.reader
        self.options = options
        self._attrs_stale = attrs_stale  # (inode): the kernel's attributes are stale
        self.readers = ReaderClassifier()
        self.waits = WaitWatch()
        self.thumbnails = ThumbnailPolicy(options.thumbnails, options.mountpoint,
                                          wait_s=options.thumbnail_wait)
        self._nursery: trio.Nursery | None = None
        self.counters = dict.fromkeys(("sizes_learned_at_open", "interrupted"), 0)
        self.opens_by_class = dict.fromkeys((c.value for c in ReaderClass), 0)

    def bind(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        nursery.start_soon(self.waits.run)
        nursery.start_soon(self._repair_thumbnails)

    def status(self) -> dict[str, Any]:
        """Who reads (status.json): opens per class, the requests waiting now."""
        return {"opens_by_class": dict(self.opens_by_class), "waiting": self.waits.waiting(),
                **self.waits.counters, "thumbnails": self.thumbnails.stats()}

    async def _repair_thumbnails(self) -> None:
        """Once the tree is loaded: failure records of files now cached go (thumbnails.py)."""
        await trio.sleep(10)
        try:
            await self.thumbnails.repair(self.view.content_of, self.reader)
        except Exception:  # a convenience for the desktop: never take the mount down
            log.exception("checking failed-thumbnail records")

    async def _thumbnail_retry(self, ref: ContentRef) -> None:
        """A file a thumbnailer failed on was read: once its download has reached the disk,
        the desktop's failure record goes."""
        with trio.move_on_after(120):
            await self.reader.settle(ref)
        try:
            await self.thumbnails.cached(ref, self.reader)
        except Exception:
            log.exception("%s: removing failed-thumbnail records", ref.key)

    def _timeout(self, who: Reader) -> float:
        """The operation deadline: thumbnailers, which only use spare budget, may wait
        longer (a slow read is not a failure for them; an error may be recorded as one)."""
        if who.cls is ReaderClass.BACKGROUND:
            return max(self.options.read_timeout, self.thumbnails.wait_s)
        return self.options.read_timeout

    async def open(self, inode: int, path: Path, entry: Entry, pid: int) -> OpenContent:
        """Open ``entry``'s content for process ``pid``; the exact size is known on return."""
        assert entry.content is not None
        ref = entry.content
        who = self.readers.classify(pid, ref.key)
        self.opens_by_class[who.cls.value] += 1
        deadline = trio.current_time() + self._timeout(who)
        await self.thumbnails.admit(who, ref, path, self.reader)
        if await self.reader.probe_size(ref) is not None:
            return OpenContent(self.reader.open(ref), who, deadline, learned=False)
        fresh = await self._learn_size(inode, entry, who, path, deadline)
        return OpenContent(self.reader.open(ref), who, deadline, learned=True, fresh=fresh)

    async def _learn_size(self, inode: int, entry: Entry, who: Reader, path: Path,
                          deadline: float) -> bool:
        """An open must not return before the exact size is known: ``fstat`` of the open
        file is what ``cp``, ``rsync`` and ``tar`` copy, and readers such as ``pdfinfo`` seek
        to the end first. The first response of the download that the open starts anyway
        tells it (no extra request, no HEAD); if it cannot be known by the operation's
        deadline the open fails with that error (EAGAIN when throttled).

        True when the size is proven (a 206's Content-Range total, the usual answer to the
        download's ``bytes=0-``) and the kernel dropped the estimate it held: mounted with
        ``auto_inval_data`` (libfuse's default), its next page-cache read then asks for the
        new attributes first, so the open may use the page cache."""
        assert entry.content is not None
        ref = entry.content
        size = await self._waiting(who, path, ref, functools.partial(
            self.reader.size, ref, deadline=deadline, priority=who.priority))
        self.counters["sizes_learned_at_open"] += 1
        self.view.learned(entry, size)
        dropped = await self._attrs_stale(inode)  # they hold the estimate
        return dropped and self.view.size_proven(entry, size)

    async def read(self, opened: OpenContent, path: Path, off: int, size: int) -> bytes:
        who = opened.reader
        # One deadline per user operation: reads share the open's while it lasts (no second
        # full wait after an open that waited); a read long after gets its own.
        now = trio.current_time()
        deadline = opened.deadline if opened.deadline > now else now + self._timeout(who)
        return await self._waiting(who, path, opened.handle.ref, functools.partial(
            opened.handle.read, off, size, deadline=deadline, priority=who.priority))

    def close(self, opened: OpenContent) -> None:
        opened.handle.close()
        ref = opened.handle.ref
        if opened.learned:  # its reads may have proved the size the open learned
            self.view.record_proven(ref)
        if self.thumbnails.waiting_for(ref.key) and self._nursery is not None:
            self._nursery.start_soon(self._thumbnail_retry, ref)

    async def _waiting(self, who: Reader, path: Path, ref: ContentRef,
                       work: Callable[[], Coroutine[Any, Any, R]]) -> R:
        """Run ``work`` (which may wait for budget or bytes) as ``who``'s request: its
        requests are charged to ``who``'s class and fairness key, it ends with EINTR when
        the process is killed or interrupted, and a long wait is logged once."""
        token = TENANT.set(who.tenant)
        try:
            with self.waits.watch(who, "/".join(path),
                                  lambda: self.reader.why_waiting(ref)) as w:
                result = await work()
            if not w.interrupted:
                return result
        except RcError:
            if who.cls is ReaderClass.BACKGROUND:
                self.thumbnails.failed(ref, path)
            raise
        finally:
            TENANT.reset(token)
        self.counters["interrupted"] += 1
        raise pyfuse3.FUSEError(errno.EINTR)
