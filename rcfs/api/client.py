"""RcClient: the RingCentral API as listing/sync/content/upload code sees it.

Composition only: an ``HttpCore`` (one httpx.AsyncClient, scheduler, retries, origin policy)
plus a ``TokenManager`` that supplies bearer tokens. Knows nothing of FUSE.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any

import httpx

from rcfs.api.auth import Credentials, TokenManager
from rcfs.api.scheduler import Priority, RequestScheduler
from rcfs.api.tokenstore import TokenSet, TokenStore
from rcfs.api.transport import (
    DEFAULT_DEADLINES,
    DEFAULT_TIMEOUTS,
    USER_AGENT,
    HttpCore,
    Params,
    Timeouts,
)


def default_media_url(platform_url: str) -> str:
    """``https://platform.X`` → ``https://media.X``; other hosts (the emulator) serve both."""
    url = httpx.URL(platform_url)
    if url.host.startswith("platform."):
        return str(url.copy_with(host="media." + url.host.removeprefix("platform.")))
    return platform_url


class RcClient:
    """Authenticated, rate-limited access to one RingCentral account.

    Use ``async with RcClient(creds, ...) as client`` (or ``await RcClient.create(...)`` and
    ``aclose()``). ``url`` arguments are ``/restapi/...`` paths (joined to the platform URL) or
    absolute URLs on the platform/media origins; anything else raises ForeignHostError.
    ``deadline`` is absolute trio time (see ``deadline_in``); when None it defaults by
    priority (INTERACTIVE 20 s, LISTING 60 s, others 300 s).
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        media_url: str | None = None,
        store: TokenStore | None = None,
        tokens: TokenSet | None = None,
        scheduler: RequestScheduler | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | str | bool = True,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        deadlines: Mapping[Priority, float] = DEFAULT_DEADLINES,
        refresh_margin: float = 60.0,
        user_agent: str = USER_AGENT,
        **core_options: Any,
    ) -> None:
        self.credentials = credentials
        self._core = HttpCore(
            credentials.platform_url,
            media_url or default_media_url(credentials.platform_url),
            scheduler=scheduler, transport=transport, verify=verify, timeouts=timeouts,
            deadlines=deadlines, user_agent=user_agent, **core_options,
        )
        self.tokens = TokenManager(credentials, self._core, store,
                                   refresh_margin=refresh_margin, tokens=tokens)

    @classmethod
    async def create(cls, credentials: Credentials, **kwargs: Any) -> RcClient:
        """Async factory (for callers that manage ``aclose`` themselves)."""
        return cls(credentials, **kwargs)

    async def __aenter__(self) -> RcClient:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._core.aclose()

    @property
    def scheduler(self) -> RequestScheduler:
        return self._core.scheduler

    @property
    def platform_url(self) -> str:
        return self._core.platform_url

    @property
    def media_url(self) -> str:
        return self._core.media_url

    @property
    def core(self) -> HttpCore:
        """The unauthenticated layer (token calls, tests)."""
        return self._core

    def deadline_in(self, seconds: float) -> float:
        """Absolute deadline ``seconds`` from now on trio's clock."""
        return self._core.deadline_in(seconds)

    async def request(
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
    ) -> httpx.Response:
        """Send one API call and return the response with its body read.

        Non-2xx raise ApiError (RateLimitedError for 429); GET/HEAD are retried on 5xx,
        network errors and (when the deadline allows) 429; other methods never are.
        """
        return await self._core.send(
            method, url, params=params, json=json, content=content, files=files, data=data,
            headers=headers, priority=priority, deadline=deadline, group=group,
            auth=self.tokens,
        )

    def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Params | None = None,
        priority: Priority = Priority.INTERACTIVE,
        deadline: float | None = None,
        group: str | None = None,
    ) -> AbstractAsyncContextManager[httpx.Response]:
        """``async with client.stream("GET", uri, headers={"Range": ...}) as resp`` — the body
        is unread; the deadline covers getting the headers, httpx's read timeout the body."""
        return self._stream(method, url, headers=headers, params=params, priority=priority,
                            deadline=deadline, group=group)

    @asynccontextmanager
    async def _stream(self, method: str, url: str, **kwargs: Any) -> AsyncIterator[httpx.Response]:
        async with self._core.stream(method, url, auth=self.tokens, **kwargs) as response:
            yield response

    async def get_json(
        self,
        url: str,
        *,
        params: Params | None = None,
        priority: Priority = Priority.METADATA,
        deadline: float | None = None,
    ) -> Any:
        """GET and decode JSON (Python ints keep the >2^53 conversation ids exact)."""
        response = await self.request("GET", url, params=params, priority=priority,
                                      deadline=deadline)
        return response.json()
