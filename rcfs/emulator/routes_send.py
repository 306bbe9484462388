"""Sending: fax, SMS and MMS (docs/ringcentral.md §7, §8, §13 I1-I10, I12).

``POST …/extension/{id}/fax`` (Heavy, app scope Faxes) accepts the three documented
encodings: multipart/form-data with text fields + ``attachment`` file parts, form-data with
a JSON part + file parts, and multipart/mixed (JSON first, then ``attachment`` parts); plus
``application/json`` ``{"originalMessageId": …}`` to resend/forward an outbound fax.
``POST …/sms`` (JSON = SMS, multipart = MMS) and ``POST …/mms`` are Medium, scope SMS.

A send creates an Outbound message in the sender's mailbox (so it shows in message-store
and message-sync) and a clock-driven state machine on the emulator clock (``emu.at``);
every status change bumps ``lastModifiedTime``. Every request that reaches a handler —
accepted or rejected — is appended to ``store.sent`` (``GET /_emulator/sent``) with the
HTTP status, so tests can assert exactly what the server received.

Fax lifecycle: ``Queued`` until ``sendTime`` (if in the future), then each recipient in
turn takes ``pages × fax_seconds_per_page`` and ends ``Sent`` or ``SendingFailed`` with a
``faxErrorCode``; the message status aggregates them (any Queued ⇒ Queued, else any
SendingFailed ⇒ SendingFailed, else Sent). ``faxPageCount`` (cover page included) is
filled in when the first recipient finishes. A message deleted while Queued is cancelled
(its timers do nothing).

SMS/MMS lifecycle: ``Queued`` → ``Sent`` after ``sms_send_delay`` → ``Delivered`` (with
``smsDeliveryTime``) ``sms_deliver_delay`` later.

Defaults the real service takes from the user's settings: ``coverIndex`` 0 (no cover
page), ``faxResolution`` High. An outbound fax has no ``from`` (the service dials from the
extension's fax settings; a ``from`` field in the request is ignored, I6), as in spec46's
examples. Requests stopped by an injected ``status`` fault never
reach a handler and are not recorded as sent.

Deterministic failure triggers (test hooks; last four digits of a recipient number):

* fax ``…0000`` → ``SendingFailed`` / ``NoAnswer``; ``…9999`` → ``InvalidNumber``;
  ``…1111`` → ``LineBusy``; ``…2222`` → ``NoFaxMachine``.
* fax with more than 200 pages (cover included) → every recipient ``TooManyPages``; a
  document whose bytes contradict its declared type (e.g. ``application/pdf`` without a
  ``%PDF`` header) → ``RenderingFailed``. Both happen one page-time after the start.
* SMS/MMS ``…0000`` → ``DeliveryFailed`` with ``deliveryErrorCode`` ``SMS-CAR-411``;
  ``…4130`` → ``DeliveryFailed`` ``SMS-RC-413`` (recipient opted out); ``…9999`` →
  ``SendingFailed`` (``SMS-UP-410``) at send time.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from rcfs.emulator.core import Emulator, emulator_of, json_response, parse_date
from rcfs.emulator.errors import ApiError, invalid_param, missing_param, not_found, rc_error
from rcfs.emulator.media import sniff_content_type
from rcfs.emulator.message_render import render_message
from rcfs.emulator.send_lifecycle import schedule_fax, schedule_sms
from rcfs.emulator.send_requests import (
    COVER_TEXT_MAX,
    FAX_MAX_BYTES,
    FAX_MAX_PAGES,
    MAX_RECIPIENTS,
    MMS_MAX_ATTACHMENTS,
    MMS_MAX_BYTES,
    MMS_TYPES,
    SMS_TEXT_MAX,
    VALID_COVER_INDEXES,
    Envelope,
    SendAttempt,
    Upload,
    check_fax_type,
    check_files,
    count_pdf_pages,
    document_pages,
    effective_type,
    image_size,
    iso_code,
    json_object,
    media_type,
    normalize_number,
    read_body,
    read_envelope,
    recipients,
    short_digits,
    target_extension,
    unsupported,
    utf16_units,
)
from rcfs.emulator.store import Attachment, Blob, Extension, Message

# -- fax ----------------------------------------------------------------------------------

def _fax_options(fields: dict[str, Any], now: float) -> dict[str, Any]:
    """Validate the fax fields (JSON or form text, so strings are accepted everywhere)."""
    opts: dict[str, Any] = {}
    res = fields.get("faxResolution", "High")
    if res not in ("High", "Low"):
        raise invalid_param("faxResolution")
    opts["faxResolution"] = res
    cover = fields.get("coverIndex")
    if cover is None or cover == "":
        opts["coverIndex"] = 0
    else:
        try:
            opts["coverIndex"] = int(str(cover).strip())
        except ValueError:
            raise invalid_param("coverIndex") from None
        if opts["coverIndex"] not in VALID_COVER_INDEXES:
            raise invalid_param("coverIndex")
    text = fields.get("coverPageText")
    if text is not None:
        if not isinstance(text, str) or len(text) > COVER_TEXT_MAX:
            raise invalid_param("coverPageText")
        opts["coverPageText"] = text
    send_time = fields.get("sendTime")
    opts["start"] = now
    if send_time not in (None, ""):
        if not isinstance(send_time, str):
            raise invalid_param("sendTime")
        opts["start"] = max(now, parse_date(send_time, "sendTime"))
    opts["isoCode"] = iso_code(fields)
    return opts


def _fax_recipients(fields: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for rcpt in recipients(fields.get("to"), "fax"):
        raw = rcpt["phoneNumber"]
        if short_digits(raw) is not None:
            raise rc_error(400, "MSG-344", "Sending fax to extension numbers is not available",
                           parameterName="to.phoneNumber")
        number = normalize_number(raw)
        if number is None:
            raise invalid_param("to.phoneNumber")
        entry = {"phoneNumber": number, "messageStatus": "Queued"}
        if "name" in rcpt:
            entry["name"] = rcpt["name"]
        out.append(entry)
    return out


def _store_fax(emu: Emulator, ext: Extension, to: list[dict[str, Any]], opts: dict[str, Any],
               rendered: Blob | None, pages: int, render_error: str | None) -> Message:
    now = emu.clock.now()
    mid = emu.store.new_id()
    if rendered is None:
        rendered = Blob("application/pdf", kind="pdf",
                        params=(max(1, min(pages, FAX_MAX_PAGES)), mid, "Fax"))
    att = Attachment(mid, "RenderedDocument", rendered,
                     report_size="RenderedDocument" not in emu.config.omit_size_types)
    msg = Message(
        mid, ext.id, "Fax", "Outbound", now, {}, to, [att],
        message_status="Queued", read_status="Unread", fax_page_count=0,
        fax_resolution=opts["faxResolution"], cover_index=opts["coverIndex"],
        cover_page_text=opts.get("coverPageText"),
        visible_at=now + emu.config.message_store_lag,
    )
    emu.store.add_message(msg)
    if pages > FAX_MAX_PAGES and render_error is None:
        render_error = "TooManyPages"
    schedule_fax(emu, mid, opts["start"], pages, render_error)
    return msg


async def send_fax(request: Request) -> Response:
    emu = emulator_of(request)
    attempt = SendAttempt(emu, "fax")
    try:
        response = await _send_fax(request, emu, attempt)
    except ApiError as exc:
        attempt.record(exc.status)
        raise
    attempt.record(response.status_code)
    return response


async def _send_fax(request: Request, emu: Emulator, attempt: SendAttempt) -> Response:
    caller = emu.api_call(request, "Heavy", scope="Faxes")
    attempt.extension_id = caller.extension.id
    ext = target_extension(emu, caller, request, "OutboundFaxes")
    attempt.extension_id = ext.id
    media = media_type(request)
    body = await read_body(request, "fax")
    now = emu.clock.now()
    if media == "application/json":
        attempt.envelope = Envelope(json_object(body, "fax"), encoding=media)
        return _resend_fax(emu, ext, attempt)
    if media == "application/x-www-form-urlencoded":
        # Text fields without any file: parsed so that the answer names what is missing.
        env = attempt.envelope = Envelope(encoding=media)
        for key, value in urllib.parse.parse_qsl(body.decode("utf-8", "replace")):
            if key == "to":
                env.fields.setdefault("to", []).append({"phoneNumber": value})
            else:
                env.fields.setdefault(key, value)
    elif not media.startswith("multipart/"):
        raise rc_error(415, "CMN-415", f"Unsupported Media Type [{media or 'none'}]")
    else:
        env = attempt.envelope = read_envelope(request.headers["content-type"], body,
                                               "fax")
    fields = env.fields
    fields["to"] = to_raw = recipients(fields.get("to"), "fax")
    to = _fax_recipients({"to": to_raw})
    opts = _fax_options(fields, now)
    if not env.uploads:
        raise missing_param("attachment")
    check_files(env.uploads)
    for up in env.uploads:
        check_fax_type(up)
    if sum(len(u.data) for u in env.uploads) > FAX_MAX_BYTES:
        raise rc_error(400, "MSG-338", "Message size limit exceeded: attachments total more "
                       f"than {FAX_MAX_BYTES // (1024 * 1024)} MB")
    pages = 1 if opts["coverIndex"] else 0
    render_error: str | None = None
    for up in env.uploads:
        n, ok = document_pages(up)
        pages += n
        if not ok:
            render_error = "RenderingFailed"
    rendered: Blob | None = None
    if (len(env.uploads) == 1 and not opts["coverIndex"]
            and sniff_content_type(env.uploads[0].data) == "application/pdf"):
        rendered = Blob("application/pdf", data=env.uploads[0].data)
    msg = _store_fax(emu, ext, to, opts, rendered, pages, render_error)
    attempt.result_id = str(msg.id)
    return json_response(_fax_body(emu, msg))


def _resend_fax(emu: Emulator, ext: Extension, attempt: SendAttempt) -> Response:
    """``{"originalMessageId", "to"?, "sendTime"?}``: send an earlier outbound fax again."""
    fields = attempt.envelope.fields
    raw_id = fields.get("originalMessageId")
    if raw_id in (None, ""):
        raise missing_param("attachment")
    try:
        orig = emu.store.messages.get(int(str(raw_id)))
    except ValueError:
        orig = None
    if (orig is None or orig.extension_id != ext.id or orig.type != "Fax"
            or orig.availability == "Purged" or orig.gone):
        raise not_found("originalMessageId")
    if orig.direction != "Outbound" or orig.message_status == "Queued":
        raise rc_error(406, "MSG-343", "Fax resending is not allowed in the current state")
    if fields.get("to") in (None, [], ""):
        fields["to"] = [{k: v for k, v in r.items() if k in ("phoneNumber", "name")}
                        for r in orig.to]
    fields["to"] = recipients(fields.get("to"), "fax")
    to = _fax_recipients({"to": fields["to"]})
    opts = _fax_options({"faxResolution": orig.fax_resolution or "High",
                         "sendTime": fields.get("sendTime")}, emu.clock.now())
    opts["coverIndex"] = orig.cover_index or 0
    if orig.cover_page_text is not None:
        opts["coverPageText"] = orig.cover_page_text
    blob = orig.attachments[0].blob
    pages = orig.fax_page_count or count_pdf_pages(blob.bytes())
    msg = _store_fax(emu, ext, to, opts, blob, pages, None)
    attempt.result_id = str(msg.id)
    return json_response(_fax_body(emu, msg))


# Fields of the create responses (spec46 createFaxMessage / createSMSMessage schemas): the
# message as message-store renders it, minus what those operations do not return.
FAX_RESPONSE_KEYS = frozenset({
    "id", "uri", "type", "from", "to", "creationTime", "readStatus", "priority",
    "attachments", "direction", "availability", "messageStatus", "faxResolution",
    "faxPageCount", "lastModifiedTime", "coverIndex", "coverPageText",
})
SMS_RESPONSE_KEYS = frozenset({
    "id", "uri", "attachments", "availability", "conversationId", "conversation",
    "creationTime", "deliveryErrorCode", "direction", "from", "lastModifiedTime",
    "messageStatus", "priority", "readStatus", "smsDeliveryTime", "smsSendingAttemptsCount",
    "subject", "to", "type",
})


def _fax_body(emu: Emulator, msg: Message) -> dict[str, Any]:
    """The fax create response; its attachments spell the name ``filename`` (spec46)."""
    data = {k: v for k, v in render_message(emu, msg).items() if k in FAX_RESPONSE_KEYS}
    for att in data.get("attachments", []):
        if "fileName" in att:
            att["filename"] = att.pop("fileName")
    return data


def _sms_body(emu: Emulator, msg: Message) -> dict[str, Any]:
    return {k: v for k, v in render_message(emu, msg).items() if k in SMS_RESPONSE_KEYS}


# -- SMS / MMS ----------------------------------------------------------------------------

def conversation_id(account_id: int, numbers: list[str]) -> int:
    """A stable 63-bit id above 2^53 for a set of participants (E9: not a safe JS int)."""
    key = f"{account_id}:" + ",".join(sorted(set(numbers)))
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return (1 << 60) + h % ((1 << 63) - (1 << 60))


def _sms_sender(ext: Extension, fields: dict[str, Any], mms: bool) -> str:
    raw = fields.get("from")
    if raw is None or raw == "" or raw == {}:
        raise missing_param("from")
    number_text: str
    if isinstance(raw, str):
        number_text = raw
    elif isinstance(raw, dict) and isinstance(raw.get("phoneNumber"), str):
        number_text = str(raw["phoneNumber"])
    else:
        raise missing_param("from")
    number = normalize_number(number_text)
    owned = next((n for n in ext.phone_numbers
                  if number is not None and n.phone_number == number), None)
    if owned is None:
        shown = re.sub(r"\D", "", number_text) or number_text
        raise rc_error(400, "MSG-245", f"Parameter [from] value [{shown}] is invalid [Cannot "
                       "find the phone number which belongs to user]", parameterName="from")
    if owned.type == "FaxOnly":
        raise rc_error(403, "MSG-241", "Cannot send SMS from Fax number")
    if "SmsSender" not in owned.features:
        raise rc_error(403, "MSG-367", '"from" phone number does not support SMS')
    if mms and "MmsSender" not in owned.features:
        raise rc_error(403, "MSG-380", "The MMS feature is not available")
    return owned.phone_number


def _sms_recipients(fields: dict[str, Any]) -> list[dict[str, Any]]:
    rcpts = recipients(fields.get("to"), "sms")
    if len(rcpts) > MAX_RECIPIENTS:
        raise rc_error(400, "MSG-381", "Exceeded maximum number of recipients for a Group MMS: "
                       f"[{MAX_RECIPIENTS}]")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for rcpt in rcpts:
        raw = rcpt["phoneNumber"]
        short = short_digits(raw)
        if short is not None:
            if len(short) <= 4:
                raise rc_error(400, "MSG-246",
                               "Sending SMS from/to extension numbers is not available")
            raise rc_error(400, "MSG-247", "Sending SMS to short numbers is not available")
        number = normalize_number(raw)
        if number is None:
            raise invalid_param("to")
        if number in seen:
            raise rc_error(400, "CMN-406",
                           f"Duplicate value for parameter to: {number} found in request",
                           parameterName="to")
        seen.add(number)
        out.append({"phoneNumber": number})
    return out


def _mms_parts(uploads: list[Upload]) -> list[tuple[Upload, str]]:
    """Validate MMS attachments (count, empties, types, size); their stored media types."""
    check_files(uploads)
    if len(uploads) > MMS_MAX_ATTACHMENTS:
        raise rc_error(400, "MSG-338", "Too many attachments: maximum "
                       f"[{MMS_MAX_ATTACHMENTS}] per message")
    typed: list[tuple[Upload, str]] = []
    for up in uploads:
        effective, _ = effective_type(up)
        if effective is None or effective not in MMS_TYPES:
            raise unsupported(up)
        typed.append((up, effective))
    if sum(len(u.data) for u in uploads) > MMS_MAX_BYTES:
        raise rc_error(400, "MSG-337", f"Attachments size limit exceeded [{MMS_MAX_BYTES}] "
                       "bytes")
    return typed


async def send_sms(request: Request) -> Response:
    return await _sms_entry(request, alias_mms=False)


async def send_mms(request: Request) -> Response:
    return await _sms_entry(request, alias_mms=True)


async def _sms_entry(request: Request, alias_mms: bool) -> Response:
    emu = emulator_of(request)
    attempt = SendAttempt(emu, "mms" if alias_mms else "sms")
    try:
        response = await _send_sms(request, emu, attempt, alias_mms)
    except ApiError as exc:
        attempt.record(exc.status)
        raise
    attempt.record(response.status_code)
    return response


async def _send_sms(request: Request, emu: Emulator, attempt: SendAttempt,
                    alias_mms: bool) -> Response:
    caller = emu.api_call(request, "Medium", scope="SMS")
    attempt.extension_id = caller.extension.id
    ext = target_extension(emu, caller, request, "OutboundSMS")
    attempt.extension_id = ext.id
    media = media_type(request)
    body = await read_body(request, "sms")
    if media == "application/json":
        attempt.envelope = Envelope(json_object(body, "sms"), encoding=media)
    elif media.startswith("multipart/"):
        attempt.envelope = read_envelope(request.headers["content-type"], body, "sms")
    else:
        raise rc_error(415, "CMN-415", f"Unsupported Media Type [{media or 'none'}]")
    env = attempt.envelope
    fields = env.fields
    mms = alias_mms or bool(env.uploads)
    attempt.kind = "mms" if mms else "sms"
    if alias_mms and not env.uploads:
        raise missing_param("attachments")
    if "to" in fields and isinstance(fields["to"], (list, str, dict)):
        fields["to"] = recipients(fields["to"], "sms")
    to = _sms_recipients(fields)
    iso_code(fields)  # validated (MSG-365, CMN-101); no international routing is emulated
    text = fields.get("text")
    if text is None:
        if not mms:
            raise missing_param("text")
        text = ""
    if not isinstance(text, str):
        raise invalid_param("text")
    if not mms and not text:
        raise invalid_param("text")
    if utf16_units(text) > SMS_TEXT_MAX:
        raise invalid_param("text")
    sender = _sms_sender(ext, fields, mms)
    typed = _mms_parts(env.uploads) if mms else []

    now = emu.clock.now()
    mid = emu.store.new_id()
    omit = emu.config.omit_size_types
    attachments: list[Attachment] = []
    if text or not mms:
        attachments.append(Attachment(mid, "Text", Blob("text/plain", data=text.encode()),
                                      report_size="Text" not in omit))
    for up, ctype in typed:
        size = image_size(up.data) if ctype.startswith("image/") else None
        attachments.append(Attachment(
            emu.store.new_id() if attachments else mid, "MmsAttachment",
            Blob(ctype, data=up.data), file_name=up.filename,
            width=size[0] if size else None, height=size[1] if size else None,
            report_size=True,
        ))
    conv = conversation_id(emu.store.account_id, [sender] + [r["phoneNumber"] for r in to])
    msg = Message(
        mid, ext.id, "SMS", "Outbound", now,
        {"phoneNumber": sender, "name": ext.name}, to, attachments,
        subject=text or None, message_status="Queued", read_status="Unread",
        conversation_id=conv, sms_sending_attempts=1,
        visible_at=now + emu.config.message_store_lag,
    )
    emu.store.add_message(msg)
    schedule_sms(emu, mid, now)
    attempt.result_id = str(mid)
    return json_response(_sms_body(emu, msg))


def routes() -> list[BaseRoute]:
    base = "/restapi/v1.0/account/{accountId}/extension/{extensionId}"
    return [
        Route(base + "/fax", send_fax, methods=["POST"]),
        Route(base + "/sms", send_sms, methods=["POST"]),
        Route(base + "/mms", send_mms, methods=["POST"]),
    ]
