"""ContentReader seeks (waiting for a fast download, a second ranged download on spare budget
or to meet a deadline), size discovery, and the property that concurrent random reads are
exact and cost one request per distinct starting block.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rcfs.content.reader import ReaderConfig
from tests.api_fakes import payload
from tests.content_fakes import (
    BS,
    FakeSource,
    read_all,
    read_concurrently,
    reader_on,
    reads_st,
    ref_for,
)

pytestmark = pytest.mark.usefixtures("collect_garbage")


# -- seeks -------------------------------------------------------------------------------


async def test_seek_ahead_waits_for_a_fast_download(tmp_path: Path) -> None:
    data = payload(60 * BS)
    src = FakeSource({"rec/5": data}, chunk=64 * 1024, spare_budget=5)
    ref = ref_for("rec/5")
    async with reader_on(tmp_path, src) as reader:
        assert await reader.read(ref, 0, 4096) == data[:4096]
        await trio.sleep(0.05)  # the download measures its (fast) rate
        tail = len(data) - 4096
        assert await reader.read(ref, tail, 4096) == data[tail:]
        assert await read_all(reader, ref) == data
    assert len(src.opens) == 1


async def test_media_player_seeks_cost_at_most_two_requests(tmp_path: Path) -> None:
    """ffprobe/mpv: head, tail, middle, then play through, on a slow link with spare budget.
    The tail costs a second request; nothing else does."""
    data = payload(80 * BS + 999)
    src = FakeSource({"rec/6": data}, chunk=8 * 1024, delay=0.002, spare_budget=5)
    ref = ref_for("rec/6")
    cfg = ReaderConfig(wait_ahead_s=0.5)
    async with reader_on(tmp_path, src, cfg) as reader:
        assert await reader.read(ref, 0, 8192) == data[:8192]
        tail = len(data) - 20000
        assert await reader.read(ref, tail, 20000) == data[tail:]
        mid = len(data) // 2
        assert await reader.read(ref, mid, 65536) == data[mid:mid + 65536]
        assert await read_all(reader, ref) == data
    starts = sorted(start for _, start, _ in src.opens)
    assert len(starts) == 2, src.opens
    assert starts[0] == 0 and starts[1] == (tail // BS) * BS


async def test_seek_without_spare_budget_waits_instead(tmp_path: Path) -> None:
    data = payload(80 * BS)
    src = FakeSource({"rec/7": data}, chunk=8 * 1024, delay=0.001, spare_budget=0)
    ref = ref_for("rec/7")
    async with reader_on(tmp_path, src, ReaderConfig(wait_ahead_s=0.1)) as reader:
        assert await reader.read(ref, 0, 100) == data[:100]
        tail = len(data) - 100
        assert await reader.read(ref, tail, 100, deadline=trio.current_time() + 30) == \
            data[tail:]
    assert len(src.opens) == 1


async def test_seek_that_would_miss_its_deadline_spends_a_request(tmp_path: Path) -> None:
    data = payload(80 * BS)
    src = FakeSource({"rec/8": data}, chunk=4 * 1024, delay=0.01, spare_budget=0)
    ref = ref_for("rec/8")
    async with reader_on(tmp_path, src, ReaderConfig(wait_ahead_s=0.1)) as reader:
        assert await reader.read(ref, 0, 100) == data[:100]
        await trio.sleep(0.3)  # a measured, slow rate: the tail is minutes away
        tail = len(data) - 100
        got = await reader.read(ref, tail, 100, deadline=trio.current_time() + 2)
        assert got == data[tail:]
    assert len(src.opens) == 2


async def test_read_behind_a_later_download_is_served_from_cache(tmp_path: Path) -> None:
    data = payload(20 * BS)
    src = FakeSource({"rec/9": data})
    ref = ref_for("rec/9")
    async with reader_on(tmp_path, src) as reader:
        assert await reader.read(ref, 10 * BS, 10) == data[10 * BS:10 * BS + 10]
        await trio.sleep(0.05)
        # The first download started at block 10; the head needs a second one, which stops
        # where the cache already has the rest.
        assert await read_all(reader, ref) == data
    assert sorted(s for _, s, _ in src.opens) == [0, 10 * BS]


# -- size discovery ------------------------------------------------------------------------


async def test_size_from_first_response_no_extra_request(tmp_path: Path) -> None:
    data = payload(3 * BS + 10)
    src = FakeSource({"rec/10": data}, delay=0.01)
    ref = ref_for("rec/10")
    async with reader_on(tmp_path, src) as reader:
        assert await reader.size(ref) == len(data)
        assert await read_all(reader, ref) == data
    assert len(src.opens) == 1


async def test_unknown_size_learned_at_eof(tmp_path: Path) -> None:
    data = payload(2 * BS + 3)
    src = FakeSource({"rec/11": data}, announce=False)
    ref = ref_for("rec/11")
    async with reader_on(tmp_path, src) as reader:
        assert await reader.read(ref, 0, 10 * BS) == data
        assert await reader.read(ref, 2 * BS + 3, 10) == b""
        await reader.settle(ref)
        info = await reader.cached_info(ref)
        assert info is not None and info.size == len(data) and info.complete
    assert len(src.opens) == 1


async def test_metadata_size_that_is_wrong_is_corrected(tmp_path: Path) -> None:
    data = payload(BS + 10)
    src = FakeSource({"msg/1/2": data})
    ref = ref_for("msg/1/2", size=BS + 500, group="Medium")
    async with reader_on(tmp_path, src) as reader:
        assert await reader.read(ref, 0, BS + 500) == data
        assert await reader.size(ref) == len(data)


async def test_empty_file(tmp_path: Path) -> None:
    src = FakeSource({"msg/5/6": b""})
    ref = ref_for("msg/5/6", group="Medium")
    async with reader_on(tmp_path, src) as reader:
        assert await reader.read(ref, 0, 100) == b""
        assert await reader.size(ref) == 0


# -- property tests ------------------------------------------------------------------------


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(0, 600_000), reads=reads_st, chunk=st.integers(1000, 70_000),
       announce=st.booleans(), spare=st.integers(0, 2), seed=st.integers(0, 2**16))
def test_property_concurrent_reads_are_exact(tmp_path_factory: pytest.TempPathFactory,
                                             size: int, reads: list[tuple[int, int]],
                                             chunk: int, announce: bool, spare: int,
                                             seed: int) -> None:
    data = payload(size, seed)
    src = FakeSource({"rec/p": data}, chunk=chunk, announce=announce, spare_budget=spare,
                     delay=0.0005)
    path = tmp_path_factory.mktemp("prop")

    async def main() -> None:
        ref = ref_for("rec/p")
        async with reader_on(path, src) as reader:
            await read_concurrently(reader, ref, data, reads)
            # Everything read so far is now served without another request.
            before = len(src.opens)
            for off, n in reads:
                assert await reader.read(ref, off, n) == data[off:off + n]
            assert len(src.opens) == before
        # Requests: each download starts at a block a read needed first; optional ones
        # (seeks) are capped at max_streams_per_file.
        starts = {off // BS for off, _ in reads} | {0}
        assert len(src.opens) <= len(starts) + ReaderConfig().max_streams_per_file

    trio.run(main)
