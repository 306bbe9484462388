"""What the outbox accepts, decided before any request (docs/ringcentral.md §7, §8).

Types come from the bytes (magic numbers), the file name only breaks ties the bytes cannot
(``.doc`` vs ``.xls`` inside an OLE2 container, ``.csv`` vs ``.txt`` text) or names formats
that have no magic at all (Lotus, Targa). A file whose bytes contradict a binary name
(``contract.pdf`` that is really HTML) is refused: it would fax as garbage.

Completeness: the kernel flushes a file also when its writer is killed half-way (Ctrl-C on a
``cp``), so formats with a recognisable end (PDF ``%%EOF``, PNG ``IEND``, JPEG EOI, GIF
trailer, ZIP end record, RIFF length) are checked for it: a truncated document is refused
rather than faxed.

Every refusal is an ``OutboxError(kind, message)``; ``close(2)`` returns the kind's errno
(``rcfs.fs.errors.ERRNO_TABLE``):

==============  ==========  ======================================================
INVALID         EINVAL      unsupported or unrecognisable type, truncated file, bad
                            name/value
TOO_BIG         EFBIG       too big (fax 50 MB / 200 pages, MMS 1.5 MB, greeting 20 MB)
TOO_MANY_PARTS  E2BIG       more than 10 MMS attachments
EMPTY           ENODATA     empty file (or a text of only white space)
NOT_UTF8        EILSEQ      an SMS text that is not UTF-8
TEXT_TOO_LONG   EMSGSIZE    an SMS text longer than 1000 UTF-16 code units
==============  ==========  ======================================================
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from rcfs.outbox.protocol import OutboxError
from rcfs.refusal import Refusal

FAX_MAX_BYTES = 50 * 1024 * 1024
FAX_MAX_PAGES = 200
FAX_COVER_TEXT_MAX = 1024
FAX_COVER_INDEXES = frozenset(range(14)) | frozenset(range(15, 29))
MMS_MAX_BYTES = 1_500_000
MMS_MAX_ATTACHMENTS = 10
SMS_MAX_UTF16 = 1000
GREETING_MAX_BYTES = 20 * 1024 * 1024
GREETING_TYPES = ("Introductory", "Announcement", "ConnectingMessage", "ConnectingAudio",
                  "Voicemail", "Unavailable", "HoldMusic", "TemplateGreeting")
FILENAME_MAX = 255


# -- phone numbers ------------------------------------------------------------------------

_PHONE_JUNK = re.compile(r"[\s\-().\u00a0/]")


def normalize_number(raw: str) -> str | None:
    """E.164 (``+`` and 7-15 digits, no leading 0) or None.

    Formatting (spaces, dashes, dots, parentheses, ``tel:``) is dropped; ``00`` becomes
    ``+``; ten bare digits, or eleven starting with 1, are North American (+1...). Other
    bare digit strings are ambiguous (which country?) and refused.
    """
    text = raw.strip()
    if text.lower().startswith("tel:"):
        text = text[4:]
    text = _PHONE_JUNK.sub("", text)
    if text.startswith("00"):
        text = "+" + text[2:]
    if text.startswith("+"):
        digits = text[1:]
    elif text.isdigit() and len(text) == 10 and text[0] not in "01":
        digits = "1" + text
    elif text.isdigit() and len(text) == 11 and text[0] == "1":
        digits = text
    else:
        return None
    if not digits.isdigit() or not 7 <= len(digits) <= 15 or digits[0] == "0":
        return None
    return "+" + digits


# -- type detection -----------------------------------------------------------------------

OLE_BY_EXT = {
    "doc": "application/msword", "dot": "application/msword",
    "xls": "application/vnd.ms-excel", "xlsb": "application/vnd.ms-excel",
    "ppt": "application/vnd.ms-powerpoint", "vsd": "application/vnd.visio",
    "pub": "application/vnd.ms-publisher", "wps": "application/vnd.ms-works",
    "msg": "application/vnd.ms-outlook",
}
OOXML = {
    "word/": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xl/": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "ppt/": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
TEXT_BY_EXT = {
    "html": "text/html", "htm": "text/html", "csv": "text/csv", "xml": "application/xml",
    "vcf": "text/vcard", "vcard": "text/vcard", "ics": "text/calendar", "rtf": "application/rtf",
    "svg": "image/svg+xml",
}
# Fax source formats with no reliable magic: accepted by name when the bytes say nothing.
NAME_ONLY_FAX = {
    "tga": "image/x-tga", "wk1": "application/vnd.lotus-1-2-3",
    "wk3": "application/vnd.lotus-1-2-3", "wk4": "application/vnd.lotus-1-2-3",
    "wq1": "application/x-quattro-pro", "mcw": "application/octet-stream",
    "awd": "application/octet-stream", "wri": "application/x-mswrite",
    "vdx": "application/vnd.visio", "pcx": "image/x-pcx",
}
# Names that promise a binary format with a magic number: bytes must agree.
BINARY_EXT = {
    "pdf": "application/pdf", "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg",
    "gif": "image/gif", "tif": "image/tiff", "tiff": "image/tiff", "bmp": "image/bmp",
    "docx": OOXML["word/"], "xlsx": OOXML["xl/"], "pptx": OOXML["ppt/"],
    "doc": OLE_BY_EXT["doc"], "xls": OLE_BY_EXT["xls"], "ppt": OLE_BY_EXT["ppt"],
    "wav": "audio/wav", "mp3": "audio/mpeg", "mp4": "video/mp4", "webp": "image/webp",
    "psd": "image/vnd.adobe.photoshop", "zip": "application/zip",
}

FAX_TYPES = frozenset({
    "application/pdf", "image/tiff", "image/gif", "image/jpeg", "image/png", "image/bmp",
    "image/vnd.adobe.photoshop", "image/x-pcx", "image/x-tga", "application/rtf",
    "text/plain", "text/html", "text/csv", "application/xml",
    "application/x-ole-storage", "application/x-mswrite", "application/octet-stream",
    "application/vnd.lotus-1-2-3", "application/x-quattro-pro",
    *OLE_BY_EXT.values(), *OOXML.values(),
}) - {"application/vnd.ms-outlook"}
MMS_TYPES = frozenset({
    "image/jpeg", "image/png", "image/bmp", "image/gif", "image/tiff", "image/svg+xml",
    "image/webp", "video/3gpp", "video/mp4", "video/mpeg", "video/avi", "video/x-flv",
    "video/x-ms-wmv", "video/quicktime", "video/webm", "video/ogg", "audio/mpeg",
    "audio/mp4", "audio/ogg", "audio/wav", "audio/amr", "audio/3gpp", "text/vcard",
    "application/zip", "application/gzip", "application/rtf", "application/pdf",
    "text/html", "text/plain", "text/csv", "text/calendar",
})
GREETING_CTYPES = frozenset({"audio/wav", "audio/mpeg"})


def extension_of(name: str) -> str:
    base, dot, ext = name.rpartition(".")
    return ext.lower() if dot and base else ""


def _riff_complete(data: bytes) -> bool:
    declared = struct.unpack_from("<I", data, 4)[0]
    # Streaming writers leave 0 or 0xFFFFFFFF; otherwise the file must hold the whole chunk.
    return declared in (0, 0xFFFFFFFF) or len(data) >= declared + 8


def _zip_type(data: bytes) -> str:
    head = data[:65536]
    for prefix, ctype in OOXML.items():
        if b"PK\x03\x04" in head and prefix.encode() in head:
            return ctype
    return "application/zip"


def _mp3_frame(data: bytes) -> bool:
    if len(data) < 4 or data[0] != 0xFF or data[1] & 0xE0 != 0xE0:
        return False
    layer = (data[1] >> 1) & 0x3
    bitrate = data[2] >> 4
    rate = (data[2] >> 2) & 0x3
    return layer != 0 and bitrate not in (0, 15) and rate != 3


def sniff(data: bytes, name: str = "") -> str | None:
    """The media type the bytes say (None: unrecognised binary). Text is ``text/...``."""
    ext = extension_of(name)
    if data.startswith(b"%PDF-") or data[:1024].lstrip().startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if data.startswith(b"BM") and len(data) >= 14:
        return "image/bmp"
    if data[:4] == b"RIFF" and len(data) >= 12:
        kind = data[8:12]
        if kind == b"WAVE":
            return "audio/wav"
        if kind == b"WEBP":
            return "image/webp"
        if kind == b"AVI ":
            return "video/avi"
        return None
    if data.startswith(b"ID3") or _mp3_frame(data):
        return "audio/mpeg"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand.startswith(b"3g"):
            return "video/3gpp"
        if brand == b"qt  ":
            return "video/quicktime"
        if brand in (b"M4A ", b"M4B "):
            return "audio/mp4"
        return "video/mp4"
    if data.startswith(b"OggS"):
        return "video/ogg" if b"theora" in data[:512] else "audio/ogg"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    if data.startswith(b"FLV\x01"):
        return "video/x-flv"
    if data[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return "video/mpeg"
    if data.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "video/x-ms-wmv"
    if data.startswith(b"#!AMR"):
        return "audio/amr"
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return _zip_type(data)
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return OLE_BY_EXT.get(ext, "application/x-ole-storage")
    if data.startswith(b"\x1f\x8b"):
        return "application/gzip"
    if data.startswith(b"{\\rtf"):
        return "application/rtf"
    if data.startswith(b"8BPS"):
        return "image/vnd.adobe.photoshop"
    if ext == "pcx" and len(data) > 128 and data[0] == 0x0A and data[2] == 1:
        return "image/x-pcx"
    text = as_text(data)
    if text is None:
        return None
    head = text[:512].lstrip().lower()
    if ext in TEXT_BY_EXT:
        return TEXT_BY_EXT[ext]
    if head.startswith("begin:vcard"):
        return "text/vcard"
    if head.startswith("begin:vcalendar"):
        return "text/calendar"
    if head.startswith(("<!doctype html", "<html")):
        return "text/html"
    if "<svg" in head and (head.startswith(("<svg", "<?xml"))):
        return "image/svg+xml"
    if head.startswith("<?xml"):
        return "application/xml"
    return "text/plain"


def as_text(data: bytes) -> str | None:
    """The bytes as UTF-8 text (BOM dropped), or None if they are not plausible text."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\x00" in data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    controls = sum(1 for ch in text[:4096] if ord(ch) < 32 and ch not in "\t\n\r\f\v\x1b")
    if controls > max(2, len(text[:4096]) // 100):
        return None
    return text


def incomplete(ctype: str, data: bytes) -> str | None:
    """Why a recognisable file looks cut short (None when it looks whole)."""
    tail = data[-2048:]
    if ctype == "application/pdf" and b"%%EOF" not in tail:
        return "the PDF has no %%EOF end marker (truncated?)"
    if ctype == "image/png" and b"IEND" not in data[-32:]:
        return "the PNG has no IEND chunk (truncated?)"
    if ctype == "image/jpeg" and b"\xff\xd9" not in data.rstrip(b"\x00")[-64:]:
        return "the JPEG has no end-of-image marker (truncated?)"
    if ctype == "image/gif" and not data.rstrip(b"\x00").endswith(b";"):
        return "the GIF has no trailer (truncated?)"
    if (ctype == "application/zip" or ctype in OOXML.values()) \
            and b"PK\x05\x06" not in data[-(65536 + 22):]:
        return "the ZIP container has no end record (truncated?)"
    if data[:4] == b"RIFF" and len(data) >= 12 and not _riff_complete(data):
        return "the RIFF file is shorter than its header says (truncated?)"
    if ctype == "image/bmp" and len(data) < struct.unpack_from("<I", data, 2)[0]:
        return "the BMP is shorter than its header says (truncated?)"
    return None


# -- pages ----------------------------------------------------------------------------------

_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")
_PDF_COUNT = re.compile(
    rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)|/Count\s+(\d+)[^>]*?/Type\s*/Pages\b")


def tiff_pages(data: bytes) -> int:
    """Number of IFDs (pages) of a TIFF; 1 when the chain cannot be followed."""
    endian = "<" if data[:2] == b"II" else ">"
    try:
        offset = struct.unpack_from(endian + "I", data, 4)[0]
        seen: set[int] = set()
        while offset and offset not in seen and len(seen) < 10_000:
            seen.add(offset)
            count = struct.unpack_from(endian + "H", data, offset)[0]
            offset = struct.unpack_from(endian + "I", data, offset + 2 + 12 * count)[0]
        return max(1, len(seen))
    except struct.error:
        return 1


def pages(ctype: str, data: bytes) -> int:
    """Rough page count as a fax renderer would produce (0 = unknown)."""
    if ctype == "application/pdf":
        n = len(_PDF_PAGE.findall(data))
        if n:
            return n
        counts = [int(a or b) for a, b in _PDF_COUNT.findall(data)]
        return max(counts) if counts else 1
    if ctype == "image/tiff":
        return tiff_pages(data)
    if ctype.startswith("image/"):
        return 1
    if ctype.startswith("text/") or ctype == "application/xml":
        text = data.decode("utf-8", errors="replace")
        lines = sum(max(1, math.ceil(len(line) / 80)) for line in text.splitlines()) or 1
        return max(1, math.ceil(lines / 60))
    return 0


# -- per channel ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    """One accepted file: its media type, and for SMS text its decoded body."""

    ctype: str
    size: int
    pages: int = 0
    text: str | None = None  # set when the file is an SMS body (Text channel, plain text)


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def check_name(name: str) -> None:
    if len(name.encode()) > FILENAME_MAX:
        raise OutboxError(Refusal.NAME_TOO_LONG, f"file name longer than {FILENAME_MAX} bytes")
    if name.endswith(".status.txt"):
        raise OutboxError(Refusal.INVALID, f"{name!r}: names ending .status.txt are reserved")


def _typed(data: bytes, name: str, what: str) -> str:
    if not data:
        raise OutboxError(Refusal.EMPTY, f"{name}: the file is empty")
    ctype = sniff(data, name)
    ext = extension_of(name)
    expected = BINARY_EXT.get(ext)
    if ctype is None:
        if what == "fax" and ext in NAME_ONLY_FAX:
            return NAME_ONLY_FAX[ext]
        raise OutboxError(Refusal.INVALID, f"{name}: unrecognised content (not a {what} type)")
    if expected is not None and ctype != expected and not (
            ctype == "application/x-ole-storage" and expected in OLE_BY_EXT.values()) \
            and not (expected == "application/zip" and ctype in OOXML.values()) \
            and not (ctype.startswith("image/") and expected.startswith("image/")):
        raise OutboxError(Refusal.INVALID, f"{name}: the name says {expected} but the content is "
                          f"{ctype}")
    why = incomplete(ctype, data)
    if why:
        raise OutboxError(Refusal.INVALID, f"{name}: {why}")
    return ctype


def check_fax_file(name: str, data: bytes) -> Checked:
    check_name(name)
    ctype = _typed(data, name, "fax")
    if ctype not in FAX_TYPES:
        raise OutboxError(Refusal.INVALID, f"{name}: {ctype} cannot be faxed (documents, images "
                          "and text only)")
    if len(data) > FAX_MAX_BYTES:
        raise OutboxError(Refusal.TOO_BIG, f"{name}: {len(data)} bytes > the fax limit of "
                          f"{FAX_MAX_BYTES} bytes")
    n = pages(ctype, data)
    if n > FAX_MAX_PAGES:
        raise OutboxError(Refusal.TOO_BIG, f"{name}: {n} pages > the fax limit of {FAX_MAX_PAGES}")
    return Checked(ctype, len(data), n)


def sms_text(name: str, data: bytes) -> str | None:
    """The SMS body if this Text-channel file is plain text (None: an MMS attachment)."""
    if not data:
        raise OutboxError(Refusal.EMPTY, f"{name}: the file is empty")
    ext = extension_of(name)
    ctype = sniff(data, name)
    plain_name = ext in ("", "txt", "text", "sms", "msg", "md")
    if ctype == "text/plain":
        text = as_text(data)
        assert text is not None
    elif ctype is None and plain_name:
        try:
            data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
        except UnicodeDecodeError:
            raise OutboxError(Refusal.NOT_UTF8, f"{name}: the text is not valid UTF-8") from None
        raise OutboxError(Refusal.INVALID, f"{name}: the text contains control characters")
    else:
        return None
    text = text.rstrip("\r\n")
    if not text.strip():
        raise OutboxError(Refusal.EMPTY, f"{name}: the text is empty")
    units = utf16_units(text)
    if units > SMS_MAX_UTF16:
        raise OutboxError(Refusal.TEXT_TOO_LONG, f"{name}: {units} UTF-16 units > the SMS limit of "
                          f"{SMS_MAX_UTF16}")
    return text


def check_text_file(name: str, data: bytes) -> Checked:
    """A file in a Text recipient folder: an SMS body or an MMS attachment."""
    check_name(name)
    if len(data) > MMS_MAX_BYTES:
        raise OutboxError(Refusal.TOO_BIG, f"{name}: {len(data)} bytes > the MMS limit of "
                          f"{MMS_MAX_BYTES} bytes")
    text = sms_text(name, data)
    if text is not None:
        return Checked("text/plain", len(data), text=text)
    ctype = _typed(data, name, "MMS")
    if ctype not in MMS_TYPES:
        raise OutboxError(Refusal.INVALID, f"{name}: {ctype} cannot be sent by MMS")
    return Checked(ctype, len(data))


def check_greeting_file(name: str, data: bytes) -> Checked:
    check_name(name)
    greeting_type(name)
    ctype = _typed(data, name, "greeting")
    if ctype not in GREETING_CTYPES:
        raise OutboxError(Refusal.INVALID,
                          f"{name}: greetings must be WAV or MP3 audio, not {ctype}")
    if len(data) > GREETING_MAX_BYTES:
        raise OutboxError(Refusal.TOO_BIG, f"{name}: {len(data)} bytes > {GREETING_MAX_BYTES}")
    return Checked(ctype, len(data))


def greeting_type(name: str) -> str:
    """``Voicemail.wav`` -> ``Voicemail`` (case-insensitive); EINVAL for other names."""
    stem = name.rsplit(".", 1)[0] if "." in name else name
    for gtype in GREETING_TYPES:
        if stem.lower() == gtype.lower():
            return gtype
    raise OutboxError(Refusal.INVALID, f"{name}: a greeting file is named after its type: "
                      + ", ".join(f"{t}.wav" for t in GREETING_TYPES))


def check_file(channel: str, name: str, data: bytes) -> Checked:
    if channel == "Fax":
        return check_fax_file(name, data)
    if channel == "Text":
        return check_text_file(name, data)
    if channel == "Greetings":
        return check_greeting_file(name, data)
    raise OutboxError(Refusal.INVALID, f"unknown outbox folder {channel!r}")


# -- whole jobs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    name: str
    ctype: str
    size: int
    pages: int = 0
    text: str | None = None


def check_fax_job(parts: Sequence[Part], cover: bool) -> None:
    if not parts:
        raise OutboxError(Refusal.EMPTY, "the fax has no document")
    total = sum(p.size for p in parts)
    if total > FAX_MAX_BYTES:
        raise OutboxError(Refusal.TOO_BIG, f"the documents total {total} bytes > the fax limit of "
                          f"{FAX_MAX_BYTES}")
    n = sum(p.pages for p in parts) + (1 if cover else 0)
    if n > FAX_MAX_PAGES:
        raise OutboxError(Refusal.TOO_BIG, f"{n} pages > the fax limit of {FAX_MAX_PAGES}")


def text_job(parts: Sequence[Part]) -> tuple[str | None, list[Part]]:
    """(SMS/MMS text, attachments) of a Text job; the checks of one message."""
    if not parts:
        raise OutboxError(Refusal.EMPTY, "the message is empty")
    texts = [p.text for p in parts if p.text is not None]
    files = [p for p in parts if p.text is None]
    text = "\n".join(texts) if texts else None
    if text is not None and utf16_units(text) > SMS_MAX_UTF16:
        raise OutboxError(Refusal.TEXT_TOO_LONG, f"the text is {utf16_units(text)} UTF-16 units > "
                          f"{SMS_MAX_UTF16}")
    if len(files) > MMS_MAX_ATTACHMENTS:
        raise OutboxError(Refusal.TOO_MANY_PARTS, f"{len(files)} attachments > the MMS limit of "
                          f"{MMS_MAX_ATTACHMENTS}")
    total = sum(p.size for p in files)
    if total > MMS_MAX_BYTES:
        raise OutboxError(Refusal.TOO_BIG, f"the attachments total {total} bytes > the MMS limit "
                          f"of {MMS_MAX_BYTES}")
    return text, files


# -- options (xattrs) -----------------------------------------------------------------------

OPTION_XATTRS = {
    "user.rc.fax_resolution": "fax_resolution",
    "user.rc.cover_index": "cover_index",
    "user.rc.cover_page_text": "cover_page_text",
    "user.rc.from": "from",
    "user.rc.answering_rule": "answering_rule",
}
STATUS_XATTRS = frozenset({"user.rc.status", "user.rc.error", "user.rc.job_id",
                           "user.rc.message_id", "user.rc.remote_status", "user.rc.kind",
                           "user.rc.to", "user.rc.attempts"})


def check_option(name: str, raw: bytes) -> str:
    """Validate an option xattr; returns its normalised value ('' resets to the default)."""
    try:
        value = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise OutboxError(Refusal.INVALID, f"{name}: not UTF-8") from None
    if value == "":
        return ""
    if name == "user.rc.fax_resolution":
        for choice in ("High", "Low"):
            if value.lower() == choice.lower():
                return choice
        raise OutboxError(Refusal.INVALID, f"{name}: High or Low, not {value!r}")
    if name == "user.rc.cover_index":
        if not value.isdigit() or int(value) not in FAX_COVER_INDEXES:
            raise OutboxError(Refusal.INVALID, f"{name}: 0 (no cover page), 1-13 or 15-28, not "
                              f"{value!r}")
        return str(int(value))
    if name == "user.rc.cover_page_text":
        if len(value) > FAX_COVER_TEXT_MAX:
            raise OutboxError(Refusal.INVALID, f"{name}: longer than {FAX_COVER_TEXT_MAX}")
        return value
    if name == "user.rc.from":
        number = normalize_number(value)
        if number is None:
            raise OutboxError(Refusal.INVALID, f"{name}: {value!r} is not an E.164 number")
        return number
    if name == "user.rc.answering_rule":
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
            raise OutboxError(Refusal.INVALID, f"{name}: {value!r} is not a rule id")
        return value
    raise OutboxError(Refusal.UNSUPPORTED, f"{name}: unknown option")
