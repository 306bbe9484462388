"""The Outbox folder of each extension: what users see and do there (``OutboxFs``).

Layout (below ``<extension>/Outbox``)::

    README.txt                      how it works (read-only)
    Fax/<+E164>/contract.pdf        a file here is a fax to that number
    Fax/<+E164>/.bundle/{a,b}.pdf   a job folder (dot-name = draft): renamed to ``bundle``
                                    it leaves as ONE fax with all its documents, by name
    Text/<+E164>/hello.txt          plain text: an SMS; any other file: an MMS
    Text/<+E164>/.msg/{t.txt,p.jpg} a job folder: one MMS with that text and attachment(s)
    Greetings/Voicemail.wav         a custom greeting of that type (WAV or MP3)
    Sent/<same path>                finished jobs, each with ``<name>.status.txt`` beside it
    Failed/<same path>

Names starting with a dot are drafts: spooled, validated, never sent until renamed to a
name without the dot (which is also how ``rsync`` and many editors write). Recipient
folders are created with ``mkdir`` and must be (or normalise to) E.164 numbers; a folder
may be reached under any spelling of its number (``Fax/(212) 555-7464`` is
``Fax/+12125557464``).

A file is complete when its writer closes it (or fsyncs it): then it is validated, spooled
durably, journaled ``queued`` and only then does close return 0. A refusal is the close's
errno (see ``rcfs.outbox.validate``). Options are xattrs on the channel folder, the
recipient folder or the job itself (most specific wins), frozen when the job is queued:
``user.rc.fax_resolution`` (High|Low), ``user.rc.cover_index`` (0 = none, 1-13, 15-28),
``user.rc.cover_page_text``, ``user.rc.from`` (SMS/MMS sender), ``user.rc.answering_rule``
(greetings: default ``business-hours-rule``; ``none`` = store without applying). Status is
read-only xattrs: ``user.rc.status``, ``user.rc.error``, ``user.rc.job_id``,
``user.rc.message_id``...
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import trio

from rcfs.api.listing import ApiClient
from rcfs.namespace.entries import Entry
from rcfs.outbox.journal import Doc, Job, Rel, Store, new_id
from rcfs.outbox.names import ORIGINAL_NAME_XATTR, STATUS_SUFFIX, escaped, shown_name
from rcfs.outbox.protocol import OutboxError
from rcfs.outbox.sender import Sender, Settings
from rcfs.outbox.validate import (
    FAX_MAX_BYTES,
    GREETING_MAX_BYTES,
    MMS_MAX_BYTES,
    OPTION_XATTRS,
    STATUS_XATTRS,
    Checked,
    Part,
    check_fax_job,
    check_file,
    check_name,
    check_option,
    greeting_type,
    normalize_number,
    text_job,
)
from rcfs.refusal import Refusal

log = logging.getLogger(__name__)

CHANNELS = ("Fax", "Text", "Greetings")
NUMBERED = ("Fax", "Text")
BOXES = {"Sent": "Sent", "Failed": "Failed"}
README = "README.txt"
MAX_BYTES = {"Fax": FAX_MAX_BYTES, "Text": MMS_MAX_BYTES, "Greetings": GREETING_MAX_BYTES}


@dataclass
class _Writer:
    id: int
    ext: str
    rel: Rel
    tmp: Path
    fd: int
    size: int = 0
    dirty: bool = True
    committed: bool = False
    rejected: Exception | None = None
    abandoned: bool = False
    xattrs: dict[str, str] = field(default_factory=dict)
    created: float = field(default_factory=time.time)


class _NumberDir(dict[str, Entry]):
    """Children keyed by E.164 number that also answer to other spellings of it."""

    def get(self, key: str, default: Any = None) -> Any:
        found = super().get(key)
        if found is None:
            number = normalize_number(key)
            if number is not None:
                found = super().get(number)
        return default if found is None else found


def _norm(rel: Rel) -> Rel:
    """Recipient components spelled as their E.164 number."""
    out = list(rel)
    i = 1 if rel[:1] and rel[0] in NUMBERED else 2 if rel[:1] and rel[0] in BOXES \
        and len(rel) > 1 and rel[1] in NUMBERED else None
    if i is not None and len(out) > i:
        out[i] = normalize_number(out[i]) or out[i]
    return tuple(out)


class Outbox:
    """Implements ``rcfs.outbox.protocol.OutboxFs`` over a ``Store`` and a ``Sender``."""

    def __init__(self, client: ApiClient, spool_dir: Path, settings: Settings | None = None,
                 on_gone: Callable[[str, Rel], None] | None = None,
                 on_change: Callable[[str | None], None] | None = None) -> None:
        self.store = Store(spool_dir)
        self.sender = Sender(self.store, client, settings or Settings(),
                             changed=self._changed)
        self.on_gone = on_gone
        self.on_change = on_change  # an extension's outbox changed (None: every one)
        self._writers: dict[int, _Writer] = {}
        self._next = 1
        self._trees: dict[str, Entry] = {}
        self._shown: dict[str, Rel] = {}
        self._opened = False

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        """Load the journal (before the mount answers: the tree is complete at once)."""
        self.store.open_sync()
        self.sender = Sender(self.store, self.sender.client, self.sender.settings,
                             changed=self._changed)
        for job in self.store.jobs.values():
            self._shown[job.id] = self._rel_of(job)
        self._opened = True

    async def run(self) -> None:
        """The sender loop (runs until cancelled)."""
        if not self._opened:
            await trio.to_thread.run_sync(self.open)
        await self.sender.run()

    def close(self) -> None:
        for w in list(self._writers.values()):
            self._drop_writer(w)
        self.store.close()

    def queue(self) -> list[dict[str, Any]]:
        """Jobs not finished yet, oldest first (``rcfs status``)."""
        out = []
        for job in sorted(self.store.jobs.values(), key=lambda j: (j.created, j.id)):
            if job.is_final or job.state == "draft":
                continue
            out.append({
                "job_id": job.id, "extension_id": job.ext, "kind": job.kind, "to": job.to,
                "name": job.name, "path": "/".join(("Outbox", *self._rel_of(job))),
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

    # -- change tracking ------------------------------------------------------------------

    def _rel_of(self, job: Job) -> Rel:
        if job.is_final:
            box = "Failed" if job.state == "failed" else "Sent"
            # shown_name again: a journal written before names were made safe
            return (box, *job.parent, shown_name(job.final_name or job.name))
        return (*job.parent, job.name)

    def _changed(self, job: Job | None = None, ext: str | None = None) -> None:
        """Something changed: rebuild the tree; tell the kernel about a path that went away."""
        if job is not None:
            ext = job.ext
            old = self._shown.get(job.id)
            new = self._rel_of(job) if self.store.jobs.get(job.id) is job else None
            if new is None:
                self._shown.pop(job.id, None)
            else:
                self._shown[job.id] = new
            if old is not None and old != new:
                self._gone(ext, old)
        if ext is None:
            self._trees.clear()
        else:
            self._trees.pop(ext, None)
        if self.on_change is not None:
            try:
                self.on_change(ext)
            except Exception:  # only a cache hint for the kernel
                log.debug("outbox: change notification for %s failed", ext, exc_info=True)

    def _gone(self, ext: str, rel: Rel) -> None:
        if self.on_gone is not None:
            try:
                self.on_gone(ext, rel)
            except Exception:  # only a cache hint for the kernel
                log.debug("outbox: invalidation of %s failed", rel, exc_info=True)

    # -- the tree -------------------------------------------------------------------------

    def root(self, ext_id: str) -> Entry:
        tree = self._trees.get(ext_id)
        if tree is None:
            tree = self._trees[ext_id] = self._build(ext_id)
        return tree

    def _build(self, ext: str) -> Entry:
        root = Entry.directory("Outbox", 0.0)
        root.add(Entry(README, 0.0, data=README_TEXT.encode()))
        dirs: dict[Rel, Entry] = {}

        def folder(rel: Rel) -> Entry:
            found = dirs.get(rel)
            if found is not None:
                return found
            parent = folder(rel[:-1]) if len(rel) > 1 else root
            entry = Entry.directory(rel[-1], 0.0, writable=True)
            if len(rel) == 1 and rel[0] in NUMBERED or len(rel) == 2 and rel[0] in BOXES \
                    and rel[1] in NUMBERED:
                entry.children = _NumberDir()
            entry.xattrs = dict(self.store.folders.get((ext, rel), {}))
            parent.add(entry)
            dirs[rel] = entry
            return entry

        for name in (*CHANNELS, *BOXES):
            folder((name,))
        for (fext, rel) in self.store.folders:
            if fext == ext:
                folder(rel)
        for job in self.store.jobs.values():
            if job.ext != ext:
                continue
            rel = self._rel_of(job)
            parent = folder(rel[:-1])
            if job.show_file:
                parent.add(self._job_entry(job, rel[-1]))
            if job.is_final and job.show_status:
                parent.add(Entry(rel[-1] + STATUS_SUFFIX, job.final_at or job.updated,
                                 data=status_text(job).encode()))
        for w in self._writers.values():
            if w.ext == ext and not w.abandoned and not w.committed:
                parent = folder(w.rel[:-1])
                if w.rel[-1] not in (parent.children or {}):
                    parent.add(Entry(w.rel[-1], w.created, local_path=str(w.tmp),
                                     local_size=w.size, writable=True,
                                     xattrs={"user.rc.status": "writing", **w.xattrs}))
        return root

    def _job_entry(self, job: Job, name: str) -> Entry:
        x = dict(job.xattrs)
        x.update({f"user.rc.{k}": v for k, v in job.options.items()
                  if f"user.rc.{k}" in OPTION_XATTRS and v})
        x["user.rc.status"] = job.state
        x["user.rc.job_id"] = job.id
        x[ORIGINAL_NAME_XATTR] = escaped(job.name)
        x["user.rc.kind"] = job.kind
        if job.to:
            x["user.rc.to"] = job.to
        if job.attempts:
            x["user.rc.attempts"] = str(job.attempts)
        if job.message_id:
            x["user.rc.message_id"] = job.message_id
        if job.remote_status:
            x["user.rc.remote_status"] = job.remote_status
        if job.error:
            x["user.rc.error"] = job.error
        writable = not job.is_final
        if not job.folder:
            doc = job.docs[0]
            return Entry(name, job.updated, local_path=str(self.store.file_path(doc.file_id)),
                         local_size=doc.size, writable=writable, xattrs=x)
        entry = Entry.directory(name, job.updated, writable=True)
        entry.xattrs = x
        shown: set[str] = set()
        for doc in job.docs:
            doc_name = doc.name
            if job.is_final:  # the documents of a finished job folder: safe names too
                doc_name = shown_name(doc.name, shown)
                shown.add(doc_name)
            entry.add(Entry(doc_name, doc.mtime or job.updated,
                            local_path=str(self.store.file_path(doc.file_id)),
                            local_size=doc.size, writable=writable,
                            xattrs={"user.rc.status": job.state, "user.rc.job_id": job.id}))
        return entry

    # -- locating things ------------------------------------------------------------------

    def _job_at(self, ext: str, rel: Rel) -> Job | None:
        """The job shown at ``rel`` (a file, or a job folder)."""
        for job in self.store.jobs.values():
            if job.ext == ext and job.show_file and self._rel_of(job) == rel:
                return job
        return None

    def _status_at(self, ext: str, rel: Rel) -> Job | None:
        if not rel[-1].endswith(STATUS_SUFFIX):
            return None
        target = (*rel[:-1], rel[-1][:-len(STATUS_SUFFIX)])
        for job in self.store.jobs.values():
            if job.ext == ext and job.is_final and job.show_status \
                    and self._rel_of(job) == target:
                return job
        return None

    def _writer_at(self, ext: str, rel: Rel) -> _Writer | None:
        for w in self._writers.values():
            if w.ext == ext and w.rel == rel and not w.abandoned and not w.committed:
                return w
        return None

    def _recipient_exists(self, ext: str, parent: Rel) -> bool:
        if (ext, parent) in self.store.folders:
            return True
        return any(j.ext == ext and not j.is_final and j.parent == parent
                   for j in self.store.jobs.values())

    def _doc_slot(self, ext: str, rel: Rel) -> tuple[Job, Doc | None] | None:
        """(job folder, doc or None) for a path inside a job folder."""
        if len(rel) < 2:
            return None
        job = self._job_at(ext, rel[:-1])
        if job is None or not job.folder:
            return None
        return job, next((d for d in job.docs if d.name == rel[-1]), None)

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
            if not self._recipient_exists(ext, rel[:2]):
                raise OutboxError(Refusal.NOT_FOUND, f"no recipient folder {rel[0]}/{rel[1]}")
        elif len(rel) == 4:
            slot = self._doc_slot(ext, rel)
            if slot is None:
                raise OutboxError(Refusal.NOT_FOUND, f"{'/'.join(rel[:-1])} is not a job folder")
            if slot[0].state != "draft":
                raise OutboxError(Refusal.BUSY, f"{'/'.join(rel[:-1])} is already queued")
        else:
            raise OutboxError(Refusal.NOT_HERE, "job folders do not nest")
        if self._writer_at(ext, rel) is not None:
            raise OutboxError(Refusal.BUSY, f"{'/'.join(rel)} is being written by another handle")
        job = self._job_at(ext, rel)
        if job is not None and job.state != "draft":
            raise OutboxError(Refusal.BUSY, f"{'/'.join(rel)} is {job.state}: wait until it is in "
                              "Sent/ or Failed/, or use another name")
        if job is not None and job.folder:
            raise OutboxError(Refusal.IS_FOLDER, f"{'/'.join(rel)} is a job folder")

    # -- OutboxFs: directories ------------------------------------------------------------

    async def mkdir(self, ext_id: str, rel: Rel) -> None:
        rel = _norm(rel)
        if len(rel) == 2 and rel[0] in NUMBERED:
            number = normalize_number(rel[1])
            if number is None:
                raise OutboxError(Refusal.INVALID,
                                  f"{rel[0]}/{rel[1]}: a recipient folder is named "
                                  "by the E.164 number, e.g. +12125557464")
            if self._recipient_exists(ext_id, (rel[0], number)):
                raise OutboxError(Refusal.EXISTS, f"{rel[0]}/{number} exists")
            await self.store.set_folder(ext_id, (rel[0], number), {})
            self._changed(ext=ext_id)
            return
        if len(rel) == 3 and rel[0] in NUMBERED:
            if not self._recipient_exists(ext_id, rel[:2]):
                raise OutboxError(Refusal.NOT_FOUND, f"no recipient folder {rel[0]}/{rel[1]}")
            if not rel[2].startswith("."):
                raise OutboxError(Refusal.INVALID,
                                  f"{rel[2]}: a job folder starts as a draft with a "
                                  f"dot (mkdir .{rel[2]}), then is renamed to {rel[2]} to send it")
            if self._job_at(ext_id, rel) is not None or self._writer_at(ext_id, rel):
                raise OutboxError(Refusal.EXISTS, f"{'/'.join(rel)} exists")
            job = Job(new_id(), ext_id, rel[0], rel[1], rel[2], folder=True)
            job.note("job folder created (draft)")
            await self.store.save(job)
            self._changed(job)
            return
        raise OutboxError(Refusal.NOT_HERE,
                          f"{'/'.join(rel)}: folders are recipient numbers (Fax/, "
                          "Text/) and draft job folders inside them")

    async def rmdir(self, ext_id: str, rel: Rel) -> None:
        rel = _norm(rel)
        job = self._job_at(ext_id, rel)
        if job is not None and job.folder:
            if job.docs:
                raise OutboxError(Refusal.NOT_EMPTY, f"{'/'.join(rel)} is not empty")
            if job.state == "draft":
                await self.store.delete(job)
                self._changed(job)
                return
            if job.is_final:
                await self._hide(job, status=False)
                return
            raise OutboxError(Refusal.BUSY, f"{'/'.join(rel)} is {job.state}")
        if len(rel) == 2 and rel[0] in NUMBERED:
            busy = any(j.ext == ext_id and j.parent == rel and not j.is_final
                       for j in self.store.jobs.values())
            if busy or any(w.ext == ext_id and w.rel[:2] == rel for w in self._writers.values()
                           if not w.abandoned and not w.committed):
                raise OutboxError(Refusal.NOT_EMPTY, f"{'/'.join(rel)} holds files not sent yet")
            if (ext_id, rel) not in self.store.folders:
                raise OutboxError(Refusal.NOT_FOUND, f"no folder {'/'.join(rel)}")
            await self.store.drop_folder(ext_id, rel)
            self._changed(ext=ext_id)
            return
        if rel and rel[0] in BOXES and len(rel) > 1:
            shown = any(j.ext == ext_id and self._rel_of(j)[:len(rel)] == rel
                        and (j.show_file or j.show_status) for j in self.store.jobs.values())
            if shown:
                raise OutboxError(Refusal.NOT_EMPTY, f"{'/'.join(rel)} is not empty")
            if (ext_id, rel) in self.store.folders:
                await self.store.drop_folder(ext_id, rel)
            self._changed(ext=ext_id)
            return
        raise OutboxError(Refusal.NOT_HERE, f"{'/'.join(rel)} cannot be removed")

    # -- OutboxFs: writing ----------------------------------------------------------------

    def _new_writer(self, ext: str, rel: Rel, source: Path | None) -> int:
        tmp = self.store.new_tmp()
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        size = 0
        if source is not None:
            with open(source, "rb") as src:
                while chunk := src.read(1 << 20):
                    os.write(fd, chunk)
                    size += len(chunk)
        w = _Writer(self._next, ext, rel, tmp, fd, size=size)
        self._next += 1
        self._writers[w.id] = w
        self._changed(ext=ext)
        return w.id

    async def create(self, ext_id: str, rel: Rel) -> int:
        rel = _norm(rel)
        self._writable_spot(ext_id, rel)
        return self._new_writer(ext_id, rel, None)

    async def open_write(self, ext_id: str, rel: Rel, truncate: bool) -> int:
        rel = _norm(rel)
        self._writable_spot(ext_id, rel)
        source: Path | None = None
        if not truncate:
            job = self._job_at(ext_id, rel)
            slot = self._doc_slot(ext_id, rel) if len(rel) == 4 else None
            doc = job.docs[0] if job is not None and job.docs else slot[1] if slot else None
            if doc is not None:
                source = self.store.file_path(doc.file_id)
        return self._new_writer(ext_id, rel, source)

    def _writer(self, handle: int) -> _Writer:
        w = self._writers.get(handle)
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
            self._drop_writer(w)
            raise w.rejected
        written = os.pwrite(w.fd, data, offset)
        w.size = max(w.size, offset + written)
        w.dirty = True
        return written

    async def truncate(self, handle: int | None, ext_id: str, rel: Rel, size: int) -> None:
        if handle is not None and handle in self._writers:
            w = self._writers[handle]
            if w.committed:
                raise OutboxError(Refusal.BUSY, f"{'/'.join(w.rel)} was already accepted")
            os.ftruncate(w.fd, size)
            w.size = size
            w.dirty = True
            return
        rel = _norm(rel)
        w2 = self._writer_at(ext_id, rel)
        if w2 is not None:
            os.ftruncate(w2.fd, size)
            w2.size = size
            w2.dirty = True
            return
        job = self._job_at(ext_id, rel)
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
            self._drop_writer(w)
            raise

    async def release(self, handle: int) -> None:
        w = self._writers.get(handle)
        if w is None:
            return
        if not w.committed and w.rejected is None and not w.abandoned:
            try:
                await self.flush(handle)
            except Exception as exc:
                log.warning("outbox: %s not accepted at release: %s", "/".join(w.rel), exc)
        self._drop_writer(w)
        del self._writers[handle]

    def _drop_writer(self, w: _Writer) -> None:
        if w.fd >= 0:
            os.close(w.fd)
            w.fd = -1
        if w.tmp.exists():
            w.tmp.unlink(missing_ok=True)
        if not w.committed:
            self._gone(w.ext, w.rel)
        self._changed(ext=w.ext)

    async def _commit(self, w: _Writer) -> None:
        ext, rel = w.ext, w.rel
        channel, name = rel[0], rel[-1]
        data = await trio.to_thread.run_sync(_read_all, w.tmp)
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
            self.store.file_path(file_id).unlink(missing_ok=True)
            raise
        doc = Doc(name, file_id, checked.size, sha, checked.ctype, checked.pages,
                  checked.text, mtime=time.time())
        old_files: list[Doc] = []
        if isinstance(placed, Job) and placed.folder:
            job = placed
            old_files = [d for d in job.docs if d.name == name]
            job.docs = [d for d in job.docs if d.name != name] + [doc]
            job.docs.sort(key=lambda d: d.name)
            job.note(f"{name} added ({checked.size} bytes, {checked.ctype})")
        else:
            existing = placed
            if existing is not None:
                old_files = list(existing.docs)
                await self.store.delete(existing)
                self._changed(existing)
            parent = rel[:-1]
            job = Job(new_id(), ext, channel, parent[1] if len(parent) > 1 else None, name,
                      docs=[doc], xattrs=dict(w.xattrs))
            if name.startswith("."):
                job.note(f"draft spooled ({checked.size} bytes, {checked.ctype})")
            else:
                self._queue(job)
        w.committed = True
        w.dirty = False
        await self.store.save(job)
        for d in old_files:
            if not any(d.file_id == x.file_id for j in self.store.jobs.values() for x in j.docs):
                self.store.file_path(d.file_id).unlink(missing_ok=True)
        self._changed(job)
        if job.state == "queued":
            self.sender.wake()

    def _placement(self, ext: str, rel: Rel, checked: Checked) -> Job | None:
        """Where a completed file goes: the job folder it is in, or the draft it replaces
        (None: a new job). Validates the job as a whole when the file is a job by itself."""
        if len(rel) == 4:
            slot = self._doc_slot(ext, rel)
            if slot is None or slot[0].state != "draft":
                raise OutboxError(Refusal.NOT_FOUND, f"{'/'.join(rel[:-1])} is no longer a draft "
                                  "job folder")
            return slot[0]
        existing = self._job_at(ext, rel)
        if existing is not None and existing.state != "draft":
            raise OutboxError(Refusal.BUSY, f"{'/'.join(rel)} is {existing.state}")
        if not rel[-1].startswith("."):
            part = Part(rel[-1], checked.ctype, checked.size, checked.pages, checked.text)
            self._check_job(rel[0], [part], self._options(ext, rel[:-1], {}))
        return existing

    # -- options and queueing -------------------------------------------------------------

    def _options(self, ext: str, parent: Rel, own: dict[str, str]) -> dict[str, str]:
        merged: dict[str, str] = {}
        for source in (self.store.folders.get((ext, parent[:1]), {}),
                       self.store.folders.get((ext, parent), {}) if len(parent) > 1 else {},
                       own):
            for key, value in source.items():
                if key in OPTION_XATTRS:
                    if value:
                        merged[OPTION_XATTRS[key]] = value
                    else:
                        merged.pop(OPTION_XATTRS[key], None)
        return merged

    @staticmethod
    def _check_job(channel: str, parts: list[Part], options: dict[str, str]) -> None:
        if channel == "Fax":
            check_fax_job(parts, cover=options.get("cover_index", "0") not in ("", "0"))
        elif channel == "Text":
            text_job(parts)
        elif not parts:
            raise OutboxError(Refusal.EMPTY, "no greeting audio")

    def _queue(self, job: Job) -> None:
        """Freeze the options and make the job sendable (caller saves it)."""
        job.options = self._options(job.ext, job.parent, job.xattrs)
        self._check_job(job.channel, [Part(d.name, d.ctype, d.size, d.pages, d.text)
                                      for d in job.docs], job.options)
        job.state = "queued"
        job.next_try = 0.0
        job.error = None
        what = {"fax": "fax", "sms": "SMS", "mms": "MMS", "greeting": "greeting"}[job.kind]
        job.note(f"queued as {what}" + (f" to {job.to}" if job.to else "") + ": "
                 + ", ".join(d.name for d in job.docs))

    # -- OutboxFs: names ------------------------------------------------------------------

    async def unlink(self, ext_id: str, rel: Rel) -> None:
        rel = _norm(rel)
        w = self._writer_at(ext_id, rel)
        if w is not None:
            w.abandoned = True
            self._changed(ext=ext_id)
            return
        status = self._status_at(ext_id, rel)
        if status is not None:
            await self._hide(status, status=True)
            return
        job = self._job_at(ext_id, rel)
        if job is not None:
            if job.folder:
                raise OutboxError(Refusal.IS_FOLDER, f"{'/'.join(rel)} is a job folder")
            if job.state in ("draft", "queued"):
                job.note("cancelled (deleted before sending)")
                await self.store.delete(job)
                self._changed(job)
                return
            if job.is_final:
                await self._hide(job, status=False)
                return
            raise OutboxError(Refusal.BUSY, f"{'/'.join(rel)} is {job.state}: it can no longer be "
                              "cancelled")
        slot = self._doc_slot(ext_id, rel)
        if slot is not None and slot[1] is not None:
            job, doc = slot[0], slot[1]
            if job.state != "draft" and not job.is_final:
                raise OutboxError(Refusal.BUSY, f"{'/'.join(rel[:-1])} is {job.state}")
            job.docs = [d for d in job.docs if d is not doc]
            await self.store.save(job)
            if not any(doc.file_id == x.file_id for j in self.store.jobs.values()
                       for x in j.docs):
                self.store.file_path(doc.file_id).unlink(missing_ok=True)
            self._changed(job)
            return
        if rel == (README,):
            raise OutboxError(Refusal.READ_ONLY, "README.txt is part of the outbox")
        raise OutboxError(Refusal.NOT_FOUND, f"no {'/'.join(rel)}")

    async def _hide(self, job: Job, status: bool) -> None:
        # The folders above it stay until rmdir'd (``rm -r`` removes the files first).
        rel = self._rel_of(job)
        for depth in range(2, len(rel)):
            if (job.ext, rel[:depth]) not in self.store.folders:
                await self.store.set_folder(job.ext, rel[:depth], {})
        if status:
            job.show_status = False
        else:
            job.show_file = False
        if not job.show_file and not job.show_status:
            await self.store.delete(job)
        else:
            await self.store.save(job)
        self._changed(job)

    async def rename(self, ext_id: str, old: Rel, new: Rel) -> None:
        old, new = _norm(old), _norm(new)
        if old == new:
            return
        if any(w.ext == ext_id and w.rel[:len(old)] == old and not w.committed
               and not w.abandoned for w in self._writers.values()):
            raise OutboxError(Refusal.BUSY, f"{'/'.join(old)} is still being written")
        job = self._job_at(ext_id, old)
        slot = None if job is not None else self._doc_slot(ext_id, old)
        if job is None and (slot is None or slot[1] is None):
            raise OutboxError(Refusal.NOT_FOUND, f"no {'/'.join(old)}")
        self._writable_target(ext_id, new, moving=job)
        target = self._job_at(ext_id, new)
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
        self._changed(folder_job)

    def _writable_target(self, ext: str, new: Rel, moving: Job | None) -> None:
        if not new or new[0] not in CHANNELS:
            raise OutboxError(Refusal.NOT_HERE, f"{'/'.join(new)}: only Fax/, Text/ and Greetings/ "
                              "take files")
        if new[0] in NUMBERED and (len(new) < 3 or not self._recipient_exists(ext, new[:2])):
            raise OutboxError(Refusal.NOT_FOUND, f"no recipient folder {'/'.join(new[:2])}")
        if new[0] == "Greetings" and len(new) != 2:
            raise OutboxError(Refusal.NOT_HERE, "greetings are files directly in Greetings/")
        if self._writer_at(ext, new) is not None:
            raise OutboxError(Refusal.BUSY, f"{'/'.join(new)} is being written")
        target = self._job_at(ext, new)
        if target is not None and target is not moving and target.state != "draft":
            raise OutboxError(Refusal.EXISTS, f"{'/'.join(new)} exists ({target.state})")
        if target is not None and target.folder:
            raise OutboxError(Refusal.IS_FOLDER, f"{'/'.join(new)} is a job folder")

    async def _recheck(self, docs: list[Doc], channel: str) -> list[Doc]:
        """Docs re-validated for another channel (a draft moved from Fax/ to Text/)."""
        out = []
        for d in docs:
            data = await trio.to_thread.run_sync(_read_all, self.store.file_path(d.file_id))
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
            self._queue(trial)
        elif job.state == "queued":
            trial.note("held (renamed to a draft)")
        return trial

    async def _apply_move(self, trial: Job, target: Job | None, old_rel: Rel | None) -> None:
        if target is not None and target.id != trial.id:
            await self.store.delete(target)
            self._changed(target)
        await self.store.save(trial)
        if old_rel is not None:
            self._shown[trial.id] = old_rel
        self._changed(trial)
        if trial.state == "queued":
            self.sender.wake()

    async def _move_job(self, job: Job, new: Rel, target: Job | None) -> None:
        trial = await self._prepare_move(job, new)
        await self._apply_move(trial, target, self._rel_of(job))

    async def _into_folder(self, doc: Doc | None, new: Rel, source: Job) -> None:
        assert doc is not None
        slot = self._doc_slot(source.ext, new)
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
        folder.docs = [d for d in folder.docs if d.name != moved.name] + [moved]
        folder.docs.sort(key=lambda d: d.name)
        await self.store.save(folder)
        if source is not folder and source.folder:
            source.docs = [d for d in source.docs if d is not doc]
            await self.store.save(source)
        elif source is not folder:
            await self.store.delete(source)
        self._changed(source)
        self._changed(folder)

    async def _resend(self, failed: Job, new: Rel, target: Job | None) -> None:
        fresh = Job(new_id(), failed.ext, failed.channel, failed.to, failed.name,
                    failed.folder, list(failed.docs), dict(failed.xattrs))
        fresh.note(f"copied from failed job {failed.id} to send again")
        trial = await self._prepare_move(fresh, new)
        await self._apply_move(trial, target, None)
        failed.show_file = False
        await self._hide(failed, status=True)

    # -- OutboxFs: xattrs -----------------------------------------------------------------

    async def setxattr(self, ext_id: str, rel: Rel, name: str, value: bytes) -> None:
        rel = _norm(rel)
        if not name.startswith("user."):
            raise OutboxError(Refusal.UNSUPPORTED, f"{name}: only user.* attributes")
        if name in STATUS_XATTRS:
            raise OutboxError(Refusal.NOT_PERMITTED, f"{name} is read-only (the job's status)")
        if name.startswith("user.rc."):
            text = check_option(name, value)
        else:
            text = value.decode("utf-8", "replace")
        w = self._writer_at(ext_id, rel)
        if w is not None:
            w.xattrs[name] = text
            self._changed(ext=ext_id)
            return
        job = self._job_at(ext_id, rel)
        if job is not None:
            if job.state not in ("draft", "queued"):
                raise OutboxError(Refusal.BUSY, f"{'/'.join(rel)} is {job.state}: its options are "
                                  "fixed")
            job.xattrs[name] = text
            if job.state == "queued":
                job.options = self._options(job.ext, job.parent, job.xattrs)
                job.note(f"option {name} set to {text!r}")
            await self.store.save(job)
            self._changed(job)
            return
        if len(rel) == 1 and rel[0] in CHANNELS or len(rel) == 2 and rel[0] in NUMBERED \
                and self._recipient_exists(ext_id, rel):
            xattrs = dict(self.store.folders.get((ext_id, rel), {}))
            xattrs[name] = text
            await self.store.set_folder(ext_id, rel, xattrs)
            self._changed(ext=ext_id)
            return
        raise OutboxError(Refusal.NOT_PERMITTED,
                          f"{'/'.join(rel)}: options go on Fax/, Text/, Greetings/, "
                          "a recipient folder or a job not sent yet")


def _read_all(path: Path) -> bytes:
    return path.read_bytes()


def _commit_file(store: Store, w: _Writer) -> tuple[str, str]:
    os.fsync(w.fd)
    os.close(w.fd)
    w.fd = -1
    file_id, sha = store.commit_file_sync(w.tmp)
    return file_id, sha


def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def status_text(job: Job) -> str:
    """The ``.status.txt`` of a finished job, in plain words."""
    what = {"fax": "Fax", "sms": "Text message (SMS)", "mms": "Picture message (MMS)",
            "greeting": "Greeting"}[job.kind]
    head = f"{what} to {job.to}" if job.to else f"{what} {greeting_label(job)}"
    if job.state == "failed":
        verdict = "NOT SENT" if not job.message_id else "FAILED"
        result = f"{verdict}: {job.error or 'unknown error'}"
    elif job.state == "delivered":
        result = {"fax": "sent: the fax went through",
                  "greeting": f"uploaded (greeting id {job.message_id})"}.get(
            job.kind, "delivered to the recipient's phone")
    else:
        result = f"sent (RingCentral status {job.remote_status or 'unknown'})"
    lines = [head, "", f"Result:      {result}", f"File name:   {job.name}"]
    if job.error_code or job.http_status:
        code = " ".join(x for x in (f"HTTP {job.http_status}" if job.http_status else "",
                                    job.error_code or "") if x)
        lines.append(f"Error code:  {code}")
    lines.append("Documents:   " + ", ".join(f"{d.name} ({d.size} bytes, {d.ctype})"
                                             for d in job.docs))
    if job.options:
        lines.append("Options:     " + ", ".join(f"{k}={v}" for k, v in
                                                 sorted(job.options.items())))
    lines += [f"Job id:      {job.id}",
              f"Message id:  {job.message_id or '-'}",
              f"RingCentral: {job.remote_status or '-'}",
              f"Attempts:    {job.attempts}",
              f"Queued:      {_when(job.created)}",
              f"Finished:    {_when(job.final_at)}"]
    if job.pages:
        lines.append(f"Pages:       {job.pages}")
    lines += ["", "History:"]
    lines += [f"  {_when(t)}  {text}" for t, text in job.history]
    # Names and server messages are the user's or RingCentral's text: escaped, so `cat` of
    # a status file can never move the cursor or recolour the terminal.
    return "\n".join(escaped(line) for line in lines) + "\n"


def greeting_label(job: Job) -> str:
    try:
        return greeting_type(job.name)
    except OutboxError:
        return job.name


README_TEXT = """\
rcfs Outbox: send faxes, texts and greetings by writing files.

  mkdir Fax/+12125557464                   a recipient folder (E.164 number)
  cp contract.pdf Fax/+12125557464/        -> one fax with that document
  mkdir Text/+12125557464
  echo "On my way" > Text/+12125557464/eta.txt    -> an SMS
  cp photo.jpg Text/+12125557464/          -> an MMS
  cp hello.wav Greetings/Voicemail.wav     -> your custom voicemail greeting

Several documents in one fax (or text + pictures in one MMS): fill a draft job
folder (its name starts with a dot), then rename it without the dot:
  mkdir Fax/+12125557464/.offer
  cp cover.pdf terms.pdf Fax/+12125557464/.offer/
  mv Fax/+12125557464/.offer Fax/+12125557464/offer      -> one fax, documents by name
Any file whose name starts with a dot is a draft and is never sent until renamed.

A file is sent once it is closed. If it cannot be sent (wrong type, too big, empty,
text too long...) close fails and cp prints why; nothing is sent.
While it is waiting or being sent it stays here:  getfattr -d <file>  shows
user.rc.status (queued, sending, sent) and user.rc.error. When finished it moves to
Sent/ or Failed/ with <name>.status.txt beside it saying what happened.
Delete a queued file to cancel it. Move a file out of Failed/ back into a recipient
folder to send it again.

Options (setfattr -n NAME -v VALUE on Fax/, Text/, a recipient folder or a draft):
  user.rc.fax_resolution   High | Low
  user.rc.cover_index      0 (no cover page), 1-13, 15-28
  user.rc.cover_page_text  text printed on the cover page
  user.rc.from             the number texts are sent from
  user.rc.answering_rule   greeting: the rule it applies to (default business-hours-rule;
                           none = only store it)
`rcfs status` lists what is waiting.
"""
