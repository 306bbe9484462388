"""RingCentral's WebSocket gateway (WSG): ws tokens, sessions, subscriptions, recovery.

State only; the socket loop is ``routes_ws.py``. A *session* is what a ``wsc`` recovery token
names: it outlives its connection by ``ws_recovery_timeout`` seconds, owns the subscription
and a buffer of the last ``ws_recovery_buffer`` notifications. Each notification carries the
session's ``wsc`` with its sequence number in the token, so a client that recovers with the
last token it saw gets exactly the notifications it missed.

Choices where RingCentral's documentation is silent (docs/ringcentral.md §12.10): ws tokens live
``ws_token_ttl`` (600 s) and may be reused until then, as @rc-ex/ws does; a bad or expired ws
token is an ``Error`` frame then close code 4401; too many connections per OAuth session is
``WSG-1002`` then 4429; tunnelled requests count in their rate-limit group like HTTP ones.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import secrets
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from rcfs.emulator.core import iso
from rcfs.emulator.message_render import render_message
from rcfs.emulator.oauth import Session

if TYPE_CHECKING:
    from rcfs.emulator.core import Emulator
    from rcfs.emulator.store import CallRecord, Message

_FILTER = re.compile(
    r"^/restapi/v1(?:\.0)?/account/(?P<acc>~|\d+)/extension/(?P<ext>~|\d+)/"
    r"(?P<kind>message-store/instant|message-store|voicemail|fax|telephony/sessions)$")
MESSAGE_TYPES = {"Fax", "SMS", "Pager", "VoiceMail", "Voicemail"}


@dataclass
class WsToken:
    value: str
    session: Session
    expires_at: float


@dataclass
class EventFilter:
    text: str  # as the client wrote it (echoed in ``event``)
    expanded: str
    ext_id: int
    kind: str
    query: dict[str, str]


@dataclass
class Subscription:
    id: str
    filters: list[EventFilter]
    created: float


@dataclass(eq=False)
class Connection:
    """One open socket; ``queue`` holds text frames for its writer."""

    id: int
    created: float
    last_inbound: float
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    stalled_until: float = 0.0  # loop time; a stalled gateway neither writes nor reads
    closing: bool = False
    abort: Any = None  # callable that resets the TCP connection (drop fault)
    active_requests: int = 0


@dataclass(eq=False)
class WsSession:
    id: str
    oauth: Session
    created: float
    seq: int = 0
    subscription: Subscription | None = None
    buffer: deque[tuple[int, str]] = field(default_factory=deque)
    conn: Connection | None = None
    disconnected_at: float | None = None

    def wsc(self) -> dict[str, Any]:
        raw = f"{self.id}:{self.seq}".encode()
        return {"token": base64.urlsafe_b64encode(raw).decode().rstrip("="),
                "sequence": self.seq}


def decode_wsc(token: str) -> tuple[str, int] | None:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        sid, _, seq = raw.partition(":")
        return (sid, int(seq)) if sid else None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def frame(meta: dict[str, Any], *body: Any) -> str:
    return json.dumps([meta, *body], ensure_ascii=False)


def error_frame(code: str, message: str, status: int = 400) -> str:
    return frame({"type": "Error", "messageId": str(uuid.uuid4()), "status": status,
                  "headers": {"RCRequestId": str(uuid.uuid4())}},
                 {"errorCode": code, "message": message})


class WsGateway:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.tokens: dict[str, WsToken] = {}
        self.sessions: dict[str, WsSession] = {}
        self.connections: dict[int, WsSession | None] = {}
        self.conns: dict[int, Connection] = {}
        self._next_conn = 0
        self.refuse_recoveries: list[str] = []  # codes of the next recoveries to refuse
        self.stats: dict[str, int] = {"connections": 0, "recoveries_ok": 0,
                                      "recoveries_failed": 0, "notifications": 0,
                                      "replayed": 0, "heartbeats": 0, "requests": 0}
        self.api_app: Any = None  # the platform app, for tunnelled requests
        emu.store.listeners.append(self.on_store)

    # -- tokens and sessions -------------------------------------------------------------

    def issue_token(self, session: Session) -> WsToken:
        now = self.emu.clock.now()
        tok = WsToken("U0pDMDFQ" + secrets.token_urlsafe(24), session,
                      now + self.emu.config.ws_token_ttl)
        self.tokens[tok.value] = tok
        return tok

    def check_token(self, value: str) -> Session | None:
        tok = self.tokens.get(value)
        if tok is None or tok.session.revoked or self.emu.clock.now() >= tok.expires_at:
            return None
        return tok.session

    def expire_tokens(self) -> int:
        now = self.emu.clock.now()
        n = 0
        for tok in self.tokens.values():
            if tok.expires_at > now:
                tok.expires_at = now
                n += 1
        return n

    def new_connection(self) -> Connection:
        self._next_conn += 1
        now = self.emu.clock.now()
        conn = Connection(self._next_conn, now, now)
        self.conns[conn.id] = conn
        self.stats["connections"] += 1
        return conn

    def live_connections(self, oauth: Session) -> int:
        return sum(1 for s in self.sessions.values()
                   if s.conn is not None and s.oauth is oauth)

    def expired(self, session: WsSession) -> bool:
        if session.conn is not None or session.disconnected_at is None:
            return False
        return (self.emu.clock.now() - session.disconnected_at
                > self.emu.config.ws_recovery_timeout)

    def open_session(self, oauth: Session, conn: Connection, wsc: str | None
                     ) -> tuple[WsSession, dict[str, Any], list[str]]:
        """The session for a new connection: (session, recovery fields, frames to replay).

        Raises ValueError for a malformed ``wsc``."""
        self._forget_expired()
        if wsc is None:
            return self._fresh(oauth, conn), {}, []
        decoded = decode_wsc(wsc)
        if decoded is None:
            raise ValueError("malformed wsc")
        sid, seen = decoded
        old = self.sessions.get(sid)
        code = None
        if self.refuse_recoveries:
            code = self.refuse_recoveries.pop(0)
        elif old is None or self.expired(old):
            code = "WSG-1005"
        elif old.oauth is not oauth:
            code = "WSG-1003"
        if code is not None or old is None:
            self.stats["recoveries_failed"] += 1
            return (self._fresh(oauth, conn),
                    {"recoveryState": "Failed", "recoveryErrorCode": code}, [])
        if old.conn is not None:  # the client saw the old socket die before we did
            self.detach(old, old.conn)
        old.conn = conn
        old.disconnected_at = None
        self.connections[conn.id] = old
        self.stats["recoveries_ok"] += 1
        replay = [text for seq, text in old.buffer if seq > seen]
        self.stats["replayed"] += len(replay)
        return old, {"recoveryState": "Successful"}, replay

    def _fresh(self, oauth: Session, conn: Connection) -> WsSession:
        session = WsSession(uuid.uuid4().hex, oauth, self.emu.clock.now(), conn=conn)
        self.sessions[session.id] = session
        self.connections[conn.id] = session
        return session

    def _forget_expired(self) -> None:
        for sid in [sid for sid, s in self.sessions.items() if self.expired(s)]:
            del self.sessions[sid]

    def detach(self, session: WsSession | None, conn: Connection) -> None:
        self.conns.pop(conn.id, None)
        self.connections.pop(conn.id, None)
        conn.closing = True
        conn.queue.put_nowait(None)
        if session is not None and session.conn is conn:
            session.conn = None
            session.disconnected_at = self.emu.clock.now()

    def connection_details(self, session: WsSession, extra: dict[str, Any]) -> str:
        cfg = self.emu.config
        mid = str(uuid.uuid4())
        body: dict[str, Any] = {
            "creationTime": _iso(session.created),
            "maxConnectionsPerSession": cfg.ws_max_connections,
            "recoveryBufferSize": cfg.ws_recovery_buffer,
            "recoveryTimeout": int(cfg.ws_recovery_timeout),
            "idleTimeout": int(cfg.ws_idle_timeout),
            "absoluteTimeout": int(cfg.ws_absolute_timeout),
            "maxActiveRequests": cfg.ws_max_active_requests,
            **{k: v for k, v in extra.items() if v is not None},
        }
        return frame({"type": "ConnectionDetails", "messageId": mid, "status": 200,
                      "wsc": session.wsc(), "headers": {"RCRequestId": mid}}, body)

    # -- subscriptions -------------------------------------------------------------------

    def parse_filters(self, session: WsSession, raw: Any) -> list[EventFilter]:
        """Validated filters, ``~`` expanded; raises ValueError naming the bad one."""
        if not isinstance(raw, list) or not raw:
            raise ValueError("eventFilters")
        out = []
        owner = session.oauth.owner_id
        store = self.emu.store
        for item in raw:
            if not isinstance(item, str):
                raise ValueError("eventFilters")
            parts = urlsplit(item)
            m = _FILTER.match(parts.path)
            if m is None:
                raise ValueError(item)
            if m["acc"] not in ("~", str(store.account_id)):
                raise PermissionError("SUB-406")
            ext_id = owner if m["ext"] == "~" else int(m["ext"])
            if ext_id not in store.extensions:
                raise ValueError(item)
            if ext_id != owner and not store.extensions[owner].admin:
                raise PermissionError("SUB-406")
            query = dict(parse_qsl(parts.query))
            if query.get("type") not in (None, *MESSAGE_TYPES):
                raise ValueError(item)
            expanded = (f"/restapi/v1.0/account/{store.account_id}/extension/{ext_id}/"
                        f"{m['kind']}" + (f"?{parts.query}" if parts.query else ""))
            out.append(EventFilter(item, expanded, ext_id, m["kind"], query))
        return out

    def subscription_body(self, sub: Subscription) -> dict[str, Any]:
        expires = sub.created + 86400
        return {"uri": f"/restapi/v1.0/subscription/{sub.id}", "id": sub.id,
                "creationTime": _iso(sub.created), "status": "Active",
                "eventFilters": [f.expanded for f in sub.filters],
                "expirationTime": _iso(expires),
                "expiresIn": max(0, int(expires - self.emu.clock.now())),
                "deliveryMode": {"transportType": "WebSocket", "encryption": False}}

    # -- events --------------------------------------------------------------------------

    def on_store(self, change: str, obj: Any) -> None:
        for session in list(self.sessions.values()):
            sub = session.subscription
            if sub is None or self.expired(session):
                continue
            for flt in sub.filters:
                body = self._event_body(flt, change, obj)
                if body is not None:
                    self._notify(session, sub, flt, body)

    def _event_body(self, flt: EventFilter, change: str, obj: Any) -> dict[str, Any] | None:
        if change.startswith("message_"):
            msg: Message = obj
            if msg.extension_id != flt.ext_id or not _query_ok(flt.query, msg):
                return None
            if flt.kind == "message-store":
                return self._message_store_body(msg, change)
            if change != "message_new" or msg.direction != "Inbound":
                return None
            wanted = {"message-store/instant": "SMS", "voicemail": "VoiceMail",
                      "fax": "Fax"}.get(flt.kind)
            if msg.type != wanted:
                return None
            return render_message(self.emu, msg)
        if change == "call_new" and flt.kind == "telephony/sessions":
            call: CallRecord = obj
            if call.extension_id == flt.ext_id:
                return self._telephony_body(call)
        return None

    def _message_store_body(self, msg: Message, change: str) -> dict[str, Any]:
        item: dict[str, Any] = {"type": msg.type}
        if change == "message_new":
            item.update(newCount=1, updatedCount=0, newMessageIds=[msg.id])
        else:
            item.update(newCount=0, updatedCount=1)
        return {"accountId": self.emu.store.account_id, "extensionId": msg.extension_id,
                "lastUpdated": _iso(self.emu.clock.now()), "changes": [item]}

    def _telephony_body(self, call: CallRecord) -> dict[str, Any]:
        status = "VoiceMail" if call.message_id is not None else "Disconnected"
        party: dict[str, Any] = {
            "accountId": str(self.emu.store.account_id), "extensionId": str(call.extension_id),
            "id": f"p-{call.telephony_session_id}-1", "direction": call.direction,
            "from": {"phoneNumber": call.from_.get("phoneNumber", "")},
            "to": {"phoneNumber": call.to.get("phoneNumber", "")},
            "status": {"code": status, "reason": "CallerInputRedirect"
                       if status == "VoiceMail" else "Pickup"},
            "missedCall": call.result in ("Missed", "Voicemail"),
        }
        if call.recording is not None:
            party["recordings"] = [{"id": call.recording.id, "active": False}]
        return {"sequence": 1, "sessionId": call.session_id,
                "telephonySessionId": call.telephony_session_id, "serverId": "emulator",
                "eventTime": _iso(self.emu.clock.now()), "origin": {"type": "Call"},
                "parties": [party]}

    def _notify(self, session: WsSession, sub: Subscription, flt: EventFilter,
                body: dict[str, Any]) -> None:
        session.seq += 1
        envelope = {"uuid": str(uuid.uuid4()), "event": flt.text,
                    "timestamp": _iso(self.emu.clock.now()), "subscriptionId": sub.id,
                    "ownerId": str(session.oauth.owner_id), "body": body}
        mid = str(uuid.uuid4())
        text = frame({"type": "ServerNotification", "messageId": mid, "status": 200,
                      "wsc": session.wsc(), "headers": {"RCRequestId": mid}}, envelope)
        session.buffer.append((session.seq, text))
        while len(session.buffer) > self.emu.config.ws_recovery_buffer:
            session.buffer.popleft()
        self.stats["notifications"] += 1
        if session.conn is not None and not session.conn.closing:
            session.conn.queue.put_nowait(text)

    # -- state for the admin API ---------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "stats": dict(self.stats),
            "tokens": len(self.tokens),
            "sessions": [
                {"id": s.id, "owner_id": s.oauth.owner_id, "connected": s.conn is not None,
                 "sequence": s.seq, "buffered": len(s.buffer),
                 "subscription": None if s.subscription is None else
                 {"id": s.subscription.id,
                  "eventFilters": [f.expanded for f in s.subscription.filters]}}
                for s in self.sessions.values()
            ],
            "connections": len(self.conns),
        }


def _query_ok(query: dict[str, str], msg: Message) -> bool:
    want = query.get("type")
    if want is not None and want.lower() != msg.type.lower():
        return False
    direction = query.get("direction")
    return direction is None or direction == msg.direction


def _iso(ts: float) -> str:
    return iso(ts)
