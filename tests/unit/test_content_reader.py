"""ContentReader against an in-memory source: exact bytes, one download per file, seeks,
deadlines, corruption, restarts, prefetch; property tests with random concurrent reads, with
the real ``fetch_range`` over a faulty fake media host.

The headline scenarios run again against the emulator at the end (marked slow).
"""

from __future__ import annotations

import gc
import hashlib
import random
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rcfs.api import Credentials, RcClient
from rcfs.api.errors import ApiError, BudgetExhaustedError
from rcfs.api.scheduler import ON_SLOT, Priority
from rcfs.content.blockcache import HEADER, MIN_BUDGET, BlockCache, iter_value_files
from rcfs.content.errors import (
    ContentNotFoundError,
    ContentTimeoutError,
    ContentUnavailableError,
)
from rcfs.content.reader import ContentReader, ReaderConfig, open_reader
from rcfs.content.source import ApiContentSource, ContentRef
from tests.emulator_proc import EmulatorProc, verify_for

BS = 64 * 1024

# httpx and httpcore implement their response streams' __aiter__ as async generators; a
# response closed before its body ends (a download that stops because the rest is cached, a
# reset, a cancelled read) leaves them to the garbage collector, and trio warns
# (encode/httpx#3686, fix pending in #3777). Nothing leaks: the response itself is closed.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:Async generator 'http(x|core)\..*' was garbage collected:ResourceWarning")


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Finalize this test's abandoned generators while its warning filter applies."""
    yield
    gc.collect()


def payload(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


T = TypeVar("T")


class _Entered(Generic[T]):
    """An async context manager that enters as ``value`` (or raises it). A class, not an
    ``@asynccontextmanager`` generator: one abandoned mid-way by a cancelled task would be
    finalized by the garbage collector, and trio warns (an error under pytest)."""

    def __init__(self, value: T | BaseException | None = None, *, hang: bool = False,
                 sent: Callable[[], T | BaseException | None] | None = None) -> None:
        self.value, self.hang, self.sent = value, hang, sent

    async def __aenter__(self) -> T:
        if self.sent is not None:
            # The request leaves here, after a checkpoint, as with RcClient (whose scheduler
            # and socket checkpoint first): a download cancelled before its task ran sends
            # nothing. What ``sent`` returns, if anything, is the answer.
            await trio.lowlevel.checkpoint()
            answer = self.sent()
            if answer is not None:
                self.value = answer
        if self.hang:
            await trio.sleep_forever()
        if isinstance(self.value, BaseException):
            raise self.value
        assert self.value is not None
        return self.value

    async def __aexit__(self, *exc: object) -> None:
        return None


@dataclass
class FakeBody:
    data: bytes
    start: int
    chunk: int
    delay: float
    announce: bool
    content_type: str | None = "audio/wav"
    requests: int = 1
    fail_at: int | None = None
    total_size: int | None = None
    size_proven: bool = False

    def __post_init__(self) -> None:
        if self.announce:  # as a 206's Content-Range total
            self.total_size = len(self.data)
            self.size_proven = True

    def __aiter__(self) -> AsyncIterator[tuple[int, bytes]]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[tuple[int, bytes]]:
        pos = self.start
        while pos < len(self.data):
            if self.fail_at is not None and pos >= self.fail_at:
                raise ApiError(500, "CMN-101", "boom")
            if self.delay:
                await trio.sleep(self.delay)
            else:
                await trio.lowlevel.checkpoint()
            piece = self.data[pos:pos + self.chunk]
            if pos + len(piece) == len(self.data):
                self.total_size = len(self.data)  # the end of a body of unknown length
                self.size_proven = True
            yield pos, piece
            pos += len(piece)
        self.total_size = len(self.data)
        self.size_proven = True


@dataclass
class FakeSource:
    """Serves ``files[ref.key]`` from any start; ``opens`` logs (key, start, priority) of
    every request sent."""

    files: dict[str, bytes]
    chunk: int = 16 * 1024
    delay: float = 0.0
    announce: bool = True
    spare_budget: int = 0
    fail: BaseException | None = None
    hang: bool = False
    fail_at: int | None = None
    opens: list[tuple[str, int, Priority]] = field(default_factory=list)

    def open(self, ref: ContentRef, start: int, *, priority: Priority,
             deadline: float | None) -> _Entered[FakeBody]:
        def sent() -> None:
            self.opens.append((ref.key, start, priority))

        if self.fail is not None:
            return _Entered(self.fail, hang=self.hang, sent=sent)
        return _Entered(FakeBody(self.files[ref.key], start, self.chunk, self.delay,
                                 self.announce, fail_at=self.fail_at), hang=self.hang,
                        sent=sent)

    def spare(self, group: str) -> int:
        return self.spare_budget

    def describe(self, group: str) -> str:
        return f"fake budget, {self.spare_budget} spare"


def ref_for(key: str, *, size: int | None = None, group: str = "Heavy") -> ContentRef:
    kind, *ids = key.split("/")
    return ContentRef(kind, tuple(ids), f"https://media.example.com/{key}/content", group,
                      size, None)


@asynccontextmanager
async def reader_on(path: Path, source: Any, config: ReaderConfig | None = None,
                    budget: int | str = "256 MiB") -> AsyncIterator[ContentReader]:
    cache = await BlockCache.open(path, budget=budget, block_size=BS)
    try:
        async with open_reader(cache, source, config) as reader:
            yield reader
    finally:
        await cache.aclose()


async def read_all(reader: ContentReader, ref: ContentRef, step: int = 128 * 1024) -> bytes:
    out = bytearray()
    while True:
        piece = await reader.read(ref, len(out), step)
        out += piece
        if len(piece) < step:
            return bytes(out)


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


class _Gated(_Entered[FakeBody]):
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
             deadline: float | None) -> _Entered[FakeBody]:
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


# -- property tests ------------------------------------------------------------------------

reads_st = st.lists(st.tuples(st.integers(0, 700_000), st.integers(0, 200_000)),
                    min_size=1, max_size=12)


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
            async def one(off: int, n: int) -> None:
                assert await reader.read(ref, off, n) == data[off:off + n]

            async with trio.open_nursery() as nursery:
                for off, n in reads:
                    nursery.start_soon(one, off, n)
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


FAULTS = ["short206", "ignore_range", "reset", "no_length", "partial_200", "lie_length"]


@dataclass
class FaultyMedia:
    """A ``StreamingClient`` serving ``files[url]`` with RFC 7233 ranges, applying the
    emulator's content faults to the first requests (``faults`` is consumed in order)."""

    files: dict[str, bytes]
    faults: list[str | None]
    chunk: int = 8192
    log: list[tuple[str | None, str | None]] = field(default_factory=list)

    def stream(self, method: str, url: str, *, headers: Any = None, params: Any = None,
               priority: Priority = Priority.INTERACTIVE, deadline: float | None = None,
               group: str | None = None) -> _Entered[httpx.Response]:
        return _Entered(sent=lambda: self._answer(url, (headers or {}).get("Range")))

    def _answer(self, url: str, asked: str | None) -> httpx.Response | BaseException:
        data = self.files[url]
        size = len(data)
        fault = self.faults.pop(0) if self.faults else None
        self.log.append((asked, fault))
        hook = ON_SLOT.get()  # what RcClient's scheduler does as it grants the request
        if hook is not None:
            hook("heavy")
        if fault == "fail":
            return ApiError(500, "CMN-101", "fault: internal error")
        start, stop = 0, size
        ranged = False
        if asked and fault != "ignore_range":
            lo, _, hi = asked.removeprefix("bytes=").partition("-")
            start = int(lo)
            if start >= size:
                exc = ApiError(416, "CMN-107", "Requested range not satisfiable")
                exc.headers = {"Content-Range": f"bytes */{size}"}
                return exc
            stop = min(size, int(hi) + 1) if hi else size
            ranged = True
        if fault == "partial_200" and not asked and size > 1:
            stop, ranged = size // 2, True
        if fault == "short206" and ranged and stop - start > 1:
            stop = start + (stop - start) // 2
        h = {"Content-Type": "audio/mpeg"}
        if ranged:
            h["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        body = data[start:stop]
        reset = None
        if fault == "lie_length":
            h["Content-Length"] = str(len(body) + 1000)
        elif fault != "no_length":
            h["Content-Length"] = str(len(body))
        if fault == "reset":
            reset = len(body) // 2
        return httpx.Response(206 if ranged else 200, headers=h,
                              stream=_Chunks(body, self.chunk, reset))


MEDIA_URL = "https://media.example.com/restapi/v1.0/account/1/recording/7/content"


async def test_a_size_only_claimed_is_not_persisted_nor_preferred_to_the_apis(
        tmp_path: Path) -> None:
    """A 200 whose Content-Length is 1,000 bytes larger than its body, then a failed
    continuation (the soak's lie_length fault): the claim stays the reader's working size,
    but it is not proven and not recorded in the cache (a later session would trust it);
    with the API's size different, neither is proven. The next download proves and
    records the real one."""
    data = payload(3 * BS + 500, 3)
    media = FaultyMedia({MEDIA_URL: data}, ["lie_length", "fail", "fail"])
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
    assert [f for _asked, f in media.log] == ["lie_length", "fail", "fail", None]


async def test_a_claim_does_not_replace_a_proven_size(tmp_path: Path) -> None:
    """With the size proven (a 206's Content-Range total), a later 200 claiming 1,000 more
    bytes changes nothing: the file still ends at its proven size, so the download stops
    there (no continuation is asked for the 1,000 bytes that do not exist)."""
    data = payload(2 * BS + 300, 4)
    media = FaultyMedia({MEDIA_URL: data}, [None, "lie_length", "fail"])
    ref = ContentRef("rec", ("7",), MEDIA_URL, "Heavy", None, None)
    async with reader_on(tmp_path, ApiContentSource(media)) as reader:
        assert await reader.read(ref, 2 * BS, BS) == data[2 * BS:]
        assert reader.proven_size(ref.key) == len(data)
        assert await read_all(reader, ref) == data
        await reader.settle(ref)
        assert reader.known_size(ref) == reader.proven_size(ref.key) == len(data)
    assert media.log == [(f"bytes={2 * BS}-", None), (None, "lie_length")]


async def test_a_body_longer_than_the_proven_size_fails_and_unproves_it(
        tmp_path: Path) -> None:
    """The object is longer than the size an earlier session proved and recorded: bytes
    past that size are never stored under the last block; the download fails, and the
    size is no longer taken as proven (the next response's counts)."""
    data = payload(3 * BS, 5)
    media = FaultyMedia({MEDIA_URL: data}, [])
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
            async def one(off: int, n: int) -> None:
                assert await reader.read(ref, off, n) == data[off:off + n]

            async with trio.open_nursery() as nursery:
                for off, n in reads:
                    nursery.start_soon(one, off, n)
            assert await read_all(reader, ref) == data

    trio.run(main)
    # Each fault costs at most one continuation; the reads need at most one download per
    # distinct starting block (no spare budget: no optional seeks). A read past the end of
    # a file of unknown size costs its request too (the 416 tells the size).
    starts = {off // BS for off, _ in reads} | {0}
    assert len(media.log) <= len(starts) + len(faults), media.log



# -- against the emulator ------------------------------------------------------------------
# Real HTTP through RcClient (scheduler, retries, fetch_range) to `python -m rcfs.emulator`;
# request counts come from the emulator's own log.


def new_recording(emu: EmulatorProc, seconds: int, fmt: str = "wav") -> tuple[str, str]:
    """A call with a recording of ``seconds`` (wav: 16,000 bytes/s); returns (id, uri)."""
    user = emu.user(admin=True)
    made = emu.admin("POST", "/_emulator/calls", {
        "extension_id": user["extension_id"], "direction": "Inbound", "from": "+16505550100",
        "to": "+16505550101", "duration": seconds, "recording": True,
        "recording_format": fmt})
    rid = made["recording_id"]
    uri = (f"{emu.info['media_url']}/restapi/v1.0/account/{emu.info['account_id']}"
           f"/recording/{rid}/content")
    return rid, uri


def content_gets(emu: EmulatorProc, rid: str, since: int = 0) -> list[dict[str, Any]]:
    return [e for e in emu.requests(since) if e["path"].endswith(f"/recording/{rid}/content")]


def last_seq(emu: EmulatorProc) -> int:
    log = emu.requests()
    return log[-1]["seq"] + 1 if log else 0


@asynccontextmanager
async def emulator_reader(emu: EmulatorProc, path: Path, config: ReaderConfig | None = None,
                          ) -> AsyncIterator[ContentReader]:
    user = emu.user(admin=True)
    creds = Credentials(platform_url=emu.info["platform_url"], client_id=emu.info["client_id"],
                        client_secret=emu.info["client_secret"], jwt=user["jwt"])
    client = RcClient(creds, media_url=emu.info["media_url"], verify=verify_for(emu.info))
    async with client, reader_on(path, ApiContentSource(client, client.scheduler), config) as r:
        yield r


async def digest_all(reader: ContentReader, ref: ContentRef, step: int = 128 * 1024) -> str:
    h = hashlib.sha256()
    pos = 0
    while True:
        piece = await reader.read(ref, pos, step)
        h.update(piece)
        pos += len(piece)
        if len(piece) < step:
            return h.hexdigest()


@pytest.mark.slow
async def test_emulator_ten_readers_of_a_cold_50mb_recording_one_request(
        emulator: EmulatorProc, tmp_path: Path) -> None:
    rid, uri = new_recording(emulator, 3125)  # 50,000,044 bytes of wav
    want = hashlib.sha256(emulator.content("recording", rid)).hexdigest()
    ref = ContentRef("rec", (rid,), uri, "Heavy", None, None)
    since = last_seq(emulator)
    digests: list[str] = []
    async with emulator_reader(emulator, tmp_path / "c") as reader:
        async def cat() -> None:
            digests.append(await digest_all(reader, ref))

        async with trio.open_nursery() as n:
            for _ in range(10):
                n.start_soon(cat)
        # Close, reopen, read again: served from the cache.
        assert len(await reader.read(ref, 0, 1 << 20)) == 1 << 20
        assert await digest_all(reader, ref) == want
        await reader.settle()
    assert digests == [want] * 10
    gets = content_gets(emulator, rid, since)
    assert len(gets) == 1, gets
    assert gets[0]["status"] == 200 and gets[0]["bytes"] >= 50_000_000
    # A block corrupted on disk is detected, dropped and fetched again: one ranged request.
    victim = iter_value_files(tmp_path / "c" / "v1")[123]
    raw = bytearray(victim.read_bytes())
    raw[HEADER.size + 4321] ^= 0x40
    victim.write_bytes(bytes(raw))
    since = last_seq(emulator)
    async with emulator_reader(emulator, tmp_path / "c") as reader:
        assert await digest_all(reader, ref) == want
        assert reader.cache.corrupt_blocks == 1
        await reader.settle()
    gets = content_gets(emulator, rid, since)
    assert len(gets) == 1 and gets[0]["status"] == 206, gets
    assert int(gets[0]["range"].removeprefix("bytes=").split("-")[0]) % BS == 0
    # A restart with the emulator gone: the whole file reads from disk, with no request.
    emulator.stop()
    async with emulator_reader(emulator, tmp_path / "c") as reader:
        assert await digest_all(reader, ref) == want
        assert reader.counters["streams_opened"] == 0 and reader.counters["requests"] == 0
        # An uncached read fails fast and says why.
        other = ContentRef("rec", ("999",), uri.replace(rid, "999"), "Heavy", None, None)
        t0 = trio.current_time()
        with pytest.raises(ContentUnavailableError, match="rec/999"):
            await reader.read(other, 0, 10, deadline=t0 + 5)
        assert trio.current_time() - t0 < 5.5


@pytest.mark.slow
async def test_emulator_throttled_uncached_read_fails_at_once(
        start_emulator: Any, tmp_path: Path) -> None:
    emu = start_emulator("--data-seed", "1", "--limits", "Light=50,Medium=40,Heavy=1,Auth=5")
    rid1, uri1 = new_recording(emu, 30)
    rid2, uri2 = new_recording(emu, 30)
    cfg = ReaderConfig(read_deadline_s=3)
    async with emulator_reader(emu, tmp_path, cfg) as reader:
        reader.source._scheduler.observe("Heavy", limit=1)  # type: ignore[attr-defined]
        r1 = ContentRef("rec", (rid1,), uri1, "Heavy", None, None)
        r2 = ContentRef("rec", (rid2,), uri2, "Heavy", None, None)
        assert await digest_all(reader, r1) == hashlib.sha256(
            emu.content("recording", rid1)).hexdigest()
        waits = reader.counters["waits"]
        with pytest.raises(ContentUnavailableError, match="Heavy request budget is empty"):
            await reader.read(r2, 0, 10)
        assert reader.counters["waits"] <= waits + 1  # at once: no re-planning wait loop
        # The cached one still reads.
        assert len(await reader.read(r1, 1000, 1000)) == 1000
    assert len(content_gets(emu, rid2)) == 0  # never sent into a certain 429


@pytest.mark.slow
async def test_emulator_media_player_pattern_costs_two_requests(
        start_emulator: Any, tmp_path: Path) -> None:
    emu = start_emulator("--data-seed", "1")
    rid, uri = new_recording(emu, 600)  # 9.6 MB of wav at 2 MB/s: ~5 s to download
    data = emu.content("recording", rid)
    emu.fault(kind="bandwidth", path=f"/recording/{rid}/content", bytes_per_second=2_000_000)
    ref = ContentRef("rec", (rid,), uri, "Heavy", None, None)
    since = last_seq(emu)
    async with emulator_reader(emu, tmp_path) as reader:
        # ffprobe: the head, then the tail, then back near the start; mpv: the middle.
        assert await reader.read(ref, 0, 65536) == data[:65536]
        tail = len(data) - 128 * 1024
        assert await reader.read(ref, tail, 128 * 1024) == data[tail:]
        assert await reader.read(ref, 4096, 4096) == data[4096:8192]
        mid = len(data) // 2
        assert await reader.read(ref, mid, 65536) == data[mid:mid + 65536]
        assert await digest_all(reader, ref) == hashlib.sha256(data).hexdigest()
        await reader.settle()
    gets = content_gets(emu, rid, since)
    assert len(gets) <= 2, gets


@pytest.mark.slow
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fault=st.sampled_from(["short206", "ignore_range", "reset", "no_length",
                              "partial_200", "lie_length", None]),
       count=st.integers(1, 2), reads=reads_st, seed=st.integers(0, 2**16))
def test_emulator_property_concurrent_reads_under_faults(
        emu: EmulatorProc, tmp_path_factory: pytest.TempPathFactory,
        fault: str | None, count: int, reads: list[tuple[int, int]], seed: int) -> None:
    rid, uri = new_recording(emu, 40 + seed % 7)  # ~0.7 MB: 10-11 blocks
    data = emu.content("recording", rid)
    if fault is not None:
        emu.fault(kind=fault, path=f"/recording/{rid}/content", count=count)
    since = last_seq(emu)
    path = tmp_path_factory.mktemp("emu")

    async def main() -> None:
        ref = ContentRef("rec", (rid,), uri, "Heavy", None, None)
        async with emulator_reader(emu, path) as reader:
            async def one(off: int, n: int) -> None:
                assert await reader.read(ref, off, n) == data[off:off + n]

            async with trio.open_nursery() as nursery:
                for off, n in reads:
                    nursery.start_soon(one, off, n)
            assert await digest_all(reader, ref, 100_000) == hashlib.sha256(data).hexdigest()
            await reader.settle()

    try:
        trio.run(main)
    finally:
        emu.clear_faults()
    gets = content_gets(emu, rid, since)
    starts = {off // BS for off, _ in reads} | {0}
    assert len(gets) <= len(starts) + (count if fault else 0), gets


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
