"""rcfs.api.content against the emulator process: every attachment of a mailbox, a recording
and a greeting byte-equal to the emulator's source bytes, with and without injected content
faults. The fault-by-fault tests over a fake media host: tests/unit/test_api_content.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from rcfs.api import RcClient
from rcfs.api.content import fetch_range
from rcfs.api.listing import list_call_log, list_greetings, list_messages
from rcfs.api.models import Attachment, Message
from tests.api_fakes import download, read_all
from tests.emulator_proc import EmulatorProc
from tests.emulator_support import emulator_client

# Closing an httpx body before its end (inherent when a server sends more than the range)
# leaves httpx's nested body generators (and ChunkStream's) to trio's GC hook, which warns
# (httpx issue #3686).
pytestmark = pytest.mark.filterwarnings(
    "ignore:Async generator .* was garbage collected:ResourceWarning")


# -- against the emulator process -------------------------------------------------------------


def smallest_mailbox(emu: EmulatorProc) -> str:
    """Id of the extension with the fewest (but some) messages: every attachment of it can
    be downloaded under every fault in a few seconds."""
    summary = emu.admin("GET", "/_emulator/summary")
    exts = [(sum(e["messages"].values()), str(e["id"])) for e in summary["extensions"]]
    return min(e for e in exts if e[0] > 0)[1]


async def mailbox_attachments(client: RcClient, ext_id: str) -> list[tuple[Message, Attachment]]:
    msgs = await list_messages(client, ext_id).collect()
    return [(m, a) for m in msgs for a in m.attachments]


# Each rule applies to a seeded-random 40% of content responses, so downloads see faulty and
# clean answers interleaved (continuations land on both).
EMULATOR_FAULTS: list[dict[str, Any]] = [
    {"kind": "reset"},
    {"kind": "reset", "after_bytes": 1000},
    {"kind": "short206"},
    {"kind": "short206", "bytes": 4096},
    {"kind": "ignore_range"},
    {"kind": "partial_200"},
    {"kind": "partial_200", "bytes": 100},
    {"kind": "no_length"},
    # After a lying 200 the continuation starts exactly at the real end: a 416 (with
    # `bytes */N`) tells the true size.
    {"kind": "lie_length"},
    {"kind": "lie_length", "probability": 1.0},
    {"kind": "bandwidth", "bytes_per_second": 4_000_000},
]


def _fault_id(spec: dict[str, Any]) -> str:
    return "-".join(str(v) for v in spec.values())


@pytest.mark.slow
async def test_emulator_downloads_match_source(emu: EmulatorProc) -> None:
    """No fault: every attachment of a mailbox, a recording and a greeting, byte-equal to
    the emulator's source bytes; one request each; sizes learned."""
    emu.clear_faults()
    ext_id = smallest_mailbox(emu)
    async with emulator_client(emu) as client:
        atts = await mailbox_attachments(client, ext_id)
        assert atts
        since = len(emu.requests())
        for m, a in atts:
            async with fetch_range(client, a.uri) as reader:
                data = await read_all(reader)
            assert data == emu.content("message", f"{m.id}/{a.id}")
            assert reader.total_size == len(data) and reader.requests == 1
            assert reader.content_type is not None
            assert reader.content_type.split(";")[0] == a.content_type
            if a.size is not None:
                assert a.size == len(data)
        content_log = [e for e in emu.requests(since) if "/content" in e["path"]]
        assert len(content_log) == len(atts)
        # A whole download asks for ``bytes=0-``: a 206 whose Content-Range proves the size.
        assert {(e["range"], e["status"]) for e in content_log} == {("bytes=0-", 206)}
        calls = await list_call_log(client, None, recording_type="All").collect()
        rec = next(r.recording for r in calls if r.recording is not None)
        assert rec is not None and rec.content_uri is not None
        assert await download(client, rec.content_uri) == emu.content("recording", rec.id)
        greetings = await list_greetings(client)
        assert greetings and greetings[0].content_uri is not None
        assert await download(client, greetings[0].content_uri) == emu.content(
            "greeting", greetings[0].id)


@pytest.mark.slow
@pytest.mark.parametrize("spec", EMULATOR_FAULTS, ids=_fault_id)
async def test_emulator_downloads_under_fault(emu: EmulatorProc,
                                              spec: dict[str, Any]) -> None:
    """Every attachment of a mailbox, whole and as a middle range, under one injected
    content fault: byte-equal to a download without faults."""
    emu.clear_faults()
    ext_id = smallest_mailbox(emu)
    async with emulator_client(emu) as client:
        atts = await mailbox_attachments(client, ext_id)
        clean = {a.uri: await download(client, a.uri) for _m, a in atts}
        rule = emu.fault(**{"path": "/content/", "probability": 0.4, **spec})
        since = len(emu.requests())
        try:
            requests = 0
            for _m, a in atts:
                async with fetch_range(client, a.uri) as reader:
                    assert await read_all(reader) == clean[a.uri]
                assert reader.total_size in (len(clean[a.uri]), None)
                requests += reader.requests
                size = len(clean[a.uri])
                if size >= 3:
                    lo, hi = size // 3, 2 * size // 3
                    async with fetch_range(client, a.uri, lo, hi) as reader:
                        pieces = [(off, chunk) async for off, chunk in reader]
                    assert b"".join(c for _o, c in pieces) == clean[a.uri][lo:hi + 1]
                    assert pieces[0][0] == lo
                    requests += reader.requests
        finally:
            applied = emu.admin("GET", "/_emulator/faults")
            emu.clear_faults()
        assert any(r["id"] == rule["id"] and r["applied"] > 0 for r in applied)
        log = [e for e in emu.requests(since) if "/content" in e["path"]]
        assert len(log) == requests  # every continuation is a counted request
        assert all(e["status"] in (200, 206, 416) for e in log)
