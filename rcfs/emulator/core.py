"""The ``Emulator``: shared state of one emulator process, and the per-request helpers every
route uses (authentication, rate limiting, permission checks, ``~`` resolution, JSON)."""

from __future__ import annotations

import heapq
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from rcfs.emulator.clock import Clock
from rcfs.emulator.config import EmulatorConfig
from rcfs.emulator.errors import ApiError, invalid_param, not_found, rc_error
from rcfs.emulator.faults import Faults, fault_error
from rcfs.emulator.oauth import Session, TokenService
from rcfs.emulator.ratelimit import RateLimiter
from rcfs.emulator.store import Extension, Store


@dataclass
class Caller:
    """Who is calling: the token's session and owner."""

    session: Session
    extension: Extension

    @property
    def is_admin(self) -> bool:
        return self.extension.admin

    @property
    def client_id(self) -> str:
        return self.session.app.client_id

    def has_scope(self, scope: str) -> bool:
        return scope in self.session.app.scopes.split()


class Emulator:
    def __init__(self, config: EmulatorConfig, store: Store) -> None:
        self.config = config
        self.clock = Clock()
        self.store = store
        self.limiter = RateLimiter(config)
        self.faults = Faults(config.seed)
        for spec in config.faults:
            self.faults.add(spec)
        self.tokens = TokenService(config, self.clock, config.seed)
        self.request_log: list[dict[str, Any]] = []
        self.platform_url = ""
        self.media_url = ""
        self.admin_url = ""
        self.published: set[str] = set()  # paths written for the external media origin
        self._timers: list[tuple[float, int, Callable[[float], None]]] = []
        self._timer_seq = itertools.count()
        # Sync state: token -> (kind, extension id or None, sync time, filters)
        self.sync_tokens: dict[str, dict[str, Any]] = {}
        from rcfs.emulator.wsgateway import WsGateway  # it renders messages: routes import us

        self.ws = WsGateway(self)

    # -- time-driven behaviour ---------------------------------------------------------------

    def at(self, when: float, callback: Callable[[float], None]) -> None:
        """Run ``callback(when)`` once the emulated clock passes ``when`` (see ``tick``)."""
        heapq.heappush(self._timers, (when, next(self._timer_seq), callback))

    def tick(self) -> None:
        """Apply every state change that is due; called at the start of each request."""
        now = self.clock.now()
        while self._timers and self._timers[0][0] <= now:
            when, _, callback = heapq.heappop(self._timers)
            callback(when)

    # -- URLs --------------------------------------------------------------------------------

    def content_base(self) -> str:
        """Where attachment content URIs point (A3 fixture switch)."""
        if self.config.content_host == "platform":
            return self.platform_url
        if self.config.content_host == "media443" and self.media_url.startswith("https://"):
            host = self.media_url.split("://", 1)[1]
            if ":" not in host:
                return f"https://{host}:443"
        return self.media_url

    def account_uri(self, suffix: str = "") -> str:
        return f"{self.platform_url}/restapi/v1.0/account/{self.store.account_id}{suffix}"

    def ext_uri(self, ext_id: int, suffix: str = "") -> str:
        return self.account_uri(f"/extension/{ext_id}{suffix}")

    # -- per-request checks ------------------------------------------------------------------

    def authenticate(self, request: Request) -> Caller:
        header = request.headers.get("authorization")
        token: str | None = None
        if header is not None:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer":
                raise rc_error(401, "OAU-151", "Authorization method not supported")
            token = value.strip()
        else:
            token = request.query_params.get("access_token")
            origin = request.scope.get("rc_origin")
            if token and origin == "platform" and not self.config.access_token_query_on_platform:
                token = None
        if not token:
            raise ApiError(
                401, {"errorCode": "AGW-401", "message": "Authorization header is not specified",
                      "errors": []},
            )
        session = self.tokens.check_bearer(token)
        ext = self.store.extensions.get(session.owner_id)
        if ext is None:
            raise rc_error(401, "OAU-213", "Token not found", top_code="TokenInvalid")
        return Caller(session, ext)

    def api_call(self, request: Request, group: str, *, scope: str | None = None) -> Caller:
        """Authenticate, then count the request in its rate-limit group (429 when over)."""
        caller = self.authenticate(request)
        self.throttle(request, caller.client_id, str(caller.extension.id), group)
        if scope is not None and not caller.has_scope(scope):
            raise rc_error(
                403, "CMN-401", f"In order to call this API endpoint, application needs to have "
                f"[{scope}] permission", top_code="InsufficientPermissions",
                permissionName=scope,
            )
        return caller

    def throttle(self, request: Request, client_id: str, owner: str, group: str) -> None:
        """Count the request in ``group`` (429 when over). A pending ``status`` fault of
        this request (see ``RcMiddleware``) fires here, where the route's real group is
        known: an injected 429 is not counted (like a real one), an injected 5xx is."""
        request.scope["rc_group"] = group
        rule = request.scope.pop("rc_status_fault", None)
        now = self.clock.now()
        if rule is not None and int(rule.params.get("status", 503)) == 429:
            peeked = self.limiter.headers(self.limiter.peek(client_id, owner, group, now))
            fault = fault_error(rule.params, peeked)
            request.scope["rc_rate_headers"] = {}
            raise fault
        decision = self.limiter.check(client_id, owner, group, now)
        headers = self.limiter.headers(decision)
        request.scope["rc_rate_headers"] = headers
        if not decision.allowed:
            raise rc_error(
                429, "CMN-301", "Request rate exceeded",
                headers={**headers, "Retry-After": str(decision.retry_after)},
            )
        if rule is not None:
            raise fault_error(rule.params, headers)

    def account(self, caller: Caller, account_id: str) -> int:
        if account_id in ("~", str(self.store.account_id)):
            return self.store.account_id
        raise not_found("accountId")

    def extension(self, caller: Caller, account_id: str, ext_id: str) -> Extension:
        """Resolve ``~``; a non-admin reading another extension gets 403 CMN-419 (D5)."""
        self.account(caller, account_id)
        if ext_id == "~":
            return caller.extension
        try:
            ext = self.store.extensions.get(int(ext_id))
        except ValueError:
            raise not_found("extensionId") from None
        if ext is None:
            raise not_found("extensionId")
        if ext.id != caller.extension.id and not caller.is_admin:
            raise rc_error(
                403, "CMN-419",
                "In order to call this API endpoint for another extension, user needs to have "
                "[ReadMessages] permission granted with extended scope",
            )
        return ext


# -- formatting helpers ------------------------------------------------------------------------

def iso(ts: float, millis: bool = True) -> str:
    """UTC timestamp as RingCentral writes it: ``2018-10-08T09:17:27.000Z``."""
    dt = datetime.fromtimestamp(ts, UTC)
    if millis:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_date(value: str, param: str) -> float:
    """Accept the documented query date forms (K2); anything else is CMN-101 (K3)."""
    text = value.strip()
    try:
        if len(text) == 4 and text.isdigit():
            return datetime(int(text), 1, 1, tzinfo=UTC).timestamp()
        if len(text) == 7 and text[4] == "-":
            return datetime(int(text[:4]), int(text[5:]), 1, tzinfo=UTC).timestamp()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise invalid_param(param) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(timezone(timedelta(0))).timestamp()


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, indent=1, ensure_ascii=False).encode("utf-8")
    return Response(body, status, headers=headers, media_type="application/json; charset=UTF-8")


def emulator_of(request: Request) -> Emulator:
    emu: Emulator = request.app.state.emu
    emu.tick()
    return emu


def enum_param(request: Request, name: str, allowed: set[str] | tuple[str, ...]) -> list[str]:
    """A repeatable enum query parameter (A7); an unknown value is CMN-101 (D3)."""
    values = request.query_params.getlist(name)
    for v in values:
        if v not in allowed:
            raise invalid_param(name)
    return values


def int_param(request: Request, name: str, default: int, lo: int = 1,
              hi: int | None = None, clamp: bool = False) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_param(name) from None
    if value < lo:
        raise invalid_param(name)
    if hi is not None and value > hi:
        if clamp:
            return hi
        raise invalid_param(name)
    return value
