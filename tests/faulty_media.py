"""A content server that misbehaves on demand (``FaultyMedia``), for the unit tests of
rcfs.api.content: it answers over ``httpx.MockTransport`` (through ``tests.api_fakes``'s
``FakeClient``) with RFC 7233 ranges, and each fault is one way a real media host has been
seen or documented to answer (docs/ringcentral.md §6.2)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx


class ChunkStream(httpx.AsyncByteStream):
    """A response body delivered in small chunks, optionally failing after ``fail_after``."""

    def __init__(self, body: bytes, chunk: int = 7, fail_after: int | None = None,
                 exc: type[Exception] = httpx.ReadError) -> None:
        self.body = body
        self.chunk = max(1, chunk)
        self.fail_after = fail_after
        self.exc = exc

    async def __aiter__(self) -> AsyncIterator[bytes]:
        limit = len(self.body) if self.fail_after is None else min(self.fail_after, len(self.body))
        for i in range(0, limit, self.chunk):
            yield self.body[i:min(i + self.chunk, limit)]
        if self.fail_after is not None:
            raise self.exc("connection reset by peer")


_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """(first, last) of a Range header against ``size``; None = no Range; "416"."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    assert m, header
    a, b = m.group(1), m.group(2)
    if a == "":
        n = int(b)
        return (max(0, size - n), size - 1) if size else "416"
    first = int(a)
    if first >= size:
        return "416"
    last = min(int(b), size - 1) if b else size - 1
    return first, last


@dataclass
class FaultyMedia:
    """A content server: correct by default; ``fault`` names one misbehaviour, applied to the
    first ``count`` content responses it can apply to (``count=None``: always). The first
    ``ignores_range`` requests are answered as if they had no Range (a server or a node
    without range support): the faults of a 200 apply to those."""

    data: bytes
    fault: str = "none"
    count: int | None = None
    chunk: int = 7
    etag: str | None = None
    applied: int = 0
    ranges: list[str | None] = field(default_factory=list)
    ignores_range: int = 0

    def _use(self) -> bool:
        if self.count is not None and self.applied >= self.count:
            return False
        self.applied += 1
        return True

    def __call__(self, request: httpx.Request) -> httpx.Response:
        data, size = self.data, len(self.data)
        header = request.headers.get("range")
        self.ranges.append(header)
        rng = None if len(self.ranges) <= self.ignores_range else parse_range(header, size)
        base = {"Content-Type": "audio/x-wav",
                "Content-Disposition": "inline;filename=4.wav"}
        if self.etag:
            base["ETag"] = self.etag

        def body(payload: bytes, headers: dict[str, str], status: int, *,
                 length: bool = True, fail_after: int | None = None) -> httpx.Response:
            h = dict(base, **headers)
            if length and "Content-Length" not in h:
                h["Content-Length"] = str(len(payload))
            return httpx.Response(status, headers=h,
                                  stream=ChunkStream(payload, self.chunk, fail_after))

        if self.fault == "ignore_range" and self._use():
            return body(data, {}, 200)
        if self.fault == "ignore_range_chunked" and self._use():
            return body(data, {}, 200, length=False)
        if rng == "416":
            return httpx.Response(416, headers={"Content-Range": f"bytes */{size}"}, json={
                "errorCode": "CMN-107", "message": "Requested range not satisfiable",
                "errors": [{"errorCode": "CMN-107",
                            "message": "Requested range not satisfiable"}]})
        if rng is None:
            if self.fault == "partial_200" and size > 1 and self._use():
                k = max(1, size // 3)
                return body(data[:k], {"Content-Range": f"bytes 0-{k - 1}/{size}"}, 206)
            if self.fault == "no_length" and self._use():
                return body(data, {}, 200, length=False)
            if self.fault == "reset" and size > 1 and self._use():
                return body(data, {}, 200, fail_after=max(1, size // 2))
            if self.fault == "lie_length" and size > 1 and self._use():
                return body(data[: size // 2], {"Content-Length": str(size)}, 200)
            if self.fault == "long_body" and self._use():
                return body(data + b"GARBAGE" * 3, {"Content-Length": str(size)}, 200)
            return body(data, {}, 200)
        assert isinstance(rng, tuple)
        first, last = rng
        part = data[first:last + 1]
        cr = f"bytes {first}-{last}/{size}"
        if self.fault == "short206" and len(part) > 1 and self._use():
            k = max(1, len(part) // 2)
            return body(part[:k], {"Content-Range": f"bytes {first}-{first + k - 1}/{size}"},
                        206)
        if self.fault == "short206_lying" and len(part) > 1 and self._use():
            # Announces the full range but the body stops halfway, cleanly.
            return body(part[: len(part) // 2], {"Content-Range": cr,
                                                 "Content-Length": str(len(part))}, 206)
        if self.fault == "no_length" and self._use():
            return body(part, {"Content-Range": cr}, 206, length=False)
        if self.fault == "no_length_no_total" and self._use():
            return body(part, {"Content-Range": f"bytes {first}-{last}/*"}, 206, length=False)
        if self.fault == "reset" and len(part) > 1 and self._use():
            return body(part, {"Content-Range": cr}, 206, fail_after=max(1, len(part) // 2))
        if self.fault == "long_body" and self._use():
            return body(part + b"EXTRA" * 5, {"Content-Range": cr,
                                              "Content-Length": str(len(part))}, 206)
        if self.fault == "early_start" and first > 0 and self._use():
            # Rounds the range down to a 4-byte boundary: overlapping bytes must be skipped.
            a = first - first % 4
            return body(data[a:last + 1], {"Content-Range": f"bytes {a}-{last}/{size}"}, 206)
        return body(part, {"Content-Range": cr}, 206)
