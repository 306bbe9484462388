"""Message store of the emulator, over real HTTP (docs/ringcentral.md §13 E1-E13, A7, D2, D3,
D5, K1-K3): the default window, availability, paging, shapes, batch GETs and PUTs, delete
and purge, the lifecycle by the clock, filters, errors and permissions. Message sync (F1-F6)
and scale mode: test_emulator_message_sync.py.

Read-only and self-contained tests share one emulator per module and isolate themselves by
creating their own messages in a private time window (``private_day``); tests that move the
clock or count rate-limit budget start their own emulator.
"""

from __future__ import annotations

import email.parser
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.emulator_proc import EmulatorProc, api_client
from tests.emulator_support import (
    DAY,
    ISO_MS,
    STORE,
    SYNC,
    add_message,
    admin_extension_id,
    assert_error,
    between,
    emu_now,
    epoch_of,
    private_day,
    record_ids,
)

# -- E1, E2: default window and availability --------------------------------------------------


def test_default_window_is_last_24_hours(emu: EmulatorProc,
                                         rest: httpx.Client) -> None:
    now = emu_now(emu).timestamp()
    inside = add_message(emu, now - 23 * 3600)
    outside = add_message(emu, now - 25 * 3600)
    r = rest.get(STORE, params={"perPage": 1000})
    assert r.status_code == 200
    body = r.json()
    ids = record_ids(body)
    assert inside in ids and outside not in ids
    # dateFrom defaults to (now - 24 h) truncated to the minute, and is echoed that way.
    m = re.search(r"dateFrom=(\d{4}-\d\d-\d\dT\d\d%3A\d\d%3A00\.000Z)", body["uri"])
    assert m, body["uri"]
    echoed = epoch_of(m.group(1).replace("%3A", ":"))
    assert now - DAY - 61 <= echoed <= now - DAY + 1
    assert echoed % 60 == 0
    assert "availability=Alive" in body["uri"]
    for rec in body["records"]:
        assert echoed < epoch_of(rec["creationTime"]) <= now + 1


def test_availability_filter(emu: EmulatorProc, rest: httpx.Client) -> None:
    start, end = private_day()
    alive = add_message(emu, start + 100)
    gone = add_message(emu, start + 200)
    assert rest.delete(f"{STORE}/{gone}").status_code == 204
    q = between(start, end)
    assert record_ids(rest.get(STORE, params=q).json()) == [alive]
    body = rest.get(STORE, params={**q, "availability": "Deleted"}).json()
    assert record_ids(body) == [gone]
    assert body["records"][0]["availability"] == "Deleted"
    assert "availability=Deleted" in body["uri"] and "availability=Alive" not in body["uri"]
    both = rest.get(STORE, params=[*q.items(), ("availability", "Alive"),
                                 ("availability", "Deleted")]).json()
    assert record_ids(both) == [gone, alive]


# -- E3-E6: paging and order -----------------------------------------------------------------


def test_per_page_is_capped_at_1000(rest: httpx.Client) -> None:
    body = rest.get(STORE, params={"perPage": 5000, "dateFrom": "2000-01-01"}).json()
    assert body["paging"]["perPage"] == 1000
    assert "perPage=1000" in body["uri"]


def test_paging_and_navigation(emu: EmulatorProc, rest: httpx.Client) -> None:
    start, end = private_day()
    ids = [add_message(emu, start + 1 + 60 * i) for i in range(5)]
    newest_first = list(reversed(ids))
    q: dict[str, Any] = {**between(start, end), "perPage": 2}
    p1 = rest.get(STORE, params=q).json()
    assert record_ids(p1) == newest_first[:2]
    assert p1["paging"] == {"page": 1, "perPage": 2, "pageStart": 0, "pageEnd": 1,
                            "totalPages": 3, "totalElements": 5}
    nav = p1["navigation"]
    assert set(nav) == {"firstPage", "nextPage", "lastPage"}
    for link in nav.values():
        assert link["uri"].startswith(emu.info["platform_url"] + "/restapi/v1.0/")
    p2 = rest.get(nav["nextPage"]["uri"]).json()
    assert record_ids(p2) == newest_first[2:4]
    assert p2["paging"]["pageStart"] == 2 and p2["paging"]["pageEnd"] == 3
    assert set(p2["navigation"]) == {"firstPage", "nextPage", "previousPage", "lastPage"}
    p3 = rest.get(p2["navigation"]["nextPage"]["uri"]).json()
    assert record_ids(p3) == newest_first[4:]
    assert "nextPage" not in p3["navigation"] and "previousPage" in p3["navigation"]
    assert p3["navigation"]["lastPage"]["uri"] == p1["navigation"]["lastPage"]["uri"]
    past = rest.get(STORE, params={**q, "page": 9}).json()
    assert past["records"] == []
    assert past["paging"] == {"perPage": 2, "totalPages": 3, "totalElements": 5}


def test_newest_first_and_timestamps(emu: EmulatorProc, rest: httpx.Client) -> None:
    start, end = private_day()
    times = [start + 3600, start + 10, start + 7200.25, start + 50]
    ids = {add_message(emu, t): t for t in times}
    body = rest.get(STORE, params=between(start, end)).json()
    got = [(epoch_of(r["creationTime"]), r["id"]) for r in body["records"]]
    assert got == sorted(((round(t, 3), i) for i, t in ids.items()), reverse=True)
    for rec in body["records"]:  # K1
        assert ISO_MS.match(rec["creationTime"]) and ISO_MS.match(rec["lastModifiedTime"])
    assert body["records"][0]["creationTime"].endswith("T02:00:00.250Z")


# -- E7-E9: message shapes ---------------------------------------------------------------------


def _one(rest: httpx.Client, mid: int) -> dict[str, Any]:
    r = rest.get(f"{STORE}/{mid}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_message_fields(emu: EmulatorProc, rest: httpx.Client) -> None:
    start, _ = private_day()
    info = emu.info
    acc, ext = info["account_id"], admin_extension_id(emu)
    sms = _one(rest, add_message(emu, start + 1, text="hello there"))
    assert sms["uri"] == f"{info['platform_url']}/restapi/v1.0/account/{acc}/extension/{ext}" \
                         f"/message-store/{sms['id']}"
    assert sms["extensionId"] == ext
    assert sms["type"] == "SMS" and sms["direction"] == "Inbound"
    assert sms["availability"] == "Alive" and sms["readStatus"] == "Unread"
    assert sms["messageStatus"] == "Received" and sms["priority"] == "Normal"
    assert sms["from"]["phoneNumber"] == "+12125550101"
    assert sms["to"][0]["phoneNumber"] == "+16505551000"
    text = [a for a in sms["attachments"] if a["type"] == "Text"]
    assert len(text) == 1 and text[0]["contentType"].startswith("text/plain")
    for att in sms["attachments"]:
        assert att["uri"] == f"{info['media_url']}/restapi/v1.0/account/{acc}/extension/{ext}" \
                             f"/message-store/{sms['id']}/content/{att['id']}"
    assert None not in sms.values()

    vm = _one(rest, add_message(emu, start + 2, type="VoiceMail"))
    audio = vm["attachments"][0]
    assert audio["type"] == "AudioRecording"
    assert audio["contentType"] in ("audio/mpeg", "audio/x-wav")
    assert isinstance(audio["vmDuration"], int) and audio["vmDuration"] > 0
    assert "size" not in audio  # E8 default: omitted for voicemail

    fax = _one(rest, add_message(emu, start + 3, type="Fax"))
    doc = fax["attachments"][0]
    assert doc["type"] == "RenderedDocument" and doc["contentType"] == "application/pdf"
    assert "size" not in doc
    assert fax["faxPageCount"] >= 1 and fax["faxResolution"] in ("High", "Low")


def test_mms_attachment_has_size_and_dimensions(emu: EmulatorProc,
                                                rest: httpx.Client) -> None:
    start, _ = private_day()
    mid = add_message(emu, start + 1, text="pic",
               attachments=[{"content_type": "image/jpeg", "kind": "jpeg"}])
    msg = _one(rest, mid)
    mms = [a for a in msg["attachments"] if a["type"] == "MmsAttachment"]
    assert len(mms) == 1
    att = mms[0]
    raw = emu.content("message", f"{mid}/{att['id']}")
    assert att["size"] == len(raw)  # E8: present for MMS, and exact
    assert att["contentType"] == "image/jpeg" and att["fileName"]
    assert att["width"] > 0 and att["height"] > 0


def test_conversation_id_is_a_big_json_integer(emu: EmulatorProc,
                                               rest: httpx.Client) -> None:
    start, _ = private_day()
    mid = add_message(emu, start + 1)
    r = rest.get(f"{STORE}/{mid}")
    body = r.json()
    conv = body["conversationId"]
    assert isinstance(conv, int) and conv > 2**53
    assert body["conversation"]["id"] == str(conv)
    assert body["conversation"]["uri"].endswith(f"/conversation/{conv}")
    assert re.search(rf'"conversationId":\s*{conv}\b', r.text)  # a number, not a string


# -- E10: batch --------------------------------------------------------------------------------


def _multipart(r: httpx.Response) -> list[Any]:
    msg = email.parser.BytesParser().parsebytes(
        b"Content-Type: " + r.headers["content-type"].encode() + b"\r\n\r\n" + r.content)
    assert msg.is_multipart()
    parts: list[Any] = []
    payload: Any = msg.get_payload()
    for part in payload:
        assert part.get_content_type() == "application/json"
        parts.append(json.loads(part.get_payload(decode=True)))
    return parts


def test_batch_get_multipart_mixed(emu: EmulatorProc, rest: httpx.Client) -> None:
    start, _ = private_day()
    a, b = add_message(emu, start + 1), add_message(emu, start + 2)
    emu.clear_requests()
    r = rest.get(f"{STORE}/{a},999,{b}")
    assert r.status_code == 207
    assert r.headers["content-type"].startswith("multipart/mixed; boundary=")
    summary, *bodies = _multipart(r)
    assert [s["status"] for s in summary["response"]] == [200, 404, 200]
    assert summary["response"][1]["href"].endswith("/message-store/999")
    assert [body.get("id") for body in bodies] == [a, None, b]
    assert bodies[1]["errorCode"] == "CMN-102"
    log = [e for e in emu.requests() if "/message-store/" in e["path"]]
    assert len(log) == 1 and log[0]["group"] == "Light"  # C8: one Light request
    assert r.headers["x-rate-limit-group"] == "Light"


def test_batch_get_multipart_json(emu: EmulatorProc, rest: httpx.Client) -> None:
    start, _ = private_day()
    a = add_message(emu, start + 1)
    r = rest.get(f"{STORE}/{a},111",
               headers={"Accept": "application/vnd.ringcentral.multipart+json"})
    assert r.status_code == 207
    assert r.headers["content-type"].startswith("application/vnd.ringcentral.multipart+json")
    items = r.json()
    assert [(i["resourceId"], i["status"]) for i in items] == [(str(a), 200), ("111", 404)]
    assert items[0]["body"]["id"] == a
    assert items[1]["body"]["errors"][0] == {
        "errorCode": "CMN-102", "message": "Resource for parameter [messageId] is not found",
        "parameterName": "messageId"}


def test_batch_limit_is_50(emu: EmulatorProc, rest: httpx.Client) -> None:
    start, _ = private_day()
    mid = add_message(emu, start + 1)
    ok = rest.get(f"{STORE}/" + ",".join([str(mid)] * 50))
    assert ok.status_code == 207
    body = assert_error(rest.get(f"{STORE}/" + ",".join([str(mid)] * 51)), 400, "CMN-101")
    assert body["errors"][0]["parameterName"] == "messageId"


# -- E11, E12: update and delete --------------------------------------------------------------


def test_put_read_status(emulator: EmulatorProc) -> None:
    with api_client(emulator) as rest:
        start, end = private_day()
        mid = add_message(emulator, start + 60)
        q = between(start, end)
        before = _one(rest, mid)
        emulator.advance(30)
        r = rest.put(f"{STORE}/{mid}", json={"readStatus": "Read", "priority": "High"})
        assert r.status_code == 200, r.text
        assert r.headers["x-rate-limit-group"] == "Medium"
        after = r.json()
        assert after["readStatus"] == "Read"
        assert after["priority"] == before["priority"]  # other fields are ignored
        assert epoch_of(after["lastModifiedTime"]) - epoch_of(before["lastModifiedTime"]) >= 30
        assert _one(rest, mid)["readStatus"] == "Read"
        assert rest.get(STORE, params={**q, "readStatus": "Unread"}).json()["records"] == []
        assert record_ids(rest.get(STORE, params={**q, "readStatus": "Read"}).json()) == [mid]
        body = assert_error(rest.put(f"{STORE}/{mid}", json={"readStatus": "Skimmed"}), 400,
                            "CMN-101")
        assert body["parameterName"] == "readStatus"
        assert_error(rest.put(f"{STORE}/12345", json={"readStatus": "Read"}), 404, "CMN-102")


def test_batch_put() -> None:
    """Batch PUT in both documented encodings (docs batch-requests.md). spec46 declares
    neither the multipart+json request body nor a multipart/mixed 207 for updateMessage, so
    this emulator skips the OpenAPI check."""
    with EmulatorProc(check_openapi=False) as emu, api_client(emu) as rest:
        _check_batch_put(emu, rest)


def _check_batch_put(emu: EmulatorProc, rest: httpx.Client) -> None:
    start, _ = private_day()
    a, b, c = (add_message(emu, start + i) for i in (1, 2, 3))
    r = rest.put(f"{STORE}/{a},{b}", content=json.dumps(
        [{"body": {"readStatus": "Read"}}, {"body": {"readStatus": "Read"}}]),
        headers={"Content-Type": "application/vnd.ringcentral.multipart+json",
                 "Accept": "application/vnd.ringcentral.multipart+json"})
    assert r.status_code == 207, r.text
    assert [(i["resourceId"], i["status"], i["body"]["readStatus"]) for i in r.json()] == [
        (str(a), 200, "Read"), (str(b), 200, "Read")]
    boundary = "Boundary_1_15567762_1355833573664"
    part = f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{{\"readStatus\": \"Read\"}}\r\n"
    r = rest.put(f"{STORE}/{c},999", content=(part * 2 + f"--{boundary}--\r\n").encode(),
               headers={"Content-Type": f"multipart/mixed; boundary={boundary}"})
    assert r.status_code == 207
    summary, *bodies = _multipart(r)
    assert [x["status"] for x in summary["response"]] == [200, 404]
    assert bodies[0]["id"] == c and bodies[0]["readStatus"] == "Read"
    assert {_one(rest, m)["readStatus"] for m in (a, b, c)} == {"Read"}
    assert_error(rest.put(f"{STORE}/{a},{b}", json=[{"body": {"readStatus": "Read"}}]), 400,
                 "CMN-101")


def test_delete_then_purge(emu: EmulatorProc, rest: httpx.Client) -> None:
    start, _ = private_day()
    mid = add_message(emu, start + 1, type="VoiceMail")
    att = _one(rest, mid)["attachments"][0]
    r = rest.delete(f"{STORE}/{mid}")
    assert r.status_code == 204 and r.content == b""
    assert r.headers["x-rate-limit-group"] == "Medium"
    deleted = _one(rest, mid)
    assert deleted["availability"] == "Deleted"
    assert rest.get(att["uri"]).status_code == 200  # deleted messages keep their content
    assert rest.delete(f"{STORE}/{mid}").status_code == 204
    purged = _one(rest, mid)
    assert purged["availability"] == "Purged"
    assert purged["attachments"][0]["id"] == att["id"]  # metadata kept
    body = assert_error(rest.get(att["uri"]), 404, "CMN-102")
    assert body["parameterName"] == "attachmentId"


def test_delete_with_purge_flag(emu: EmulatorProc, rest: httpx.Client) -> None:
    start, _ = private_day()
    mid = add_message(emu, start + 1)
    assert rest.delete(f"{STORE}/{mid}", params={"purge": "true"}).status_code == 204
    assert _one(rest, mid)["availability"] == "Purged"
    assert_error(rest.delete(f"{STORE}/{mid}", params={"purge": "maybe"}), 400, "CMN-101")
    assert_error(rest.delete(f"{STORE}/424242"), 404, "CMN-102")


def test_bulk_delete(emu: EmulatorProc, rest: httpx.Client) -> None:
    start, _ = private_day()
    a, b = add_message(emu, start + 1), add_message(emu, start + 2)
    assert rest.delete(f"{STORE}/{a},{b}").status_code == 204  # all OK -> 204
    assert {_one(rest, a)["availability"], _one(rest, b)["availability"]} == {"Deleted"}


def test_bulk_delete_partial_failure_is_207() -> None:
    """One failed id turns a bulk DELETE into a 207 (docs: batch-requests.md). spec46
    declares only 204 for deleteMessage, so this emulator skips the OpenAPI check."""
    with EmulatorProc(check_openapi=False) as emu, api_client(emu) as rest:
        start, _ = private_day()
        a = add_message(emu, start + 1)
        r = rest.delete(f"{STORE}/{a},77",
                      headers={"Accept": "application/vnd.ringcentral.multipart+json"})
        assert r.status_code == 207
        assert r.json()[0] == {"resourceId": str(a), "status": 204}
        assert r.json()[1]["resourceId"] == "77" and r.json()[1]["status"] == 404
        assert r.json()[1]["body"]["errorCode"] == "CMN-102"
        assert _one(rest, a)["availability"] == "Deleted"


def test_lifecycle_by_clock(emulator: EmulatorProc) -> None:
    """E13: Deleted -> Purged after 5 days -> gone after 5 more (defaults)."""
    mid = add_message(emulator, emu_now(emulator).timestamp() - 3600, type="VoiceMail")
    with api_client(emulator) as rest:
        att_uri = _one(rest, mid)["attachments"][0]["uri"]
        assert rest.delete(f"{STORE}/{mid}").status_code == 204
        deleted_at = epoch_of(_one(rest, mid)["lastModifiedTime"])
    emulator.advance(5 * DAY - 120)
    with api_client(emulator) as rest:
        assert _one(rest, mid)["availability"] == "Deleted"
    emulator.advance(240)
    with api_client(emulator) as rest:
        msg = _one(rest, mid)
        assert msg["availability"] == "Purged"
        assert abs(epoch_of(msg["lastModifiedTime"]) - (deleted_at + 5 * DAY)) < 1
        assert rest.get(att_uri).status_code == 404
        listed = rest.get(STORE, params={"availability": "Purged", "dateFrom": "2000-01-01"})
        assert mid in record_ids(listed.json())
    emulator.advance(5 * DAY)
    with api_client(emulator) as rest:
        assert_error(rest.get(f"{STORE}/{mid}"), 404, "CMN-102")
        listed = rest.get(STORE, params=[("availability", "Purged"), ("availability", "Deleted"),
                                       ("dateFrom", "2000-01-01")])
        assert mid not in record_ids(listed.json())


def test_lifecycle_knobs(start_emulator: Callable[..., EmulatorProc]) -> None:
    emu = start_emulator("--set", "deleted_to_purged=60", "--set", "purged_to_gone=60")
    mid = add_message(emu, emu_now(emu).timestamp() - 10)
    with api_client(emu) as rest:
        assert rest.delete(f"{STORE}/{mid}").status_code == 204
        emu.advance(61)
        assert _one(rest, mid)["availability"] == "Purged"
        emu.advance(60)
        assert_error(rest.get(f"{STORE}/{mid}"), 404, "CMN-102")


# -- filters, errors, permissions --------------------------------------------------------------


def test_repeated_keys_are_ored(emu: EmulatorProc, rest: httpx.Client) -> None:
    start, end = private_day()
    sms = add_message(emu, start + 1)
    fax = add_message(emu, start + 2, type="Fax")
    vm = add_message(emu, start + 3, type="VoiceMail")
    q = list(between(start, end).items())
    got = rest.get(STORE, params=[*q, ("messageType", "SMS"), ("messageType", "Fax")]).json()
    assert record_ids(got) == [fax, sms]
    got = rest.get(STORE, params=[*q, ("messageType", "VoiceMail")]).json()
    assert record_ids(got) == [vm]


def test_direction_conversation_and_phone_filters(emu: EmulatorProc,
                                                   rest: httpx.Client) -> None:
    start, end = private_day()
    q = between(start, end)
    inbound = add_message(emu, start + 1, frm="+14155550123")
    outbound = add_message(emu, start + 2, direction="Outbound", frm="+16505551000",
                    to=("+13125550199",))
    assert record_ids(rest.get(STORE, params={**q, "direction": "Outbound"}).json()) == [outbound]
    assert record_ids(rest.get(STORE, params={**q, "direction": "Inbound"}).json()) == [inbound]
    by_number = rest.get(STORE, params={**q, "phoneNumber": "+14155550123"}).json()
    assert record_ids(by_number) == [inbound]
    by_number = rest.get(STORE, params={**q, "phoneNumber": "13125550199"}).json()
    assert record_ids(by_number) == [outbound]
    conv = _one(rest, inbound)["conversationId"]
    got = rest.get(STORE, params={**q, "conversationId": str(conv)}).json()
    assert record_ids(got) == [inbound]
    assert_error(rest.get(STORE, params={**q, "conversationId": "x"}), 400, "CMN-101")


def test_invalid_enum_is_cmn_101(rest: httpx.Client) -> None:
    for name, value in (("direction", "Sideways"), ("messageType", "Telegram"),
                        ("availability", "Maybe"), ("readStatus", "Skimmed")):
        body = assert_error(rest.get(STORE, params={name: value}), 400, "CMN-101")
        assert body["message"] == f"Parameter [{name}] value is invalid."
        assert body["errors"][0]["parameterName"] == name


def test_date_formats(rest: httpx.Client) -> None:
    for value in ("2012-07-16", "2012-07-16T23:12", "2012-07-16T23:12:30Z",
                  "2012-07-16T23:12:30+04:00", "2012-07-16T23:12:30.45Z"):
        assert rest.get(STORE, params={"dateFrom": value}).status_code == 200, value
    for name in ("dateFrom", "dateTo"):
        body = assert_error(rest.get(STORE, params={name: "yesterday"}), 400, "CMN-101")
        assert body["errors"][0]["parameterName"] == name


def test_date_with_offset_is_converted(emu: EmulatorProc, rest: httpx.Client) -> None:
    start, _ = private_day()
    mid = add_message(emu, start + 3 * 3600)  # 03:00Z
    local = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d")
    # 02:30+00:00 .. 03:30+00:00 expressed as 06:30+04:00 .. 07:30+04:00
    got = rest.get(STORE, params={"dateFrom": f"{local}T06:30:00+04:00",
                                "dateTo": f"{local}T07:30:00+04:00"}).json()
    assert record_ids(got) == [mid]


def test_unknown_message_is_404(rest: httpx.Client) -> None:
    body = assert_error(rest.get(f"{STORE}/1"), 404, "CMN-102")
    assert body["message"] == "Resource for parameter [messageId] is not found"
    assert body["parameterName"] == "messageId"


def test_other_extension_needs_admin(emu: EmulatorProc, rest: httpx.Client,
                                     user: httpx.Client) -> None:
    admin_ext = admin_extension_id(emu)
    other = str(emu.user(admin=False)["extension_id"])
    assert_error(user.get(f"/restapi/v1.0/account/~/extension/{admin_ext}/message-store"),
           403, "CMN-419")
    assert_error(user.get(f"/restapi/v1.0/account/~/extension/{admin_ext}/message-sync",
                       params={"syncType": "FSync"}), 403, "CMN-419")
    start, end = private_day()
    mid = add_message(emu, start + 1, ext=other)
    r = rest.get(f"/restapi/v1.0/account/~/extension/{other}/message-store",
               params=between(start, end))
    assert r.status_code == 200 and record_ids(r.json()) == [mid]
    assert r.json()["records"][0]["extensionId"] == other
    assert f"/extension/{other}/message-store" in r.json()["uri"]
    # A message of another extension is not found through one's own mailbox.
    assert_error(rest.get(f"{STORE}/{mid}"), 404, "CMN-102")


def test_listing_counts_light(start_emulator: Callable[..., EmulatorProc]) -> None:
    emu = start_emulator("--limits", "Light=3")
    with api_client(emu) as rest:
        remaining = [rest.get(STORE).headers["x-rate-limit-remaining"] for _ in range(3)]
        assert remaining == ["2", "1", "0"]
        r = rest.get(SYNC, params={"syncType": "FSync"})
        assert_error(r, 429, "CMN-301")
        assert r.headers["x-rate-limit-group"] == "Light"
