"""Helpers shared by the tests that talk to the emulator's REST API directly: the one check
of RingCentral's error shape, raw multipart bodies, a real ``RcClient`` logged in to an
emulator, the emulator's clock and RingCentral's time format."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import trio

from rcfs.api import Credentials, RcClient
from tests.emulator_proc import EmulatorProc, verify_for

# REST paths of the current user's account and extension, and the rate-limit group of each.
EXT = "/restapi/v1.0/account/~/extension/~"  # Light
ACCOUNT = "/restapi/v1.0/account/~"  # Light
CALL_LOG = EXT + "/call-log"  # Heavy
EXTENSIONS = "/restapi/v1.0/account/~/extension"  # Medium
STORE = EXT + "/message-store"  # Light
SYNC = EXT + "/message-sync"  # Light
DAY = 86400.0
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")  # K1, with milliseconds

ERROR_FIELDS = {"errorCode", "message", "parameterName", "parameterValue", "permissionName",
                "additionalInfo"}


def assert_error(r: httpx.Response, status: int, code: str, *, top: str | None = None,
                 **fields: str) -> dict[str, Any]:
    """Assert an error answer has docs/ringcentral.md §4.1's shape and return its body:
    ``status``, a JSON body whose ``errors[0].errorCode`` is ``code``, a top-level
    ``errorCode`` (``top`` for the legacy symbolic ones) and ``message`` mirroring
    ``errors[0]``, only documented keys in ``errors[0]``, and each of ``fields``
    (``parameterName="dateFrom"``...) in ``errors[0]``. Gateway errors (``AGW-*``) may
    have an empty ``errors[]``."""
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body: dict[str, Any] = r.json()
    if not body["errors"]:  # only gateway errors (AGW-*) may come without errors[]
        assert code.startswith("AGW-") and body["errorCode"] == code and not fields, body
        return body
    first = body["errors"][0]
    assert first["errorCode"] == code, body
    assert body["errorCode"] == (top or code), body
    assert body["message"] == first["message"], body
    assert set(first) <= ERROR_FIELDS, first
    for key, value in fields.items():
        assert first.get(key) == value, (key, body)
        assert body.get(key, value) == value, (key, body)
    return body


def emulator_client(emu: EmulatorProc, user: dict[str, Any] | None = None,
                    **kw: Any) -> RcClient:
    """A real RcClient logged in (JWT) as ``user`` (default: the admin) on ``emu``."""
    info = emu.info
    user = user or emu.user(admin=True)
    creds = Credentials(platform_url=info["platform_url"], client_id=info["client_id"],
                        client_secret=info["client_secret"], jwt=user["jwt"])
    return RcClient(creds, media_url=info["media_url"], verify=verify_for(info), **kw)


def raw_multipart(parts: list[tuple[dict[str, str], bytes]],
                  subtype: str = "mixed") -> tuple[dict[str, str], bytes]:
    """A multipart body written by hand (each part is (headers, data)), for the sends whose
    parts httpx would not produce: raw types, no filename, odd orders. Returns the request
    headers and the body."""
    boundary = "Boundary_" + uuid.uuid4().hex
    out = b""
    for headers, data in parts:
        out += f"--{boundary}\r\n".encode()
        out += "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
        out += b"\r\n" + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return {"Content-Type": f"multipart/{subtype}; boundary={boundary}"}, out


def emu_now(emu: EmulatorProc) -> datetime:
    """The emulator's clock now (what its "now" is, not this machine's)."""
    return datetime.fromtimestamp(emu.admin("GET", "/_emulator/clock")["epoch"], UTC)


def iso(when: float | datetime, *, millis: bool = True) -> str:
    """``when`` (a POSIX time or an aware datetime) as RingCentral writes times, in UTC:
    ``2024-05-01T12:00:00.123Z``; ``millis=False`` writes ``.000`` (whole seconds)."""
    dt = (when if isinstance(when, datetime) else datetime.fromtimestamp(when, UTC)).astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000 if millis else 0:03d}Z"


async def admin_async(emu: EmulatorProc, method: str, path: str, body: Any = None) -> Any:
    """``emu.admin`` from a trio task, in a worker thread (it blocks)."""
    return await trio.to_thread.run_sync(lambda: emu.admin(method, path, body))


def first_message(c: httpx.Client) -> dict[str, Any]:
    """A voicemail or fax (its attachment is large enough for small ranges)."""
    r = c.get(EXT + "/message-store", params={"dateFrom": "2000-01-01", "perPage": 1000,
                                              "messageType": ["VoiceMail", "Fax"]})
    assert r.status_code == 200, r.text
    for msg in r.json()["records"]:
        if msg.get("attachments"):
            return msg  # type: ignore[no-any-return]
    pytest.fail("no voicemail/fax with attachments in the seeded mailbox")


def ranged(entry: dict[str, Any]) -> bool:
    """An entry of the emulator's request log that asked for part of a file not starting
    at byte 0."""
    asked = entry.get("range") or ""
    return asked.startswith("bytes=") and not asked.startswith("bytes=0-")


def assert_one_download_at_most_one_ranged(gets: list[dict[str, Any]]) -> None:
    """README, Semantics, read: the first read of a file starts one download (from its
    start); a read far ahead of it may open one more, ranged, once per file. ``gets`` are
    one file's content requests from the emulator's log, in order."""
    summary = [(e.get("status"), e.get("range")) for e in gets]
    assert 1 <= len(gets) <= 2, summary
    assert not ranged(gets[0]), summary
    assert all(ranged(e) for e in gets[1:]), summary


# -- messages of one test, in a day of their own ---------------------------------------------

def epoch_of(text: str) -> float:
    """A timestamp of the API as a POSIX time."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def admin_extension_id(emu: EmulatorProc) -> str:
    """The admin user's extension id."""
    return str(emu.user(admin=True)["extension_id"])


def add_message(emu: EmulatorProc, when: float, *, ext: str | None = None, type: str = "SMS",
                direction: str = "Inbound", text: str = "hi", frm: str = "+12125550101",
                to: tuple[str, ...] = ("+16505551000",),
                attachments: list[dict[str, Any]] | None = None) -> int:
    """Add a message created at ``when`` (the admin's, by default); returns its id."""
    spec: dict[str, Any] = {
        "extension_id": ext or admin_extension_id(emu), "type": type, "direction": direction,
        "from": frm, "to": list(to), "creation_time": iso(when),
    }
    if type == "SMS":
        spec["text"] = text
    if attachments is not None:
        spec["attachments"] = attachments
    elif type == "VoiceMail":
        spec["attachments"] = [{"content_type": "audio/mpeg", "kind": "mp3"}]
    elif type == "Fax":
        spec["attachments"] = [{"content_type": "application/pdf", "kind": "pdf"}]
    return int(emu.admin("POST", "/_emulator/messages", spec)["id"])


_days = iter(range(1, 10_000))


def private_day() -> tuple[float, float]:
    """A private day in 2015 for one test's messages (disjoint from every other test)."""
    start = datetime(2015, 1, 1, tzinfo=UTC).timestamp() + next(_days) * DAY
    return start, start + DAY


def between(start: float, end: float) -> dict[str, str]:
    """Listing parameters for ``start`` to ``end``."""
    return {"dateFrom": iso(start), "dateTo": iso(end)}


def record_ids(body: dict[str, Any]) -> list[int]:
    """The ids of a listing's records, in order."""
    return [r["id"] for r in body["records"]]
