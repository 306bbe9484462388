"""Paged listings (``Pager``) and the query-parameter helpers the typed calls share.

The paging rules (follow ``navigation.nextPage.uri``, stop on a repeated URI, skip ids
already yielded, skip one unparsable record rather than fail the listing) are explained in
the ``rcfs.api.listing`` docstring, next to the calls that use them.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from rcfs.api.models import ModelError
from rcfs.api.protocol import ApiClient
from rcfs.api.scheduler import Priority

__all__ = ["PER_PAGE", "Pager", "Params", "as_list", "put_list"]

log = logging.getLogger(__name__)

PER_PAGE = 1000
"""The server's maximum page size: fewest requests per listing."""

T = TypeVar("T")
Params = dict[str, str | list[str]]


def as_list(value: str | Iterable[str] | None) -> list[str]:
    """A query array from one value, several, or none."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def put_list(params: Params, key: str, value: str | Iterable[str] | None) -> None:
    """Query arrays are repeated keys (``messageType=SMS&messageType=Fax``)."""
    values = as_list(value)
    if values:
        params[key] = values


class Pager(Generic[T]):
    """Async iterator over every record of a paged listing (see the ``rcfs.api.listing`` docstring).

    ``pages`` counts requests made, ``skipped`` unparsable records; ``collect()`` returns a
    list. The first request goes to ``path`` with ``params``; later ones to the server's
    ``navigation.nextPage.uri`` verbatim.
    """

    def __init__(
        self,
        client: ApiClient,
        path: str,
        params: Params,
        parse: Callable[[Any], T],
        key: Callable[[T], str],
        *,
        priority: Priority = Priority.LISTING,
        deadline: float | None = None,
        what: str = "record",
    ) -> None:
        self._client = client
        self._path = path
        self._params = params
        self._parse = parse
        self._key = key
        self._priority = priority
        self._deadline = deadline
        self._what = what
        self._buffer: deque[T] = deque()
        self._next: str | None = None
        self._started = False
        self._done = False
        self._visited: set[str] = set()
        self._seen: set[str] = set()
        self.pages = 0
        self.skipped = 0

    def __aiter__(self) -> Pager[T]:
        return self

    async def __anext__(self) -> T:
        while not self._buffer:
            if self._done:
                raise StopAsyncIteration
            await self._fetch()
        return self._buffer.popleft()

    async def collect(self) -> list[T]:
        return [item async for item in self]

    async def _fetch(self) -> None:
        # State changes only after a page arrived: after an error (budget, deadline) the
        # same page is asked again by the next __anext__.
        if not self._started:
            data = await self._client.get_json(self._path, params=self._params,
                                               priority=self._priority, deadline=self._deadline)
            self._started = True
        else:
            assert self._next is not None
            data = await self._client.get_json(self._next, priority=self._priority,
                                               deadline=self._deadline)
        self.pages += 1
        if not isinstance(data, Mapping):
            raise ModelError(f"listing {self._path} returned {type(data).__name__}, not an object")
        records = data.get("records")
        records = records if isinstance(records, list) else []
        for raw in records:
            try:
                item = self._parse(raw)
            except ModelError as exc:
                self.skipped += 1
                log.warning("skipping unparsable %s in %s: %s", self._what, self._path, exc)
                continue
            key = self._key(item)
            if key in self._seen:
                continue
            self._seen.add(key)
            self._buffer.append(item)
        nav = data.get("navigation")
        next_page = nav.get("nextPage") if isinstance(nav, Mapping) else None
        uri = next_page.get("uri") if isinstance(next_page, Mapping) else None
        if not records or not isinstance(uri, str) or not uri:
            self._done = True
        elif uri in self._visited:
            log.warning("listing %s: next page %s repeats; stopping", self._path, uri)
            self._done = True
        else:
            self._visited.add(uri)
            self._next = uri
