"""The message store and message sync (docs/ringcentral.md §13 E1-E13, F1-F6, D2, D3, K1-K3, A7).

Listing is a bisect over the per-extension index ``store.messages_of`` followed by cheap
filters, and only the requested page is rendered, so a scale-mode mailbox of 100,000+
messages lists a page of 1000 in a few tens of milliseconds.

The Deleted -> Purged -> gone lifecycle (E13) is applied lazily by ``settle``
(``rcfs.emulator.message_render``, with the JSON rendering): every route
that looks at a message first settles it against the emulator clock, using ``deleted_at`` /
``purged_at``, so no timer is needed and the outcome does not depend on when it is observed.

Choices not settled by any source, marked (I):
* The creation-time window is ``(dateFrom, dateTo]``; a defaulted dateFrom is truncated to the
  minute both in the echoed ``uri`` and in the filter, so navigation links list the same set.
* Messages whose ``creationTime`` is after the emulator clock do not exist yet.
* More than 50 ids in a batch -> 400 ``CMN-101`` on ``messageId``; a bulk DELETE with a
  failure -> 207 whose successful parts have status 204 and no body.
* FSync has no server-side cap; ``olderRecordsExist`` is true only when ``recordCount``
  truncated the answer. ISync ``recordCount`` adds that many records older than the frame,
  ISync ``dateFrom`` extends the frame back (records already sent are not repeated).
* A sync token is valid for ``config.sync_token_ttl`` after it was issued, only for the
  extension it was issued for; any other token -> 400 ``MSG-333``.
* A message past ``purged_to_gone`` is removed from the store (404, absent from ISync).
"""

from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from rcfs.emulator.core import (
    Emulator,
    emulator_of,
    enum_param,
    int_param,
    iso,
    json_response,
    parse_date,
)
from rcfs.emulator.errors import ApiError, invalid_param, missing_param, not_found, rc_error
from rcfs.emulator.message_render import find_message, live, render_deleted, render_message, settle
from rcfs.emulator.multipart import MultipartError, parse_multipart
from rcfs.emulator.paging import page_of
from rcfs.emulator.store import Extension, Message

MESSAGE_TYPES = ("Fax", "SMS", "VoiceMail", "Pager", "Text")
DIRECTIONS = ("Inbound", "Outbound")
AVAILABILITIES = ("Alive", "Deleted", "Purged")
READ_STATUSES = ("Read", "Unread")
SYNC_TYPES = ("FSync", "ISync")
MAX_BATCH = 50
MAX_PER_PAGE = 1000
SYNC_OVERLAP = 5.0  # ISync re-sends changes of the last 5 s before the token (F2)
MULTIPART_JSON = "application/vnd.ringcentral.multipart+json"
MSG_333 = "Invalid message synchronisation request: full synchronization is required"
SYNC_KIND = "message-sync"
_FAR_PAST = -1e18

# -- shared request parsing --------------------------------------------------------------------


def _filters(request: Request) -> dict[str, Any]:
    """The message filters common to message-store and message-sync (A7: repeats OR)."""
    q = request.query_params
    conv: int | None = None
    raw = q.get("conversationId")
    if raw not in (None, ""):
        try:
            conv = int(raw)
        except ValueError:
            raise invalid_param("conversationId") from None
    distinct = q.get("distinctConversations")
    if distinct not in (None, "", "true", "false", "True", "False"):
        raise invalid_param("distinctConversations")
    return {
        "types": enum_param(request, "messageType", MESSAGE_TYPES),
        "directions": enum_param(request, "direction", DIRECTIONS),
        "conversation_id": conv,
        "distinct": (distinct or "").lower() == "true",
    }


def _digits(number: str) -> str:
    return "".join(c for c in number if c.isdigit())


def _same_number(a: str, b: str) -> bool:
    da, db = _digits(a), _digits(b)
    if not da or not db:
        return False
    if da == db:
        return True
    short, long_ = sorted((da, db), key=len)
    return len(short) >= 10 and long_.endswith(short)


def _matches(msg: Message, f: dict[str, Any]) -> bool:
    if f["types"] and msg.type not in f["types"]:
        return False
    if f["directions"] and msg.direction not in f["directions"]:
        return False
    return f["conversation_id"] is None or msg.conversation_id == f["conversation_id"]


def _distinct(msgs: list[Message]) -> list[Message]:
    """Newest message of each conversation (input is newest first)."""
    seen: set[int] = set()
    out = []
    for m in msgs:
        if m.conversation_id is not None:
            if m.conversation_id in seen:
                continue
            seen.add(m.conversation_id)
        out.append(m)
    return out


def _window(request: Request, now: float, default_span: float) -> tuple[float, float, bool]:
    """``(dateFrom, dateTo, defaulted)``; the default dateFrom is truncated to the minute,
    as the echoed URI shows, and the same value filters so navigation links agree."""
    q = request.query_params
    date_to = parse_date(q["dateTo"], "dateTo") if q.get("dateTo") else now
    if q.get("dateFrom"):
        return parse_date(q["dateFrom"], "dateFrom"), date_to, False
    start = date_to - default_span
    return start - start % 60, date_to, True


def _base_query(request: Request) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.query_params.multi_items() if k != "access_token"]


# -- GET message-store -------------------------------------------------------------------------


def _select(emu: Emulator, msgs: list[Message], availability: set[str], f: dict[str, Any],
            read_status: set[str], phone: str | None) -> list[Message]:
    """One pass over the candidates (settling non-Alive ones); the hot loop of scale mode."""
    now = emu.clock.now()
    types, directions, conv = set(f["types"]), set(f["directions"]), f["conversation_id"]
    out: list[Message] = []
    append = out.append
    for m in msgs:
        if m.visible_at > now:  # sent, not indexed yet (message_store_lag)
            continue
        if (m.availability != "Alive" or m.gone) and not settle(emu, m, now):
            continue
        if m.availability not in availability:
            continue
        if types and m.type not in types:
            continue
        if directions and m.direction not in directions:
            continue
        if conv is not None and m.conversation_id != conv:
            continue
        if read_status and m.read_status not in read_status:
            continue
        if phone is not None and not (
            _same_number(phone, str(m.from_.get("phoneNumber", "")))
            or any(_same_number(phone, str(t.get("phoneNumber", ""))) for t in m.to)
        ):
            continue
        append(m)
    return out



async def list_messages(request: Request) -> Response:
    emu = emulator_of(request)
    caller = emu.api_call(request, "Light", scope="ReadMessages")
    p = request.path_params
    ext = emu.extension(caller, p["accountId"], p["extensionId"])
    f = _filters(request)
    availability = enum_param(request, "availability", AVAILABILITIES)
    read_status = enum_param(request, "readStatus", READ_STATUSES)
    phone = request.query_params.get("phoneNumber") or None
    page = int_param(request, "page", 1)
    per_page = int_param(request, "perPage", 100, hi=MAX_PER_PAGE, clamp=True)
    now = emu.clock.now()
    start, end, defaulted = _window(request, now, 86400.0)
    extra: dict[str, str] = {}
    if not availability:
        availability = ["Alive"]
        extra["availability"] = "Alive"
    if defaulted:
        extra["dateFrom"] = iso(start)

    out = _select(emu, emu.store.messages_of(ext.id, start, min(end, now)), set(availability),
                  f, set(read_status), phone)
    if f["distinct"]:
        out = _distinct(out)
    body = page_of(request, emu.ext_uri(ext.id, "/message-store"), out, page, per_page,
                   extra=extra)
    body["records"] = [render_message(emu, m) for m in body["records"]]
    return json_response(body)


# -- GET/PUT/DELETE message-store/{messageId} --------------------------------------------------


def _ids(raw: str) -> list[str]:
    ids = raw.split(",")
    if len(ids) > MAX_BATCH:
        raise invalid_param(
            "messageId", f"The maximum number of resources in a batch request is {MAX_BATCH}.")
    for i in ids:
        if not i.strip().isdigit():
            raise invalid_param("messageId")
    return [i.strip() for i in ids]


def _wants_multipart_json(request: Request) -> bool:
    return MULTIPART_JSON in request.headers.get("accept", "").lower()


_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found"}


def batch_response(request: Request, emu: Emulator, ext: Extension,
                   parts: list[tuple[str, int, dict[str, Any] | None]]) -> Response:
    """207 Multi-Status in either documented encoding (E10): ``multipart/mixed`` with a
    summary part first, or the ``vnd.ringcentral.multipart+json`` array."""
    if _wants_multipart_json(request):
        items = []
        for rid, status, body in parts:
            item: dict[str, Any] = {"resourceId": rid, "status": status}
            if body is not None:
                item["body"] = body
            items.append(item)
        data = json.dumps(items, indent=2, ensure_ascii=False).encode("utf-8")
        return Response(data, 207, media_type=MULTIPART_JSON)
    boundary = f"Boundary_{secrets.randbelow(100)}_{secrets.randbelow(10**9)}_" \
               f"{int(emu.clock.now() * 1000)}"
    summary = {"response": [
        {"href": emu.ext_uri(ext.id, f"/message-store/{rid}"), "status": status,
         "responseDescription": _REASONS.get(status, "Error")}
        for rid, status, _ in parts
    ]}
    chunks = [summary] + [body for _, _, body in parts if body is not None]
    out = []
    for chunk in chunks:
        out.append(f"--{boundary}\r\nContent-Type: application/json\r\n\r\n".encode())
        out.append(json.dumps(chunk, indent=2, ensure_ascii=False).encode("utf-8"))
        out.append(b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return Response(b"".join(out), 207,
                    headers={"Content-Type": f"multipart/mixed; boundary={boundary}"})


def _not_found_body() -> dict[str, Any]:
    return not_found("messageId").body


async def get_message(request: Request) -> Response:
    emu = emulator_of(request)
    caller = emu.api_call(request, "Light", scope="ReadMessages")  # a batch is one request
    p = request.path_params
    ext = emu.extension(caller, p["accountId"], p["extensionId"])
    ids = _ids(p["messageId"])
    if len(ids) == 1 and "," not in p["messageId"]:
        msg = find_message(emu, ext, ids[0])
        if msg is None:
            raise not_found("messageId")
        return json_response(render_message(emu, msg))
    parts: list[tuple[str, int, dict[str, Any] | None]] = []
    for rid in ids:
        msg = find_message(emu, ext, rid)
        if msg is None:
            parts.append((rid, 404, _not_found_body()))
        else:
            parts.append((rid, 200, render_message(emu, msg)))
    return batch_response(request, emu, ext, parts)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        raise rc_error(400, "CMN-103", "JSON can't be parsed") from None


async def _update_bodies(request: Request, count: int) -> list[Any]:
    """One update body per id (docs batch-requests.md): a JSON object (applied to every id),
    a ``vnd.ringcentral.multipart+json`` list of ``{"body": ...}``, or ``multipart/mixed``
    with one JSON part per id."""
    ctype = request.headers.get("content-type", "")
    if ctype.lower().startswith("multipart/"):
        try:
            parts = parse_multipart(ctype, await request.body())
        except MultipartError:
            raise rc_error(400, "CMN-104", "Cannot parse request") from None
        bodies: list[Any] = []
        for part in parts:
            try:
                bodies.append(json.loads(part.data))
            except ValueError:
                raise rc_error(400, "CMN-103", "JSON can't be parsed") from None
    else:
        body = await _json_body(request)
        if not isinstance(body, list):
            return [body] * count
        bodies = [b.get("body", b) if isinstance(b, dict) else b for b in body]
    if len(bodies) != count:
        raise invalid_param("messageId", "One body per resource is required.")
    return bodies


def _apply_update(emu: Emulator, msg: Message, body: Any) -> None:
    """Only ``readStatus`` is mutable (E11); other fields are ignored."""
    if not isinstance(body, dict):
        raise rc_error(400, "CMN-103", "JSON can't be parsed")
    status = body.get("readStatus")
    if status is None:
        raise missing_param("readStatus")
    if status not in READ_STATUSES:
        raise invalid_param("readStatus")
    msg.read_status = status
    msg.last_modified_time = emu.clock.now()
    emu.store.emit("message_updated", msg)


async def put_message(request: Request) -> Response:
    emu = emulator_of(request)
    caller = emu.api_call(request, "Medium", scope="EditMessages")
    p = request.path_params
    ext = emu.extension(caller, p["accountId"], p["extensionId"])
    ids = _ids(p["messageId"])
    bodies = await _update_bodies(request, len(ids))
    if len(ids) == 1 and "," not in p["messageId"]:
        msg = find_message(emu, ext, ids[0])
        if msg is None:
            raise not_found("messageId")
        _apply_update(emu, msg, bodies[0])
        return json_response(render_message(emu, msg))
    parts: list[tuple[str, int, dict[str, Any] | None]] = []
    for rid, item in zip(ids, bodies, strict=True):
        msg = find_message(emu, ext, rid)
        if msg is None:
            parts.append((rid, 404, _not_found_body()))
            continue
        try:
            _apply_update(emu, msg, item)
        except ApiError as exc:
            parts.append((rid, exc.status, exc.body))
            continue
        parts.append((rid, 200, render_message(emu, msg)))
    return batch_response(request, emu, ext, parts)


def delete_one(emu: Emulator, msg: Message, purge: bool) -> None:
    """Alive -> Deleted; a second delete, or ``purge``, -> Purged (E12)."""
    now = emu.clock.now()
    if msg.availability == "Alive" and not purge:
        msg.availability = "Deleted"
        msg.deleted_at = now
        msg.last_modified_time = now
    elif msg.availability != "Purged":
        msg.availability = "Purged"
        msg.purged_at = now
        msg.last_modified_time = now
    else:
        return
    emu.store.emit("message_deleted", msg)


async def delete_message(request: Request) -> Response:
    emu = emulator_of(request)
    caller = emu.api_call(request, "Medium", scope="EditMessages")
    p = request.path_params
    ext = emu.extension(caller, p["accountId"], p["extensionId"])
    purge_raw = request.query_params.get("purge", "false").lower()
    if purge_raw not in ("true", "false"):
        raise invalid_param("purge")
    purge = purge_raw == "true"
    ids = _ids(p["messageId"])
    found = [(rid, find_message(emu, ext, rid)) for rid in ids]
    if len(ids) == 1 and "," not in p["messageId"]:
        msg = found[0][1]
        if msg is None:
            raise not_found("messageId")
        delete_one(emu, msg, purge)
        return Response(status_code=204)
    parts: list[tuple[str, int, dict[str, Any] | None]] = []
    for rid, msg in found:
        if msg is None:
            parts.append((rid, 404, _not_found_body()))
        else:
            delete_one(emu, msg, purge)
            parts.append((rid, 204, None))
    if all(status == 204 for _, status, _ in parts):
        return Response(status_code=204)  # bulk DELETE, all OK (docs/ringcentral.md §9)
    return batch_response(request, emu, ext, parts)


# -- GET message-sync ---------------------------------------------------------------------------


def _record_count(request: Request) -> int | None:
    raw = request.query_params.get("recordCount")
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise invalid_param("recordCount") from None
    if value < 1:
        raise invalid_param("recordCount")
    return value


def _new_token(emu: Emulator, state: dict[str, Any]) -> str:
    now = emu.clock.now()
    if len(emu.sync_tokens) > 20000:
        ttl = emu.config.sync_token_ttl
        for tok in [t for t, s in emu.sync_tokens.items() if s.get("issued", now) + ttl < now]:
            del emu.sync_tokens[tok]
    token = "MS" + secrets.token_urlsafe(30)
    emu.sync_tokens[token] = {**state, "kind": SYNC_KIND, "issued": now}
    return token


def _msg_333() -> ApiError:
    return rc_error(400, "MSG-333", MSG_333)


def _fsync(request: Request, emu: Emulator, ext: Extension, record_count: int | None,
           now: float) -> tuple[dict[str, Any], list[dict[str, Any]], bool]:
    """A full sync: the frame's live messages (newest ``record_count`` of them), the state
    its token will carry, and whether older records exist."""
    f = _filters(request)
    start, end, _ = _window(request, now, emu.config.fsync_default_window)
    msgs = _select(emu, emu.store.messages_of(ext.id, start, min(end, now)), {"Alive"}, f,
                   set(), None)
    if f["distinct"]:
        msgs = _distinct(msgs)
    older = False
    if record_count is not None and len(msgs) > record_count:
        msgs, older = msgs[:record_count], True
    frame_start = msgs[-1].creation_time if older else start
    state = {"extension_id": ext.id, "sync_time": now, "frame_start": frame_start,
             "types": f["types"], "directions": f["directions"],
             "conversation_id": f["conversation_id"], "distinct": f["distinct"]}
    records = [render_message(emu, m) for m in msgs]
    return state, records, older


def _isync(request: Request, emu: Emulator, ext: Extension, record_count: int | None,
           now: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An incremental sync from a token: what changed since it (deleted ones as ids),
    plus the older records ``dateFrom``/``recordCount`` add to the frame, and the new state."""
    q = request.query_params
    token = q.get("syncToken")
    if not token:
        raise missing_param("syncToken")
    old = emu.sync_tokens.get(token)
    if (old is None or old.get("kind") != SYNC_KIND or old.get("extension_id") != ext.id
            or old["issued"] + emu.config.sync_token_ttl < now):
        raise _msg_333()
    f = {k: old[k] for k in ("types", "directions", "conversation_id", "distinct")}
    since = old["sync_time"] - SYNC_OVERLAP
    everything = [m for m in live(emu, emu.store.messages_of(ext.id, _FAR_PAST, now))
                  if m.visible_at <= now]
    # Appearing in the store (after message_store_lag) counts as a change.
    changed = [m for m in everything if max(m.last_modified_time, m.visible_at) > since
               and _matches(m, f)]
    # Optional frame extension: dateFrom reaches further back, recordCount adds that
    # many older records before the current frame.
    frame_start = old["frame_start"]
    extra: list[Message] = []
    if q.get("dateFrom"):
        date_from = parse_date(q["dateFrom"], "dateFrom")
        if date_from < frame_start:
            extra += [m for m in emu.store.messages_of(ext.id, date_from, frame_start)
                      if m.creation_time < frame_start and m.availability == "Alive"
                      and m.visible_at <= now
                      and _matches(m, f)]
            frame_start = date_from
    if record_count is not None:
        before = [m for m in emu.store.messages_of(ext.id, _FAR_PAST, frame_start)
                  if m.creation_time < frame_start and m.availability == "Alive"
                  and m.visible_at <= now
                  and _matches(m, f)][:record_count]
        if before:
            extra += before
            frame_start = min(frame_start, before[-1].creation_time)
    seen: set[int] = set()
    msgs = []
    for m in sorted(changed + extra, key=lambda m: (m.creation_time, m.id), reverse=True):
        if m.id not in seen:
            seen.add(m.id)
            msgs.append(m)
    state = {**old, "sync_time": now, "frame_start": frame_start}
    state.pop("kind", None)
    state.pop("issued", None)
    records = [render_message(emu, m) if m.availability == "Alive" else render_deleted(m)
               for m in msgs]
    return state, records


async def message_sync(request: Request) -> Response:
    emu = emulator_of(request)
    caller = emu.api_call(request, "Light", scope="ReadMessages")
    p = request.path_params
    ext = emu.extension(caller, p["accountId"], p["extensionId"])
    q = request.query_params
    sync_type = q.get("syncType") or ("ISync" if q.get("syncToken") else "FSync")
    if sync_type not in SYNC_TYPES:
        raise invalid_param("syncType")
    record_count = _record_count(request)
    now = emu.clock.now()
    uri = emu.ext_uri(ext.id, "/message-sync")
    query = _base_query(request)
    if query:
        uri += "?" + urlencode(query)

    if sync_type == "FSync":
        state, records, older = _fsync(request, emu, ext, record_count, now)
    else:
        state, records = _isync(request, emu, ext, record_count, now)
        older = False
    sync_info = {"syncType": sync_type, "syncToken": _new_token(emu, state),
                 "syncTime": iso(now), "olderRecordsExist": older}
    return json_response({"uri": uri, "records": records, "syncInfo": sync_info})


def routes() -> list[BaseRoute]:
    base = "/restapi/v1.0/account/{accountId}/extension/{extensionId}"
    return [
        Route(base + "/message-store", list_messages, methods=["GET"]),
        Route(base + "/message-store/{messageId}", get_message, methods=["GET"]),
        Route(base + "/message-store/{messageId}", put_message, methods=["PUT"]),
        Route(base + "/message-store/{messageId}", delete_message, methods=["DELETE"]),
        Route(base + "/message-sync", message_sync, methods=["GET"]),
    ]


__all__ = ["delete_one", "routes"]
