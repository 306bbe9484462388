"""Exceptions raised by the RingCentral client.

The FUSE layer maps these to errno in one table; nothing here knows about FUSE. Every class
pickles (``__reduce__`` mirrors the constructor) so errors can cross process boundaries, and
no ``__str__`` ever includes a token: messages are built from status, error code and the
server's message only.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

# Server messages are echoed into str(exc); cap them so a huge HTML error page stays readable.
_MAX_MESSAGE = 300


class RcError(Exception):
    """Base class of every error raised by ``rcfs.api``."""


class ApiError(RcError):
    """The server answered with a non-2xx status.

    ``error_code`` is RingCentral's code (top-level ``errorCode``, else ``errors[0].errorCode``,
    else the OAuth ``error``). Clients must key on it, never on ``message`` (localised).
    """

    def __init__(
        self,
        status: int,
        error_code: str | None = None,
        message: str = "",
        parameter_name: str | None = None,
        body: Any = None,
        oauth_error: str | None = None,
        url: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, error_code, message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.parameter_name = parameter_name
        self.body = body
        self.oauth_error = oauth_error
        self.url = url
        # Response headers (lower-case names, no Set-Cookie): a 416's Content-Range, a 503's
        # Retry-After, RCRequestId for support tickets.
        self.headers = headers or {}

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            type(self),
            (self.status, self.error_code, self.message, self.parameter_name, self.body,
             self.oauth_error, self.url, self.headers),
        )

    def __str__(self) -> str:
        code = f" {self.error_code}" if self.error_code else ""
        msg = self.message[:_MAX_MESSAGE]
        where = f" ({self.url})" if self.url else ""
        sep = ": " if msg else ""
        return f"HTTP {self.status}{code}{sep}{msg}{where}"

    @property
    def codes(self) -> frozenset[str]:
        """Every error code in the body: top-level, each ``errors[]`` entry, OAuth ``error``."""
        return frozenset(error_codes(self.body))

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        """Parse RingCentral's error body; tolerate non-JSON (gateway pages, empty bodies).

        The response body must already be read. ``url`` is recorded without its query string.
        """
        body = _parse_body(response)
        code, message, param, oauth = _fields(body)
        if not message:
            message = response.reason_phrase or ""
        url = str(response.request.url.copy_with(query=None)) if _has_request(response) else None
        headers = {k.lower(): v for k, v in response.headers.items() if k.lower() != "set-cookie"}
        return cls(response.status_code, code, message, param, body, oauth, url, headers)


class RateLimitedError(ApiError):
    """A 429 reached us (the scheduler's estimate was wrong, or another client shares the
    budget). ``retry_after`` is the server's penalty in seconds (None when absent)."""

    def __init__(
        self,
        status: int = 429,
        error_code: str | None = None,
        message: str = "",
        parameter_name: str | None = None,
        body: Any = None,
        oauth_error: str | None = None,
        url: str | None = None,
        headers: dict[str, str] | None = None,
        retry_after: float | None = None,
        group: str | None = None,
    ) -> None:
        super().__init__(status, error_code, message, parameter_name, body, oauth_error, url,
                         headers)
        self.retry_after = retry_after
        self.group = group

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            type(self),
            (self.status, self.error_code, self.message, self.parameter_name, self.body,
             self.oauth_error, self.url, self.headers, self.retry_after, self.group),
        )

    @classmethod
    def from_429(cls, response: httpx.Response, retry_after: float | None,
                 group: str | None) -> RateLimitedError:
        base = ApiError.from_response(response)
        return cls(base.status, base.error_code, base.message, base.parameter_name, base.body,
                   base.oauth_error, base.url, base.headers, retry_after, group)


class BudgetExhaustedError(RcError):
    """The caller's deadline passes before the group's budget (or penalty) frees a slot.

    Raised *before* waiting, so an interactive read fails fast instead of hanging.
    """

    def __init__(self, group: str, wait_s: float) -> None:
        super().__init__(group, wait_s)
        self.group = group
        self.wait_s = wait_s

    def __str__(self) -> str:
        return f"{self.group} budget empty for {self.wait_s:.1f} s"


class DeadlineExceededError(RcError):
    """The network was too slow, or retries were exhausted, within the caller's deadline."""


class AuthRequiredError(RcError):
    """No usable session: the refresh token is gone and no JWT credential is configured."""

    def __init__(self, message: str = "not logged in") -> None:
        if "rcfs login" not in message:
            message = f"{message}: run `rcfs login`"
        super().__init__(message)


class ForeignHostError(RcError):
    """A URL is not on the platform/media origin allowlist; it is never fetched (and would
    never get our bearer token). ``url`` excludes the query string."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url

    def __str__(self) -> str:
        return f"refusing URL outside the RingCentral origins: {self.url}"


class TransportError(RcError):
    """Connection-level failure (connect/read/protocol error) after the allowed retries."""


class NotSentError(TransportError):
    """The request never left this machine (connection refused, connect timeout, no pooled
    connection): even a POST may be sent again without asking the server what happened."""


class LoginError(RcError):
    """Interactive login failed: the browser flow returned an error or a forged ``state``."""


def error_codes(body: Any) -> list[str]:
    """All error codes in a RingCentral/OAuth error body, top-level first."""
    if not isinstance(body, dict):
        return []
    out: list[str] = []
    top = body.get("errorCode")
    if isinstance(top, str):
        out.append(top)
    for entry in body.get("errors") or []:
        if isinstance(entry, dict) and isinstance(entry.get("errorCode"), str):
            out.append(entry["errorCode"])
    if isinstance(body.get("error"), str):
        out.append(body["error"])
    return out


def _has_request(response: httpx.Response) -> bool:
    try:
        response.request  # noqa: B018 - raises RuntimeError when unset
    except RuntimeError:
        return False
    return True


def _parse_body(response: httpx.Response) -> Any:
    raw = response.content
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw[:2000].decode("utf-8", "replace")


def _fields(body: Any) -> tuple[str | None, str, str | None, str | None]:
    """(error_code, message, parameter_name, oauth_error) from an error body."""
    if not isinstance(body, dict):
        return None, (body.strip()[:_MAX_MESSAGE] if isinstance(body, str) else ""), None, None
    entries = [e for e in body.get("errors") or [] if isinstance(e, dict)]
    first: dict[str, Any] = entries[0] if entries else {}
    oauth = body.get("error") if isinstance(body.get("error"), str) else None
    code = body.get("errorCode") or first.get("errorCode") or oauth
    message = (body.get("message") or first.get("message")
               or body.get("error_description") or "")
    param = body.get("parameterName") or first.get("parameterName")
    return (
        str(code) if code is not None else None,
        str(message),
        str(param) if param is not None else None,
        oauth,
    )
