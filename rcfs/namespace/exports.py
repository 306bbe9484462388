"""``Exports/``: RingCentral's compliance exports (message-store reports) as folders of zips.

Shown only to credentials allowed to create reports (admins; a 403 hides it for the
session). RingCentral has no call that lists tasks, so the tasks rcfs created are kept in
``<state>/exports.json`` and survive remounts; unfinished ones are polled again.

* A task is a folder ``<from> to <to> <types> <state> [<id>]``: its name changes with its
  state (Queued, Accepted, InProgress, Completed, Failed, ...).
* A completed task's folder holds ``archive-NN.zip`` with the sizes the archive list gave:
  content like any other, read through the block cache with ranged GETs (Heavy).
* ``setfattr -n user.rc.export -v '{"from": ..., "to": ..., "types": [...]}' Exports`` (what
  ``rcfs export`` does) queues a task; its ``request_id`` lets the caller find it in
  ``.rcfs/status.json``.
* Archive URIs may expire: ``fresh_uri`` lists the archives again (the content source asks
  after a 404) and the new URI is kept.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path as FsPath
from typing import Any

import trio

from rcfs.api.errors import ApiError, RcError
from rcfs.api.models import ReportTask
from rcfs.api.scheduler import Priority
from rcfs.content.reports import EXPORT_TYPES, ReportRunner
from rcfs.content.source import ContentRef
from rcfs.namespace import naming
from rcfs.namespace.entries import Entry
from rcfs.namespace.plugins import Path, PluginError
from rcfs.refusal import Refusal

log = logging.getLogger(__name__)

__all__ = ["EXPORTS", "ExportManager", "ExportTask", "parse_request"]

EXPORTS = "Exports"
REQUEST_XATTR = "user.rc.export"
FINAL = ("Completed", "Failed", "Cancelled", "Error")


@dataclass
class ExportTask:
    request_id: str
    date_from: str  # ISO 8601, UTC
    date_to: str
    types: list[str] = field(default_factory=list)
    extensions: list[str] = field(default_factory=list)
    id: str | None = None
    status: str = "Queued"
    created: float = 0.0
    archives: list[tuple[str, int | None]] = field(default_factory=list)
    error: str | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def folder(self) -> str:
        types = "+".join(self.types) if self.types else "All"
        exts = f" ext {','.join(self.extensions)}" if self.extensions else ""
        ident = (self.id or self.request_id)[-8:]
        stem = f"{self.date_from[:10]} to {self.date_to[:10]} {types}{exts} {self.status}"
        return naming.fit(naming.clean(stem), f" [{naming.clean(ident)}]")


def _when(value: Any, name: str, end: bool) -> datetime:
    if not isinstance(value, str) or not value:
        raise PluginError(Refusal.INVALID, f"export request: {name!r} must be a date")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise PluginError(Refusal.INVALID, f"export request: bad {name} {value!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if end and len(value) == 10:  # a date alone: the whole day is included
        when += timedelta(days=1)
    return when.astimezone(UTC)


def parse_request(raw: bytes) -> ExportTask:
    """An export request (JSON: from, to, types, extensions, request_id) or EINVAL."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise PluginError(Refusal.INVALID, "export request is not JSON") from None
    if not isinstance(data, dict):
        raise PluginError(Refusal.INVALID, "export request must be a JSON object")
    start = _when(data.get("from"), "from", False)
    end = _when(data.get("to"), "to", True)
    if start >= end:
        raise PluginError(Refusal.INVALID, "export request: 'from' must be before 'to'")
    types = [str(t) for t in data.get("types") or []]
    bad = [t for t in types if t not in EXPORT_TYPES]
    if bad:
        raise PluginError(Refusal.INVALID, f"export request: unknown types {bad} "
                          f"(known: {', '.join(EXPORT_TYPES)})")
    exts = [str(e) for e in data.get("extensions") or []]
    rid = str(data.get("request_id") or uuid.uuid4().hex)
    return ExportTask(rid, start.isoformat(), end.isoformat(), types, exts)


class ExportManager:
    """The ``Exports/`` plugin (see the module docstring)."""

    def __init__(self, runner: ReportRunner, state_file: FsPath,
                 capable: Callable[[], bool]) -> None:
        self.runner = runner
        self.state_file = state_file
        self._capable = capable
        self.refused = False  # a 403: these credentials cannot create reports
        self.tasks: list[ExportTask] = []
        self._nursery: trio.Nursery | None = None
        self._tree: Entry | None = None
        self.on_rename: Callable[[Path], None] | None = None

    # -- persistence ---------------------------------------------------------------------

    def load(self) -> None:
        try:
            raw = json.loads(self.state_file.read_text())
            self.tasks = [ExportTask(**{**t, "archives": [tuple(a) for a in t["archives"]]})
                          for t in raw]
        except FileNotFoundError:
            self.tasks = []
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("ignoring unreadable %s: %s", self.state_file, exc)
            self.tasks = []

    def _save(self) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps([asdict(t) for t in self.tasks], indent=1))
        os.replace(tmp, self.state_file)

    def bind(self, nursery: trio.Nursery) -> None:
        """Resume the unfinished tasks of earlier sessions."""
        self._nursery = nursery
        for task in self.tasks:
            if not task.final:
                if task.id is not None:
                    self.runner.adopt()
                nursery.start_soon(self._run, task)

    # -- the tree ------------------------------------------------------------------------

    @property
    def visible(self) -> bool:
        return not self.refused and self._capable()

    def roots(self) -> dict[str, Entry]:
        if not self.visible:
            return {}
        if self._tree is None:
            self._tree = self._build()
        return {EXPORTS: self._tree}

    def _build(self) -> Entry:
        root = Entry.directory(EXPORTS)
        for task in self.tasks:
            created = task.created
            folder = Entry.directory(task.folder(), created)
            folder.xattrs = {"user.rc.export_status": task.status,
                             "user.rc.export_request": task.request_id}
            if task.id:
                folder.xattrs["user.rc.id"] = task.id
            if task.error:
                folder.xattrs["user.rc.error"] = task.error
            for n, (uri, size) in enumerate(task.archives):
                ref = self._ref(task, n, uri, size)
                folder.add(Entry(f"archive-{n:02d}.zip", created, content=ref,
                                 xattrs={"user.mime_type": "application/zip",
                                         "user.rc.id": task.id or ""}))
            root.add(folder)
        return root

    @staticmethod
    def _ref(task: ExportTask, n: int, uri: str, size: int | None) -> ContentRef:
        assert task.id is not None
        return ContentRef("export", (task.id, str(n)), uri, "Heavy", size, "application/zip")

    def _changed(self, task: ExportTask, old_folder: str) -> None:
        self._tree = None
        self._save()
        if old_folder != task.folder() and self.on_rename is not None:
            self.on_rename((EXPORTS, old_folder))

    # -- requests ------------------------------------------------------------------------

    async def getxattr(self, path: Path, entry: Entry, name: str) -> str | None:
        return None

    def xattr_names(self, path: Path, entry: Entry) -> list[str]:
        return []

    async def setxattr(self, path: Path, entry: Entry, name: str, value: bytes) -> bool:
        if name != REQUEST_XATTR:
            return False
        if path != (EXPORTS,) or not self.visible:
            raise PluginError(Refusal.UNSUPPORTED, f"{name} is set on the {EXPORTS} folder only")
        self.submit(parse_request(value))
        return True

    async def removexattr(self, path: Path, entry: Entry, name: str) -> bool:
        return False

    def submit(self, task: ExportTask) -> None:
        if self._nursery is None:
            raise PluginError(Refusal.NOT_READY, "exports are not running yet")
        task.created = datetime.now(UTC).timestamp()
        self.tasks.append(task)
        self._changed(task, task.folder())
        log.info("export %s queued: %s to %s, types %s", task.request_id, task.date_from,
                 task.date_to, task.types or "all")
        self._nursery.start_soon(self._run, task)

    def _set(self, task: ExportTask, **changes: Any) -> None:
        old = task.folder()
        for key, value in changes.items():
            setattr(task, key, value)
        self._changed(task, old)

    async def _run(self, task: ExportTask) -> None:
        try:
            if task.id is None:
                created = await self.runner.create(
                    datetime.fromisoformat(task.date_from), datetime.fromisoformat(task.date_to),
                    task.types, priority=Priority.METADATA)
                self._set(task, id=created.id, status=created.status or "Accepted")
            assert task.id is not None
            final = await self.runner.wait(task.id, on_update=lambda t: self._update(task, t))
            if final.status == "Completed" and not task.archives:
                await self._list(task)
            self._set(task, status=final.status or "Completed")
            log.info("export %s ended %s (%d archives)", task.id, task.status,
                     len(task.archives))
        except (RcError, TimeoutError) as exc:
            if isinstance(exc, ApiError) and exc.status == 403:
                self.refused = True
            log.warning("export %s failed: %s", task.id or task.request_id, exc)
            self._set(task, status="Error", error=str(exc)[:300])

    def _update(self, task: ExportTask, seen: ReportTask) -> None:
        if seen.status and seen.status != task.status and seen.status != "Completed":
            self._set(task, status=seen.status)

    async def _list(self, task: ExportTask) -> None:
        assert task.id is not None
        refs = await self.runner.archives(task.id, priority=Priority.METADATA)
        task.archives = [(a.uri, a.size) for a in refs]

    async def fresh_uri(self, ref: ContentRef) -> str | None:
        """A current URI for an export archive whose URI answered 404 (it may expire)."""
        if ref.kind != "export" or len(ref.ids) != 2:
            return None
        task = next((t for t in self.tasks if t.id == ref.ids[0]), None)
        if task is None:
            return None
        n = int(ref.ids[1])
        await self._list(task)
        self._tree = None
        self._save()
        if n >= len(task.archives):
            return None
        log.info("archive %s of export %s: URI renewed", n, task.id)
        return task.archives[n][0]

    def status(self) -> list[dict[str, Any]]:
        return [{"request_id": t.request_id, "id": t.id, "status": t.status,
                 "folder": f"{EXPORTS}/{t.folder()}", "from": t.date_from, "to": t.date_to,
                 "types": t.types, "archives": len(t.archives),
                 "bytes": sum(s or 0 for _, s in t.archives), "error": t.error}
                for t in self.tasks]
