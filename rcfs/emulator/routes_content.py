"""Binary content downloads: message attachments, call recordings, greetings and
message-store-report archives (docs/ringcentral.md §13 H1-H9, A3, B18, C6, D2).

Every kind goes through ``serve_blob``, which implements Range (RFC 7233, one range),
``contentDisposition`` / ``contentDispositionFilename`` and the content faults injected by
the middleware (``request.scope["rc_faults"]``, see faults.py), so a client sees the same
server behaviour whatever it downloads.  Bodies are streamed in 64 KiB slices of the blob's
bytes through a memoryview; nothing copies the whole body per chunk.

Undocumented choices (I): a request with several ranges gets a 206 for the first one; a
syntactically invalid Range is ignored (200, full body); ``Accept-Ranges: bytes`` is sent;
HEAD returns the GET headers without a body and counts like a GET; a ``filename`` that is not
a plain token is quoted (plus ``filename*`` when not ASCII); recording and greeting content on
the platform host is a gateway 404 (``AGW-404``) unless ``recording_content_on_platform``;
the company greeting path serves any greeting id of the account; recording content needs
only the ``ReadCallRecording`` app scope (no per-extension check).

Faults (faults.py): ``short206`` applies to ranged requests only, ``partial_200`` to
requests for the whole object (plain, or ``bytes=0-``); ``reset``/``lie_length`` end the
body by raising ``ConnectionDropped`` inside the streaming iterator, which makes uvicorn
close the socket mid-body.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from rcfs.emulator.core import emulator_of
from rcfs.emulator.errors import agw_404, invalid_param, not_found, rc_error
from rcfs.emulator.faults import CONTENT_KINDS, FaultRule
from rcfs.emulator.message_render import find_message
from rcfs.emulator.routes_reports import archive_expired
from rcfs.emulator.store import Blob

CHUNK = 64 * 1024

_EXTENSIONS = {
    "audio/x-wav": "wav", "audio/wav": "wav", "audio/wave": "wav", "audio/mpeg": "mp3",
    "audio/mp3": "mp3", "application/pdf": "pdf", "image/tiff": "tiff", "text/plain": "txt",
    "image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/bmp": "bmp",
    "application/zip": "zip", "text/vcard": "vcf", "video/mp4": "mp4", "audio/mp4": "m4a",
    "audio/amr": "amr", "application/rtf": "rtf", "application/gzip": "gz",
}
_TOKEN = re.compile(r"[A-Za-z0-9._+\-()~!]+")
_RANGE = re.compile(r"\s*([0-9]*)\s*-\s*([0-9]*)\s*")


class ConnectionDropped(Exception):
    """Raised inside a body iterator so uvicorn closes the socket mid-body (faults)."""


class _QuietDrops(logging.Filter):
    """An injected drop is not a server bug: log one line instead of a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ConnectionDropped):
            record.msg, record.args, record.exc_info, record.exc_text = str(exc), (), None, None
        return True


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


def extension_for(content_type: str) -> str:
    """File extension RingCentral uses in ``Content-Disposition`` for a media type."""
    base = content_type.split(";", 1)[0].strip().lower()
    if base in _EXTENSIONS:
        return _EXTENSIONS[base]
    guessed = mimetypes.guess_extension(base)
    return guessed.lstrip(".") if guessed else "bin"


def _disposition(request: Request, filename: str) -> str:
    q = request.query_params
    kind = q.get("contentDisposition") or "Inline"
    if kind.lower() not in ("inline", "attachment"):
        raise invalid_param("contentDisposition")
    name = q.get("contentDispositionFilename") or filename
    if _TOKEN.fullmatch(name):
        return f"{kind.lower()};filename={name}"
    # Not a plain token: quote it, and add the RFC 6266 UTF-8 form for non-ASCII names.
    name = "".join("_" if ord(c) < 32 or ord(c) == 127 else c for c in name)
    ascii_name = name.encode("ascii", "replace").decode().replace("\\", "_").replace('"', "_")
    value = f'{kind.lower()};filename="{ascii_name}"'
    if not name.isascii():
        value += f";filename*=UTF-8''{quote(name, safe='')}"
    return value


class _Unsatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The first byte range of ``header`` as inclusive ``(start, end)``, clamped to the body;
    None when absent or malformed (served whole); ``_Unsatisfiable`` when it starts past the
    end."""
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        return None
    m = _RANGE.fullmatch(spec.split(",", 1)[0])
    if m is None or not (m.group(1) or m.group(2)):
        return None
    lo, hi = m.group(1), m.group(2)
    if not lo:
        n = int(hi)
        if n == 0 or size == 0:
            raise _Unsatisfiable
        return max(0, size - n), size - 1
    start = int(lo)
    if hi and int(hi) < start:
        return None  # syntactically invalid (RFC 7233 §2.1): ignored
    if start >= size:
        raise _Unsatisfiable
    end = int(hi) if hi else size - 1
    return start, min(end, size - 1)


def _faults(request: Request) -> dict[str, FaultRule]:
    rules: list[FaultRule] = request.scope.get("rc_faults") or []
    out: dict[str, FaultRule] = {}
    for rule in rules:
        if rule.kind in CONTENT_KINDS and rule.kind not in out:
            out[rule.kind] = rule
    return out


def _int(rule: FaultRule, name: str, default: int) -> int:
    value: Any = rule.params.get(name)
    return default if value is None else max(0, int(value))


async def _body(data: bytes, start: int, stop: int, *, chunk: int, bps: float | None,
                cut_after: int | None, drop_at_end: bool) -> AsyncIterator[bytes]:
    """Yield ``data[start:stop]`` in slices; optionally throttled, cut short or dropped."""
    view = memoryview(data)
    pos = start
    sent = 0
    while pos < stop:
        n = min(chunk, stop - pos)
        if cut_after is not None and sent + n >= cut_after:
            n = cut_after - sent
            if n > 0:
                yield bytes(view[pos:pos + n])
            raise ConnectionDropped(f"fault: connection reset after {cut_after} bytes")
        yield bytes(view[pos:pos + n])
        pos += n
        sent += n
        if bps:
            await asyncio.sleep(n / bps)
    if drop_at_end:
        raise ConnectionDropped("fault: body shorter than Content-Length")


def serve_blob(request: Request, blob: Blob, *, filename: str, group: str) -> Response:
    """Answer a content GET for ``blob`` (H1-H6, H9) with the content faults applied.

    The caller normally has authenticated and counted the request already (so unknown ids
    cost a request too); if it has not, it is counted here in ``group`` (C6, H8)."""
    if request.scope.get("rc_group") is None:
        emulator_of(request).api_call(request, group)
    data = blob.bytes()
    size = len(data)
    headers = {
        "Content-Type": blob.content_type,
        "Content-Disposition": _disposition(request, filename),
        "Accept-Ranges": "bytes",
    }
    faults = _faults(request)
    asked = request.headers.get("range")
    try:
        rng = None if "ignore_range" in faults else parse_range(asked, size)
    except _Unsatisfiable:
        raise rc_error(416, "CMN-107", "Requested range not satisfiable",
                       headers={"Content-Range": f"bytes */{size}"}) from None
    # A request for the whole object (a plain GET, or ``bytes=0-`` as rcfs asks) may get a
    # 206 of a first chunk only (H6b).
    whole = not asked or asked.replace(" ", "").lower() == "bytes=0-"
    if "partial_200" in faults and size > 0 and whole:
        part = _int(faults["partial_200"], "bytes", (size + 1) // 2)
        rng = (0, max(1, min(part, size)) - 1)
    elif rng is not None and "short206" in faults:
        want = rng[1] - rng[0] + 1
        part = max(1, min(_int(faults["short206"], "bytes", (want + 1) // 2), want))
        rng = (rng[0], rng[0] + part - 1)
    status = 200
    start, stop = 0, size
    if rng is not None:
        status = 206
        start, stop = rng[0], rng[1] + 1
        headers["Content-Range"] = f"bytes {rng[0]}-{rng[1]}/{size}"
    length = stop - start
    declared = length
    if "lie_length" in faults:
        declared = length + max(1, _int(faults["lie_length"], "extra", 1024))
    if "no_length" not in faults:
        headers["Content-Length"] = str(declared)
    if request.method == "HEAD":
        return Response(b"", status, headers=headers)
    cut_after = None
    if "reset" in faults:
        cut_after = min(length, _int(faults["reset"], "after_bytes", length // 2))
    bps = None
    chunk = CHUNK
    if "bandwidth" in faults:
        bps = float(faults["bandwidth"].params.get("bytes_per_second", 65536))
        bps = max(bps, 1.0)
        chunk = max(1, min(CHUNK, int(bps / 20)))
    simple = cut_after is None and bps is None and "lie_length" not in faults
    if simple and length <= CHUNK and "no_length" not in faults:
        return Response(data[start:stop], status, headers=headers)
    return StreamingResponse(
        _body(data, start, stop, chunk=chunk, bps=bps, cut_after=cut_after,
              drop_at_end="lie_length" in faults),
        status, headers=headers,
    )


# -- routes ------------------------------------------------------------------------------------


async def message_content(request: Request) -> Response:
    """Message attachment content: Medium, both hosts (H7, H8)."""
    emu = emulator_of(request)
    caller = emu.api_call(request, "Medium", scope="ReadMessages")
    p = request.path_params
    ext = emu.extension(caller, p["accountId"], p["extensionId"])
    msg = find_message(emu, ext, p["messageId"])
    if msg is None:
        raise not_found("messageId")
    att = next((a for a in msg.attachments if str(a.id) == p["attachmentId"]), None)
    if att is None or msg.availability == "Purged":
        raise not_found("attachmentId")  # purged messages keep metadata, lose content (E12)
    name = f"{att.id}.{extension_for(att.blob.content_type)}"
    return serve_blob(request, att.blob, filename=name, group="Medium")


def _media_only(request: Request) -> None:
    """Recording/greeting content lives on the media host; the platform host answers 404
    unless configured otherwise (H7)."""
    emu = emulator_of(request)
    on_platform = request.scope.get("rc_origin") == "platform"
    if on_platform and not emu.config.recording_content_on_platform:
        raise agw_404()


async def recording_content(request: Request) -> Response:
    _media_only(request)
    emu = emulator_of(request)
    caller = emu.api_call(request, "Heavy", scope="ReadCallRecording")
    emu.account(caller, request.path_params["accountId"])
    rec = emu.store.recordings.get(request.path_params["recordingId"])
    if rec is None or rec.available_at > emu.clock.now():
        raise not_found("callRecordingId")  # unknown, or still being processed (G5)
    name = f"{rec.id}.{extension_for(rec.blob.content_type)}"
    return serve_blob(request, rec.blob, filename=name, group="Heavy")


async def extension_greeting_content(request: Request) -> Response:
    _media_only(request)
    emu = emulator_of(request)
    caller = emu.api_call(request, "Heavy", scope="ReadAccounts")
    p = request.path_params
    ext = emu.extension(caller, p["accountId"], p["extensionId"])
    greeting = emu.store.greetings.get(p["greetingId"])
    if greeting is None or greeting.extension_id != ext.id:
        raise not_found("greetingId")
    name = f"{greeting.id}.{extension_for(greeting.blob.content_type)}"
    return serve_blob(request, greeting.blob, filename=name, group="Heavy")


async def account_greeting_content(request: Request) -> Response:
    _media_only(request)
    emu = emulator_of(request)
    caller = emu.api_call(request, "Heavy", scope="ReadAccounts")
    emu.account(caller, request.path_params["accountId"])
    greeting = emu.store.greetings.get(request.path_params["greetingId"])
    if greeting is None:
        raise not_found("greetingId")
    name = f"{greeting.id}.{extension_for(greeting.blob.content_type)}"
    return serve_blob(request, greeting.blob, filename=name, group="Heavy")


async def report_archive(request: Request) -> Response:
    """A message-store-report archive zip: Heavy, admin only (J4-J6)."""
    emu = emulator_of(request)
    caller = emu.api_call(request, "Heavy", scope="ReadMessages")
    p = request.path_params
    emu.account(caller, p["accountId"])
    if not caller.is_admin:
        raise rc_error(403, "CMN-408", "In order to call this API endpoint, user needs to have "
                       "[Users] permission granted", permissionName="Users")
    task = emu.store.reports.get(p["taskId"])
    if task is None:
        raise not_found("taskId")
    raw = p["archiveId"]
    if not raw.isdigit() or int(raw) >= len(task.archives) or archive_expired(emu, request):
        raise not_found("archiveId")
    blob = task.archives[int(raw)]
    return serve_blob(request, blob, filename=f"{raw}.{extension_for(blob.content_type)}",
                      group="Heavy")


def routes() -> list[BaseRoute]:
    acc = "/restapi/v1.0/account/{accountId}"
    ext = acc + "/extension/{extensionId}"
    return [
        Route(ext + "/message-store/{messageId}/content/{attachmentId}", message_content,
              methods=["GET"]),
        Route(acc + "/recording/{recordingId}/content", recording_content, methods=["GET"]),
        Route(ext + "/greeting/{greetingId}/content", extension_greeting_content,
              methods=["GET"]),
        Route(acc + "/greeting/{greetingId}/content", account_greeting_content,
              methods=["GET"]),
        Route(acc + "/message-store-report/{taskId}/archive/{archiveId}", report_archive,
              methods=["GET"]),
    ]


__all__ = ["ConnectionDropped", "extension_for", "parse_range", "routes", "serve_blob"]
