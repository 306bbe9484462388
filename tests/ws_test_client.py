"""A small WebSocket client of RingCentral's gateway protocol, for the emulator's contract
tests: it speaks the frames by hand (trio-websocket), so the tests see exactly what the
gateway sends."""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from typing import Any

import httpx
import trio
from trio_websocket import WebSocketConnection

from rcfs.api.wsconn import open_gateway
from tests.emulator_proc import EmulatorProc, verify_for

Frame = list[Any]


def ws_token(emu: EmulatorProc, access_token: str) -> dict[str, Any]:
    r = httpx.post(emu.info["platform_url"] + "/restapi/oauth/wstoken",
                   headers={"Authorization": f"Bearer {access_token}"},
                   verify=verify_for(emu.info), timeout=30)
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


class GatewayClient:
    """One socket: ``frames()`` reads, ``request()`` tunnels a REST call."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.seen: list[Frame] = []
        self.backlog: list[Frame] = []  # frames read while waiting for a reply

    async def recv(self, timeout: float = 5.0) -> Frame:
        with trio.fail_after(timeout):
            text = await self.ws.get_message()
        parsed: Frame = json.loads(text)
        self.seen.append(parsed)
        return parsed

    async def raw(self, timeout: float = 5.0) -> str | bytes:
        with trio.fail_after(timeout):
            return await self.ws.get_message()

    async def next_of(self, kind: str, timeout: float = 5.0) -> Frame:
        """The next frame of meta type ``kind`` (others are kept in ``seen``)."""
        for i, f in enumerate(self.backlog):
            if f[0].get("type") == kind:
                return self.backlog.pop(i)
        with trio.fail_after(timeout):
            while True:
                f = await self.recv(math.inf)
                if f[0].get("type") == kind:
                    return f

    async def request(self, method: str, path: str, body: Any = None,
                      query: dict[str, Any] | None = None) -> Frame:
        mid = str(uuid.uuid4())
        meta: dict[str, Any] = {"type": "ClientRequest", "messageId": mid, "method": method,
                                "path": path, "headers": {"Content-Type": "application/json"}}
        if query:
            meta["query"] = query
        await self.ws.send_message(json.dumps([meta] if body is None else [meta, body]))
        with trio.fail_after(10):
            while True:
                f = await self.recv(math.inf)
                if f[0].get("type") == "ClientRequest" and f[0].get("messageId") == mid:
                    return f
                self.backlog.append(f)

    async def subscribe(self, filters: list[str]) -> dict[str, Any]:
        reply = await self.request("POST", "/restapi/v1.0/subscription", {
            "eventFilters": filters, "deliveryMode": {"transportType": "WebSocket"}})
        assert reply[0]["status"] == 200, reply
        return reply[1]  # type: ignore[no-any-return]


def open_websocket_url(url: str) -> contextlib.AbstractAsyncContextManager[WebSocketConnection]:
    """A connection whose TCP stream is closed on exit, even when the server closed first."""
    return open_gateway(url, None, 10.0)


def socket_url(token: dict[str, Any], wsc: str | None = None) -> str:
    url = f"{token['uri']}?access_token={token['ws_access_token']}"
    return url + (f"&wsc={wsc}" if wsc else "")


__all__ = ["GatewayClient", "open_websocket_url", "socket_url", "ws_token"]
