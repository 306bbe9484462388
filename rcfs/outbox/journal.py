"""The outbox's durable state: spooled files plus an append-only JSON-lines journal.

Layout of the spool directory (one per account, under the state dir)::

    files/<file id>     accepted bytes, immutable (written to tmp/, fsync'd, renamed, dir fsync'd)
    tmp/                files being written (emptied at every start)
    journal.jsonl       one JSON object per line, appended and fsync'd before anything
                        that depends on it happens

Journal lines (the last line for an id wins)::

    {"job": {...every field of a Job...}}
    {"del": "<job id>"}
    {"folder": {"ext": "...", "rel": ["Fax", "+12125557464"], "xattrs": {...}}}
    {"unfolder": {"ext": "...", "rel": [...]}}

A line torn by a crash (no newline, bad JSON) is ignored: it was never acknowledged. At
every open the journal is compacted (written to a temp file, fsync'd, renamed over the old
one, directory fsync'd) so it stays proportional to what the outbox holds.

Job states: ``draft`` (a dot-name, not to be sent yet) -> ``queued`` -> ``sending`` (the
POST may be on the wire: after a crash the message store is checked before any resend) ->
``sent`` (RingCentral accepted it; polling until final) -> ``delivered`` | ``failed``.
A ``sent`` job whose delivery is never reported ends as ``sent`` with ``final`` set.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from rcfs.durable import fsync_dir

log = logging.getLogger(__name__)

ACTIVE = frozenset({"queued", "sending", "sent"})
FINAL = frozenset({"delivered", "failed"})
Rel = tuple[str, ...]


@dataclass
class Doc:
    """One spooled file of a job."""

    name: str
    file_id: str
    size: int
    sha256: str
    ctype: str
    pages: int = 0
    text: str | None = None  # the SMS body when this file is a text
    mtime: float = 0.0


@dataclass
class Job:
    id: str
    ext: str
    channel: str  # Fax | Text | Greetings
    to: str | None  # E.164 recipient (None for greetings)
    name: str  # file or job-folder name as the user wrote it
    folder: bool = False  # a multi-document job folder
    docs: list[Doc] = field(default_factory=list)
    xattrs: dict[str, str] = field(default_factory=dict)  # user-set, on the job itself
    options: dict[str, str] = field(default_factory=dict)  # effective, frozen when queued
    state: str = "draft"
    final: bool = False
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    attempts: int = 0  # POSTs made
    retries: int = 0  # transient failures in a row (backoff exponent)
    attempt_started: float | None = None
    attempt_ended: float | None = None
    next_try: float = 0.0
    message_id: str | None = None
    remote_status: str | None = None
    error: str | None = None  # the current/last error in plain words
    error_code: str | None = None
    http_status: int | None = None
    final_at: float | None = None
    final_name: str | None = None  # the name shown under Sent/ or Failed/
    show_file: bool = True
    show_status: bool = True
    poll_interval: float = 0.0
    next_poll: float = 0.0
    sent_at: float | None = None
    pages: int | None = None
    history: list[tuple[float, str]] = field(default_factory=list)

    @property
    def kind(self) -> str:
        if self.channel == "Fax":
            return "fax"
        if self.channel == "Greetings":
            return "greeting"
        return "mms" if any(d.text is None for d in self.docs) else "sms"

    @property
    def parent(self) -> Rel:
        return (self.channel,) if self.to is None else (self.channel, self.to)

    @property
    def is_final(self) -> bool:
        return self.state in FINAL or self.final

    def note(self, text: str) -> None:
        now = time.time()
        self.history.append((now, text))
        if len(self.history) > 60:  # a job retried for days keeps its start and recent past
            self.history = self.history[:10] + self.history[-40:]
        self.updated = now

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        docs = [Doc(**d) for d in data.pop("docs", [])]
        history = [(float(t), str(s)) for t, s in data.pop("history", [])]
        known = {f.name for f in dataclasses.fields(cls)}
        job = cls(**{k: v for k, v in data.items() if k in known})
        job.docs = docs
        job.history = history
        return job


def new_id() -> str:
    return uuid.uuid4().hex


class Store:
    """Jobs and folders in memory, mirrored durably in the journal and the spool files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = root / "files"
        self.tmp = root / "tmp"
        self.path = root / "journal.jsonl"
        self.jobs: dict[str, Job] = {}
        self.folders: dict[tuple[str, Rel], dict[str, str]] = {}
        self._fh: Any = None
        self._lock = trio.Lock()
        self.appends = 0
        # Appends begun and not yet durable: until they are, the jobs in memory may already
        # have let go of a file the journal on disk still refers to.
        self._appending = 0
        self._doomed: set[str] = set()  # spool files to delete once no append is pending
        # Told of every job saved or deleted, before the journal write (the outbox's index
        # of where jobs are shown: a job moves only by being saved).
        self.on_change: Callable[[Job], None] = lambda job: None

    # -- opening ------------------------------------------------------------------------------

    def open_sync(self) -> None:
        """Load, compact, clean up (synchronous: runs before the mount answers)."""
        for d in (self.root, self.files, self.tmp):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        for leftover in self.tmp.iterdir():
            leftover.unlink(missing_ok=True)
        if self.path.exists():
            self._replay(self.path.read_bytes())
        self._compact()
        # Left by a crash after a journal write and before its unlink, or spooled and
        # never journaled.
        self.drop_unreferenced()
        for job in self.jobs.values():
            missing = [d.name for d in job.docs if not (self.files / d.file_id).exists()]
            if missing and not job.is_final:
                job.state = "failed"
                job.error = "spooled file lost: " + ", ".join(missing)
                job.note("failed: " + job.error)
        self._fh = open(self.path, "ab")  # noqa: SIM115 - kept open for appends

    def _replay(self, raw: bytes) -> None:
        lines = raw.split(b"\n")
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                self._apply(rec)
            except (ValueError, TypeError, KeyError) as exc:
                if n >= len(lines) - 1:
                    log.warning("outbox journal: ignoring a torn last line (%s)", exc)
                else:
                    log.error("outbox journal: skipping bad line %d: %s", n, exc)

    def _apply(self, rec: dict[str, Any]) -> None:
        if "job" in rec:
            job = Job.from_json(dict(rec["job"]))
            self.jobs[job.id] = job
        elif "del" in rec:
            self.jobs.pop(str(rec["del"]), None)
        elif "folder" in rec:
            f = rec["folder"]
            self.folders[(str(f["ext"]), tuple(f["rel"]))] = dict(f.get("xattrs") or {})
        elif "unfolder" in rec:
            f = rec["unfolder"]
            self.folders.pop((str(f["ext"]), tuple(f["rel"])), None)
        else:
            raise KeyError("unknown journal record")

    def _records(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {"folder": {"ext": ext, "rel": list(rel), "xattrs": x}}
            for (ext, rel), x in self.folders.items()]
        out += [{"job": j.to_json()} for j in self.jobs.values()]
        return out

    def _compact(self) -> None:
        tmp = self.root / "journal.jsonl.new"
        with open(tmp, "wb") as fh:
            for rec in self._records():
                fh.write(json.dumps(rec, separators=(",", ":")).encode() + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.root)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    # -- appending ----------------------------------------------------------------------------

    def _append_sync(self, lines: list[bytes]) -> None:
        assert self._fh is not None, "store not open"
        self._fh.write(b"".join(lines))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    async def _append(self, *records: dict[str, Any]) -> None:
        lines = [json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records]
        self._appending += 1
        try:
            async with self._lock:
                # Shielded: a record half-written by a cancelled thread call would be lost.
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(self._append_sync, lines)
            self.appends += 1
        finally:
            self._appending -= 1
            if not self._appending and self._doomed:
                self._delete_doomed()

    async def save(self, *jobs: Job) -> None:
        """Persist the jobs' current state (durable when this returns)."""
        for job in jobs:
            job.updated = time.time()
            self.jobs[job.id] = job
            self.on_change(job)
        await self._append(*({"job": j.to_json()} for j in jobs))

    async def delete(self, job: Job) -> None:
        self.jobs.pop(job.id, None)
        self.on_change(job)
        await self._append({"del": job.id})
        self.drop_unreferenced(d.file_id for d in job.docs)

    async def set_folder(self, ext: str, rel: Rel, xattrs: dict[str, str]) -> None:
        self.folders[(ext, rel)] = dict(xattrs)
        await self._append({"folder": {"ext": ext, "rel": list(rel), "xattrs": xattrs}})

    async def drop_folder(self, ext: str, rel: Rel) -> None:
        self.folders.pop((ext, rel), None)
        await self._append({"unfolder": {"ext": ext, "rel": list(rel)}})

    # -- spool files --------------------------------------------------------------------------

    def file_path(self, file_id: str) -> Path:
        return self.files / file_id

    def _referenced(self) -> set[str]:
        return {d.file_id for j in self.jobs.values() for d in j.docs}

    def drop_unreferenced(self, file_ids: Iterable[str] | None = None) -> None:
        """Delete those of the spool files ``file_ids`` (None: every one, at open) that no job
        refers to any more; the only place a spool file is removed. A file may be shared (a
        failed job copied to send again keeps its documents), so a job's going is not enough.
        Called once the journal no longer refers to them (or never did). Another task's
        change may be in memory and not yet on disk (its append still pending, and the
        journal still naming the file), so the files are deleted only once no append is
        pending: a crash before that leaves a file the next open sweeps away, never a job
        whose file is gone."""
        if file_ids is None:
            referenced = self._referenced()
            for f in self.files.iterdir():
                if f.name not in referenced:
                    log.info("outbox: removing unreferenced spool file %s", f.name)
                    f.unlink(missing_ok=True)
            return
        self._doomed.update(file_ids)
        if not self._appending:
            self._delete_doomed()

    def _delete_doomed(self) -> None:
        """The spool files asked to go that no job refers to (memory and disk agree now)."""
        referenced = self._referenced()
        for file_id in self._doomed - referenced:
            self.file_path(file_id).unlink(missing_ok=True)
        self._doomed.clear()

    def new_tmp(self) -> Path:
        return self.tmp / new_id()

    def commit_file_sync(self, tmp: Path) -> tuple[str, str]:
        """fsync ``tmp``, rename it into files/, fsync the directory: (file id, sha256)."""
        digest = hashlib.sha256()
        with open(tmp, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
            os.fsync(fh.fileno())
        file_id = new_id()
        os.rename(tmp, self.files / file_id)
        fsync_dir(self.files)
        return file_id, digest.hexdigest()
