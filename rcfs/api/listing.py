"""Typed RingCentral calls: account, extensions, messages, call log, greetings, exports.

Why these rules (docs/ringcentral.md §5, §10):

* Every listing sends an explicit ``dateFrom`` (default: the epoch). Omitted, the server
  silently limits message-store, message-sync and call-log to the last 24 hours.
* Pages are followed through ``navigation.nextPage.uri`` with ``perPage=1000``, never by
  counting: call-log omits the totals, empty pages omit ``page``, and totals can change
  while we page. A repeated next-page URI ends the walk (a server loop must not become
  ours), and ids already yielded are skipped (a message that arrives while we page shifts
  the newest-first pages by one).
* Listings are class-based async iterators (``rcfs.api.paging.Pager``), not async
  generators: a consumer that stops early (``break``) leaves nothing for trio's GC hook to
  warn about.
* One record that fails to parse is logged and skipped rather than failing a whole
  directory listing (``rcfs.api.paging.Pager.skipped`` counts them).
* Batch GET of up to 50 messages is one Light request (§5.1): callers refreshing many
  messages save budget with ``get_messages_batch``.

Priorities: listings default to ``Priority.LISTING``, single-object reads to ``METADATA``,
and writes (read status, delete, report creation) to ``METADATA``; callers override.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import httpx

from rcfs.api.errors import ApiError
from rcfs.api.models import (
    EPOCH,
    AnsweringRule,
    ArchiveRef,
    CallLogRecord,
    Extension,
    Greeting,
    Message,
    ModelError,
    PhoneNumber,
    Recording,
    ReportTask,
    format_time,
    parse_answering_rule,
    parse_archive_ref,
    parse_call_log_record,
    parse_extension,
    parse_greeting,
    parse_message,
    parse_phone_number,
    parse_recording,
    parse_report_task,
)
from rcfs.api.paging import PER_PAGE, Pager, Params, as_list, put_list
from rcfs.api.protocol import ApiClient
from rcfs.api.scheduler import Priority

__all__ = [
    "BATCH_MAX",
    "MULTIPART_JSON",
    "BatchItemError",
    "account_path",
    "create_message_store_report",
    "delete_message",
    "ext_path",
    "get_extension",
    "get_greeting",
    "get_message",
    "get_message_store_report",
    "get_messages_batch",
    "get_recording",
    "list_answering_rules",
    "list_call_log",
    "list_extensions",
    "list_greetings",
    "list_messages",
    "list_phone_numbers",
    "list_report_archives",
    "update_read_status",
]

log = logging.getLogger(__name__)

BATCH_MAX = 50
"""Most ids one batch GET may carry (more → 400)."""
MULTIPART_JSON = "application/vnd.ringcentral.multipart+json"

DateArg = datetime | str


def account_path(suffix: str = "", account_id: str = "~") -> str:
    return f"/restapi/v1.0/account/{account_id}{suffix}"


def ext_path(ext_id: str = "~", suffix: str = "", account_id: str = "~") -> str:
    return f"/restapi/v1.0/account/{account_id}/extension/{ext_id}{suffix}"


# -- account and extensions --------------------------------------------------------------------


async def get_extension(client: ApiClient, ext_id: str = "~", *,
                        priority: Priority = Priority.METADATA,
                        deadline: float | None = None) -> Extension:
    """``ext_id='~'`` is the token owner: its id, ``is_admin`` and account id."""
    return parse_extension(await client.get_json(ext_path(ext_id), priority=priority,
                                                 deadline=deadline))


def list_extensions(
    client: ApiClient,
    *,
    types: str | Iterable[str] | None = None,
    statuses: str | Iterable[str] | None = None,
    priority: Priority = Priority.LISTING,
    deadline: float | None = None,
) -> Pager[Extension]:
    """Every extension of the account (Medium group; one request per 1000)."""
    params: Params = {"perPage": str(PER_PAGE)}
    put_list(params, "type", types)
    put_list(params, "status", statuses)
    return Pager(client, account_path("/extension"), params, parse_extension, lambda e: e.id,
                 priority=priority, deadline=deadline, what="extension")


async def list_phone_numbers(client: ApiClient, ext_id: str = "~", *,
                             priority: Priority = Priority.METADATA,
                             deadline: float | None = None) -> list[PhoneNumber]:
    """The extension's numbers with their ``features`` (who may send SMS/MMS from where)."""
    pager = Pager(client, ext_path(ext_id, "/phone-number"), {"perPage": str(PER_PAGE)},
                  parse_phone_number, lambda p: p.id or p.number, priority=priority,
                  deadline=deadline, what="phone number")
    return await pager.collect()


# -- messages ----------------------------------------------------------------------------------


def list_messages(
    client: ApiClient,
    ext_id: str = "~",
    *,
    date_from: DateArg = EPOCH,
    date_to: DateArg | None = None,
    message_types: str | Iterable[str] | None = None,
    availability: str | Iterable[str] | None = None,
    direction: str | Iterable[str] | None = None,
    read_status: str | Iterable[str] | None = None,
    conversation_id: int | None = None,
    per_page: int = PER_PAGE,
    priority: Priority = Priority.LISTING,
    deadline: float | None = None,
) -> Pager[Message]:
    """Every message of ``ext_id`` created in [date_from, date_to], newest first.

    ``availability=None`` is the server default (Alive only); pass
    ``["Alive", "Deleted", "Purged"]`` for everything.
    """
    params: Params = {"dateFrom": format_time(date_from), "perPage": str(per_page)}
    if date_to is not None:
        params["dateTo"] = format_time(date_to)
    put_list(params, "messageType", message_types)
    put_list(params, "availability", availability)
    put_list(params, "direction", direction)
    put_list(params, "readStatus", read_status)
    if conversation_id is not None:
        params["conversationId"] = str(conversation_id)
    return Pager(client, ext_path(ext_id, "/message-store"), params, parse_message,
                 lambda m: m.id, priority=priority, deadline=deadline, what="message")


async def get_message(client: ApiClient, ext_id: str, message_id: str, *,
                      priority: Priority = Priority.METADATA,
                      deadline: float | None = None) -> Message:
    """One message (status polling of sends, refresh of one file's metadata)."""
    return parse_message(await client.get_json(
        ext_path(ext_id, f"/message-store/{message_id}"), priority=priority, deadline=deadline))


@dataclass(frozen=True, slots=True)
class BatchItemError:
    """One failed item of a batch GET (usually 404 CMN-102: the message is gone)."""

    id: str
    status: int
    error_code: str | None = None
    message: str = ""


def _batch_item(rid: str, status: int, body: Any) -> Message | BatchItemError:
    if 200 <= status < 300 and isinstance(body, Mapping):
        try:
            return parse_message(body)
        except ModelError as exc:
            return BatchItemError(rid, status, None, str(exc))
    code = msg = None
    if isinstance(body, Mapping):
        errors = body.get("errors")
        first = errors[0] if isinstance(errors, list) and errors and isinstance(
            errors[0], Mapping) else {}
        code = body.get("errorCode") or first.get("errorCode")
        msg = body.get("message") or first.get("message")
    return BatchItemError(rid, status, str(code) if code else None, str(msg or ""))


def _parse_multipart_mixed(response: httpx.Response) -> list[tuple[int, Any]]:
    """RingCentral's default 207 encoding: a summary part ``{"response": [{status}...]}``
    then one JSON part per item that has a body. Returns ``(status, body)`` per item."""
    ctype = response.headers.get("content-type", "")
    raw = b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + response.content
    msg = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw)
    if not msg.is_multipart():
        raise ModelError("207 multipart/mixed response without parts")
    parts: list[Any] = []
    for part in msg.get_payload():
        if isinstance(part, str):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        try:
            parts.append(json.loads(payload.decode("utf-8")))
        except ValueError as exc:
            raise ModelError(f"unparsable part in a batch response: {exc}") from exc
    if not parts or not isinstance(parts[0], Mapping) or not isinstance(
            parts[0].get("response"), list):
        raise ModelError("207 multipart/mixed response without a summary part")
    summary = parts[0]["response"]
    bodies = iter(parts[1:])
    out: list[tuple[int, Any]] = []
    for item in summary:
        status = int(item.get("status", 0)) if isinstance(item, Mapping) else 0
        out.append((status, next(bodies, None)))
    return out


async def get_messages_batch(
    client: ApiClient,
    ext_id: str,
    ids: Sequence[str],
    *,
    priority: Priority = Priority.METADATA,
    deadline: float | None = None,
) -> dict[str, Message | BatchItemError]:
    """Fetch many messages, one Light request per 50 ids; result keyed by the asked id.

    Asks for the JSON batch encoding and also understands the default multipart/mixed one
    (and a plain 200 object, which a server may send for a single id).
    """
    wanted = list(dict.fromkeys(str(i) for i in ids))
    result: dict[str, Message | BatchItemError] = {}
    for offset in range(0, len(wanted), BATCH_MAX):
        chunk = wanted[offset:offset + BATCH_MAX]
        try:
            response = await client.request(
                "GET", ext_path(ext_id, "/message-store/" + ",".join(chunk)),
                headers={"Accept": f"{MULTIPART_JSON}, application/json;q=0.5"},
                priority=priority, deadline=deadline)
        except ApiError as exc:
            # A single id is a plain GET for the server: its 404 is that item's answer.
            if len(chunk) == 1 and exc.status == 404:
                result[chunk[0]] = BatchItemError(chunk[0], 404, exc.error_code, exc.message)
                continue
            raise
        result.update(_parse_batch(response, chunk))
    return result


def _parse_batch(response: httpx.Response, chunk: list[str]) -> dict[str, Message | BatchItemError]:
    ctype = response.headers.get("content-type", "").lower()
    out: dict[str, Message | BatchItemError] = {}
    if ctype.startswith("multipart/"):
        items = _parse_multipart_mixed(response)
        for rid, (status, body) in zip(chunk, items, strict=False):
            out[rid] = _batch_item(rid, status, body)
        for rid in chunk[len(items):]:
            out[rid] = BatchItemError(rid, 0, None, "missing from the batch response")
        return out
    data = response.json()
    if isinstance(data, Mapping):  # a single object (one id)
        item = _batch_item(chunk[0], response.status_code, data)
        out[chunk[0]] = item
        return out
    if not isinstance(data, list):
        raise ModelError(f"batch response is {type(data).__name__}")
    by_id: dict[str, tuple[int, Any]] = {}
    positional: list[tuple[int, Any]] = []
    for entry in data:
        if not isinstance(entry, Mapping):
            continue
        status = int(entry.get("status", 0) or 0)
        pair = (status, entry.get("body"))
        positional.append(pair)
        resource = entry.get("resourceId")
        if resource is not None:
            by_id[str(resource).strip()] = pair
    for index, rid in enumerate(chunk):
        pair2 = by_id.get(rid)
        if pair2 is None and not by_id and index < len(positional):
            pair2 = positional[index]
        if pair2 is None:
            out[rid] = BatchItemError(rid, 0, None, "missing from the batch response")
        else:
            out[rid] = _batch_item(rid, pair2[0], pair2[1])
    return out


async def update_read_status(
    client: ApiClient,
    ext_id: str,
    message_id: str,
    read_status: Literal["Read", "Unread"],
    *,
    priority: Priority = Priority.METADATA,
    deadline: float | None = None,
) -> Message:
    """``PUT {"readStatus": ...}`` (Medium); returns the updated message."""
    if read_status not in ("Read", "Unread"):
        raise ValueError(f"read_status must be 'Read' or 'Unread', not {read_status!r}")
    response = await client.request(
        "PUT", ext_path(ext_id, f"/message-store/{message_id}"),
        json={"readStatus": read_status}, priority=priority, deadline=deadline)
    return parse_message(response.json())


async def delete_message(
    client: ApiClient,
    ext_id: str,
    message_id: str,
    *,
    purge: bool = False,
    priority: Priority = Priority.METADATA,
    deadline: float | None = None,
) -> None:
    """Alive → Deleted (restorable); a second delete or ``purge=True`` → Purged.

    A 404 means it is already gone, which is what the caller wanted: not an error.
    """
    params = {"purge": "true"} if purge else None
    try:
        await client.request("DELETE", ext_path(ext_id, f"/message-store/{message_id}"),
                             params=params, priority=priority, deadline=deadline)
    except ApiError as exc:
        if exc.status != 404:
            raise


# -- call log and recordings -------------------------------------------------------------------


def list_call_log(
    client: ApiClient,
    ext_id: str | None = "~",
    *,
    date_from: DateArg = EPOCH,
    date_to: DateArg | None = None,
    view: Literal["Simple", "Detailed"] = "Simple",
    recording_type: Literal["Automatic", "OnDemand", "All"] | None = None,
    call_type: str | Iterable[str] | None = None,
    direction: str | Iterable[str] | None = None,
    show_deleted: bool | None = None,
    per_page: int = PER_PAGE,
    priority: Priority = Priority.LISTING,
    deadline: float | None = None,
) -> Pager[CallLogRecord]:
    """Call-log records, newest first (Heavy: 10/min — list once, then sync).

    ``ext_id=None`` lists the company call log (``/account/~/call-log``, admin only), the
    cheap way to find every recording of an account with ``recording_type="All"``.
    """
    path = account_path("/call-log") if ext_id is None else ext_path(ext_id, "/call-log")
    params: Params = {"dateFrom": format_time(date_from), "perPage": str(per_page),
                      "view": view}
    if date_to is not None:
        params["dateTo"] = format_time(date_to)
    if recording_type is not None:
        params["recordingType"] = recording_type
    put_list(params, "type", call_type)
    put_list(params, "direction", direction)
    if show_deleted is not None:
        params["showDeleted"] = "true" if show_deleted else "false"
    return Pager(client, path, params, parse_call_log_record, lambda r: r.id,
                 priority=priority, deadline=deadline, what="call-log record")


async def get_recording(client: ApiClient, recording_id: str, *,
                        priority: Priority = Priority.METADATA,
                        deadline: float | None = None) -> Recording:
    """Recording metadata (Heavy): ``content_type`` and ``duration``, never a size."""
    return parse_recording(await client.get_json(
        account_path(f"/recording/{recording_id}"), priority=priority, deadline=deadline))


# -- answering rules and greetings -------------------------------------------------------------


async def list_answering_rules(
    client: ApiClient,
    ext_id: str = "~",
    *,
    detailed: bool = True,
    priority: Priority = Priority.LISTING,
    deadline: float | None = None,
) -> list[AnsweringRule]:
    """The extension's answering rules; with ``detailed`` each rule is re-read (Light) to get
    its ``greetings[]``, which the list (Medium) may omit."""
    pager = Pager(client, ext_path(ext_id, "/answering-rule"), {"perPage": str(PER_PAGE)},
                  parse_answering_rule, lambda r: r.id, priority=priority, deadline=deadline,
                  what="answering rule")
    rules = await pager.collect()
    if not detailed:
        return rules
    out = []
    for rule in rules:
        data = await client.get_json(ext_path(ext_id, f"/answering-rule/{rule.id}"),
                                     priority=priority, deadline=deadline)
        out.append(parse_answering_rule(data))
    return out


async def get_greeting(client: ApiClient, ext_id: str, greeting_id: str, *,
                       priority: Priority = Priority.METADATA,
                       deadline: float | None = None) -> Greeting:
    return parse_greeting(await client.get_json(
        ext_path(ext_id, f"/greeting/{greeting_id}"), priority=priority, deadline=deadline))


async def list_greetings(
    client: ApiClient,
    ext_id: str = "~",
    *,
    priority: Priority = Priority.LISTING,
    deadline: float | None = None,
) -> list[Greeting]:
    """Every custom greeting of an extension. There is no list endpoint (docs/ringcentral.md §5.6):
    walk answering rules → rule detail → ``GET greeting/{id}`` for each custom id, once per
    id even when several rules share a greeting. A greeting that vanished meanwhile (404)
    is skipped."""
    rules = await list_answering_rules(client, ext_id, priority=priority, deadline=deadline)
    ids = list(dict.fromkeys(gid for rule in rules for gid in rule.custom_greeting_ids))
    greetings = []
    for gid in ids:
        try:
            greetings.append(await get_greeting(client, ext_id, gid, priority=priority,
                                                deadline=deadline))
        except ApiError as exc:
            if exc.status != 404:
                raise
            log.info("greeting %s of extension %s vanished", gid, ext_id)
    return greetings


# -- message-store report (compliance export) --------------------------------------------------


async def create_message_store_report(
    client: ApiClient,
    *,
    date_from: DateArg = EPOCH,
    date_to: DateArg | None = None,
    message_types: Iterable[str] | None = None,
    priority: Priority = Priority.METADATA,
    deadline: float | None = None,
) -> ReportTask:
    """Start an export task (admin, Heavy; at most 2 running per account)."""
    body: dict[str, Any] = {"dateFrom": format_time(date_from)}
    if date_to is not None:
        body["dateTo"] = format_time(date_to)
    types = as_list(message_types)
    if types:
        body["messageTypes"] = types
    response = await client.request("POST", account_path("/message-store-report"), json=body,
                                    priority=priority, deadline=deadline)
    return parse_report_task(response.json())


async def get_message_store_report(client: ApiClient, task_id: str, *,
                                   priority: Priority = Priority.METADATA,
                                   deadline: float | None = None) -> ReportTask:
    return parse_report_task(await client.get_json(
        account_path(f"/message-store-report/{task_id}"), priority=priority, deadline=deadline))


async def list_report_archives(client: ApiClient, task_id: str, *,
                               priority: Priority = Priority.METADATA,
                               deadline: float | None = None) -> list[ArchiveRef]:
    """The archives of a completed task, with sizes (download each with ``content``)."""
    data = await client.get_json(account_path(f"/message-store-report/{task_id}/archive"),
                                 priority=priority, deadline=deadline)
    records = data.get("records") if isinstance(data, Mapping) else None
    out = []
    for raw in records if isinstance(records, list) else []:
        try:
            out.append(parse_archive_ref(raw))
        except ModelError as exc:
            log.warning("skipping unparsable archive of report %s: %s", task_id, exc)
    return out
