"""The emulator's own control API under ``/_emulator/`` (on ``admin_url``, outside /restapi).

Tests use it to read the request log and what was sent, to inject faults, to move the clock,
to change settings at run time and to add or delete messages and calls (freshness tests).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from rcfs.emulator import admin_specs
from rcfs.emulator.core import Emulator, emulator_of, iso, json_response
from rcfs.emulator.errors import invalid_param, not_found


async def _json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        import json

        return json.loads(raw)
    except ValueError:
        raise invalid_param("body", "not JSON") from None


async def info(request: Request) -> Response:
    emulator_of(request)
    return json_response(request.app.state.info)


async def requests(request: Request) -> Response:
    emu = emulator_of(request)
    if request.method == "DELETE":
        emu.request_log.clear()
        return json_response({"cleared": True})
    since = int(request.query_params.get("since", "0"))
    return json_response([e for e in emu.request_log if e["seq"] >= since])


async def sent(request: Request) -> Response:
    emu = emulator_of(request)
    return json_response([
        {"kind": s.kind, "extension_id": s.extension_id, "time": iso(s.time),
         "request": s.request, "attachments": s.attachments, "result_id": s.result_id,
         "status": s.status}
        for s in emu.store.sent
    ])


async def faults(request: Request) -> Response:
    emu = emulator_of(request)
    if request.method == "POST":
        body = await _json(request)
        specs = body if isinstance(body, list) else [body]
        try:
            rules = [emu.faults.add(spec) for spec in specs]
        except (ValueError, TypeError) as exc:
            raise invalid_param("kind", str(exc)) from None
        return json_response([r.as_dict() for r in rules])
    if request.method == "DELETE":
        emu.faults.clear()
        return json_response({"cleared": True})
    return json_response([r.as_dict() for r in emu.faults.rules])


async def fault_delete(request: Request) -> Response:
    emu = emulator_of(request)
    if not emu.faults.remove(int(request.path_params["rule"])):
        raise not_found("rule")
    return Response(status_code=204)


async def clock(request: Request) -> Response:
    emu = emulator_of(request)
    if request.method == "POST":
        body = await _json(request)
        emu.clock.advance(float(body.get("advance", 0)))
        emu.tick()
    return json_response({"now": iso(emu.clock.now()), "epoch": emu.clock.now(),
                          "offset": emu.clock.offset})


async def config(request: Request) -> Response:
    emu = emulator_of(request)
    if request.method == "POST":
        body = await _json(request)
        try:
            emu.config.update(body)
        except KeyError as exc:
            raise invalid_param(str(exc.args[0])) from None
    return json_response(emu.config.as_dict())


async def ratelimit_reset(request: Request) -> Response:
    emu = emulator_of(request)
    emu.limiter.reset()
    return json_response({"reset": True})


async def revoke(request: Request) -> Response:
    emu = emulator_of(request)
    body = await _json(request)
    owner = body.get("extension_id")
    n = emu.tokens.revoke_owner(int(owner) if owner is not None else None)
    return json_response({"revoked_sessions": n})


async def sync_invalidate(request: Request) -> Response:
    emu = emulator_of(request)
    n = len(emu.sync_tokens)
    emu.sync_tokens.clear()
    return json_response({"invalidated": n})


async def messages(request: Request) -> Response:
    """Add a message; ``"repeat": N`` adds N of them one ``"step"`` second apart going back
    from ``creation_time`` (default now), e.g. a 10,000-message conversation for benchmarks."""
    emu = emulator_of(request)
    body = await _json(request)
    repeat = int(body.pop("repeat", 1)) if isinstance(body, dict) else 1
    step = float(body.pop("step", 60)) if isinstance(body, dict) else 60.0
    start = emu.clock.now()
    added = []
    try:
        for i in range(max(1, repeat)):
            spec = dict(body)
            if repeat > 1:
                spec.setdefault("creation_time", start)
                spec["creation_time"] = _epoch(spec["creation_time"]) - i * step
            added.append(admin_specs.add_message_from_spec(emu, spec))
    except (KeyError, ValueError, TypeError) as exc:
        raise invalid_param("message", str(exc)) from None
    msg = added[0]
    return json_response({"id": msg.id, "extension_id": msg.extension_id,
                          "attachments": [a.id for a in msg.attachments],
                          "ids": [m.id for m in added]})


def _epoch(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    from rcfs.emulator.core import parse_date

    return parse_date(str(value), "creation_time")


async def message_delete(request: Request) -> Response:
    """Delete as a user would (Alive -> Deleted), or ``?hard=true`` to drop it entirely."""
    emu = emulator_of(request)
    mid = int(request.path_params["mid"])
    msg = emu.store.messages.get(mid)
    if msg is None:
        raise not_found("messageId")
    now = emu.clock.now()
    if request.query_params.get("hard") == "true":
        emu.store.remove_message(mid)
    else:
        msg.availability = "Deleted"
        msg.deleted_at = now
        msg.last_modified_time = now
        emu.store.emit("message_deleted", msg)
    return Response(status_code=204)


async def calls(request: Request) -> Response:
    emu = emulator_of(request)
    body = await _json(request)
    try:
        call = admin_specs.add_call_from_spec(emu, body)
    except (KeyError, ValueError, TypeError) as exc:
        raise invalid_param("call", str(exc)) from None
    return json_response({"id": call.id,
                          "recording_id": call.recording.id if call.recording else None})


async def call_delete(request: Request) -> Response:
    emu = emulator_of(request)
    call = emu.store.calls.get(request.path_params["cid"])
    if call is None:
        raise not_found("callRecordId")
    call.deleted = True
    call.last_modified_time = emu.clock.now()
    return Response(status_code=204)


def _raw(data: bytes, content_type: str) -> Response:
    import hashlib

    return Response(data, media_type=content_type,
                    headers={"X-Sha256": hashlib.sha256(data).hexdigest()})


async def content(request: Request) -> Response:
    """The exact bytes the API serves for an object, without spending any rate budget."""
    emu: Emulator = emulator_of(request)
    kind = request.path_params["kind"]
    ident = request.path_params["ident"]
    if kind == "message":
        mid, _, aid = ident.partition("/")
        found = emu.store.find_attachment(int(mid), int(aid or mid))
        if found is None:
            raise not_found("attachmentId")
        blob = found[1].blob
    elif kind == "recording":
        rec = emu.store.recordings.get(ident)
        if rec is None:
            raise not_found("recordingId")
        blob = rec.blob
    elif kind == "greeting":
        greeting = emu.store.greetings.get(ident)
        if greeting is None:
            raise not_found("greetingId")
        blob = greeting.blob
    elif kind == "report":  # <taskId>/<archive number>
        task_id, _, n = ident.partition("/")
        task = emu.store.reports.get(task_id)
        if task is None or not n.isdigit() or int(n) >= len(task.archives):
            raise not_found("archiveId")
        blob = task.archives[int(n)]
    else:
        raise not_found("kind")
    return _raw(blob.bytes(), blob.content_type)


async def summary(request: Request) -> Response:
    """Counts and ids of the seeded data, so tests need not spend API budget to find them."""
    emu = emulator_of(request)
    store = emu.store
    out: dict[str, Any] = {"account_id": store.account_id, "extensions": []}
    for ext in store.extensions.values():
        msgs = [m for m in store.messages.values() if m.extension_id == ext.id]
        out["extensions"].append({
            "id": ext.id, "number": ext.number, "name": ext.name, "admin": ext.admin,
            "messages": {t: sum(1 for m in msgs if m.type == t)
                         for t in ("VoiceMail", "Fax", "SMS", "Pager")},
            "calls": sum(1 for c in store.calls.values() if c.extension_id == ext.id),
            "recordings": sum(1 for c in store.calls.values()
                              if c.extension_id == ext.id and c.recording),
            "greetings": [g.id for g in store.greetings.values() if g.extension_id == ext.id],
            "oldest": iso(min((m.creation_time for m in msgs), default=0)),
        })
    return json_response(out)


def routes() -> list[BaseRoute]:
    p = "/_emulator"
    return [
        Route(p + "/info", info, methods=["GET"]),
        Route(p + "/summary", summary, methods=["GET"]),
        Route(p + "/requests", requests, methods=["GET", "DELETE"]),
        Route(p + "/sent", sent, methods=["GET"]),
        Route(p + "/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route(p + "/faults/{rule}", fault_delete, methods=["DELETE"]),
        Route(p + "/clock", clock, methods=["GET", "POST"]),
        Route(p + "/config", config, methods=["GET", "POST"]),
        Route(p + "/ratelimit/reset", ratelimit_reset, methods=["POST"]),
        Route(p + "/revoke", revoke, methods=["POST"]),
        Route(p + "/sync/invalidate", sync_invalidate, methods=["POST"]),
        Route(p + "/messages", messages, methods=["POST"]),
        Route(p + "/messages/{mid}", message_delete, methods=["DELETE"]),
        Route(p + "/calls", calls, methods=["POST"]),
        Route(p + "/calls/{cid}", call_delete, methods=["DELETE"]),
        Route(p + "/content/{kind}/{ident:path}", content, methods=["GET"]),
    ]
