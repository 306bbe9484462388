"""Sending: fax, SMS, MMS and greeting upload, plus status polling of what was sent.

Why this shape (docs/ringcentral.md §7):

* A send is **never retried** here (and the client never retries a POST): a fax or SMS
  that reached the server but whose answer was lost would go out twice, billed twice. A
  send that fails with a transport error or a deadline has an *unknown* outcome; the
  caller should look for it in the message store before sending again.
* Everything the server would reject for a reason we can see locally (empty file, too
  many attachments, text too long) is rejected before spending a request of the group's
  budget (Heavy 10/min for fax and greetings, Medium 40/min for SMS/MMS).
* Multipart bodies follow what the SDKs send and the server accepts: a JSON part named
  ``json`` with filename ``request.json`` and ``Content-Type: application/json``, then file
  parts named ``attachment`` each with a filename and its own ``Content-Type``. Greetings
  take a ``type`` text field (and ``answeringRuleId``) plus a file part named ``binary``.
* Sends are asynchronous on the server: the result is ``Queued`` and changes later; poll
  with ``get_message`` (Light) until ``is_final``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from rcfs.api.listing import ext_path, get_message
from rcfs.api.models import Greeting, Message, format_time, parse_greeting, parse_message
from rcfs.api.protocol import ApiClient
from rcfs.api.scheduler import Priority

__all__ = [
    "FAX_MAX_BYTES",
    "GREETING_TYPES",
    "MMS_MAX_ATTACHMENTS",
    "MMS_MAX_BYTES",
    "MMS_MAX_RECIPIENTS",
    "SMS_MAX_UTF16",
    "FaxRecipient",
    "SendValidationError",
    "UploadFile",
    "get_message",
    "is_final",
    "safe_upload_name",
    "send_fax",
    "send_mms",
    "send_sms",
    "upload_greeting",
]

FAX_MAX_BYTES = 50 * 1024 * 1024
"""Combined fax attachments (docs: 50 MB)."""
FAX_COVER_TEXT_MAX = 1024
MMS_MAX_ATTACHMENTS = 10
MMS_MAX_BYTES = 1_500_000
MMS_MAX_RECIPIENTS = 10
SMS_MAX_UTF16 = 1000
"""SMS text limit in UTF-16 code units: an emoji counts 2."""
GREETING_TYPES = frozenset({"Introductory", "Announcement", "ConnectingMessage",
                            "ConnectingAudio", "Voicemail", "Unavailable", "HoldMusic",
                            "TemplateGreeting"})
GREETING_CONTENT_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/mpeg",
                                    "audio/mp3"})

_FAX_FINAL = frozenset({"Sent", "SendingFailed", "Received"})
_SMS_FINAL = frozenset({"Delivered", "DeliveryFailed", "SendingFailed", "Received"})
# Replaced in upload names: the fax service refuses ``&@#$%^*`` in file names
# (docs/ringcentral.md §7.1); quotes, slashes and control characters go too, as they do not
# belong in a Content-Disposition filename.
_UNSAFE_NAME = re.compile(r"[&@#$%^*\"\\/\x00-\x1f]")


class SendValidationError(ValueError):
    """The send would certainly be rejected; nothing was sent."""


@dataclass(frozen=True, slots=True)
class UploadFile:
    """One file to send. ``content_type`` is sent as the part's Content-Type."""

    file_name: str
    content: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class FaxRecipient:
    phone_number: str
    name: str | None = None  # printed on the cover page


def safe_upload_name(name: str, fallback: str) -> str:
    """The name a file is sent under (its Content-Disposition filename), ``fallback`` when
    nothing is left; the outbox matches sent messages by it too."""
    cleaned = _UNSAFE_NAME.sub("_", name).strip().strip(".")
    return cleaned or fallback


def _check_files(files: Sequence[UploadFile], what: str) -> None:
    if not files:
        raise SendValidationError(f"{what}: at least one file is required")
    for f in files:
        if not f.content:
            raise SendValidationError(f"{what}: {f.file_name!r} is empty")


def _recipients(to: str | Iterable[str | FaxRecipient]) -> list[FaxRecipient]:
    items = [to] if isinstance(to, str) else list(to)
    out = [r if isinstance(r, FaxRecipient) else FaxRecipient(str(r)) for r in items]
    if not out or any(not r.phone_number.strip() for r in out):
        raise SendValidationError("at least one non-empty recipient number is required")
    return out


def _json_part(body: dict[str, Any]) -> tuple[str, tuple[str, bytes, str]]:
    return ("json", ("request.json", json.dumps(body).encode("utf-8"), "application/json"))


def _file_parts(files: Sequence[UploadFile], field: str = "attachment"
                ) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [(field, (safe_upload_name(f.file_name, f"file{i}"), f.content, f.content_type))
            for i, f in enumerate(files, 1)]


async def send_fax(
    client: ApiClient,
    to: str | Iterable[str | FaxRecipient],
    files: Sequence[UploadFile],
    *,
    resolution: Literal["High", "Low"] | None = None,
    cover_index: int | None = None,
    cover_page_text: str | None = None,
    send_time: datetime | str | None = None,
    iso_code: str | None = None,
    ext_id: str = "~",
    priority: Priority = Priority.METADATA,
    deadline: float | None = None,
) -> Message:
    """Send a fax (Heavy). There is no ``from``: the server uses the extension's fax number.

    ``cover_index=0`` means no cover page; ``None`` uses the user's default. ``send_time``
    in the future schedules it (cancel with ``delete_message``).
    """
    recipients = _recipients(to)
    _check_files(files, "fax")
    total = sum(len(f.content) for f in files)
    if total > FAX_MAX_BYTES:
        raise SendValidationError(f"fax attachments total {total} bytes > {FAX_MAX_BYTES}")
    if cover_page_text is not None and len(cover_page_text) > FAX_COVER_TEXT_MAX:
        raise SendValidationError(f"cover page text longer than {FAX_COVER_TEXT_MAX}")
    if resolution is not None and resolution not in ("High", "Low"):
        raise SendValidationError(f"fax resolution must be High or Low, not {resolution!r}")
    body: dict[str, Any] = {"to": [
        {"phoneNumber": r.phone_number, **({"name": r.name} if r.name else {})}
        for r in recipients]}
    if resolution is not None:
        body["faxResolution"] = resolution
    if cover_index is not None:
        body["coverIndex"] = cover_index
    if cover_page_text is not None:
        body["coverPageText"] = cover_page_text
    if send_time is not None:
        body["sendTime"] = format_time(send_time)
    if iso_code is not None:
        body["isoCode"] = iso_code
    response = await client.request(
        "POST", ext_path(ext_id, "/fax"), files=[_json_part(body), *_file_parts(files)],
        priority=priority, deadline=deadline)
    return parse_message(response.json())


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _numbers(to: str | Iterable[str]) -> list[str]:
    items = [to] if isinstance(to, str) else [str(t) for t in to]
    if not items or any(not t.strip() for t in items):
        raise SendValidationError("at least one non-empty recipient number is required")
    return items


async def send_sms(
    client: ApiClient,
    from_number: str,
    to: str | Iterable[str],
    text: str,
    *,
    ext_id: str = "~",
    priority: Priority = Priority.METADATA,
    deadline: float | None = None,
) -> Message:
    """Send an SMS (Medium). ``from_number`` must be one of the caller's numbers with the
    ``SmsSender`` feature (see ``list_phone_numbers``); the server checks it too."""
    numbers = _numbers(to)
    if not from_number.strip():
        raise SendValidationError("an SMS needs a from number")
    if not text:
        raise SendValidationError("an SMS needs text")
    if utf16_units(text) > SMS_MAX_UTF16:
        raise SendValidationError(f"SMS text longer than {SMS_MAX_UTF16} UTF-16 units")
    if len(numbers) > MMS_MAX_RECIPIENTS:
        raise SendValidationError(f"more than {MMS_MAX_RECIPIENTS} recipients")
    body = {"from": {"phoneNumber": from_number},
            "to": [{"phoneNumber": n} for n in numbers], "text": text}
    response = await client.request("POST", ext_path(ext_id, "/sms"), json=body,
                                    priority=priority, deadline=deadline)
    return parse_message(response.json())


async def send_mms(
    client: ApiClient,
    from_number: str,
    to: str | Iterable[str],
    files: Sequence[UploadFile],
    text: str | None = None,
    *,
    ext_id: str = "~",
    priority: Priority = Priority.METADATA,
    deadline: float | None = None,
) -> Message:
    """Send an MMS (``/sms`` with attachments, Medium): ≤10 files, ≤1.5 MB in total."""
    numbers = _numbers(to)
    if not from_number.strip():
        raise SendValidationError("an MMS needs a from number")
    _check_files(files, "MMS")
    if len(files) > MMS_MAX_ATTACHMENTS:
        raise SendValidationError(f"more than {MMS_MAX_ATTACHMENTS} MMS attachments")
    total = sum(len(f.content) for f in files)
    if total > MMS_MAX_BYTES:
        raise SendValidationError(f"MMS attachments total {total} bytes > {MMS_MAX_BYTES}")
    if len(numbers) > MMS_MAX_RECIPIENTS:
        raise SendValidationError(f"more than {MMS_MAX_RECIPIENTS} recipients")
    if text is not None and utf16_units(text) > SMS_MAX_UTF16:
        raise SendValidationError(f"MMS text longer than {SMS_MAX_UTF16} UTF-16 units")
    body: dict[str, Any] = {"from": {"phoneNumber": from_number},
                            "to": [{"phoneNumber": n} for n in numbers]}
    if text:
        body["text"] = text
    response = await client.request(
        "POST", ext_path(ext_id, "/sms"), files=[_json_part(body), *_file_parts(files)],
        priority=priority, deadline=deadline)
    return parse_message(response.json())


async def upload_greeting(
    client: ApiClient,
    greeting_type: str,
    file: UploadFile,
    *,
    answering_rule_id: str | None = None,
    apply: bool = False,
    ext_id: str = "~",
    priority: Priority = Priority.METADATA,
    deadline: float | None = None,
) -> Greeting:
    """Upload a custom greeting (Heavy). ``apply=False`` only stores it; ``apply=True``
    needs ``answering_rule_id`` (the server answers CMN-100 otherwise)."""
    if greeting_type not in GREETING_TYPES:
        raise SendValidationError(f"unknown greeting type {greeting_type!r}")
    if not file.content:
        raise SendValidationError("greeting audio is empty")
    if file.content_type.split(";")[0].strip().lower() not in GREETING_CONTENT_TYPES:
        raise SendValidationError(f"greetings must be WAV or MP3, not {file.content_type}")
    if apply and not answering_rule_id:
        raise SendValidationError("apply=True needs an answering rule id")
    data = {"type": greeting_type}
    if answering_rule_id:
        data["answeringRuleId"] = answering_rule_id
    response = await client.request(
        "POST", ext_path(ext_id, "/greeting"),
        params={"apply": "true" if apply else "false"}, data=data,
        files=_file_parts([file], field="binary"), priority=priority, deadline=deadline)
    return parse_greeting(response.json())


def is_final(message: Message, *, sent_is_final: bool = False) -> bool:
    """Whether a sent message's status will not change any more.

    Fax: ``Sent`` or ``SendingFailed`` (there is no delivery receipt). SMS/MMS/Pager:
    ``Delivered``, ``DeliveryFailed`` or ``SendingFailed``; ``Sent`` means "handed to the
    carrier", final only with ``sent_is_final`` (some carriers never report delivery, so a
    poller should also give up after a while). A deleted message (a cancelled scheduled fax)
    is final.
    """
    if message.availability in ("Deleted", "Purged"):
        return True
    status = message.message_status
    if status is None:
        return False
    if message.type == "Fax":
        return status in _FAX_FINAL
    return status in _SMS_FINAL or (sent_is_final and status == "Sent")
