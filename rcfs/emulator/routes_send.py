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
import io
import json
import math
import mimetypes
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from rcfs.emulator.core import Caller, Emulator, emulator_of, json_response, parse_date
from rcfs.emulator.errors import ApiError, invalid_param, missing_param, not_found, rc_error
from rcfs.emulator.media import sniff_content_type
from rcfs.emulator.multipart import MultipartError, Part, parse_header, parse_multipart
from rcfs.emulator.routes_messages import render_message
from rcfs.emulator.store import Attachment, Blob, Extension, Message, SentItem

# -- limits (docs/ringcentral.md §7) ------------------------------------------------------

FAX_MAX_BYTES = 50 * 1024 * 1024
FAX_MAX_PAGES = 200
COVER_TEXT_MAX = 1024
SMS_TEXT_MAX = 1000  # UTF-16 code units
MAX_RECIPIENTS = 10
MMS_MAX_ATTACHMENTS = 10
MMS_MAX_BYTES = 1_500_000
FILENAME_MAX = 256

# Fax source formats by file extension (docs/ringcentral.md §7.1) and the media types they
# travel as.
FAX_EXTENSIONS = frozenset({
    "pdf", "psd", "doc", "docx", "dot", "mcw", "xls", "xlsx", "xlsb", "ppt", "pptx", "vsd",
    "vdx", "pub", "wps", "wri", "awd", "tif", "tiff", "gif", "jpg", "jpeg", "bmp", "png", "pcx",
    "tga", "rtf", "txt", "log", "h", "cpp", "c", "err", "hpp", "wk1", "wk3", "wk4", "wq1", "xml",
    "html", "htm", "csv",
})
FAX_TYPES = frozenset({
    "application/pdf", "image/vnd.adobe.photoshop", "application/x-photoshop",
    "application/photoshop", "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.template",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.ms-excel.sheet.binary.macroenabled.12", "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.visio", "application/vnd.ms-visio.viewer", "application/x-visio",
    "application/vnd.ms-publisher", "application/x-mspublisher", "application/vnd.ms-works",
    "application/x-mswrite", "application/x-ole-storage", "image/tiff", "image/tif",
    "image/gif", "image/jpeg", "image/jpg", "image/pjpeg", "image/bmp", "image/x-bmp",
    "image/x-ms-bmp", "image/png", "image/x-pcx", "image/vnd.zbrush.pcx", "image/x-tga",
    "image/x-targa", "application/rtf", "text/rtf", "text/plain", "text/x-log", "text/x-c",
    "text/x-c++", "text/x-csrc", "text/x-chdr", "text/x-c++src", "text/x-c++hdr",
    "application/xml", "text/xml", "text/html", "application/xhtml+xml", "text/csv",
    "application/vnd.lotus-1-2-3", "application/x-quattro-pro",
})
# MMS upload types (docs/ringcentral.md §8, docs:sending-images.md) plus common spellings of them.
MMS_TYPES = frozenset({
    "image/jpeg", "image/jpg", "image/pjpeg", "image/png", "image/bmp", "image/x-ms-bmp",
    "image/gif", "image/tiff", "image/svg+xml", "image/webp",
    "video/3gpp", "video/mp4", "video/mpeg", "video/avi", "video/x-msvideo", "video/x-flv",
    "video/x-ms-wmv", "video/quicktime", "video/webm", "video/ogg",
    "audio/mpeg", "audio/mp3", "audio/mp4", "audio/ogg", "audio/wav", "audio/x-wav",
    "audio/wave", "audio/amr", "audio/3gpp",
    "text/vcard", "text/x-vcard", "application/zip", "application/gzip", "application/x-gzip",
    "application/rtf", "text/rtf", "application/pdf", "text/html", "text/plain", "text/csv",
    "text/calendar",
})
GENERIC_TYPES = frozenset({
    "application/octet-stream", "binary/octet-stream", "application/binary",
    "application/x-binary", "application/unknown", "application/force-download",
})
FILE_FIELD_NAMES = ("attachment", "attachments")
VALID_COVER_INDEXES = frozenset(range(14)) | frozenset(range(15, 29))

FAX_FAILURES = {"0000": "NoAnswer", "9999": "InvalidNumber", "1111": "LineBusy",
                "2222": "NoFaxMachine"}
SMS_DELIVERY_FAILURES = {"0000": "SMS-CAR-411", "4130": "SMS-RC-413"}
SMS_SENDING_FAILURE = "9999"


# -- request model ------------------------------------------------------------------------

@dataclass
class Upload:
    """One file part of a send request (``index`` counts from 1, as error messages do)."""

    index: int
    filename: str
    declared: str | None
    data: bytes

    @property
    def extension(self) -> str:
        _, dot, ext = self.filename.rpartition(".")
        return ext.lower() if dot else ""

    def record(self) -> dict[str, Any]:
        return {"filename": self.filename, "content_type": self.declared,
                "size": len(self.data), "sha256": hashlib.sha256(self.data).hexdigest()}


@dataclass
class Envelope:
    """What a send request asked for: JSON/text fields plus file parts."""

    fields: dict[str, Any] = field(default_factory=dict)
    uploads: list[Upload] = field(default_factory=list)
    encoding: str = ""


class SendAttempt:
    """Collects what to record in ``store.sent`` whatever the outcome of the request."""

    def __init__(self, emu: Emulator, kind: str) -> None:
        self.emu = emu
        self.kind = kind
        self.extension_id = 0
        self.envelope = Envelope()
        self.result_id: str | None = None

    def record(self, status: int) -> None:
        request = dict(self.envelope.fields)
        if self.envelope.encoding:
            request["_encoding"] = self.envelope.encoding
        self.emu.store.sent.append(SentItem(
            kind=self.kind, extension_id=self.extension_id, time=self.emu.clock.now(),
            request=request, attachments=[u.record() for u in self.envelope.uploads],
            result_id=self.result_id, status=status,
        ))


# -- helpers ------------------------------------------------------------------------------

def _media_type(request: Request) -> str:
    media, _ = parse_header(request.headers.get("content-type", ""))
    return media


def _target_extension(emu: Emulator, caller: Caller, request: Request,
                      permission: str) -> Extension:
    """Resolve the path's account/extension; another user's mailbox is CMN-419."""
    p = request.path_params
    try:
        return emu.extension(caller, p["accountId"], p["extensionId"])
    except ApiError as exc:
        if exc.body.get("errorCode") == "CMN-419":
            raise rc_error(
                403, "CMN-419",
                "In order to call this API endpoint for another extension, user needs to "
                f"have [{permission}] permission granted with extended scope",
            ) from None
        raise


_PHONE_JUNK = re.compile(r"[\s\-().]")


def normalize_number(raw: str) -> str | None:
    """An E.164-like number (``+`` and 7-15 digits; formatting stripped), or None.

    Ten bare digits are taken as a North American number (+1…), other bare digit strings
    as already carrying their country code.
    """
    text = _PHONE_JUNK.sub("", raw.strip())
    plus = text.startswith("+")
    digits = text[1:] if plus else text
    if not digits.isdigit() or not 7 <= len(digits) <= 15 or digits.startswith("0"):
        return None
    if plus:
        return "+" + digits
    if len(digits) == 10:
        return "+1" + digits
    return "+" + digits


def _short_digits(raw: str) -> str | None:
    """The digits of an extension or short-code style number (2-6 digits, no ``+``)."""
    text = _PHONE_JUNK.sub("", raw.strip())
    if text.isdigit() and 2 <= len(text) <= 6:
        return text
    return None


def utf16_units(text: str) -> int:
    """Length in UTF-16 code units: astral characters count twice (docs/ringcentral.md §7.2)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _bad_json(kind: str) -> ApiError:
    if kind == "fax":
        return rc_error(400, "MSG-349", "Unable to parse fax envelope: invalid JSON")
    return rc_error(400, "CMN-103", "JSON can't be parsed")


def _json_object(data: bytes, kind: str) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _bad_json(kind) from None
    if not isinstance(value, dict):
        raise _bad_json(kind)
    return value


async def _read_body(request: Request, kind: str) -> bytes:
    """The request body; a client that disconnects mid-upload (a cut-off body shorter than
    its Content-Length) gets the same 400 as any other unparseable envelope, recorded in
    ``store.sent``, instead of an unhandled ``ClientDisconnect`` (a 500 with a traceback).
    """
    try:
        return await request.body()
    except ClientDisconnect:
        message = "request body is truncated (client disconnected during the upload)"
        if kind == "fax":
            raise rc_error(400, "MSG-349", f"Unable to parse fax envelope: {message}") from None
        raise rc_error(400, "CMN-104", f"Cannot parse request: {message}") from None


def _is_envelope(part: Part, index: int) -> bool:
    """The JSON part: ``application/json`` (any name), unless it is clearly a named file."""
    if part.content_type != "application/json":
        return False
    return (index == 0 or part.filename is None or part.name in ("json", "request", "body")
            or part.filename == "request.json")


def read_envelope(content_type: str, body: bytes, kind: str) -> Envelope:
    """Split a multipart send request into fields and uploads (MSG-349/350/351 checks)."""
    media, _ = parse_header(content_type)
    try:
        parts = parse_multipart(content_type, body)
    except MultipartError as exc:
        if kind == "fax":
            raise rc_error(400, "MSG-349", f"Unable to parse fax envelope: {exc}") from None
        raise rc_error(400, "CMN-104", f"Cannot parse request: {exc}") from None
    env = Envelope(encoding=media)
    json_seen = False
    text_fields: dict[str, Any] = {}
    file_parts: list[Part] = []
    for i, part in enumerate(parts):
        if not json_seen and _is_envelope(part, i):
            env.fields = _json_object(part.data, kind)
            json_seen = True
            env.encoding = media + "+json"
            continue
        if media == "multipart/form-data" and part.filename is None and (
                part.name is not None and part.name not in FILE_FIELD_NAMES):
            # A plain form field (``to`` may repeat); unknown names such as ``from`` are
            # accepted and ignored like the real service does.
            value = part.text()
            if part.name == "to":
                text_fields.setdefault("to", []).append(value.strip())
            else:
                text_fields[part.name] = value
            continue
        file_parts.append(part)
    for key, value in text_fields.items():
        if key == "to":
            env.fields.setdefault("to", [{"phoneNumber": v} for v in value])
        else:
            env.fields.setdefault(key, value)
    for n, part in enumerate(file_parts, start=1):
        env.uploads.append(Upload(n, part.filename or "", part.content_type, part.data))
    # Structural errors come after the envelope so that the recorded item lists the files.
    for n, part in enumerate(file_parts, start=1):
        if part.disposition is None:
            raise rc_error(400, "MSG-350",
                           f"Content-Disposition header is not specified, attachment [{n}]")
        if not part.filename:
            raise rc_error(
                400, "MSG-351",
                f"File name is not specified in Content-Disposition header, attachment [{n}]",
            )
    return env


def _recipients(raw: Any, kind: str) -> list[dict[str, Any]]:
    """``to`` as a list of ``{"phoneNumber", "name"?}`` (strings accepted too)."""
    if raw is None or raw == [] or raw == "":
        raise missing_param("to")
    items = raw if isinstance(raw, list) else [raw]
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, str):
            out.append({"phoneNumber": item})
        elif isinstance(item, dict) and isinstance(item.get("phoneNumber"), str):
            entry: dict[str, Any] = {"phoneNumber": item["phoneNumber"]}
            if isinstance(item.get("name"), str):
                entry["name"] = item["name"]
            out.append(entry)
        else:
            raise invalid_param("to.phoneNumber" if kind == "fax" else "to")
    return out


def _iso_code(fields: dict[str, Any]) -> str | None:
    country = fields.get("country")
    if country is not None and not isinstance(country, dict):
        raise invalid_param("country")
    if isinstance(country, dict) and country.get("id") is not None \
            and country.get("isoCode") is not None:
        raise rc_error(400, "MSG-365", "Parameters [country.id] and [country.isoCode] can not "
                       "be specified simultaneously")
    code = fields.get("isoCode")
    if code is None and isinstance(country, dict):
        code = country.get("isoCode")
        if code is not None and not (isinstance(code, str) and re.fullmatch(r"[A-Za-z]{2}",
                                                                          code)):
            raise invalid_param("country.isoCode")
    if code is None:
        return None
    if not isinstance(code, str) or not re.fullmatch(r"[A-Za-z]{2}", code.strip()):
        raise invalid_param("isoCode")
    return code.strip().upper()


def _effective_type(upload: Upload) -> tuple[str | None, str | None]:
    """(declared-or-sniffed media type, sniffed type) of an upload."""
    sniffed = sniff_content_type(upload.data)
    declared = upload.declared
    if declared is None or declared in GENERIC_TYPES:
        guessed = mimetypes.guess_type("x." + upload.extension)[0] if upload.extension else None
        return sniffed or guessed, sniffed
    return declared, sniffed


def _unsupported(upload: Upload) -> ApiError:
    shown = "." + upload.extension if upload.extension else (upload.declared or "")
    return rc_error(415, "MSG-348", "Unsupported attachment media type, attachment "
                    f"[{upload.index}]: [{shown}]")


def _check_fax_type(upload: Upload) -> None:
    """415 MSG-348 unless the part is one of the fax document formats (§7.1)."""
    declared = upload.declared
    sniffed = sniff_content_type(upload.data)
    ext = upload.extension
    if declared is not None and declared not in GENERIC_TYPES:
        if declared in FAX_TYPES or (declared.startswith("text/") and ext in FAX_EXTENSIONS):
            return
        raise _unsupported(upload)
    if ext in FAX_EXTENSIONS:
        if sniffed is not None and sniffed.startswith(("audio/", "video/")):
            raise _unsupported(upload)
        return
    if sniffed in FAX_TYPES:
        return
    if declared is None and not ext and sniffed is None:
        raise rc_error(415, "MSG-353", "No file extension or content type specified, "
                       f"attachment [{upload.index}]: [{upload.filename}]")
    raise _unsupported(upload)


def _check_files(uploads: list[Upload]) -> None:
    for up in uploads:
        if len(up.filename) > FILENAME_MAX:
            raise rc_error(400, "MSG-370",
                           f"filename is too long, {FILENAME_MAX} characters allowed")
        if not up.data:
            raise rc_error(400, "MSG-347", f"Attachment [{up.filename}] body is empty")


# -- fax documents ------------------------------------------------------------------------

_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")
_PDF_COUNT = re.compile(
    rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)|/Count\s+(\d+)[^>]*?/Type\s*/Pages\b")


def count_pdf_pages(data: bytes) -> int:
    """Rough page count: ``/Type /Page`` objects, else the page tree's ``/Count``, else 1."""
    n = len(_PDF_PAGE.findall(data))
    if n:
        return n
    counts = [int(a or b) for a, b in _PDF_COUNT.findall(data)]
    return max(counts) if counts else 1


def _image_frames(data: bytes) -> int:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return max(1, int(getattr(img, "n_frames", 1)))
    except Exception:  # any unreadable image renders as one page
        return 1


def _image_size(data: bytes) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return int(img.width), int(img.height)
    except Exception:  # not an image Pillow knows: no dimensions
        return None


def document_pages(upload: Upload) -> tuple[int, bool]:
    """(page count, renders?) of one fax source document, estimated like a print driver."""
    sniffed = sniff_content_type(upload.data)
    declared = upload.declared if upload.declared not in GENERIC_TYPES else None
    if declared == "application/pdf" and sniffed != "application/pdf":
        return 1, False
    if declared and declared.startswith("image/") and sniffed is not None \
            and not sniffed.startswith("image/"):
        return 1, False
    if sniffed == "application/pdf":
        return count_pdf_pages(upload.data), True
    if sniffed in ("image/tiff", "image/gif"):
        return _image_frames(upload.data), True
    if sniffed is not None and sniffed.startswith("image/"):
        return 1, True
    if sniffed == "text/plain" or (declared or "").startswith("text/"):
        text = upload.data.decode("utf-8", errors="replace")
        lines = sum(max(1, math.ceil(len(line) / 80)) for line in text.splitlines()) or 1
        return max(1, math.ceil(lines / 60)), True
    return max(1, math.ceil(len(upload.data) / 50_000)), True


# -- state machines -----------------------------------------------------------------------

def _live(emu: Emulator, msg_id: int) -> Message | None:
    """The message if it still exists and was not deleted (a deleted Queued send is
    cancelled: its remaining timers do nothing)."""
    msg = emu.store.messages.get(msg_id)
    if msg is None or msg.availability != "Alive" or msg.gone:
        return None
    return msg


def _touch(emu: Emulator, msg: Message, when: float) -> None:
    msg.last_modified_time = max(when, msg.last_modified_time + 0.001)
    emu.store.emit("message_updated", msg)  # a status change: a message-store event


def fax_aggregate(statuses: list[str]) -> str:
    """Aggregate fax status (spec): any Queued ⇒ Queued; any SendingFailed ⇒ that; else Sent."""
    if "Queued" in statuses:
        return "Queued"
    if "SendingFailed" in statuses:
        return "SendingFailed"
    return "Sent"


def schedule_fax(emu: Emulator, msg_id: int, start: float, pages: int,
                 render_error: str | None) -> None:
    """Arm the fax timers: recipients are dialled one after the other from ``start``."""
    spp = emu.config.fax_seconds_per_page
    msg = emu.store.messages[msg_id]
    if render_error is not None:
        def fail_all(when: float) -> None:
            m = _live(emu, msg_id)
            if m is None:
                return
            for rcpt in m.to:
                rcpt["messageStatus"] = "SendingFailed"
                rcpt["faxErrorCode"] = render_error
            m.message_status = "SendingFailed"
            _touch(emu, m, when)
        emu.at(start + spp, fail_all)
        return

    def finisher(index: int) -> Callable[[float], None]:
        def finish(when: float) -> None:
            m = _live(emu, msg_id)
            if m is None or index >= len(m.to):
                return
            rcpt = m.to[index]
            code = FAX_FAILURES.get(str(rcpt.get("phoneNumber", ""))[-4:])
            if code is None:
                rcpt["messageStatus"] = "Sent"
                rcpt.pop("faxErrorCode", None)
            else:
                rcpt["messageStatus"] = "SendingFailed"
                rcpt["faxErrorCode"] = code
            if not m.fax_page_count:
                m.fax_page_count = pages
            m.message_status = fax_aggregate([str(r.get("messageStatus")) for r in m.to])
            _touch(emu, m, when)
        return finish

    for i in range(len(msg.to)):
        emu.at(start + (i + 1) * pages * spp, finisher(i))


def schedule_sms(emu: Emulator, msg_id: int, start: float) -> None:
    """Queued → Sent → Delivered, or the failures of the module docstring."""
    cfg = emu.config
    msg = emu.store.messages[msg_id]
    tails = [str(r.get("phoneNumber", ""))[-4:] for r in msg.to]

    def sent(when: float) -> None:
        m = _live(emu, msg_id)
        if m is None:
            return
        if SMS_SENDING_FAILURE in tails:
            m.message_status = "SendingFailed"
            m.delivery_error_code = "SMS-UP-410"
        else:
            m.message_status = "Sent"
        _touch(emu, m, when)

    def delivered(when: float) -> None:
        m = _live(emu, msg_id)
        if m is None or m.message_status != "Sent":
            return
        codes = [SMS_DELIVERY_FAILURES[t] for t in tails if t in SMS_DELIVERY_FAILURES]
        if codes:
            m.message_status = "DeliveryFailed"
            m.delivery_error_code = codes[0]
        else:
            m.message_status = "Delivered"
            m.sms_delivery_time = when
        _touch(emu, m, when)

    emu.at(start + cfg.sms_send_delay, sent)
    emu.at(start + cfg.sms_send_delay + cfg.sms_deliver_delay, delivered)


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
    opts["isoCode"] = _iso_code(fields)
    return opts


def _fax_recipients(fields: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for rcpt in _recipients(fields.get("to"), "fax"):
        raw = rcpt["phoneNumber"]
        if _short_digits(raw) is not None:
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
    ext = _target_extension(emu, caller, request, "OutboundFaxes")
    attempt.extension_id = ext.id
    media = _media_type(request)
    body = await _read_body(request, "fax")
    now = emu.clock.now()
    if media == "application/json":
        attempt.envelope = Envelope(_json_object(body, "fax"), encoding=media)
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
    fields["to"] = to_raw = _recipients(fields.get("to"), "fax")
    to = _fax_recipients({"to": to_raw})
    opts = _fax_options(fields, now)
    if not env.uploads:
        raise missing_param("attachment")
    _check_files(env.uploads)
    for up in env.uploads:
        _check_fax_type(up)
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
    fields["to"] = _recipients(fields.get("to"), "fax")
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
    rcpts = _recipients(fields.get("to"), "sms")
    if len(rcpts) > MAX_RECIPIENTS:
        raise rc_error(400, "MSG-381", "Exceeded maximum number of recipients for a Group MMS: "
                       f"[{MAX_RECIPIENTS}]")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for rcpt in rcpts:
        raw = rcpt["phoneNumber"]
        short = _short_digits(raw)
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
    _check_files(uploads)
    if len(uploads) > MMS_MAX_ATTACHMENTS:
        raise rc_error(400, "MSG-338", "Too many attachments: maximum "
                       f"[{MMS_MAX_ATTACHMENTS}] per message")
    typed: list[tuple[Upload, str]] = []
    for up in uploads:
        effective, _ = _effective_type(up)
        if effective is None or effective not in MMS_TYPES:
            raise _unsupported(up)
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
    ext = _target_extension(emu, caller, request, "OutboundSMS")
    attempt.extension_id = ext.id
    media = _media_type(request)
    body = await _read_body(request, "sms")
    if media == "application/json":
        attempt.envelope = Envelope(_json_object(body, "sms"), encoding=media)
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
        fields["to"] = _recipients(fields["to"], "sms")
    to = _sms_recipients(fields)
    _iso_code(fields)  # validated (MSG-365, CMN-101); no international routing is emulated
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
        size = _image_size(up.data) if ctype.startswith("image/") else None
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
