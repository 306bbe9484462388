"""What a send request (fax, SMS, MMS) carries and the checks it must pass.

The documented limits (docs/ringcentral.md §7), the accepted encodings of the body (an
envelope of JSON or form fields plus file parts), recipients and phone numbers, file types,
and how many pages a fax document has. ``rcfs.emulator.routes_send`` uses these before it
stores a message.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import mimetypes
import re
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import ClientDisconnect, Request

from rcfs.emulator.core import Caller, Emulator
from rcfs.emulator.errors import ApiError, invalid_param, missing_param, rc_error
from rcfs.emulator.media import sniff_content_type
from rcfs.emulator.multipart import MultipartError, Part, parse_header, parse_multipart
from rcfs.emulator.store import Extension, SentItem

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

def media_type(request: Request) -> str:
    media, _ = parse_header(request.headers.get("content-type", ""))
    return media


def target_extension(emu: Emulator, caller: Caller, request: Request,
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


def short_digits(raw: str) -> str | None:
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


def json_object(data: bytes, kind: str) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _bad_json(kind) from None
    if not isinstance(value, dict):
        raise _bad_json(kind)
    return value


async def read_body(request: Request, kind: str) -> bytes:
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
            env.fields = json_object(part.data, kind)
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


def recipients(raw: Any, kind: str) -> list[dict[str, Any]]:
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


def iso_code(fields: dict[str, Any]) -> str | None:
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


def effective_type(upload: Upload) -> tuple[str | None, str | None]:
    """(declared-or-sniffed media type, sniffed type) of an upload."""
    sniffed = sniff_content_type(upload.data)
    declared = upload.declared
    if declared is None or declared in GENERIC_TYPES:
        guessed = mimetypes.guess_type("x." + upload.extension)[0] if upload.extension else None
        return sniffed or guessed, sniffed
    return declared, sniffed


def unsupported(upload: Upload) -> ApiError:
    shown = "." + upload.extension if upload.extension else (upload.declared or "")
    return rc_error(415, "MSG-348", "Unsupported attachment media type, attachment "
                    f"[{upload.index}]: [{shown}]")


def check_fax_type(upload: Upload) -> None:
    """415 MSG-348 unless the part is one of the fax document formats (§7.1)."""
    declared = upload.declared
    sniffed = sniff_content_type(upload.data)
    ext = upload.extension
    if declared is not None and declared not in GENERIC_TYPES:
        if declared in FAX_TYPES or (declared.startswith("text/") and ext in FAX_EXTENSIONS):
            return
        raise unsupported(upload)
    if ext in FAX_EXTENSIONS:
        if sniffed is not None and sniffed.startswith(("audio/", "video/")):
            raise unsupported(upload)
        return
    if sniffed in FAX_TYPES:
        return
    if declared is None and not ext and sniffed is None:
        raise rc_error(415, "MSG-353", "No file extension or content type specified, "
                       f"attachment [{upload.index}]: [{upload.filename}]")
    raise unsupported(upload)


def check_files(uploads: list[Upload]) -> None:
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


def image_size(data: bytes) -> tuple[int, int] | None:
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
