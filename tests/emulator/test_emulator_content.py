"""Binary content downloads of the emulator over real HTTP (docs/ringcentral.md §13 H1-H9,
A3, B18, C6, D2, G5, J4, J5) and the content faults (reset, short206, ignore_range,
partial_200, no_length, bandwidth, lie_length).

Every byte comparison is against ``/_emulator/content`` (the raw bytes, no rate budget).
Tests share one emulator per module with huge limits; faults are cleared after each test and
are scoped to one message path so they never leak into another test's downloads.
"""

from __future__ import annotations

import io
import re
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.emulator_proc import EmulatorProc, api_client
from tests.emulator_support import assert_error, emu_now, iso

STORE = "/restapi/v1.0/account/~/extension/~/message-store"




class Item:
    """One downloadable attachment: its API metadata and its exact bytes."""

    def __init__(self, emu: EmulatorProc, rest: httpx.Client, spec: dict[str, Any],
                 att_type: str | None = None) -> None:
        spec = {"extension_id": emu.user(admin=True)["extension_id"],
                "creation_time": iso(emu_now(emu).timestamp() - 3600, millis=False), **spec}
        self.mid = int(emu.admin("POST", "/_emulator/messages", spec)["id"])
        msg = rest.get(f"{STORE}/{self.mid}").json()
        att = next(a for a in msg["attachments"] if att_type in (None, a["type"]))
        self.meta: dict[str, Any] = att
        self.aid = int(att["id"])
        self.uri: str = att["uri"]
        self.data = emu.content("message", f"{self.mid}/{self.aid}")
        self.size = len(self.data)
        # The API path (host-independent), for fault rules and host swaps.
        self.path = self.uri.split("://", 1)[1].split("/", 1)[1]
        self.path = "/" + self.path


@pytest.fixture(autouse=True)
def _no_faults(emu: EmulatorProc) -> Iterator[None]:
    yield
    emu.clear_faults()


@pytest.fixture(scope="module")
def voicemail(emu: EmulatorProc) -> Item:
    """A 60 s mp3 voicemail (~240 KB: several 64 KiB chunks)."""
    with api_client(emu) as rest:
        return Item(emu, rest, {
            "type": "VoiceMail", "duration": 60,
            "attachments": [{"kind": "mp3", "content_type": "audio/mpeg", "duration": 60}]})


def _fault(emu: EmulatorProc, item: Item, kind: str, **params: Any) -> None:
    emu.fault(kind=kind, path=re.escape(item.path) + "$", **params)


# -- H1, H7, H9: full downloads -----------------------------------------------------------------


def test_full_download(emu: EmulatorProc, rest: httpx.Client, voicemail: Item) -> None:
    assert voicemail.uri.startswith(emu.info["media_url"] + "/restapi/v1.0/")
    r = rest.get(voicemail.uri)
    assert r.status_code == 200
    assert r.content == voicemail.data and voicemail.size > 200_000
    assert r.headers["content-type"] == "audio/mpeg"
    assert r.headers["content-length"] == str(voicemail.size)
    assert r.headers["content-disposition"] == f"inline;filename={voicemail.aid}.mp3"
    assert r.headers["x-rate-limit-group"] == "Medium"  # H8
    assert "content-range" not in r.headers
    assert rest.get(voicemail.uri).content == voicemail.data  # H9: stable bytes


def test_message_content_on_both_hosts(emu: EmulatorProc, rest: httpx.Client,
                                       voicemail: Item) -> None:
    r = rest.get(emu.info["platform_url"] + voicemail.path)
    assert r.status_code == 200 and r.content == voicemail.data
    assert r.headers["x-rate-limit-group"] == "Medium"


def test_content_host_switch(start_emulator: Callable[..., EmulatorProc]) -> None:
    """A3: attachment URIs on the platform host when configured; both work."""
    emu = start_emulator("--set", "content_host=platform")
    with api_client(emu) as rest:
        item = Item(emu, rest, {"type": "Fax", "pages": 2})
        assert item.uri.startswith(emu.info["platform_url"] + "/restapi/v1.0/account/")
        r = rest.get(item.uri)
        assert r.status_code == 200 and r.content == item.data
        assert r.headers["content-type"] == "application/pdf"
        assert r.headers["content-disposition"] == f"inline;filename={item.aid}.pdf"
        assert r.content.startswith(b"%PDF")


def test_external_media_origin(start_emulator: Callable[..., EmulatorProc],
                               tmp_path: Path) -> None:
    """``--media-origin``: content URIs on another server, whose files (exact bytes, written
    when the URI is handed out) the emulator puts in ``--media-dir`` (the benchmarks' nginx)."""
    origin = "http://127.0.0.1:9"  # never contacted here: only the URIs and files are checked
    emu = start_emulator("--media-origin", origin, "--media-dir", str(tmp_path))
    with api_client(emu) as rc:
        item = Item(emu, rc, {"type": "Fax", "pages": 2})
        assert item.uri == origin + item.path
        assert (tmp_path / item.path.lstrip("/")).read_bytes() == item.data
        calls = rc.get("/restapi/v1.0/account/~/extension/~/call-log",
                       params={"withRecording": "true", "dateFrom": "2000-01-01T00:00:00Z"})
        assert calls.status_code == 200
        recs = [c["recording"] for c in calls.json()["records"] if c.get("recording")]
        assert recs, "the seeded account has recordings"
        for rec in recs[:3]:
            path = rec["contentUri"].removeprefix(origin)
            assert rec["contentUri"].startswith(origin + "/restapi/v1.0/account/")
            assert (tmp_path / path.lstrip("/")).read_bytes() == emu.content("recording",
                                                                             rec["id"])
        assert not list(tmp_path.rglob(".part-*"))  # written atomically, nothing left over


def test_sms_text_and_mms_image(emu: EmulatorProc, rest: httpx.Client) -> None:
    sms = Item(emu, rest, {"type": "SMS", "text": "Call me back, please"}, "Text")
    r = rest.get(sms.uri)
    assert r.status_code == 200 and r.content == b"Call me back, please" == sms.data
    assert r.headers["content-type"].startswith("text/plain")
    assert r.headers["content-disposition"] == f"inline;filename={sms.aid}.txt"
    mms = Item(emu, rest, {"type": "SMS", "text": "look", "attachments": [
        {"kind": "text", "text": "look"},
        {"kind": "jpeg", "content_type": "image/jpeg", "width": 320, "height": 240}]},
        "MmsAttachment")
    r = rest.get(mms.uri)
    assert r.status_code == 200 and r.content == mms.data
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["content-disposition"] == f"inline;filename={mms.aid}.jpg"
    assert mms.meta["size"] == len(r.content)


# -- H2: Content-Disposition ----------------------------------------------------------------------


def test_content_disposition(rest: httpx.Client, voicemail: Item) -> None:
    r = rest.get(voicemail.uri, params={"contentDisposition": "Attachment"})
    assert r.headers["content-disposition"] == f"attachment;filename={voicemail.aid}.mp3"
    r = rest.get(voicemail.uri, params={"contentDisposition": "Attachment",
                                      "contentDispositionFilename": "x.wav"})
    assert r.headers["content-disposition"] == "attachment;filename=x.wav"
    assert r.content == voicemail.data
    r = rest.get(voicemail.uri, params={"contentDispositionFilename": "my message.mp3"})
    assert r.headers["content-disposition"] == 'inline;filename="my message.mp3"'
    body = assert_error(rest.get(voicemail.uri, params={"contentDisposition": "Sideways"}),
                  400, "CMN-101")
    assert body["errors"][0]["parameterName"] == "contentDisposition"


# -- H3-H5: ranges --------------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-1023", 0, 1023),
    ("bytes=1000-", 1000, None),
    ("bytes=-500", -500, None),
    ("bytes=100-99999999", 100, None),  # end clamped to the last byte
    ("bytes=10-19, 30-39", 10, 19),  # several ranges: the first is served
])
def test_range(rest: httpx.Client, voicemail: Item, header: str, start: int,
               end: int | None) -> None:
    size = voicemail.size
    first = start if start >= 0 else size + start
    last = size - 1 if end is None else end
    r = rest.get(voicemail.uri, headers={"Range": header})
    assert r.status_code == 206
    assert r.content == voicemail.data[first:last + 1]
    assert r.headers["content-range"] == f"bytes {first}-{last}/{size}"
    assert r.headers["content-length"] == str(last - first + 1)
    assert r.headers["content-type"] == "audio/mpeg"
    assert r.headers["x-rate-limit-group"] == "Medium"


def test_range_not_satisfiable(rest: httpx.Client, voicemail: Item) -> None:
    for header in (f"bytes={voicemail.size}-", f"bytes={voicemail.size + 10}-{voicemail.size + 20}",
                   "bytes=-0"):
        r = rest.get(voicemail.uri, headers={"Range": header})
        body = assert_error(r, 416, "CMN-107")
        assert body["message"] == "Requested range not satisfiable"
        assert r.headers["content-range"] == f"bytes */{voicemail.size}"


def test_malformed_range_is_ignored(rest: httpx.Client, voicemail: Item) -> None:
    for header in ("bytes=abc", "items=0-10", "bytes=20-10"):
        r = rest.get(voicemail.uri, headers={"Range": header})
        assert r.status_code == 200 and r.content == voicemail.data, header


def test_ranged_reassembly_counts_each_request(emu: EmulatorProc, rest: httpx.Client,
                                               voicemail: Item) -> None:
    emu.clear_requests()
    step = 100_000
    parts = []
    remaining = []
    for offset in range(0, voicemail.size, step):
        r = rest.get(voicemail.uri, headers={"Range": f"bytes={offset}-{offset + step - 1}"})
        assert r.status_code == 206
        parts.append(r.content)
        remaining.append(int(r.headers["x-rate-limit-remaining"]))
    assert b"".join(parts) == voicemail.data  # H9
    assert remaining == [remaining[0] - i for i in range(len(parts))]  # C6
    log = [e for e in emu.requests() if e["path"] == voicemail.path]
    assert [e["group"] for e in log] == ["Medium"] * len(parts)
    assert [e["status"] for e in log] == [206] * len(parts)


def test_ranged_gets_exhaust_the_group(start_emulator: Callable[..., EmulatorProc]) -> None:
    emu = start_emulator("--limits", "Medium=3,Light=100")
    with api_client(emu) as rest:
        item = Item(emu, rest, {"type": "VoiceMail", "duration": 5})
        for i in range(3):
            r = rest.get(item.uri, headers={"Range": f"bytes={i}-{i}"})
            assert r.status_code == 206 and r.content == item.data[i:i + 1]
        r = rest.get(item.uri, headers={"Range": "bytes=3-3"})
        assert_error(r, 429, "CMN-301")
        assert r.headers["x-rate-limit-group"] == "Medium"
        assert rest.get(STORE).status_code == 200  # Light is independent (C2)


# -- auth and errors ------------------------------------------------------------------------------


def test_access_token_query_parameter(emu: EmulatorProc, voicemail: Item) -> None:
    token = emu.token()
    r = httpx.get(voicemail.uri, params={"access_token": token})
    assert r.status_code == 200 and r.content == voicemail.data  # B18
    r = httpx.get(voicemail.uri, params={"access_token": token},
                  headers={"Range": "bytes=0-9"})
    assert r.status_code == 206 and r.content == voicemail.data[:10]
    assert httpx.get(voicemail.uri).status_code == 401
    r = httpx.get(voicemail.uri, params={"access_token": "garbage"})
    assert r.status_code == 401


def test_unknown_ids(emu: EmulatorProc, rest: httpx.Client, voicemail: Item) -> None:
    base = voicemail.uri.rsplit("/content/", 1)[0]
    body = assert_error(rest.get(f"{base}/content/12345"), 404, "CMN-102")
    assert body["message"] == "Resource for parameter [attachmentId] is not found"
    assert body["errors"][0]["parameterName"] == "attachmentId"
    other = base.rsplit("/", 1)[0] + "/999/content/999"
    body = assert_error(rest.get(other), 404, "CMN-102")
    assert body["errors"][0]["parameterName"] == "messageId"


def test_other_extension_needs_admin(emu: EmulatorProc, voicemail: Item) -> None:
    with api_client(emu, emu.user(admin=False)) as user:
        assert_error(user.get(voicemail.uri), 403, "CMN-419")


def test_purged_content_is_gone(emu: EmulatorProc, rest: httpx.Client) -> None:
    item = Item(emu, rest, {"type": "VoiceMail", "duration": 3})
    assert rest.delete(f"{STORE}/{item.mid}", params={"purge": "true"}).status_code == 204
    body = assert_error(rest.get(item.uri), 404, "CMN-102")
    assert body["errors"][0]["parameterName"] == "attachmentId"


# -- recordings, greetings, archives (H7, H8, G5, J4, J5) ---------------------------------------


def _recording(rest: httpx.Client) -> dict[str, Any]:
    r = rest.get("/restapi/v1.0/account/~/call-log",
               params={"recordingType": "All", "dateFrom": "2000-01-01", "perPage": 5})
    assert r.status_code == 200, r.text
    records = [c for c in r.json()["records"] if "recording" in c]
    assert records, "the seed has recorded calls"
    rec: dict[str, Any] = records[0]["recording"]
    return rec


def test_recording_content(emu: EmulatorProc, rest: httpx.Client) -> None:
    rec = _recording(rest)
    uri = rec["contentUri"]
    media = emu.info["media_url"]
    assert uri.startswith(media + "/restapi/v1.0/account/")
    raw = emu.content("recording", rec["id"])
    r = rest.get(uri)
    assert r.status_code == 200 and r.content == raw
    assert r.headers["x-rate-limit-group"] == "Heavy"  # H8
    ctype = r.headers["content-type"]
    assert ctype in ("audio/mpeg", "audio/x-wav", "audio/wav")
    ext = "mp3" if ctype == "audio/mpeg" else "wav"
    assert r.headers["content-disposition"] == f"inline;filename={rec['id']}.{ext}"
    r = rest.get(uri, headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and r.content == raw[:100]
    assert r.headers["content-range"] == f"bytes 0-99/{len(raw)}"
    r = rest.get(uri, params={"contentDisposition": "Attachment",
                            "contentDispositionFilename": "call.mp3"})
    assert r.headers["content-disposition"] == "attachment;filename=call.mp3"
    body = assert_error(rest.get(uri.replace(f"/recording/{rec['id']}/", "/recording/4242/")),
                  404, "CMN-102")
    assert body["message"] == "Resource for parameter [callRecordingId] is not found"


def test_recording_content_host(emu: EmulatorProc, rest: httpx.Client) -> None:
    """H7: on the platform host the recording path is 404 unless configured."""
    rec = _recording(rest)
    path = "/" + rec["contentUri"].split("://", 1)[1].split("/", 1)[1]
    platform = emu.info["platform_url"] + path
    assert_error(rest.get(platform), 404, "AGW-404")
    emu.admin("POST", "/_emulator/config", {"recording_content_on_platform": True})
    try:
        r = rest.get(platform)
        assert r.status_code == 200
        assert r.content == emu.content("recording", rec["id"])
    finally:
        emu.admin("POST", "/_emulator/config",
                              {"recording_content_on_platform": False})


def test_recording_not_available_until_processed(
        start_emulator: Callable[..., EmulatorProc]) -> None:
    emu = start_emulator("--set", "recording_processing=120")
    call = emu.admin("POST", "/_emulator/calls", {"duration": 90, "recording": True})
    rid = call["recording_id"]
    uri = (f"{emu.info['media_url']}/restapi/v1.0/account/{emu.info['account_id']}"
           f"/recording/{rid}/content")
    with api_client(emu) as rest:
        assert_error(rest.get(uri), 404, "CMN-102")  # G5: still being processed
        emu.advance(121)
        r = rest.get(uri)
        assert r.status_code == 200 and r.content == emu.content("recording", rid)


def _greetings(emu: EmulatorProc) -> tuple[str, list[str], str, list[str]]:
    summary = emu.admin("GET", "/_emulator/summary")
    admin = next(e for e in summary["extensions"] if e["admin"])
    other = next(e for e in summary["extensions"] if not e["admin"] and e["greetings"])
    assert admin["greetings"], "the seed has custom greetings"
    return str(admin["id"]), admin["greetings"], str(other["id"]), other["greetings"]


def test_greeting_content(emu: EmulatorProc, rest: httpx.Client) -> None:
    info = emu.info
    ext, gids, other_ext, other_gids = _greetings(emu)
    acc = info["account_id"]
    gid = gids[0]
    raw = emu.content("greeting", gid)
    uri = f"{info['media_url']}/restapi/v1.0/account/{acc}/extension/{ext}/greeting/{gid}/content"
    r = rest.get(uri)
    assert r.status_code == 200 and r.content == raw
    assert r.headers["x-rate-limit-group"] == "Heavy"
    assert r.headers["content-type"] in ("audio/mpeg", "audio/wav", "audio/x-wav")
    assert re.fullmatch(rf"inline;filename={gid}\.(mp3|wav)", r.headers["content-disposition"])
    r = rest.get(uri, headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == raw[-10:]
    # Company-level path (account greeting) serves the same object.
    r = rest.get(f"{info['media_url']}/restapi/v1.0/account/{acc}/greeting/{gid}/content")
    assert r.status_code == 200 and r.content == raw
    # Another extension's greeting through this extension's path is not found.
    wrong = uri.replace(f"/greeting/{gid}/", f"/greeting/{other_gids[0]}/")
    body = assert_error(rest.get(wrong), 404, "CMN-102")
    assert body["errors"][0]["parameterName"] == "greetingId"
    assert_error(rest.get(info["platform_url"] + uri[len(info["media_url"]):]), 404, "AGW-404")


def test_report_archive(emu: EmulatorProc, rest: httpx.Client) -> None:
    r = rest.post("/restapi/v1.0/account/~/message-store-report",
                json={"dateFrom": "2000-01-01T00:00:00Z"})
    assert r.status_code == 202, r.text
    task = r.json()["id"]
    listing = None
    for _ in range(10):  # the archive list answers once the task has completed
        emu.advance(30)
        listing = rest.get(f"/restapi/v1.0/account/~/message-store-report/{task}/archive")
        if listing.status_code == 200:
            break
    assert listing is not None and listing.status_code == 200, listing
    records = listing.json()["records"]
    assert records
    for n, rec in enumerate(records):
        assert rec["uri"].startswith(emu.info["platform_url"])
        r = rest.get(rec["uri"])
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/zip"
        assert r.headers["x-rate-limit-group"] == "Heavy"
        assert r.headers["content-disposition"] == f"inline;filename={n}.zip"
        assert len(r.content) == rec["size"] == int(r.headers["content-length"])
        assert zipfile.ZipFile(io.BytesIO(r.content)).testzip() is None
        part = rest.get(rec["uri"], headers={"Range": "bytes=0-3"})  # J5
        assert part.status_code == 206 and part.content == r.content[:4] == b"PK\x03\x04"
    base = records[0]["uri"].rsplit("/", 1)[0]
    body = assert_error(rest.get(f"{base}/{len(records)}"), 404, "CMN-102")
    assert body["errors"][0]["parameterName"] == "archiveId"
    with api_client(emu, emu.user(admin=False)) as user:
        assert_error(user.get(records[0]["uri"]), 403, "CMN-408")


# -- content faults -------------------------------------------------------------------------------


def _stream(rest: httpx.Client, uri: str,
            **kw: Any) -> tuple[httpx.Response, bytes, Exception | None]:
    got = bytearray()
    error: Exception | None = None
    with rest.stream("GET", uri, **kw) as r:
        try:
            for chunk in r.iter_raw():
                got += chunk
        except httpx.HTTPError as exc:
            error = exc
    return r, bytes(got), error


def test_fault_ignore_range(emu: EmulatorProc, rest: httpx.Client,
                            voicemail: Item) -> None:
    _fault(emu, voicemail, "ignore_range")
    r = rest.get(voicemail.uri, headers={"Range": "bytes=0-99"})
    assert r.status_code == 200 and r.content == voicemail.data  # H6a
    assert "content-range" not in r.headers
    assert r.headers["content-length"] == str(voicemail.size)


def test_fault_partial_200(emu: EmulatorProc, rest: httpx.Client,
                           voicemail: Item) -> None:
    _fault(emu, voicemail, "partial_200", bytes=65536, count=1)
    r = rest.get(voicemail.uri)
    assert r.status_code == 206  # H6b: a 206 for a plain GET
    assert r.content == voicemail.data[:65536]
    assert r.headers["content-range"] == f"bytes 0-65535/{voicemail.size}"
    assert r.headers["content-length"] == "65536"
    # The client continues with a Range request (not affected by the fault).
    tail = rest.get(voicemail.uri, headers={"Range": "bytes=65536-"})
    assert tail.status_code == 206 and r.content + tail.content == voicemail.data
    _fault(emu, voicemail, "partial_200", count=1)  # default: the first half
    r = rest.get(voicemail.uri)
    half = (voicemail.size + 1) // 2
    assert r.status_code == 206 and r.content == voicemail.data[:half]
    # So is rcfs's request for the whole object, ``bytes=0-``; other ranges are not.
    _fault(emu, voicemail, "partial_200", count=2)
    r = rest.get(voicemail.uri, headers={"Range": "bytes=0-"})
    assert r.status_code == 206 and r.content == voicemail.data[:half]
    assert r.headers["content-range"] == f"bytes 0-{half - 1}/{voicemail.size}"
    r = rest.get(voicemail.uri, headers={"Range": "bytes=1-"})
    assert r.status_code == 206 and r.content == voicemail.data[1:]


def test_fault_no_length(emu: EmulatorProc, rest: httpx.Client,
                         voicemail: Item) -> None:
    _fault(emu, voicemail, "no_length")
    r = rest.get(voicemail.uri)
    assert r.status_code == 200 and r.content == voicemail.data  # H6c
    assert "content-length" not in r.headers
    assert r.headers["transfer-encoding"] == "chunked"
    r = rest.get(voicemail.uri, headers={"Range": "bytes=10-29"})
    assert r.status_code == 206 and r.content == voicemail.data[10:30]
    assert "content-length" not in r.headers
    assert r.headers["content-range"] == f"bytes 10-29/{voicemail.size}"


def test_fault_short206(emu: EmulatorProc, rest: httpx.Client,
                        voicemail: Item) -> None:
    _fault(emu, voicemail, "short206", bytes=100)
    r = rest.get(voicemail.uri, headers={"Range": "bytes=1000-2999"})
    assert r.status_code == 206
    assert r.content == voicemail.data[1000:1100]
    assert r.headers["content-range"] == f"bytes 1000-1099/{voicemail.size}"
    assert r.headers["content-length"] == "100"
    emu.clear_faults()
    _fault(emu, voicemail, "short206")  # default: half of what was asked
    r = rest.get(voicemail.uri, headers={"Range": "bytes=0-999"})
    assert r.content == voicemail.data[:500]
    assert r.headers["content-range"] == f"bytes 0-499/{voicemail.size}"


def test_fault_reset(emu: EmulatorProc, rest: httpx.Client, voicemail: Item) -> None:
    _fault(emu, voicemail, "reset", after_bytes=70_000, count=1)
    r, got, error = _stream(rest, voicemail.uri)
    assert r.status_code == 200
    assert r.headers["content-length"] == str(voicemail.size)
    assert isinstance(error, httpx.RemoteProtocolError)
    assert got == voicemail.data[:70_000]
    # Only that one response was cut; the next download is whole.
    assert rest.get(voicemail.uri).content == voicemail.data
    _fault(emu, voicemail, "reset", count=1)  # default: half the body
    r, got, error = _stream(rest, voicemail.uri, headers={"Range": "bytes=0-9999"})
    assert r.status_code == 206 and isinstance(error, httpx.RemoteProtocolError)
    assert got == voicemail.data[:5000]


def test_fault_lie_length(emu: EmulatorProc, rest: httpx.Client,
                          voicemail: Item) -> None:
    _fault(emu, voicemail, "lie_length", extra=4096, count=1)
    r, got, error = _stream(rest, voicemail.uri)
    assert r.status_code == 200
    assert r.headers["content-length"] == str(voicemail.size + 4096)
    assert got == voicemail.data
    assert isinstance(error, httpx.RemoteProtocolError)


def test_fault_bandwidth(emu: EmulatorProc, rest: httpx.Client,
                         voicemail: Item) -> None:
    rate = voicemail.size / 0.8  # the whole body should take about 0.8 s
    _fault(emu, voicemail, "bandwidth", bytes_per_second=rate)
    t0 = time.perf_counter()
    r = rest.get(voicemail.uri)
    elapsed = time.perf_counter() - t0
    assert r.status_code == 200 and r.content == voicemail.data
    assert r.headers["content-length"] == str(voicemail.size)
    assert elapsed >= 0.7, elapsed
    t0 = time.perf_counter()
    r = rest.get(voicemail.uri, headers={"Range": "bytes=0-999"})  # small: fast anyway
    assert r.content == voicemail.data[:1000]
    assert time.perf_counter() - t0 < 0.7


def test_fault_by_origin(emu: EmulatorProc, rest: httpx.Client,
                         voicemail: Item) -> None:
    emu.fault(kind="ignore_range", path=re.escape(voicemail.path) + "$",
                          origin="media")
    r = rest.get(voicemail.uri, headers={"Range": "bytes=0-9"})
    assert r.status_code == 200
    r = rest.get(emu.info["platform_url"] + voicemail.path,
               headers={"Range": "bytes=0-9"})
    assert r.status_code == 206 and r.content == voicemail.data[:10]
