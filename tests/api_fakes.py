"""An httpx.MockTransport stand-in for RingCentral, for rcfs.api unit tests."""

from __future__ import annotations

import itertools
import json
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from rcfs.api import Credentials, RcClient, TokenSet
from rcfs.api.content import ContentError, RangeReader, StreamingClient, fetch_range

PLATFORM = "https://platform.example.com"
MEDIA = "https://media.example.com"
SECRET_MARKERS = ("AT-secret", "RT-secret", "client-secret-xyz", "jwt-secret")

Route = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response] | None]


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    entry = {"errorCode": code, "message": message, **extra}
    return {"errorCode": code, "message": message, "errors": [entry], **extra}


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(body).encode(),
                          headers={"Content-Type": "application/json", **(headers or {})})


@dataclass
class FakeRC:
    """Token endpoint + scripted API answers. ``script`` items are consumed in order for API
    calls (a Response, an exception to raise, or a callable); when empty, 200 ``{}``."""

    access_lifetime: float = 3600
    script: list[Any] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    token_forms: list[dict[str, str]] = field(default_factory=list)
    token_headers: list[httpx.Headers] = field(default_factory=list)
    token_delay: float = 0.0
    token_error: httpx.Response | None = None
    jwt_error: httpx.Response | None = None
    valid_access: set[str] = field(default_factory=lambda: {"AT-secret-0"})
    _n: Any = field(default_factory=lambda: itertools.count(1))

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/restapi/oauth/token":
            return await self._token(request)
        if request.url.path == "/restapi/oauth/revoke":
            return httpx.Response(200)
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, BaseException):
                raise item
            if callable(item):
                item = item(request)
                if not isinstance(item, httpx.Response):
                    item = await item
            assert isinstance(item, httpx.Response)
            return item
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in self.valid_access:
            return json_response(401, error_body("OAU-129", "Access token corrupted"))
        return json_response(200, {"ok": True},
                             {"X-Rate-Limit-Group": "Light", "X-Rate-Limit-Limit": "50",
                              "X-Rate-Limit-Remaining": "49", "X-Rate-Limit-Window": "60"})

    async def _token(self, request: httpx.Request) -> httpx.Response:
        form = dict(urllib.parse.parse_qsl(request.content.decode()))
        self.token_forms.append(form)
        self.token_headers.append(request.headers)
        if self.token_delay:
            await trio.sleep(self.token_delay)
        if form.get("grant_type") == "refresh_token" and self.token_error is not None:
            return self.token_error
        if form.get("grant_type", "").endswith("jwt-bearer") and self.jwt_error is not None:
            return self.jwt_error
        n = next(self._n)
        self.valid_access = {f"AT-secret-{n}"}
        return json_response(200, {
            "access_token": f"AT-secret-{n}", "token_type": "bearer",
            "expires_in": self.access_lifetime, "refresh_token": f"RT-secret-{n}",
            "refresh_token_expires_in": 604799, "scope": "ReadMessages", "owner_id": "101",
            "endpoint_id": "ep"}, {"X-Rate-Limit-Group": "Auth", "X-Rate-Limit-Limit": "5",
                                   "X-Rate-Limit-Remaining": "4", "X-Rate-Limit-Window": "60"})

    def api_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if not r.url.path.startswith("/restapi/oauth/")]


def creds(secret: str | None = "client-secret-xyz", jwt: str | None = None,
          platform: str = PLATFORM) -> Credentials:
    return Credentials(platform_url=platform, client_id="client-id-1", client_secret=secret,
                       jwt=jwt, redirect_uri="http://127.0.0.1:0/callback")


def tokens(access: str = "AT-secret-0", expires_in: float = 3600,
           refresh: str | None = "RT-secret-0") -> TokenSet:
    now = time.time()
    return TokenSet(access_token=access, refresh_token=refresh, expires_at=now + expires_in,
                    refresh_expires_at=now + 86400, owner_id="101", scope="ReadMessages")


_DEFAULT: Any = object()


def client(fake: FakeRC, *, media: str = MEDIA, ts: TokenSet | None = _DEFAULT,
           credentials: Credentials | None = None, **kw: Any) -> RcClient:
    """An RcClient on the fake; ``ts=None`` starts without a session (e.g. to load a store)."""
    return RcClient(credentials or creds(), media_url=media, transport=fake.transport(),
                    tokens=tokens() if ts is _DEFAULT else ts, **kw)


async def read_all(body: RangeReader, max_bytes: int | None = None) -> bytes:
    """The rest of ``body``'s range in memory (``max_bytes`` guards against surprises);
    tests only: the product streams pieces into the block cache."""
    buf = bytearray()
    expected = body.position
    async for offset, chunk in body:
        if offset != expected:
            raise ContentError(f"non-contiguous piece at {offset}, expected {expected}")
        buf += chunk
        expected += len(chunk)
        if max_bytes is not None and len(buf) > max_bytes:
            raise ContentError(f"content larger than {max_bytes} bytes")
    return bytes(buf)


async def download(client: StreamingClient, uri: str, *, max_bytes: int | None = None) -> bytes:
    """A whole object in memory (tests only: the product streams into the block cache)."""
    async with fetch_range(client, uri, 0, None) as body:
        return await read_all(body, max_bytes)
