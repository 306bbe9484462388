#!/usr/bin/env python3
"""Benchmark the content engine (rcfs.content) against curl, on one loopback emulator.

``content`` (default): starts ``python -m rcfs.emulator``, adds a call with a recording
(default 3125 s of wav = 50 MB), then in one run measures on that same file:

* ``curl``         the content URL downloaded directly (the limit: one GET, no cache);
* ``cold``         a read through ContentReader with an empty cache, in FUSE-sized reads
                   (128 KiB, sequential, like ``cat`` on the mount);
* ``cold x10``     ten concurrent readers of the cold file (fresh cache);
* ``warm disk``    a new reader over the filled cache (RAM cache empty: every block from
                   disk, checksummed);
* ``warm memory``  the same reader again (blocks in RAM);

and prints MB/s, the ratio to curl, and the content requests each used (from the
emulator's own log). curl, the cold read and the warm reads take turns, run by run, in an
order that rotates (a cache filled beforehand, untimed, serves the warm runs); the ten
concurrent readers run once, after them.

``blocksize``: the measurement behind the default block size: write and read throughput of
BlockCache per block size, and the latency of a random 4 KiB read of an uncached block.

``open``: time to open a cache of N blocks and serve the first block (lazy opening).

Usage: .venv/bin/python scripts/bench_content.py [content] [--seconds 3125] [--repeat 3]
       .venv/bin/python scripts/bench_content.py blocksize [--total-mib 128]
       .venv/bin/python scripts/bench_content.py open [--blocks 100000]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rcfs.api import Credentials, RcClient  # noqa: E402
from rcfs.content.blockcache import BlockCache, parse_size  # noqa: E402
from rcfs.content.reader import ContentReader, ReaderConfig, open_reader  # noqa: E402
from rcfs.content.source import ApiContentSource, ContentRef  # noqa: E402
from tests.emulator_proc import EmulatorProc, verify_for  # noqa: E402

READ = 128 * 1024


def content_gets(emu: EmulatorProc, rid: str, since: int) -> int:
    return sum(1 for e in emu.requests(since) if e["path"].endswith(f"/recording/{rid}/content"))


def next_seq(emu: EmulatorProc) -> int:
    log = emu.requests()
    return log[-1]["seq"] + 1 if log else 0


def curl(url: str, token: str, verify: Any) -> tuple[float, int]:
    args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}",
            "-H", f"Authorization: Bearer {token}", url]
    if isinstance(verify, str):
        args[1:1] = ["--cacert", verify]
    t0 = time.perf_counter()
    out = subprocess.run(args, check=True, capture_output=True, text=True)
    return time.perf_counter() - t0, int(out.stdout)


async def cat(reader: ContentReader, ref: ContentRef) -> tuple[int, str]:
    h = hashlib.sha256()
    pos = 0
    while True:
        piece = await reader.read(ref, pos, READ)
        h.update(piece)
        pos += len(piece)
        if len(piece) < READ:
            return pos, h.hexdigest()


async def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = await fn()
    return time.perf_counter() - t0, result


async def bench_content(args: argparse.Namespace) -> None:
    with EmulatorProc("--data-seed", "1", "--limits",
                      "Light=1000,Medium=1000,Heavy=1000,Auth=1000") as emu:
        user = emu.user(admin=True)
        made = emu.admin("POST", "/_emulator/calls", {
            "extension_id": user["extension_id"], "direction": "Inbound",
            "from": "+16505550100", "to": "+16505550101", "duration": args.seconds,
            "recording": True, "recording_format": args.format})
        rid = made["recording_id"]
        uri = (f"{emu.info['media_url']}/restapi/v1.0/account/{emu.info['account_id']}"
               f"/recording/{rid}/content")
        data = emu.content("recording", rid)
        want = hashlib.sha256(data).hexdigest()
        size = len(data)
        del data
        print(f"file: recording {rid}, {args.format}, {size:,} bytes; block size "
              f"{args.block_size:,}; reads of {READ // 1024} KiB; median of {args.repeat}; "
              f"cache writes inside the timing; the 'block cache on disk' rows read value "
              f"files the page cache may still hold (not dropped)")
        creds = Credentials(platform_url=emu.info["platform_url"],
                            client_id=emu.info["client_id"],
                            client_secret=emu.info["client_secret"], jwt=user["jwt"])
        ref = ContentRef("rec", (rid,), uri, "Heavy", None, None)
        work = Path(tempfile.mkdtemp(prefix="rcfs-bench-"))
        budget = max(4 * size, 256 << 20)

        async def run_reader(cache_dir: Path, concurrent: int = 1,
                             again: bool = False) -> list[tuple[float, int]]:
            """Time one pass (and, with ``again``, a second pass on the same reader)."""
            client = RcClient(creds, media_url=emu.info["media_url"], verify=verify_for(emu.info))
            cache = await BlockCache.open(cache_dir, budget=budget, block_size=args.block_size)
            out = []
            try:
                async with client, open_reader(cache, ApiContentSource(client, client.scheduler),
                                               ReaderConfig()) as reader:
                    await client.tokens.authorization(client.deadline_in(30))  # log in first

                    async def check() -> None:
                        n, digest = await cat(reader, ref)
                        assert (n, digest) == (size, want), (n, size)

                    async def many() -> None:
                        async with trio.open_nursery() as nursery:
                            for _ in range(concurrent):
                                nursery.start_soon(check)

                    async def many_settled() -> None:
                        # The cache writes are part of a read: timed until they are done.
                        await many()
                        await reader.settle()

                    for _ in range(2 if again else 1):
                        s = next_seq(emu)
                        t, _ = await timed(many_settled)
                        out.append((t, content_gets(emu, rid, s)))
            finally:
                await cache.aclose()
            return out

        try:
            rows = await take_turns(emu, rid, uri, size, work, args.repeat, run_reader)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print_rows(rows, size)


Passes = list[tuple[float, int]]
"""(seconds, content requests) of each timed pass of one run."""


async def take_turns(emu: EmulatorProc, rid: str, uri: str, size: int, work: Path, repeat: int,
                     run_reader: Callable[..., Awaitable[Passes]]
                     ) -> dict[str, tuple[float, int, int]]:
    """``repeat`` runs of curl, a cold read and the warm reads, taking turns in an order that
    rotates run by run (so a noisy moment hits each alike), then the ten concurrent readers
    once; the rows, curl's first (the ratios' reference)."""
    await run_reader(work / "warm")  # fills the cache the warm runs read (untimed)

    async def curl_turn(i: int) -> Passes:
        return [await trio.to_thread.run_sync(curl_run, emu, rid, uri, size)]

    runs: dict[str, list[Passes]] = {"curl": [], "cold": [], "warm": []}
    turns: dict[str, Callable[[int], Awaitable[Passes]]] = {
        "curl": curl_turn, "cold": lambda i: run_reader(work / f"cold{i}"),
        "warm": lambda i: run_reader(work / "warm", again=True)}
    names = list(turns)
    for i in range(repeat):
        for who in names[i % 3:] + names[:i % 3]:
            runs[who].append(await turns[who](i))
    [(t10, r10)] = await run_reader(work / "cold10", concurrent=10)

    def row(who: str, k: int = 0) -> tuple[float, int, int]:
        """Median seconds of pass ``k`` over the runs, and the requests of all runs (a total,
        never floor-divided per run)."""
        return (statistics.median(r[k][0] for r in runs[who]),
                sum(r[k][1] for r in runs[who]), 1)

    return {f"curl (the limit), {repeat} runs": row("curl"),
            f"cold read through the reader, {repeat} runs": row("cold"),
            "cold, 10 concurrent readers": (t10, r10, 10),
            f"warm, block cache on disk, {repeat} runs": row("warm"),
            f"warm, blocks in RAM (same reader), {repeat} runs": row("warm", 1)}


def curl_run(emu: EmulatorProc, rid: str, uri: str, size: int) -> tuple[float, int]:
    """One run of the limit row: curl's time for the whole file, and its requests. The token
    is fetched each time (untimed): every reader logs in, and a log-in past the emulator's
    sessions per user and app ends the oldest (rcfs/emulator/oauth.py)."""
    token = emu.token()
    since = next_seq(emu)
    t, got = curl(uri, token, emu.info.get("ca_cert"))
    assert got == size, (got, size)
    return t, content_gets(emu, rid, since)


def print_rows(rows: dict[str, tuple[float, int, int]], size: int) -> None:
    """The table: each row's time, rate and rate relative to the first row (curl)."""
    base = next(iter(rows.values()))[0]
    print(f"\n{'':44s} {'seconds':>8s} {'MB/s':>8s} {'x curl':>7s} {'requests':>9s}")
    for name, (t, reqs, readers) in rows.items():
        rate = readers * size / t
        print(f"{name:44s} {t:8.3f} {rate / 1e6:8.1f} {rate / (size / base):7.2f} "
              f"{reqs:9d}")
    print("\n(x curl: throughput relative to curl; 10 readers count 10x the bytes; "
          "requests: every content GET in the emulator's log for that row, all runs)")


async def _one_blocksize(bs: int, total: int, where: str | None) -> tuple[float, ...]:
    d = tempfile.mkdtemp(prefix="rcfs-bs-", dir=where)
    cache = await BlockCache.open(d, budget=4 * total, block_size=bs)
    data = os.urandom(bs)
    n = total // bs
    t0 = time.perf_counter()
    for i in range(n):
        await cache.put_block("f", i, data, block_size=bs)
    write = total / (time.perf_counter() - t0) / 1e6
    t0 = time.perf_counter()
    for i in range(n):
        await cache.get_block("f", i, bs)
    read = total / (time.perf_counter() - t0) / 1e6
    lat = []
    for _ in range(100):
        i = random.randrange(n)
        t0 = time.perf_counter()
        await cache.get_block("f", i, bs)
        lat.append((time.perf_counter() - t0) * 1e3)
    lat.sort()
    await cache.aclose()
    shutil.rmtree(d)
    return write, read, lat[50], lat[95]


async def bench_blocksize(args: argparse.Namespace) -> None:
    total = args.total_mib << 20
    sizes = [64 << 10, 256 << 10, 1 << 20, 2 << 20, 4 << 20, 8 << 20]
    print(f"BlockCache, {args.total_mib} MiB per size, median of {args.repeat} interleaved "
          "rounds; random read = one 4 KiB read of a block not in RAM (whole block + CRC)")
    results: dict[int, list[tuple[float, ...]]] = {bs: [] for bs in sizes}
    for _ in range(args.repeat):
        for bs in sizes:  # interleaved, so a noisy moment hits every size alike
            results[bs].append(await _one_blocksize(bs, total, args.dir))
    print(f"{'block':>8s} {'write MB/s':>11s} {'read MB/s':>10s} {'rand p50 ms':>12s} "
          f"{'rand p95 ms':>12s}")
    for bs in sizes:
        w, r, p50, p95 = (statistics.median(col) for col in zip(*results[bs], strict=True))
        print(f"{bs >> 10:6d} K {w:11.0f} {r:10.0f} {p50:12.2f} {p95:12.2f}")


async def bench_open(args: argparse.Namespace) -> None:
    d = tempfile.mkdtemp(prefix="rcfs-open-", dir=args.dir)
    bs = 4096
    per = 1000
    cache = await BlockCache.open(d, budget="64 GiB", block_size=bs)
    data = os.urandom(bs)
    t0 = time.perf_counter()
    for f in range(args.blocks // per):
        await cache.put_blocks(f"msg/{f}/1", {i: data for i in range(per)}, block_size=bs)
    print(f"built {args.blocks:,} blocks in {time.perf_counter() - t0:.1f} s")
    await cache.aclose()
    for _ in range(3):
        t0 = time.perf_counter()
        cache = await BlockCache.open(d, budget="64 GiB", block_size=bs)
        t1 = time.perf_counter()
        info = await cache.info(f"msg/{args.blocks // per // 2}/1")
        block = await cache.get_block(f"msg/{args.blocks // per // 2}/1", per - 1, bs)
        t2 = time.perf_counter()
        assert info is not None and block == data
        print(f"open {1e3 * (t1 - t0):.1f} ms; open + first info + first block "
              f"{1e3 * (t2 - t0):.1f} ms")
        await cache.aclose()
    shutil.rmtree(d)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("what", nargs="?", default="content", choices=["content", "blocksize", "open"])
    p.add_argument("--seconds", type=int, default=3125, help="recording length (wav: 16 kB/s)")
    p.add_argument("--format", default="wav", choices=["wav", "mp3"])
    p.add_argument("--block-size", type=parse_size, default=1 << 20)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--total-mib", type=int, default=128)
    p.add_argument("--blocks", type=int, default=100_000)
    p.add_argument("--dir", default=None, help="where temporary caches go (default: $TMPDIR)")
    args = p.parse_args()
    runner = {"content": bench_content, "blocksize": bench_blocksize, "open": bench_open}
    trio.run(runner[args.what], args)


if __name__ == "__main__":
    main()
