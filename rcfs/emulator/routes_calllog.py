"""Call log, call-log sync and recording metadata (docs/ringcentral.md §5.3-5.4,
§13 G1-G9, D2-D4).

Every route here is in the Heavy group: listing recordings is what costs rcfs its budget, so
the emulator must charge it like RingCentral does. Calls become visible only once the
emulated clock passes ``CallRecord.visible_at`` (the 15-30 s call-log lag, G5).

Choices not settled by any source, marked (I):
* ``phoneNumber`` together with ``extensionNumber`` -> 400 CMN-101 on ``phoneNumber``.
* ``sessionId`` combined with a filter parameter -> 400 CLG-110.
* Account-level call-log-sync requires an admin, like the company call log (403 CMN-408).
* call-log-sync history is capped to the last 30 days; FSync ``dateFrom`` defaults to that.
* ISync ``recordCount`` adds records older than the oldest one any sync of that chain has
  delivered ("grows the frame back"), newest first.
* A recording of another extension's call reads as 404 CMN-102 for a non-admin.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from rcfs.emulator.core import (
    Caller,
    Emulator,
    emulator_of,
    enum_param,
    int_param,
    iso,
    json_response,
    parse_date,
)
from rcfs.emulator.errors import ApiError, invalid_param, missing_param, not_found, rc_error
from rcfs.emulator.origin import content_uri
from rcfs.emulator.paging import page_of
from rcfs.emulator.store import CallRecord, Extension, Recording, Store

DAY = 86400.0
SYNC_HISTORY = 30 * DAY  # call-log-sync only reaches this far back (docs/ringcentral.md §5.4)
SYNC_MAX = 250
SYNC_KIND = "call-log-sync"
MISSED_RESULTS = frozenset({"Missed", "Voicemail", "No Answer", "Hang Up", "Busy"})
BLOCKED_RESULTS = frozenset({"Blocked", "Call Blocked", "Rejected"})
FILTER_PARAMS = ("direction", "type", "transport", "extensionNumber", "phoneNumber",
                 "recordingType", "withRecording", "telephonySessionId")


# -- rendering -----------------------------------------------------------------------------


def media_base(emu: Emulator) -> str:
    """Host of recording/greeting ``contentUri`` (A3 switch), never a host that would 404."""
    if emu.config.content_host == "platform" and not emu.config.recording_content_on_platform:
        return emu.media_url
    return emu.content_base()


def recording_content_uri(emu: Emulator, rec_id: str) -> str:
    acc = emu.store.account_id
    path = f"/restapi/v1.0/account/{acc}/recording/{rec_id}/content"
    rec = emu.store.recordings.get(rec_id)
    if rec is None:
        return media_base(emu) + path
    return content_uri(emu, media_base(emu), path, rec.blob)


def render_recording_ref(emu: Emulator, rec: Recording) -> dict[str, Any]:
    """The ``recording`` object of a call-log record (G4)."""
    return {
        "uri": emu.account_uri(f"/recording/{rec.id}"),
        "id": rec.id,
        "type": rec.type,
        "contentUri": recording_content_uri(emu, rec.id),
    }


def _party(party: dict[str, Any]) -> dict[str, Any]:
    """A from/to object: only the documented keys, ``extensionId`` as a string."""
    out: dict[str, Any] = {}
    for key in ("phoneNumber", "extensionNumber", "extensionId", "name", "location", "device"):
        value = party.get(key)
        if value is None or value == "":
            continue
        out[key] = str(value) if key == "extensionId" else value
    return out


def _transport(call: CallRecord) -> str:
    return "VoIP" if call.action in ("VoIP Call", "RingOut PC") else "PSTN"


def _leg_type(call: CallRecord) -> str:
    """A ``legType`` from spec46's enum that fits the call."""
    internal = not call.from_.get("phoneNumber") or not call.to.get("phoneNumber")
    if call.type == "Fax":
        return "FaxSent" if call.direction == "Outbound" else "Accept"
    if internal:
        return "ExtensionToExtension"
    if call.direction == "Inbound":
        return "Accept"
    if call.action == "RingOut Web":
        return "RingOutWebToCaller"
    return "SipToPstnMetered" if _transport(call) == "VoIP" else "PstnToSip"


def render_call(emu: Emulator, call: CallRecord, *, detailed: bool, company: bool,
                deleted: bool = False) -> dict[str, Any]:
    """A call-log record as RingCentral returns it (docs/ringcentral.md §5.3)."""
    view = "Detailed" if detailed else "Simple"
    if company:
        uri = emu.account_uri(f"/call-log/{call.id}?view={view}")
    else:
        uri = emu.ext_uri(call.extension_id, f"/call-log/{call.id}?view={view}")
    data: dict[str, Any] = {
        "uri": uri,
        "id": call.id,
        "sessionId": call.session_id,
        "telephonySessionId": call.telephony_session_id,
        "startTime": iso(call.start_time),
        "duration": call.duration,
        "type": call.type,
        "direction": call.direction,
        "action": call.action,
        "result": call.result,
        "to": _party(call.to),
        "from": _party(call.from_),
    }
    ext_ref = {"uri": emu.ext_uri(call.extension_id), "id": call.extension_id}
    if company:
        data["extension"] = ext_ref
    if call.recording is not None:
        data["recording"] = render_recording_ref(emu, call.recording)
    elif call.short_recording:
        data["shortRecording"] = True
    if call.message_id is not None:
        msg = emu.store.messages.get(call.message_id)
        mtype = msg.type if msg is not None else ("Fax" if call.type == "Fax" else "VoiceMail")
        data["message"] = {
            "uri": emu.ext_uri(call.extension_id, f"/message-store/{call.message_id}"),
            "id": str(call.message_id),
            "type": mtype,
        }
    if deleted:
        data["deleted"] = True
    if detailed:
        data["transport"] = _transport(call)
        data["lastModifiedTime"] = iso(call.last_modified_time)
        data["billing"] = {"costIncluded": 0.0, "costPurchased": 0.0}
        leg: dict[str, Any] = {
            "startTime": data["startTime"],
            "duration": call.duration,
            "type": call.type,
            "direction": call.direction,
            "action": call.action,
            "result": call.result,
            "to": data["to"],
            "from": data["from"],
            "transport": data["transport"],
            "legType": _leg_type(call),
            "extension": ext_ref,
            "master": True,
        }
        if "recording" in data:
            leg["recording"] = data["recording"]
        if "message" in data:
            leg["message"] = data["message"]
        data["legs"] = [leg]
    return data


# -- query helpers -------------------------------------------------------------------------


def bool_param(request: Request, name: str, default: bool | None) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    low = raw.lower()
    if low == "true":
        return True
    if low == "false":
        return False
    raise invalid_param(name)


def one_of(request: Request, name: str, allowed: tuple[str, ...], default: str | None
           ) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw not in allowed:
        raise invalid_param(name)
    return raw


def _digits(number: str) -> str:
    return "".join(ch for ch in number if ch.isdigit())


def _matches_phone(call: CallRecord, wanted: str) -> bool:
    want = _digits(wanted)
    if not want:
        return False
    for party in (call.from_, call.to):
        have = _digits(str(party.get("phoneNumber") or ""))
        if have and (have == want or have.endswith(want) or want.endswith(have)):
            return True
    return False


def _call_ext_number(store: Store, call: CallRecord) -> str | None:
    ext = store.extensions.get(call.extension_id)
    return ext.number if ext is not None else None


def _company_caller(emu: Emulator, caller: Caller, permission: str) -> None:
    """Company-wide call data needs an admin role (user permission ``permission``)."""
    if not caller.is_admin:
        raise rc_error(
            403, "CMN-408",
            f"In order to call this API endpoint, user needs to have [{permission}] permission "
            "granted", permissionName=permission,
        )


def _visible(emu: Emulator, call: CallRecord, now: float) -> bool:
    return now >= call.visible_at


def _ext_for_calls(emu: Emulator, caller: Caller, account_id: str, ext_id: str) -> Extension:
    """``emu.extension`` with the call-log wording of CMN-419 (D5)."""
    try:
        return emu.extension(caller, account_id, ext_id)
    except ApiError as exc:
        if exc.body.get("errorCode") == "CMN-419":
            raise rc_error(
                403, "CMN-419",
                "In order to call this API endpoint for another extension, user needs to have "
                "[ReadCallLog] permission granted with extended scope",
            ) from None
        raise


# -- call log ------------------------------------------------------------------------------


def _list_calls(request: Request, emu: Emulator, ext: Extension | None) -> Response:
    """Shared body of the user and company call-log listings (G1-G5)."""
    q = request.query_params
    now = emu.clock.now()
    view = one_of(request, "view", ("Simple", "Detailed"), "Simple")
    detailed = view == "Detailed"
    recording_type = one_of(request, "recordingType", ("Automatic", "OnDemand", "All"), None)
    with_recording = bool_param(request, "withRecording", None)
    show_blocked = bool_param(request, "showBlocked", True)
    show_deleted = bool_param(request, "showDeleted", False)
    types = enum_param(request, "type", ("Voice", "Fax"))
    directions = enum_param(request, "direction", ("Inbound", "Outbound"))
    transports = enum_param(request, "transport", ("PSTN", "VoIP"))
    ext_number = q.get("extensionNumber") or None
    phone = q.get("phoneNumber") or None
    session_id = q.get("sessionId") or None
    tel_session = q.get("telephonySessionId") or None
    if ext_number and phone:
        raise invalid_param("phoneNumber")
    if session_id and any(q.get(p) for p in FILTER_PARAMS):
        raise rc_error(400, "CLG-110",
                       "Parameter [sessionId] cannot be combined with other filter parameters",
                       parameterName="sessionId")
    page = int_param(request, "page", 1)
    per_page = int_param(request, "perPage", 100, hi=1000, clamp=True)

    date_to = parse_date(q["dateTo"], "dateTo") if q.get("dateTo") else now
    extra: dict[str, str] = {"view": view or "Simple", "showBlocked": "true"}
    if q.get("dateFrom"):
        date_from = parse_date(q["dateFrom"], "dateFrom")
    else:
        # Default: the last 24 h, echoed truncated to the minute like RingCentral (G1).
        date_from = (date_to - DAY) // 60 * 60
        extra["dateFrom"] = iso(date_from)
    if with_recording is not None:
        extra["withRecording"] = "true" if with_recording else "false"

    if recording_type is None and with_recording:
        recording_type = "All"  # deprecated flag, ignored when recordingType is given (G1)

    def keep(call: CallRecord) -> bool:
        if not _visible(emu, call, now):
            return False
        if ext is not None and call.extension_id != ext.id:
            return False
        if call.deleted and not show_deleted:
            return False
        if not show_blocked and call.result in BLOCKED_RESULTS:
            return False
        if recording_type is not None:
            if call.recording is None:
                return False
            if recording_type != "All" and call.recording.type != recording_type:
                return False
        if types and call.type not in types:
            return False
        if directions and call.direction not in directions:
            return False
        if transports and _transport(call) not in transports:
            return False
        if ext_number is not None and _call_ext_number(emu.store, call) != ext_number:
            return False
        if phone is not None and not _matches_phone(call, phone):
            return False
        if session_id is not None and call.session_id != session_id:
            return False
        return tel_session is None or call.telephony_session_id == tel_session

    # dateTo is inclusive of a call that started exactly then.
    calls = emu.store.calls_between(date_from, date_to + 0.001, keep)
    return _calls_page(request, emu, ext, calls, page, per_page, detailed, extra)


def _calls_page(request: Request, emu: Emulator, ext: Extension | None,
                calls: list[CallRecord], page: int, per_page: int, detailed: bool,
                extra: dict[str, str]) -> Response:
    """One page of a call-log listing: only that page's calls are rendered; the others
    stay ``None`` placeholders, there for ``page_of`` to slice and to see a next page."""
    company = ext is None
    base = emu.account_uri("/call-log") if ext is None else emu.ext_uri(ext.id, "/call-log")
    start = (page - 1) * per_page
    window = calls[start:start + per_page]
    rendered: list[Any] = [None] * len(calls)
    rendered[start:start + len(window)] = [
        render_call(emu, c, detailed=detailed, company=company, deleted=c.deleted)
        for c in window
    ]
    body = page_of(request, base, rendered, page, per_page, totals=False, extra=extra)
    return json_response(body)


def _scope(request: Request, emu: Emulator, company_permission: str) -> Extension | None:
    """Authenticate a call-log route (Heavy) and say whose calls it is about: the path's
    extension, or None for the company-wide log (admins with ``company_permission``)."""
    caller = emu.api_call(request, "Heavy", scope="ReadCallLog")
    p = request.path_params
    if "extensionId" in p:
        return _ext_for_calls(emu, caller, p["accountId"], p["extensionId"])
    emu.account(caller, p["accountId"])
    _company_caller(emu, caller, company_permission)
    return None


async def call_log(request: Request) -> Response:
    emu = emulator_of(request)
    return _list_calls(request, emu, _scope(request, emu, "FullCompanyCallLog"))


def _one_call(request: Request, emu: Emulator, ext: Extension | None) -> Response:
    """GET …/call-log/{callRecordId}: the record a listing's ``uri`` points at."""
    view = one_of(request, "view", ("Simple", "Detailed"), "Simple")
    call = emu.store.calls.get(request.path_params["callRecordId"])
    now = emu.clock.now()
    if (call is None or not _visible(emu, call, now) or call.deleted
            or (ext is not None and call.extension_id != ext.id)):
        raise not_found("callRecordId")
    return json_response(render_call(emu, call, detailed=view == "Detailed",
                                     company=ext is None))


async def call_record(request: Request) -> Response:
    emu = emulator_of(request)
    return _one_call(request, emu, _scope(request, emu, "FullCompanyCallLog"))


# -- call-log sync -------------------------------------------------------------------------


def _change_time(call: CallRecord) -> float:
    """When a call last changed as a sync client sees it: appearing counts as a change."""
    return max(call.last_modified_time, call.visible_at)


def _sync_keep(emu: Emulator, state: dict[str, Any], now: float
               ) -> Callable[[CallRecord], bool]:
    ext_id = state["extension_id"]
    missed_only = state["missed_only"]

    def keep(call: CallRecord) -> bool:
        if not _visible(emu, call, now):
            return False
        if ext_id is not None and call.extension_id != ext_id:
            return False
        return not (missed_only and call.result not in MISSED_RESULTS)
    return keep


def _new_token(emu: Emulator, state: dict[str, Any]) -> str:
    token = secrets.token_urlsafe(18)
    emu.sync_tokens[token] = state
    return token


def _sync_response(request: Request, emu: Emulator, state: dict[str, Any], base: str,
                   records: list[CallRecord], sync_type: str) -> Response:
    company = state["extension_id"] is None
    out = [render_call(emu, c, detailed=state["detailed"], company=company,
                       deleted=c.deleted) for c in records]
    token = _new_token(emu, state)
    query = urlencode(list(request.query_params.multi_items()))
    return json_response({
        "uri": f"{base}?{query}" if query else base,
        "records": out,
        "syncInfo": {"syncType": sync_type, "syncToken": token,
                     "syncTime": iso(state["sync_time"])},
    })


def _record_count(request: Request, required: bool) -> int | None:
    raw = request.query_params.get("recordCount")
    if raw is None or raw == "":
        if required:
            raise invalid_param("recordCount")
        return None
    try:
        value = int(raw)
    except ValueError:
        raise invalid_param("recordCount") from None
    if value < 1 or value > SYNC_MAX:
        raise invalid_param("recordCount")
    return value


def _sync(request: Request, emu: Emulator, ext: Extension | None) -> Response:
    """FSync / ISync of the call log (G7-G9)."""
    q = request.query_params
    now = emu.clock.now()
    sync_type = one_of(request, "syncType", ("FSync", "ISync"), "FSync")
    base = (emu.account_uri("/call-log-sync") if ext is None
            else emu.ext_uri(ext.id, "/call-log-sync"))
    floor = now - SYNC_HISTORY
    if sync_type == "FSync":
        count = _record_count(request, required=True)
        assert count is not None
        view = one_of(request, "view", ("Simple", "Detailed"), "Simple")
        groups = enum_param(request, "statusGroup", ("Missed", "All"))
        date_from = parse_date(q["dateFrom"], "dateFrom") if q.get("dateFrom") else floor
        date_from = max(date_from, floor)
        state: dict[str, Any] = {
            "kind": SYNC_KIND, "extension_id": ext.id if ext else None,
            "account_id": emu.store.account_id, "sync_time": now, "issued": now,
            "detailed": view == "Detailed", "missed_only": bool(groups) and "All" not in groups,
            "n_calls": len(emu.store.calls),
        }
        keep = _sync_keep(emu, state, now)
        calls = emu.store.calls_between(
            date_from, now + 0.001, lambda c: keep(c) and not c.deleted)
        chosen = calls[:count]
        state["frontier"] = chosen[-1].start_time if len(calls) > count else date_from
        return _sync_response(request, emu, state, base, chosen, "FSync")

    token = q.get("syncToken")
    if not token:
        raise missing_param("syncToken")
    old = emu.sync_tokens.get(token)
    if (old is None or old.get("kind") != SYNC_KIND
            or old["extension_id"] != (ext.id if ext else None)
            or now - old["issued"] > emu.config.sync_token_ttl):
        raise rc_error(400, "CLG-104",
                       "Parameter [syncToken] is invalid [Sync token expired, call log was reset]",
                       parameterName="syncToken")
    count = _record_count(request, required=False)
    # Deleted records (``deleted: true``) only with showDeleted=true (docs/ringcentral.md §5.4).
    show_deleted = bool_param(request, "showDeleted", False)
    state = dict(old)
    keep = _sync_keep(emu, state, now)
    since = old["sync_time"]
    fresh = [
        c for i, c in enumerate(emu.store.calls.values())
        if keep(c) and (_change_time(c) > since or i >= old["n_calls"])
        and (show_deleted or not c.deleted)
    ]
    if len(fresh) > SYNC_MAX:
        raise rc_error(
            400, "CMN-101",
            "Parameter [syncToken] is invalid [max sync record number limit is exceeded]",
            parameterName="syncToken")
    fresh.sort(key=lambda c: (c.start_time, c.id), reverse=True)
    records = list(fresh)
    frontier = old["frontier"]
    if count:
        room = min(count, SYNC_MAX - len(records))
        seen = {c.id for c in fresh}
        older = emu.store.calls_between(
            floor, frontier, lambda c: keep(c) and not c.deleted and c.id not in seen)
        added = list(itertools.islice(older, room)) if room > 0 else []
        records.extend(added)
        if added:
            frontier = added[-1].start_time if len(older) > len(added) else floor
    state.update(sync_time=now, issued=now, n_calls=len(emu.store.calls), frontier=frontier)
    return _sync_response(request, emu, state, base, records, "ISync")


async def call_log_sync(request: Request) -> Response:
    emu = emulator_of(request)
    return _sync(request, emu, _scope(request, emu, "ReadCallLog"))


# -- recordings ----------------------------------------------------------------------------


def call_of_recording(store: Store, rec_id: str) -> CallRecord | None:
    """The call a recording belongs to (recordings are account-level resources)."""
    for call in store.calls.values():
        if call.recording is not None and call.recording.id == rec_id:
            return call
    return None


async def get_recording(request: Request) -> Response:
    """GET /account/{accountId}/recording/{recordingId} (G6): no size, only duration."""
    emu = emulator_of(request)
    caller = emu.api_call(request, "Heavy", scope="ReadCallRecording")
    emu.account(caller, request.path_params["accountId"])
    rec_id = request.path_params["recordingId"]
    rec = emu.store.recordings.get(rec_id)
    call = call_of_recording(emu.store, rec_id) if rec is not None else None
    now = emu.clock.now()
    if (rec is None or call is None or not _visible(emu, call, now)
            or (call.extension_id != caller.extension.id and not caller.is_admin)):
        raise not_found("callRecordingId")
    return json_response({
        "id": rec.id,
        "contentUri": recording_content_uri(emu, rec.id),
        "contentType": rec.blob.content_type,
        "duration": rec.duration,
    })


def routes() -> list[BaseRoute]:
    acc = "/restapi/v1.0/account/{accountId}"
    ext = acc + "/extension/{extensionId}"
    return [
        Route(ext + "/call-log", call_log, methods=["GET"]),
        Route(ext + "/call-log/{callRecordId}", call_record, methods=["GET"]),
        Route(ext + "/call-log-sync", call_log_sync, methods=["GET"]),
        Route(acc + "/call-log", call_log, methods=["GET"]),
        Route(acc + "/call-log/{callRecordId}", call_record, methods=["GET"]),
        Route(acc + "/call-log-sync", call_log_sync, methods=["GET"]),
        Route(acc + "/recording/{recordingId}", get_recording, methods=["GET"]),
    ]


__all__ = ["call_of_recording", "recording_content_uri", "render_call", "routes"]
