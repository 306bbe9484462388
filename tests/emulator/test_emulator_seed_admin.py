"""The emulator's seeded account extended through its admin API, in a real process: messages
and calls added with ``POST /_emulator/messages`` / ``/_emulator/calls`` (with call-log and
recording lags), observed through ``/_emulator/summary``, ``/_emulator/content`` and the
public API; and a scale-mode process that starts fast. The in-process tests of the seed
itself: tests/unit/test_emulator_seed.py.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from tests.emulator_proc import EmulatorProc, api_client
from tests.mount_helper import GENEROUS_LIMITS

# -- admin API (real process) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def lag_emulator() -> Iterator[EmulatorProc]:
    """An emulator where new calls show up 20 s after they end and recordings after 60 s."""
    with EmulatorProc("--data-seed", "5", "--set", "call_log_lag=20",
                      "--set", "recording_processing=60", *GENEROUS_LIMITS) as proc:
        yield proc


def _summary_of(emu: EmulatorProc, ext_id: str) -> dict[str, Any]:
    summary = emu.admin("GET", "/_emulator/summary")
    return next(e for e in summary["extensions"] if str(e["id"]) == ext_id)


def test_add_messages_through_admin_api(lag_emulator: EmulatorProc) -> None:
    emu = lag_emulator
    user = emu.user(admin=False)
    ext_id = user["extension_id"]
    before = _summary_of(emu, ext_id)["messages"]

    sms = emu.admin("POST", "/_emulator/messages", {
        "extension_id": ext_id, "type": "SMS", "from": "+14155550123",
        "from_name": "Ann / Bob", "text": "hello / wörld 🎉"})
    png = Image.new("RGB", (17, 9), (200, 10, 10))
    buf = io.BytesIO()
    png.save(buf, "PNG")
    mms = emu.admin("POST", "/_emulator/messages", {
        "extension_id": ext_id, "type": "SMS", "direction": "Outbound", "to": ["+14155550123"],
        "text": "pic", "attachments": [
            {"kind": "text", "text": "pic"},
            {"kind": "png", "file_name": "dot.png",
             "data_b64": base64.b64encode(buf.getvalue()).decode()}]})
    vm = emu.admin("POST", "/_emulator/messages", {
        "extension_id": ext_id, "type": "VoiceMail", "from": "+14155550124", "duration": 7,
        "attachments": [{"kind": "wav", "content_type": "audio/x-wav"}]})
    fax = emu.admin("POST", "/_emulator/messages", {
        "extension_id": ext_id, "type": "Fax", "from": "+14155550125", "pages": 3,
        "creation_time": "2016-03-04T05:06:07.890Z", "availability": "Deleted"})
    pager = emu.admin("POST", "/_emulator/messages", {
        "type": "Pager", "from": "102", "text": "ping"})

    after = _summary_of(emu, ext_id)["messages"]
    assert after["SMS"] == before["SMS"] + 2
    assert after["VoiceMail"] == before["VoiceMail"] + 1
    assert after["Fax"] == before["Fax"] + 1
    admin_ext = emu.user(admin=True)["extension_id"]
    assert pager["extension_id"] == int(admin_ext)  # default: the first user

    assert emu.content("message", str(sms["id"])) == "hello / wörld 🎉".encode()
    assert emu.content("message", f"{mms['id']}/{mms['attachments'][1]}") == buf.getvalue()
    wav = emu.content("message", str(vm["id"]))
    assert wav[:4] == b"RIFF" and len(wav) == 44 + 2 * 8000 * 7
    assert emu.content("message", str(fax["id"])).startswith(b"%PDF-")

    with api_client(emu) as rc:
        base = f"/restapi/v1.0/account/~/extension/{ext_id}/message-store"
        got = rc.get(f"{base}/{sms['id']}").json()
        assert got["type"] == "SMS" and got["direction"] == "Inbound"
        assert got["from"] == {"phoneNumber": "+14155550123", "name": "Ann / Bob"}
        assert got["subject"] == "hello / wörld 🎉"
        assert isinstance(got["conversationId"], int) and got["conversationId"] > 2**53
        out = rc.get(f"{base}/{mms['id']}").json()
        # The reply to the same number joins the same thread.
        assert out["conversationId"] == got["conversationId"]
        part = next(a for a in out["attachments"] if a["type"] == "MmsAttachment")
        assert part["fileName"] == "dot.png" and part["size"] == len(buf.getvalue())
        assert part["contentType"] == "image/png"
        v = rc.get(f"{base}/{vm['id']}").json()
        assert v["attachments"][0]["vmDuration"] == 7
        assert v["attachments"][0]["contentType"] == "audio/x-wav"
        f = rc.get(f"{base}/{fax['id']}").json()
        assert f["faxPageCount"] == 3 and f["availability"] == "Deleted"
        assert f["creationTime"] == "2016-03-04T05:06:07.890Z"
        # A message added now is inside the default 24 h window.
        listed = rc.get(base).json()["records"]
        assert sms["id"] in [r["id"] for r in listed]

    bad = emu.http.post("/_emulator/messages", json={"type": "Telegram"})
    assert bad.status_code == 400
    bad = emu.http.post("/_emulator/messages", json={"extension_id": "1", "type": "SMS"})
    assert bad.status_code == 400


def test_add_call_with_lag_through_admin_api(lag_emulator: EmulatorProc) -> None:
    emu = lag_emulator
    user = emu.user(admin=False)
    ext_id = user["extension_id"]
    before = _summary_of(emu, ext_id)
    made = emu.admin("POST", "/_emulator/calls", {
        "extension_id": ext_id, "direction": "Outbound", "to": "+14155550199",
        "duration": 45, "recording": True, "recording_format": "wav",
        "recording_type": "OnDemand"})
    rec_id = made["recording_id"]
    assert rec_id and rec_id.isdigit() and not made["id"].isdigit()
    after = _summary_of(emu, ext_id)
    assert after["calls"] == before["calls"] + 1
    assert after["recordings"] == before["recordings"] + 1
    raw = emu.content("recording", rec_id)  # admin view ignores processing time
    assert raw[:4] == b"RIFF" and len(raw) == 44 + 2 * 8000 * 45

    with api_client(emu) as rc:
        log = f"/restapi/v1.0/account/~/extension/{ext_id}/call-log"
        content = f"{emu.info['media_url']}/restapi/v1.0/account/~/recording/{rec_id}/content"

        def listed() -> list[str]:
            return [r["id"] for r in rc.get(log).json()["records"]]

        assert made["id"] not in listed()  # G5: not yet in the call log
        assert rc.get(content).status_code == 404
        emu.advance(21)
        assert made["id"] in listed()
        record = next(r for r in rc.get(log).json()["records"] if r["id"] == made["id"])
        assert record["recording"]["type"] == "OnDemand"
        assert record["duration"] == 45 and record["direction"] == "Outbound"
        assert rc.get(content).status_code == 404  # still processing
        emu.advance(40)
        r = rc.get(content)
        assert r.status_code == 200 and r.content == raw

    # A call that went to voicemail brings its message along.
    vm_before = _summary_of(emu, ext_id)["messages"]["VoiceMail"]
    made = emu.admin("POST", "/_emulator/calls", {
        "extension_id": ext_id, "direction": "Inbound", "from": "+14155550111",
        "duration": 50, "result": "Voicemail"})
    assert made["recording_id"] is None
    assert _summary_of(emu, ext_id)["messages"]["VoiceMail"] == vm_before + 1

    bad = emu.http.post("/_emulator/calls", json={"direction": "Sideways"})
    assert bad.status_code == 400


def test_scale_mode_process_starts_fast() -> None:
    t0 = time.perf_counter()
    with EmulatorProc("--scale", "20000", check_openapi=False, timeout=60) as emu:
        started = time.perf_counter() - t0
        summary = emu.admin("GET", "/_emulator/summary")
        total = sum(sum(e["messages"].values()) for e in summary["extensions"])
        print(f"scale 20000: {total} messages, emulator ready in {started:.2f}s")
        assert total >= 100_000
        assert started < 15
        admin = next(e for e in summary["extensions"] if e["admin"])
        with api_client(emu) as rc:
            base = f"/restapi/v1.0/account/~/extension/{admin['id']}/message-store"
            page = rc.get(base, params={"dateFrom": "2000-01-01", "perPage": 1000,
                                        "messageType": "Fax"}).json()
            assert page["paging"]["totalElements"] > 3000
            oldest = page["records"][-1]
            raw = emu.content("message", str(oldest["id"]))
            assert raw.startswith(b"%PDF-")
