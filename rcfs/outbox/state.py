"""What the outbox's view and operations share: where each job and open writer is.

Jobs are indexed by mailbox, by (mailbox, path shown) and by every folder above that path,
kept current by the store, which reports every save and delete (a job only moves by being
saved): a lookup is a dict access, and a tree is built from its own mailbox's jobs,
whatever the size of ``Sent/`` or of the other mailboxes. ``changed`` is called after
every change (by the operations and by the sender): it drops the cached tree of that
mailbox and tells the kernel about paths that went away.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rcfs.namespace.entries import Entry
from rcfs.outbox.journal import Doc, Job, Rel, Store
from rcfs.outbox.names import STATUS_SUFFIX, shown_name
from rcfs.outbox.validate import normalize_number

log = logging.getLogger(__name__)

CHANNELS = ("Fax", "Text", "Greetings")
NUMBERED = ("Fax", "Text")
BOXES = ("Sent", "Failed")
README = "README.txt"

Key = tuple[str, Rel]  # (extension id, path below its Outbox)


@dataclass
class Writer:
    """A file open for writing: its bytes go to a temp file until close accepts them."""

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

    @property
    def live(self) -> bool:
        """Still being written (shown as ``writing``, holding its name)."""
        return not self.abandoned and not self.committed


def norm(rel: Rel) -> Rel:
    """Recipient components spelled as their E.164 number."""
    out = list(rel)
    i = 1 if rel[:1] and rel[0] in NUMBERED else 2 if rel[:1] and rel[0] in BOXES \
        and len(rel) > 1 and rel[1] in NUMBERED else None
    if i is not None and len(out) > i:
        out[i] = normalize_number(out[i]) or out[i]
    return tuple(out)


def rel_of(job: Job) -> Rel:
    """Where a job is shown: its recipient folder, or Sent/ or Failed/ once final."""
    if job.is_final:
        box = "Failed" if job.state == "failed" else "Sent"
        # shown_name again: a journal written before names were made safe
        return (box, *job.parent, shown_name(job.final_name or job.name))
    return (*job.parent, job.name)


class JobIndex:
    """Jobs by mailbox, by the path they are shown at, their status files, the folders
    that show something, and the recipient folders that hold unfinished jobs; updated by
    ``Store.on_change``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # Several jobs at one key would be a bug, but then the first one still answers.
        self._files: dict[Key, dict[str, Job]] = {}
        self._statuses: dict[Key, dict[str, Job]] = {}
        self._pending: dict[Key, dict[str, Job]] = {}  # (ext, recipient) -> unfinished
        self._within: dict[Key, dict[str, Job]] = {}  # (ext, path) -> shown at or below it
        self._keys: dict[str, list[tuple[dict[Key, dict[str, Job]], Key]]] = {}
        # ext -> its jobs, in the store's order: a job keeps its place when saved again,
        # as it does in ``Store.jobs`` (so the tree is built in the same order as before).
        self._mailboxes: dict[str, dict[str, Job]] = {}
        store.on_change = self.note

    def rebuild(self) -> None:
        """After the store was loaded (its crash recovery changes jobs without saving)."""
        for job_id in list(self._keys):
            self._forget(job_id)
        self._mailboxes.clear()
        for job in self.store.jobs.values():
            self.note(job)

    def note(self, job: Job) -> None:
        """A job was saved or deleted: index it where it is shown now."""
        self._forget(job.id)
        if self.store.jobs.get(job.id) is not job:
            mailbox = self._mailboxes.get(job.ext, {})
            mailbox.pop(job.id, None)
            if not mailbox:
                self._mailboxes.pop(job.ext, None)
            return
        self._mailboxes.setdefault(job.ext, {})[job.id] = job
        rel = rel_of(job)
        keys = []
        if job.show_file:
            keys.append((self._files, (job.ext, rel)))
        if job.is_final and job.show_status:
            keys.append((self._statuses, (job.ext, rel)))
        if keys:
            keys += [(self._within, (job.ext, rel[:depth])) for depth in range(1, len(rel) + 1)]
        if not job.is_final:
            keys.append((self._pending, (job.ext, job.parent)))
        for table, key in keys:
            table.setdefault(key, {})[job.id] = job
        self._keys[job.id] = keys

    def _forget(self, job_id: str) -> None:
        for table, key in self._keys.pop(job_id, []):
            held = table.get(key, {})
            held.pop(job_id, None)
            if not held:
                table.pop(key, None)

    @staticmethod
    def _first(table: dict[Key, dict[str, Job]], key: Key) -> Job | None:
        held = table.get(key)
        return next(iter(held.values())) if held else None

    def file_at(self, ext: str, rel: Rel) -> Job | None:
        return self._first(self._files, (ext, rel))

    def status_at(self, ext: str, rel: Rel) -> Job | None:
        return self._first(self._statuses, (ext, rel))

    def has_pending(self, ext: str, parent: Rel) -> bool:
        return (ext, parent) in self._pending

    def shows_within(self, ext: str, rel: Rel) -> bool:
        """Whether a job's file or status file is shown at ``rel`` or anywhere below it."""
        return (ext, rel) in self._within

    def of_mailbox(self, ext: str) -> list[Job]:
        """The mailbox's jobs, shown or not, in the store's order."""
        return list(self._mailboxes.get(ext, {}).values())


class OutboxState:
    """The store, the open writers and the job index, and the change notifications."""

    def __init__(self, store: Store, on_gone: Callable[[str, Rel], None] | None = None,
                 on_change: Callable[[str | None], None] | None = None) -> None:
        self.store = store
        self.jobs = JobIndex(store)
        self.on_gone = on_gone
        self.on_change = on_change  # an extension's outbox changed (None: every one)
        self.writers: dict[int, Writer] = {}
        self._writing: dict[Key, Writer] = {}  # the live writer holding each path
        self._next = 1
        self.trees: dict[str, Entry] = {}
        self._shown: dict[str, Rel] = {}  # job id -> where the kernel may have seen it

    def loaded(self) -> None:
        self.jobs.rebuild()
        for job in self.store.jobs.values():
            self._shown[job.id] = rel_of(job)

    # -- change tracking ------------------------------------------------------------------

    def changed(self, job: Job | None = None, ext: str | None = None) -> None:
        """Something changed: rebuild the tree; tell the kernel about a path that went away."""
        if job is not None:
            ext = job.ext
            old = self._shown.get(job.id)
            new = rel_of(job) if self.store.jobs.get(job.id) is job else None
            if new is None:
                self._shown.pop(job.id, None)
            else:
                self._shown[job.id] = new
            if old is not None and old != new:
                self.gone(ext, old)
        if ext is None:
            self.trees.clear()
        else:
            self.trees.pop(ext, None)
        if self.on_change is not None:
            try:
                self.on_change(ext)
            except Exception:  # only a cache hint for the kernel
                log.debug("outbox: change notification for %s failed", ext, exc_info=True)

    def gone(self, ext: str, rel: Rel) -> None:
        if self.on_gone is not None:
            try:
                self.on_gone(ext, rel)
            except Exception:  # only a cache hint for the kernel
                log.debug("outbox: invalidation of %s failed", rel, exc_info=True)

    def shown_at(self, job_id: str, rel: Rel) -> None:
        """The kernel may know the job under ``rel`` (a move: tell it when that goes)."""
        self._shown[job_id] = rel

    # -- writers --------------------------------------------------------------------------

    def add_writer(self, ext: str, rel: Rel, tmp: Path, fd: int) -> Writer:
        w = Writer(self._next, ext, rel, tmp, fd)
        self._next += 1
        self.writers[w.id] = w
        self._writing[(ext, rel)] = w
        return w

    def writer_at(self, ext: str, rel: Rel) -> Writer | None:
        w = self._writing.get((ext, rel))
        return w if w is not None and w.live else None

    def live_writers(self, ext: str) -> list[Writer]:
        return [w for w in self.writers.values() if w.ext == ext and w.live]

    def remove_writer(self, w: Writer) -> None:
        """The handle is released (a writer refused at close holds its name until then)."""
        self.writers.pop(w.id, None)
        if self._writing.get((w.ext, w.rel)) is w:
            del self._writing[(w.ext, w.rel)]

    # -- locating things ------------------------------------------------------------------

    def job_at(self, ext: str, rel: Rel) -> Job | None:
        """The job shown at ``rel`` (a file, or a job folder)."""
        return self.jobs.file_at(ext, rel)

    def status_at(self, ext: str, rel: Rel) -> Job | None:
        """The finished job whose ``.status.txt`` is ``rel``."""
        if not rel[-1].endswith(STATUS_SUFFIX):
            return None
        return self.jobs.status_at(ext, (*rel[:-1], rel[-1][:-len(STATUS_SUFFIX)]))

    def recipient_exists(self, ext: str, parent: Rel) -> bool:
        return (ext, parent) in self.store.folders or self.jobs.has_pending(ext, parent)

    def doc_slot(self, ext: str, rel: Rel) -> tuple[Job, Doc | None] | None:
        """(job folder, doc or None) for a path inside a job folder."""
        if len(rel) < 2:
            return None
        job = self.job_at(ext, rel[:-1])
        if job is None or not job.folder:
            return None
        return job, next((d for d in job.docs if d.name == rel[-1]), None)

    async def hide(self, job: Job, status: bool) -> None:
        """Remove a finished job's file (or its status file) from view; the job goes when
        both are gone. The folders above it stay until rmdir'd (``rm -r`` removes the
        files first)."""
        rel = rel_of(job)
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
        self.changed(job)
