"""rcfs.api.content: every faulty server behaviour, and the no-wrong-bytes property.

A ``FakeClient`` (tests/api_fakes.py) with RcClient's ``request``/``stream``/``get_json``
surface runs over ``httpx.MockTransport``; ``FaultyMedia`` (tests/faulty_media.py) is a
content server that misbehaves on demand. The same downloads against the emulator:
tests/emulator/test_api_content.py.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rcfs.api.content import (
    ContentChangedError,
    ContentError,
    IncompleteContentError,
    fetch_range,
    parse_content_range,
)
from rcfs.api.errors import ApiError
from rcfs.api.scheduler import Priority
from tests.api_fakes import MEDIA, FakeClient, download, payload
from tests.faulty_media import ChunkStream, FaultyMedia, parse_range

# Closing an httpx body before its end (inherent when a server sends more than the range)
# leaves httpx's nested body generators (and ChunkStream's) to trio's GC hook, which warns
# (httpx issue #3686).
pytestmark = pytest.mark.filterwarnings(
    "ignore:Async generator .* was garbage collected:ResourceWarning")


URI = f"{MEDIA}/restapi/v1.0/account/1/extension/2/message-store/3/content/4"


async def collect(client: FakeClient, start: int = 0, end: int | None = None,
                  **kw: Any) -> tuple[bytes, Any]:
    out = bytearray()
    async with fetch_range(client, URI, start, end, **kw) as reader:
        async for offset, chunk in reader:
            assert offset == start + len(out), "pieces must be contiguous"
            out += chunk
    return bytes(out), reader


# -- Content-Range parsing ------------------------------------------------------------------


def test_parse_content_range() -> None:
    assert parse_content_range("bytes 0-1023/2048") == (0, 1023, 2048)
    assert parse_content_range("bytes 5-9/*") == (5, 9, None)
    assert parse_content_range("bytes */77") == (None, None, 77)
    assert parse_content_range("Bytes  3 - 4 / 10") == (3, 4, 10)
    for bad in (None, "", "bytes 9-5/10", "bytes 0-10/10", "bytes */*", "items 0-1/2",
                "bytes 0-/10"):
        assert parse_content_range(bad) is None, bad


# -- each fault -----------------------------------------------------------------------------


async def test_plain_download_and_metadata() -> None:
    data = payload(1000)
    server = FaultyMedia(data, etag='"v1"')
    client = FakeClient(server)
    got, reader = await collect(client)
    assert got == data
    assert reader.total_size == 1000 and reader.requests == 1 and reader.continuations == 0
    assert reader.content_type == "audio/x-wav"
    assert reader.content_disposition == "inline;filename=4.wav"
    assert reader.etag == '"v1"' and reader.complete
    assert server.ranges == ["bytes=0-"], "a whole download asks for a range too"
    assert client.sent[0].headers["accept-encoding"] == "identity"
    assert client.calls[0]["priority"] == Priority.INTERACTIVE


async def test_ranged_request() -> None:
    data = payload(1000)
    server = FaultyMedia(data)
    got, reader = await collect(FakeClient(server), 100, 199)
    assert got == data[100:200]
    assert server.ranges == ["bytes=100-199"]
    assert reader.total_size == 1000


async def test_range_to_eof() -> None:
    data = payload(1000)
    server = FaultyMedia(data)
    got, reader = await collect(FakeClient(server), 900)
    assert got == data[900:] and server.ranges == ["bytes=900-"] and reader.total_size == 1000


async def test_end_beyond_eof_is_clamped() -> None:
    data = payload(100)
    got, reader = await collect(FakeClient(FaultyMedia(data)), 50, 10_000)
    assert got == data[50:] and reader.total_size == 100 and reader.complete


async def test_ignored_range_skips_to_start() -> None:
    data = payload(5000)
    server = FaultyMedia(data, fault="ignore_range")
    got, reader = await collect(FakeClient(server), 1234, 2345)
    assert got == data[1234:2346]
    assert reader.total_size == 5000
    assert reader.requests == 1
    # Bytes before `start` were received and thrown away, never yielded; the rest of the
    # body was not read at all (the response is closed once `end` is reached).
    assert reader.discarded >= 1234


async def test_ignored_range_chunked_to_eof() -> None:
    data = payload(3000)
    server = FaultyMedia(data, fault="ignore_range_chunked")
    got, reader = await collect(FakeClient(server), 2000)
    assert got == data[2000:] and reader.total_size == 3000


async def test_ignored_range_start_beyond_eof() -> None:
    data = payload(300)
    server = FaultyMedia(data, fault="ignore_range_chunked")
    got, reader = await collect(FakeClient(server), 1000)
    assert got == b"" and reader.total_size == 300 and reader.complete


async def test_a_whole_download_proves_the_size_with_its_first_response() -> None:
    """``bytes=0-`` is answered 206 by a server with range support: its Content-Range total
    is proof before any byte of the body (what lets the first open use the page cache)."""
    data = payload(3000)
    async with fetch_range(FakeClient(FaultyMedia(data)), URI, 0, None) as reader:
        assert (reader.total_size, reader.size_proven) == (3000, True)
        assert b"".join([chunk async for _offset, chunk in reader]) == data
    # A server that ignores Range answers 200: its Content-Length is a claim, as before.
    server = FaultyMedia(data, ignores_range=1)
    async with fetch_range(FakeClient(server), URI, 0, None) as reader:
        assert (reader.total_size, reader.size_proven) == (3000, False)
        assert b"".join([chunk async for _offset, chunk in reader]) == data
        assert reader.size_proven
    assert server.ranges == ["bytes=0-"]


async def test_partial_206_for_plain_get_continues() -> None:
    """A server that answers as to a plain GET with a 206 of a first chunk (RingCentral's
    media docs allow it): the rest comes in a continuation."""
    data = payload(3000)
    server = FaultyMedia(data, fault="partial_200", count=1, ignores_range=1)
    got, reader = await collect(FakeClient(server))
    assert got == data
    assert server.ranges == ["bytes=0-", "bytes=1000-"]
    assert reader.requests == 2 and reader.continuations == 1 and reader.total_size == 3000


@pytest.mark.parametrize("fault", ["short206", "short206_lying"])
async def test_short_206_continues(fault: str) -> None:
    data = payload(4096)
    server = FaultyMedia(data, fault=fault, count=2)
    got, reader = await collect(FakeClient(server), 10, 4000)
    assert got == data[10:4001]
    assert reader.continuations == 2
    assert server.ranges[0] == "bytes=10-4000"
    assert all(r is not None and r.endswith("-4000") for r in server.ranges)


@pytest.mark.parametrize("ignores", [0, 1])  # the reset body is a 206, or a 200
@pytest.mark.parametrize("start", [0, 100])
async def test_reset_mid_body_continues(start: int, ignores: int) -> None:
    data = payload(2000)
    server = FaultyMedia(data, fault="reset", count=1, ignores_range=ignores)
    got, reader = await collect(FakeClient(server), start)
    assert got == data[start:]
    assert reader.continuations == 1 and reader.total_size == 2000
    assert server.ranges[1] is not None and server.ranges[1].startswith("bytes=")


async def test_lying_content_length_on_200_continues() -> None:
    data = payload(1001)
    server = FaultyMedia(data, fault="lie_length", count=1, ignores_range=1)
    got, reader = await collect(FakeClient(server))
    assert got == data and reader.continuations == 1 and reader.total_size == 1001


async def test_a_content_length_is_a_claim_until_its_bytes_have_arrived() -> None:
    """A 200's Content-Length may be larger than the body: ``size_proven`` only once every
    byte up to it was yielded, or a Content-Range total or 416 said it."""
    data = payload(3000)
    server = FaultyMedia(data, ignores_range=1)
    async with fetch_range(FakeClient(server), URI, 0, None) as reader:
        assert reader.total_size == 3000 and not reader.size_proven
        got = bytearray()
        async for _offset, chunk in reader:
            got += chunk
            assert reader.size_proven == (len(got) == 3000)
    # The body ends halfway: the continuation's Content-Range proves the size.
    server = FaultyMedia(data, fault="lie_length", count=1, ignores_range=1)
    async with fetch_range(FakeClient(server), URI, 0, None) as reader:
        assert (reader.total_size, reader.size_proven) == (3000, False)
        got = bytearray()
        async for _offset, chunk in reader:
            got += chunk
            assert reader.size_proven == (reader.requests == 2)
        assert (bytes(got), reader.total_size, reader.size_proven) == (data, 3000, True)
    # A ranged answer's Content-Range total is proof at once.
    async with fetch_range(FakeClient(FaultyMedia(data)), URI, 100, None) as reader:
        assert (reader.total_size, reader.size_proven) == (3000, True)


@pytest.mark.parametrize("ignores", [0, 1])
@pytest.mark.parametrize("start", [0, 17])
async def test_missing_content_length(start: int, ignores: int) -> None:
    data = payload(777)
    server = FaultyMedia(data, fault="no_length", ignores_range=ignores)
    got, reader = await collect(FakeClient(server), start)
    assert got == data[start:] and reader.total_size == 777 and reader.continuations == 0


async def test_missing_content_length_and_total() -> None:
    data = payload(777)
    server = FaultyMedia(data, fault="no_length_no_total")
    got, reader = await collect(FakeClient(server), 17)
    assert got == data[17:]
    # `bytes 17-776/*` does not say whether more exists: one more request hits 416 = EOF.
    assert server.ranges == ["bytes=17-", "bytes=777-"]
    assert reader.total_size == 777


@pytest.mark.parametrize("ignores", [0, 1])
@pytest.mark.parametrize("start,end", [(0, None), (10, 99), (10, None)])
async def test_body_longer_than_announced_is_truncated(start: int, end: int | None,
                                                       ignores: int) -> None:
    data = payload(100)
    server = FaultyMedia(data, fault="long_body", ignores_range=ignores)
    got, reader = await collect(FakeClient(server), start, end)
    assert got == data[start:(end + 1 if end is not None else None)]
    assert b"GARBAGE" not in got and b"EXTRA" not in got
    assert reader.total_size == 100


async def test_206_starting_before_requested_start_is_skipped() -> None:
    data = payload(100)
    got, reader = await collect(FakeClient(FaultyMedia(data, fault="early_start")), 7, 50)
    assert got == data[7:51] and reader.discarded == 3


async def test_206_starting_after_requested_start_is_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(206, headers={"Content-Range": "bytes 20-29/100"},
                              content=bytes(10))

    with pytest.raises(ContentError, match="after the requested byte"):
        await collect(FakeClient(handler), 10, 29)


async def test_206_without_content_range_is_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(206, content=bytes(10))

    with pytest.raises(ContentError, match="Content-Range"):
        await collect(FakeClient(handler), 0, 9)


async def test_encoded_body_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=b"x")

    with pytest.raises(ContentError, match="Content-Encoding"):
        await collect(FakeClient(handler))


@pytest.mark.parametrize("attach", [True, False])
async def test_416_start_beyond_eof(attach: bool) -> None:
    data = payload(100)
    client = FakeClient(FaultyMedia(data), attach_headers=attach)
    got, reader = await collect(client, 100)
    assert got == b"" and reader.complete
    # With the 416's `Content-Range: bytes */100` the size is known; without it only that
    # the object ends at or before byte 100.
    assert reader.total_size == (100 if attach else None)


async def test_416_after_exact_end_without_header_gives_size() -> None:
    data = payload(60)
    server = FaultyMedia(data, fault="no_length_no_total")
    got, reader = await collect(FakeClient(server, attach_headers=False), 5)
    assert got == data[5:] and reader.total_size == 60


async def test_empty_object() -> None:
    got, reader = await collect(FakeClient(FaultyMedia(b"")))
    assert got == b"" and reader.total_size == 0


async def test_errors_propagate_before_iteration() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"errorCode": "CMN-102", "message": "not found"})

    with pytest.raises(ApiError) as info:
        await collect(FakeClient(handler))
    assert info.value.status == 404 and info.value.error_code == "CMN-102"


async def test_continuations_are_bounded() -> None:
    data = payload(10_000)
    server = FaultyMedia(data, fault="short206")  # always half of what was asked
    with pytest.raises(IncompleteContentError) as info:
        await collect(FakeClient(server), 1, None, max_continuations=3)
    assert len(server.ranges) == 4  # the first request and three continuations
    assert 1 < info.value.position < 10_000


async def test_no_progress_gives_up_quickly() -> None:
    data = payload(100)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("range") == "bytes=0-":
            return httpx.Response(200, headers={"Content-Length": "100"},
                                  stream=ChunkStream(data, fail_after=40))
        return httpx.Response(200, headers={"Content-Length": "100"},
                              stream=ChunkStream(data, fail_after=10))

    client = FakeClient(handler)
    with pytest.raises(IncompleteContentError) as info:
        await collect(client, max_continuations=50)
    assert info.value.position == 40
    assert len(client.sent) <= 5


async def test_connect_error_is_retried_within_budget() -> None:
    data = payload(50)
    failures = [2]

    def handler(request: httpx.Request) -> httpx.Response:
        if failures[0]:
            failures[0] -= 1
            raise httpx.ConnectError("refused")
        return FaultyMedia(data)(request)

    got, reader = await collect(FakeClient(handler))
    assert got == data and reader.requests == 3


async def test_object_changed_mid_download() -> None:
    data = payload(1000)
    versions = iter(['"a"', '"b"'])

    def handler(request: httpx.Request) -> httpx.Response:
        server = FaultyMedia(data, fault="reset", etag=next(versions))
        return server(request)

    with pytest.raises(ContentChangedError):
        await collect(FakeClient(handler))


async def test_object_size_changed_without_etag() -> None:
    first, second = payload(1000), payload(1500, seed=9)
    calls = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        calls[0] += 1
        server = FaultyMedia(first if calls[0] == 1 else second, fault="reset")
        return server(request)

    # Two Content-Range totals disagree: the bytes so far may be of another version.
    with pytest.raises(ContentChangedError, match="size changed"):
        await collect(FakeClient(handler), 10)


async def test_object_shrank_mid_download() -> None:
    big, small = payload(1000), payload(100)
    calls = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        calls[0] += 1
        if calls[0] == 1:
            return FaultyMedia(big, fault="reset")(request)
        return FaultyMedia(small)(request)

    with pytest.raises(ContentError):
        await collect(FakeClient(handler))


async def test_download_helper_and_max_bytes() -> None:
    data = payload(4321)
    client = FakeClient(FaultyMedia(data, fault="reset", count=1))
    assert await download(client, URI) == data
    with pytest.raises(ContentError, match="larger than"):
        await download(FakeClient(FaultyMedia(data)), URI, max_bytes=1000)


async def test_early_exit_closes_response() -> None:
    data = payload(10_000)
    client = FakeClient(FaultyMedia(data))
    async with fetch_range(client, URI) as reader:
        async for _offset, _chunk in reader:
            break
    assert reader.position < 10_000 and not reader.complete


def test_invalid_arguments() -> None:
    client = FakeClient(FaultyMedia(b"x"))

    async def main() -> None:
        with pytest.raises(ValueError):
            async with fetch_range(client, URI, 10, 5):
                pass
        with pytest.raises(ValueError):
            async with fetch_range(client, URI, -1):
                pass

    trio.run(main)


# -- the property: never a wrong byte, never at a wrong offset --------------------------------

FAULTS = ["none", "ignore_range", "ignore_range_chunked", "partial_200", "short206",
          "short206_lying", "no_length", "no_length_no_total", "reset", "lie_length",
          "long_body", "early_start"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(0, 3000),
    start_frac=st.floats(0, 1.2),
    length=st.one_of(st.none(), st.integers(1, 4000)),
    fault=st.sampled_from(FAULTS),
    count=st.one_of(st.none(), st.integers(1, 3)),
    chunk=st.integers(1, 1500),
    attach=st.booleans(),
    ignores=st.integers(0, 2),
)
def test_property_bytes_equal_slice(size: int, start_frac: float, length: int | None,
                                    fault: str, count: int | None, chunk: int,
                                    attach: bool, ignores: int) -> None:
    data = payload(size, seed=size)
    start = int(size * start_frac)
    end = None if length is None else start + length - 1
    server = FaultyMedia(data, fault=fault, count=count, chunk=chunk, ignores_range=ignores)
    client = FakeClient(server, attach_headers=attach)
    expected = data[start:(end + 1 if end is not None else None)]

    async def main() -> None:
        out = bytearray()
        try:
            async with fetch_range(client, URI, start, end, max_continuations=64) as reader:
                async for offset, piece in reader:
                    # Checked piece by piece: a wrong byte is a failure even if a later
                    # error would have stopped the download.
                    assert offset == start + len(out)
                    assert piece == data[offset:offset + len(piece)]
                    assert end is None or offset + len(piece) <= end + 1
                    out += piece
        except IncompleteContentError:
            # Only a server that stops short forever may exhaust the budget; the bytes
            # delivered so far were still right.
            assert count is None and fault in ("short206", "short206_lying", "reset",
                                               "lie_length")
            return
        finally:
            await client.aclose()
        assert bytes(out) == expected
        if reader.total_size is not None:
            assert reader.total_size == size
        else:
            # Unknown only when the download stopped at `end` without any response telling
            # the size (a chunked 200, or `bytes a-b/*`), or when a 416 for a start beyond
            # EOF came without its `Content-Range: bytes */N`.
            chunked_200 = fault == "ignore_range_chunked" or (fault == "no_length" and ignores)
            stopped_at_end = end is not None and (chunked_200 or fault == "no_length_no_total")
            assert stopped_at_end or (not attach and start >= size)

    trio.run(main)


def test_fake_server_sanity() -> None:
    assert parse_range("bytes=0-9", 5) == (0, 4)
    assert parse_range("bytes=-3", 5) == (2, 4)
    assert parse_range("bytes=5-", 5) == "416"
    assert parse_range(None, 5) is None
