"""Files written into the outbox: a temp file per open, validated and spooled at close.

A file is complete when its writer closes it (or fsyncs it): then it is validated, spooled
durably, journaled ``queued`` and only then does close return 0. A refusal is the close's
error (see ``rcfs.outbox.validate``) and nothing of the file is kept.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import trio

from rcfs.outbox.journal import Doc, Job, Rel, Store, new_id
from rcfs.outbox.protocol import OutboxError
from rcfs.outbox.queueing import check_job, effective_options, queue
from rcfs.outbox.state import CHANNELS, OutboxState, Writer, norm
from rcfs.outbox.validate import (
    FAX_MAX_BYTES,
    GREETING_MAX_BYTES,
    MMS_MAX_BYTES,
    Checked,
    Part,
    check_file,
    check_name,
    greeting_type,
)
from rcfs.refusal import Refusal

log = logging.getLogger(__name__)

MAX_BYTES = {"Fax": FAX_MAX_BYTES, "Text": MMS_MAX_BYTES, "Greetings": GREETING_MAX_BYTES}


class Writing:
    """The outbox's open files (``OutboxFs`` create/open/write/truncate/flush/release)."""

    def __init__(self, state: OutboxState, wake: Callable[[], None]) -> None:
        self.state = state
        self.store = state.store
        self.wake = wake  # the sender: a job was queued

    def _writable_spot(self, ext: str, rel: Rel) -> None:
        """Raise unless a new file may be written at ``rel``."""
        if not rel or rel[0] not in CHANNELS:
            raise OutboxError(Refusal.NOT_HERE, f"{'/'.join(rel)}: only Fax/, Text/ and Greetings/ "
                              "take new files")
        name = rel[-1]
        check_name(name)
        if rel[0] == "Greetings":
            if len(rel) != 2:
                raise OutboxError(Refusal.NOT_HERE, "greetings are files directly in Greetings/")
            if not name.startswith("."):
                greeting_type(name)
        elif len(rel) == 2:
            raise OutboxError(Refusal.NOT_HERE, f"{rel[0]}/{name}: write into a recipient "
                              f"folder (mkdir {rel[0]}/+12125557464)")
        elif len(rel) == 3:
            if not self.state.recipient_exists(ext, rel[:2]):
                raise OutboxError(Refusal.NOT_FOUND, f"no recipient folder {rel[0]}/{rel[1]}")
        elif len(rel) == 4:
            slot = self.state.doc_slot(ext, rel)
            if slot is None:
                raise OutboxError(Refusal.NOT_FOUND, f"{'/'.join(rel[:-1])} is not a job folder")
            if slot[0].state != "draft":
                raise OutboxError(Refusal.BUSY, f"{'/'.join(rel[:-1])} is already queued")
        else:
            raise OutboxError(Refusal.NOT_HERE, "job folders do not nest")
        if self.state.writer_at(ext, rel) is not None:
            raise OutboxError(Refusal.BUSY, f"{'/'.join(rel)} is being written by another handle")
        job = self.state.job_at(ext, rel)
        if job is not None and job.state != "draft":
            raise OutboxError(Refusal.BUSY, f"{'/'.join(rel)} is {job.state}: wait until it is in "
                              "Sent/ or Failed/, or use another name")
        if job is not None and job.folder:
            raise OutboxError(Refusal.IS_FOLDER, f"{'/'.join(rel)} is a job folder")

    async def _new_writer(self, ext: str, rel: Rel, source: Path | None) -> int:
        tmp = self.store.new_tmp()
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        w = self.state.add_writer(ext, rel, tmp, fd)  # holds the name from now on
        if source is not None:
            # In a thread (up to 50 MB). The writer holds the name meanwhile, so the job
            # it copies cannot be cancelled, replaced or moved (EBUSY) until it returns.
            try:
                w.size = await trio.to_thread.run_sync(_copy_into, source, fd)
            except BaseException:
                self.drop(w)
                self.state.remove_writer(w)
                raise
        self.state.changed(ext=ext)
        return w.id

    async def create(self, ext_id: str, rel: Rel) -> int:
        rel = norm(rel)
        self._writable_spot(ext_id, rel)
        return await self._new_writer(ext_id, rel, None)

    async def open_write(self, ext_id: str, rel: Rel, truncate: bool) -> int:
        rel = norm(rel)
        self._writable_spot(ext_id, rel)
        source: Path | None = None
        if not truncate:
            job = self.state.job_at(ext_id, rel)
            slot = self.state.doc_slot(ext_id, rel) if len(rel) == 4 else None
            doc = job.docs[0] if job is not None and job.docs else slot[1] if slot else None
            if doc is not None:
                source = self.store.file_path(doc.file_id)
        return await self._new_writer(ext_id, rel, source)

    def _writer(self, handle: int) -> Writer:
        w = self.state.writers.get(handle)
        if w is None:
            raise OutboxError(Refusal.BAD_HANDLE, f"no outbox handle {handle}")
        return w

    async def write(self, handle: int, offset: int, data: bytes) -> int:
        w = self._writer(handle)
        if w.rejected is not None:
            raise w.rejected
        if w.committed:
            raise OutboxError(Refusal.BUSY, f"{'/'.join(w.rel)} was already accepted (close, or "
                              "fsync): open it again to replace a draft")
        limit = MAX_BYTES.get(w.rel[0], FAX_MAX_BYTES)
        if offset + len(data) > limit:
            # The whole file is refused: close reports the same error, nothing is kept.
            w.rejected = OutboxError(Refusal.TOO_BIG, f"{'/'.join(w.rel)}: more than {limit} bytes")
            self.drop(w)
            raise w.rejected
        written = os.pwrite(w.fd, data, offset)
        w.size = max(w.size, offset + written)
        w.dirty = True
        return written

    async def truncate(self, handle: int | None, ext_id: str, rel: Rel, size: int) -> None:
        if handle is not None and handle in self.state.writers:
            w = self.state.writers[handle]
            if w.committed:
                raise OutboxError(Refusal.BUSY, f"{'/'.join(w.rel)} was already accepted")
            os.ftruncate(w.fd, size)
            w.size = size
            w.dirty = True
            return
        rel = norm(rel)
        w2 = self.state.writer_at(ext_id, rel)
        if w2 is not None:
            os.ftruncate(w2.fd, size)
            w2.size = size
            w2.dirty = True
            return
        job = self.state.job_at(ext_id, rel)
        if job is not None and not job.folder and job.docs and job.docs[0].size == size:
            return
        raise OutboxError(Refusal.NOT_PERMITTED,
                          f"{'/'.join(rel)}: open the file for writing to change it")

    async def flush(self, handle: int) -> None:
        w = self._writer(handle)
        if w.rejected is not None:
            raise w.rejected
        if w.abandoned or (w.committed and not w.dirty):
            return
        try:
            await self._commit(w)
        except OutboxError as exc:
            log.warning("outbox: refused %s: %s", "/".join(w.rel), exc.message)
            w.rejected = exc
            self.drop(w)
            raise

    async def release(self, handle: int) -> None:
        w = self.state.writers.get(handle)
        if w is None:
            return
        if not w.committed and w.rejected is None and not w.abandoned:
            try:
                await self.flush(handle)
            except Exception as exc:
                log.warning("outbox: %s not accepted at release: %s", "/".join(w.rel), exc)
        self.drop(w)
        self.state.remove_writer(w)

    def drop(self, w: Writer) -> None:
        """Close and delete the writer's temp file (the handle stays until released)."""
        if w.fd >= 0:
            os.close(w.fd)
            w.fd = -1
        if w.tmp.exists():
            w.tmp.unlink(missing_ok=True)
        if not w.committed:
            self.state.gone(w.ext, w.rel)
        self.state.changed(ext=w.ext)

    async def _commit(self, w: Writer) -> None:
        ext, rel = w.ext, w.rel
        channel, name = rel[0], rel[-1]
        data = await trio.to_thread.run_sync(read_all, w.tmp)
        checked = check_file(channel, name, data)
        placed = self._placement(ext, rel, checked)
        file_id, sha = await trio.to_thread.run_sync(_commit_file, self.store, w)
        try:
            # Things may have moved while the file was being made durable (its draft
            # folder renamed into place, say): decide again, now without awaiting.
            if self._placement(ext, rel, checked) is not placed or (
                    placed is not None and self.store.jobs.get(placed.id) is not placed):
                raise OutboxError(Refusal.BUSY, f"{'/'.join(rel)}: its folder changed while it "
                                  "was being written")
        except OutboxError:
            self.store.drop_unreferenced([file_id])  # spooled, never journaled
            raise
        doc = Doc(name, file_id, checked.size, sha, checked.ctype, checked.pages,
                  checked.text, mtime=time.time())
        replaced: list[Doc] = []  # a document of the same name in the job folder
        if isinstance(placed, Job) and placed.folder:
            job = placed
            replaced = [d for d in job.docs if d.name == name]
            job.docs = [d for d in job.docs if d.name != name] + [doc]
            job.docs.sort(key=lambda d: d.name)
            job.note(f"{name} added ({checked.size} bytes, {checked.ctype})")
        else:
            existing = placed
            if existing is not None:  # a draft replaced: delete drops its files
                await self.store.delete(existing)
                self.state.changed(existing)
            parent = rel[:-1]
            job = Job(new_id(), ext, channel, parent[1] if len(parent) > 1 else None, name,
                      docs=[doc], xattrs=dict(w.xattrs))
            if name.startswith("."):
                job.note(f"draft spooled ({checked.size} bytes, {checked.ctype})")
            else:
                queue(self.store, job)
        w.committed = True
        w.dirty = False
        await self.store.save(job)
        self.store.drop_unreferenced(d.file_id for d in replaced)
        self.state.changed(job)
        if job.state == "queued":
            self.wake()

    def _placement(self, ext: str, rel: Rel, checked: Checked) -> Job | None:
        """Where a completed file goes: the job folder it is in, or the draft it replaces
        (None: a new job). Validates the job as a whole when the file is a job by itself."""
        if len(rel) == 4:
            slot = self.state.doc_slot(ext, rel)
            if slot is None or slot[0].state != "draft":
                raise OutboxError(Refusal.NOT_FOUND, f"{'/'.join(rel[:-1])} is no longer a draft "
                                  "job folder")
            return slot[0]
        existing = self.state.job_at(ext, rel)
        if existing is not None and existing.state != "draft":
            raise OutboxError(Refusal.BUSY, f"{'/'.join(rel)} is {existing.state}")
        if not rel[-1].startswith("."):
            part = Part(rel[-1], checked.ctype, checked.size, checked.pages, checked.text)
            check_job(rel[0], [part], effective_options(self.store, ext, rel[:-1], {}))
        return existing

def read_all(path: Path) -> bytes:
    return path.read_bytes()


def _copy_into(source: Path, fd: int) -> int:
    """A spooled file's bytes into a new writer's temp file (open without O_TRUNC)."""
    size = 0
    with open(source, "rb") as src:
        while chunk := src.read(1 << 20):
            os.write(fd, chunk)
            size += len(chunk)
    return size


def _commit_file(store: Store, w: Writer) -> tuple[str, str]:
    os.fsync(w.fd)
    os.close(w.fd)
    w.fd = -1
    file_id, sha = store.commit_file_sync(w.tmp)
    return file_id, sha
