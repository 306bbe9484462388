"""Where content bytes come from: the small interface the reader depends on, and the real
adapter over ``rcfs.api.content.fetch_range``.

The reader never speaks HTTP. It asks a ``ContentSource`` for "the object from byte ``start``
to its end" and consumes exact ``(offset, bytes)`` pieces; tests inject an in-memory source.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from rcfs.api.content import DEFAULT_MAX_CONTINUATIONS, StreamingClient, fetch_range
from rcfs.api.errors import ApiError
from rcfs.api.scheduler import Priority

__all__ = ["ApiContentSource", "ContentBody", "ContentRef", "ContentSource", "SpareBudget"]


@dataclass(frozen=True)
class ContentRef:
    """One immutable content object: a message attachment, a call recording, a greeting.

    ``kind`` + ``ids`` name it for the cache (content never changes for a given id, so no
    version is needed); ``uri`` is the server-given content URI; ``group`` is the throttling
    group its GET is charged to ("Medium" for attachments, "Heavy" for recordings and
    greetings); ``size``/``content_type`` are the API's metadata when it has any.
    """

    kind: str
    ids: tuple[str, ...]
    uri: str
    group: str = "Medium"
    size: int | None = None
    content_type: str | None = None

    @property
    def key(self) -> str:
        return "/".join((self.kind, *self.ids))


class ContentBody(Protocol):
    """An open download: contiguous exact pieces from the requested start (see
    ``rcfs.api.content.RangeReader``, which satisfies this)."""

    total_size: int | None
    content_type: str | None
    requests: int

    @property
    def size_proven(self) -> bool:
        """``total_size`` is proved, not just a 200's Content-Length."""
        ...

    def __aiter__(self) -> AsyncIterator[tuple[int, bytes]]: ...


class ContentSource(Protocol):
    """Opens downloads and tells how much spare budget a group has."""

    def open(self, ref: ContentRef, start: int, *, priority: Priority,
             deadline: float | None) -> AbstractAsyncContextManager[ContentBody]:
        """Bytes ``start..EOF`` of ``ref``; the first request is sent on entry (so a 404 or a
        budget error raises from ``async with``)."""
        ...

    def spare(self, group: str) -> int:
        """Requests that low-priority work may still send in ``group`` right now."""
        ...

    def describe(self, group: str) -> str:
        """The state of ``group``'s budget in words (why a download has to wait)."""
        ...


class SpareBudget(Protocol):
    def spare(self, group: str) -> int: ...


class ApiContentSource:
    """The real source: ``fetch_range`` over the RingCentral client (``RcClient``, whose
    ``scheduler`` tells the spare budget).

    ``renew`` gives a current URI for content whose URI can expire (export archives): a
    404 on opening asks it once and retries with the URI it returns.
    """

    def __init__(self, client: StreamingClient, scheduler: SpareBudget | None = None, *,
                 max_continuations: int = DEFAULT_MAX_CONTINUATIONS,
                 renew: Callable[[ContentRef], Awaitable[str | None]] | None = None) -> None:
        self._client = client
        self._scheduler = scheduler
        self._max_continuations = max_continuations
        self.renew = renew

    def open(self, ref: ContentRef, start: int, *, priority: Priority,
             deadline: float | None) -> AbstractAsyncContextManager[ContentBody]:
        return self._open(ref, start, priority, deadline)

    @contextlib.asynccontextmanager
    async def _open(self, ref: ContentRef, start: int, priority: Priority,
                    deadline: float | None) -> AsyncIterator[ContentBody]:
        def fetch(uri: str) -> AbstractAsyncContextManager[ContentBody]:
            return fetch_range(self._client, uri, start, None, priority=priority,
                               deadline=deadline, group=ref.group,
                               max_continuations=self._max_continuations)

        async with contextlib.AsyncExitStack() as stack:
            try:
                body = await stack.enter_async_context(fetch(ref.uri))
            except ApiError as exc:
                if exc.status not in (404, 410) or self.renew is None:
                    raise
                fresh = await self.renew(ref)
                if not fresh or fresh == ref.uri:
                    raise
                body = await stack.enter_async_context(fetch(fresh))
            yield body

    def spare(self, group: str) -> int:
        return self._scheduler.spare(group) if self._scheduler is not None else 0

    def describe(self, group: str) -> str:
        sched = self._scheduler
        next_free = getattr(sched, "next_free", None)
        queue = getattr(sched, "queue", None)
        if next_free is None or queue is None:
            return "budget state unknown"
        waiting = sum(q["waiting"] for q in queue(group).values())
        return f"next free slot in {next_free(group):.1f} s, {waiting} request(s) queued"
