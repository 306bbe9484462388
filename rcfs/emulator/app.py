"""ASGI applications: the platform and media origins (same /restapi tree, A1) and the admin API.

``RcMiddleware`` does what RingCentral's gateway does around every call: request ids,
method tunnelling (A6), rate-limit headers, fault injection, and the request log tests read.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rcfs.emulator import (
    admin,
    routes_account,
    routes_calllog,
    routes_content,
    routes_greetings,
    routes_messages,
    routes_oauth,
    routes_reports,
    routes_send,
    routes_ws,
)
from rcfs.emulator.core import Emulator, json_response
from rcfs.emulator.errors import ApiError, agw_404, rc_error
from rcfs.emulator.faults import FaultRule, fault_error


def _error_response(exc: ApiError) -> Response:
    return json_response(exc.body, exc.status, headers=exc.headers)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return _error_response(agw_404())
    if exc.status_code == 405:
        return _error_response(rc_error(405, "CMN-405", "Method not allowed"))
    return _error_response(rc_error(exc.status_code, "CMN-104", str(exc.detail)))


def _textual(content_type: str) -> bool:
    ctype = content_type.split(";")[0].strip().lower()
    return ctype == "application/x-www-form-urlencoded" or ctype.endswith(
        ("/json", "+json"))


class _Recorder:
    """Tees one exchange into a JSON line of ``config.record_exchanges``, which the test
    harness validates against RingCentral's OpenAPI spec (tests/openapi_check.py). Bodies are
    kept only when they are JSON or form data; binary content is recorded as status and
    headers."""

    MAX_REQUEST = 4096
    MAX_RESPONSE = 8 << 20

    def __init__(self, path: str, origin: str, scope: Scope) -> None:
        self.path = path
        self.origin = origin
        self.scope = scope
        headers = Headers(scope=scope)
        auth = headers.get("authorization")
        self.record: dict[str, Any] = {
            "origin": origin,
            "path": scope["path"],
            "query": scope.get("query_string", b"").decode("latin-1"),
            "request_content_type": headers.get("content-type"),
            "request_range": headers.get("range"),
            "request_auth": auth.partition(" ")[0] if auth else None,
        }
        self.keep_request = _textual(headers.get("content-type", ""))
        self.request_body = bytearray()
        self.response_body = bytearray()
        self.keep_response = False
        self.truncated = False

    def receive(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if (message["type"] == "http.request" and self.keep_request
                    and len(self.request_body) < self.MAX_REQUEST):
                room = self.MAX_REQUEST - len(self.request_body)
                self.request_body += message.get("body", b"")[:room]
            return message
        return wrapped

    def send(self, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: dict[str, str] = {}
                for k, v in message.get("headers", []):
                    name = k.decode("latin-1").lower()
                    value = v.decode("latin-1")
                    headers[name] = f"{headers[name]}, {value}" if name in headers else value
                self.record["status"] = message["status"]
                self.record["response_content_type"] = headers.get("content-type")
                self.record["response_headers"] = headers
                self.keep_response = _textual(headers.get("content-type", ""))
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                if self.keep_response and not self.truncated:
                    if len(self.response_body) + len(body) > self.MAX_RESPONSE:
                        self.truncated = True
                        self.response_body.clear()
                    else:
                        self.response_body += body
                if not message.get("more_body", False):
                    self._write()
            await send(message)
        return wrapped

    def _write(self) -> None:
        rec = self.record
        rec["method"] = self.scope["method"]  # after method tunnelling (A6)
        rec["request_body"] = (self.request_body.decode("utf-8", "replace")
                               if self.keep_request else None)
        rec["response_body"] = (self.response_body.decode("utf-8", "replace")
                                if self.keep_response and not self.truncated else None)
        rec["response_truncated"] = self.truncated
        faults = self.scope.get("rc_faults") or []
        rec["faults"] = [rule.kind for rule in faults]
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")


def _server_transport(send: Send) -> asyncio.Transport | None:
    """uvicorn's transport of this connection: its ``send`` is a bound method of the
    request/response cycle, which holds the transport (h11 and httptools alike)."""
    owner = getattr(send, "__self__", None)
    transport = getattr(owner, "transport", None)
    return transport if isinstance(transport, asyncio.Transport) else None


async def _drop_connection(send: Send) -> None:
    """Reset this connection without writing a response (reset_request/reset_response).

    The socket gets ``SO_LINGER`` 0 so that closing it sends a TCP RST, then the transport is
    aborted; once uvicorn has seen the connection lost, an app that returns without a
    response is not answered with a 500. Without a reachable transport (another server) the
    fallback starts a response and raises, which uvicorn turns into a closed socket."""
    transport = _server_transport(send)
    if transport is None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise routes_content.ConnectionDropped("fault: connection dropped")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()
    # abort() schedules connection_lost; let it run so the cycle knows it is disconnected.
    for _ in range(3):
        await asyncio.sleep(0)


async def _drain(receive: Receive) -> None:
    """Read the whole request body (the client finished uploading before the drop)."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


def _with_gateway_headers(message: Message, scope: Scope) -> Message:
    """A response start with the headers RingCentral's gateway adds (request id, routing
    key, server, and the rate-limit headers the route set), unless the handler set them."""
    headers = list(message.get("headers", []))
    names = {k.lower() for k, _ in headers}
    extra = {"RCRequestId": str(uuid.uuid4()), "RoutingKey": "SJC12P01",
             "Server": "nginx"}
    if scope.get("rc_rate_headers"):
        extra.update(scope["rc_rate_headers"])
    for k, v in extra.items():
        if k.lower().encode() not in names:
            headers.append((k.encode(), v.encode()))
    return {**message, "headers": headers}


class RcMiddleware:
    def __init__(self, app: ASGIApp, emu: Emulator, origin: str) -> None:
        self.app = app
        self.emu = emu
        self.origin = origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        emu = self.emu
        emu.tick()
        scope["rc_origin"] = self.origin
        request = Request(scope)
        entry = self._log_entry(scope, request)
        raw_send = send
        if emu.config.record_exchanges:
            recorder = _Recorder(emu.config.record_exchanges, self.origin, scope)
            receive = recorder.receive(receive)
            send = recorder.send(send)
        delay = 0.0
        swallow = False  # reset_response: the handler's answer never reaches the client
        replaced = False  # a status fault the route never reached: its answer is dropped

        async def send_wrapper(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return
            if message["type"] == "http.response.start" and scope.get("rc_status_fault"):
                # The route answered before counting the request (unknown path, bad
                # token, unthrottled endpoint): the fault still fires, with no group.
                rule = scope.pop("rc_status_fault")
                replaced = True
                fault_exc = fault_error(rule.params, {})
                entry["status"] = fault_exc.status
                await _error_response(fault_exc)(scope, receive, emit)
                return
            await emit(message)

        async def emit(message: Message) -> None:
            if message["type"] == "http.response.start":
                if delay:
                    await asyncio.sleep(delay)
                message = _with_gateway_headers(message, scope)
                entry["status"] = message["status"]
                entry["group"] = scope.get("rc_group")
            elif message["type"] == "http.response.body":
                if swallow:
                    return
                entry["bytes"] += len(message.get("body", b""))
            if swallow:
                return
            await send(message)

        try:
            self._method_override(scope, request)
        except ApiError as exc:
            entry["status"] = exc.status
            await _error_response(exc)(scope, receive, send_wrapper)
            return
        entry["method"] = scope["method"]

        fired, delay, swallow, reset = self._take_faults(scope, request)
        if reset is not None:
            entry["fault"] = ",".join(r.kind for r in fired)
            entry["dropped"] = True
            if reset.params.get("read_body", True):
                await _drain(receive)
            await _drop_connection(raw_send)
            return
        if fired:
            entry["fault"] = ",".join(r.kind for r in fired)

        if not swallow:
            await self.app(scope, receive, send_wrapper)
            return
        entry["dropped"] = True
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            await _drop_connection(raw_send)

    def _log_entry(self, scope: Scope, request: Request) -> dict[str, Any]:
        """The request's row in ``emu.request_log`` (``GET /_emulator/requests``), appended
        now and completed as the answer goes out."""
        entry: dict[str, Any] = {
            "seq": len(self.emu.request_log),
            "time": self.emu.clock.now(),
            "origin": self.origin,
            "method": scope["method"],
            "path": scope["path"],
            "query": request.url.query,
            "range": request.headers.get("range"),
            "status": None,
            "group": None,
            "bytes": 0,
            "authorized": "authorization" in request.headers,
        }
        self.emu.request_log.append(entry)
        return entry

    def _take_faults(self, scope: Scope, request: Request
                     ) -> tuple[list[FaultRule], float, bool, FaultRule | None]:
        """The faults this request fires, in order: ``(fired, delay, swallow, reset)``.

        A ``status`` fault ends the list and is answered where the route counts the request
        (``Emulator.throttle``), so it carries the route's real rate-limit group and headers.
        ``revoke`` takes effect now; ``delay`` adds up; ``reset_response`` swallows the
        answer; ``reset_request`` (returned as ``reset``) ends the list and drops the
        connection before any handler runs."""
        fired = self.emu.faults.take(scope["method"], scope["path"], self.origin)
        scope["rc_faults"] = fired
        delay, swallow = 0.0, False
        for rule in fired:
            if rule.kind == "status":
                scope["rc_status_fault"] = rule
                fired = fired[:fired.index(rule) + 1]
                scope["rc_faults"] = fired
                break
            if rule.kind == "revoke":
                auth = request.headers.get("authorization", "")
                self.emu.tokens.revoke(auth.partition(" ")[2].strip())
            if rule.kind == "delay":
                delay += float(rule.params.get("seconds", 1.0))
            if rule.kind == "reset_request":
                return fired, delay, swallow, rule
            if rule.kind == "reset_response":
                swallow = True
        return fired, delay, swallow, None

    @staticmethod
    def _method_override(scope: Scope, request: Request) -> None:
        header = request.headers.get("x-http-method-override")
        param = request.query_params.get("_method")
        if header and param and header.upper() != param.upper():
            raise rc_error(400, "CMN-101", "Parameter [_method] value is invalid.",
                           parameterName="_method")
        wanted = header or param
        if wanted and scope["method"] == "POST":
            scope["method"] = wanted.upper()


async def _version_root(request: Request) -> Response:
    emu: Emulator = request.app.state.emu
    return json_response({
        "uri": f"{emu.platform_url}/restapi",
        "apiVersions": [{"uri": f"{emu.platform_url}/restapi/v1.0", "versionString": "1.0.46",
                         "releaseDate": "2020-10-01T00:00:00.000Z", "uriString": "v1.0"}],
        "serverVersion": "rcfs-emulator", "serverRevision": "1",
    })


async def _version(request: Request) -> Response:
    emu: Emulator = request.app.state.emu
    if request.path_params["version"] not in ("v1.0", "v1"):
        raise agw_404()
    return json_response({"uri": f"{emu.platform_url}/restapi/v1.0", "versionString": "1.0.46",
                          "releaseDate": "2020-10-01T00:00:00.000Z", "uriString": "v1.0"})


def api_routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        Route("/restapi", _version_root, methods=["GET"]),
        Route("/restapi/", _version_root, methods=["GET"]),
        Route("/restapi/{version}", _version, methods=["GET"]),
    ]
    for module in (routes_oauth, routes_account, routes_messages, routes_content,
                   routes_calllog, routes_greetings, routes_send, routes_reports, routes_ws):
        routes.extend(module.routes())
    return routes


def make_api_app(emu: Emulator, origin: str) -> ASGIApp:
    app = Starlette(
        routes=api_routes(),
        exception_handlers={ApiError: _api_error, HTTPException: _http_error},
    )
    app.state.emu = emu
    app.state.origin = origin
    wrapped = RcMiddleware(app, emu, origin)
    if origin == "platform":
        emu.ws.api_app = wrapped  # tunnelled WebSocket requests run through it
    return wrapped


def make_admin_app(emu: Emulator) -> ASGIApp:
    app = Starlette(
        routes=admin.routes() + routes_ws.admin_routes(),
        exception_handlers={ApiError: _api_error, HTTPException: _http_error},
    )
    app.state.emu = emu
    return app


def dumps(data: Any) -> str:
    return json.dumps(data, indent=1)
