"""ContentReader against the emulator (real HTTP through RcClient: scheduler, retries,
fetch_range), marked slow: ten readers of a cold 50 MB recording cost one request, a
corrupt block one ranged request, a restart none; an empty budget fails at once; a media
player's seeks cost at most one extra ranged download; reads stay exact under content
faults. Request counts come from the emulator's own log.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rcfs.content.blockcache import HEADER, iter_value_files
from rcfs.content.errors import ContentOfflineError, ContentUnavailableError
from rcfs.content.reader import ContentReader, ReaderConfig
from rcfs.content.source import ApiContentSource, ContentRef
from tests.content_fakes import BS, read_concurrently, reader_on, reads_st
from tests.emulator_proc import EmulatorProc
from tests.emulator_support import assert_one_download_at_most_one_ranged, emulator_client

pytestmark = pytest.mark.usefixtures("collect_garbage")


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
    """A reader over a real RcClient logged in as the admin (the scheduler shared)."""
    client = emulator_client(emu)
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
    assert gets[0]["status"] == 206 and gets[0]["bytes"] >= 50_000_000
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
        # An uncached read fails and says why: as offline (no connection could be made),
        # not as a timeout, and well before its deadline: the client retries a refused
        # connection once (a blip), and a host that refused moments ago not at all
        # (transport.REFUSED_MEMORY_S), so the read's token and content requests end in
        # one backoff of at most 0.5 s plus milliseconds. Half the deadline leaves room for
        # a loaded machine; a read that waited through retries until its deadline (as
        # before, 3.8-5.0 s of 5 s) fails it.
        other = ContentRef("rec", ("999",), uri.replace(rid, "999"), "Heavy", None, None)
        deadline_s = 5.0
        started = trio.current_time()
        with pytest.raises(ContentOfflineError, match="rec/999"):
            await reader.read(other, 0, 10, deadline=started + deadline_s)
        took = trio.current_time() - started
        assert took < deadline_s / 2, f"the offline read took {took:.2f}s"
        assert reader.counters["timeouts"] == 0


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
    assert_one_download_at_most_one_ranged(content_gets(emu, rid, since))


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
            await read_concurrently(reader, ref, data, reads)
            assert await digest_all(reader, ref, 100_000) == hashlib.sha256(data).hexdigest()
            await reader.settle()

    try:
        trio.run(main)
    finally:
        emu.clear_faults()
    gets = content_gets(emu, rid, since)
    starts = {off // BS for off, _ in reads} | {0}
    assert len(gets) <= len(starts) + (count if fault else 0), gets
