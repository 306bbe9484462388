"""Emulator contract I1-I10, I12 (docs/ringcentral.md §13): sending faxes, SMS and MMS through
a real emulator process.

One module-scoped emulator (huge limits, exchanges recorded and checked against the OpenAPI
spec at the end) serves most tests; the clock is moved with ``emu.advance`` rather than by
sleeping. Tests never assume seeded ids: numbers come from the phone-number API.

Over 600 lines (about 630) on purpose: ``test_zz_exchanges_conform_to_spec`` samples this one
emulator's fax, SMS and MMS exchanges densely (25 per operation and status) at the end, so
the sends stay in one module rather than split that sample across two emulators.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from rcfs.emulator import media
from tests.emulator_proc import EmulatorProc, api_client
from tests.emulator_support import raw_multipart
from tests.openapi_check import ExchangeChecker
from tests.openapi_spec import format_problems

EXT = "/restapi/v1.0/account/~/extension/~"
FAX = EXT + "/fax"
SMS = EXT + "/sms"
MMS = EXT + "/mms"
SPP = 10.0  # fax seconds per page in this module
SEND_DELAY, DELIVER_DELAY = 3.0, 7.0


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProc]:
    with EmulatorProc(
        "--limits", "Light=100000,Medium=100000,Heavy=100000,Auth=100000",
        "--set", f"fax_seconds_per_page={SPP}",
        "--set", f"sms_send_delay={SEND_DELAY}",
        "--set", f"sms_deliver_delay={DELIVER_DELAY}",
    ) as proc:
        yield proc


@pytest.fixture(scope="module")
def numbers(emu: EmulatorProc) -> dict[str, Any]:
    """The admin's phone numbers with their features, and another user's SMS number."""
    with api_client(emu) as client:
        mine = client.get(EXT + "/phone-number").json()["records"]
        other_user = emu.user(admin=False)
        other = client.get(f"/restapi/v1.0/account/~/extension/{other_user['extension_id']}"
                           "/phone-number").json()["records"]
    return {"mine": mine, "other": other}


def number_with(numbers: dict[str, Any], *features: str, owner: str = "mine") -> str:
    for rec in numbers[owner]:
        if all(f in rec["features"] for f in features):
            return str(rec["phoneNumber"])
    pytest.fail(f"no {owner} number with {features}")


def ok(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def err(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["errorCode"] == code, body
    assert body["errors"][0]["errorCode"] == code
    return body  # type: ignore[no-any-return]


def message(rest: httpx.Client, mid: int) -> dict[str, Any]:
    return ok(rest.get(f"{EXT}/message-store/{mid}"))


def sent_item(emu: EmulatorProc, result_id: int | str) -> dict[str, Any]:
    items = [s for s in emu.sent() if s["result_id"] == str(result_id)]
    assert len(items) == 1, items
    return items[0]


def png(width: int, height: int, seed: int = 1) -> bytes:
    return media.png(width, height, seed)


PDF3 = media.pdf(3, 42)


# -- I1-I3: the three fax encodings ----------------------------------------------------------


def check_queued_fax(body: dict[str, Any], recipients: list[str]) -> None:
    assert body["type"] == "Fax" and body["direction"] == "Outbound"
    assert body["messageStatus"] == "Queued"
    assert [t["phoneNumber"] for t in body["to"]] == recipients
    assert all(t["messageStatus"] == "Queued" for t in body["to"])
    assert body["faxPageCount"] == 0
    assert body["readStatus"] == "Unread" and body["availability"] == "Alive"
    [att] = body["attachments"]
    assert att["type"] == "RenderedDocument" and att["contentType"] == "application/pdf"
    assert att["uri"].endswith(f"/message-store/{body['id']}/content/{att['id']}")
    assert isinstance(body["id"], int)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["creationTime"])
    assert body["lastModifiedTime"] >= body["creationTime"]


def test_fax_form_data_text_fields(rest: httpx.Client, emu: EmulatorProc) -> None:
    """I1: text parts (``to`` repeated, resolution, cover, sendTime) + ``attachment`` files."""
    txt = b"Hello fax\nsecond line\n"
    r = rest.post(FAX, data={
        "to": ["+18774880001", "+18004778345"], "faxResolution": "Low", "coverIndex": "2",
        "coverPageText": "Please sign", "sendTime": "2013-02-26T09:31:20.882Z",
        "isoCode": "US",
    }, files=[("attachment", ("one.pdf", PDF3, "application/pdf")),
              ("attachment", ("two.txt", txt, "text/plain"))])
    body = ok(r)
    assert r.headers["x-rate-limit-group"].lower() == "heavy"
    check_queued_fax(body, ["+18774880001", "+18004778345"])
    assert body["faxResolution"] == "Low" and body["coverIndex"] == 2
    assert body["coverPageText"] == "Please sign"
    item = sent_item(emu, body["id"])
    assert item["kind"] == "fax" and item["status"] == 200
    assert [a["filename"] for a in item["attachments"]] == ["one.pdf", "two.txt"]
    assert item["attachments"][0]["sha256"] == hashlib.sha256(PDF3).hexdigest()
    assert item["attachments"][1]["sha256"] == hashlib.sha256(txt).hexdigest()
    assert item["attachments"][1]["size"] == len(txt)
    assert [t["phoneNumber"] for t in item["request"]["to"]] == ["+18774880001",
                                                                 "+18004778345"]


@pytest.mark.parametrize("json_name,file_name", [("json", "attachment"),
                                                 ("request", "attachments")])
def test_fax_form_data_json_part(rest: httpx.Client, emu: EmulatorProc, json_name: str,
                                 file_name: str) -> None:
    """I2: a JSON part (any name, application/json) + file parts ``attachment(s)``."""
    envelope = {"to": [{"phoneNumber": "+18005630003", "name": "John Smith"}],
                "faxResolution": "High", "coverIndex": 0}
    r = rest.post(FAX, files=[
        (json_name, ("request.json", json.dumps(envelope).encode(), "application/json")),
        (file_name, ("scan.pdf", PDF3, "application/pdf")),
    ])
    body = ok(r)
    check_queued_fax(body, ["+18005630003"])
    assert body["to"][0]["name"] == "John Smith"
    assert body["faxResolution"] == "High" and body["coverIndex"] == 0
    item = sent_item(emu, body["id"])
    assert item["request"]["to"][0]["name"] == "John Smith"
    assert item["attachments"][0]["sha256"] == hashlib.sha256(PDF3).hexdigest()
    # Without a cover page a single PDF is faxed as is: the rendered document is the upload.
    att = body["attachments"][0]
    assert emu.content("message", f"{body['id']}/{att['id']}") == PDF3


def test_fax_multipart_mixed(rest: httpx.Client, emu: EmulatorProc) -> None:
    """I3: multipart/mixed, JSON first, then ``Content-Disposition: attachment`` parts."""
    envelope = {"to": [{"phoneNumber": "+18005630003"}], "faxResolution": "High",
                "country": {"isoCode": "IE"}, "sendTime": "2013-02-26T09:31:20.882Z"}
    headers, data = raw_multipart([
        ({"Content-Type": "application/json"}, json.dumps(envelope).encode()),
        ({"Content-Disposition": 'attachment; filename="fax.txt"'}, b"Hello, World!"),
        ({"Content-Disposition": 'attachment; filename="p.png"', "Content-Type": "image/png"},
         png(64, 48)),
    ])
    body = ok(rest.post(FAX, content=data, headers=headers))
    check_queued_fax(body, ["+18005630003"])
    item = sent_item(emu, body["id"])
    assert [a["filename"] for a in item["attachments"]] == ["fax.txt", "p.png"]
    assert item["request"]["_encoding"] == "multipart/mixed+json"
    # A text + image fax is rendered to a PDF of its own.
    att = body["attachments"][0]
    assert emu.content("message", f"{body['id']}/{att['id']}").startswith(b"%PDF-")


def test_fax_from_is_ignored(rest: httpx.Client, emu: EmulatorProc) -> None:
    """I6: a ``from`` field is ignored; an outbound fax carries no sender."""
    r = rest.post(FAX, data={"to": "+18774880001", "from": "+19999999999"},
                files=[("attachment", ("a.pdf", PDF3, "application/pdf"))])
    body = ok(r)
    assert "from" not in body and "from" not in message(rest, body["id"])
    assert sent_item(emu, body["id"])["request"]["from"] == "+19999999999"


def test_fax_generic_type_is_sniffed(rest: httpx.Client) -> None:
    """A generic ``application/octet-stream`` part is judged by its bytes."""
    ok(rest.post(FAX, data={"to": "+18774880001"},
               files=[("attachment", ("blob", PDF3, "application/octet-stream"))]))
    err(rest.post(FAX, data={"to": "+18774880001"},
                files=[("attachment", ("clip.bin", b"\0\0\0\x18ftypisom" + b"\0" * 64,
                                       "application/octet-stream"))]), 415, "MSG-348")


# -- I4: fax validation ----------------------------------------------------------------------

def _form(files: list[Any], data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"data": {"to": "+18774880001", **(data or {})}, "files": files}


def _raw(parts: list[tuple[dict[str, str], bytes]], subtype: str = "mixed") -> dict[str, Any]:
    headers, data = raw_multipart(parts, subtype)
    return {"content": data, "headers": headers}


JSON_TO = ({"Content-Type": "application/json"}, b'{"to":[{"phoneNumber":"+18774880001"}]}')
FAX_ERRORS: dict[str, tuple[Callable[[], dict[str, Any]], int, str, str | None]] = {
    "no file part": (lambda: _form([], {"faxResolution": "High"}), 400, "CMN-100", "attachment"),
    "no file part (mixed)": (lambda: _raw([JSON_TO]), 400, "CMN-100", "attachment"),
    "empty file": (lambda: _form([("attachment", ("e.pdf", b"", "application/pdf"))]),
                   400, "MSG-347", None),
    "no Content-Disposition": (lambda: _raw([JSON_TO, ({"Content-Type": "text/plain"}, b"x")]),
                               400, "MSG-350", None),
    "no filename": (lambda: _raw([JSON_TO, ({"Content-Disposition": "attachment",
                                             "Content-Type": "text/plain"}, b"x")]),
                    400, "MSG-351", None),
    "no filename (form-data)": (lambda: _raw([
        ({"Content-Disposition": 'form-data; name="to"'}, b"+18774880001"),
        ({"Content-Disposition": 'form-data; name="attachment"',
          "Content-Type": "text/plain"}, b"x")], "form-data"), 400, "MSG-351", None),
    "video/mp4": (lambda: _form([("attachment", ("v.mp4", b"\0\0\0\x18ftypisom" + b"\0" * 64,
                                                 "video/mp4"))]), 415, "MSG-348", None),
    "broken JSON": (lambda: _raw([({"Content-Type": "application/json"}, b'{"to": [')]),
                    400, "MSG-349", None),
    "not multipart at all": (lambda: {"content": b"--x\r\n", "headers": {
        "Content-Type": "multipart/mixed"}}, 400, "MSG-349", None),
    "cover text 1025": (lambda: _form([("attachment", ("a.pdf", PDF3, "application/pdf"))],
                                      {"coverPageText": "x" * 1025}), 400, "CMN-101",
                        "coverPageText"),
    "bad number": (lambda: _form([("attachment", ("a.pdf", PDF3, "application/pdf"))],
                                 {"to": "call me maybe"}), 400, "CMN-101", "to.phoneNumber"),
    "no recipient": (lambda: {"files": [("attachment", ("a.pdf", PDF3, "application/pdf"))]},
                     400, "CMN-100", "to"),
    "bad resolution": (lambda: _form([("attachment", ("a.pdf", PDF3, "application/pdf"))],
                                     {"faxResolution": "Ultra"}), 400, "CMN-101",
                       "faxResolution"),
    "bad sendTime": (lambda: _form([("attachment", ("a.pdf", PDF3, "application/pdf"))],
                                   {"sendTime": "tomorrow"}), 400, "CMN-101", "sendTime"),
}


@pytest.mark.parametrize("case", list(FAX_ERRORS))
def test_fax_validation(rest: httpx.Client, emu: EmulatorProc, case: str) -> None:
    build, status, code, param = FAX_ERRORS[case]
    before = len(emu.sent())
    body = err(rest.post(FAX, **build()), status, code)
    if param is not None:
        assert body["errors"][0]["parameterName"] == param
    items = emu.sent()[before:]
    assert [(i["kind"], i["status"], i["result_id"]) for i in items] == [("fax", status, None)]


def test_fax_total_size_limit(rest: httpx.Client, emu: EmulatorProc) -> None:
    """I4: more than 50 MB of attachments → 400 MSG-338 (nothing stored)."""
    big = PDF3 + b"\n%" + b"0" * (50 * 1024 * 1024)
    r = rest.post(FAX, data={"to": "+18774880001"},
                files=[("attachment", ("big.pdf", big, "application/pdf"))])
    err(r, 400, "MSG-338")
    assert emu.sent()[-1]["attachments"][0]["size"] == len(big)


# -- I5: the fax state machine ---------------------------------------------------------------

def send_pdf_fax(rest: httpx.Client, to: list[str], pages: int = 2, **data: Any) -> dict[str, Any]:
    return ok(rest.post(FAX, data={"to": to, "coverIndex": "0", **data},
                      files=[("attachment", ("d.pdf", media.pdf(pages, pages),
                                             "application/pdf"))]))


def test_fax_sent_after_pages(rest: httpx.Client, emu: EmulatorProc) -> None:
    body = send_pdf_fax(rest, ["+18774880001"], pages=2)
    emu.advance(2 * SPP - 5)  # 5 s of slack for wall time passing meanwhile
    m = message(rest, body["id"])
    assert m["messageStatus"] == "Queued" and m["faxPageCount"] == 0
    emu.advance(6)
    m = message(rest, body["id"])
    assert m["messageStatus"] == "Sent"
    assert m["to"][0]["messageStatus"] == "Sent" and "faxErrorCode" not in m["to"][0]
    assert m["faxPageCount"] == 2
    assert m["lastModifiedTime"] > body["lastModifiedTime"]


def test_fax_cover_page_counts(rest: httpx.Client, emu: EmulatorProc) -> None:
    body = send_pdf_fax(rest, ["+18774880001"], pages=2, coverIndex="3")
    emu.advance(3 * SPP + 1)
    m = message(rest, body["id"])
    assert m["messageStatus"] == "Sent" and m["faxPageCount"] == 3


@pytest.mark.parametrize("suffix,code", [("0000", "NoAnswer"), ("9999", "InvalidNumber"),
                                         ("1111", "LineBusy"), ("2222", "NoFaxMachine")])
def test_fax_failure_triggers(rest: httpx.Client, emu: EmulatorProc, suffix: str,
                              code: str) -> None:
    body = send_pdf_fax(rest, ["+1877488" + suffix], pages=1)
    emu.advance(SPP + 1)
    m = message(rest, body["id"])
    assert m["messageStatus"] == "SendingFailed"
    assert m["to"][0] == {"phoneNumber": "+1877488" + suffix, "messageStatus": "SendingFailed",
                          "faxErrorCode": code}


def test_fax_aggregate_status(rest: httpx.Client, emu: EmulatorProc) -> None:
    """Any Queued ⇒ Queued; else any SendingFailed ⇒ SendingFailed; else Sent."""
    body = send_pdf_fax(rest, ["+18774880001", "+18774880000", "+18774880002"], pages=1)
    emu.advance(SPP + 1)  # first recipient done
    m = message(rest, body["id"])
    assert [t["messageStatus"] for t in m["to"]] == ["Sent", "Queued", "Queued"]
    assert m["messageStatus"] == "Queued"
    emu.advance(SPP)  # second (NoAnswer) done, third still queued
    m = message(rest, body["id"])
    assert [t["messageStatus"] for t in m["to"]] == ["Sent", "SendingFailed", "Queued"]
    assert m["messageStatus"] == "Queued"
    emu.advance(SPP)
    m = message(rest, body["id"])
    assert [t["messageStatus"] for t in m["to"]] == ["Sent", "SendingFailed", "Sent"]
    assert m["messageStatus"] == "SendingFailed"


def test_fax_scheduled_send_time(rest: httpx.Client, emu: EmulatorProc) -> None:
    now = ok(rest.get(EXT + "/message-store/" + str(send_pdf_fax(rest, ["+18774880001"])["id"])))
    start = now["creationTime"]
    # Schedule ten minutes after the emulator's "now".
    from datetime import datetime, timedelta

    when = datetime.fromisoformat(start.replace("Z", "+00:00")) + timedelta(minutes=10)
    body = send_pdf_fax(rest, ["+18774880001"], pages=1,
                        sendTime=when.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    assert body["messageStatus"] == "Queued"
    emu.advance(300)
    assert message(rest, body["id"])["messageStatus"] == "Queued"
    emu.advance(300 + SPP + 1)
    assert message(rest, body["id"])["messageStatus"] == "Sent"


def test_fax_too_many_pages(rest: httpx.Client, emu: EmulatorProc) -> None:
    body = ok(rest.post(FAX, data={"to": "+18774880001", "coverIndex": "0"},
                      files=[("attachment", ("long.pdf", media.pdf(201, 1),
                                             "application/pdf"))]))
    assert body["messageStatus"] == "Queued"
    emu.advance(SPP + 1)
    m = message(rest, body["id"])
    assert m["messageStatus"] == "SendingFailed"
    assert m["to"][0]["faxErrorCode"] == "TooManyPages"


def test_fax_rendering_failed(rest: httpx.Client, emu: EmulatorProc) -> None:
    """A ``application/pdf`` part that is not a PDF is accepted, then fails to render."""
    body = ok(rest.post(FAX, data={"to": "+18774880001"},
                      files=[("attachment", ("fake.pdf", b"not a pdf at all",
                                             "application/pdf"))]))
    emu.advance(SPP + 1)
    m = message(rest, body["id"])
    assert m["messageStatus"] == "SendingFailed"
    assert m["to"][0]["faxErrorCode"] == "RenderingFailed"


def test_fax_delete_while_queued_cancels(rest: httpx.Client, emu: EmulatorProc) -> None:
    body = send_pdf_fax(rest, ["+18774880001"], pages=1)
    r = rest.delete(f"{EXT}/message-store/{body['id']}")
    assert r.status_code == 204, r.text
    emu.advance(SPP + 1)
    r = rest.get(f"{EXT}/message-store", params={"availability": "Deleted",
                                               "dateFrom": "2000-01-01", "perPage": 1000})
    [m] = [m for m in ok(r)["records"] if m["id"] == body["id"]]
    assert m["messageStatus"] == "Queued" and m["availability"] == "Deleted"


def test_text_fax_is_rendered_with_page_count(rest: httpx.Client, emu: EmulatorProc) -> None:
    text = "".join(f"line {i}\n" for i in range(130)).encode()  # 130 lines ⇒ 3 pages
    body = ok(rest.post(FAX, data={"to": "+18774880001", "coverIndex": "0"},
                      files=[("attachment", ("memo.txt", text, "text/plain"))]))
    emu.advance(3 * SPP + 1)
    m = message(rest, body["id"])
    assert m["messageStatus"] == "Sent" and m["faxPageCount"] == 3
    pdf = emu.content("message", f"{body['id']}/{m['attachments'][0]['id']}")
    assert pdf.startswith(b"%PDF-") and pdf.count(b"/Type /Page ") == 3


# -- I12: sent messages in message-store and message-sync ------------------------------------

def test_sent_messages_in_store_and_isync(rest: httpx.Client, emu: EmulatorProc,
                                          numbers: dict[str, Any]) -> None:
    fsync = ok(rest.get(EXT + "/message-sync", params={"syncType": "FSync",
                                                     "dateFrom": "2000-01-01"}))
    token = fsync["syncInfo"]["syncToken"]
    fax = send_pdf_fax(rest, ["+18774880001"], pages=1)
    sms = ok(rest.post(SMS, json={"from": {"phoneNumber": number_with(numbers, "SmsSender")},
                                "to": [{"phoneNumber": "+14155550123"}], "text": "hello"}))
    listing = ok(rest.get(EXT + "/message-store", params={"direction": "Outbound",
                                                        "dateFrom": "2000-01-01",
                                                        "perPage": 1000}))
    ids = {m["id"] for m in listing["records"]}
    assert {fax["id"], sms["id"]} <= ids

    isync = ok(rest.get(EXT + "/message-sync", params={"syncType": "ISync", "syncToken": token}))
    by_id = {m["id"]: m for m in isync["records"]}
    assert by_id[fax["id"]]["messageStatus"] == "Queued"
    assert by_id[sms["id"]]["messageStatus"] == "Queued"
    token = isync["syncInfo"]["syncToken"]

    emu.advance(max(SPP, SEND_DELAY + DELIVER_DELAY) + 10)
    isync = ok(rest.get(EXT + "/message-sync", params={"syncType": "ISync", "syncToken": token}))
    by_id = {m["id"]: m for m in isync["records"]}
    assert by_id[fax["id"]]["messageStatus"] == "Sent"
    assert by_id[fax["id"]]["lastModifiedTime"] > fax["lastModifiedTime"]
    assert by_id[sms["id"]]["messageStatus"] == "Delivered"
    assert by_id[sms["id"]]["lastModifiedTime"] > sms["lastModifiedTime"]


# -- I7, I8: SMS -----------------------------------------------------------------------------

def sms_body(numbers: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"from": {"phoneNumber": number_with(numbers, "SmsSender")},
                            "to": [{"phoneNumber": "+14155550123"}], "text": "hello"}
    body.update(extra)
    return body


def test_sms_send_and_deliver(rest: httpx.Client, emu: EmulatorProc,
                              numbers: dict[str, Any]) -> None:
    r = rest.post(SMS, json=sms_body(numbers, text="Test SMS message"))
    body = ok(r)
    assert r.headers["x-rate-limit-group"].lower() == "medium"
    assert body["type"] == "SMS" and body["direction"] == "Outbound"
    assert body["messageStatus"] == "Queued" and body["subject"] == "Test SMS message"
    assert body["from"]["phoneNumber"] == number_with(numbers, "SmsSender")
    assert body["to"] == [{"phoneNumber": "+14155550123"}]
    assert body["attachments"][0]["type"] == "Text"
    assert body["attachments"][0]["contentType"] == "text/plain"
    assert body["smsSendingAttemptsCount"] == 1
    # conversationId is a JSON integer beyond 2^53; conversation.id the same digits.
    raw = re.search(r'"conversationId"\s*:\s*(\d+)', r.text)
    assert raw is not None and int(raw.group(1)) > 2**53
    assert body["conversation"]["id"] == raw.group(1)
    att = body["attachments"][0]
    assert emu.content("message", f"{body['id']}/{att['id']}") == b"Test SMS message"
    item = sent_item(emu, body["id"])
    assert item["kind"] == "sms" and item["request"]["text"] == "Test SMS message"

    emu.advance(SEND_DELAY + 0.5)
    m = message(rest, body["id"])
    assert m["messageStatus"] == "Sent" and m["lastModifiedTime"] > body["lastModifiedTime"]
    emu.advance(DELIVER_DELAY)
    m2 = message(rest, body["id"])
    assert m2["messageStatus"] == "Delivered" and "smsDeliveryTime" in m2
    assert m2["lastModifiedTime"] > m["lastModifiedTime"]
    # Same participants, same conversation.
    again = ok(rest.post(SMS, json=sms_body(numbers, text="again")))
    assert again["conversationId"] == body["conversationId"]


@pytest.mark.parametrize("suffix,status,code", [
    ("0000", "DeliveryFailed", "SMS-CAR-411"), ("4130", "DeliveryFailed", "SMS-RC-413"),
    ("9999", "SendingFailed", "SMS-UP-410")])
def test_sms_failures(rest: httpx.Client, emu: EmulatorProc, numbers: dict[str, Any],
                      suffix: str, status: str, code: str) -> None:
    body = ok(rest.post(SMS, json=sms_body(numbers, to=[{"phoneNumber": "+1415555" + suffix}])))
    emu.advance(SEND_DELAY + DELIVER_DELAY + 1)
    m = message(rest, body["id"])
    assert m["messageStatus"] == status and m["deliveryErrorCode"] == code


def test_sms_text_limit_counts_utf16(rest: httpx.Client, numbers: dict[str, Any]) -> None:
    ok(rest.post(SMS, json=sms_body(numbers, text="a" * 1000)))
    ok(rest.post(SMS, json=sms_body(numbers, text="\U0001F600" * 500)))
    body = err(rest.post(SMS, json=sms_body(numbers, text="a" * 1001)), 400, "CMN-101")
    assert body["errors"][0]["parameterName"] == "text"
    err(rest.post(SMS, json=sms_body(numbers, text="\U0001F600" * 500 + "a")), 400, "CMN-101")


def test_sms_validation(rest: httpx.Client, emu: EmulatorProc, numbers: dict[str, Any]) -> None:
    before = len(emu.sent())
    b = sms_body(numbers)
    del b["from"]
    body = err(rest.post(SMS, json=b), 400, "CMN-100")
    assert body["errors"][0]["parameterName"] == "from"
    body = err(rest.post(SMS, json=sms_body(numbers, **{"from": {"phoneNumber": "+15550001234"}})),
               400, "MSG-245")
    assert body["errors"][0]["parameterName"] == "from"
    other = number_with(numbers, "SmsSender", owner="other")
    err(rest.post(SMS, json=sms_body(numbers, **{"from": {"phoneNumber": other}})), 400, "MSG-245")
    eleven = [{"phoneNumber": f"+1415555{1000 + i}"} for i in range(11)]
    err(rest.post(SMS, json=sms_body(numbers, to=eleven)), 400, "MSG-381")
    ok(rest.post(SMS, json=sms_body(numbers, to=eleven[:10])))
    b = sms_body(numbers)
    del b["to"]
    err(rest.post(SMS, json=b), 400, "CMN-100")
    err(rest.post(SMS, json=sms_body(numbers, to=[{"phoneNumber": "not a number"}])),
        400, "CMN-101")
    err(rest.post(SMS, json=sms_body(numbers, to=[{"phoneNumber": "101"}])), 400, "MSG-246")
    b = sms_body(numbers)
    del b["text"]
    err(rest.post(SMS, json=b), 400, "CMN-100")
    err(rest.post(SMS, json=sms_body(numbers, country={"id": "1", "isoCode": "US"})),
        400, "MSG-365")
    err(rest.post(SMS, content=b"{not json", headers={"Content-Type": "application/json"}),
        400, "CMN-103")
    statuses = [(s["kind"], s["status"]) for s in emu.sent()[before:]]
    assert statuses.count(("sms", 200)) == 1 and len(statuses) == 11


def test_sms_from_without_feature(rest: httpx.Client, numbers: dict[str, Any]) -> None:
    """I8: the caller's own number lacking ``SmsSender`` → 403 MSG-367; a fax-only number
    → 403 MSG-241 (both need such numbers in the seed)."""
    plain = [n["phoneNumber"] for n in numbers["mine"]
             if "SmsSender" not in n["features"] and n["type"] != "FaxOnly"]
    fax_only = [n["phoneNumber"] for n in numbers["mine"] if n["type"] == "FaxOnly"]
    if not plain and not fax_only:
        pytest.skip("the seeded admin has no number without SmsSender")
    for number in plain[:1]:
        err(rest.post(SMS, json=sms_body(numbers, **{"from": {"phoneNumber": number}})),
            403, "MSG-367")
    for number in fax_only[:1]:
        err(rest.post(SMS, json=sms_body(numbers, **{"from": {"phoneNumber": number}})),
            403, "MSG-241")


def test_send_for_another_extension_is_cmn419(emu: EmulatorProc) -> None:
    user = emu.user(admin=False)
    admin = emu.user(admin=True)
    with api_client(emu, user) as client:
        base = f"/restapi/v1.0/account/~/extension/{admin['extension_id']}"
        err(client.post(base + "/sms", json={"from": {"phoneNumber": "+1"},
                                             "to": [{"phoneNumber": "+14155550123"}],
                                             "text": "x"}), 403, "CMN-419")
        err(client.post(base + "/fax", data={"to": "+18774880001"},
                        files=[("attachment", ("a.pdf", PDF3, "application/pdf"))]),
            403, "CMN-419")


# -- I9, I10: MMS ----------------------------------------------------------------------------

def mms_envelope(numbers: dict[str, Any], text: str | None = "hello") -> bytes:
    env: dict[str, Any] = {"from": {"phoneNumber": number_with(numbers, "MmsSender")},
                           "to": [{"phoneNumber": "+18772004569"},
                                  {"phoneNumber": "+18772094569"}]}
    if text is not None:
        env["text"] = text
    return json.dumps(env).encode()


def test_mms_mixed_on_sms(rest: httpx.Client, emu: EmulatorProc, numbers: dict[str, Any]) -> None:
    image = png(640, 480)
    headers, data = raw_multipart([
        ({"Content-Type": "application/json; charset=UTF-8"}, mms_envelope(numbers)),
        ({"Content-Type": "image/png", "Content-Disposition": 'attachment; filename="f.png"'},
         image),
    ])
    r = rest.post(SMS, content=data, headers=headers)
    body = ok(r)
    assert r.headers["x-rate-limit-group"].lower() == "medium"
    assert body["type"] == "SMS" and body["messageStatus"] == "Queued"
    text, mms = body["attachments"]
    assert text["type"] == "Text" and text["contentType"] == "text/plain"
    assert mms == {"id": mms["id"], "uri": mms["uri"], "type": "MmsAttachment",
                   "contentType": "image/png", "size": len(image), "fileName": "f.png",
                   "width": 640, "height": 480}
    assert emu.content("message", f"{body['id']}/{mms['id']}") == image
    item = sent_item(emu, body["id"])
    assert item["kind"] == "mms"
    assert item["attachments"] == [{"filename": "f.png", "content_type": "image/png",
                                    "size": len(image),
                                    "sha256": hashlib.sha256(image).hexdigest()}]


def test_mms_form_data_on_mms_alias(rest: httpx.Client, numbers: dict[str, Any]) -> None:
    gif = media.gif(32, 16, 3)
    body = ok(rest.post(MMS, files=[
        ("json", ("request.json", mms_envelope(numbers, text=None), "application/json")),
        ("attachment", ("anim.gif", gif, "image/gif")),
        ("attachment", ("card.vcf", b"BEGIN:VCARD\r\nEND:VCARD\r\n", "text/vcard")),
    ]))
    types = [(a["type"], a["contentType"]) for a in body["attachments"]]
    assert types == [("MmsAttachment", "image/gif"), ("MmsAttachment", "text/vcard")]
    assert body["attachments"][0]["width"] == 32 and body["attachments"][0]["height"] == 16
    assert "width" not in body["attachments"][1]


def test_mms_validation(rest: httpx.Client, emu: EmulatorProc, numbers: dict[str, Any]) -> None:
    env = ("json", ("request.json", mms_envelope(numbers), "application/json"))
    small = png(8, 8)
    eleven = [("attachment", (f"{i}.png", small, "image/png")) for i in range(11)]
    err(rest.post(SMS, files=[env, *eleven]), 400, "MSG-338")
    ok(rest.post(SMS, files=[env, *eleven[:10]]))
    big = [("attachment", ("big.jpg", b"\xff\xd8\xff" + b"\0" * 800_000, "image/jpeg")),
           ("attachment", ("big2.jpg", b"\xff\xd8\xff" + b"\0" * 800_000, "image/jpeg"))]
    err(rest.post(SMS, files=[env, *big]), 400, "MSG-337")
    err(rest.post(SMS, files=[env, ("attachment", ("x.mkv", b"\x1aE\xdf\xa3" + b"\0" * 50,
                                                 "video/x-matroska"))]), 415, "MSG-348")
    err(rest.post(SMS, files=[env, ("attachment", ("e.png", b"", "image/png"))]), 400, "MSG-347")
    err(rest.post(MMS, json=json.loads(mms_envelope(numbers))), 400, "CMN-100")
    fax_only = [n["phoneNumber"] for n in numbers["mine"]
                if "SmsSender" in n["features"] and "MmsSender" not in n["features"]]
    if fax_only:
        env2 = {"from": {"phoneNumber": fax_only[0]}, "to": [{"phoneNumber": "+14155550123"}]}
        err(rest.post(SMS, files=[("json", ("r.json", json.dumps(env2).encode(),
                                          "application/json")),
                                ("attachment", ("a.png", small, "image/png"))]),
            403, "MSG-380")


# -- resend (separate emulator: spec46 does not list the JSON body) ----------------------------

def test_fax_resend() -> None:
    """Resend/forward by ``originalMessageId`` (docs:resending-faxes.md); spec46 lacks this
    JSON body, so this emulator's exchanges are not spec-checked."""
    with EmulatorProc("--set", "fax_seconds_per_page=1", check_openapi=False) as emu, \
            api_client(emu) as rest:
        first = send_pdf_fax(rest, ["+18774880000"], pages=1)
        r = rest.post(FAX, json={"originalMessageId": str(first["id"])})
        err(r, 406, "MSG-343")  # still Queued
        emu.advance(2)
        assert message(rest, first["id"])["messageStatus"] == "SendingFailed"
        again = ok(rest.post(FAX, json={"originalMessageId": str(first["id"]),
                                      "to": [{"phoneNumber": "+18774880001"}]}))
        assert again["id"] != first["id"] and again["messageStatus"] == "Queued"
        emu.advance(2)
        assert message(rest, again["id"])["messageStatus"] == "Sent"
        err(rest.post(FAX, json={"originalMessageId": "1"}), 404, "CMN-102")


# -- the recorded exchanges conform to the spec ------------------------------------------------

def test_zz_exchanges_conform_to_spec(emu: EmulatorProc) -> None:
    """This module's exchanges validate against spec46: up to 25 per operation and status,
    a denser sample than the harness's teardown check (every error code shape is seen)."""
    problems = emu.openapi_problems(ExchangeChecker(per_status=25, max_shapes=50))
    assert not problems, format_problems(problems, "send tests")
