"""Retry-After against the emulator at RingCentral's default request counts (scaled window):
the request that got a 429 is re-sent only after Retry-After, and its group stays silent."""

from __future__ import annotations

from collections.abc import Callable

import trio

from rcfs.api.listing import list_call_log
from tests.api_fakes import download
from tests.emulator_proc import EmulatorProc
from tests.emulator_support import emulator_client

RETRY_AFTER = 3


def test_content_429_resend_waits_retry_after(start_emulator: Callable[..., EmulatorProc]
                                              ) -> None:
    emu = start_emulator("--data-seed", "1", "--window", "6", "--penalty", "6")

    async def main() -> None:
        async with emulator_client(emu) as client:
            calls = await list_call_log(client, None, recording_type="All").collect()
            rec = next(r.recording for r in calls if r.recording is not None)
            emu.fault(kind="status", status=429, retry_after=RETRY_AFTER, count=1,
                      path=r"/recording/\d+/content")
            since = len(emu.requests())
            assert rec.content_uri is not None
            data = await download(client, rec.content_uri)
            assert data == emu.content("recording", rec.id)
            log = [e for e in emu.requests(since) if "/content" in e["path"]]
            assert [e["status"] for e in log] == [429, 206], log
            gap = log[1]["time"] - log[0]["time"]
            assert gap >= RETRY_AFTER, f"resent {gap:.2f} s after a Retry-After: {RETRY_AFTER}"

    trio.run(main)
