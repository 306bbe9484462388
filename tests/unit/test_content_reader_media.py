"""ContentReader over the real ``ApiContentSource`` and ``fetch_range``, with a fake media
host that applies the emulator's content faults: sizes only claimed versus proven, and the
property that reads stay exact under any faults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rcfs.api.errors import ApiError
from rcfs.api.scheduler import ON_SLOT, Priority
from rcfs.content.errors import ContentUnavailableError
from rcfs.content.source import ApiContentSource, ContentRef
from tests.api_fakes import payload
from tests.content_fakes import BS, Entered, read_all, read_concurrently, reader_on, reads_st

pytestmark = pytest.mark.usefixtures("collect_garbage")


# -- the real fetch_range over a misbehaving media host --------------------------------------


class _Chunks(httpx.AsyncByteStream):
    """A body in chunks, optionally reset mid-way. An iterator object, not an async
    generator, so an abandoned body leaves nothing for the garbage collector to finalize."""

    def __init__(self, body: bytes, chunk: int, reset_after: int | None) -> None:
        self.body, self.chunk, self.reset_after = body, chunk, reset_after
        self.pos = 0

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        await trio.lowlevel.checkpoint()
        if self.reset_after is not None and self.pos >= self.reset_after:
            raise httpx.ReadError("connection reset by peer")
        if self.pos >= len(self.body):
            raise StopAsyncIteration
        end = self.pos + self.chunk
        if self.reset_after is not None:
            end = min(end, self.reset_after)
        piece = self.body[self.pos:end]
        self.pos += len(piece)
        return piece


FAULTS = ["short206", "ignore_range", "reset", "no_length", "lie_length",
          "ignore_range+partial_200", "ignore_range+reset", "ignore_range+no_length",
          "ignore_range+lie_length"]
"""The emulator's content faults; ``ignore_range+`` answers as a server without range support
would (200, or for ``partial_200`` a 206 of a first chunk), the fault then applying to that."""


@dataclass
class FaultyMedia:
    """A ``StreamingClient`` serving ``files[url]`` with RFC 7233 ranges, applying the
    emulator's content faults to the first requests (``faults`` is consumed in order; a fault
    may combine kinds with ``+``)."""

    files: dict[str, bytes]
    faults: list[str | None]
    chunk: int = 8192
    log: list[tuple[str | None, str | None]] = field(default_factory=list)

    def stream(self, method: str, url: str, *, headers: Any = None, params: Any = None,
               priority: Priority = Priority.INTERACTIVE, deadline: float | None = None,
               group: str | None = None) -> Entered[httpx.Response]:
        return Entered(sent=lambda: self._answer(url, (headers or {}).get("Range")))

    def _answer(self, url: str, asked: str | None) -> httpx.Response | BaseException:
        data = self.files[url]
        size = len(data)
        fault = self.faults.pop(0) if self.faults else None
        self.log.append((asked, fault))
        kinds = set(fault.split("+")) if fault else set()
        hook = ON_SLOT.get()  # what RcClient's scheduler does as it grants the request
        if hook is not None:
            hook("heavy")
        if "fail" in kinds:
            return ApiError(500, "CMN-101", "fault: internal error")
        start, stop = 0, size
        ranged = False
        if asked and "ignore_range" not in kinds:
            lo, _, hi = asked.removeprefix("bytes=").partition("-")
            start = int(lo)
            if start >= size:
                exc = ApiError(416, "CMN-107", "Requested range not satisfiable")
                exc.headers = {"Content-Range": f"bytes */{size}"}
                return exc
            stop = min(size, int(hi) + 1) if hi else size
            ranged = True
        if "partial_200" in kinds and not ranged and size > 1:
            stop, ranged = size // 2, True
        if "short206" in kinds and ranged and stop - start > 1:
            stop = start + (stop - start) // 2
        h = {"Content-Type": "audio/mpeg"}
        if ranged:
            h["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        body = data[start:stop]
        reset = None
        if "lie_length" in kinds:
            h["Content-Length"] = str(len(body) + 1000)
        elif "no_length" not in kinds:
            h["Content-Length"] = str(len(body))
        if "reset" in kinds:
            reset = len(body) // 2
        return httpx.Response(206 if ranged else 200, headers=h,
                              stream=_Chunks(body, self.chunk, reset))


MEDIA_URL = "https://media.example.com/restapi/v1.0/account/1/recording/7/content"


async def test_the_size_an_open_learns_is_proven_by_the_first_response(tmp_path: Path) -> None:
    """A whole download asks for ``bytes=0-``: the 206's Content-Range total proves the size
    as the first response arrives (an open may then use the page cache); a server without
    range support answers 200, whose Content-Length stays a claim until its body ends."""
    data = payload(3 * BS + 500, 6)
    ref = ContentRef("rec", ("7",), MEDIA_URL, "Heavy", None, None)
    media = FaultyMedia({MEDIA_URL: data}, [])
    async with reader_on(tmp_path, ApiContentSource(media)) as reader:
        assert await reader.size(ref) == len(data)
        assert reader.proven_size(ref.key) == len(data)
        assert await read_all(reader, ref) == data
    assert media.log == [("bytes=0-", None)]
    media = FaultyMedia({MEDIA_URL: data}, ["ignore_range"])
    async with reader_on(tmp_path / "plain", ApiContentSource(media)) as reader:
        assert await reader.size(ref) == len(data)
        assert reader.proven_size(ref.key) is None
        assert await read_all(reader, ref) == data
        assert reader.proven_size(ref.key) == len(data)
    assert media.log == [("bytes=0-", "ignore_range")]


async def test_a_size_only_claimed_is_not_persisted_nor_preferred_to_the_apis(
        tmp_path: Path) -> None:
    """A 200 whose Content-Length is 1,000 bytes larger than its body, then a failed
    continuation (the soak's lie_length fault): the claim stays the reader's working size,
    but it is not proven and not recorded in the cache (a later session would trust it);
    with the API's size different, neither is proven. The next download proves and
    records the real one."""
    data = payload(3 * BS + 500, 3)
    media = FaultyMedia({MEDIA_URL: data}, ["ignore_range+lie_length", "fail", "fail"])
    ref = ContentRef("rec", ("7",), MEDIA_URL, "Heavy", None, None)
    with_api_size = ContentRef("rec", ("7",), MEDIA_URL, "Heavy", len(data), None)
    async with reader_on(tmp_path, ApiContentSource(media)) as reader:
        with pytest.raises(ContentUnavailableError, match="rec/7"):
            await read_all(reader, ref)
        await reader.settle(ref)
        assert reader.known_size(ref) == len(data) + 1000  # what an open must work with
        assert reader.proven_size(ref.key) is None
        assert reader.known_size(with_api_size) == len(data) + 1000
        assert not reader.sizes.proven(ref.key, len(data), len(data) + 1000)
        info = await reader.cached_info(ref)
        assert info is not None and info.present == {0, 1, 2} and info.size is None
        assert await read_all(reader, ref) == data
        await reader.settle(ref)
        assert reader.proven_size(ref.key) == reader.known_size(ref) == len(data)
        info = await reader.cached_info(ref)
        assert info is not None and info.size == len(data)
    assert [f for _asked, f in media.log] == ["ignore_range+lie_length", "fail", "fail", None]


async def test_a_claim_does_not_replace_a_proven_size(tmp_path: Path) -> None:
    """With the size proven (a 206's Content-Range total), a later 200 claiming 1,000 more
    bytes changes nothing: the file still ends at its proven size, so the download stops
    there (no continuation is asked for the 1,000 bytes that do not exist)."""
    data = payload(2 * BS + 300, 4)
    media = FaultyMedia({MEDIA_URL: data}, [None, "ignore_range+lie_length", "fail"])
    ref = ContentRef("rec", ("7",), MEDIA_URL, "Heavy", None, None)
    async with reader_on(tmp_path, ApiContentSource(media)) as reader:
        assert await reader.read(ref, 2 * BS, BS) == data[2 * BS:]
        assert reader.proven_size(ref.key) == len(data)
        assert await read_all(reader, ref) == data
        await reader.settle(ref)
        assert reader.known_size(ref) == reader.proven_size(ref.key) == len(data)
    assert media.log == [(f"bytes={2 * BS}-", None), ("bytes=0-", "ignore_range+lie_length")]


async def test_a_body_longer_than_the_proven_size_fails_and_unproves_it(
        tmp_path: Path) -> None:
    """The object is longer than the size an earlier session proved and recorded: bytes
    past that size are never stored under the last block; the download fails, and the
    size is no longer taken as proven (the next response's counts)."""
    data = payload(3 * BS, 5)
    # A server without range support: its 200's Content-Length is only a claim, which does
    # not replace the proven size (a 206's Content-Range total would, at once).
    media = FaultyMedia({MEDIA_URL: data}, ["ignore_range"])
    ref = ContentRef("rec", ("7",), MEDIA_URL, "Heavy", None, None)
    async with reader_on(tmp_path, ApiContentSource(media)) as reader:
        await reader.cache.set_meta(ref.key, block_size=BS, size=2 * BS + 300,
                                    content_type=None)
        with pytest.raises(ContentUnavailableError, match="past the proven size"):
            await reader.read(ref, 0, 3 * BS)
        assert reader.proven_size(ref.key) is None
        await reader.settle(ref)
        # Read from where the old size ended: the size the response proves counts at once.
        assert await reader.read(ref, 2 * BS, BS) == data[2 * BS:]
        assert reader.proven_size(ref.key) == 3 * BS


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(1, 400_000), reads=reads_st,
       faults=st.lists(st.sampled_from(FAULTS), max_size=3), seed=st.integers(0, 2**16))
@example(size=1, reads=[(65536, 1), (0, 0), (0, 0), (1, 1), (1, 1)], faults=[], seed=0)
def test_property_exact_under_content_faults(tmp_path_factory: pytest.TempPathFactory,
                                             size: int, reads: list[tuple[int, int]],
                                             faults: list[str], seed: int) -> None:
    data = payload(size, seed)
    url = MEDIA_URL
    media = FaultyMedia({url: data}, list(faults))
    path = tmp_path_factory.mktemp("faults")

    async def main() -> None:
        ref = ContentRef("rec", ("7",), url, "Heavy", None, None)
        async with reader_on(path, ApiContentSource(media)) as reader:
            await read_concurrently(reader, ref, data, reads)
            assert await read_all(reader, ref) == data

    trio.run(main)
    # Each fault costs at most one continuation; the reads need at most one download per
    # distinct starting block (no spare budget: no optional seeks). A read past the end of
    # a file of unknown size costs its request too (the 416 tells the size).
    starts = {off // BS for off, _ in reads} | {0}
    assert len(media.log) <= len(starts) + len(faults), media.log
