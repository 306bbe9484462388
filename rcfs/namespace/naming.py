"""File and folder names for RingCentral objects.

Rules (README "Naming"): names are stable across remounts (derived only from immutable
fields: time, parties, duration, id), unique (the id in brackets), sort by time when sorted
by name (ISO-like timestamp first), safe (no '/', NUL, control or bidi-override characters,
never hidden, at most 255 bytes of UTF-8 cut on a character boundary, the ``[id].ext`` tail
always kept), and end in the extension matching the content type so the desktop picks the
right program.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, tzinfo

NAME_MAX = 255

CONTENT_EXTENSIONS = {
    "audio/mpeg": ".mp3",
    "audio/mp3": ".mp3",
    "audio/x-wav": ".wav",
    "audio/wav": ".wav",
    "audio/wave": ".wav",
    "audio/mp4": ".m4a",
    "audio/amr": ".amr",
    "audio/ogg": ".ogg",
    "audio/3gpp": ".3gp",
    "application/pdf": ".pdf",
    "image/tiff": ".tif",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/bmp": ".bmp",
    "image/webp": ".webp",
    "image/svg+xml": ".svg",
    "video/mp4": ".mp4",
    "video/mpeg": ".mpeg",
    "video/3gpp": ".3gp",
    "video/quicktime": ".mov",
    "video/webm": ".webm",
    "text/plain": ".txt",
    "text/vcard": ".vcf",
    "text/x-vcard": ".vcf",
    "text/html": ".html",
    "text/csv": ".csv",
    "text/calendar": ".ics",
    "application/zip": ".zip",
    "application/gzip": ".gz",
    "application/rtf": ".rtf",
}

# Characters that would let a name lie about itself (bidi overrides can make "gpj.exe" read as
# "exe.jpg") or vanish on screen.
_INVISIBLE = {
    "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u2060", "\ufeff",
    "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
    "\u2066", "\u2067", "\u2068", "\u2069",
}


# Terminal escape sequences (ECMA-48), removed whole: dropping only the ESC control character
# would leave "[31m" in the name. CSI (ESC [ or C1 0x9b) with parameters, intermediates and a
# final byte; OSC/DCS/SOS/PM/APC strings up to BEL or ST; any other two-character escape.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)


def extension_for(content_type: str | None, file_name: str | None = None) -> str:
    """The file extension for a content type, else the API's file name's, else ``.bin``."""
    if content_type:
        ext = CONTENT_EXTENSIONS.get(content_type.split(";")[0].strip().lower())
        if ext:
            return ext
    if file_name and "." in file_name:
        tail = clean(file_name.rsplit(".", 1)[1])[:10].lower()
        if tail.isalnum():
            return "." + tail
    return ".bin"


def clean(text: str) -> str:
    """Make free text (names, subjects) safe inside one path component."""
    out = []
    for ch in unicodedata.normalize("NFC", _ESCAPES.sub("", text)):
        if ch == "/":
            out.append("\u2215")  # DIVISION SLASH: looks like '/', is not a separator
        elif ch in _INVISIBLE:
            continue
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            out.append(" " if ch in "\t\n\r" else "")
        else:
            out.append(ch)
    return " ".join("".join(out).split())


def fit(stem: str, tail: str, limit: int = NAME_MAX) -> str:
    """``stem + tail`` cut to ``limit`` UTF-8 bytes on a character boundary, keeping ``tail``
    (which holds the id and extension, the parts that make the name unique and typed)."""
    stem = stem.strip()
    if stem.startswith("."):
        stem = "_" + stem[1:]
    room = limit - len(tail.encode("utf-8"))
    raw = stem.encode("utf-8")
    if len(raw) > room:
        stem = raw[:max(0, room)].decode("utf-8", errors="ignore").rstrip()
    name = stem + tail
    return name if name not in (".", "..") else "_" + name


def stamp(when: datetime, tz: tzinfo | None) -> str:
    """``2026-11-20 09.17.27``: sorts by time, no ':' (which some desktop tools dislike)."""
    return when.astimezone(tz).strftime("%Y-%m-%d %H.%M.%S")


def month(when: datetime, tz: tzinfo | None) -> str:
    return when.astimezone(tz).strftime("%Y-%m")


def duration(seconds: int | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0, int(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def party(number: str | None, name: str | None, ext_number: str | None = None) -> str:
    """How a caller or recipient is shown: number, then name; an extension when internal."""
    parts = [p for p in (clean(number or ""), clean(name or "")) if p]
    if not parts and ext_number:
        parts = [clean(ext_number)]
    return " ".join(parts) if parts else "unknown"


def id_tail(ident: str, ext: str, suffix: str = "") -> str:
    return f" [{clean(ident)}]{suffix}{ext}"


def join(*parts: str) -> str:
    return " ".join(p for p in parts if p)
