"""rcfs.api.listing, rcfs.api.sync and rcfs.api.uploads against the emulator process: every
message of every mailbox, batch GETs, read status/delete/purge, both syncs, sends and their
status, the message-store report. The quirk-by-quirk tests over a fake server are in
tests/unit/test_api_listing.py, test_api_sync.py and test_api_uploads.py.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import trio

from rcfs.api.listing import (
    BatchItemError,
    create_message_store_report,
    delete_message,
    get_extension,
    get_message,
    get_messages_batch,
    list_call_log,
    list_extensions,
    list_messages,
    list_phone_numbers,
    list_report_archives,
    update_read_status,
)
from rcfs.api.models import Message
from rcfs.api.sync import CallLogSync, MessageSync
from rcfs.api.uploads import (
    UploadFile,
    is_final,
    send_fax,
    send_mms,
    send_sms,
    upload_greeting,
)
from rcfs.content.reports import ReportRunner, RunnerConfig
from tests.api_fakes import download
from tests.emulator_proc import EmulatorProc
from tests.emulator_support import emulator_client

# -- against the emulator process -------------------------------------------------------------

ALL = ["Alive", "Deleted", "Purged"]


@pytest.mark.slow
async def test_emulator_lists_every_message(emu: EmulatorProc) -> None:
    """Every message of every mailbox, whatever the page size; explicit dateFrom always."""
    summary = emu.admin("GET", "/_emulator/summary")
    since = len(emu.requests())
    async with emulator_client(emu) as client:
        exts = await list_extensions(client).collect()
        assert {e.id for e in exts} == {str(e["id"]) for e in summary["extensions"]}
        for ext in exts:
            big = list_messages(client, ext.id, availability=ALL)
            everything = await big.collect()
            small = list_messages(client, ext.id, availability=ALL, per_page=7)
            assert [m.id for m in await small.collect()] == [m.id for m in everything]
            assert big.pages == 1 and small.pages >= len(everything) // 7
            expected = next(e for e in summary["extensions"] if str(e["id"]) == ext.id)
            assert len(everything) == sum(expected["messages"].values())
            times = [m.creation_time for m in everything]
            assert times == sorted(times, reverse=True)
            assert all(m.extension_id == ext.id for m in everything)
    listings = [e for e in emu.requests(since) if e["path"].endswith("/message-store")]
    assert listings and all("dateFrom=" in e["query"] for e in listings)
    assert all(e["status"] == 200 for e in listings)


@pytest.mark.slow
async def test_emulator_batch_get(emu: EmulatorProc) -> None:
    async with emulator_client(emu) as client:
        listed = await list_messages(client).collect()
        ids = [m.id for m in listed[:60]] + ["999999999"]
        since = len(emu.requests())
        got = await get_messages_batch(client, "~", ids)
        log = [e for e in emu.requests(since) if "/message-store/" in e["path"]]
        assert [e["status"] for e in log] == [207, 207]  # 50 + 11 ids, one Light request each
        assert all(e["group"] == "Light" for e in log)
        for m in listed[:60]:
            assert got[m.id] == m  # same fields as the listing
        gone = got["999999999"]
        assert isinstance(gone, BatchItemError) and gone.status == 404


@pytest.mark.slow
async def test_emulator_read_status_delete_purge(emu: EmulatorProc) -> None:
    added = emu.admin("POST", "/_emulator/messages", {"type": "SMS", "text": "mark me"})
    mid = str(added["id"])
    async with emulator_client(emu) as client:
        ext = str(added["extension_id"])
        m = await update_read_status(client, ext, mid, "Read")
        assert m.read_status == "Read"
        await delete_message(client, ext, mid)
        assert mid not in {x.id async for x in list_messages(client, ext)}
        deleted = await list_messages(client, ext, availability="Deleted").collect()
        assert mid in {x.id for x in deleted}
        await delete_message(client, ext, mid, purge=True)
        purged = await list_messages(client, ext, availability="Purged").collect()
        assert mid in {x.id for x in purged}


@pytest.mark.slow
async def test_emulator_message_sync(emu: EmulatorProc) -> None:
    async with emulator_client(emu) as client:
        me = await get_extension(client)
        alive = await list_messages(client).collect()
        sync = MessageSync(client)
        first = await sync.sync()
        assert first.full and first.sync_token
        assert {m.id for m in first.records} == {m.id for m in alive}

        added = emu.admin("POST", "/_emulator/messages",
                          {"type": "VoiceMail", "extension_id": int(me.id)})
        victim = alive[0].id
        await delete_message(client, "~", victim)
        step = await sync.sync()
        assert not step.full
        assert str(added["id"]) in {m.id for m in step.records}
        assert victim in step.removed_ids
        # Within the server's 5 s overlap the same changes come back: deduplicated.
        again = await sync.sync()
        assert str(added["id"]) not in {m.id for m in again.records}
        assert victim not in again.removed_ids
        stored = sync.sync_token

        # A new process resumes from the stored token...
        resumed = MessageSync(client, sync_token=stored)
        assert not (await resumed.sync()).full
        # ...and starts over when the server has forgotten it (MSG-333).
        emu.admin("POST", "/_emulator/sync/invalidate", {})
        reset = await resumed.sync()
        assert reset.full and resumed.resets == 1 and reset.sync_token != stored
        assert str(added["id"]) in {m.id for m in reset.records}
        assert victim not in {m.id for m in reset.records}


@pytest.mark.slow
async def test_emulator_call_log_sync(emu: EmulatorProc) -> None:
    async with emulator_client(emu) as client:
        company = await list_call_log(client, None).collect()
        sync = CallLogSync(client, None)
        first = await sync.sync()
        assert first.full and sync.sync_token
        assert {r.id for r in first.records} == {r.id for r in company}
        added = emu.admin("POST", "/_emulator/calls", {"recording": True, "duration": 90})
        emu.admin("DELETE", f"/_emulator/calls/{company[0].id}")
        step = await sync.sync()
        assert not step.full
        new = [r for r in step.records if r.id == added["id"]]
        assert new and new[0].recording is not None
        assert new[0].recording.id == added["recording_id"]
        assert company[0].id in step.removed_ids
        # The server has forgotten the token: re-list the gap, new token.
        emu.admin("POST", "/_emulator/sync/invalidate", {})
        gap = await sync.sync()
        assert sync.resets == 1 and added["id"] in {r.id for r in gap.records}


async def _until_final(client: Any, message_id: str) -> Message:
    """Poll a sent message until its status is final (bounded)."""
    with trio.fail_after(30):
        while True:
            message = await get_message(client, "~", message_id)
            if is_final(message):
                return message
            await trio.sleep(0.2)


@pytest.mark.slow
async def test_emulator_sends_and_status(emu: EmulatorProc) -> None:
    emu.admin("POST", "/_emulator/config", {"fax_seconds_per_page": 0.05,
                                            "sms_send_delay": 0.05,
                                            "sms_deliver_delay": 0.05})
    pdf = UploadFile("report.pdf", b"%PDF-1.4\n% rcfs test\n" + bytes(range(256)) * 8,
                     "application/pdf")
    png = UploadFile("dot.png", b"\x89PNG\r\n\x1a\n" + bytes(200), "image/png")
    wav = UploadFile("hi.wav", b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(64), "audio/wav")
    async with emulator_client(emu) as client:
        numbers = await list_phone_numbers(client)
        sms_from = next(n.number for n in numbers if n.can_send_sms)
        fax = await send_fax(client, "+18774880001", [pdf], cover_index=0)
        assert fax.type == "Fax" and fax.message_status == "Queued"
        sms = await send_sms(client, sms_from, "+14155550100", "héllo 😀")
        assert sms.type == "SMS" and sms.conversation_id is not None
        greeting = await upload_greeting(client, "Voicemail", wav)
        assert greeting.content_uri is not None
        assert await download(client, greeting.content_uri) == wav.content
        mms_from = next((n.number for n in numbers if n.can_send_mms), None)
        if mms_from is not None:
            mms = await send_mms(client, mms_from, "+14155550100", [png], text="look")
            assert any(a.type == "MmsAttachment" for a in mms.attachments)
        done = await _until_final(client, fax.id)
        assert done.message_status in ("Sent", "SendingFailed")
        delivered = await _until_final(client, sms.id)
        assert delivered.message_status in ("Delivered", "DeliveryFailed", "SendingFailed")
    sent = {s["kind"]: s for s in emu.sent()}
    assert sent["fax"]["attachments"][0]["sha256"] == hashlib.sha256(pdf.content).hexdigest()
    assert sent["fax"]["attachments"][0]["filename"] == "report.pdf"
    assert sent["sms"]["request"]["text"] == "héllo 😀"
    assert sent["greeting"]["attachments"][0]["size"] == len(wav.content)
    posts = [e for e in emu.requests() if e["method"] == "POST" and "/restapi/v1.0" in e["path"]]
    assert all(e["status"] == 200 for e in posts)  # one attempt each, no retries


@pytest.mark.slow
async def test_emulator_message_store_report() -> None:
    # Own emulator (a fast report_step). Its task status carries startTime/finishTime
    # (docs/ringcentral.md §5.7), which spec 1.0.46 lacks: ALLOW (tests/openapi_rules.py)
    # accepts them, so its exchanges are spec-checked like any other emulator's.
    with EmulatorProc("--data-seed", "1", "--set", "report_step=0.1") as emu:
        async with emulator_client(emu) as client:
            task = await create_message_store_report(client, message_types=["Fax"])
            done = await ReportRunner(client, RunnerConfig(first_poll_s=0.2,
                                                           task_timeout_s=30)).wait(task.id)
            assert done.status == "Completed"
            archives = await list_report_archives(client, task.id)
            assert archives and all(a.size for a in archives)
            data = await download(client, archives[0].uri)
            assert data[:2] == b"PK" and len(data) == archives[0].size
