"""``Calls/YYYY-MM.csv``: the call log as spreadsheets, built from the synced index.

Every mailbox gets a ``Calls/`` folder with one CSV per month that had calls (UTF-8 with a
BOM-less header row, RFC 4180 quoting, ``\\r\\n`` line ends as the csv module writes them):
time (ISO 8601 in the configured zone), direction, from, to, name (the other party's),
duration (seconds), result, recording (the file's path under ``Recordings/``, when the call
was recorded). Admins also get an account-level ``Calls/`` at the mount root with a
``mailbox`` column first. The bytes are built from the index in memory, so sizes are exact
and reading costs no request; a new call changes its month's file, a new month adds one.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from datetime import tzinfo

from rcfs.api.models import CallLogRecord, Party
from rcfs.namespace import naming
from rcfs.namespace.entries import Entry

__all__ = ["CALLS", "HEADER", "account_folder", "month_csv", "month_files"]

CALLS = "Calls"
HEADER = ("time", "direction", "from", "to", "name", "duration", "result", "recording")

RecordingName = Callable[[CallLogRecord], str | None]


def _number(p: Party | None) -> str:
    if p is None:
        return ""
    return p.phone_number or p.extension_number or ""


def _row(call: CallLogRecord, tz: tzinfo | None, recording: RecordingName) -> list[str]:
    other = call.from_ if call.direction == "Inbound" else call.to
    return [
        call.start_time.astimezone(tz).isoformat(timespec="seconds"),
        call.direction or "",
        _number(call.from_),
        _number(call.to),
        (other.name if other is not None else None) or "",
        "" if call.duration is None else str(call.duration),
        call.result or "",
        recording(call) or "",
    ]


def month_csv(calls: Iterable[CallLogRecord], tz: tzinfo | None, recording: RecordingName,
              mailbox: Callable[[CallLogRecord], str] | None = None) -> bytes:
    """One month's CSV, oldest call first (ties in id order, so the bytes are stable)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow((("mailbox",) if mailbox else ()) + HEADER)
    for call in sorted(calls, key=lambda c: (c.start_time, c.id)):
        row = _row(call, tz, recording)
        writer.writerow([mailbox(call), *row] if mailbox else row)
    return out.getvalue().encode("utf-8")


def _by_month(calls: Iterable[CallLogRecord], tz: tzinfo | None
              ) -> dict[str, list[CallLogRecord]]:
    months: dict[str, list[CallLogRecord]] = {}
    for call in calls:
        if not call.deleted:
            months.setdefault(naming.month(call.start_time, tz), []).append(call)
    return months


def month_files(calls: Iterable[CallLogRecord], tz: tzinfo | None, recording: RecordingName,
                mailbox: Callable[[CallLogRecord], str] | None = None) -> dict[str, Entry]:
    """month (``YYYY-MM``) -> its ``YYYY-MM.csv`` file (the metadata index stores these as
    rows of the mailbox's ``Calls/``)."""
    files = {}
    for month, group in sorted(_by_month(calls, tz).items()):
        newest = max(c.start_time.timestamp() for c in group)
        files[month] = Entry(f"{month}.csv", newest,
                             data=month_csv(group, tz, recording, mailbox),
                             xattrs={"user.mime_type": "text/csv"}, live=True)
    return files


def _folder(calls: Iterable[CallLogRecord], tz: tzinfo | None, recording: RecordingName,
            mailbox: Callable[[CallLogRecord], str] | None = None) -> Entry:
    folder = Entry.directory(CALLS)
    for entry in month_files(calls, tz, recording, mailbox).values():
        folder.add(entry)
    return folder


def account_folder(calls: Iterable[CallLogRecord], tz: tzinfo | None,
                   recording: RecordingName, mailbox: Callable[[CallLogRecord], str]) -> Entry:
    """The admin's account-level ``Calls/`` at the mount root."""
    return _folder(calls, tz, recording, mailbox)
