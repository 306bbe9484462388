"""One httpx.AsyncClient behind the scheduler: origin policy, rate headers, retries, errors.

This layer knows nothing of tokens; an optional ``AuthHook`` supplies the Authorization header
and hears about 401s. The token manager itself sends its OAuth calls through here (group
"Auth") with no hook, so token traffic obeys the same budgets as everything else.

``HttpCore.send`` stays one loop of about 100 lines on purpose: each of its branches
(network error, 429, rejected token, 5xx) decides whether this very request may be sent
again, and that retry policy reads best in one place.
"""

from __future__ import annotations

import email.utils
import ipaddress
import logging
import math
import random
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Protocol, cast

import httpcore
import httpx
import trio

from rcfs.api.errors import (
    ApiError,
    DeadlineExceededError,
    ForeignHostError,
    NotSentError,
    RateLimitedError,
    RcError,
    TransportError,
)
from rcfs.api.groups import group_for, route_key
from rcfs.api.scheduler import Priority, RequestScheduler, Slot

log = logging.getLogger(__name__)


def _transport_error(shown: str, exc: Exception) -> RcError:
    """What a request that got no answer raises once it may not be retried: ``NotSentError``
    when it never left (connect, pool), ``DeadlineExceededError`` on a timeout, else a
    ``TransportError``."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return NotSentError(f"{shown}: {type(exc).__name__}: {exc}")
    if isinstance(exc, httpx.TimeoutException):
        return DeadlineExceededError(f"{shown}: {type(exc).__name__}")
    return TransportError(f"{shown}: {type(exc).__name__}: {exc}")

Params = Mapping[str, str | list[str]] | list[tuple[str, str]]

DEFAULT_DEADLINES: Mapping[Priority, float] = {
    Priority.INTERACTIVE: 20.0,
    Priority.LISTING: 60.0,
    Priority.METADATA: 300.0,
    Priority.PREFETCH: 300.0,
    Priority.BACKGROUND: 300.0,
}
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
# 401 codes meaning "this access token is dead, get another" (docs/ringcentral.md §2.9).
TOKEN_REJECTED = frozenset({"OAU-128", "OAU-129", "OAU-213", "TokenInvalid", "OAU-149"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Worth another attempt for idempotent requests; anything else httpx raises is a bug/config.
_RETRYABLE = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
REFUSED_MEMORY_S = 60.0
"""A host that refused a connection (or could not be resolved or reached) this recently is
taken as down: a request that finds it so again fails at once instead of backing off and
retrying. Offline, every uncached read otherwise waited through the retries of its token
and content requests (6-12 s each) before failing with ENETUNREACH. The first refusal
after a connection that worked is still retried (a blip), and any answer clears it."""


def _version() -> str:
    try:
        return metadata.version("rcfs")
    except metadata.PackageNotFoundError:  # pragma: no cover - source checkout without install
        return "0"


USER_AGENT = f"rcfs/{_version()}"


HTTP_READ_BYTES = 1 << 20
"""Bytes asked of the socket per read while receiving a response body. httpcore asks for
64 KiB, and at that size its per-read overhead (h11 events, async generators, one trio
wake-up) makes a 64 MiB download from loopback take 0.19-0.22 s where 1 MiB reads take
0.07-0.10 s (/tmp probe against the emulator, same run); media downloads are what rcfs's
cold reads wait for. A read returns what the socket has, so small responses are unaffected."""


def _tune_httpcore() -> None:
    """Raise httpcore's per-read size (a class attribute it reads as ``self.READ_NUM_BYTES``
    on every body read); left alone if a future httpcore drops or raises it."""
    conn = getattr(httpcore, "AsyncHTTP11Connection", None)
    current = getattr(conn, "READ_NUM_BYTES", None)
    if isinstance(current, int) and current < HTTP_READ_BYTES:
        conn.READ_NUM_BYTES = HTTP_READ_BYTES  # type: ignore[union-attr]


_tune_httpcore()


@dataclass(frozen=True)
class Timeouts:
    """Per-phase httpx timeouts (seconds); the caller's deadline bounds the whole call."""

    connect: float = 10.0
    read: float = 30.0
    write: float = 30.0
    pool: float = 10.0

    def httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write,
                             pool=self.pool)


DEFAULT_TIMEOUTS = Timeouts()


class AuthHook(Protocol):
    """What the transport needs from a token manager."""

    async def authorization(self, deadline: float) -> str:
        """The Authorization header value to send (refreshing first if needed)."""
        ...

    async def rejected(self, authorization: str) -> None:
        """The server refused this header with a token error; forget that token."""
        ...

    def denied(self, error: ApiError) -> None:
        """A call failed with 401/403 (lost session, missing permission): for status."""
        ...


Origin = tuple[str, str, int]


def origin_of(url: httpx.URL) -> Origin:
    """(scheme, host, port) with default ports filled in, lower-cased."""
    scheme = url.scheme.lower()
    return (scheme, url.host.lower(), url.port or _DEFAULT_PORTS.get(scheme, 0))


def is_loopback(host: str) -> bool:
    host = host.lower().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_origin_url(url: str) -> httpx.URL:
    """Validate a configured base URL: https, or http on a loopback host (the emulator)."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    if parsed.scheme == "http" and not is_loopback(parsed.host):
        raise ValueError(f"refusing plain http to a non-loopback host: {url!r}")
    return parsed


def strip_query(url: httpx.URL) -> str:
    return str(url.copy_with(query=None, fragment=None))


def parse_retry_after(value: str | None, now_wall: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent/garbled."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now_wall is None else now_wall)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _int_header(response: httpx.Response, name: str) -> int | None:
    raw = response.headers.get(name)
    try:
        return int(float(raw)) if raw is not None else None
    except ValueError:
        return None


async def close_quietly(response: httpx.Response) -> None:
    """Release the connection even while being cancelled (shielded, bounded)."""
    with trio.CancelScope(shield=True, deadline=trio.current_time() + 5):
        await response.aclose()


class HttpCore:
    """The single httpx client of a session plus the policy every request goes through."""

    def __init__(
        self,
        platform_url: str,
        media_url: str | None = None,
        *,
        scheduler: RequestScheduler | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | str | bool = True,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        user_agent: str = USER_AGENT,
        deadlines: Mapping[Priority, float] = DEFAULT_DEADLINES,
        max_attempts: int = 4,
        max_429_retries: int = 2,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        platform = check_origin_url(platform_url)
        media = check_origin_url(media_url) if media_url else platform
        self.platform_url = str(platform).rstrip("/")
        self.media_url = str(media).rstrip("/")
        self._origins: frozenset[Origin] = frozenset({origin_of(platform), origin_of(media)})
        self.scheduler = scheduler or RequestScheduler()
        self.deadlines = dict(deadlines)
        self.max_attempts = max(1, max_attempts)
        self.max_429_retries = max_429_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._rng = rng or random.Random()
        self._learned: dict[str, str] = {}  # route key -> group the server reported
        self._refused: dict[Origin, float] = {}  # origin -> when it last refused to connect
        if isinstance(verify, str):  # a CA bundle path (the emulator's TLS mode)
            verify = ssl.create_default_context(cafile=verify)
        self._http = httpx.AsyncClient(
            transport=transport,
            verify=verify,
            timeout=timeouts.httpx(),
            follow_redirects=False,
            headers={"User-Agent": user_agent},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def deadline_in(self, seconds: float) -> float:
        """An absolute deadline ``seconds`` from now on trio's clock."""
        return trio.current_time() + seconds

    def default_deadline(self, priority: Priority) -> float:
        return trio.current_time() + self.deadlines.get(priority, 300.0)

    def resolve(self, url: str) -> httpx.URL:
        """Absolute URL for ``url``; refuse anything outside the platform/media origins."""
        if url.startswith("/"):
            return httpx.URL(self.platform_url + url)
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ForeignHostError("<invalid URL>") from exc
        if not parsed.is_absolute_url or origin_of(parsed) not in self._origins:
            shown = strip_query(parsed) if parsed.is_absolute_url else "<relative URL>"
            log.warning("refusing request to foreign origin: %s", shown)
            raise ForeignHostError(shown)
        return parsed

    def guess_group(self, method: str, url: httpx.URL) -> str:
        """Learned server group for this operation, else the spec table's."""
        learned = self._learned.get(route_key(method, url.path))
        return learned or group_for(method, url.path)

    # -- the request loop ----------------------------------------------------------------

    async def send(
        self,
        method: str,
        url: str,
        *,
        params: Params | None = None,
        json: Any = None,
        content: bytes | None = None,
        files: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        priority: Priority = Priority.METADATA,
        deadline: float | None = None,
        group: str | None = None,
        auth: AuthHook | None = None,
        stream: bool = False,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send with budget, retries and error mapping; 2xx/3xx come back, others raise.

        With ``stream=True`` the body is left unread (caller must close the response) and
        the deadline covers only getting the headers; otherwise the body is read too.
        ``idempotent`` overrides the by-method rule for retries (token calls are safe to
        repeat: the old refresh token stays valid for a grace period).
        """
        method = method.upper()
        target = self.resolve(url)
        if deadline is None:
            deadline = self.default_deadline(priority)
        if idempotent is None:
            idempotent = method in IDEMPOTENT
        shown = f"{method} {strip_query(target)}"
        guess = group or self.guess_group(method, target)
        attempt = throttled = 0
        reauthed = False
        while True:
            attempt += 1
            hdrs = dict(headers or {})
            authorization = None
            if auth is not None:
                authorization = await auth.authorization(deadline)
                hdrs["Authorization"] = authorization
            request = self._http.build_request(
                method, target, params=cast(Any, params), json=json, content=content,
                files=files, data=data, headers=hdrs,
            )
            try:
                response, slot = await self._send_once(request, guess, priority, deadline,
                                                       stream, shown)
            except _RETRYABLE as exc:
                if await self._retry_unanswered(exc, shown, attempt, idempotent, deadline):
                    continue
                raise _transport_error(shown, exc) from exc
            except httpx.HTTPError as exc:
                raise TransportError(f"{shown}: {type(exc).__name__}: {exc}") from exc

            actual = self._note_rate_headers(method, target, guess, slot, response)
            status = response.status_code
            if status == 429:
                await self._wait_out_429(response, shown, guess, actual, deadline,
                                         idempotent and throttled < self.max_429_retries)
                throttled += 1
                guess = actual
                continue
            if (status == 401 and auth is not None and authorization and not reauthed
                    and await self._token_rejected(response, shown, auth, authorization)):
                reauthed = True
                continue
            if (status >= 500 and idempotent and attempt < self.max_attempts
                    and await self._retry_5xx(response, shown, status, attempt, deadline)):
                continue
            if status >= 400:
                await close_quietly(response)
                error = ApiError.from_response(response)
                if auth is not None and status in (401, 403):
                    auth.denied(error)
                raise error
            return response

    # The outcomes of one attempt that ``send`` may answer with another attempt: each
    # helper waits as needed and returns True to resend, False when the outcome stands
    # (``_wait_out_429`` raises instead).

    async def _retry_unanswered(self, exc: Exception, shown: str, attempt: int,
                                idempotent: bool, deadline: float) -> bool:
        """No answer (timeout, network, protocol error): back off and say to resend, when
        the request is safe to repeat and the wait fits the deadline."""
        if isinstance(exc, httpx.ConnectError) and self._refused_again(exc):
            log.info("%s failed (%s): its host refused a connection moments ago too, not "
                     "retried", shown, type(exc).__name__)
            return False
        delay = self._backoff(attempt)
        if idempotent and attempt < self.max_attempts and self._fits(delay, deadline):
            log.info("%s failed (%s), retry %d in %.1f s", shown, type(exc).__name__,
                     attempt, delay)
            await trio.sleep(delay)
            return True
        return False

    def _refused_again(self, exc: httpx.ConnectError) -> bool:
        """Note that the request's host refused a connection; True when it had already done
        so within ``REFUSED_MEMORY_S`` (see there)."""
        try:
            origin = origin_of(exc.request.url)
        except RuntimeError:  # an error raised without its request: nothing to remember
            return False
        now = trio.current_time()
        last = self._refused.get(origin)
        self._refused[origin] = now
        return last is not None and now - last < REFUSED_MEMORY_S

    async def _wait_out_429(self, response: httpx.Response, shown: str, guess: str,
                            actual: str, deadline: float, may_retry: bool) -> None:
        """A 429: penalise the group, then wait out the penalty (the caller resends in
        ``actual``), or raise ``RateLimitedError`` when no resend is allowed or in time."""
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        resume = self._penalize(guess, actual, retry_after)
        log.warning("%s: 429 in group %s, penalty %.0f s", shown, actual,
                    60.0 if retry_after is None else retry_after)
        if may_retry and resume <= deadline:
            await close_quietly(response)
            # This very request waits out the penalty too (docs/ringcentral.md
            # §3.3: nothing is sent in the group meanwhile), whatever group the
            # scheduler would queue it in next (a caller-pinned group, a group
            # without limits): its resend is the one RingCentral punishes first.
            await trio.sleep_until(resume)
            return
        await close_quietly(response)
        raise RateLimitedError.from_429(response, retry_after, actual)

    async def _token_rejected(self, response: httpx.Response, shown: str, auth: AuthHook,
                              authorization: str) -> bool:
        """A 401 naming a rejected access token: have it refreshed and say to resend."""
        err = ApiError.from_response(response)
        if err.codes & TOKEN_REJECTED:
            log.info("%s: access token rejected (%s), refreshing", shown, err.error_code)
            await close_quietly(response)
            await auth.rejected(authorization)
            return True
        return False

    async def _retry_5xx(self, response: httpx.Response, shown: str, status: int,
                         attempt: int, deadline: float) -> bool:
        """A server error on a request safe to repeat: back off (a 503's Retry-After
        first) and say to resend, when the wait fits the deadline."""
        delay = self._backoff(attempt)
        if status == 503:
            delay = parse_retry_after(response.headers.get("Retry-After")) or delay
        if self._fits(delay, deadline):
            log.info("%s: HTTP %d, retry %d in %.1f s", shown, status, attempt, delay)
            await close_quietly(response)
            await trio.sleep(delay)
            return True
        return False

    async def _send_once(
        self,
        request: httpx.Request,
        group: str,
        priority: Priority,
        deadline: float,
        stream: bool,
        shown: str,
    ) -> tuple[httpx.Response, Slot]:
        """One attempt: wait for budget, send, and (unless streaming a 2xx) read the body."""
        async with self.scheduler.slot(group, priority, deadline) as slot:
            try:
                with trio.move_on_at(deadline) as cs:
                    response = await self._http.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
                self.scheduler.refund(slot)  # never reached the server
                raise
            if cs.cancelled_caught:
                raise DeadlineExceededError(f"{shown}: no response before the deadline")
            if self._refused:
                self._refused.pop(origin_of(request.url), None)  # it answers again
        log.debug("%s -> %d", shown, response.status_code)
        if stream and response.status_code < 400:
            return response, slot
        try:
            with trio.move_on_at(deadline) as cs:
                await response.aread()
            if cs.cancelled_caught:
                raise DeadlineExceededError(f"{shown}: body not read before the deadline")
        except BaseException:
            await close_quietly(response)
            raise
        return response, slot

    def _note_rate_headers(
        self, method: str, target: httpx.URL, guess: str, slot: Slot, response: httpx.Response
    ) -> str:
        """Feed X-Rate-Limit-* to the scheduler; return the group actually charged."""
        actual = response.headers.get("X-Rate-Limit-Group") or guess
        if actual.lower() != slot.group:
            log.debug("%s %s charged to %s, not %s", method, target.path, actual, guess)
            self.scheduler.rekey(slot, actual)
            self._learned[route_key(method, target.path)] = actual
        limit = _int_header(response, "X-Rate-Limit-Limit")
        window = _int_header(response, "X-Rate-Limit-Window")
        # A 429's "Remaining: 0" describes the penalty, which Retry-After already times.
        remaining = (None if response.status_code == 429
                     else _int_header(response, "X-Rate-Limit-Remaining"))
        if limit is not None or remaining is not None or window is not None:
            self.scheduler.observe(actual, limit, remaining, window)
        return actual

    def _penalize(self, guess: str, actual: str, retry_after: float | None) -> float:
        """Silence the group the server named and the one this request was queued in (they
        differ when a caller pinned the group or the server's label is wrong: both must
        wait, or the route's next request goes out into the penalty). Returns when sending
        may resume."""
        resume = self.scheduler.penalize(actual, retry_after)
        if guess.lower() != actual.lower():
            resume = max(resume, self.scheduler.penalize(guess, retry_after, count=False))
        return resume

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return self._rng.uniform(0, ceiling)

    @staticmethod
    def _fits(delay: float, deadline: float) -> bool:
        return trio.current_time() + delay < deadline

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Params | None = None,
        priority: Priority = Priority.INTERACTIVE,
        deadline: float | None = None,
        group: str | None = None,
        auth: AuthHook | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """Like ``send`` but yields the response with its body unread; always closes it."""
        response = await self.send(method, url, headers=headers, params=params,
                                   priority=priority, deadline=deadline, group=group,
                                   auth=auth, stream=True)
        try:
            yield response
        finally:
            await close_quietly(response)
