"""Call log, call-log sync and recordings against a real emulator process (docs/ringcentral.md
§13 G1-G9, C7, D2-D5).

Tests add their own calls through ``POST /_emulator/calls``. Listing tests place them in a
private window years back (seeded data is recent), so tests on the shared emulator do not see
each other's calls; sync tests get their own emulator because a sync sees everything.
"""

from __future__ import annotations

import itertools
import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.emulator_proc import EmulatorProc, api_client, limited_client
from tests.emulator_support import assert_error, emu_now
from tests.programs import require_programs

BIG = "Light=100000,Medium=100000,Heavy=100000,Auth=100000"
LAG = 20.0  # call_log_lag of the shared emulator
PROCESSING = 40.0  # recording_processing of the shared emulator
CALL_LOG = "/restapi/v1.0/account/~/extension/~/call-log"
COMPANY_LOG = "/restapi/v1.0/account/~/call-log"
SYNC = "/restapi/v1.0/account/~/extension/~/call-log-sync"
COMPANY_SYNC = "/restapi/v1.0/account/~/call-log-sync"

_slot = itertools.count(1)


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProc]:
    # Stopping checks every recorded exchange against the OpenAPI spec (emulator_proc).
    with EmulatorProc("--limits", BIG, "--set", f"call_log_lag={LAG}",
                      "--set", f"recording_processing={PROCESSING}") as proc:
        yield proc


@pytest.fixture(scope="module")
def sync_emu() -> Iterator[EmulatorProc]:
    """The sync tests' emulator: each test starts with its own FSync, so it sees only its own
    changes; tests that need a quiet history use different extensions."""
    with EmulatorProc("--limits", BIG, "--set", "sync_token_ttl=600") as proc:
        yield proc


# -- helpers -----------------------------------------------------------------------------------


def ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def window() -> tuple[datetime, datetime]:
    """A private day, years before any seeded call, for one test's calls."""
    start = datetime(2015, 1, 1, tzinfo=UTC) + timedelta(days=3 * next(_slot))
    return start, start + timedelta(days=1)



def add_call(emu: EmulatorProc, ext: dict[str, Any] | str | None = None, **spec: Any
             ) -> dict[str, Any]:
    """Add a finished call; ``start_time`` may be a datetime. Returns {id, recording_id}."""
    if isinstance(spec.get("start_time"), datetime):
        spec["start_time"] = ts(spec["start_time"])
    if ext is not None:
        spec["extension_id"] = ext if isinstance(ext, str) else ext["extension_id"]
    spec.setdefault("duration", 45)
    return emu.admin("POST", "/_emulator/calls", spec)  # type: ignore[no-any-return]


def add_calls(emu: EmulatorProc, n: int, **spec: Any) -> None:
    """Add ``n`` calls over a few parallel admin connections (one round trip is ~40 ms)."""
    def worker(count: int) -> None:
        with httpx.Client(base_url=emu.info["admin_url"], timeout=30) as http:
            for _ in range(count):
                http.post("/_emulator/calls", json=spec).raise_for_status()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, [n // 8 + (1 if i < n % 8 else 0) for i in range(8)]))


def listing(client: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    # (httpx replaces a URL's own query with ``params``, even an empty one.)
    r = client.get(path, params=params) if params else client.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["x-rate-limit-group"] == "Heavy"
    return r.json()  # type: ignore[no-any-return]


def ids(body: dict[str, Any]) -> list[str]:
    return [rec["id"] for rec in body["records"]]


def ffprobe_duration(path: Path) -> float:
    (ffprobe,) = require_programs("ffprobe")
    res = subprocess.run([ffprobe, "-v", "error", "-show_entries", "format=duration",
                          "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    return float(res.stdout.strip())


# -- listing -----------------------------------------------------------------------------------


def test_simple_and_detailed_views(emu: EmulatorProc, rest: httpx.Client) -> None:
    """G2, G4: Simple has no legs/transport; Detailed adds them; recording object shape."""
    day, end = window()
    me = emu.user(admin=True)
    made = add_call(emu, me, direction="Inbound", start_time=day + timedelta(hours=1),
                    duration=75, recording=True, recording_format="wav")
    span = {"dateFrom": ts(day), "dateTo": ts(end)}
    simple = listing(rest, CALL_LOG, **span)
    assert ids(simple) == [made["id"]]
    rec = simple["records"][0]
    for key in ("id", "uri", "sessionId", "telephonySessionId", "startTime", "duration", "type",
                "direction", "action", "result", "from", "to"):
        assert key in rec, key
    assert rec["duration"] == 75 and rec["type"] == "Voice" and rec["direction"] == "Inbound"
    assert rec["startTime"] == ts(day + timedelta(hours=1))
    assert "legs" not in rec and "transport" not in rec and "lastModifiedTime" not in rec
    acc = emu.info["account_id"]
    assert rec["uri"].startswith(emu.info["platform_url"]) and "~" not in rec["uri"]
    assert f"/account/{acc}/extension/{me['extension_id']}/call-log/{made['id']}" in rec["uri"]
    recording = rec["recording"]
    assert set(recording) == {"id", "uri", "type", "contentUri"}
    assert recording["id"] == made["recording_id"]
    assert recording["type"] == "Automatic"
    assert recording["uri"] == (f"{emu.info['platform_url']}/restapi/v1.0/account/{acc}"
                                f"/recording/{recording['id']}")
    assert recording["contentUri"] == (f"{emu.info['media_url']}/restapi/v1.0/account/{acc}"
                                       f"/recording/{recording['id']}/content")
    assert "shortRecording" not in rec

    detailed = listing(rest, CALL_LOG, view="Detailed", **span)["records"][0]
    assert detailed["transport"] in ("PSTN", "VoIP")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", detailed["lastModifiedTime"])
    assert detailed["legs"] and detailed["legs"][0]["duration"] == 75
    assert detailed["uri"].endswith("?view=Detailed")

    one = rest.get(rec["uri"])  # the record's own uri works
    assert one.status_code == 200 and one.json()["id"] == made["id"]

    bad = rest.get(CALL_LOG, params={"view": "Fancy"})
    assert_error(bad, 400, "CMN-101", parameterName="view")  # D3
    bad = rest.get(CALL_LOG, params={"direction": "Sideways"})
    assert_error(bad, 400, "CMN-101", parameterName="direction")


def test_default_window_is_last_24_hours(emu: EmulatorProc, rest: httpx.Client) -> None:
    """G1: without dateFrom only calls of the last 24 h; the uri echoes the computed dateFrom."""
    now = emu_now(emu)
    me = emu.user(admin=True)
    recent = add_call(emu, me, start_time=now - timedelta(hours=23), duration=30,
                      **{"from": "+15305550123"})
    old = add_call(emu, me, start_time=now - timedelta(hours=25), duration=30,
                   **{"from": "+15305550123"})
    body = listing(rest, CALL_LOG, phoneNumber="+15305550123")
    assert recent["id"] in ids(body) and old["id"] not in ids(body)
    echoed = re.search(r"dateFrom=([^&]+)", body["uri"])
    assert echoed is not None
    date_from = datetime.strptime(echoed.group(1).replace("%3A", ":"),
                                  "%Y-%m-%dT%H:%M:%S.000Z").replace(tzinfo=UTC)
    assert date_from.second == 0  # truncated to the minute like RingCentral's examples
    assert abs((now - timedelta(hours=24) - date_from).total_seconds()) < 120
    wide = listing(rest, CALL_LOG, phoneNumber="+15305550123",
                   dateFrom=ts(now - timedelta(hours=26)))
    assert {recent["id"], old["id"]} <= set(ids(wide))


def test_recording_type_filters(emu: EmulatorProc, rest: httpx.Client) -> None:
    """G1: recordingType=All/Automatic/OnDemand; withRecording only without recordingType."""
    day, end = window()
    me = emu.user(admin=True)
    plain = add_call(emu, me, start_time=day + timedelta(hours=1))["id"]
    auto = add_call(emu, me, start_time=day + timedelta(hours=2), recording=True,
                    recording_type="Automatic")["id"]
    demand = add_call(emu, me, start_time=day + timedelta(hours=3), recording=True,
                      recording_type="OnDemand", recording_format="wav")["id"]
    span = {"dateFrom": ts(day), "dateTo": ts(end)}
    assert ids(listing(rest, CALL_LOG, **span)) == [demand, auto, plain]  # newest first
    assert ids(listing(rest, CALL_LOG, recordingType="All", **span)) == [demand, auto]
    assert ids(listing(rest, CALL_LOG, recordingType="Automatic", **span)) == [auto]
    assert ids(listing(rest, CALL_LOG, recordingType="OnDemand", **span)) == [demand]
    assert ids(listing(rest, CALL_LOG, withRecording="true", **span)) == [demand, auto]
    assert ids(listing(rest, CALL_LOG, withRecording="false", **span)) == [demand, auto, plain]
    both = listing(rest, CALL_LOG, withRecording="true", recordingType="OnDemand", **span)
    assert ids(both) == [demand]
    with_rec = listing(rest, CALL_LOG, recordingType="All", **span)["records"]
    assert [r["recording"]["type"] for r in with_rec] == ["OnDemand", "Automatic"]


def test_short_recording(emu: EmulatorProc, rest: httpx.Client) -> None:
    """G4: a recording too short to keep: shortRecording true and no recording object."""
    day, end = window()
    add_call(emu, emu.user(admin=True), start_time=day, duration=8, recording=True,
             short_recording=True)
    rec = listing(rest, CALL_LOG, dateFrom=ts(day), dateTo=ts(end))["records"][0]
    assert rec["shortRecording"] is True and "recording" not in rec
    assert listing(rest, CALL_LOG, dateFrom=ts(day), dateTo=ts(end),
                   recordingType="All")["records"] == []


def test_paging_without_totals(emu: EmulatorProc, rest: httpx.Client) -> None:
    """G3: no totalPages/totalElements/lastPage; nextPage iff more records; follow it."""
    day, end = window()
    me = emu.user(admin=True)
    made = [add_call(emu, me, start_time=day + timedelta(minutes=10 * i))["id"]
            for i in range(5)]
    body = listing(rest, CALL_LOG, dateFrom=ts(day), dateTo=ts(end), perPage=2)
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        paging = body["paging"]
        assert "totalPages" not in paging and "totalElements" not in paging
        assert "lastPage" not in body["navigation"]
        assert paging["perPage"] == 2 and paging["page"] == pages
        assert paging["pageStart"] == 2 * (pages - 1)
        seen += ids(body)
        nxt = body["navigation"].get("nextPage")
        if nxt is None:
            break
        body = listing(rest, nxt["uri"])
    assert pages == 3 and seen == list(reversed(made))
    past = listing(rest, CALL_LOG, dateFrom=ts(day), dateTo=ts(end), perPage=2, page=4)
    assert past["records"] == [] and "page" not in past["paging"]
    assert "pageStart" not in past["paging"] and "nextPage" not in past["navigation"]
    clamped = listing(rest, CALL_LOG, dateFrom=ts(day), dateTo=ts(end), perPage=5000)
    assert clamped["paging"]["perPage"] == 1000 and len(clamped["records"]) == 5


def test_type_direction_and_number_filters(emu: EmulatorProc, rest: httpx.Client) -> None:
    """A7: repeated enum values OR-ed; phoneNumber matches either party; extensionNumber."""
    day, end = window()
    me = emu.user(admin=True)
    other = emu.user(admin=False)
    inbound = add_call(emu, me, direction="Inbound", start_time=day,
                       **{"from": "+17075550111"})["id"]
    outbound = add_call(emu, me, direction="Outbound", start_time=day + timedelta(hours=1),
                        to="+17075550199")["id"]
    fax = add_call(emu, me, direction="Inbound", type="Fax",
                   start_time=day + timedelta(hours=2), **{"from": "+17075550111"})["id"]
    theirs = add_call(emu, other, direction="Inbound", start_time=day + timedelta(hours=3),
                      **{"from": "+17075550111"})["id"]
    span = {"dateFrom": ts(day), "dateTo": ts(end)}
    assert ids(listing(rest, CALL_LOG, direction="Outbound", **span)) == [outbound]
    assert ids(listing(rest, CALL_LOG, type="Fax", **span)) == [fax]
    r = rest.get(CALL_LOG, params=[("type", "Fax"), ("type", "Voice"),
                                    ("dateFrom", ts(day)), ("dateTo", ts(end))])
    assert ids(r.json()) == [fax, outbound, inbound]
    assert ids(listing(rest, CALL_LOG, phoneNumber="+17075550111", **span)) == [fax, inbound]
    assert ids(listing(rest, CALL_LOG, phoneNumber="17075550199", **span)) == [outbound]
    company = listing(rest, COMPANY_LOG, **span)
    assert ids(company) == [theirs, fax, outbound, inbound]
    only = listing(rest, COMPANY_LOG, extensionNumber=other["extension_number"], **span)
    assert ids(only) == [theirs]
    for rec in company["records"]:
        ext_id = int(other["extension_id"] if rec["id"] == theirs else me["extension_id"])
        assert rec["extension"]["id"] == ext_id
        assert rec["extension"]["uri"].endswith(f"/extension/{ext_id}")
        assert "/extension/" not in rec["uri"]  # company records use the account uri


def test_company_log_is_admin_only(emu: EmulatorProc, user: httpx.Client,
                                   rest: httpx.Client) -> None:
    """Company call log needs FullCompanyCallLog (admin); other users' logs need CMN-419."""
    r = user.get(COMPANY_LOG)
    assert_error(r, 403, "CMN-408", permissionName="FullCompanyCallLog")
    assert r.headers["x-rate-limit-group"] == "Heavy"
    r = user.get(f"/restapi/v1.0/account/~/extension/{emu.user(admin=True)['extension_id']}"
                 "/call-log")
    assert_error(r, 403, "CMN-419")  # D5
    r = user.get(COMPANY_SYNC, params={"syncType": "FSync", "recordCount": 5})
    assert r.status_code == 403
    other = emu.user(admin=False)
    r = rest.get(f"/restapi/v1.0/account/~/extension/{other['extension_id']}/call-log")
    assert r.status_code == 200  # an admin may read every extension's log
    assert user.get(CALL_LOG).status_code == 200


def test_missing_scope_is_insufficient_permissions(emu: EmulatorProc) -> None:
    """D4: a token of an app without ReadCallLog -> 403 InsufficientPermissions / CMN-401."""
    with limited_client(emu, emu.user(admin=True)) as client:
        for path in (CALL_LOG, COMPANY_LOG):
            body = assert_error(client.get(path), 403, "CMN-401",
                                top="InsufficientPermissions")
            assert body["errors"][0]["errorCode"] == "CMN-401"
            assert body["errors"][0]["permissionName"] == "ReadCallLog"
        r = client.get(SYNC, params={"syncType": "FSync", "recordCount": 5})
        assert r.json()["errors"][0]["permissionName"] == "ReadCallLog"
        r = client.get("/restapi/v1.0/account/~/recording/1")
        assert r.json()["errors"][0]["permissionName"] == "ReadCallRecording"


def test_new_call_appears_after_lag_and_recording_after_processing(
        emu: EmulatorProc, rest: httpx.Client, tmp_path: Path) -> None:
    """G5 + G6 + H: the call shows after call_log_lag, its content after processing; the
    downloaded recording lasts ``duration`` seconds (ffprobe)."""
    number = "+19165550142"
    made = add_call(emu, emu.user(admin=True), direction="Inbound", duration=37,
                    recording=True, recording_format="mp3", **{"from": number})
    assert ids(listing(rest, CALL_LOG, phoneNumber=number)) == []
    r = rest.get(f"/restapi/v1.0/account/~/recording/{made['recording_id']}")
    assert_error(r, 404, "CMN-102", parameterName="callRecordingId")
    emu.advance(LAG + 1)
    body = listing(rest, CALL_LOG, phoneNumber=number)
    assert ids(body) == [made["id"]]
    recording = body["records"][0]["recording"]

    meta = rest.get(recording["uri"])
    assert meta.status_code == 200 and meta.headers["x-rate-limit-group"] == "Heavy"
    assert set(meta.json()) == {"id", "contentUri", "contentType", "duration"}  # G6: no size
    assert meta.json()["duration"] == 37 and meta.json()["contentType"] == "audio/mpeg"
    assert meta.json()["contentUri"] == recording["contentUri"]

    early = rest.get(recording["contentUri"])
    assert early.status_code == 404  # recorded, not yet processed
    emu.advance(PROCESSING - LAG)
    content = rest.get(recording["contentUri"])
    assert content.status_code == 200, content.text
    assert content.headers["content-type"].startswith("audio/mpeg")
    assert content.headers["x-rate-limit-group"] == "Heavy"
    assert content.content == emu.content("recording", made["recording_id"])
    path = tmp_path / "rec.mp3"
    path.write_bytes(content.content)
    assert ffprobe_duration(path) == pytest.approx(37, abs=0.1)


def test_wav_recording_content_duration(emu: EmulatorProc, rest: httpx.Client,
                                        tmp_path: Path) -> None:
    day, end = window()
    made = add_call(emu, emu.user(admin=True), start_time=day, duration=63, recording=True,
                    recording_format="wav")
    rec = listing(rest, CALL_LOG, dateFrom=ts(day), dateTo=ts(end))["records"][0]
    meta = rest.get(rec["recording"]["uri"]).json()
    assert meta["contentType"] in ("audio/wav", "audio/x-wav") and meta["duration"] == 63
    content = rest.get(meta["contentUri"])
    assert content.status_code == 200
    assert content.content == emu.content("recording", made["recording_id"])
    path = tmp_path / "rec.wav"
    path.write_bytes(content.content)
    assert ffprobe_duration(path) == pytest.approx(63, abs=0.01)


def test_recording_metadata_errors(emu: EmulatorProc, rest: httpx.Client,
                                   user: httpx.Client) -> None:
    """D2: unknown recording -> 404 CMN-102 callRecordingId; another user's -> 404."""
    r = rest.get("/restapi/v1.0/account/~/recording/999999999")
    assert_error(r, 404, "CMN-102", parameterName="callRecordingId")
    assert r.headers["x-rate-limit-group"] == "Heavy"
    day, _ = window()
    made = add_call(emu, emu.user(admin=True), start_time=day, recording=True)
    r = user.get(f"/restapi/v1.0/account/~/recording/{made['recording_id']}")
    assert_error(r, 404, "CMN-102")
    assert rest.get(f"/restapi/v1.0/account/~/recording/{made['recording_id']}"
                     ).status_code == 200


def test_voicemail_call_links_message(emu: EmulatorProc, rest: httpx.Client) -> None:
    day, end = window()
    add_call(emu, emu.user(admin=True), start_time=day, duration=50, result="Voicemail")
    rec = listing(rest, CALL_LOG, dateFrom=ts(day), dateTo=ts(end))["records"][0]
    assert rec["result"] == "Voicemail"
    assert rec["message"]["type"] == "VoiceMail" and rec["message"]["id"]
    assert rec["message"]["uri"].endswith(f"/message-store/{rec['message']['id']}")


def test_deleted_calls_hidden_unless_show_deleted(emu: EmulatorProc,
                                                  rest: httpx.Client) -> None:
    day, end = window()
    made = add_call(emu, emu.user(admin=True), start_time=day)
    emu.admin("DELETE", f"/_emulator/calls/{made['id']}")
    span = {"dateFrom": ts(day), "dateTo": ts(end)}
    assert listing(rest, CALL_LOG, **span)["records"] == []
    shown = listing(rest, CALL_LOG, showDeleted="true", **span)["records"]
    assert [r["id"] for r in shown] == [made["id"]] and shown[0]["deleted"] is True


# -- call-log sync -----------------------------------------------------------------------------


def sync(client: httpx.Client, path: str = SYNC, **params: Any) -> dict[str, Any]:
    r = client.get(path, params=params)
    assert r.status_code == 200, r.text
    assert r.headers["x-rate-limit-group"] == "Heavy"
    body: dict[str, Any] = r.json()
    assert "paging" not in body
    return body


def test_fsync_requires_record_count(sync_emu: EmulatorProc) -> None:
    """G7: recordCount is mandatory for FSync and at most 250."""
    with api_client(sync_emu) as client:
        r = client.get(SYNC, params={"syncType": "FSync"})
        body = assert_error(r, 400, "CMN-101", parameterName="recordCount")
        assert body["message"] == "Parameter [recordCount] value is invalid."
        assert r.headers["x-rate-limit-group"] == "Heavy"
        assert_error(client.get(SYNC, params={"syncType": "FSync", "recordCount": 251}),
                     400, "CMN-101")
        assert_error(client.get(SYNC), 400, "CMN-101")  # syncType defaults to FSync
        assert sync(client, syncType="FSync", recordCount=250)["syncInfo"]["syncType"] == "FSync"


def test_fsync_then_isync(sync_emu: EmulatorProc) -> None:
    """FSync returns the newest recordCount records; ISync returns what changed since."""
    me = sync_emu.user(admin=True)
    with api_client(sync_emu) as client:
        full = sync(client, syncType="FSync", recordCount=3)
        info = full["syncInfo"]
        assert set(info) == {"syncType", "syncToken", "syncTime"} and info["syncToken"]
        assert len(full["records"]) == 3
        starts = [r["startTime"] for r in full["records"]]
        assert starts == sorted(starts, reverse=True)
        everything = sync(client, syncType="FSync", recordCount=250)["records"]
        assert ids(full) == [r["id"] for r in everything[:3]]

        quiet = sync(client, syncType="ISync", syncToken=info["syncToken"])
        assert quiet["records"] == [] and quiet["syncInfo"]["syncType"] == "ISync"
        sync_emu.advance(5)
        new = add_call(sync_emu, me, duration=20)
        other = add_call(sync_emu, sync_emu.user(admin=False), duration=20)
        inc = sync(client, syncType="ISync", syncToken=quiet["syncInfo"]["syncToken"])
        assert ids(inc) == [new["id"]]  # not the other extension's call
        again = sync(client, syncType="ISync", syncToken=inc["syncInfo"]["syncToken"])
        assert again["records"] == []
        company = sync(client, COMPANY_SYNC, syncType="FSync", recordCount=5)
        assert {new["id"], other["id"]} <= set(ids(company))
        assert all("extension" in r for r in company["records"])

        sync_emu.advance(1)
        sync_emu.admin("DELETE", f"/_emulator/calls/{new['id']}")
        token = again["syncInfo"]["syncToken"]
        hidden = sync(client, syncType="ISync", syncToken=token)
        assert hidden["records"] == []
        shown = sync(client, syncType="ISync", syncToken=token, showDeleted="true")
        assert ids(shown) == [new["id"]] and shown["records"][0]["deleted"] is True


def test_isync_token_errors(sync_emu: EmulatorProc) -> None:
    """G8: unknown, invalidated or expired tokens -> 400 CLG-104."""
    message = "Parameter [syncToken] is invalid [Sync token expired, call log was reset]"
    with api_client(sync_emu) as client:
        r = client.get(SYNC, params={"syncType": "ISync", "syncToken": "bogus"})
        assert assert_error(r, 400, "CLG-104")["message"] == message
        token = sync(client, syncType="FSync", recordCount=1)["syncInfo"]["syncToken"]
        sync_emu.admin("POST", "/_emulator/sync/invalidate")
        r = client.get(SYNC, params={"syncType": "ISync", "syncToken": token})
        assert_error(r, 400, "CLG-104")
        token = sync(client, syncType="FSync", recordCount=1)["syncInfo"]["syncToken"]
        r = client.get(COMPANY_SYNC, params={"syncType": "ISync", "syncToken": token})
        assert_error(r, 400, "CLG-104")  # a user-level token is not a company one
        sync_emu.advance(601)
    with api_client(sync_emu) as client:
        r = client.get(SYNC, params={"syncType": "ISync", "syncToken": token})
        assert_error(r, 400, "CLG-104")


def test_isync_more_than_250_changes(sync_emu: EmulatorProc) -> None:
    """G8: more than 250 changes since the token -> 400, the client must FSync again."""
    me = sync_emu.user(admin=True)
    with api_client(sync_emu) as client:
        token = sync(client, syncType="FSync", recordCount=1)["syncInfo"]["syncToken"]
        sync_emu.advance(1)
        add_calls(sync_emu, 250, extension_id=me["extension_id"], duration=5)
        ok = sync(client, syncType="ISync", syncToken=token)
        assert len(ok["records"]) == 250
        add_call(sync_emu, me, duration=5)
        r = client.get(SYNC, params={"syncType": "ISync", "syncToken": token})
        body = assert_error(r, 400, "CMN-101", parameterName="syncToken")
        assert body["message"] == ("Parameter [syncToken] is invalid "
                                   "[max sync record number limit is exceeded]")


def test_isync_record_count_extends_frame(sync_emu: EmulatorProc) -> None:
    """G9: ISync recordCount=N adds up to N older records after the fresh ones (<=250)."""
    who = sync_emu.user(admin=False, index=1)
    now = emu_now(sync_emu)
    for k in range(6):
        add_call(sync_emu, who, start_time=now - timedelta(days=2, minutes=7 * k))
    with api_client(sync_emu, who) as client:
        history = ids(sync(client, syncType="FSync", recordCount=250))
        first = sync(client, syncType="FSync", recordCount=2)
        assert ids(first) == history[:2]
        sync_emu.advance(2)
        fresh = add_call(sync_emu, who, duration=10)
        grown = sync(client, syncType="ISync", syncToken=first["syncInfo"]["syncToken"],
                     recordCount=3)
        assert ids(grown) == [fresh["id"], *history[2:5]]
        more = sync(client, syncType="ISync", syncToken=grown["syncInfo"]["syncToken"],
                    recordCount=1)
        assert ids(more) == history[5:6]
        assert_error(client.get(SYNC, params={"syncType": "ISync", "recordCount": 251,
                                              "syncToken": more["syncInfo"]["syncToken"]}),
                     400, "CMN-101")


def test_every_seeded_call_renders(emu: EmulatorProc, rest: httpx.Client) -> None:
    """All seeded calls in both views and through sync; test_zz validates these bodies."""
    for view in ("Simple", "Detailed"):
        body = listing(rest, COMPANY_LOG, view=view, perPage=1000,
                       dateFrom="2000-01-01T00:00:00.000Z")
        assert len(body["records"]) >= 20
        for rec in body["records"][:5]:
            if "recording" in rec:
                meta = rest.get(rec["recording"]["uri"])
                assert meta.status_code == 200, meta.text
    body = listing(rest, COMPANY_SYNC, syncType="FSync", recordCount=250, view="Detailed")
    assert body["records"]


def test_zz_exchanges_conform_to_spec(emu: EmulatorProc, sync_emu: EmulatorProc) -> None:
    """Every call-log exchange of this module validates against spec46 (denser than the
    teardown sample: every response of these operations is checked)."""
    from tests.openapi_check import ExchangeChecker
    from tests.openapi_spec import format_problems

    checker = ExchangeChecker(per_status=1000, max_shapes=1000)
    problems = emu.openapi_problems(checker) + sync_emu.openapi_problems(checker)
    assert not problems, format_problems(problems, "call-log tests")
