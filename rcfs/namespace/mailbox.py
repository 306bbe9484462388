"""One mailbox's small state (persisted as one row) and its objects rendered to rows.

What is persisted is only what a refresh needs to continue (sync tokens, times, flags, the
greeting list); the messages themselves exist only as rendered rows of the index
(``store.entry``), and call-log records in ``store.call``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, tzinfo
from typing import Any

from rcfs.api.models import CallLogRecord, Extension, Greeting, Message
from rcfs.namespace import layout
from rcfs.namespace.store import Row, row

_RUNTIME = {"dirs", "tree", "area_files", "progress", "last_error", "calls_error", "loading"}


@dataclass
class Mailbox:
    ext: Extension
    own_numbers: list[str] = field(default_factory=list)
    msg_token: str | None = None
    msg_time: datetime | None = None
    msgs_complete: bool = False  # a full (paged) message sync finished at least once
    call_token: str | None = None
    call_time: datetime | None = None
    calls_loaded: bool = False
    calls_ok: bool = True  # False after a 403: the credentials may not read the call log
    greetings: list[Greeting] = field(default_factory=list)
    greetings_at: float = 0.0
    greeting_seen: dict[str, float] = field(default_factory=dict)  # id -> first seen
    refreshed_at: float = 0.0  # time.time() when the last message refresh began
    calls_at: float = 0.0
    # -- runtime only (not persisted) --
    calls_due: bool = False  # an event said this mailbox had a call since the last sync
    dirs: dict[str, tuple[int, float]] = field(default_factory=dict)  # folder -> files, mtime
    tree: dict[str, dict[str, float]] = field(default_factory=dict)  # folder -> subfolders
    area_files: dict[str, int] = field(default_factory=dict)  # area -> files (status.json)
    progress: dict[str, Any] = field(default_factory=dict)
    last_error: str | None = None
    calls_error: str | None = None
    loading: bool = False

    def __post_init__(self) -> None:
        if not self.tree:
            self.tree = skeleton(self.dirs)
        self.area_files = files_per_area(self.dirs)

    def persisted(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _RUNTIME}

    @classmethod
    def restore(cls, data: dict[str, Any]) -> Mailbox:
        box = cls(data["ext"])
        known = {f.name for f in fields(cls)} - _RUNTIME
        for key, value in data.items():
            if key in known:
                setattr(box, key, value)
        return box

    @property
    def loaded(self) -> bool:
        """Something to show: a finished first sync, or rows from an earlier mount."""
        return self.msgs_complete or bool(self.dirs)

    def set_dirs(self, dirs: dict[str, tuple[int, float]]) -> None:
        self.dirs = {d: v for d, v in dirs.items() if v[0] > 0}
        self.tree = skeleton(self.dirs)
        self.area_files = files_per_area(self.dirs)

    def own(self) -> set[str]:
        own = set(self.own_numbers)
        if self.ext.number:
            own.add(self.ext.number)
        return own


def files_per_area(dirs: dict[str, tuple[int, float]]) -> dict[str, int]:
    """Files below each area (``Voicemail``, ``Fax``...), counted once per change of the
    folders rather than on every read of ``.rcfs/status.json``, which tools poll."""
    counts = dict.fromkeys(layout.AREAS, 0)
    for folder, (files, _mtime) in dirs.items():
        area = folder.split("/", 1)[0]
        if area in counts:
            counts[area] += files
    return counts


def skeleton(dirs: dict[str, tuple[int, float]]) -> dict[str, dict[str, float]]:
    """folder -> {subfolder name: mtime}; a folder's mtime is its newest file's, the areas
    always exist (an empty Recordings folder is still a Recordings folder)."""
    tree: dict[str, dict[str, float]] = {"": dict.fromkeys(layout.AREAS, 0.0)}
    for area in layout.AREAS:
        tree.setdefault(area, {})
    for folder, (_n, mtime) in dirs.items():
        parts = folder.split("/")
        for i in range(1, len(parts) + 1):
            parent, name = "/".join(parts[:i - 1]), parts[i - 1]
            kids = tree.setdefault(parent, {})
            kids[name] = max(kids.get(name, 0.0), mtime)
            tree.setdefault("/".join(parts[:i]), {})
    return tree


def _rows(pairs: list[tuple[str, Any]]) -> list[Row]:
    return [row(d, e) for d, e in pairs]


def message_rows(msg: Message, tz: tzinfo | None, own: set[str], ext_id: str) -> list[Row]:
    return _rows(layout.rows(lambda root: layout.add_message(root, msg, tz, own, ext_id)))


def call_rows(call: CallLogRecord, tz: tzinfo | None, ext_id: str,
              recording_type: str | None) -> list[Row]:
    return _rows(layout.rows(
        lambda root: layout.add_call(root, call, tz, ext_id, recording_type)))


def greeting_rows(greeting: Greeting, mtime: float, ext_id: str) -> list[Row]:
    return _rows(layout.rows(lambda root: layout.add_greeting(root, greeting, mtime, ext_id)))
