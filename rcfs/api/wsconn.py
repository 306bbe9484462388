"""One WebSocket connection to RingCentral's gateway, and its JSON-array frames.

trio-websocket speaks the protocol; we own the TCP/TLS stream and always close it ourselves:
when the server closes first, trio-websocket's ``aclose`` returns without closing the stream
(the socket would leak one descriptor per server-side close).
"""

from __future__ import annotations

import json
import math
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import trio
from trio_websocket import WebSocketConnection, wrap_client_stream

MAX_FRAME = 4 << 20  # a notification is a few KiB; a tunnelled listing a few hundred


class FrameError(ValueError):
    """A frame that is not RingCentral's ``[meta]`` / ``[meta, body]`` JSON array."""


def parse_frame(text: str | bytes) -> tuple[dict[str, Any], Any]:
    """``(meta, body)``; body is None for a meta-only frame."""
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise FrameError(f"not JSON: {exc}") from None
    if not isinstance(parsed, list) or not parsed or not isinstance(parsed[0], dict):
        raise FrameError("not a [meta, body] array")
    if not isinstance(parsed[0].get("type"), str):
        raise FrameError("meta without a type")
    return parsed[0], parsed[1] if len(parsed) > 1 else None


def make_frame(meta: dict[str, Any], body: Any = None) -> str:
    return json.dumps([meta] if body is None else [meta, body])


def trusted_ws_uri(uri: str, platform_url: str) -> bool:
    """The gateway URI from ``wstoken`` must be on the platform's host or a sibling of it
    (``wss://ws-api.ringcentral.com`` for ``platform.ringcentral.com``), and encrypted when
    the platform is: the ws token is a bearer credential."""
    ws, platform = urlsplit(uri), urlsplit(platform_url)
    if ws.scheme not in ("ws", "wss") or not ws.hostname or not platform.hostname:
        return False
    if platform.scheme == "https" and ws.scheme != "wss":
        return False
    if ws.hostname == platform.hostname:
        return True
    parent = platform.hostname.split(".", 1)[1] if "." in platform.hostname else ""
    return parent.count(".") >= 1 and ws.hostname.endswith("." + parent)


@asynccontextmanager
async def open_gateway(url: str, ssl_context: ssl.SSLContext | None,
                       connect_timeout: float) -> AsyncIterator[WebSocketConnection]:
    """Open ``url`` (bounded by ``connect_timeout``); the stream is closed on exit."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    resource = parts.path + (f"?{parts.query}" if parts.query else "")
    stream: trio.abc.Stream
    with trio.fail_after(connect_timeout):
        stream = await trio.open_tcp_stream(host, port)
    try:
        if parts.scheme == "wss":
            tls = trio.SSLStream(stream, ssl_context or ssl.create_default_context(),
                                 server_hostname=host, https_compatible=True)
            stream = tls
            with trio.fail_after(connect_timeout):
                await tls.do_handshake()
        try:
            async with trio.open_nursery() as nursery:
                with trio.fail_after(connect_timeout):
                    ws = await wrap_client_stream(nursery, stream, host, resource,
                                                  max_message_size=MAX_FRAME)
                try:
                    yield ws
                finally:
                    # The close handshake needs trio-websocket's reader task (in
                    # ``nursery``) to read the gateway's answer. When we are cancelled (an
                    # unmount) that task is cancelled too: the answer can never be read, and
                    # waiting for it only held every unmount for the full bound. Then the
                    # stream is simply closed (below).
                    if trio.current_effective_deadline() != -math.inf:
                        with trio.move_on_after(2) as scope:
                            scope.shield = True
                            await ws.aclose()
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The caller's exception, not trio's group of one (the nursery is ours).
            leaves = [e for e in _leaves(group) if not isinstance(e, trio.Cancelled)]
            raise (leaves or list(_leaves(group)))[0] from None
    finally:
        await trio.aclose_forcefully(stream)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out
