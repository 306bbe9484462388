"""The streamed, ranged, self-healing GET of binary content (attachments, recordings, ...).

Why this exists: media downloads are the scarce resource of rcfs (Medium 40/min for
attachments, Heavy 10/min for recordings and greetings, every ranged GET counted,
docs/ringcentral.md §6.3), and RingCentral's media host is loosely specified (§6.2, §11.1):
it may answer a Range request with a 200 of the whole file or with a 206 shorter than asked,
omit ``Content-Length``, stop early, or reset the connection. Every request carries a Range,
a whole download's too (``bytes=0-``: a 206's Content-Range total proves the size at once).
Whatever the server does, this module has one invariant:

    every ``(offset, chunk)`` it yields is exactly ``object[offset:offset + len(chunk)]``,
    the pieces are contiguous from the requested start, and nothing past the requested end
    (or the object's end) is ever yielded.

When a response stops short (a short 206, an early EOF, a reset), it continues with a new
ranged request from the first missing byte, a bounded number of times (each continuation
costs one request of the group's budget). The caller sees the pieces and, at the end, the
object's total size if any response revealed it.

Usage::

    async with fetch_range(client, uri, 0, None) as body:
        async for offset, chunk in body:
            cache.write(offset, chunk)
    body.total_size  # known once the iteration has finished, whenever the server says it
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import httpx
import trio

from rcfs.api.errors import ApiError, RcError, TransportError
from rcfs.api.scheduler import Priority

__all__ = [
    "DEFAULT_MAX_CONTINUATIONS",
    "ContentChangedError",
    "ContentError",
    "IncompleteContentError",
    "RangeReader",
    "StreamingClient",
    "fetch_range",
    "parse_content_range",
]

DEFAULT_MAX_CONTINUATIONS = 8
"""Extra requests allowed per ``fetch_range`` after the first. Each one is charged to the
group's budget, so the bound keeps a misbehaving server from eating the whole minute."""

_MAX_NO_PROGRESS = 2
"""Consecutive continuations that deliver no new byte before we give up."""

_CLOSE_TIMEOUT = 5.0


class StreamingClient(Protocol):
    """The part of ``RcClient`` this module uses (tests pass fakes with the same method)."""

    def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        priority: Priority = Priority.INTERACTIVE,
        deadline: float | None = None,
        group: str | None = None,
    ) -> AbstractAsyncContextManager[httpx.Response]: ...


class ContentError(RcError):
    """The server's answer cannot be reconciled with the request without risking wrong bytes
    (a 206 starting after the requested offset, no usable Content-Range, an encoded body)."""


class ContentChangedError(ContentError):
    """The object changed between two requests of one download (ETag or total size differ
    from what was already yielded): the bytes so far may belong to another version."""


class IncompleteContentError(ContentError):
    """The body kept stopping short and the continuation budget is spent. ``position`` is the
    first byte not delivered; a caller may resume later from there."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


_CONTENT_RANGE = re.compile(
    r"^\s*bytes\s+(?:(\d+)\s*-\s*(\d+)|\*)\s*/\s*(\d+|\*)\s*$", re.IGNORECASE)


def parse_content_range(value: str | None) -> tuple[int | None, int | None, int | None] | None:
    """Parse ``bytes a-b/total``, ``bytes a-b/*`` or ``bytes */total``.

    Returns ``(first, last, total)`` with ``None`` for ``*`` parts, or ``None`` when the header
    is absent or malformed (including ``last < first`` or ``last >= total``).
    """
    if not value:
        return None
    m = _CONTENT_RANGE.match(value)
    if m is None:
        return None
    first = int(m.group(1)) if m.group(1) is not None else None
    last = int(m.group(2)) if m.group(2) is not None else None
    total = int(m.group(3)) if m.group(3) != "*" else None
    if first is not None and last is not None and last < first:
        return None
    if last is not None and total is not None and last >= total:
        return None
    if first is None and total is None:
        return None
    return first, last, total


def _content_length(headers: httpx.Headers) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() else None


def _headers_of(exc: ApiError) -> httpx.Headers:
    """Headers of an error response: a 416's ``Content-Range: bytes */N`` tells the size."""
    try:
        return httpx.Headers(exc.headers or {})
    except (TypeError, ValueError):
        return httpx.Headers()


class RangeReader:
    """Async iterator of ``(offset, chunk)`` over ``object[start:end + 1]`` (see module doc).

    Attributes a caller may read at any time:

    ``total_size``     the object's size once a response revealed it (Content-Range total,
                       Content-Length of a 200, or a clean EOF); best knowledge until the
                       iteration finishes.
    ``size_proven``    whether ``total_size`` is proved: by a Content-Range total, a 416's
                       ``*/N``, a clean end of a body of unknown length, or every byte up
                       to it yielded. A 200's Content-Length alone is a claim (it can be
                       larger than the body).
    ``content_type``, ``content_disposition``, ``etag``  from the first response.
    ``position``       the next offset to be yielded (== start + bytes yielded).
    ``requests``       HTTP requests sent, ``continuations`` = requests after the first.
    ``discarded``      bytes received but not yielded (a 200 that ignored Range, overlap).
    ``complete``       True once everything asked for (up to EOF) was yielded.

    Instances come from ``fetch_range``; the context manager closes the open response.
    """

    def __init__(
        self,
        client: StreamingClient,
        uri: str,
        start: int,
        end: int | None,
        *,
        priority: Priority,
        deadline: float | None,
        group: str | None,
        max_continuations: int,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        if end is not None and end < start:
            raise ValueError(f"end ({end}) must be >= start ({start}) or None")
        self.uri = uri
        self.start = start
        self.end = end
        self.total_size: int | None = None
        self.content_type: str | None = None
        self.content_disposition: str | None = None
        self.etag: str | None = None
        self.position = start
        self.requests = 0
        self.continuations = 0
        self.discarded = 0
        self.complete = False
        self._client = client
        self._priority = priority
        self._deadline = deadline
        self._group = group
        self._params = params
        self._max_continuations = max_continuations
        self._no_progress = 0
        self._position_at_open = start
        self._stack: contextlib.AsyncExitStack | None = None
        self._body: AsyncIterator[bytes] | None = None
        self._rpos = 0  # absolute offset of the next byte the open response delivers
        self._rend: int | None = None  # inclusive last offset the open response announced
        self._rfinite = False  # the open response's extent is known (rend or total)
        self._closed = False
        self._last_error: BaseException | None = None
        self._total_authoritative = False

    # -- public --------------------------------------------------------------------------

    def __aiter__(self) -> RangeReader:
        return self

    async def __anext__(self) -> tuple[int, bytes]:
        while True:
            if self.complete or self._closed:
                raise StopAsyncIteration
            if self._limit() is not None and self.position >= self._limit_or_raise():
                await self._finish()
                continue
            if self._body is None:
                await self._open()
                continue
            try:
                chunk = await self._body.__anext__()
            except StopAsyncIteration:
                await self._response_ended(clean=True)
                continue
            except (httpx.TransportError, TransportError) as exc:
                self._last_error = exc
                await self._response_ended(clean=False)
                continue
            piece = self._accept(chunk)
            if self._rend is not None and self._rpos > self._rend + 1:
                # The body runs past what it announced: stop reading it, never yield the extra.
                await self._response_ended(clean=True)
            if piece is not None:
                return piece

    async def aclose(self) -> None:
        limit = self._limit()
        if self._body is not None and limit is not None and self.position >= limit:
            await self._finish()
        self._closed = True
        await self._close_response()

    @property
    def size_proven(self) -> bool:
        return self.total_size is not None and (
            self._total_authoritative or self.position == self.total_size)

    # -- limits --------------------------------------------------------------------------

    def _limit(self) -> int | None:
        """Exclusive end of what may be yielded: requested end and known object end."""
        limit = self.end + 1 if self.end is not None else None
        if self.total_size is not None:
            limit = self.total_size if limit is None else min(limit, self.total_size)
        return limit

    def _limit_or_raise(self) -> int:
        limit = self._limit()
        assert limit is not None
        return limit

    async def _finish(self) -> None:
        self.complete = True
        if self._body is not None and self._rend is not None and self._rpos == self._rend + 1:
            # Everything the response announced has arrived: one more read ends the body
            # cleanly (see _close_response). Extra bytes, if the server sends more than it
            # announced, are discarded.
            try:
                extra = await self._body.__anext__()
            except StopAsyncIteration:
                pass
            except (httpx.TransportError, TransportError):
                pass
            else:
                self.discarded += len(extra)
        await self._close_response()

    # -- requests ------------------------------------------------------------------------

    def _range_header(self) -> str:
        # Always a Range, even for a whole download (``bytes=0-``): a server that honours it
        # answers 206, whose Content-Range total proves the size with the first response
        # (a 200's Content-Length is only a claim), so the first open of a file whose size
        # the API does not give can use the page cache. A server that ignores Range
        # answers 200 with the whole object, as to a plain GET.
        last = "" if self.end is None else str(self.end)
        return f"bytes={self.position}-{last}"

    def _spend_attempt(self, reason: str) -> None:
        """Account for one more request after the first; raise when the budget is spent."""
        if self.requests == 0:
            return
        made_progress = self.position > self._position_at_open
        self._no_progress = 0 if made_progress else self._no_progress + 1
        if self.continuations >= self._max_continuations or self._no_progress > _MAX_NO_PROGRESS:
            last = f" (last error: {self._last_error!r})" if self._last_error else ""
            raise IncompleteContentError(
                f"{reason}: gave up at byte {self.position} of {self.uri_for_errors} after "
                f"{self.requests} requests{last}", self.position) from self._last_error
        self.continuations += 1

    @property
    def uri_for_errors(self) -> str:
        return self.uri.split("?", 1)[0]

    async def _open(self) -> None:
        self._spend_attempt("content stopped short")
        self._position_at_open = self.position
        headers = {"Accept-Encoding": "identity", "Range": self._range_header()}
        stack = contextlib.AsyncExitStack()
        self.requests += 1
        try:
            response = await stack.enter_async_context(self._client.stream(
                "GET", self.uri, headers=headers, params=self._params,
                priority=self._priority, deadline=self._deadline, group=self._group))
        except ApiError as exc:
            await stack.aclose()
            if exc.status == 416:
                self._range_not_satisfiable(exc)
                return
            raise
        except (httpx.TransportError, TransportError) as exc:
            # Connection failed before any byte: another attempt, within the same budget.
            await stack.aclose()
            self._last_error = exc
            return
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        try:
            self._validate(response)
        except BaseException:
            await self._close_response()
            raise
        self._body = response.aiter_raw()

    def _range_not_satisfiable(self, exc: ApiError) -> None:
        """416: the requested start (``position``) is at or beyond the object's end."""
        cr = parse_content_range(_headers_of(exc).get("content-range"))
        total = cr[2] if cr is not None else None
        if total is None and (self.position > self.start or self.position == 0):
            # Every byte before `position` exists (we received it, or there is none), and the
            # server says none exists at `position`: the object ends exactly there.
            total = self.position
        if total is not None:
            if total > self.position:
                raise ContentError(
                    f"416 for bytes from {self.position} but the object has {total} bytes")
            self._learn_total(total, authoritative=True)
        self.complete = True

    def _validate(self, response: httpx.Response) -> None:
        """Check one response against what was asked and set the stream cursor."""
        headers = response.headers
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise ContentError(f"content arrived with Content-Encoding {encoding!r}")
        ctype = headers.get("content-type")
        if ctype and ctype.lower().startswith("multipart/byteranges"):
            raise ContentError("multipart/byteranges answer to a single-range request")
        etag = headers.get("etag")
        first = self.requests == 1
        if first:
            self.content_type = ctype
            self.content_disposition = headers.get("content-disposition")
            self.etag = etag
        elif etag and self.etag and etag != self.etag:
            raise ContentChangedError(f"ETag changed from {self.etag} to {etag} mid-download")
        if self.content_type is None:
            self.content_type = ctype

        length = _content_length(headers)
        status = response.status_code
        if status == 200:
            # The whole object from byte 0, whatever Range said.
            self._rpos = 0
            self._rend = length - 1 if length is not None else None
            self._rfinite = length is not None
            if length is not None:
                self._learn_total(length)
        elif status == 206:
            cr = parse_content_range(headers.get("content-range"))
            if cr is None or cr[0] is None or cr[1] is None:
                raise ContentError(
                    f"206 without a usable Content-Range ({headers.get('content-range')!r})")
            first_byte, last_byte, total = cr[0], cr[1], cr[2]
            if first_byte > self.position:
                raise ContentError(
                    f"206 starts at {first_byte}, after the requested byte {self.position}")
            self._rpos = first_byte
            self._rend = last_byte
            if length is not None and length < last_byte - first_byte + 1:
                # The body will stop early anyway; continuation picks up the rest.
                self._rend = first_byte + length - 1
            self._rfinite = True
            if total is not None:
                self._learn_total(total, authoritative=True)
        else:
            raise ContentError(f"unexpected status {status} for a content GET")

    def _learn_total(self, total: int, *, authoritative: bool = False) -> None:
        """Record the object's size. ``authoritative`` sizes (a Content-Range total, a 416's
        ``*/N``, a clean EOF) may correct a 200's Content-Length (which can lie) but must
        agree with each other: two different ones mean the object changed mid-download."""
        if total < self.position and self.position > self.start:
            raise ContentChangedError(
                f"object now has {total} bytes but {self.position} were already delivered")
        if (authoritative and self._total_authoritative and self.total_size is not None
                and total != self.total_size):
            raise ContentChangedError(
                f"object size changed from {self.total_size} to {total} mid-download")
        if authoritative or not self._total_authoritative:
            self.total_size = total
            self._total_authoritative = authoritative

    # -- bodies --------------------------------------------------------------------------

    def _accept(self, chunk: bytes) -> tuple[int, bytes] | None:
        """Map a raw chunk of the open response to the piece that may be yielded (if any)."""
        if not chunk:
            return None
        begin = self._rpos
        self._rpos += len(chunk)
        lo = max(begin, self.position)
        hi = self._rpos
        limit = self._limit()
        if limit is not None:
            hi = min(hi, limit)
        if self._rend is not None:
            hi = min(hi, self._rend + 1)
        if lo > self.position:  # pragma: no cover - _validate rejects gaps
            raise ContentError(f"gap before byte {lo}")
        if hi <= lo:
            self.discarded += len(chunk)
            return None
        self.discarded += len(chunk) - (hi - lo)
        piece = chunk[lo - begin:hi - begin]
        self.position = hi
        return lo, piece

    async def _response_ended(self, *, clean: bool) -> None:
        """The open response's body ended (cleanly or by a transport error)."""
        await self._close_response()
        limit = self._limit()
        if limit is not None and self.position >= limit:
            self.complete = True
            return
        if clean and not self._rfinite:
            # Chunked body with no announced size: a clean end is the object's end (a dropped
            # chunked connection raises instead). A body shorter than `start` is EOF too.
            self._learn_total(self._rpos, authoritative=True)
            self.complete = True
            return
        # Short 206, early EOF, reset: continue from `position`.

    async def _close_response(self) -> None:
        """Close the open response (if any).

        Closing a body before its end (a range that ends inside a 200, a consumer that stops)
        leaves httpx's nested body generators to the garbage collector; under trio that emits
        a ResourceWarning per generator (httpx issue #3686; trio still finalizes them). It is
        harmless, and ``_finish`` avoids it in the common case by reading the body to its end
        when everything announced has arrived.
        """
        body, self._body = self._body, None
        aclose = getattr(body, "aclose", None)
        if aclose is not None:
            await aclose()
        stack, self._stack = self._stack, None
        if stack is not None:
            with trio.move_on_after(_CLOSE_TIMEOUT) as scope:
                scope.shield = True
                await stack.aclose()


@contextlib.asynccontextmanager
async def fetch_range(
    client: StreamingClient,
    uri: str,
    start: int = 0,
    end: int | None = None,
    *,
    priority: Priority = Priority.INTERACTIVE,
    deadline: float | None = None,
    group: str | None = None,
    max_continuations: int = DEFAULT_MAX_CONTINUATIONS,
    params: Mapping[str, Any] | None = None,
) -> AsyncIterator[RangeReader]:
    """Open ``uri`` for bytes ``start..end`` (inclusive; ``end=None`` = to EOF).

    The first request is sent on entry, so ``content_type`` and usually ``total_size`` are
    known before the first piece is read; a 404 or 403 raises ``ApiError`` from the ``async
    with``. Iterate the yielded ``RangeReader`` for ``(offset, chunk)`` pieces. ``uri`` is the
    server-given content URI, used verbatim (the client checks its origin).

    Errors of a continuation request (``ApiError``, ``BudgetExhaustedError``,
    ``DeadlineExceededError``) propagate as they are; ``IncompleteContentError`` when the
    continuation budget is spent. In every case the pieces already yielded were right and
    ``reader.position`` is where a later attempt can resume (``fetch_range(..., position)``).
    """
    reader = RangeReader(client, uri, start, end, priority=priority, deadline=deadline,
                         group=group, max_continuations=max_continuations, params=params)
    try:
        while reader._body is None and not reader.complete:
            # Usually one pass; more only when the connection fails before any byte.
            await reader._open()
        yield reader
    finally:
        await reader.aclose()
