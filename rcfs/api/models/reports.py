"""Message-store report tasks and their archives (the compliance export)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rcfs.api.models.values import (
    ModelError,
    Raw,
    json_object,
    opt_id,
    opt_int,
    opt_list,
    opt_str,
    parse_time_opt,
    req_id,
)


@dataclass(frozen=True, slots=True)
class ReportTask:
    """A message-store-report task; ``status`` goes Accepted → InProgress → Completed."""

    id: str
    status: str | None
    creation_time: datetime | None
    uri: str | None = None
    last_modified_time: datetime | None = None
    start_time: datetime | None = None
    finish_time: datetime | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    message_types: tuple[str, ...] = ()
    account_id: str | None = None
    extension_id: str | None = None
    raw: Raw = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_finished(self) -> bool:
        return self.status in ("Completed", "Failed", "Cancelled")


def parse_report_task(d: Any) -> ReportTask:
    d = json_object(d, "report task")
    return ReportTask(
        id=req_id(d, "id", "report task"),
        status=opt_str(d.get("status")),
        creation_time=parse_time_opt(d.get("creationTime")),
        uri=opt_str(d.get("uri")),
        last_modified_time=parse_time_opt(d.get("lastModifiedTime")),
        start_time=parse_time_opt(d.get("startTime")),
        finish_time=parse_time_opt(d.get("finishTime")),
        date_from=parse_time_opt(d.get("dateFrom")),
        date_to=parse_time_opt(d.get("dateTo")),
        message_types=tuple(t for t in (opt_str(x) for x in opt_list(d.get("messageTypes"))) if t),
        account_id=opt_id(d.get("accountId")),
        extension_id=opt_id(d.get("extensionId")),
        raw=d,
    )


@dataclass(frozen=True, slots=True)
class ArchiveRef:
    """One archive of a completed report: one of the few objects with a size up front."""

    uri: str
    size: int | None


def parse_archive_ref(d: Any) -> ArchiveRef:
    d = json_object(d, "archive")
    uri = opt_str(d.get("uri"))
    if not uri:
        raise ModelError(f"archive without 'uri': {dict(d)!r}"[:400])
    return ArchiveRef(uri=uri, size=opt_int(d.get("size")))
