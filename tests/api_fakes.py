"""httpx.MockTransport stand-ins for RingCentral, for rcfs.api unit tests: ``FakeRC`` (the
token endpoint and scripted API answers, behind a real ``RcClient``) and ``FakeClient``
(RcClient's request/stream surface over a handler written per test)."""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from rcfs.api import Credentials, RcClient, TokenSet
from rcfs.api.content import ContentError, RangeReader, StreamingClient, fetch_range
from rcfs.api.errors import ApiError
from rcfs.api.scheduler import Priority

PLATFORM = "https://platform.example.com"
MEDIA = "https://media.example.com"
# API paths the client tests ask for: a listing (Light) and a content download (Heavy).
MSG = "/restapi/v1.0/account/~/extension/~/message-store"
CONTENT = "/restapi/v1.0/account/1/extension/2/message-store/3/content/4"
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


Handler = Callable[[httpx.Request], httpx.Response]


class FakeClient:
    """RcClient's surface over a MockTransport. ``attach_headers=False`` mimics a client whose
    ApiError lacks the response headers (so a 416's ``Content-Range`` is unknown)."""

    def __init__(self, handler: Handler, *, attach_headers: bool = True) -> None:
        self.platform_url = PLATFORM
        self.media_url = MEDIA
        self.sent: list[httpx.Request] = []
        self.attach_headers = attach_headers

        def record(request: httpx.Request) -> httpx.Response:
            self.sent.append(request)
            return handler(request)

        self.http = httpx.AsyncClient(transport=httpx.MockTransport(record), base_url=PLATFORM)
        self.calls: list[dict[str, Any]] = []

    def _error(self, response: httpx.Response) -> ApiError:
        exc = ApiError.from_response(response)
        if not self.attach_headers:
            exc.headers = {}
        return exc

    async def request(
        self, method: str, url: str, *, params: Any = None, json: Any = None,
        content: Any = None, files: Any = None, data: Any = None,
        headers: Mapping[str, str] | None = None, priority: Priority = Priority.METADATA,
        deadline: float | None = None, group: str | None = None,
    ) -> httpx.Response:
        self.calls.append({"method": method, "url": url, "params": params, "json": json,
                           "files": files, "data": data, "headers": dict(headers or {}),
                           "priority": priority})
        response = await self.http.request(method, url, params=params, json=json,
                                           content=content, files=files, data=data,
                                           headers=headers)
        if response.status_code >= 400:
            raise self._error(response)
        return response

    async def get_json(self, url: str, *, params: Any = None,
                       priority: Priority = Priority.METADATA,
                       deadline: float | None = None) -> Any:
        response = await self.request("GET", url, params=params, priority=priority,
                                      deadline=deadline)
        return response.json()

    @contextlib.asynccontextmanager
    async def stream(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None, priority: Priority = Priority.INTERACTIVE,
        deadline: float | None = None, group: str | None = None,
    ) -> AsyncIterator[httpx.Response]:
        self.calls.append({"method": method, "url": url, "headers": dict(headers or {}),
                           "priority": priority, "group": group})
        request = self.http.build_request(method, url, headers=headers, params=params)
        response = await self.http.send(request, stream=True)
        try:
            if response.status_code >= 400:
                await response.aread()
                raise self._error(response)
            yield response
        finally:
            await response.aclose()

    def deadline_in(self, seconds: float) -> float:
        return trio.current_time() + seconds

    async def aclose(self) -> None:
        await self.http.aclose()



def payload(n: int, seed: int = 0) -> bytes:
    """``n`` seeded-random bytes: content no compression or pattern can fake."""
    return random.Random(seed).randbytes(n)


# The fake account's extension, for listings answered by a ``FakeClient`` handler.
BASE = f"{PLATFORM}/restapi/v1.0/account/1/extension/2"


def msg(i: int, *, t: str = "2020-01-01T00:00:00.000Z", lm: str | None = None,
        availability: str = "Alive", **extra: Any) -> dict[str, Any]:
    """A message-store record (an SMS with its text attachment) as the API lists it."""
    return {"id": i, "uri": f"{BASE}/message-store/{i}", "type": "SMS",
            "creationTime": t, "lastModifiedTime": lm or t, "availability": availability,
            "direction": "Inbound", "messageStatus": "Received", "readStatus": "Unread",
            "attachments": [{"id": i, "uri": f"{BASE}/message-store/{i}/content/{i}",
                             "type": "Text", "contentType": "text/plain"}], **extra}


def error_response(status: int, code: str, message: str = "", param: str | None = None
                   ) -> httpx.Response:
    """An API error answer: ``errorCode``/``message`` on top and in ``errors[0]``."""
    entry: dict[str, Any] = {"errorCode": code, "message": message}
    if param:
        entry["parameterName"] = param
    return httpx.Response(status, json={**entry, "errors": [entry]})


def query(request: httpx.Request) -> dict[str, list[str]]:
    """A request's query string, every value kept (blank ones too)."""
    return urllib.parse.parse_qs(urllib.parse.urlsplit(str(request.url)).query,
                                 keep_blank_values=True)
