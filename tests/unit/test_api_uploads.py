"""rcfs.api.uploads against a scripted fake server: the multipart shape of fax, SMS, MMS and
greeting uploads, validation before any request, and which message statuses are final.
"""

from __future__ import annotations

import email.parser
import email.policy
import json

import httpx
import pytest

from rcfs.api.models import Message, parse_message
from rcfs.api.scheduler import Priority
from rcfs.api.uploads import (
    FaxRecipient,
    SendValidationError,
    UploadFile,
    is_final,
    send_fax,
    send_mms,
    send_sms,
    upload_greeting,
)
from tests.api_fakes import BASE, FakeClient, query

# -- uploads ---------------------------------------------------------------------------------


def multipart_parts(request: httpx.Request) -> list[tuple[str | None, str | None, str, bytes]]:
    """(name, filename, content type, body) of each part of a multipart/form-data body."""
    raw = (b"Content-Type: " + request.headers["content-type"].encode() + b"\r\n\r\n"
           + request.content)
    message = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
    out = []
    for part in message.iter_parts():
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        name = part.get_param("name", header="content-disposition")
        out.append((name if isinstance(name, str) else None, part.get_filename(),
                    part.get_content_type(), payload))
    return out


class SendServer:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        path = request.url.path
        if path.endswith("/fax"):
            return httpx.Response(200, json={
                "id": 1277646004, "type": "Fax", "direction": "Outbound",
                "messageStatus": "Queued", "creationTime": "2020-01-01T00:00:00Z",
                "to": [{"phoneNumber": "+18774880001", "messageStatus": "Queued"}],
                "attachments": [{"id": 1, "uri": f"{BASE}/message-store/1/content/1",
                                 "type": "RenderedDocument", "contentType": "application/pdf",
                                 "filename": "doc.pdf"}]})
        if path.endswith("/sms"):
            return httpx.Response(200, json={
                "id": 55, "type": "SMS", "direction": "Outbound", "messageStatus": "Queued",
                "creationTime": "2020-01-01T00:00:00Z",
                "conversationId": 8031152018338945839})
        if path.endswith("/greeting"):
            return httpx.Response(200, json={"id": "751564020", "type": "Voicemail",
                                             "contentType": "audio/wav",
                                             "contentUri": "https://media/g/content"})
        raise AssertionError(path)


async def test_send_fax_multipart_shape() -> None:
    server = SendServer()
    client = FakeClient(server)
    m = await send_fax(client, [FaxRecipient("+18774880001", "John Smith"), "+18774880002"],
                       [UploadFile("doc & co.pdf", b"%PDF-1.4 ...", "application/pdf"),
                        UploadFile("notes.txt", b"hello", "text/plain")],
                       resolution="High", cover_index=0, cover_page_text="Hi",
                       send_time="2030-01-01T00:00:00Z")
    assert m.id == "1277646004" and m.message_status == "Queued"
    assert m.attachments[0].file_name == "doc.pdf"
    request = server.requests[0]
    assert request.method == "POST"
    assert request.url.path == "/restapi/v1.0/account/~/extension/~/fax"
    assert request.headers["content-type"].startswith("multipart/form-data")
    parts = multipart_parts(request)
    name, filename, ctype, body = parts[0]
    assert (name, filename, ctype) == ("json", "request.json", "application/json")
    assert json.loads(body) == {
        "to": [{"phoneNumber": "+18774880001", "name": "John Smith"},
               {"phoneNumber": "+18774880002"}],
        "faxResolution": "High", "coverIndex": 0, "coverPageText": "Hi",
        "sendTime": "2030-01-01T00:00:00Z"}
    assert parts[1] == ("attachment", "doc _ co.pdf", "application/pdf", b"%PDF-1.4 ...")
    assert parts[2] == ("attachment", "notes.txt", "text/plain", b"hello")
    assert client.calls[0]["priority"] == Priority.METADATA


async def test_send_validation_happens_before_any_request() -> None:
    server = SendServer()
    client = FakeClient(server)
    pdf = UploadFile("a.pdf", b"x", "application/pdf")
    with pytest.raises(SendValidationError):
        await send_fax(client, [], [pdf])
    with pytest.raises(SendValidationError):
        await send_fax(client, "+1", [])
    with pytest.raises(SendValidationError):
        await send_fax(client, "+1", [UploadFile("e.pdf", b"", "application/pdf")])
    with pytest.raises(SendValidationError):
        await send_fax(client, "+1", [pdf], cover_page_text="x" * 1025)
    with pytest.raises(SendValidationError):
        await send_sms(client, "+1", "+2", "😀" * 501)  # 1002 UTF-16 units
    with pytest.raises(SendValidationError):
        await send_sms(client, "", "+2", "hi")
    with pytest.raises(SendValidationError):
        await send_sms(client, "+1", [f"+{i}" for i in range(11)], "hi")
    with pytest.raises(SendValidationError):
        await send_mms(client, "+1", "+2", [pdf] * 11)
    with pytest.raises(SendValidationError):
        await send_mms(client, "+1", "+2", [UploadFile("big.png", b"x" * 1_500_001,
                                                       "image/png")])
    with pytest.raises(SendValidationError):
        await upload_greeting(client, "Voicemail", UploadFile("g.mp4", b"x", "video/mp4"))
    with pytest.raises(SendValidationError):
        await upload_greeting(client, "Voicemail", UploadFile("g.wav", b"x", "audio/wav"),
                              apply=True)
    with pytest.raises(SendValidationError):
        await upload_greeting(client, "Shouting", UploadFile("g.wav", b"x", "audio/wav"))
    assert server.requests == []


async def test_send_sms_and_mms() -> None:
    server = SendServer()
    client = FakeClient(server)
    m = await send_sms(client, "+16505550100", "+14155550100", "héllo 😀")
    assert m.conversation_id == 8031152018338945839
    assert json.loads(server.requests[0].content) == {
        "from": {"phoneNumber": "+16505550100"}, "to": [{"phoneNumber": "+14155550100"}],
        "text": "héllo 😀"}
    await send_mms(client, "+16505550100", ["+14155550100"],
                   [UploadFile("cat.png", b"\x89PNG...", "image/png")], text="look")
    parts = multipart_parts(server.requests[1])
    assert server.requests[1].url.path.endswith("/sms")
    assert json.loads(parts[0][3]) == {"from": {"phoneNumber": "+16505550100"},
                                       "to": [{"phoneNumber": "+14155550100"}],
                                       "text": "look"}
    assert parts[1] == ("attachment", "cat.png", "image/png", b"\x89PNG...")


async def test_upload_greeting_shape() -> None:
    server = SendServer()
    g = await upload_greeting(FakeClient(server), "Voicemail",
                              UploadFile("hello.wav", b"RIFF....WAVE", "audio/wav"),
                              answering_rule_id="business-hours-rule")
    assert g.id == "751564020" and g.content_uri == "https://media/g/content"
    request = server.requests[0]
    assert query(request) == {"apply": ["false"]}
    parts = multipart_parts(request)
    fields = {p[0]: p for p in parts}
    assert fields["type"][3] == b"Voicemail"
    assert fields["answeringRuleId"][3] == b"business-hours-rule"
    assert fields["binary"][1:] == ("hello.wav", "audio/wav", b"RIFF....WAVE")


def test_is_final() -> None:
    def m(type_: str, status: str, availability: str = "Alive") -> Message:
        return parse_message({"id": 1, "creationTime": "2020-01-01T00:00:00Z",
                              "type": type_, "messageStatus": status,
                              "availability": availability})

    assert is_final(m("Fax", "Sent")) and is_final(m("Fax", "SendingFailed"))
    assert not is_final(m("Fax", "Queued"))
    assert not is_final(m("SMS", "Sent")) and is_final(m("SMS", "Sent"), sent_is_final=True)
    assert is_final(m("SMS", "Delivered")) and is_final(m("SMS", "DeliveryFailed"))
    assert is_final(m("SMS", "SendingFailed")) and not is_final(m("SMS", "Queued"))
    assert is_final(m("Fax", "Queued", "Deleted"))
