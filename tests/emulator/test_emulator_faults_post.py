"""Fault injection on uploads (POST sends) and malformed multipart uploads, against a real
emulator process with plain httpx.

``reset_request`` drops the connection before the handler runs (nothing is created or
recorded); ``reset_response`` lets the handler finish (the message exists and is recorded in
``/_emulator/sent``) and then drops the connection without a response. Either way the client
sees a transport error, never an HTTP status (in particular never uvicorn's plain-text 500).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from rcfs.emulator import media
from tests.emulator_proc import EmulatorProc, api_client
from tests.emulator_support import EXT, raw_multipart
from tests.mount_helper import GENEROUS_LIMITS

pytestmark = pytest.mark.usefixtures("no_faults")

FAX = EXT + "/fax"
SMS = EXT + "/sms"
MMS = EXT + "/mms"
GREETING = EXT + "/greeting"
# What a dropped connection looks like to httpx (never a timeout, never a response).
DROPPED = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
PDF = media.pdf(2, 7)


@pytest.fixture(scope="module")
def senders(emu: EmulatorProc) -> dict[str, str]:
    with api_client(emu) as client:
        records = client.get(EXT + "/phone-number").json()["records"]
    out: dict[str, str] = {}
    for feature in ("SmsSender", "MmsSender"):
        out[feature] = next(str(r["phoneNumber"]) for r in records
                            if feature in r["features"])
    return out


def fax_request(to: str = "+18774880001") -> tuple[dict[str, str], bytes]:
    return raw_multipart([
        ({"Content-Type": "application/json"}, json.dumps({"to": [{"phoneNumber": to}]}).encode()),
        ({"Content-Type": "application/pdf", "Content-Disposition": 'attachment; filename="a.pdf"'},
         PDF),
    ])


Send = Callable[[httpx.Client, dict[str, str]], httpx.Response]


def _send_fax(rest: httpx.Client, senders: dict[str, str]) -> httpx.Response:
    headers, body = fax_request()
    return rest.post(FAX, content=body, headers=headers)


def _send_sms(rest: httpx.Client, senders: dict[str, str]) -> httpx.Response:
    return rest.post(SMS, json={"from": {"phoneNumber": senders["SmsSender"]},
                              "to": [{"phoneNumber": "+14155550123"}], "text": "hello"})


def _send_mms(rest: httpx.Client, senders: dict[str, str]) -> httpx.Response:
    envelope = {"from": {"phoneNumber": senders["MmsSender"]},
                "to": [{"phoneNumber": "+14155550124"}], "text": "look"}
    return rest.post(MMS, files=[
        ("json", ("request.json", json.dumps(envelope).encode(), "application/json")),
        ("attachment", ("p.png", media.png(16, 8, 2), "image/png")),
    ])


def _send_greeting(rest: httpx.Client, senders: dict[str, str]) -> httpx.Response:
    return rest.post(GREETING, params={"apply": "false"}, data={"type": "Voicemail"},
                   files={"binary": ("hi.wav", media.wav(0.5, 3), "audio/wav")})


SENDS: dict[str, tuple[str, Send]] = {
    "fax": (r"/fax$", _send_fax),
    "sms": (r"/sms$", _send_sms),
    "mms": (r"/mms$", _send_mms),
    "greeting": (r"/greeting$", _send_greeting),
}


def outbound_ids(rest: httpx.Client) -> set[int]:
    r = rest.get(EXT + "/message-store", params={"direction": "Outbound", "perPage": 1000})
    assert r.status_code == 200, r.text
    return {rec["id"] for rec in r.json()["records"]}


def no_server_errors(emu: EmulatorProc) -> None:
    log = emu.log()
    assert "Exception in ASGI application" not in log, log
    assert "returned without starting response" not in log, log
    assert all(e["status"] != 500 for e in emu.requests()), emu.requests()


@pytest.mark.parametrize("kind", sorted(SENDS))
def test_reset_request_drops_before_the_handler(emu: EmulatorProc, rest: httpx.Client,
                                                senders: dict[str, str], kind: str) -> None:
    path, send = SENDS[kind]
    sent_before = emu.sent()
    ids_before = outbound_ids(rest)
    seq = len(emu.requests())
    emu.fault(kind="reset_request", method="POST", path=path, count=1)
    with pytest.raises(DROPPED):
        send(rest, senders)
    assert emu.sent() == sent_before  # nothing reached a handler
    assert outbound_ids(rest) == ids_before  # nothing was created
    [entry] = [e for e in emu.requests(seq) if e["method"] == "POST"]
    assert entry["status"] is None and entry["dropped"] is True
    assert entry["fault"] == "reset_request"
    # The fault is spent: the same client (a new connection) sends normally.
    r = send(rest, senders)
    assert r.status_code == 200, r.text
    assert len(emu.sent()) == len(sent_before) + 1
    no_server_errors(emu)


@pytest.mark.parametrize("kind", sorted(SENDS))
def test_reset_response_drops_after_the_handler(emu: EmulatorProc, rest: httpx.Client,
                                                senders: dict[str, str], kind: str) -> None:
    path, send = SENDS[kind]
    sent_before = len(emu.sent())
    ids_before = outbound_ids(rest)
    seq = len(emu.requests())
    emu.fault(kind="reset_response", method="POST", path=path, count=1)
    with pytest.raises(DROPPED):
        send(rest, senders)
    new = emu.sent()[sent_before:]
    assert len(new) == 1, new  # exactly one send took effect
    item = new[0]
    assert item["status"] == 200 and item["result_id"]
    [entry] = [e for e in emu.requests(seq) if e["method"] == "POST"]
    assert entry["status"] == 200 and entry["dropped"] is True and entry["bytes"] == 0
    if kind != "greeting":
        created = outbound_ids(rest) - ids_before
        assert created == {int(item["result_id"])}
        msg = rest.get(f"{EXT}/message-store/{item['result_id']}")
        assert msg.status_code == 200 and msg.json()["direction"] == "Outbound"
    else:
        r = rest.get(f"{GREETING}/{item['result_id']}")
        assert r.status_code == 200, r.text
    no_server_errors(emu)


def test_reset_request_without_reading_the_upload(emu: EmulatorProc, rest: httpx.Client) -> None:
    """``read_body: false`` drops while a large upload is still being written."""
    sent_before = emu.sent()
    emu.fault(kind="reset_request", method="POST", path=r"/fax$", count=1, read_body=False)
    headers, body = raw_multipart([
        ({"Content-Type": "application/json"},
         json.dumps({"to": [{"phoneNumber": "+18774880001"}]}).encode()),
        ({"Content-Type": "application/pdf",
          "Content-Disposition": 'attachment; filename="big.pdf"'}, PDF + b"\0" * 8_000_000),
    ])
    with pytest.raises(DROPPED):
        rest.post(FAX, content=body, headers=headers)
    assert emu.sent() == sent_before
    no_server_errors(emu)


def test_probabilistic_and_skip_rules_are_deterministic(emu: EmulatorProc, rest: httpx.Client,
                                                        senders: dict[str, str]) -> None:
    """``skip`` lets the first send through; the second is reset after taking effect."""
    emu.fault(kind="reset_response", method="POST", path=r"/sms$", skip=1, count=1)
    before = len(emu.sent())
    assert _send_sms(rest, senders).status_code == 200
    with pytest.raises(DROPPED):
        _send_sms(rest, senders)
    assert _send_sms(rest, senders).status_code == 200
    assert [s["status"] for s in emu.sent()[before:]] == [200, 200, 200]


def test_drops_over_tls(start_emulator: Callable[..., EmulatorProc]) -> None:
    # Rules from the command line: the harness's admin client does not trust the test CA.
    rules = [{"kind": "reset_request", "method": "POST", "path": r"/fax$", "count": 1},
             {"kind": "reset_response", "method": "POST", "path": r"/fax$", "skip": 1,
              "count": 1}]
    emu = start_emulator("--tls", *GENEROUS_LIMITS,
                         *(arg for rule in rules for arg in ("--fault", json.dumps(rule))))
    with api_client(emu) as rest:
        before = outbound_ids(rest)
        with pytest.raises(DROPPED):
            _send_fax(rest, {})
        assert outbound_ids(rest) == before
        with pytest.raises(DROPPED):
            _send_fax(rest, {})
        assert len(outbound_ids(rest) - before) == 1  # the response was lost, not the fax
        assert _send_fax(rest, {}).status_code == 200
        assert len(outbound_ids(rest) - before) == 2
    log = emu.log()
    assert "Exception in ASGI application" not in log, log


def test_unknown_fault_kind_is_refused(emu: EmulatorProc) -> None:
    r = emu.http.post("/_emulator/faults", json={"kind": "reset_everything"})
    assert r.status_code == 400, r.text


# -- malformed and cut-off uploads ------------------------------------------------------------


def assert_rc_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = r.json()
    assert body["errorCode"] == code, body
    assert body["errors"][0]["errorCode"] == code
    return body


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_truncated_fax_multipart_is_a_400(emu: EmulatorProc, rest: httpx.Client,
                                          fraction: float) -> None:
    headers, body = fax_request()
    before = len(emu.sent())
    r = rest.post(FAX, content=body[:int(len(body) * fraction)], headers=headers)
    assert_rc_error(r, 400, "MSG-349")
    [item] = emu.sent()[before:]
    assert item["status"] == 400 and item["result_id"] is None
    no_server_errors(emu)


def test_truncated_mms_multipart_is_a_400(emu: EmulatorProc, rest: httpx.Client,
                                          senders: dict[str, str]) -> None:
    envelope = {"from": {"phoneNumber": senders["MmsSender"]},
                "to": [{"phoneNumber": "+14155550124"}], "text": "h\u00e9llo \u20ac"}
    headers, body = raw_multipart([
        ({"Content-Type": "application/json"}, json.dumps(envelope, ensure_ascii=False).encode()),
        ({"Content-Type": "image/png", "Content-Disposition": 'attachment; filename="p.png"'},
         media.png(16, 8, 2)),
    ])
    for cut in (len(body) // 3, len(body) - 5):
        assert_rc_error(rest.post(SMS, content=body[:cut], headers=headers), 400, "CMN-104")
    no_server_errors(emu)


def test_undecodable_form_field_is_a_400_not_a_500(emu: EmulatorProc, rest: httpx.Client) -> None:
    """A text field cut inside a UTF-8 sequence (or simply not UTF-8) fails validation."""
    headers, body = raw_multipart([
        ({"Content-Disposition": 'form-data; name="to"'}, b"+1877488\xe2\x82"),
        ({"Content-Type": "application/pdf",
          "Content-Disposition": 'form-data; name="attachment"; filename="a.pdf"'}, PDF),
    ], subtype="form-data")
    r = rest.post(FAX, content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert "errorCode" in r.json()
    headers, body = raw_multipart([
        ({"Content-Disposition": 'form-data; name="type"'}, b"Voice\xffmail"),
        ({"Content-Type": "audio/wav",
          "Content-Disposition": 'form-data; name="binary"; filename="a.wav"'},
         media.wav(0.2, 1)),
    ], subtype="form-data")
    r = rest.post(GREETING, params={"apply": "false"}, content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert "errorCode" in r.json()
    no_server_errors(emu)


@pytest.mark.parametrize("path,kind,code", [(FAX, "fax", "MSG-349"), (SMS, "sms", "CMN-104")])
def test_upload_cut_off_by_the_client_is_a_400(emu: EmulatorProc, rest: httpx.Client,
                                               path: str, kind: str, code: str) -> None:
    """A body shorter than its Content-Length (the client hung up mid-upload) is rejected
    like any unparseable envelope and recorded, instead of an unhandled ClientDisconnect."""
    headers, body = fax_request()
    before = len(emu.sent())
    seq = len(emu.requests())
    port = int(emu.info["platform_url"].rsplit(":", 1)[1])
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {rest.headers['authorization']}\r\n"
            f"Content-Type: {headers['Content-Type']}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + body[:len(body) // 2])
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
    deadline = time.monotonic() + 10
    while len(emu.sent()) == before and time.monotonic() < deadline:
        time.sleep(0.02)
    [item] = emu.sent()[before:]
    assert item["status"] == 400 and item["result_id"] is None
    assert item["kind"] == kind
    [entry] = [e for e in emu.requests(seq) if e["method"] == "POST"]
    assert entry["status"] == 400
    assert "ClientDisconnect" not in emu.log()
    no_server_errors(emu)
