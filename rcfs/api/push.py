"""Push notifications: one WebSocket to RingCentral's gateway, one subscription on it.

Why: polling spends Light (and Heavy) requests whether anything changed or not, and a change
shows up one interval late. The gateway pushes message-store and telephony events; a desktop
client cannot receive webhooks.

What the client does (as RingCentral's own @rc-ex/ws does, docs/ringcentral.md §12.9):
* a ws token (Auth group) is cached and reused until 0.8 x its lifetime;
* after ``ConnectionDetails`` it POSTs the subscription over the socket (one per connection)
  and reports a *gap* (``on_gap(initial)``): changes made before it were never pushed;
* silence for ``heartbeat_interval`` sends a ``Heartbeat``; no frame within ``reply_timeout``
  means the connection is dead;
* a lost connection is recovered with the last ``wsc`` token (the gateway replays missed
  events); a failed recovery subscribes again, with a gap (the caller catches up over REST);
* then reconnects back off exponentially with full jitter;
* an app without the WebSocket permission gets ``state = "unavailable"``, logged once.

The OAuth access token is kept fresh while the socket is idle (no REST calls may be made for
hours): the socket belongs to the OAuth session, and an expired token would close it. A
refresh keeps the session, so the socket and its events survive it.
"""

from __future__ import annotations

import logging
import random
import re
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection

from rcfs.api.client import RcClient
from rcfs.api.errors import ApiError, RateLimitedError, RcError
from rcfs.api.scheduler import Priority
from rcfs.api.wsconn import FrameError, make_frame, open_gateway, parse_frame, trusted_ws_uri

log = logging.getLogger(__name__)

_EXT = re.compile(r"/extension/(\d+|~)(?:/|$)")
SUBSCRIPTION = "/restapi/v1.0/subscription"
STABLE_S = 10.0  # a connection up this long resets the backoff (shorter ones count as failures)


class PushUnavailable(RcError):
    """The app may not use the WebSocket gateway (permission missing)."""


class ConnectionDead(RcError):
    """The gateway stopped answering (no frame after a Heartbeat)."""


@dataclass(frozen=True)
class PushEvent:
    ext_id: str | None
    kind: str  # "message-store" | "telephony" | "other"
    event: str  # the filter, as echoed by the gateway
    body: Any


@dataclass
class PushSettings:
    heartbeat_interval: float = 60.0  # silence before a Heartbeat (rc-ex: 60 s)
    reply_timeout: float = 10.0  # a Heartbeat or tunnelled request unanswered: dead
    connect_timeout: float = 15.0
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    token_check: float = 30.0  # how often the OAuth token's expiry is looked at (half the
    # client's refresh margin: the mount derives it from token_refresh_margin)
    unavailable_retry: float = 3600.0  # the permission may be granted later


@dataclass
class _WsToken:
    value: str
    uri: str
    good_until: float  # trio clock


class PushClient:
    """Run with ``await push.run()`` in a nursery; read ``state`` and ``status()``."""

    def __init__(self, client: RcClient, *, on_event: Callable[[PushEvent], None],
                 on_state: Callable[[str], None] | None = None,
                 on_gap: Callable[[bool], None] | None = None,
                 ssl_context: ssl.SSLContext | None = None,
                 settings: PushSettings | None = None,
                 rng: random.Random | None = None) -> None:
        self.client = client
        self.on_event = on_event
        self.on_state = on_state
        self.on_gap = on_gap
        self.ssl_context = ssl_context
        self.settings = settings or PushSettings()
        self.rng = rng or random.Random()
        self.filters: list[str] = []
        self.state = "starting"
        self.state_since = time.time()
        self.last_error: str | None = None
        self.last_event: dict[str, Any] | None = None
        self.counters = {"events": 0, "reconnects": 0, "recoveries": 0,
                         "recoveries_failed": 0, "subscriptions": 0, "malformed": 0,
                         "heartbeats": 0, "ws_tokens": 0}
        self._token: _WsToken | None = None
        self._wsc: str | None = None
        self._wsc_seq = -1
        self._wsc_at = 0.0  # trio clock when the connection holding it ended
        self._recovery_timeout = 180.0
        self._subscription_id: str | None = None
        self._subscribed_once = False
        self._filters_changed = trio.Event()
        self._pending: dict[str, tuple[trio.Event, list[Any]]] = {}
        self._last_inbound = 0.0
        self._inbound = trio.Event()
        self._dropped_telephony = False
        self._told_unavailable = False
        self._reached = False  # this connection got its ConnectionDetails

    # -- public --------------------------------------------------------------------------

    def set_filters(self, filters: list[str]) -> None:
        """The event filters of the subscription; a connected client re-subscribes."""
        if filters != self.filters:
            self.filters = list(filters)
            self._dropped_telephony = False
            self._filters_changed.set()

    def status(self) -> dict[str, Any]:
        return {"state": self.state,
                "since": self.state_since,
                "last_event": self.last_event,
                "last_error": self.last_error,
                "subscription": self._subscription_id,
                "filters": len(self.filters),
                **self.counters}

    async def run(self) -> None:
        """Connect, serve, reconnect, forever (cancel the caller's scope to stop)."""
        failures = 0
        while True:
            started = trio.current_time()
            delay: float | None = None
            try:
                await self._connection()
            except PushUnavailable as exc:
                if not self._told_unavailable:  # once: it is retried every hour
                    log.warning("push notifications unavailable, polling instead: %s", exc)
                    self._told_unavailable = True
                self._set_state("unavailable", str(exc))
                await trio.sleep(self.settings.unavailable_retry)
                continue
            except RateLimitedError as exc:
                delay = exc.retry_after
                self._set_state("down", str(exc))
            except (RcError, OSError, ConnectionClosed, HandshakeError, FrameError,
                    trio.TooSlowError, trio.BrokenResourceError) as exc:
                self._set_state("down", _describe(exc))
                log.info("push connection lost: %s", _describe(exc))
            else:
                self._set_state("down", "closed by the gateway")
            self._wsc_at = trio.current_time()
            self.counters["reconnects"] += 1
            if self._reached and self._wsc_at - started >= STABLE_S:
                failures = 0  # it had been up for a while: start the backoff over
            self._reached = False
            if failures == 0 and delay is None and self._recoverable():
                failures += 1
                continue  # recover at once: the gateway keeps our events for us
            cap = min(self.settings.backoff_max, self.settings.backoff_base * 2 ** failures)
            failures += 1
            await trio.sleep(max(delay or 0.0, self.rng.uniform(0, cap)))

    # -- one connection ------------------------------------------------------------------

    def _recoverable(self) -> bool:
        return (self._wsc is not None
                and trio.current_time() - self._wsc_at < self._recovery_timeout)

    async def _connection(self) -> None:
        token = await self._ws_token()
        recover = self._recoverable()
        url = f"{token.uri}?access_token={token.value}"
        if recover:
            url += f"&wsc={self._wsc}"
        self._set_state("recovering" if recover else "connecting")
        try:
            async with open_gateway(url, self.ssl_context,
                                    self.settings.connect_timeout) as ws:
                meta, body = await self._first_frame(ws)
                fresh = self._connected(meta, body, recover)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._keep_oauth_fresh)
                    nursery.start_soon(self._heartbeats, ws)
                    nursery.start_soon(self._subscriber, ws, fresh)
                    await self._reader(ws)
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise _first(group) from None

    async def _first_frame(self, ws: WebSocketConnection) -> tuple[dict[str, Any], Any]:
        with trio.fail_after(max(self.settings.connect_timeout, self.settings.reply_timeout)):
            meta, body = parse_frame(await ws.get_message())
        if meta["type"] == "Error":
            code = str((body or {}).get("errorCode", ""))
            if code.startswith("OAU-"):
                self._token = None  # expired or revoked ws token: ask for a new one
                if code in ("OAU-128", "OAU-213"):
                    await self._refresh_oauth()
            elif code == "WSG-400":
                self._wsc = None  # a recovery token it does not understand
            raise RcError(f"gateway refused the connection: {code} {body.get('message', '')}")
        if meta["type"] != "ConnectionDetails":
            raise FrameError(f"expected ConnectionDetails, got {meta['type']}")
        return meta, body

    def _connected(self, meta: dict[str, Any], body: Any, recover: bool) -> bool:
        """Take the session context; True when the subscription must be made anew."""
        details = body if isinstance(body, dict) else {}
        self._reached = True
        self._recovery_timeout = float(details.get("recoveryTimeout", 180))
        self._take_wsc(meta, force=True)
        outcome = details.get("recoveryState")
        if recover and outcome == "Successful":
            self.counters["recoveries"] += 1
            log.info("push connection recovered; missed events are replayed")
            return False
        if recover:
            self.counters["recoveries_failed"] += 1
            log.info("push session not recovered (%s): subscribing again",
                     details.get("recoveryErrorCode"))
        return True

    def _take_wsc(self, meta: dict[str, Any], force: bool = False) -> None:
        wsc = meta.get("wsc")
        if not isinstance(wsc, dict) or not wsc.get("token"):
            return
        seq = int(wsc.get("sequence", 0) or 0)
        if force or seq >= self._wsc_seq:
            self._wsc, self._wsc_seq = str(wsc["token"]), seq

    async def _reader(self, ws: WebSocketConnection) -> None:
        while True:
            try:
                text = await ws.get_message()
            except ConnectionClosed:
                return
            self._last_inbound = trio.current_time()
            self._inbound.set()
            self._inbound = trio.Event()
            try:
                meta, body = parse_frame(text)
            except FrameError as exc:
                # Whatever it was, it may have been an event: catch up over REST.
                self.counters["malformed"] += 1
                log.warning("push: malformed frame ignored (%s); catching up", exc)
                self._gap()
                continue
            self._dispatch(meta, body)

    def _dispatch(self, meta: dict[str, Any], body: Any) -> None:
        kind = meta["type"]
        if kind == "ServerNotification":
            self._take_wsc(meta)
            self._notification(body)
        elif kind == "ClientRequest":
            waiter = self._pending.get(str(meta.get("messageId")))
            if waiter is not None:
                waiter[1][:] = [meta, body]
                waiter[0].set()
        elif kind == "Error":
            code = str((body or {}).get("errorCode", "")) if isinstance(body, dict) else ""
            self.last_error = f"{code} {(body or {}).get('message', '')}".strip()
            log.info("push gateway error: %s", self.last_error)
            if code.startswith("OAU-"):
                self._token = None
        elif kind == "ConnectionDetails":
            self._take_wsc(meta, force=True)

    def _notification(self, envelope: Any) -> None:
        if not isinstance(envelope, dict):
            return
        if self._subscription_id and envelope.get("subscriptionId") not in (
                None, self._subscription_id):
            return  # an older subscription's event
        event = str(envelope.get("event", ""))
        m = _EXT.search(event)
        ext = m.group(1) if m else None
        if ext == "~":
            ext = str(envelope.get("ownerId")) if envelope.get("ownerId") else None
        body = envelope.get("body")
        if ext is None and isinstance(body, dict) and body.get("extensionId") is not None:
            ext = str(body["extensionId"])
        kind = ("telephony" if "/telephony/sessions" in event else
                "message-store" if "/message-store" in event else "other")
        self.counters["events"] += 1
        self.last_event = {"at": time.time(), "kind": kind, "extension": ext}
        self.on_event(PushEvent(ext, kind, event, body))

    def _gap(self, initial: bool = False) -> None:
        if self.on_gap is not None:
            self.on_gap(initial)

    # -- requests over the socket ----------------------------------------------------------

    async def _request(self, ws: WebSocketConnection, method: str, path: str,
                       body: Any = None) -> tuple[int, Any]:
        mid = str(uuid.uuid4())
        done = trio.Event()
        slot: list[Any] = []
        self._pending[mid] = (done, slot)
        try:
            await ws.send_message(make_frame(
                {"type": "ClientRequest", "messageId": mid, "method": method, "path": path,
                 "headers": {"Content-Type": "application/json"}}, body))
            with trio.fail_after(self.settings.reply_timeout * 3):
                await done.wait()
        finally:
            del self._pending[mid]
        meta, reply = slot
        return int(meta.get("status", 0)), reply

    async def _subscriber(self, ws: WebSocketConnection, fresh: bool) -> None:
        """Subscribe when needed, then again whenever the filters change."""
        if fresh:
            self._filters_changed = trio.Event()  # this subscription has the latest
            await self._subscribe(ws, new_session=True)
        else:
            self._set_state("connected")
        while True:
            await self._filters_changed.wait()
            self._filters_changed = trio.Event()
            await self._subscribe(ws, new_session=False)

    async def _subscribe(self, ws: WebSocketConnection, new_session: bool) -> None:
        filters = self._effective_filters()
        if not filters:
            self._set_state("connected")
            return
        status, reply = await self._request(ws, "POST", SUBSCRIPTION, {
            "eventFilters": filters, "deliveryMode": {"transportType": "WebSocket"}})
        if status == 403 and not self._dropped_telephony and any(
                "/telephony/" in f for f in filters):
            # Call events need CallControl; without it recordings keep coming by polling.
            log.info("push: no permission for call events; messages only")
            self._dropped_telephony = True
            return await self._subscribe(ws, new_session)
        if status in (401, 403):
            raise PushUnavailable(f"subscription refused: HTTP {status} "
                                  f"{(reply or {}).get('errorCode', '')}")
        if status == 429:
            raise RateLimitedError(429, "CMN-301", "subscription rate exceeded", body=reply,
                                   retry_after=60.0, group="Medium")
        if not 200 <= status < 300 or not isinstance(reply, dict):
            raise RcError(f"subscription failed: HTTP {status} {reply!r:.200}")
        self._subscription_id = str(reply.get("id"))
        self.counters["subscriptions"] += 1
        first = not self._subscribed_once
        self._subscribed_once = True
        self._set_state("connected")
        log.info("push: subscribed to %d event filters", len(filters))
        if new_session:
            # Events before this subscription were not sent to us: what was synced
            # before it must be synced again (at the first one: only what already was).
            self._gap(initial=first)

    def _effective_filters(self) -> list[str]:
        if self._dropped_telephony:
            return [f for f in self.filters if "/telephony/" not in f]
        return list(self.filters)

    # -- keep-alive --------------------------------------------------------------------------

    async def _heartbeats(self, ws: WebSocketConnection) -> None:
        interval = self.settings.heartbeat_interval
        self._last_inbound = trio.current_time()
        while True:
            await trio.sleep_until(self._last_inbound + interval)
            if trio.current_time() - self._last_inbound < interval:
                continue
            waiting = self._inbound
            await ws.send_message(make_frame({"type": "Heartbeat",
                                              "messageId": str(uuid.uuid4())}))
            self.counters["heartbeats"] += 1
            with trio.move_on_after(self.settings.reply_timeout):
                await waiting.wait()
                continue
            raise ConnectionDead(f"no answer to a Heartbeat within "
                                 f"{self.settings.reply_timeout:g} s")

    async def _keep_oauth_fresh(self) -> None:
        while True:
            await trio.sleep(self.settings.token_check)
            try:
                await self.client.tokens.access_token(self.client.deadline_in(30))
            except RcError as exc:
                log.info("push: access token not refreshed: %s", exc)

    async def _refresh_oauth(self) -> None:
        try:
            await self.client.tokens.refresh(self.client.deadline_in(30))
        except RcError as exc:
            log.info("push: access token refresh failed: %s", exc)

    async def _ws_token(self) -> _WsToken:
        now = trio.current_time()
        if self._token is not None and now < self._token.good_until:
            return self._token
        try:
            resp = await self.client.request("POST", "/restapi/oauth/wstoken", group="Auth",
                                             priority=Priority.BACKGROUND,
                                             deadline=self.client.deadline_in(60))
        except ApiError as exc:
            if exc.status == 403:
                raise PushUnavailable(str(exc)) from None
            raise
        data = resp.json()
        uri = str(data.get("uri", ""))
        if not trusted_ws_uri(uri, self.client.platform_url):
            raise PushUnavailable(f"gateway address {uri!r} is not on the platform's domain")
        self.counters["ws_tokens"] += 1
        life = float(data.get("expires_in", 30))
        self._token = _WsToken(str(data["ws_access_token"]), uri, now + 0.8 * life)
        return self._token

    def _set_state(self, state: str, error: str | None = None) -> None:
        if error is not None:
            self.last_error = error
        if state == self.state:
            return
        self.state, self.state_since = state, time.time()
        if self.on_state is not None:
            self.on_state(state)


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The exception a nursery's group stands for (trio's groups are strict)."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc)
        if not isinstance(exc, trio.Cancelled):
            return exc
    return group.exceptions[0]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionClosed):
        reason = exc.reason
        if reason is None:
            return "closed"
        return f"closed ({reason.code}{' ' + reason.reason if reason.reason else ''})"
    if isinstance(exc, trio.TooSlowError):
        return "timed out"
    return str(exc) or type(exc).__name__
