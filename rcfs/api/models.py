"""Typed, immutable views of RingCentral JSON objects, parsed in exactly one place.

Why one place: RingCentral's JSON is inconsistent across endpoints and versions
(docs/ringcentral.md §1.3, §5.1, §9): ids are JSON numbers in REST and strings in events,
``attachments[].size`` is often absent, the attachment file name is ``fileName`` in listings
but ``filename`` in the fax-create response, timestamps come with and without milliseconds,
enum sets grow over time, and ``conversationId`` exceeds 2^53. Every quirk is absorbed here
so the rest of rcfs works with one shape.

Conventions:

* Every id is a ``str`` (the canonical decimal form for numeric ids). Ids are used as file
  names, cache keys and URL path segments, and call-log / recording / greeting ids are
  opaque strings anyway; a single type avoids int/str mismatches in dictionaries.
  ``conversation_id`` is the one exception: an exact ``int`` (Python's ``json`` keeps big
  integers exact, and a digit string is converted without a float round trip).
* Enumerations (``type``, ``status`` ...) stay plain strings: an unknown value from a newer
  server is kept verbatim instead of failing the whole listing.
* URIs (``uri``, ``content_uri``) are kept verbatim; the HTTP client decides whether their
  origin is one it may send credentials to.
* Timestamps are timezone-aware UTC ``datetime`` objects.
* Each object keeps the JSON it came from in ``raw`` (excluded from equality, hashing and
  repr) so callers can write JSON sidecars without a second request.

Malformed required data (a message without ``id`` or ``creationTime``) raises
``ModelError``; everything optional degrades to ``None`` / empty.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

__all__ = [
    "EPOCH",
    "Account",
    "AnsweringRule",
    "ArchiveRef",
    "Attachment",
    "CallLeg",
    "CallLogRecord",
    "Extension",
    "Greeting",
    "GreetingRef",
    "Message",
    "ModelError",
    "Party",
    "PhoneNumber",
    "Recording",
    "RemovedMessage",
    "ReportTask",
    "SyncResult",
    "format_time",
    "parse_account",
    "parse_answering_rule",
    "parse_archive_ref",
    "parse_attachment",
    "parse_call_log_record",
    "parse_extension",
    "parse_greeting",
    "parse_message",
    "parse_party",
    "parse_phone_number",
    "parse_recording",
    "parse_report_task",
    "parse_time",
    "parse_time_opt",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Default ``dateFrom`` for full-history listings: the server's default window is 24 h."""

Raw = Mapping[str, Any]
T = TypeVar("T")


class ModelError(ValueError):
    """A response object lacks a required field or has one of an impossible type."""


# -- scalar helpers ----------------------------------------------------------------------------

_FRACTION = re.compile(r"(\.\d+)")
_DATE_ONLY = re.compile(r"^\d{4}(-\d{2}){0,2}$")


def parse_time(value: Any) -> datetime:
    """Parse an ISO 8601 timestamp as RingCentral writes it, into an aware UTC datetime.

    Accepts ``2018-10-08T09:17:27.000Z``, ``2019-07-31T20:01:58Z``, offsets (``+04:00``,
    ``+0400``), any number of fractional digits, naive values (taken as UTC, which is what
    the API means), date-only values, and epoch milliseconds as a number (push payloads).
    """
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, bool):
        raise ModelError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000.0, tz=UTC)
    if not isinstance(value, str) or not value.strip():
        raise ModelError(f"not a timestamp: {value!r}")
    text = value.strip()
    if _DATE_ONLY.match(text):
        parts = [int(p) for p in text.split("-")] + [1, 1]
        return datetime(parts[0], parts[1], parts[2], tzinfo=UTC)
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    # datetime.fromisoformat wants at most 6 fractional digits; servers may send more.
    text = _FRACTION.sub(lambda m: m.group(1)[:7], text, count=1)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ModelError(f"not a timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_time_opt(value: Any) -> datetime | None:
    """``parse_time`` for optional fields: absent or unparsable → ``None``."""
    if value is None or value == "":
        return None
    try:
        return parse_time(value)
    except ModelError:
        return None


def format_time(value: datetime | str) -> str:
    """Format a query timestamp (``dateFrom`` ...) as UTC ISO 8601 with ``Z``.

    Strings pass through unchanged so a caller can send a server-echoed value verbatim.
    Milliseconds are written only when present, so the epoch is ``1970-01-01T00:00:00Z``.
    """
    if isinstance(value, str):
        return value
    dt = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _id(value: Any) -> str | None:
    """An id as a canonical string; ints and digit strings agree (``5`` == ``"5"``)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text.isdigit():
            return str(int(text))
        return text
    return None


def _req_id(d: Raw, key: str, what: str) -> str:
    value = _id(d.get(key))
    if value is None:
        raise ModelError(f"{what} without {key!r}: {dict(d)!r}"[:400])
    return value


def _int(value: Any) -> int | None:
    """An optional integer from a JSON number or digit string; anything else → ``None``."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
    return None


def _str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _map(value: Any) -> Raw:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _obj(d: Any, what: str) -> Raw:
    if not isinstance(d, Mapping):
        raise ModelError(f"{what} is not a JSON object: {d!r}"[:400])
    return d


# -- account and extensions --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Account:
    """``GET /restapi/v1.0/account/~``."""

    id: str
    uri: str | None = None
    main_number: str | None = None
    status: str | None = None
    name: str | None = None
    raw: Raw = field(default_factory=dict, compare=False, repr=False)


def parse_account(d: Any) -> Account:
    d = _obj(d, "account")
    service = _map(d.get("serviceInfo"))
    name = _str(d.get("name")) or _str(d.get("companyName")) or _str(
        _map(service.get("brand")).get("name"))
    return Account(
        id=_req_id(d, "id", "account"),
        uri=_str(d.get("uri")),
        main_number=_str(d.get("mainNumber")),
        status=_str(d.get("status")),
        name=name,
        raw=d,
    )


@dataclass(frozen=True, slots=True)
class Extension:
    """An extension (user, call queue, ...) from ``…/extension`` or ``…/extension/~``."""

    id: str
    number: str | None
    name: str | None
    type: str | None
    status: str | None
    is_admin: bool
    uri: str | None = None
    account_id: str | None = None
    email: str | None = None
    raw: Raw = field(default_factory=dict, compare=False, repr=False)


def parse_extension(d: Any) -> Extension:
    d = _obj(d, "extension")
    contact = _map(d.get("contact"))
    name = _str(d.get("name"))
    if not name:
        full = " ".join(
            p for p in (_str(contact.get("firstName")), _str(contact.get("lastName"))) if p)
        name = full or None
    admin = _bool(_map(_map(d.get("permissions")).get("admin")).get("enabled"))
    return Extension(
        id=_req_id(d, "id", "extension"),
        number=_str(d.get("extensionNumber")),
        name=name,
        type=_str(d.get("type")),
        status=_str(d.get("status")),
        is_admin=bool(admin),
        uri=_str(d.get("uri")),
        account_id=_id(_map(d.get("account")).get("id")),
        email=_str(contact.get("email")),
        raw=d,
    )


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    """A number of an extension; ``features`` tells whether it may send SMS/MMS."""

    number: str
    features: tuple[str, ...] = ()
    id: str | None = None
    usage_type: str | None = None
    type: str | None = None
    raw: Raw = field(default_factory=dict, compare=False, repr=False)

    @property
    def can_send_sms(self) -> bool:
        return "SmsSender" in self.features or "A2PSmsSender" in self.features

    @property
    def can_send_mms(self) -> bool:
        return "MmsSender" in self.features


def parse_phone_number(d: Any) -> PhoneNumber:
    d = _obj(d, "phone number")
    number = _str(d.get("phoneNumber"))
    if not number:
        raise ModelError(f"phone number without 'phoneNumber': {dict(d)!r}"[:400])
    return PhoneNumber(
        number=number,
        features=tuple(f for f in (_str(x) for x in _list(d.get("features"))) if f),
        id=_id(d.get("id")),
        usage_type=_str(d.get("usageType")),
        type=_str(d.get("type")),
        raw=d,
    )


# -- messages ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Party:
    """A ``from``/``to`` entry. ``message_status`` and ``fax_error_code`` are the per-recipient
    state of an outbound message (a fax to two numbers can fail for one of them)."""

    phone_number: str | None = None
    extension_number: str | None = None
    name: str | None = None
    extension_id: str | None = None
    location: str | None = None
    message_status: str | None = None
    fax_error_code: str | None = None
    raw: Raw = field(default_factory=dict, compare=False, repr=False)


def parse_party(d: Any) -> Party:
    d = _map(d)
    return Party(
        phone_number=_str(d.get("phoneNumber")),
        extension_number=_str(d.get("extensionNumber")),
        name=_str(d.get("name")),
        extension_id=_id(d.get("extensionId")),
        location=_str(d.get("location")),
        message_status=_str(d.get("messageStatus")),
        fax_error_code=_str(d.get("faxErrorCode")),
        raw=d,
    )


@dataclass(frozen=True, slots=True)
class Attachment:
    """A message attachment. ``size`` is often absent (docs/ringcentral.md §6.5): never
    assume it."""

    id: str
    uri: str
    type: str | None = None
    content_type: str | None = None
    size: int | None = None
    file_name: str | None = None
    vm_duration: int | None = None
    width: int | None = None
    height: int | None = None
    raw: Raw = field(default_factory=dict, compare=False, repr=False)


def parse_attachment(d: Any) -> Attachment:
    d = _obj(d, "attachment")
    uri = _str(d.get("uri"))
    if not uri:
        raise ModelError(f"attachment without 'uri': {dict(d)!r}"[:400])
    size = _int(d.get("size"))
    return Attachment(
        id=_req_id(d, "id", "attachment"),
        uri=uri,
        type=_str(d.get("type")),
        content_type=_str(d.get("contentType")),
        size=size if size is not None and size >= 0 else None,
        file_name=_str(d.get("fileName")) or _str(d.get("filename")),
        vm_duration=_int(d.get("vmDuration")),
        width=_int(d.get("width")),
        height=_int(d.get("height")),
        raw=d,
    )


@dataclass(frozen=True, slots=True)
class Message:
    """A message-store record (fax, voicemail, SMS/MMS, pager)."""

    id: str
    uri: str | None
    extension_id: str | None
    type: str | None
    direction: str | None
    availability: str
    message_status: str | None
    read_status: str | None
    creation_time: datetime
    last_modified_time: datetime | None
    from_: Party | None
    to: tuple[Party, ...]
    subject: str | None = None
    attachments: tuple[Attachment, ...] = ()
    conversation_id: int | None = None
    fax_page_count: int | None = None
    fax_resolution: str | None = None
    vm_transcription_status: str | None = None
    delivery_error_code: str | None = None
    priority: str | None = None
    cover_index: int | None = None
    cover_page_text: str | None = None
    sms_sending_attempts_count: int | None = None
    raw: Raw = field(default_factory=dict, compare=False, repr=False)


def _conversation_id(d: Raw) -> int | None:
    value = _int(d.get("conversationId"))
    if value is None:
        value = _int(_map(d.get("conversation")).get("id"))
    return value


def parse_message(d: Any) -> Message:
    """Parse one message-store record (listing, single GET, batch item, sync, send result)."""
    d = _obj(d, "message")
    created = d.get("creationTime")
    if created is None:
        raise ModelError(f"message without 'creationTime': {dict(d)!r}"[:400])
    from_raw = d.get("from")
    return Message(
        id=_req_id(d, "id", "message"),
        uri=_str(d.get("uri")),
        extension_id=_id(d.get("extensionId")),
        type=_str(d.get("type")),
        direction=_str(d.get("direction")),
        availability=_str(d.get("availability")) or "Alive",
        message_status=_str(d.get("messageStatus")),
        read_status=_str(d.get("readStatus")),
        creation_time=parse_time(created),
        last_modified_time=parse_time_opt(d.get("lastModifiedTime")),
        from_=parse_party(from_raw) if isinstance(from_raw, Mapping) else None,
        to=tuple(parse_party(p) for p in _list(d.get("to")) if isinstance(p, Mapping)),
        subject=_str(d.get("subject")),
        attachments=tuple(
            parse_attachment(a) for a in _list(d.get("attachments")) if isinstance(a, Mapping)
        ),
        conversation_id=_conversation_id(d),
        fax_page_count=_int(d.get("faxPageCount")),
        fax_resolution=_str(d.get("faxResolution")),
        vm_transcription_status=_str(d.get("vmTranscriptionStatus")),
        delivery_error_code=_str(d.get("deliveryErrorCode")),
        priority=_str(d.get("priority")),
        cover_index=_int(d.get("coverIndex")),
        cover_page_text=_str(d.get("coverPageText")),
        sms_sending_attempts_count=_int(d.get("smsSendingAttemptsCount")),
        raw=d,
    )


@dataclass(frozen=True, slots=True)
class RemovedMessage:
    """A message that left the live mailbox: an ISync stub ``{id, availability}`` (then
    ``message`` is ``None``) or a full record whose availability is Deleted/Purged."""

    id: str
    availability: str
    message: Message | None = None


# -- call log and recordings -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recording:
    """A call recording. The call-log ``recording`` object has no ``content_type`` and no
    ``duration``; ``GET …/recording/{id}`` has both. There is never a size."""

    id: str
    uri: str | None = None
    type: str | None = None
    content_uri: str | None = None
    content_type: str | None = None
    duration: int | None = None
    raw: Raw = field(default_factory=dict, compare=False, repr=False)


def parse_recording(d: Any) -> Recording:
    d = _obj(d, "recording")
    return Recording(
        id=_req_id(d, "id", "recording"),
        uri=_str(d.get("uri")),
        type=_str(d.get("type")),
        content_uri=_str(d.get("contentUri")),
        content_type=_str(d.get("contentType")),
        duration=_int(d.get("duration")),
        raw=d,
    )


def _recording_opt(value: Any) -> Recording | None:
    if isinstance(value, Mapping) and _id(value.get("id")) is not None:
        return parse_recording(value)
    return None


@dataclass(frozen=True, slots=True)
class CallLeg:
    """One leg of a multi-leg call (``view=Detailed``); each may carry its own recording."""

    start_time: datetime | None
    duration: int | None
    type: str | None
    direction: str | None
    action: str | None
    result: str | None
    from_: Party | None
    to: Party | None
    leg_type: str | None = None
    master: bool | None = None
    extension_id: str | None = None
    recording: Recording | None = None
    raw: Raw = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class CallLogRecord:
    """A call-log record (extension or company level)."""

    id: str
    session_id: str | None
    telephony_session_id: str | None
    start_time: datetime
    duration: int | None
    type: str | None
    direction: str | None
    action: str | None
    result: str | None
    from_: Party | None
    to: Party | None
    extension_id: str | None
    recording: Recording | None
    uri: str | None = None
    reason: str | None = None
    last_modified_time: datetime | None = None
    short_recording: bool = False
    deleted: bool = False
    message_id: str | None = None
    legs: tuple[CallLeg, ...] = ()
    raw: Raw = field(default_factory=dict, compare=False, repr=False)

    @property
    def recordings(self) -> tuple[Recording, ...]:
        """The record's recording plus those of its legs, each id once (transfers record one
        file per leg, docs/ringcentral.md §5.3)."""
        seen: dict[str, Recording] = {}
        for rec in (self.recording, *(leg.recording for leg in self.legs)):
            if rec is not None and rec.id not in seen:
                seen[rec.id] = rec
        return tuple(seen.values())


def _party_opt(value: Any) -> Party | None:
    return parse_party(value) if isinstance(value, Mapping) else None


def _extension_id_of(d: Raw) -> str | None:
    return _id(_map(d.get("extension")).get("id")) or _id(d.get("extensionId"))


def _parse_leg(d: Raw) -> CallLeg:
    return CallLeg(
        start_time=parse_time_opt(d.get("startTime")),
        duration=_int(d.get("duration")),
        type=_str(d.get("type")),
        direction=_str(d.get("direction")),
        action=_str(d.get("action")),
        result=_str(d.get("result")),
        from_=_party_opt(d.get("from")),
        to=_party_opt(d.get("to")),
        leg_type=_str(d.get("legType")),
        master=_bool(d.get("master")),
        extension_id=_extension_id_of(d),
        recording=_recording_opt(d.get("recording")),
        raw=d,
    )


def parse_call_log_record(d: Any) -> CallLogRecord:
    d = _obj(d, "call-log record")
    start = d.get("startTime")
    if start is None:
        raise ModelError(f"call-log record without 'startTime': {dict(d)!r}"[:400])
    message = _map(d.get("message"))
    return CallLogRecord(
        id=_req_id(d, "id", "call-log record"),
        session_id=_id(d.get("sessionId")),
        telephony_session_id=_str(d.get("telephonySessionId")),
        start_time=parse_time(start),
        duration=_int(d.get("duration")),
        type=_str(d.get("type")),
        direction=_str(d.get("direction")),
        action=_str(d.get("action")),
        result=_str(d.get("result")),
        from_=_party_opt(d.get("from")),
        to=_party_opt(d.get("to")),
        extension_id=_extension_id_of(d),
        recording=_recording_opt(d.get("recording")),
        uri=_str(d.get("uri")),
        reason=_str(d.get("reason")),
        last_modified_time=parse_time_opt(d.get("lastModifiedTime")),
        short_recording=bool(_bool(d.get("shortRecording"))),
        deleted=bool(_bool(d.get("deleted"))),
        message_id=_id(message.get("id")),
        legs=tuple(_parse_leg(leg) for leg in _list(d.get("legs")) if isinstance(leg, Mapping)),
        raw=d,
    )


# -- greetings ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GreetingRef:
    """A ``greetings[]`` entry of an answering rule: a custom greeting id or a preset."""

    type: str | None
    custom_id: str | None = None
    preset_id: str | None = None
    preset_name: str | None = None
    preset_uri: str | None = None


@dataclass(frozen=True, slots=True)
class AnsweringRule:
    id: str
    name: str | None
    type: str | None
    greetings: tuple[GreetingRef, ...] = ()
    enabled: bool | None = None
    uri: str | None = None
    raw: Raw = field(default_factory=dict, compare=False, repr=False)

    @property
    def custom_greeting_ids(self) -> tuple[str, ...]:
        return tuple(g.custom_id for g in self.greetings if g.custom_id)


def _parse_greeting_ref(d: Raw) -> GreetingRef:
    custom = _map(d.get("custom"))
    preset = _map(d.get("preset"))
    return GreetingRef(
        type=_str(d.get("type")),
        custom_id=_id(custom.get("id")),
        preset_id=_id(preset.get("id")),
        preset_name=_str(preset.get("name")),
        preset_uri=_str(preset.get("uri")),
    )


def parse_answering_rule(d: Any) -> AnsweringRule:
    d = _obj(d, "answering rule")
    return AnsweringRule(
        id=_req_id(d, "id", "answering rule"),
        name=_str(d.get("name")),
        type=_str(d.get("type")),
        greetings=tuple(
            _parse_greeting_ref(g) for g in _list(d.get("greetings")) if isinstance(g, Mapping)
        ),
        enabled=_bool(d.get("enabled")),
        uri=_str(d.get("uri")),
        raw=d,
    )


@dataclass(frozen=True, slots=True)
class Greeting:
    """A custom greeting (``GET …/greeting/{id}`` or the upload response). No size."""

    id: str
    type: str | None
    content_type: str | None
    content_uri: str | None
    answering_rule_id: str | None = None
    uri: str | None = None
    raw: Raw = field(default_factory=dict, compare=False, repr=False)


def parse_greeting(d: Any) -> Greeting:
    d = _obj(d, "greeting")
    return Greeting(
        id=_req_id(d, "id", "greeting"),
        type=_str(d.get("type")),
        content_type=_str(d.get("contentType")),
        content_uri=_str(d.get("contentUri")),
        answering_rule_id=_id(_map(d.get("answeringRule")).get("id")),
        uri=_str(d.get("uri")),
        raw=d,
    )


# -- message-store report (compliance export) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportTask:
    """A message-store-report task; ``status`` goes Accepted → InProgress → Completed."""

    id: str
    status: str | None
    creation_time: datetime | None
    uri: str | None = None
    last_modified_time: datetime | None = None
    start_time: datetime | None = None
    finish_time: datetime | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    message_types: tuple[str, ...] = ()
    account_id: str | None = None
    extension_id: str | None = None
    raw: Raw = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_finished(self) -> bool:
        return self.status in ("Completed", "Failed", "Cancelled")


def parse_report_task(d: Any) -> ReportTask:
    d = _obj(d, "report task")
    return ReportTask(
        id=_req_id(d, "id", "report task"),
        status=_str(d.get("status")),
        creation_time=parse_time_opt(d.get("creationTime")),
        uri=_str(d.get("uri")),
        last_modified_time=parse_time_opt(d.get("lastModifiedTime")),
        start_time=parse_time_opt(d.get("startTime")),
        finish_time=parse_time_opt(d.get("finishTime")),
        date_from=parse_time_opt(d.get("dateFrom")),
        date_to=parse_time_opt(d.get("dateTo")),
        message_types=tuple(t for t in (_str(x) for x in _list(d.get("messageTypes"))) if t),
        account_id=_id(d.get("accountId")),
        extension_id=_id(d.get("extensionId")),
        raw=d,
    )


@dataclass(frozen=True, slots=True)
class ArchiveRef:
    """One archive of a completed report: one of the few objects with a size up front."""

    uri: str
    size: int | None


def parse_archive_ref(d: Any) -> ArchiveRef:
    d = _obj(d, "archive")
    uri = _str(d.get("uri"))
    if not uri:
        raise ModelError(f"archive without 'uri': {dict(d)!r}"[:400])
    return ArchiveRef(uri=uri, size=_int(d.get("size")))


# -- sync --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyncResult(Generic[T]):
    """The outcome of one sync step (message-sync or call-log-sync).

    ``full`` is True when this step was a full synchronisation (first run, or the server
    invalidated the token): the caller should then treat ``records`` as the complete current
    state of the synced window and drop what it knew that is absent (if
    ``older_records_exist`` is False). Otherwise ``records`` are upserts and ``removed``
    deletions. ``sync_token`` is what the caller persists for the next run.
    """

    records: tuple[T, ...]
    sync_token: str | None
    sync_time: datetime | None
    older_records_exist: bool = False
    removed: tuple[RemovedMessage, ...] = ()
    full: bool = False
    sync_type: str = "ISync"
    removed_ids: tuple[str, ...] = ()
    """Ids that left the live set (message stubs, Deleted/Purged records, deleted calls)."""
