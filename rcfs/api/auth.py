"""OAuth for rcfs: credentials, the token manager, PKCE browser login, logout.

Rules from docs/ringcentral.md §2: refresh proactively (not on 401); refresh is
single-flight, because refresh tokens are single-use and every token call costs one of only 5
Auth requests a minute; persist the rotated refresh token before using the new access token;
never JWT-login per process (each login opens a session, and a 6th session ends one of the
others).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import logging
import math
import secrets
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from rcfs.api.authstate import AuthState
from rcfs.api.errors import (
    ApiError,
    AuthRequiredError,
    DeadlineExceededError,
    LoginError,
    RcError,
)
from rcfs.api.scheduler import Priority
from rcfs.api.tokenstore import TokenSet, TokenStore, state_dir
from rcfs.api.transport import HttpCore, check_origin_url, is_loopback

__all__ = [
    "Credentials", "TokenManager", "TokenSet", "TokenStore", "authorize_url",
    "login_with_browser", "make_pkce", "state_dir",
]

log = logging.getLogger(__name__)

TOKEN_PATH = "/restapi/oauth/token"
REVOKE_PATH = "/restapi/oauth/revoke"
AUTHORIZE_PATH = "/restapi/oauth/authorize"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Token-endpoint answers meaning "this refresh token will never work again".
DEAD_GRANT_CODES = frozenset({"invalid_grant", "OAU-210", "OAU-211", "OAU-213"})


@dataclass(frozen=True)
class Credentials:
    """App registration. ``client_secret=None`` means a public (PKCE) client: no Basic header,
    ``client_id`` in every token request body. ``jwt`` enables the JWT bearer grant."""

    platform_url: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    jwt: str | None = field(default=None, repr=False)
    redirect_uri: str | None = None

    @property
    def public(self) -> bool:
        return self.client_secret is None

    def token_headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.client_secret is not None:
            raw = f"{self.client_id}:{self.client_secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        return headers

    def token_form(self, form: Mapping[str, str]) -> dict[str, str]:
        body = dict(form)
        if self.public:
            body["client_id"] = self.client_id
        return body


@dataclass(eq=False)
class _Flight:
    """One in-progress token acquisition that concurrent callers wait on."""

    done: trio.Event = field(default_factory=trio.Event)
    result: TokenSet | None = None
    error: BaseException | None = None


class TokenManager:
    """Hands out access tokens; refreshes them once for all concurrent callers.

    Implements the transport's ``AuthHook``. ``wall_clock`` (epoch seconds) is injectable for
    tests; token expiry is wall time because it is persisted across processes.
    """

    def __init__(
        self,
        credentials: Credentials,
        core: HttpCore,
        store: TokenStore | None = None,
        *,
        refresh_margin: float = 60.0,
        wall_clock: Callable[[], float] = time.time,
        tokens: TokenSet | None = None,
    ) -> None:
        self.credentials = credentials
        self._core = core
        self._store = store
        self.refresh_margin = refresh_margin
        self._now = wall_clock
        self._tokens = tokens
        self._loaded = tokens is not None or store is None
        self._rejected: str | None = None  # access token the server refused
        self._flight: _Flight | None = None
        self.token_requests = 0  # for status/tests
        self.state = AuthState(wall_clock)  # last auth error and its fix, for status
        # Blocking file I/O (fsync) goes to a thread, one at a time.
        self._fs_limiter = trio.CapacityLimiter(1)

    @property
    def current(self) -> TokenSet | None:
        return self._tokens

    # -- handing out tokens ------------------------------------------------------------

    async def authorization(self, deadline: float) -> str:
        return "Bearer " + await self.access_token(deadline)

    async def rejected(self, authorization: str) -> None:
        self.invalidate(authorization.removeprefix("Bearer "))

    def denied(self, error: ApiError) -> None:
        """An API call was refused for auth or permission reasons (status shows it)."""
        before = [self.state.login_error, *self.state.permission_errors.values()]
        problem = self.state.note(error)
        if problem is not None and all(p is None or (p.code, p.message) != (
                problem.code, problem.message) for p in before):
            log.warning("%s: %s", error, problem.action)  # once per distinct error

    def status(self) -> dict[str, Any]:
        """Who is logged in, until when, and the last auth error with its fix."""
        return self.state.status(self._tokens)

    def invalidate(self, token: str) -> None:
        """The server refused ``token`` (unexpected 401): the next caller refreshes.

        A no-op if the session has moved on already (another caller refreshed), so a burst
        of 401s still causes a single refresh.
        """
        if self._tokens is not None and self._tokens.access_token == token:
            self._rejected = token

    def _usable(self, ts: TokenSet | None) -> bool:
        return (ts is not None and ts.access_token != self._rejected
                and ts.access_valid(self._now(), self.refresh_margin))

    async def access_token(self, deadline: float | None = None) -> str:
        """A valid access token, refreshing (single-flight) when < refresh_margin remains."""
        await self._ensure_loaded()
        if self._usable(self._tokens):
            assert self._tokens is not None
            return self._tokens.access_token
        return (await self._renew(deadline)).access_token

    async def refresh(self, deadline: float | None = None) -> TokenSet:
        """Force a refresh now (joins one already in progress)."""
        await self._ensure_loaded()
        if self._tokens is not None:
            self._rejected = self._tokens.access_token
        return await self._renew(deadline)

    async def _renew(self, deadline: float | None) -> TokenSet:
        while True:
            flight = self._flight
            if flight is None:
                if self._usable(self._tokens):  # someone finished while we were scheduled
                    assert self._tokens is not None
                    return self._tokens
                return await self._lead(deadline)
            with trio.move_on_at(math.inf if deadline is None else deadline) as cs:
                await flight.done.wait()
            if cs.cancelled_caught:
                raise DeadlineExceededError("timed out waiting for the token refresh")
            if flight.result is not None:
                return flight.result
            if isinstance(flight.error, AuthRequiredError | ApiError):
                raise copy.copy(flight.error) from flight.error
            # The leader was cancelled or ran out of time/budget: try again ourselves.

    async def _lead(self, deadline: float | None) -> TokenSet:
        flight = self._flight = _Flight()
        try:
            flight.result = await self._obtain(deadline)
            return flight.result
        except BaseException as exc:
            flight.error = exc
            if isinstance(exc, RcError):
                self.state.note(exc)
            raise
        finally:
            self._flight = None
            flight.done.set()

    async def _obtain(self, deadline: float | None) -> TokenSet:
        """Adopt a newer session from disk, else refresh, else JWT, else give up."""
        disk = await self._load_disk()
        if disk is not None and disk != self._tokens:
            if self._usable(disk):
                log.info("using the session refreshed by another rcfs process")
                self._tokens = disk
                return disk
            if disk.refresh_valid(self._now()):
                self._tokens = disk
        ts = self._tokens
        if ts is not None and ts.refresh_valid(self._now()):
            assert ts.refresh_token is not None
            try:
                return await self._grant(
                    {"grant_type": "refresh_token", "refresh_token": ts.refresh_token},
                    deadline, previous=ts)
            except ApiError as exc:
                if not exc.codes & DEAD_GRANT_CODES:
                    raise
                log.warning("refresh token rejected (%s)", exc.error_code)
        if self.credentials.jwt:
            try:
                return await self._grant(
                    {"grant_type": JWT_GRANT, "assertion": self.credentials.jwt}, deadline)
            except ApiError as exc:
                if exc.codes & DEAD_GRANT_CODES:
                    raise AuthRequiredError(
                        f"JWT credential rejected ({exc.error_code})") from exc
                raise
        raise AuthRequiredError("session expired" if ts is not None else "not logged in")

    async def _grant(
        self, form: Mapping[str, str], deadline: float | None, previous: TokenSet | None = None
    ) -> TokenSet:
        """POST /restapi/oauth/token (group Auth), persist, then publish the result."""
        self.token_requests += 1
        # Retried on 5xx/network errors like a GET (docs/ringcentral.md §2.7: "retry up to 3x"): a
        # lost refresh answer is recoverable because the old refresh token has a grace period.
        response = await self._core.send(
            "POST", TOKEN_PATH, data=self.credentials.token_form(form),
            headers=self.credentials.token_headers(), priority=Priority.INTERACTIVE,
            deadline=deadline, group="Auth", idempotent=True,
        )
        try:
            ts = TokenSet.from_response(
                response.json(), self._now(), previous=previous,
                platform_url=self._core.platform_url, client_id=self.credentials.client_id)
        except ValueError as exc:
            raise RcError(f"malformed token response (HTTP {response.status_code})") from exc
        await self._save(ts)  # before anyone can use the new access token
        self._tokens = ts
        self._rejected = None
        self.state.granted()
        return ts

    async def login_jwt(self, deadline: float | None = None) -> TokenSet:
        """Start a session from the configured JWT credential (``rcfs login --jwt``)."""
        if not self.credentials.jwt:
            raise AuthRequiredError("no JWT credential configured")
        return await self._grant({"grant_type": JWT_GRANT, "assertion": self.credentials.jwt},
                                 deadline)

    async def exchange_code(
        self, code: str, verifier: str, redirect_uri: str, deadline: float | None = None
    ) -> TokenSet:
        """Authorization-code + PKCE exchange; client_id always goes in the body here."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": verifier, "client_id": self.credentials.client_id}
        return await self._grant(form, deadline)

    async def revoke(self, deadline: float | None = None) -> None:
        """End the session server-side (best effort, never retried) and forget it locally."""
        await self._ensure_loaded()
        ts = self._tokens
        if ts is not None:
            token = ts.refresh_token or ts.access_token
            try:
                await self._core.send(
                    "POST", REVOKE_PATH, data=self.credentials.token_form({"token": token}),
                    headers=self.credentials.token_headers(), priority=Priority.INTERACTIVE,
                    deadline=deadline, group="Auth")
            except RcError as exc:
                log.warning("token revocation failed (ignored): %s", exc)
        self._tokens = None
        self._rejected = None
        if self._store is not None:
            await trio.to_thread.run_sync(self._store.clear, limiter=self._fs_limiter)

    # -- persistence -------------------------------------------------------------------

    def _ours(self, ts: TokenSet | None) -> TokenSet | None:
        """Drop a stored session issued to another server or app."""
        if ts is None:
            return None
        if (ts.platform_url not in (None, self._core.platform_url)
                or ts.client_id not in (None, self.credentials.client_id)):
            log.warning("stored session belongs to another server/app; ignoring it")
            return None
        return ts

    async def _load_disk(self) -> TokenSet | None:
        if self._store is None:
            return None
        return self._ours(await trio.to_thread.run_sync(self._store.load, limiter=self._fs_limiter))

    async def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True
            if self._tokens is None:
                self._tokens = await self._load_disk()

    async def _save(self, ts: TokenSet) -> None:
        if self._store is None:
            return
        try:
            await trio.to_thread.run_sync(self._store.save, ts, limiter=self._fs_limiter)
        except OSError as exc:
            # Keep the session usable in memory; the next login will be needed on restart.
            log.error("cannot save the session to %s: %s", self._store.path, exc.strerror)


# -- PKCE browser login (``rcfs login``) -------------------------------------------------


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def make_pkce() -> tuple[str, str]:
    """(verifier, S256 challenge), both base64url without padding."""
    verifier = _b64url(secrets.token_bytes(32))
    return verifier, _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def authorize_url(creds: Credentials, state: str, challenge: str) -> str:
    """The browser login URL (authorization code + PKCE S256)."""
    if not creds.redirect_uri:
        raise ValueError("credentials have no redirect_uri")
    query = urllib.parse.urlencode({
        "response_type": "code",
        "client_id": creds.client_id,
        "redirect_uri": creds.redirect_uri,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    })
    return f"{check_origin_url(creds.platform_url)!s}".rstrip("/") + AUTHORIZE_PATH + "?" + query


async def login_with_browser(
    creds: Credentials,
    open_browser: Callable[[str], object] | None = None,
    timeout: float = 300.0,
    *,
    store: TokenStore | None = None,
    core: HttpCore | None = None,
) -> TokenSet:
    """Run the PKCE flow: listen on the loopback redirect URI, open the login page, take
    ``?code&state``, check ``state``, exchange the code and store the session.

    ``open_browser`` (e.g. ``webbrowser.open``) runs in a thread; without it the URL is
    printed to stderr. ``store`` defaults to the user's state dir.
    """
    redirect = urllib.parse.urlsplit(creds.redirect_uri or "")
    if redirect.scheme != "http" or not redirect.hostname or not is_loopback(redirect.hostname):
        raise ValueError("redirect_uri must be http://<loopback>:<port>/path for rcfs login")
    verifier, challenge = make_pkce()
    state = secrets.token_urlsafe(24)
    url = authorize_url(creds, state, challenge)
    bind = "127.0.0.1" if redirect.hostname == "localhost" else redirect.hostname
    listeners = await trio.open_tcp_listeners(redirect.port or 80, host=bind)
    with trio.move_on_after(timeout) as cs:
        params = await _await_redirect(listeners, redirect.path or "/", url, open_browser)
    if cs.cancelled_caught:
        raise DeadlineExceededError(f"no login completed within {timeout:.0f} s")
    if params.get("error"):
        raise LoginError(f"login refused: {params['error']}: {params.get('error_description', '')}")
    if not secrets.compare_digest(params.get("state", ""), state):
        raise LoginError("login redirect carried the wrong state; nothing was exchanged")
    if not params.get("code"):
        raise LoginError("login redirect carried no code")
    own_core = core is None
    core = core or HttpCore(creds.platform_url)
    try:
        manager = TokenManager(creds, core, store if store is not None else TokenStore())
        assert creds.redirect_uri is not None
        return await manager.exchange_code(params["code"], verifier, creds.redirect_uri)
    finally:
        if own_core:
            await core.aclose()


async def _await_redirect(
    listeners: list[trio.SocketListener],
    path: str,
    url: str,
    open_browser: Callable[[str], object] | None,
) -> dict[str, str]:
    """Serve the loopback listener until the redirect for ``path`` arrives."""
    got: dict[str, str] = {}

    async with trio.open_nursery() as nursery:

        async def handle(stream: trio.SocketStream) -> None:
            try:
                params = await _serve_one(stream, path)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the browser hung up; keep listening
            if params is not None and not got:
                got.update(params)
                nursery.cancel_scope.cancel()

        for listener in listeners:
            nursery.start_soon(trio.serve_listeners, handle, [listener])
        if open_browser is None:
            print(f"Open this URL to log in to RingCentral:\n  {url}", file=sys.stderr)
        else:
            nursery.start_soon(_run_opener, open_browser, url)
    for listener in listeners:
        await listener.aclose()
    return got


async def _run_opener(open_browser: Callable[[str], object], url: str) -> None:
    await trio.to_thread.run_sync(open_browser, url, abandon_on_cancel=True)


_PAGE = ("<!doctype html><meta charset=utf-8><title>rcfs</title>"
         "<p>{}</p><p>You can close this window.</p>")


async def _serve_one(stream: trio.SocketStream, path: str) -> dict[str, str] | None:
    """Minimal HTTP/1.1: read one request head, answer, close. Returns the query of a
    request for ``path`` (else None: favicon, probes)."""
    async with stream:
        head = b""
        with trio.move_on_after(10):
            while b"\r\n\r\n" not in head and len(head) < 16384:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                head += chunk
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != "GET":
            await _reply(stream, 400, "Bad request.")
            return None
        target = urllib.parse.urlsplit(parts[1])
        if target.path != path:
            await _reply(stream, 404, "Not found.")
            return None
        params = dict(urllib.parse.parse_qsl(target.query))
        ok = "code" in params and "error" not in params
        await _reply(stream, 200, "rcfs: login received." if ok else "rcfs: login failed.")
        return params


async def _reply(stream: trio.SocketStream, status: int, text: str) -> None:
    body = _PAGE.format(text).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    try:
        await stream.send_all(head + body)
    except trio.BrokenResourceError:
        pass
