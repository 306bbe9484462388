"""BlockCache: checksummed blocks, a hard on-disk budget, LRU eviction with holds and pins,
persistence and lazy opening."""

from __future__ import annotations

import os
import subprocess
import time
import zlib
from pathlib import Path

import google_crc32c
import pytest
import trio

from rcfs.content.blockcache import (
    FIXED_OVERHEAD,
    HEADER,
    MIN_BUDGET,
    BlockCache,
    CacheBusyError,
    disk_usage,
    iter_value_files,
    parse_size,
)
from rcfs.content.blocklayout import MAGIC, MAGIC_C, WRITE_MAGIC
from tests.api_fakes import payload
from tests.programs import require_programs

BS = 64 * 1024


async def fill(cache: BlockCache, key: str, nblocks: int, *, bs: int = BS, seed: int = 0) -> None:
    for i in range(nblocks):
        assert await cache.put_block(key, i, payload(bs, seed + i), block_size=bs,
                                     size=nblocks * bs, content_type="audio/wav")


def test_parse_size() -> None:
    assert parse_size("2 GiB") == 2 << 30
    assert parse_size("2G") == 2 << 30
    assert parse_size("500M") == 500 << 20
    assert parse_size("1.5 GB") == 3 << 29
    assert parse_size("4096") == 4096
    assert parse_size(123) == 123
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")


async def test_roundtrip_and_info(tmp_path: Path) -> None:
    cache = await BlockCache.open(tmp_path, budget="64 MiB", block_size=BS)
    assert await cache.info("rec/1") is None
    assert await cache.get_block("rec/1", 0, BS) is None
    data = [payload(BS, 1), payload(BS, 2), payload(1000, 3)]
    for i, d in enumerate(data):
        assert await cache.put_block("rec/1", i, d, block_size=BS, size=2 * BS + 1000,
                                     content_type="audio/mpeg")
    for i, d in enumerate(data):
        assert await cache.get_block("rec/1", i, BS) == d
    info = await cache.info("rec/1")
    assert info is not None
    assert (info.size, info.content_type, info.present) == (2 * BS + 1000, "audio/mpeg",
                                                            frozenset({0, 1, 2}))
    assert info.complete and info.nblocks == 3 and not info.pinned
    # Putting a block again is a no-op (content never changes for an id).
    used = cache.used
    assert await cache.put_block("rec/1", 0, data[0], block_size=BS)
    assert cache.used == used
    await cache.aclose()


async def test_persistent_across_reopen_and_single_owner(tmp_path: Path) -> None:
    cache = await BlockCache.open(tmp_path, budget="64 MiB", block_size=BS)
    await fill(cache, "msg/1/2", 3)
    await cache.set_meta("rec/9", block_size=BS, size=12345, content_type="audio/wav")
    used = cache.used
    with pytest.raises(CacheBusyError):
        await BlockCache.open(tmp_path, budget="64 MiB", block_size=BS)
    await cache.aclose()
    again = await BlockCache.open(tmp_path, budget="64 MiB", block_size=BS)
    assert again.used == used
    assert await again.get_block("msg/1/2", 2, BS) == payload(BS, 2)
    meta = await again.info("rec/9")
    assert meta is not None and (meta.size, meta.content_type) == (12345, "audio/wav")
    assert not meta.present
    await again.aclose()


async def test_blocks_carry_crc32c_and_blocks_of_earlier_versions_stay_readable(
        tmp_path: Path) -> None:
    assert google_crc32c.implementation == "c"  # the wheel's compiled form: fast CRC-32C
    assert WRITE_MAGIC == MAGIC_C
    cache = await BlockCache.open(tmp_path, budget="64 MiB", block_size=BS)
    await fill(cache, "rec/1", 3)
    by_index = {}
    for path in iter_value_files(cache.root):
        raw = path.read_bytes()
        magic, _, index, length, crc, digest = HEADER.unpack_from(raw)
        body = raw[HEADER.size:]
        assert magic == MAGIC_C and length == len(body) == BS
        assert crc == google_crc32c.value(body) != zlib.crc32(body)
        by_index[index] = (path, body, digest)
    assert sorted(by_index) == [0, 1, 2]

    def rewrite(index: int, magic: bytes, crc: int) -> None:
        path, body, digest = by_index[index]
        path.write_bytes(HEADER.pack(magic, BS, index, BS, crc, digest) + body)

    rewrite(0, MAGIC, zlib.crc32(by_index[0][1]))  # as rcfs wrote blocks before CRC-32C
    rewrite(1, MAGIC, google_crc32c.value(by_index[1][1]))  # the magic decides the check
    rewrite(2, b"RCB9", zlib.crc32(by_index[2][1]))  # a magic rcfs does not know
    assert await cache.get_block("rec/1", 0, BS) == payload(BS, 0)
    assert await cache.get_block("rec/1", 1, BS) is None
    assert await cache.get_block("rec/1", 2, BS) is None
    assert cache.corrupt_blocks == 2
    info = await cache.info("rec/1")
    assert info is not None and info.present == {0}
    await cache.aclose()


async def test_corrupt_block_is_dropped_never_served(tmp_path: Path) -> None:
    cache = await BlockCache.open(tmp_path, budget="64 MiB", block_size=BS)
    await fill(cache, "rec/1", 2)
    used = cache.used
    files = iter_value_files(cache.root)
    assert len(files) == 2
    # Flip one payload byte of one block file on disk.
    victim = files[0]
    raw = bytearray(victim.read_bytes())
    raw[HEADER.size + 100] ^= 0xFF
    victim.write_bytes(bytes(raw))
    got = [await cache.get_block("rec/1", i, BS) for i in range(2)]
    assert got.count(None) == 1
    bad = got.index(None)
    assert got[1 - bad] == payload(BS, 1 - bad)
    assert cache.corrupt_blocks == 1
    info = await cache.info("rec/1")
    assert info is not None and info.present == {1 - bad}
    assert cache.used < used
    assert not victim.exists()
    # A truncated file is caught the same way.
    other = iter_value_files(cache.root)[0]
    other.write_bytes(other.read_bytes()[:-1])
    assert await cache.get_block("rec/1", 1 - bad, BS) is None
    assert cache.corrupt_blocks == 2
    # Refetched bytes go back in.
    assert await cache.put_block("rec/1", bad, payload(BS, bad), block_size=BS)
    assert await cache.get_block("rec/1", bad, BS) == payload(BS, bad)
    # So is a file with bytes past the payload (the payload is read on its own, to the
    # block size and one byte more).
    longer = iter_value_files(cache.root)[0]
    longer.write_bytes(longer.read_bytes() + b"x")
    assert await cache.get_block("rec/1", bad, BS) is None
    assert cache.corrupt_blocks == 3
    await cache.aclose()


async def test_a_block_filed_under_another_key_is_rejected(tmp_path: Path) -> None:
    """The header names the key (digest), the index and the block size: a block file that
    ends up under the wrong row is not served."""
    cache = await BlockCache.open(tmp_path, budget="64 MiB", block_size=BS)
    await fill(cache, "a", 1, seed=1)
    await fill(cache, "b", 1, seed=2)
    fa, fb = iter_value_files(cache.root)
    fb.write_bytes(fa.read_bytes())  # now both rows point at one key's block
    results = {k: await cache.get_block(k, 0, BS) for k in ("a", "b")}
    assert sorted(v is None for v in results.values()) == [False, True]
    good = next(k for k, v in results.items() if v is not None)
    assert results[good] == payload(BS, 1 if good == "a" else 2)
    assert cache.corrupt_blocks == 1
    await cache.aclose()


async def test_budget_is_never_exceeded_on_disk(tmp_path: Path) -> None:
    budget = MIN_BUDGET + (2 << 20)  # 9 MiB: room for ~6 MiB of blocks
    cache = await BlockCache.open(tmp_path, budget=budget, block_size=BS)
    peak = 0
    for f in range(40):  # 40 files x 4 blocks x 64 KiB = 10 MiB, plus small ones
        await fill(cache, f"rec/{f}", 4, seed=f)
        assert await cache.put_block(f"sms/{f}", 0, b"hello %d" % f, block_size=BS, size=8)
        assert cache.used <= cache.capacity
        peak = max(peak, disk_usage(cache.root))
    assert peak <= budget, (peak, budget)
    assert cache.evicted_files > 0
    # The most recent files survive; the oldest went first (LRU).
    assert (await cache.info("rec/39")).complete  # type: ignore[union-attr]
    old = await cache.info("rec/0")
    assert old is None or not old.present
    await cache.aclose()
    assert disk_usage(tmp_path) <= budget


async def test_big_blocks_budget(tmp_path: Path) -> None:
    """With 1 MiB blocks (value files), the footprint stays within the budget too."""
    bs = 1 << 20
    budget = 16 << 20
    cache = await BlockCache.open(tmp_path, budget=budget, block_size=bs)
    data = os.urandom(bs)
    for f in range(12):
        for i in range(3):
            await cache.put_block(f"rec/{f}", i, data, block_size=bs)
        assert disk_usage(cache.root) <= budget
    assert cache.used <= budget - FIXED_OVERHEAD
    await cache.aclose()


async def test_lru_order_follows_touch(tmp_path: Path) -> None:
    cache = await BlockCache.open(tmp_path, budget=MIN_BUDGET, block_size=BS)
    per_file = 8
    n = 0
    while True:  # fill until the first eviction would happen
        await fill(cache, f"f{n}", per_file)
        n += 1
        if cache.capacity - cache.used < (per_file + 1) * (BS + 4096):
            break
    assert cache.evicted_files == 0
    await cache.touch("f0")  # f0 becomes the most recent; f1 is now the oldest
    await fill(cache, "new", per_file)
    assert (await cache.info("f0")).complete  # type: ignore[union-attr]
    assert not (await cache.info("f1")).present  # type: ignore[union-attr]
    await cache.aclose()


async def test_held_and_pinned_files_are_not_evicted(tmp_path: Path) -> None:
    cache = await BlockCache.open(tmp_path, budget=MIN_BUDGET, block_size=BS)
    await fill(cache, "held", 8)
    await fill(cache, "pinned", 8)
    await cache.pin("pinned")
    cache.hold("held")
    for f in range(30):
        await fill(cache, f"other{f}", 8, seed=f)
    assert (await cache.info("held")).complete  # type: ignore[union-attr]
    pinned = await cache.info("pinned")
    assert pinned is not None and pinned.complete and pinned.pinned
    assert await cache.pinned_keys() == ["pinned"]
    cache.release("held")
    for f in range(30):
        await fill(cache, f"more{f}", 8, seed=f)
    assert not (await cache.info("held")).present  # type: ignore[union-attr]
    assert (await cache.info("pinned")).complete  # type: ignore[union-attr]
    await cache.pin("pinned", False)
    for f in range(30):
        await fill(cache, f"last{f}", 8, seed=f)
    assert not (await cache.info("pinned")).present  # type: ignore[union-attr]
    await cache.aclose()


async def test_admission_fails_when_everything_is_held(tmp_path: Path) -> None:
    cache = await BlockCache.open(tmp_path, budget=MIN_BUDGET, block_size=BS)
    cache.hold("big")
    stored = 0
    for i in range(200):
        if await cache.put_block("big", i, payload(BS, i), block_size=BS):
            stored += 1
    assert 0 < stored < 200
    assert cache.rejected_blocks == 200 - stored
    assert cache.used <= cache.capacity
    await cache.aclose()


async def test_size_records_survive_eviction_then_go_last(tmp_path: Path) -> None:
    cache = await BlockCache.open(tmp_path, budget=MIN_BUDGET, block_size=BS)
    await fill(cache, "first", 4)
    for f in range(30):
        await fill(cache, f"x{f}", 8, seed=f)
    info = await cache.info("first")
    assert info is not None and not info.present and info.size == 4 * BS
    await cache.aclose()


async def test_concurrent_puts_respect_budget(tmp_path: Path) -> None:
    budget = MIN_BUDGET
    cache = await BlockCache.open(tmp_path, budget=budget, block_size=BS)

    async def writer(w: int) -> None:
        for f in range(6):
            await fill(cache, f"w{w}/{f}", 6, seed=w * 10 + f)

    async with trio.open_nursery() as n:
        for w in range(6):
            n.start_soon(writer, w)
    assert cache.used <= cache.capacity
    assert disk_usage(cache.root) <= budget
    assert await cache.check() <= cache.capacity
    await cache.aclose()


@pytest.mark.slow
async def test_a_cache_of_100k_blocks_opens_lazily(tmp_path: Path) -> None:
    """Opening reads no index: 100,000 blocks open (and serve a first block) in well under
    a second."""
    bs = 4096
    cache = await BlockCache.open(tmp_path, budget="4 GiB", block_size=bs)
    data = os.urandom(bs)
    for f in range(100):
        assert await cache.put_blocks(f"msg/{f}/1", {i: data for i in range(1000)},
                                      block_size=bs, size=1000 * bs)
    await cache.aclose()
    t0 = time.perf_counter()
    again = await BlockCache.open(tmp_path, budget="4 GiB", block_size=bs)
    info = await again.info("msg/57/1")
    first = await again.get_block("msg/57/1", 999, bs)
    elapsed = time.perf_counter() - t0
    assert info is not None and len(info.present) == 1000 and first == data
    assert elapsed < 0.5, elapsed
    await again.aclose()


async def test_reading_a_block_writes_nothing(tmp_path: Path) -> None:
    """relatime would update a value file's access time at its first read after a write:
    an inode write per block of every reread. The cache reads with O_NOATIME."""
    cache = await BlockCache.open(tmp_path, budget="64 MiB", block_size=BS)
    await fill(cache, "rec/1", 1)
    (value,) = iter_value_files(cache.root)
    os.utime(value, (1, value.stat().st_mtime))  # older than mtime: relatime would update it
    assert await cache.get_block("rec/1", 0, BS) == payload(BS, 0)
    assert value.stat().st_atime == 1
    await cache.aclose()


def _resident_bytes(path: Path) -> int:
    """Bytes of ``path`` in the page cache (util-linux's fincore)."""
    (fincore,) = require_programs("fincore")
    out = subprocess.run([fincore, "--bytes", "--noheadings", "--output", "RES", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip())


async def test_a_block_read_leaves_no_copy_in_the_page_cache(tmp_path: Path) -> None:
    """The reader keeps the bytes it loaded; the value file's pages would be a second copy."""
    stat, _ = require_programs("stat", "fincore")
    fs = subprocess.run([stat, "-f", "-c", "%T", str(tmp_path)], capture_output=True,
                        text=True, check=True).stdout.strip()
    if fs == "tmpfs":  # a property of the filesystem, not a missing program: skipped in CI too
        pytest.skip("tmpfs keeps its pages: they are the files themselves")
    cache = await BlockCache.open(tmp_path, budget="64 MiB", block_size=BS)
    await fill(cache, "rec/1", 2)
    first, second = iter_value_files(cache.root)
    os.sync()  # clean pages: only those can be dropped
    assert _resident_bytes(first) > 0 and _resident_bytes(second) > 0
    got = {i: await cache.get_block("rec/1", i, BS) for i in range(2)}
    assert got == {0: payload(BS, 0), 1: payload(BS, 1)}
    assert _resident_bytes(first) == 0 and _resident_bytes(second) == 0
    await cache.aclose()
