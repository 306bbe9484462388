"""The WebSocket gateway's endpoints: ``POST /restapi/oauth/wstoken`` and the socket ``/ws``.

One socket runs three tasks: a reader (Heartbeat echo, tunnelled ``ClientRequest``), a writer
(everything goes through the connection's queue, so a *stall* fault holds every frame) and a
watchdog (idle/absolute timeouts on the emulator's clock, a revoked OAuth session). Session
state, subscriptions and events are in ``wsgateway.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from rcfs.emulator.core import Emulator, emulator_of, json_response
from rcfs.emulator.wsgateway import (
    Connection,
    Subscription,
    WsGateway,
    WsSession,
    error_frame,
    frame,
)

WATCH_INTERVAL = 0.2
DETAILS_GAP = 0.05  # replay after ConnectionDetails in later writes (docs/ringcentral.md §12.11)


async def wstoken(request: Request) -> Response:
    emu = emulator_of(request)
    caller = emu.api_call(request, "Auth", scope="WebSocket")
    tok = emu.ws.issue_token(caller.session)
    base = emu.platform_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return json_response({"ws_access_token": tok.value, "uri": f"{base}/ws",
                          "expires_in": emu.config.ws_token_ttl})


def _transport_abort(websocket: WebSocket) -> Any:
    """A callable that resets the TCP connection (uvicorn's protocol owns the transport)."""
    owner = getattr(getattr(websocket, "_send", None), "__self__", None)
    transport = getattr(owner, "transport", None)
    return None if transport is None else transport.abort


async def ws_endpoint(websocket: WebSocket) -> None:
    emu: Emulator = websocket.app.state.emu
    emu.tick()
    gw = emu.ws
    token = websocket.query_params.get("access_token")
    auth = websocket.headers.get("authorization", "")
    if not token and auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    await websocket.accept()
    if websocket.app.state.origin != "platform" or not token:
        await websocket.close(4400)
        return
    oauth = gw.check_token(token)
    if oauth is None:
        await websocket.send_text(error_frame("OAU-213", "Token not found", 401))
        await websocket.close(4401)
        return
    if gw.live_connections(oauth) >= emu.config.ws_max_connections:
        await websocket.send_text(error_frame(
            "WSG-1002", "Maximum number of connections per session exceeded", 429))
        await websocket.close(4429)
        return
    conn = gw.new_connection()
    conn.abort = _transport_abort(websocket)
    try:
        session, recovery, replay = gw.open_session(oauth, conn,
                                                    websocket.query_params.get("wsc"))
    except ValueError:
        gw.conns.pop(conn.id, None)
        await websocket.send_text(error_frame(
            "WSG-400", "Malformed WebSocket session context token"))
        await websocket.close(4400)
        return
    first = [gw.connection_details(session, recovery), *replay]
    tasks = [asyncio.create_task(_reader(websocket, gw, session, conn)),
             asyncio.create_task(_writer(websocket, conn, first)),
             asyncio.create_task(_watchdog(websocket, gw, session, conn))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        gw.detach(session, conn)
        try:
            await websocket.close(1000)
        except (RuntimeError, OSError, WebSocketDisconnect):
            pass


async def _writer(websocket: WebSocket, conn: Connection, first: list[str]) -> None:
    loop = asyncio.get_running_loop()
    pending: list[str | None] = list(first)
    while True:
        item = pending.pop(0) if pending else await conn.queue.get()
        if item is None:
            return
        while loop.time() < conn.stalled_until:
            await asyncio.sleep(0.05)
        await websocket.send_text(item)
        if first and item is first[0] and len(first) > 1:
            await asyncio.sleep(DETAILS_GAP)


async def _reader(websocket: WebSocket, gw: WsGateway, session: WsSession,
                  conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    requests: set[asyncio.Task[None]] = set()
    try:
        while True:
            msg = await websocket.receive()
            if msg["type"] == "websocket.disconnect":
                return
            if loop.time() < conn.stalled_until:
                continue  # a stalled gateway reads nothing
            text = msg.get("text")
            if text is None:
                text = (msg.get("bytes") or b"").decode("utf-8", "replace")
            conn.last_inbound = gw.emu.clock.now()
            task = _handle(text, gw, session, conn)
            if task is not None:
                requests.add(task)
                task.add_done_callback(requests.discard)
    finally:
        for task in list(requests):
            task.cancel()


def _handle(text: str, gw: WsGateway, session: WsSession,
            conn: Connection) -> asyncio.Task[None] | None:
    try:
        parsed = json.loads(text)
        meta = parsed[0]
        kind = meta["type"]
        body = parsed[1] if len(parsed) > 1 else None
    except (ValueError, LookupError, TypeError):
        conn.queue.put_nowait(error_frame("WSG-400", "Malformed message"))
        return None
    if kind == "Heartbeat":
        gw.stats["heartbeats"] += 1
        conn.queue.put_nowait(frame({"type": "Heartbeat", "messageId": meta.get("messageId"),
                                     "status": 200}))
        return None
    if kind == "ClientRequest":
        if conn.active_requests >= gw.emu.config.ws_max_active_requests:
            _reply(conn, meta, 429, {"errorCode": "WSG-429",
                                     "message": "Too many active requests"})
            return None
        return asyncio.create_task(_client_request(gw, session, conn, meta, body))
    conn.queue.put_nowait(error_frame("WSG-400", f"Unsupported message type {kind}"))
    return None


def _reply(conn: Connection, meta: dict[str, Any], status: int, body: Any,
           headers: dict[str, str] | None = None) -> None:
    head = {"Content-Type": "application/json;charset=utf-8",
            "RCRequestId": str(uuid.uuid4()), "RoutingKey": "SJC12P01"}
    names = {k.lower(): k for k in head}
    for key, value in (headers or {}).items():
        if key.lower() != "content-length":
            head.pop(names.get(key.lower(), key), None)
            head[key] = value
    conn.queue.put_nowait(frame({"type": "ClientRequest", "messageId": meta.get("messageId"),
                                 "status": status, "headers": head}, body))


async def _client_request(gw: WsGateway, session: WsSession, conn: Connection,
                          meta: dict[str, Any], body: Any) -> None:
    conn.active_requests += 1
    try:
        method = str(meta.get("method", "GET")).upper()
        path = str(meta.get("path", "")).split("?")[0]
        gw.stats["requests"] += 1
        if path.rstrip("/").startswith("/restapi/v1.0/subscription"):
            status, payload = _subscription(gw, session, method, path, body)
            _reply(conn, meta, status, payload)
            return
        status, headers, payload = await _dispatch(gw, session, method, path,
                                                   meta.get("query") or {}, body)
        _reply(conn, meta, status, payload, headers)
    finally:
        conn.active_requests -= 1


def _err(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"errorCode": code, "message": message,
                    "errors": [{"errorCode": code, "message": message}]}


def _subscription(gw: WsGateway, session: WsSession, method: str, path: str,
                  body: Any) -> tuple[int, Any]:
    """Subscriptions belong to the WS session: one per session, a second POST replaces it."""
    emu = gw.emu
    group = {"GET": "Light"}.get(method, "Medium")
    entry = {"seq": len(emu.request_log), "time": emu.clock.now(), "origin": "ws",
             "method": method, "path": path, "query": "", "range": None, "status": None,
             "group": group, "bytes": 0, "authorized": True}
    emu.request_log.append(entry)
    decision = emu.limiter.check(session.oauth.app.client_id, str(session.oauth.owner_id),
                                 group, emu.clock.now())
    if not decision.allowed:
        entry["status"] = 429
        return _err(429, "CMN-301", "Request rate exceeded")
    status, payload = _subscription_call(gw, session, method, path, body)
    entry["status"] = status
    return status, payload


def _subscription_call(gw: WsGateway, session: WsSession, method: str, path: str,
                       body: Any) -> tuple[int, Any]:
    sub = session.subscription
    tail = path.rstrip("/").removeprefix("/restapi/v1.0/subscription").strip("/")
    if tail and (sub is None or tail != sub.id):
        return _err(404, "SUB-100", "Resource for parameter [subscriptionId] is not found")
    if method == "GET":
        if sub is None:
            return 200, {"records": []}
        return 200, gw.subscription_body(sub) if tail else {"records": [
            gw.subscription_body(sub)]}
    if method == "DELETE" and tail:
        session.subscription = None
        return 204, None
    if method not in ("POST", "PUT") or (method == "POST") == bool(tail):
        return _err(405, "CMN-405", "Method not allowed")
    if not isinstance(body, dict):
        return _err(400, "CMN-103", "JSON can't be parsed")
    mode = body.get("deliveryMode") or ({"transportType": "WebSocket"} if tail else {})
    if not isinstance(mode, dict) or mode.get("transportType") != "WebSocket":
        return _err(400, "SUB-522", "Unsupported transport type for this connection")
    try:
        filters = gw.parse_filters(session, body.get("eventFilters"))
    except PermissionError as exc:
        return _err(403, str(exc), "Subscription to events of another extension or "
                    "account is not allowed")
    except ValueError as exc:
        return _err(400, "SUB-521", f"Event filter is not valid: {exc}")
    scopes = session.oauth.app.scopes.split()
    for flt in filters:
        need = "CallControl" if flt.kind == "telephony/sessions" else "ReadMessages"
        if need not in scopes:
            return _err(403, "CMN-401", f"In order to call this API endpoint, application "
                        f"needs to have [{need}] permission")
    if method == "PUT" and sub is not None:
        sub.filters = filters
    else:
        sub = Subscription(str(uuid.uuid4()), filters, gw.emu.clock.now())
        session.subscription = sub
    return 200, gw.subscription_body(sub)


def _access_token(gw: WsGateway, session: WsSession) -> str | None:
    now = gw.emu.clock.now()
    live = [t for t in gw.emu.tokens.access.values()
            if t.session is session.oauth and t.superseded_at is None and t.expires_at > now]
    return max(live, key=lambda t: t.expires_at).value if live else None


async def _dispatch(gw: WsGateway, session: WsSession, method: str, path: str,
                    query: dict[str, Any], body: Any) -> tuple[int, dict[str, str], Any]:
    """Any other REST call, run through the platform app as if sent over HTTP."""
    token = _access_token(gw, session)
    if token is None or gw.api_app is None:
        status, error = _err(401, "OAU-213", "Token not found")
        return status, {}, error
    raw = b"" if body in (None, "") else json.dumps(body).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": urlencode(query, doseq=True).encode(), "root_path": "",
             "headers": [(b"authorization", f"Bearer {token}".encode()),
                         (b"content-type", b"application/json"),
                         (b"content-length", str(len(raw)).encode())],
             "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 0)}
    sent = False
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await gw.api_app(scope, receive, send)
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in start.get("headers", [])}
    data = b"".join(chunks)
    try:
        payload: Any = json.loads(data) if data else None
    except ValueError:
        payload = data.decode("utf-8", "replace")
    return int(start.get("status", 500)), headers, payload


async def _watchdog(websocket: WebSocket, gw: WsGateway, session: WsSession,
                    conn: Connection) -> None:
    """End the connection on the documented timeouts, or when the OAuth session ends."""
    cfg = gw.emu.config
    while not conn.closing:
        await asyncio.sleep(WATCH_INTERVAL)
        gw.emu.tick()  # timed changes (a fax sent, a text delivered) are pushed when due
        now = gw.emu.clock.now()
        if session.oauth.revoked:
            text = error_frame("OAU-213", "Token not found", 401)
        elif _access_token(gw, session) is None:
            # The socket belongs to the OAuth session: it ends when the session's access
            # token expires without a refresh.
            text = error_frame("OAU-128", "Access token expired", 401)
        elif now - conn.last_inbound >= cfg.ws_idle_timeout:
            text = error_frame("WSG-902", "Idle timeout expired")
        elif now - conn.created >= cfg.ws_absolute_timeout:
            text = error_frame("WSG-903", "Absolute timeout expired")
        else:
            continue
        try:
            await websocket.send_text(text)
        except (RuntimeError, OSError, WebSocketDisconnect):
            pass
        return


# -- admin faults -----------------------------------------------------------------------------

def fault(gw: WsGateway, action: str, params: dict[str, Any]) -> dict[str, Any]:
    """``POST /_emulator/ws``: drop, stall, refuse_recovery, expire_token, malformed."""
    conns = list(gw.conns.values())
    if action == "drop":
        for conn in conns:
            if conn.abort is not None:
                conn.abort()
            else:
                conn.queue.put_nowait(None)
        return {"dropped": len(conns)}
    if action == "stall":
        until = asyncio.get_running_loop().time() + float(params.get("seconds", 30))
        for conn in conns:
            conn.stalled_until = until
        return {"stalled": len(conns)}
    if action == "unstall":
        for conn in conns:
            conn.stalled_until = 0.0
        return {"unstalled": len(conns)}
    if action == "refuse_recovery":
        count = int(params.get("count", 1))
        gw.refuse_recoveries.extend([str(params.get("code", "WSG-1005"))] * count)
        return {"refusing": len(gw.refuse_recoveries)}
    if action == "expire_token":
        return {"expired": gw.expire_tokens()}
    if action == "malformed":
        for conn in conns:
            conn.queue.put_nowait('[{"type":"ServerNotification","messageId":')
        return {"sent": len(conns)}
    raise ValueError(f"unknown action {action!r}")


async def admin_ws(request: Request) -> Response:
    emu = emulator_of(request)
    if request.method == "POST":
        raw = await request.body()
        try:
            body = json.loads(raw or b"{}")
            result = fault(emu.ws, str(body.get("action")), body)
        except (ValueError, TypeError, AttributeError) as exc:
            return json_response({"errorCode": "CMN-101", "message": str(exc)}, 400)
        return json_response(result)
    return json_response({**emu.ws.state(), "time": time.time()})


def routes() -> list[BaseRoute]:
    return [
        Route("/restapi/oauth/wstoken", wstoken, methods=["POST"]),
        WebSocketRoute("/ws", ws_endpoint),
    ]


def admin_routes() -> list[BaseRoute]:
    return [Route("/_emulator/ws", admin_ws, methods=["GET", "POST"])]
