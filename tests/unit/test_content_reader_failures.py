"""ContentReader failures and deadlines (corrupt blocks, an empty budget, hung and stalled
downloads, not found, resumed downloads, files larger than the cache), prefetch on spare
budget only, and pins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from rcfs.api.errors import ApiError, BudgetExhaustedError
from rcfs.api.scheduler import Priority
from rcfs.content.blockcache import HEADER, MIN_BUDGET, BlockCache, iter_value_files
from rcfs.content.errors import (
    ContentNotFoundError,
    ContentTimeoutError,
    ContentUnavailableError,
)
from rcfs.content.reader import ReaderConfig, open_reader
from tests.api_fakes import payload
from tests.content_fakes import BS, FakeSource, read_all, reader_on, ref_for

pytestmark = pytest.mark.usefixtures("collect_garbage")


# -- failures and deadlines ----------------------------------------------------------------


async def test_corrupt_block_on_disk_is_refetched(tmp_path: Path) -> None:
    data = payload(4 * BS)
    src = FakeSource({"rec/12": data})
    ref = ref_for("rec/12")
    async with reader_on(tmp_path, src) as reader:
        assert await read_all(reader, ref) == data
    files = iter_value_files(tmp_path / "v1")
    raw = bytearray(files[2].read_bytes())
    raw[HEADER.size + 7] ^= 0x01
    files[2].write_bytes(bytes(raw))
    async with reader_on(tmp_path, src) as reader:
        assert await read_all(reader, ref) == data
        assert reader.cache.corrupt_blocks == 1
    assert len(src.opens) == 2  # the refetch


async def test_budget_exhausted_fails_fast_with_a_clear_error(tmp_path: Path) -> None:
    src = FakeSource({"rec/13": payload(100)}, fail=BudgetExhaustedError("Heavy", 42.0))
    ref = ref_for("rec/13")
    async with reader_on(tmp_path, src) as reader:
        with pytest.raises(ContentUnavailableError, match="Heavy request budget is empty"):
            await reader.read(ref, 0, 10, deadline=trio.current_time() + 20)
        # At once (a count, not a time): one wake-up, for the download that could not start;
        # a reader that kept waiting would re-plan every 0.25 s until the deadline.
        assert reader.counters["waits"] <= 1 and reader.counters["timeouts"] == 0


async def test_hung_network_times_out_at_the_deadline(
        tmp_path: Path, autojump_clock: trio.abc.Clock) -> None:
    """On trio's virtual clock: the read ends at its deadline, not before and not at a later
    timer (the reader re-plans every 0.25 s; its own timeouts are 30 s and more), whatever
    the machine's load."""
    src = FakeSource({"rec/14": payload(100)}, hang=True)
    ref = ref_for("rec/14")
    async with reader_on(tmp_path, src) as reader:
        t0 = trio.current_time()
        with pytest.raises(ContentTimeoutError, match="timed out"):
            await reader.read(ref, 0, 10, deadline=t0 + 3)
        took = trio.current_time() - t0
        assert 3 <= took < 3.25, took
        assert reader.counters["timeouts"] == 1


async def test_stalled_download_times_out(tmp_path: Path) -> None:
    data = payload(10 * BS)
    src = FakeSource({"rec/15": data}, chunk=1024, delay=0.0)
    ref = ref_for("rec/15")

    async with reader_on(tmp_path, src) as reader:
        src.delay = 5.0  # one chunk per 5 s
        with pytest.raises(ContentTimeoutError):
            await reader.read(ref, 5 * BS, 10, deadline=trio.current_time() + 0.5)


async def test_not_found_is_remembered(tmp_path: Path) -> None:
    src = FakeSource({}, fail=ApiError(404, "CMN-102", "Resource not found"))
    ref = ref_for("rec/16")
    async with reader_on(tmp_path, src) as reader:
        for _ in range(3):
            with pytest.raises(ContentNotFoundError):
                await reader.read(ref, 0, 10)
    assert len(src.opens) == 1


async def test_failed_download_midway_is_resumed_by_the_next_read(tmp_path: Path) -> None:
    data = payload(6 * BS)
    src = FakeSource({"rec/17": data}, fail_at=3 * BS + 100)
    ref = ref_for("rec/17")
    async with reader_on(tmp_path, src) as reader:
        assert await reader.read(ref, 0, BS) == data[:BS]
        with pytest.raises(ContentUnavailableError):
            await reader.read(ref, 5 * BS, 10)
        src.fail_at = None
        assert await read_all(reader, ref) == data
    assert [s for _, s, _ in src.opens] == [0, 5 * BS, 3 * BS]


async def test_file_larger_than_the_cache_still_reads(tmp_path: Path) -> None:
    data = payload(200 * BS)  # 12.5 MiB through a 7 MiB cache
    src = FakeSource({"rec/18": data}, chunk=64 * 1024)
    ref = ref_for("rec/18")
    cfg = ReaderConfig(memory_bytes=2 << 20)
    async with reader_on(tmp_path, src, cfg, budget=MIN_BUDGET) as reader:
        assert await read_all(reader, ref, step=256 * 1024) == data
        assert reader.cache.used <= reader.cache.capacity
        await reader.settle(ref)
        # Batched writes stay small against the budget: the cache keeps what fits (the
        # latest blocks), it does not refuse whole batches.
        info = await reader.cached_info(ref)
        assert info is not None and len(info.present) * BS >= reader.cache.capacity // 2


async def test_batches_fit_a_small_cache(tmp_path: Path) -> None:
    """1 MiB blocks, a 7 MiB cache and a slow disk: a batch never asks for more than a
    quarter of the budget, so the blocks that fit are stored, not refused as a batch."""
    bs = 1 << 20
    data = payload(12 * bs + 5)
    src = FakeSource({"rec/19": data}, chunk=bs)
    ref = ref_for("rec/19")
    cache = await BlockCache.open(tmp_path, budget=MIN_BUDGET, block_size=bs)
    sizes: list[int] = []
    try:
        async with open_reader(cache, src, ReaderConfig(memory_bytes=2 << 20)) as reader:
            real_put = cache.put_blocks

            async def slow_put(key: str, blocks: dict[int, bytes], **kw: Any) -> bool:
                sizes.append(len(blocks))
                await trio.sleep(0.02)
                return await real_put(key, blocks, **kw)

            cache.put_blocks = slow_put  # type: ignore[method-assign]
            assert await read_all(reader, ref, step=bs) == data
            await reader.settle(ref)
            info = await reader.cached_info(ref)
            # What fits is stored (a file being read is never evicted for its own later
            # blocks: those are served from RAM); a 16-block batch would have stored none.
            assert info is not None and len(info.present) >= cache.capacity // bs - 2
    finally:
        await cache.aclose()
    assert max(sizes) <= cache.capacity // (4 * bs)


# -- prefetch and pins ---------------------------------------------------------------------


async def test_prefetch_spends_only_spare_budget(tmp_path: Path) -> None:
    data = payload(5 * BS)
    src = FakeSource({"rec/19": data}, spare_budget=0)
    ref = ref_for("rec/19")
    async with reader_on(tmp_path, src) as reader:
        assert reader.prefetch(ref) is None
        assert src.opens == []
        src.spare_budget = 3
        assert reader.prefetch(ref) is not None
        for _ in range(100):
            info = await reader.cached_info(ref)
            if info is not None and info.complete:
                break
            await trio.sleep(0.01)
        assert src.opens == [("rec/19", 0, Priority.PREFETCH)]
        assert await read_all(reader, ref) == data
    assert len(src.opens) == 1


async def test_pin_keeps_content_offline(tmp_path: Path) -> None:
    data = payload(3 * BS)
    src = FakeSource({"rec/20": data}, spare_budget=3)
    ref = ref_for("rec/20")
    async with reader_on(tmp_path, src) as reader:
        await reader.pin(ref)
        assert src.opens == []  # pinning alone fetches nothing
        done = reader.prefetch(ref)
        assert done is not None
        await done.wait()
        for _ in range(100):
            info = await reader.cached_info(ref)
            if info is not None and info.complete:
                break
            await trio.sleep(0.01)
        assert info is not None and info.pinned and info.complete
