"""Message-store records: messages, their parties and attachments, removals, sync results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from rcfs.api.models.values import (
    ModelError,
    Raw,
    json_object,
    opt_id,
    opt_int,
    opt_list,
    opt_map,
    opt_str,
    parse_time,
    parse_time_opt,
    req_id,
)

T = TypeVar("T")


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
    d = opt_map(d)
    return Party(
        phone_number=opt_str(d.get("phoneNumber")),
        extension_number=opt_str(d.get("extensionNumber")),
        name=opt_str(d.get("name")),
        extension_id=opt_id(d.get("extensionId")),
        location=opt_str(d.get("location")),
        message_status=opt_str(d.get("messageStatus")),
        fax_error_code=opt_str(d.get("faxErrorCode")),
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
    d = json_object(d, "attachment")
    uri = opt_str(d.get("uri"))
    if not uri:
        raise ModelError(f"attachment without 'uri': {dict(d)!r}"[:400])
    size = opt_int(d.get("size"))
    return Attachment(
        id=req_id(d, "id", "attachment"),
        uri=uri,
        type=opt_str(d.get("type")),
        content_type=opt_str(d.get("contentType")),
        size=size if size is not None and size >= 0 else None,
        file_name=opt_str(d.get("fileName")) or opt_str(d.get("filename")),
        vm_duration=opt_int(d.get("vmDuration")),
        width=opt_int(d.get("width")),
        height=opt_int(d.get("height")),
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
    value = opt_int(d.get("conversationId"))
    if value is None:
        value = opt_int(opt_map(d.get("conversation")).get("id"))
    return value


def parse_message(d: Any) -> Message:
    """Parse one message-store record (listing, single GET, batch item, sync, send result)."""
    d = json_object(d, "message")
    created = d.get("creationTime")
    if created is None:
        raise ModelError(f"message without 'creationTime': {dict(d)!r}"[:400])
    from_raw = d.get("from")
    return Message(
        id=req_id(d, "id", "message"),
        uri=opt_str(d.get("uri")),
        extension_id=opt_id(d.get("extensionId")),
        type=opt_str(d.get("type")),
        direction=opt_str(d.get("direction")),
        availability=opt_str(d.get("availability")) or "Alive",
        message_status=opt_str(d.get("messageStatus")),
        read_status=opt_str(d.get("readStatus")),
        creation_time=parse_time(created),
        last_modified_time=parse_time_opt(d.get("lastModifiedTime")),
        from_=parse_party(from_raw) if isinstance(from_raw, Mapping) else None,
        to=tuple(parse_party(p) for p in opt_list(d.get("to")) if isinstance(p, Mapping)),
        subject=opt_str(d.get("subject")),
        attachments=tuple(
            parse_attachment(a) for a in opt_list(d.get("attachments")) if isinstance(a, Mapping)
        ),
        conversation_id=_conversation_id(d),
        fax_page_count=opt_int(d.get("faxPageCount")),
        fax_resolution=opt_str(d.get("faxResolution")),
        vm_transcription_status=opt_str(d.get("vmTranscriptionStatus")),
        delivery_error_code=opt_str(d.get("deliveryErrorCode")),
        priority=opt_str(d.get("priority")),
        cover_index=opt_int(d.get("coverIndex")),
        cover_page_text=opt_str(d.get("coverPageText")),
        sms_sending_attempts_count=opt_int(d.get("smsSendingAttemptsCount")),
        raw=d,
    )


@dataclass(frozen=True, slots=True)
class RemovedMessage:
    """A message that left the live mailbox: an ISync stub ``{id, availability}`` (then
    ``message`` is ``None``) or a full record whose availability is Deleted/Purged."""

    id: str
    availability: str
    message: Message | None = None


# -- sync results (message-sync and call-log-sync) ------------------------------------------


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
