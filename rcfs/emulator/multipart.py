"""A small MIME multipart parser for the upload endpoints (greeting, fax, MMS).

RingCentral accepts both ``multipart/form-data`` and ``multipart/mixed`` on its upload
endpoints (docs/ringcentral.md §7). Starlette's form parser only handles form-data and hides
the part headers the emulator must validate (each part's own ``Content-Type``, a missing
``Content-Disposition`` or file name), so the emulator parses the raw body itself.
"""

from __future__ import annotations

import itertools
import urllib.parse
from dataclasses import dataclass, field


class MultipartError(ValueError):
    """The body is not a well-formed multipart entity (no boundary, no closing delimiter)."""


def parse_header(value: str) -> tuple[str, dict[str, str]]:
    """Split ``type/sub; a=b; c="d e"`` into the lower-cased main value and its parameters.

    Parameter names are lower-cased; RFC 5987 ``name*=UTF-8''...`` values are decoded and
    win over the plain form of the same name.
    """
    items = _split_params(value)
    main = items[0].strip().lower() if items else ""
    params: dict[str, str] = {}
    extended: dict[str, str] = {}
    for item in items[1:]:
        key, sep, raw = item.partition("=")
        if not sep:
            continue
        key = key.strip().lower()
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        if key.endswith("*"):
            charset, _, rest = raw.partition("'")
            _, _, encoded = rest.partition("'")
            try:
                extended[key[:-1]] = urllib.parse.unquote(encoded, encoding=charset or "utf-8",
                                                          errors="strict")
            except (LookupError, UnicodeDecodeError):
                continue
        else:
            params[key] = raw
    params.update(extended)
    return main, params


def _split_params(value: str) -> list[str]:
    """Split on ``;`` outside quoted strings."""
    out: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for ch in value:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            current.append(ch)
            escaped = True
        elif ch == '"':
            current.append(ch)
            quoted = not quoted
        elif ch == ";" and not quoted:
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
    out.append("".join(current))
    return out


@dataclass
class Part:
    """One body part: its headers (names lower-cased) and raw bytes."""

    headers: dict[str, str]
    data: bytes
    preamble: bool = False
    _disposition: tuple[str, dict[str, str]] | None = field(default=None, repr=False)

    @property
    def disposition(self) -> tuple[str, dict[str, str]] | None:
        """(``form-data`` | ``attachment`` | ..., params) or None without the header."""
        raw = self.headers.get("content-disposition")
        if raw is None:
            return None
        if self._disposition is None:
            self._disposition = parse_header(raw)
        return self._disposition

    @property
    def name(self) -> str | None:
        disp = self.disposition
        return disp[1].get("name") if disp else None

    @property
    def filename(self) -> str | None:
        disp = self.disposition
        return disp[1].get("filename") if disp else None

    @property
    def content_type(self) -> str | None:
        """The declared media type without parameters (lower case), or None if undeclared."""
        raw = self.headers.get("content-type")
        if raw is None:
            return None
        return parse_header(raw)[0] or None

    @property
    def charset(self) -> str:
        raw = self.headers.get("content-type")
        if raw is None:
            return "utf-8"
        return parse_header(raw)[1].get("charset", "utf-8")

    def text(self) -> str:
        """The body decoded with its declared charset (UTF-8 by default).

        Undecodable bytes (a malformed or cut-off upload) become U+FFFD rather than raising,
        so a text field fails its own validation with a RingCentral-shaped 400 instead of
        crashing the handler into a plain-text 500."""
        try:
            return self.data.decode(self.charset, errors="replace")
        except LookupError:
            return self.data.decode("utf-8", errors="replace")


def _delimiter_positions(body: bytes, delim: bytes) -> list[int]:
    """Offsets of ``--boundary`` occurrences that start a line."""
    out: list[int] = []
    i = 0
    while True:
        j = body.find(delim, i)
        if j < 0:
            return out
        if j == 0 or body[j - 1:j] == b"\n":
            out.append(j)
        i = j + 1


def _strip_line_break(chunk: bytes) -> bytes:
    """Drop the CRLF (or bare LF) that belongs to the following delimiter."""
    if chunk.endswith(b"\r\n"):
        return chunk[:-2]
    if chunk.endswith(b"\n"):
        return chunk[:-1]
    return chunk


def _parse_part(raw: bytes) -> Part:
    if raw.startswith(b"\r\n"):
        return Part({}, raw[2:])
    if raw.startswith(b"\n"):
        return Part({}, raw[1:])
    candidates = [(raw.find(sep), sep) for sep in (b"\r\n\r\n", b"\n\n")]
    found = [(i, sep) for i, sep in candidates if i >= 0]
    if not found:
        raise MultipartError("part headers are not terminated by an empty line")
    end, sep = min(found)
    head = raw[:end].decode("latin-1")
    headers: dict[str, str] = {}
    last: str | None = None
    for line in head.replace("\r\n", "\n").split("\n"):
        if line[:1] in (" ", "\t") and last is not None:
            headers[last] += " " + line.strip()
            continue
        key, sep2, value = line.partition(":")
        if not sep2:
            raise MultipartError(f"malformed part header line {line!r}")
        last = key.strip().lower()
        headers[last] = value.strip()
    # Header values are bytes on the wire; most clients send UTF-8 file names.
    for key, value in headers.items():
        try:
            headers[key] = value.encode("latin-1").decode("utf-8")
        except UnicodeDecodeError:
            pass
    return Part(headers, raw[end + len(sep):])


def parse_multipart(content_type: str, body: bytes, *, keep_preamble: bool = False) -> list[Part]:
    """Parse a ``multipart/*`` body into its parts, in order.

    With ``keep_preamble`` a non-blank preamble (text before the first delimiter) is
    returned as a first ``Part`` with ``preamble=True``: RingCentral's own greeting
    example puts the JSON there. Raises ``MultipartError`` on a malformed entity.
    """
    mtype, params = parse_header(content_type)
    if not mtype.startswith("multipart/"):
        raise MultipartError(f"not a multipart media type: {mtype!r}")
    boundary = params.get("boundary")
    if not boundary:
        raise MultipartError("multipart media type without a boundary parameter")
    delim = b"--" + boundary.encode("latin-1")
    positions = _delimiter_positions(body, delim)
    if not positions:
        raise MultipartError("no boundary delimiter in the body")
    # A real delimiter line is "--boundary" then "--" (the close) or optional transport
    # padding and a line break; the boundary string elsewhere at a line start is data.
    real: list[tuple[int, int, bool]] = []  # (delimiter offset, content offset, closing)
    for pos in positions:
        after = pos + len(delim)
        if body[after:after + 2] == b"--":
            real.append((pos, after + 2, True))
            break
        while body[after:after + 1] in (b" ", b"\t"):
            after += 1
        if body[after:after + 2] == b"\r\n":
            real.append((pos, after + 2, False))
        elif body[after:after + 1] == b"\n":
            real.append((pos, after + 1, False))
    if not real:
        raise MultipartError("no boundary delimiter in the body")
    parts: list[Part] = []
    preamble = _strip_line_break(body[:real[0][0]])
    if keep_preamble and preamble.strip():
        parts.append(Part({}, preamble.strip(), preamble=True))
    closed = real[-1][2]
    for (_, content, _), (nxt, _, _) in itertools.pairwise(real):
        parts.append(_parse_part(_strip_line_break(body[content:nxt])))
    if not closed:
        raise MultipartError("multipart body has no closing delimiter")
    return parts


__all__ = ["MultipartError", "Part", "parse_header", "parse_multipart"]
