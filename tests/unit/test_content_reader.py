"""ContentReader against an in-memory source: exact bytes, one download per file, readers
that close or give up, and the disk (slow writes, bounded buffers, blocks loaded ahead).

Seeks, sizes and the concurrent-reads property: test_content_reader_seeks.py; failures,
deadlines, prefetch and pins: test_content_reader_failures.py; the real ``fetch_range``
over a faulty media host: test_content_reader_media.py; the headline scenarios against
the emulator: tests/emulator/test_content_reader.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from rcfs.api.errors import BudgetExhaustedError
from rcfs.api.scheduler import ON_SLOT, Priority
from rcfs.content.reader import ReaderConfig
from rcfs.content.source import ContentRef
from tests.api_fakes import payload
from tests.content_fakes import BS, Entered, FakeBody, FakeSource, read_all, reader_on, ref_for

pytestmark = pytest.mark.usefixtures("collect_garbage")


# -- exact bytes, one request ------------------------------------------------------------


async def test_reads_return_exact_bytes_with_one_request(tmp_path: Path) -> None:
    data = payload(5 * BS + 1234)
    src = FakeSource({"rec/1": data})
    ref = ref_for("rec/1")
    async with reader_on(tmp_path, src) as reader:
        for off, n in [(0, 10), (BS - 3, 10), (3 * BS, 2 * BS), (len(data) - 5, 100),
                       (len(data), 10), (len(data) + 99, 10), (7, 0), (0, len(data) + 1)]:
            assert await reader.read(ref, off, n) == data[off:off + n], (off, n)
        assert len(src.opens) == 1
        assert reader.counters["requests"] == 1
        await reader.settle(ref)
        info = await reader.cached_info(ref)
        assert info is not None and info.complete and info.size == len(data)
        assert info.content_type == "audio/wav"


async def test_ten_concurrent_readers_cause_one_download(tmp_path: Path) -> None:
    data = payload(40 * BS + 77)
    src = FakeSource({"rec/2": data}, delay=0.001)
    ref = ref_for("rec/2")
    results: dict[int, bytes] = {}
    async with reader_on(tmp_path, src) as reader:
        async def cat(i: int) -> None:
            results[i] = await read_all(reader, ref, step=32 * 1024 + i)

        async with trio.open_nursery() as n:
            for i in range(10):
                n.start_soon(cat, i)
    assert all(r == data for r in results.values()) and len(results) == 10
    assert len(src.opens) == 1


async def test_close_reopen_and_restart_cost_nothing(tmp_path: Path) -> None:
    data = payload(9 * BS + 5)
    src = FakeSource({"rec/3": data})
    ref = ref_for("rec/3")
    async with reader_on(tmp_path, src) as reader:
        assert await reader.read(ref, 0, len(data)) == data
        assert await reader.read(ref, 100, 5000) == data[100:5100]
        assert await reader.read(ref, 0, len(data)) == data
    assert len(src.opens) == 1
    # A new process: the cache is reopened from disk, and the network is gone.
    offline = FakeSource({}, fail=httpx.ConnectError("no network"))
    async with reader_on(tmp_path, offline) as reader:
        assert await read_all(reader, ref_for("rec/3")) == data
        assert await reader.size(ref_for("rec/3")) == len(data)
    assert offline.opens == []


async def test_closing_mid_download_does_not_restart_it(tmp_path: Path) -> None:
    data = payload(30 * BS)
    src = FakeSource({"rec/4": data}, delay=0.002)
    ref = ref_for("rec/4")
    async with reader_on(tmp_path, src) as reader:
        assert await reader.read(ref, 0, 1000) == data[:1000]
        with trio.move_on_after(0.05):
            await reader.read(ref, 20 * BS, 10, deadline=trio.current_time() + 10)
        assert await reader.read(ref, 0, len(data)) == data
    assert len(src.opens) == 1


class _Gated(Entered[FakeBody]):
    """A request that reaches ``gate`` and waits there for its answer; with ``granted`` it
    got its slot first (the scheduler calls ``ON_SLOT``), without it it waits for one."""

    def __init__(self, body: FakeBody, src: GatedSource) -> None:
        super().__init__(body)
        self.src = src

    async def __aenter__(self) -> FakeBody:
        hook = ON_SLOT.get()
        if hook is not None:
            hook("auth")  # a token refresh on the way: not the content request's slot
            if self.src.granted:
                hook("heavy")
        self.src.arrived.set()
        await self.src.gate.wait()
        return await super().__aenter__()


@dataclass
class GatedSource(FakeSource):
    """FakeSource whose requests wait at ``gate`` (see ``_Gated``)."""

    granted: bool = True
    gate: trio.Event = field(default_factory=trio.Event)
    arrived: trio.Event = field(default_factory=trio.Event)  # a request waits at the gate

    def open(self, ref: ContentRef, start: int, *, priority: Priority,
             deadline: float | None) -> Entered[FakeBody]:
        self.opens.append((ref.key, start, priority))
        return _Gated(FakeBody(self.files[ref.key], start, self.chunk, self.delay,
                               self.announce), self)


@pytest.mark.parametrize("granted", [True, False], ids=["sent", "queued"])
async def test_a_download_whose_request_has_its_slot_outlives_its_last_reader(
        tmp_path: Path, granted: bool) -> None:
    """The reader that started a download leaves before the answer comes. Still waiting
    for a slot, the download is dropped (sending it would spend budget nobody asked for).
    Holding one, its budget is spent: it runs on and serves the next read, which costs no
    second request (a property test found that second request)."""
    data = payload(3 * BS + 9)
    src = GatedSource({"rec/5": data}, granted=granted)
    ref = ref_for("rec/5")
    async with reader_on(tmp_path, src) as reader:
        leave = trio.CancelScope()

        async def first() -> None:
            with leave:
                await reader.read(ref, 0, 10)

        async with trio.open_nursery() as n:
            n.start_soon(first)
            await src.arrived.wait()
            assert len(src.opens) == 1
            assert reader.why_waiting(ref) == ("request sent, waiting for its answer" if granted
                                               else "waiting for a Heavy request slot "
                                                    "(fake budget, 0 spare)")
            leave.cancel()
        await trio.testing.wait_all_tasks_blocked()
        src.gate.set()
        assert await read_all(reader, ref) == data
    assert len(src.opens) == (1 if granted else 2)


async def test_slow_disk_does_not_hold_back_a_cold_read(tmp_path: Path) -> None:
    """Blocks wait for the disk in RAM (up to ``write_queue_blocks``) and are written in
    batches (one cache transaction each): a cold read goes at the network's pace."""
    data = payload(24 * BS + 99)
    src = FakeSource({"rec/40": data}, chunk=BS)
    ref = ref_for("rec/40")
    batches: list[list[int]] = []
    written: list[int] = []
    disk = trio.Event()
    async with reader_on(tmp_path, src) as reader:
        real_put = reader.cache.put_blocks

        async def stuck_put(key: str, blocks: dict[int, bytes], **kw: Any) -> bool:
            batches.append(sorted(blocks))
            await disk.wait()  # a disk that writes nothing until the read is over
            written.extend(blocks)
            return await real_put(key, blocks, **kw)

        reader.cache.put_blocks = stuck_put  # type: ignore[method-assign]
        # Counts, not seconds: the whole file reads while not one block is on disk.
        assert await read_all(reader, ref) == data
        assert written == [] and len(batches) == 1, batches
        disk.set()
        await reader.settle(ref)
        info = await reader.cached_info(ref)
        assert info is not None and info.complete
    assert sorted(b for batch in batches for b in batch) == list(range(25))
    assert len(batches) < 25 and max(len(b) for b in batches) > 1
    assert len(src.opens) == 1


async def test_blocks_waiting_for_the_disk_are_bounded_across_downloads(
        tmp_path: Path) -> None:
    """Three cold downloads on a slow disk: each may queue ``write_queue_blocks``, but all
    together stay within ``write_queue_bytes`` (plus the block each is allowed to hand
    over), and every byte still arrives and is stored."""
    files = {f"rec/5{i}": payload(20 * BS, seed=i) for i in range(3)}
    src = FakeSource(files, chunk=BS)
    config = ReaderConfig(write_queue_blocks=8, write_queue_bytes=4 * BS, write_batch_blocks=2)
    seen: list[int] = []
    async with reader_on(tmp_path, src, config) as reader:
        real_put = reader.cache.put_blocks

        async def slow_put(key: str, blocks: dict[int, bytes], **kw: Any) -> bool:
            seen.append(reader._queued_bytes())
            await trio.sleep(0.01)
            return await real_put(key, blocks, **kw)

        reader.cache.put_blocks = slow_put  # type: ignore[method-assign]
        got: dict[str, bytes] = {}

        async def cat(key: str) -> None:
            got[key] = await read_all(reader, ref_for(key))

        async with trio.open_nursery() as n:
            for key in files:
                n.start_soon(cat, key)
        await reader.settle()
        for key in files:
            info = await reader.cached_info(ref_for(key))
            assert info is not None and info.complete, key
    assert got == files
    assert seen and max(seen) <= 4 * BS + 3 * 2 * BS, max(seen)
    assert len(src.opens) == 3


async def cached_then_offline(tmp_path: Path, key: str, nblocks: int
                              ) -> tuple[bytes, ContentRef, FakeSource]:
    """A file of ``nblocks`` blocks read whole into the cache under ``tmp_path``, and a
    source that fails every request: a reader opened next has every block on disk only."""
    data = payload(nblocks * BS)
    ref = ref_for(key)
    async with reader_on(tmp_path, FakeSource({key: data})) as reader:
        assert await read_all(reader, ref) == data
        await reader.settle(ref)
    return data, ref, FakeSource({}, fail=httpx.ConnectError("no network"))


async def test_disk_blocks_are_loaded_ahead_of_a_sequential_reader(tmp_path: Path) -> None:
    data, ref, offline = await cached_then_offline(tmp_path, "rec/60", 8)
    config = ReaderConfig(disk_read_ahead_blocks=3)
    async with reader_on(tmp_path, offline, config) as reader:  # RAM empty: all on disk
        assert await reader.read(ref, 10, 100) == data[10:110]
        with trio.fail_after(5):
            while reader.counters["disk_loads"] < 4:  # block 0, then 1..3 ahead
                await trio.sleep(0.005)
        assert reader.counters["disk_loads"] == 4
        loads = reader.counters["disk_loads"]
        assert await reader.read(ref, BS + 5, 3 * BS) == data[BS + 5:4 * BS + 5]
        assert reader.counters["memory_hits"] >= 3  # blocks 1..3 were already in RAM
        assert loads <= reader.counters["disk_loads"] <= 8
    assert offline.opens == []


async def test_the_block_a_reader_waits_for_shares_the_disk_with_one_block_only(
        tmp_path: Path) -> None:
    # Loads started together share the disk: with the whole window in flight, the block the
    # reader waits for arrived last. It goes with the next block only, the rest follows it.
    data, ref, offline = await cached_then_offline(tmp_path, "rec/61", 8)
    async with reader_on(tmp_path, offline, ReaderConfig(disk_read_ahead_blocks=4)) as reader:
        started: list[int] = []
        first_may_finish = trio.Event()
        real_get = reader.cache.get_block

        async def get_block(key: str, index: int, block_size: int) -> bytes | None:
            started.append(index)
            if index == 0:
                await first_may_finish.wait()
            return await real_get(key, index, block_size)

        reader.cache.get_block = get_block  # type: ignore[method-assign]
        got: list[bytes] = []

        async def read_first() -> None:
            got.append(await reader.read(ref, 10, 100))

        async with trio.open_nursery() as n:
            n.start_soon(read_first)
            with trio.fail_after(5):
                while len(started) < 2:
                    await trio.sleep(0.005)
            await trio.testing.wait_all_tasks_blocked()
            assert sorted(started) == [0, 1]  # 2..4 wait until block 0 has arrived
            first_may_finish.set()
        assert got == [data[10:110]]
        with trio.fail_after(5):
            while reader.counters["disk_loads"] < 5:  # blocks 2..4 once block 0 arrived
                await trio.sleep(0.005)
        assert sorted(started) == [0, 1, 2, 3, 4]
    assert offline.opens == []


async def test_a_reader_that_gives_up_drops_its_queued_download(tmp_path: Path) -> None:
    """An open (size) or read whose process was interrupted while its download still waited
    for a request slot: nobody wants the download any more, so it is never sent."""
    src = FakeSource({"rec/40": payload(BS)}, hang=True)  # entering = waiting for a slot
    ref = ref_for("rec/40")
    async with reader_on(tmp_path, src) as reader:
        with trio.move_on_after(1):
            await reader.size(ref)
        await trio.sleep(0.1)
        assert reader.stats()["active_streams"] == 0
        with trio.move_on_after(1):
            await reader.read(ref, 0, 10)
        await trio.sleep(0.1)
        assert reader.stats()["active_streams"] == 0
    assert len(src.opens) == 2  # each asked once, neither left waiting


async def test_size_timeout_when_throttled_is_a_throttled_error(tmp_path: Path) -> None:
    from rcfs.content.errors import ContentThrottledError

    src = FakeSource({"rec/41": payload(100)}, fail=BudgetExhaustedError("Heavy", 50.0))
    async with reader_on(tmp_path, src) as reader:
        with pytest.raises(ContentThrottledError, match="Heavy request budget is empty"):
            await reader.size(ref_for("rec/41"))
