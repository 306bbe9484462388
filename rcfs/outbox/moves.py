"""Renames inside the outbox: drafts into place (which queues them), jobs held back as
drafts, documents into and out of job folders, failed jobs moved back to send again.

A move is decided on a trial copy of the job (re-validated for its new channel) and only
then applied: a refused rename changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from rcfs.outbox.journal import Doc, Job, Rel, new_id
from rcfs.outbox.protocol import OutboxError
from rcfs.outbox.queueing import queue
from rcfs.outbox.state import CHANNELS, NUMBERED, OutboxState, norm, rel_of
from rcfs.outbox.validate import check_file, check_name, greeting_type
from rcfs.outbox.writing import read_all
from rcfs.refusal import Refusal


class Moves:
    """``OutboxFs.rename``."""

    def __init__(self, state: OutboxState, wake: Callable[[], None]) -> None:
        self.state = state
        self.store = state.store
        self.wake = wake  # the sender: a job was queued

    async def rename(self, ext_id: str, old: Rel, new: Rel) -> None:
        old, new = norm(old), norm(new)
        if old == new:
            return
        if any(w.rel[:len(old)] == old for w in self.state.live_writers(ext_id)):
            raise OutboxError(Refusal.BUSY, f"{'/'.join(old)} is still being written")
        job = self.state.job_at(ext_id, old)
        slot = None if job is not None else self.state.doc_slot(ext_id, old)
        if job is None and (slot is None or slot[1] is None):
            raise OutboxError(Refusal.NOT_FOUND, f"no {'/'.join(old)}")
        self._writable_target(ext_id, new, moving=job)
        target = self.state.job_at(ext_id, new)
        if job is not None and job.is_final:
            if job.state != "failed" or len(new) not in (2, 3) or new[0] not in CHANNELS:
                raise OutboxError(Refusal.READ_ONLY,
                                  "finished jobs are read-only (a failed one may be "
                                  "moved back into a recipient folder to send it again)")
            await self._resend(job, new, target)
            return
        if job is not None:
            if job.state not in ("draft", "queued"):
                raise OutboxError(Refusal.BUSY, f"{'/'.join(old)} is {job.state}")
            if job.state == "queued" and not (new[:-1] == old[:-1]
                                              and new[-1].startswith(".")):
                raise OutboxError(Refusal.BUSY, f"{'/'.join(old)} is queued: rename it to a "
                                  "dot-name first to hold it")
            if len(new) == 4:
                if job.folder:
                    raise OutboxError(Refusal.NOT_HERE, "job folders do not nest")
                await self._into_folder(job.docs[0], new, job)
                return
            await self._move_job(job, new, target)
            return
        assert slot is not None and slot[1] is not None
        folder_job, doc = slot[0], slot[1]
        if folder_job.state != "draft":
            raise OutboxError(Refusal.BUSY, f"{'/'.join(old[:-1])} is {folder_job.state}")
        if len(new) == 4:
            await self._into_folder(doc, new, folder_job)
            return
        single = Job(new_id(), ext_id, folder_job.channel, folder_job.to, doc.name,
                     docs=[doc])
        trial = await self._prepare_move(single, new)
        await self._apply_move(trial, target, None)
        folder_job.docs = [d for d in folder_job.docs if d is not doc]
        await self.store.save(folder_job)
        self.state.changed(folder_job)

    def _writable_target(self, ext: str, new: Rel, moving: Job | None) -> None:
        if not new or new[0] not in CHANNELS:
            raise OutboxError(Refusal.NOT_HERE, f"{'/'.join(new)}: only Fax/, Text/ and Greetings/ "
                              "take files")
        if new[0] in NUMBERED and (len(new) < 3 or not self.state.recipient_exists(ext, new[:2])):
            raise OutboxError(Refusal.NOT_FOUND, f"no recipient folder {'/'.join(new[:2])}")
        if new[0] == "Greetings" and len(new) != 2:
            raise OutboxError(Refusal.NOT_HERE, "greetings are files directly in Greetings/")
        if self.state.writer_at(ext, new) is not None:
            raise OutboxError(Refusal.BUSY, f"{'/'.join(new)} is being written")
        target = self.state.job_at(ext, new)
        if target is not None and target is not moving and target.state != "draft":
            raise OutboxError(Refusal.EXISTS, f"{'/'.join(new)} exists ({target.state})")
        if target is not None and target.folder:
            raise OutboxError(Refusal.IS_FOLDER, f"{'/'.join(new)} is a job folder")

    async def _recheck(self, docs: list[Doc], channel: str) -> list[Doc]:
        """Docs re-validated for another channel (a draft moved from Fax/ to Text/)."""
        out = []
        for d in docs:
            data = await trio.to_thread.run_sync(read_all, self.store.file_path(d.file_id))
            c = check_file(channel, d.name, data)
            out.append(Doc(d.name, d.file_id, c.size, d.sha256, c.ctype, c.pages, c.text,
                           d.mtime))
        return out

    async def _prepare_move(self, job: Job, new: Rel) -> Job:
        """The job as it would be at ``new`` (re-validated, queued unless a dot-name);
        nothing is changed yet."""
        channel = new[0]
        to = new[1] if channel in NUMBERED else None
        name = new[-1]
        check_name(name)
        if channel == "Greetings" and job.folder:
            raise OutboxError(Refusal.IS_FOLDER, "a greeting is one file, not a job folder")
        if channel == "Greetings" and not name.startswith("."):
            greeting_type(name)
        docs = job.docs if channel == job.channel else await self._recheck(job.docs,
                                                                           channel)
        trial = Job(job.id, job.ext, channel, to, name, job.folder, docs, dict(job.xattrs),
                    state="draft", created=job.created, history=list(job.history))
        if not name.startswith("."):
            queue(self.store, trial)
        elif job.state == "queued":
            trial.note("held (renamed to a draft)")
        return trial

    async def _apply_move(self, trial: Job, target: Job | None, old_rel: Rel | None) -> None:
        if target is not None and target.id != trial.id:
            await self.store.delete(target)
            self.state.changed(target)
        await self.store.save(trial)
        if old_rel is not None:
            self.state.shown_at(trial.id, old_rel)
        self.state.changed(trial)
        if trial.state == "queued":
            self.wake()

    async def _move_job(self, job: Job, new: Rel, target: Job | None) -> None:
        trial = await self._prepare_move(job, new)
        await self._apply_move(trial, target, rel_of(job))

    async def _into_folder(self, doc: Doc | None, new: Rel, source: Job) -> None:
        assert doc is not None
        slot = self.state.doc_slot(source.ext, new)
        if slot is None or slot[0].state != "draft":
            raise OutboxError(Refusal.NOT_FOUND, f"{'/'.join(new[:-1])} is not a draft job folder")
        folder = slot[0]
        docs = [doc] if folder.channel == source.channel else await self._recheck(
            [doc], folder.channel)
        moved = Doc(new[-1], docs[0].file_id, docs[0].size, docs[0].sha256, docs[0].ctype,
                    docs[0].pages, docs[0].text, docs[0].mtime)
        # The destination is journaled first: a crash in between leaves the file in both
        # places (never in neither).
        if source is folder:
            folder.docs = [d for d in folder.docs if d is not doc]
        replaced = [d.file_id for d in folder.docs if d.name == moved.name]
        folder.docs = [d for d in folder.docs if d.name != moved.name] + [moved]
        folder.docs.sort(key=lambda d: d.name)
        await self.store.save(folder)
        if source is not folder and source.folder:
            source.docs = [d for d in source.docs if d is not doc]
            await self.store.save(source)
        elif source is not folder:
            await self.store.delete(source)
        # The document it replaced, once no journal entry refers to it, leaves the spool.
        self.store.drop_unreferenced(replaced)
        self.state.changed(source)
        self.state.changed(folder)

    async def _resend(self, failed: Job, new: Rel, target: Job | None) -> None:
        fresh = Job(new_id(), failed.ext, failed.channel, failed.to, failed.name,
                    failed.folder, list(failed.docs), dict(failed.xattrs))
        fresh.note(f"copied from failed job {failed.id} to send again")
        trial = await self._prepare_move(fresh, new)
        await self._apply_move(trial, target, None)
        failed.show_file = False
        await self.state.hide(failed, status=True)
