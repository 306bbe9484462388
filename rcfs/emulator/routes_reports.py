"""Message-store report: the account-wide compliance export (docs/ringcentral.md §5.7,
§13 J2-J6).

A task moves Accepted -> InProgress -> Completed on the emulated clock, one
``config.report_step`` per step; on completion its zip archives are built once and kept in
``store.reports[taskId].archives`` (downloaded through routes_content.report_archive).

``config.report_outcome`` (read when the task is created) chooses how the lifecycle ends (J3),
so clients can be tested against every terminal state of the spec's status enum:

* ``Completed`` (default): Accepted -> InProgress -> Completed (2 steps), archives built.
* ``Failed``: Accepted -> InProgress -> Failed (2 steps): ``finishTime`` set, no archives.
* ``Cancelled``: Accepted -> InProgress -> Cancelled (2 steps): ``finishTime`` set, no
  archives.
* ``AttemptFailed``: Accepted -> InProgress -> AttemptFailed -> InProgress -> Completed
  (4 steps): one failed attempt that the service retries by itself and that then succeeds
  (I): AttemptFailed is not terminal (the task still counts as unfinished), has no
  ``finishTime``, and the retry keeps the first ``startTime``. A retry that fails for good
  is covered by ``Failed``.

``…/archive`` of a Failed or Cancelled task stays 404 ``CMN-102`` on ``archiveId`` (no
archive was ever built), like an unfinished one.

Choices not settled by any source, marked (I):
* More than ``config.max_report_tasks`` unfinished tasks -> 429 ``CMN-304`` ("Duplicate
  concurrent request. Try again later") with ``Retry-After`` = seconds until the oldest
  unfinished task completes: the documented code nearest to "too many concurrent tasks",
  and a status that tells clients to retry rather than give up.
* ``…/archive`` before the task is Completed -> 404 ``CMN-102`` on ``archiveId`` (the
  archives do not exist yet).
* Non-admin callers -> 403 ``CMN-408`` naming the ``Users`` permission.
* Each ``message-store.json`` is ``{"records": [...]}`` with the message-store rendering of
  the extension's messages in the range (Alive and Deleted; purged messages lost their
  content), newest first; extensions without such messages get no file.
* Attachment files are named ``<fileName>`` (``/`` and ``\\`` replaced by ``_``; a name
  repeated within one message gets an ``<attachmentId>_`` prefix) when the attachment has
  one, else ``<attachmentId>.<ext>``. A single file larger than ``archive_max_bytes`` gets
  an archive of its own (it cannot be split).
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from rcfs.emulator.core import Caller, Emulator, emulator_of, iso, json_response, parse_date
from rcfs.emulator.errors import ApiError, invalid_param, not_found, rc_error
from rcfs.emulator.message_render import render_message, settle
from rcfs.emulator.store import Attachment, Blob, ReportTask

DAY = 86400.0
MESSAGE_TYPES = ("Fax", "SMS", "VoiceMail", "Pager", "Text")
UNFINISHED = ("Accepted", "Pending", "InProgress", "AttemptFailed")
# config.report_outcome -> the states after InProgress, one report_step each.
OUTCOMES: dict[str, tuple[str, ...]] = {
    "Completed": ("Completed",),
    "Failed": ("Failed",),
    "Cancelled": ("Cancelled",),
    "AttemptFailed": ("AttemptFailed", "InProgress", "Completed"),
}
# Fixed size of one stored zip entry beyond its name and data (local + central header).
_ZIP_ENTRY_OVERHEAD = 30 + 46
_ZIP_END = 22


def _admin(caller: Caller) -> None:
    if not caller.is_admin:
        raise rc_error(403, "CMN-408", "In order to call this API endpoint, user needs to have "
                       "[Users] permission granted", permissionName="Users")


def _task_uri(emu: Emulator, task: ReportTask) -> str:
    return emu.account_uri(f"/message-store-report/{task.id}")


def render_task(emu: Emulator, task: ReportTask) -> dict[str, Any]:
    """Task JSON; task timestamps without milliseconds like RingCentral's examples (K1)."""
    data: dict[str, Any] = {
        "id": task.id,
        "uri": _task_uri(emu, task),
        "status": task.status,
        "accountId": str(task.account_id),
        "extensionId": str(task.extension_id),
        "creationTime": iso(task.creation_time, millis=False),
        "lastModifiedTime": iso(task.last_modified_time or task.creation_time, millis=False),
    }
    if task.start_time is not None:
        data["startTime"] = iso(task.start_time, millis=False)
    if task.finish_time is not None:
        data["finishTime"] = iso(task.finish_time, millis=False)
    data["dateFrom"] = iso(task.date_from)
    data["dateTo"] = iso(task.date_to)
    return data


# -- archives --------------------------------------------------------------------------------


def _file_name(att: Attachment) -> str:
    if att.file_name:
        return att.file_name.replace("/", "_").replace("\\", "_")
    try:
        from rcfs.emulator.routes_content import extension_for
    except ImportError:  # pragma: no cover
        return f"{att.id}.bin"
    return f"{att.id}.{extension_for(att.blob.content_type)}"


def _zip(entries: list[tuple[str, bytes]], compress: bool,
         corrupt: frozenset[str] = frozenset()) -> bytes:
    """A zip of ``entries``; members named in ``corrupt`` get one payload byte flipped after
    their CRC was computed (a damaged archive a client must detect)."""
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = method
            zf.writestr(info, data)
        infos = {i.filename: i for i in zf.infolist()}
    raw = bytearray(buf.getvalue())
    for name in corrupt:
        info = infos[name]
        if info.file_size == 0:
            continue
        # Local header: 30 fixed bytes, the name, the extra field; then the payload.
        extra_len = int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
        at = info.header_offset + 30 + len(info.filename.encode("utf-8")) + extra_len
        raw[at] ^= 0xFF
    return bytes(raw)


def build_archives(emu: Emulator, task: ReportTask) -> list[Blob]:
    """archive 0: message-store.json per extension; 1..n: attachment binaries (J4)."""
    store = emu.store
    acc = task.account_id
    now = emu.clock.now()  # seeded "future" messages do not exist yet
    json_entries: list[tuple[str, bytes]] = []
    files: list[tuple[str, bytes]] = []
    for ext in sorted(store.extensions.values(), key=lambda e: e.id):
        msgs = [m for m in store.messages_of(ext.id, task.date_from - 1e-6, task.date_to)
                if task.date_from <= m.creation_time <= now and settle(emu, m)
                and (not task.message_types or m.type in task.message_types)]
        if not msgs:
            continue
        prefix = f"account/{acc}/extension/{ext.id}"
        records = [render_message(emu, m) for m in msgs]
        json_entries.append((f"{prefix}/message-store.json",
                             json.dumps({"records": records}, indent=1).encode("utf-8")))
        for msg in msgs:
            if msg.availability == "Purged":
                continue
            used: set[str] = set()
            for att in msg.attachments:
                leaf = _file_name(att)
                if leaf in used:
                    leaf = f"{att.id}_{leaf}"
                used.add(leaf)
                name = f"{prefix}/message-store/content/{msg.id}/{leaf}"
                files.append((name, att.blob.bytes()))
    archives = [Blob("application/zip", data=_zip(json_entries, compress=True))]
    limit = emu.config.archive_max_bytes
    drop = max(0, emu.config.archive_drop_members)
    n_bad = max(0, emu.config.archive_corrupt_members)
    corrupt = frozenset(name for name, _ in files[drop:drop + n_bad])
    files = files[drop:]
    batch: list[tuple[str, bytes]] = []
    size = _ZIP_END
    for name, data in files:
        cost = _ZIP_ENTRY_OVERHEAD + 2 * len(name.encode("utf-8")) + len(data)
        if batch and size + cost > limit:
            archives.append(Blob("application/zip", data=_zip(batch, compress=False,
                                                              corrupt=corrupt)))
            batch, size = [], _ZIP_END
        batch.append((name, data))
        size += cost
    if batch:
        archives.append(Blob("application/zip", data=_zip(batch, compress=False,
                                                          corrupt=corrupt)))
    return archives


# -- state machine ---------------------------------------------------------------------------


def _outcome(emu: Emulator) -> tuple[str, ...]:
    outcome = emu.config.report_outcome
    if outcome not in OUTCOMES:
        raise rc_error(500, "CMN-203", f"Emulator misconfigured: report_outcome {outcome!r} is "
                       f"not one of {sorted(OUTCOMES)}")
    return OUTCOMES[outcome]


def _steps(emu: Emulator) -> int:
    """Steps from creation to the terminal state under the current configuration."""
    return 1 + len(OUTCOMES.get(emu.config.report_outcome, ("Completed",)))


def _schedule(emu: Emulator, task: ReportTask) -> None:
    step = max(0.0, emu.config.report_step)
    states = _outcome(emu)

    def start(when: float) -> None:
        if task.status != "Accepted":
            return
        task.status = "InProgress"
        task.start_time = when
        task.last_modified_time = when

    def advance(expected: str, new: str) -> Callable[[float], None]:
        def run(when: float) -> None:
            if task.status != expected:
                return
            if new == "Completed":
                task.archives = build_archives(emu, task)
            if new in ("Completed", "Failed", "Cancelled"):
                task.finish_time = when
            task.status = new
            task.last_modified_time = when
        return run

    emu.at(task.creation_time + step, start)
    previous = "InProgress"
    for n, new in enumerate(states, start=2):
        emu.at(task.creation_time + n * step, advance(previous, new))
        previous = new


def _unfinished(emu: Emulator) -> list[ReportTask]:
    return [t for t in emu.store.reports.values()
            if t.account_id == emu.store.account_id and t.status in UNFINISHED]


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise rc_error(400, "CMN-103", "Unable to parse request body as JSON") from None
    if not isinstance(body, dict):
        raise rc_error(400, "CMN-103", "Unable to parse request body as JSON")
    return body


def _date(body: dict[str, Any], name: str, default: float) -> float:
    value = body.get(name)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise invalid_param(name)
    return parse_date(value, name)


async def create_report(request: Request) -> Response:
    """POST /account/{accountId}/message-store-report -> 202 Accepted task (J2)."""
    emu = emulator_of(request)
    caller = emu.api_call(request, "Heavy", scope="ReadMessages")
    emu.account(caller, request.path_params["accountId"])
    _admin(caller)
    body = await _json_body(request)
    now = emu.clock.now()
    date_to = _date(body, "dateTo", now)
    date_from = _date(body, "dateFrom", date_to - DAY)
    if date_from > date_to:
        raise invalid_param("dateFrom")
    types = body.get("messageTypes") or []
    if isinstance(types, str):
        types = [types]
    if not isinstance(types, list) or any(t not in MESSAGE_TYPES for t in types):
        raise invalid_param("messageTypes")
    _outcome(emu)  # a misconfigured outcome fails before a task is stored
    busy = _unfinished(emu)
    if len(busy) >= emu.config.max_report_tasks:
        step = max(0.0, emu.config.report_step)
        wait = min(t.creation_time + _steps(emu) * step for t in busy) - now
        raise ApiError(429, {
            "errorCode": "CMN-304", "message": "Duplicate concurrent request. Try again later",
            "errors": [{"errorCode": "CMN-304",
                        "message": "Duplicate concurrent request. Try again later"}],
        }, {"Retry-After": str(max(1, int(wait + 0.999)))})
    acc = emu.store.account_id
    task = ReportTask(
        id=f"{acc}-{caller.extension.id}-{uuid.uuid4().hex}", account_id=acc,
        extension_id=caller.extension.id, creation_time=now, date_from=date_from,
        date_to=date_to, message_types=[str(t) for t in types], last_modified_time=now,
    )
    emu.store.reports[task.id] = task
    _schedule(emu, task)
    return json_response(render_task(emu, task), status=202)


def _task(request: Request, emu: Emulator) -> ReportTask:
    caller = emu.api_call(request, "Heavy", scope="ReadMessages")
    emu.account(caller, request.path_params["accountId"])
    _admin(caller)
    task = emu.store.reports.get(request.path_params["taskId"])
    if task is None or task.account_id != emu.store.account_id:
        raise not_found("taskId")
    return task


async def get_report(request: Request) -> Response:
    """GET …/message-store-report/{taskId}: status with startTime/finishTime (J3)."""
    emu = emulator_of(request)
    return json_response(render_task(emu, _task(request, emu)))


async def get_archive_list(request: Request) -> Response:
    """GET …/message-store-report/{taskId}/archive: ``records[{size, uri}]`` (J4)."""
    emu = emulator_of(request)
    task = _task(request, emu)
    if task.status != "Completed":
        raise not_found("archiveId")
    base = _task_uri(emu, task)
    ttl = emu.config.archive_uri_ttl
    query = f"?expires={int(emu.clock.now() + ttl)}" if ttl > 0 else ""
    return json_response({"records": [
        {"size": len(blob.data or b""), "uri": f"{base}/archive/{n}{query}"}
        for n, blob in enumerate(task.archives)
    ]})


def archive_expired(emu: Emulator, request: Request) -> bool:
    """With ``archive_uri_ttl`` set, an archive URI is good until its ``expires`` time (I)."""
    if emu.config.archive_uri_ttl <= 0:
        return False
    raw = request.query_params.get("expires", "")
    return not raw.isdigit() or emu.clock.now() > int(raw)


def routes() -> list[BaseRoute]:
    base = "/restapi/v1.0/account/{accountId}/message-store-report"
    return [
        Route(base, create_report, methods=["POST"]),
        Route(base + "/{taskId}", get_report, methods=["GET"]),
        Route(base + "/{taskId}/archive", get_archive_list, methods=["GET"]),
    ]


__all__ = ["archive_expired", "build_archives", "render_task", "routes"]
