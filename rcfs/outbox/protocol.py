"""What the FUSE layer needs from the outbox (``rcfs.outbox.folders.Outbox`` implements
it).

It lives here, below the FUSE layer, so the outbox never imports FUSE glue.

Everything under ``<extension>/Outbox`` is delegated: the outbox owns its tree (recipient
folders, queued files, Sent/ and Failed/ with their ``.status.txt``), validates and spools
what users write, and sends it exactly once. The FUSE layer only translates calls.
Errors are ``OutboxError(kind, message)``: the message is logged, the kind's errno
(``rcfs.fs.errors.ERRNO_TABLE``) returned.
"""

from __future__ import annotations

from typing import Protocol

from rcfs.namespace.entries import Entry
from rcfs.refusal import Refused

Rel = tuple[str, ...]  # path below <extension>/Outbox


class OutboxError(Refused):
    """A request the outbox refuses (a file it will not send, a name taken, a job busy):
    ``kind`` says what is wrong, the FUSE layer's table turns it into the errno."""


class OutboxFs(Protocol):
    def root(self, ext_id: str) -> Entry:
        """The ``Outbox`` directory of an extension with everything below it."""
        ...

    async def mkdir(self, ext_id: str, rel: Rel) -> None: ...

    async def rmdir(self, ext_id: str, rel: Rel) -> None: ...

    async def create(self, ext_id: str, rel: Rel) -> int:
        """A new file opened for writing; returns the outbox's handle id."""
        ...

    async def open_write(self, ext_id: str, rel: Rel, truncate: bool) -> int: ...

    async def write(self, handle: int, offset: int, data: bytes) -> int: ...

    async def flush(self, handle: int) -> None:
        """The writer's file is complete (close or fsync): validate and spool it durably.
        Raises OutboxError for a file rejected up front, so ``cp`` reports it."""
        ...

    async def release(self, handle: int) -> None: ...

    async def unlink(self, ext_id: str, rel: Rel) -> None: ...

    async def rename(self, ext_id: str, old: Rel, new: Rel) -> None: ...

    async def setxattr(self, ext_id: str, rel: Rel, name: str, value: bytes) -> None: ...

    async def truncate(self, handle: int | None, ext_id: str, rel: Rel, size: int) -> None: ...
