"""The Outbox folder of each extension: what users do there (``OutboxFs``).

The layout is described in ``rcfs.outbox.view``. Names starting with a dot are drafts:
spooled, validated, never sent until renamed to a name without the dot (which is also how
``rsync`` and many editors write). Recipient folders are created with ``mkdir`` and must
be (or normalise to) E.164 numbers; a folder may be reached under any spelling of its
number (``Fax/(212) 555-7464`` is ``Fax/+12125557464``).

A file is complete when its writer closes it (or fsyncs it): then it is validated, spooled
durably, journaled ``queued`` and only then does close return 0 (``rcfs.outbox.writing``).
A refusal is an ``OutboxError`` (see ``rcfs.outbox.validate``). Options are xattrs on the
channel folder, the recipient folder or the job itself (``rcfs.outbox.queueing``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from rcfs.api.protocol import ApiClient
from rcfs.namespace.entries import Entry
from rcfs.outbox.journal import Job, Rel, Store, new_id
from rcfs.outbox.moves import Moves
from rcfs.outbox.protocol import OutboxError
from rcfs.outbox.queueing import effective_options
from rcfs.outbox.sender import Sender, Settings
from rcfs.outbox.state import BOXES, CHANNELS, NUMBERED, README, OutboxState, norm, rel_of
from rcfs.outbox.validate import STATUS_XATTRS, check_option, normalize_number
from rcfs.outbox.view import build_tree
from rcfs.outbox.writing import Writing
from rcfs.refusal import Refusal


class Outbox:
    """Implements ``rcfs.outbox.protocol.OutboxFs`` over a ``Store`` and a ``Sender``: the
    tree comes from ``view``, writes from ``writing``, renames from ``moves``; folders,
    deletions and options are here."""

    def __init__(self, client: ApiClient, spool_dir: Path, settings: Settings | None = None,
                 on_gone: Callable[[str, Rel], None] | None = None,
                 on_change: Callable[[str | None], None] | None = None) -> None:
        self.store = Store(spool_dir)
        self.state = OutboxState(self.store, on_gone, on_change)
        self.sender = Sender(self.store, client, settings or Settings(),
                             changed=self.state.changed)
        self.writing = Writing(self.state, self.sender.wake)
        self.moves = Moves(self.state, self.sender.wake)
        self._opened = False

    @property
    def on_gone(self) -> Callable[[str, Rel], None] | None:
        """Told of a path that went away (the kernel forgets it)."""
        return self.state.on_gone

    @on_gone.setter
    def on_gone(self, hook: Callable[[str, Rel], None] | None) -> None:
        self.state.on_gone = hook

    @property
    def on_change(self) -> Callable[[str | None], None] | None:
        """Told that an extension's outbox changed (None: every one)."""
        return self.state.on_change

    @on_change.setter
    def on_change(self, hook: Callable[[str | None], None] | None) -> None:
        self.state.on_change = hook

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        """Load the journal (before the mount answers: the tree is complete at once)."""
        self.store.open_sync()
        self.sender.loaded()
        self.state.loaded()
        self._opened = True

    async def run(self) -> None:
        """The sender loop (runs until cancelled)."""
        if not self._opened:
            await trio.to_thread.run_sync(self.open)
        await self.sender.run()

    def close(self) -> None:
        for w in list(self.state.writers.values()):
            self.writing.drop(w)
        self.store.close()

    def queue(self) -> list[dict[str, Any]]:
        """Jobs not finished yet, oldest first (``rcfs status``)."""
        out = []
        for job in sorted(self.store.jobs.values(), key=lambda j: (j.created, j.id)):
            if job.is_final or job.state == "draft":
                continue
            out.append({
                "job_id": job.id, "extension_id": job.ext, "kind": job.kind, "to": job.to,
                "name": job.name, "path": "/".join(("Outbox", *rel_of(job))),
                "state": job.state, "attempts": job.attempts, "error": job.error,
                "message_id": job.message_id, "remote_status": job.remote_status,
                "queued_at": job.created,
            })
        return out

    def stats(self) -> dict[str, Any]:
        states: dict[str, int] = {}
        for job in self.store.jobs.values():
            states[job.state] = states.get(job.state, 0) + 1
        return {"jobs": states, **self.sender.counters, "journal_appends": self.store.appends}

    # -- OutboxFs: the tree and delegated calls -------------------------------------------

    def root(self, ext_id: str) -> Entry:
        tree = self.state.trees.get(ext_id)
        if tree is None:
            tree = self.state.trees[ext_id] = build_tree(self.state, ext_id)
        return tree

    async def create(self, ext_id: str, rel: Rel) -> int:
        return await self.writing.create(ext_id, rel)

    async def open_write(self, ext_id: str, rel: Rel, truncate: bool) -> int:
        return await self.writing.open_write(ext_id, rel, truncate)

    async def write(self, handle: int, offset: int, data: bytes) -> int:
        return await self.writing.write(handle, offset, data)

    async def truncate(self, handle: int | None, ext_id: str, rel: Rel, size: int) -> None:
        await self.writing.truncate(handle, ext_id, rel, size)

    async def flush(self, handle: int) -> None:
        await self.writing.flush(handle)

    async def release(self, handle: int) -> None:
        await self.writing.release(handle)

    async def rename(self, ext_id: str, old: Rel, new: Rel) -> None:
        await self.moves.rename(ext_id, old, new)

    # -- OutboxFs: directories ------------------------------------------------------------

    async def mkdir(self, ext_id: str, rel: Rel) -> None:
        rel = norm(rel)
        if len(rel) == 2 and rel[0] in NUMBERED:
            number = normalize_number(rel[1])
            if number is None:
                raise OutboxError(Refusal.INVALID,
                                  f"{rel[0]}/{rel[1]}: a recipient folder is named "
                                  "by the E.164 number, e.g. +12125557464")
            if self.state.recipient_exists(ext_id, (rel[0], number)):
                raise OutboxError(Refusal.EXISTS, f"{rel[0]}/{number} exists")
            await self.store.set_folder(ext_id, (rel[0], number), {})
            self.state.changed(ext=ext_id)
            return
        if len(rel) == 3 and rel[0] in NUMBERED:
            if not self.state.recipient_exists(ext_id, rel[:2]):
                raise OutboxError(Refusal.NOT_FOUND, f"no recipient folder {rel[0]}/{rel[1]}")
            if not rel[2].startswith("."):
                raise OutboxError(Refusal.INVALID,
                                  f"{rel[2]}: a job folder starts as a draft with a "
                                  f"dot (mkdir .{rel[2]}), then is renamed to {rel[2]} to send it")
            if self.state.job_at(ext_id, rel) is not None or self.state.writer_at(ext_id, rel):
                raise OutboxError(Refusal.EXISTS, f"{'/'.join(rel)} exists")
            job = Job(new_id(), ext_id, rel[0], rel[1], rel[2], folder=True)
            job.note("job folder created (draft)")
            await self.store.save(job)
            self.state.changed(job)
            return
        raise OutboxError(Refusal.NOT_HERE,
                          f"{'/'.join(rel)}: folders are recipient numbers (Fax/, "
                          "Text/) and draft job folders inside them")

    async def rmdir(self, ext_id: str, rel: Rel) -> None:
        rel = norm(rel)
        job = self.state.job_at(ext_id, rel)
        if job is not None and job.folder:
            if job.docs:
                raise OutboxError(Refusal.NOT_EMPTY, f"{'/'.join(rel)} is not empty")
            if job.state == "draft":
                await self.store.delete(job)
                self.state.changed(job)
                return
            if job.is_final:
                await self.state.hide(job, status=False)
                return
            raise OutboxError(Refusal.BUSY, f"{'/'.join(rel)} is {job.state}")
        if len(rel) == 2 and rel[0] in NUMBERED:
            busy = self.state.jobs.has_pending(ext_id, rel)
            if busy or any(w.rel[:2] == rel for w in self.state.live_writers(ext_id)):
                raise OutboxError(Refusal.NOT_EMPTY, f"{'/'.join(rel)} holds files not sent yet")
            if (ext_id, rel) not in self.store.folders:
                raise OutboxError(Refusal.NOT_FOUND, f"no folder {'/'.join(rel)}")
            await self.store.drop_folder(ext_id, rel)
            self.state.changed(ext=ext_id)
            return
        if rel and rel[0] in BOXES and len(rel) > 1:
            if self.state.jobs.shows_within(ext_id, rel):
                raise OutboxError(Refusal.NOT_EMPTY, f"{'/'.join(rel)} is not empty")
            if (ext_id, rel) in self.store.folders:
                await self.store.drop_folder(ext_id, rel)
            self.state.changed(ext=ext_id)
            return
        raise OutboxError(Refusal.NOT_HERE, f"{'/'.join(rel)} cannot be removed")

    # -- OutboxFs: names ------------------------------------------------------------------

    async def unlink(self, ext_id: str, rel: Rel) -> None:
        rel = norm(rel)
        w = self.state.writer_at(ext_id, rel)
        if w is not None:
            w.abandoned = True
            self.state.changed(ext=ext_id)
            return
        status = self.state.status_at(ext_id, rel)
        if status is not None:
            await self.state.hide(status, status=True)
            return
        job = self.state.job_at(ext_id, rel)
        if job is not None:
            if job.folder:
                raise OutboxError(Refusal.IS_FOLDER, f"{'/'.join(rel)} is a job folder")
            if job.state in ("draft", "queued"):
                job.note("cancelled (deleted before sending)")
                await self.store.delete(job)
                self.state.changed(job)
                return
            if job.is_final:
                await self.state.hide(job, status=False)
                return
            raise OutboxError(Refusal.BUSY, f"{'/'.join(rel)} is {job.state}: it can no longer be "
                              "cancelled")
        slot = self.state.doc_slot(ext_id, rel)
        if slot is not None and slot[1] is not None:
            job, doc = slot[0], slot[1]
            if job.state != "draft" and not job.is_final:
                raise OutboxError(Refusal.BUSY, f"{'/'.join(rel[:-1])} is {job.state}")
            job.docs = [d for d in job.docs if d is not doc]
            await self.store.save(job)
            self.store.drop_unreferenced([doc.file_id])
            self.state.changed(job)
            return
        if rel == (README,):
            raise OutboxError(Refusal.READ_ONLY, "README.txt is part of the outbox")
        raise OutboxError(Refusal.NOT_FOUND, f"no {'/'.join(rel)}")

    # -- OutboxFs: xattrs -----------------------------------------------------------------

    async def setxattr(self, ext_id: str, rel: Rel, name: str, value: bytes) -> None:
        rel = norm(rel)
        if not name.startswith("user."):
            raise OutboxError(Refusal.UNSUPPORTED, f"{name}: only user.* attributes")
        if name in STATUS_XATTRS:
            raise OutboxError(Refusal.NOT_PERMITTED, f"{name} is read-only (the job's status)")
        if name.startswith("user.rc."):
            text = check_option(name, value)
        else:
            text = value.decode("utf-8", "replace")
        w = self.state.writer_at(ext_id, rel)
        if w is not None:
            w.xattrs[name] = text
            self.state.changed(ext=ext_id)
            return
        job = self.state.job_at(ext_id, rel)
        if job is not None:
            if job.state not in ("draft", "queued"):
                raise OutboxError(Refusal.BUSY, f"{'/'.join(rel)} is {job.state}: its options are "
                                  "fixed")
            job.xattrs[name] = text
            if job.state == "queued":
                job.options = effective_options(self.store, job.ext, job.parent, job.xattrs)
                job.note(f"option {name} set to {text!r}")
            await self.store.save(job)
            self.state.changed(job)
            return
        if len(rel) == 1 and rel[0] in CHANNELS or len(rel) == 2 and rel[0] in NUMBERED \
                and self.state.recipient_exists(ext_id, rel):
            xattrs = dict(self.store.folders.get((ext_id, rel), {}))
            xattrs[name] = text
            await self.store.set_folder(ext_id, rel, xattrs)
            self.state.changed(ext=ext_id)
            return
        raise OutboxError(Refusal.NOT_PERMITTED,
                          f"{'/'.join(rel)}: options go on Fax/, Text/, Greetings/, "
                          "a recipient folder or a job not sent yet")
