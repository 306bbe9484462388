"""How a stored message appears in API answers (message store, sync, events, reports).

First its lifecycle is settled against the emulator clock (``settle``: Deleted -> Purged ->
gone, applied lazily as the ``rcfs.emulator.routes_messages`` docstring explains), then it
is rendered as RingCentral's JSON (``render_message``, ``render_attachment``,
``render_deleted``).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

from rcfs.emulator import media
from rcfs.emulator.core import Emulator, iso
from rcfs.emulator.origin import content_uri
from rcfs.emulator.store import Attachment, Blob, Extension, Message

__all__ = ["attachment_uri", "blob_size", "find_message", "live", "render_attachment",
           "render_deleted", "render_message", "settle"]

# -- lifecycle ---------------------------------------------------------------------------------


def settle(emu: Emulator, msg: Message, now: float | None = None) -> bool:
    """Apply the due Deleted -> Purged -> gone transitions; False once the message is gone.

    Transition times derive from ``deleted_at`` / ``purged_at`` and the configured delays, so
    the result is the same whenever it is computed."""
    if msg.gone:
        return False
    if msg.availability == "Alive":
        return True
    now = emu.clock.now() if now is None else now
    cfg = emu.config
    if msg.availability == "Deleted":
        base = msg.deleted_at if msg.deleted_at is not None else msg.last_modified_time
        due = base + cfg.deleted_to_purged
        if now >= due:
            msg.availability = "Purged"
            msg.purged_at = due
            msg.last_modified_time = max(msg.last_modified_time, due)
    if msg.availability == "Purged":
        base = msg.purged_at if msg.purged_at is not None else msg.last_modified_time
        if now >= base + cfg.purged_to_gone:
            msg.gone = True
            if emu.store.messages.get(msg.id) is msg:
                emu.store.remove_message(msg.id)
            return False
    return True


def live(emu: Emulator, msgs: Iterable[Message]) -> list[Message]:
    """The messages that still exist, settled; cheap for the common all-Alive case."""
    now = emu.clock.now()
    return [m for m in msgs if m.availability == "Alive" and not m.gone or settle(emu, m, now)]


def find_message(emu: Emulator, ext: Extension, raw_id: str) -> Message | None:
    """The extension's message ``raw_id`` (settled), or None if unknown or gone."""
    try:
        mid = int(raw_id)
    except ValueError:
        return None
    msg = emu.store.messages.get(mid)
    if msg is None or msg.extension_id != ext.id or not settle(emu, msg):
        return None
    if msg.creation_time > emu.clock.now():
        return None  # seeded "in the future": it does not exist yet
    return msg


# -- rendering ---------------------------------------------------------------------------------

_sizes: weakref.WeakKeyDictionary[Blob, int] = weakref.WeakKeyDictionary()


def blob_size(blob: Blob) -> int:
    """Byte size of a blob without regenerating seeded audio (scale mode lists thousands)."""
    if blob.data is not None:
        return len(blob.data)
    cached = _sizes.get(blob)
    if cached is not None:
        return cached
    if blob.kind == "wav" and len(blob.params) == 2:
        size = media.wav_size(blob.params[0])
    elif blob.kind == "mp3" and len(blob.params) == 2:
        size = media.mp3_size(blob.params[0])
    elif blob.kind == "text":
        size = len(str(blob.params[0]).encode("utf-8"))
    else:
        size = len(blob.bytes())
    _sizes[blob] = size
    return size


def attachment_uri(emu: Emulator, msg: Message, att: Attachment) -> str:
    """Absolute content URI on the configured content host (A3)."""
    return content_uri(emu, emu.content_base(),
                       f"/restapi/v1.0/account/{emu.store.account_id}"
                       f"/extension/{msg.extension_id}/message-store/{msg.id}/content/{att.id}",
                       att.blob)


def render_attachment(emu: Emulator, msg: Message, att: Attachment) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": att.id,
        "uri": attachment_uri(emu, msg, att),
        "type": att.type,
        "contentType": att.blob.content_type,
    }
    if att.report_size and att.type not in emu.config.omit_size_types:
        data["size"] = blob_size(att.blob)
    if att.file_name is not None:
        data["fileName"] = att.file_name
    if att.vm_duration is not None:
        data["vmDuration"] = att.vm_duration
    if att.width is not None:
        data["width"] = att.width
    if att.height is not None:
        data["height"] = att.height
    return data


_FROM_KEYS = ("phoneNumber", "extensionNumber", "extensionId", "name", "location")
_TO_KEYS = _FROM_KEYS + ("target", "messageStatus", "faxErrorCode")


def _party(party: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """A from/to object with only the documented keys; ``extensionId`` is a string."""
    out = {k: party[k] for k in keys if party.get(k) is not None}
    if "extensionId" in out:
        out["extensionId"] = str(out["extensionId"])
    return out


def render_message(emu: Emulator, msg: Message) -> dict[str, Any]:
    """A message as ``GetMessageInfoResponse`` (docs/ringcentral.md §5.1); None fields are
    omitted."""
    data: dict[str, Any] = {
        "uri": emu.ext_uri(msg.extension_id, f"/message-store/{msg.id}"),
        "id": msg.id,
        "extensionId": str(msg.extension_id),
        "to": [_party(p, _TO_KEYS) for p in msg.to],
        "from": _party(msg.from_, _FROM_KEYS),
        "type": msg.type,
        "creationTime": iso(msg.creation_time),
        "readStatus": msg.read_status,
        "priority": msg.priority,
        "attachments": [render_attachment(emu, msg, a) for a in msg.attachments],
        "direction": msg.direction,
        "availability": msg.availability,
        "subject": msg.subject,
        "messageStatus": msg.message_status,
        "faxResolution": msg.fax_resolution,
        "faxPageCount": msg.fax_page_count,
        "coverIndex": msg.cover_index,
        "coverPageText": msg.cover_page_text,
        "vmTranscriptionStatus": msg.vm_transcription_status,
        "deliveryErrorCode": msg.delivery_error_code,
        "smsSendingAttemptsCount": msg.sms_sending_attempts,
        "smsDeliveryTime": iso(msg.sms_delivery_time) if msg.sms_delivery_time else None,
        "lastModifiedTime": iso(msg.last_modified_time),
    }
    if not msg.from_:
        del data["from"]  # outbound faxes carry no sender (I6)
    if msg.conversation_id is not None:
        # A JSON integer above 2**53 (E9); the string form is exact for every client.
        data["conversationId"] = msg.conversation_id
        data["conversation"] = {
            "id": str(msg.conversation_id),
            "uri": f"{emu.platform_url}/restapi/v1.0/conversation/{msg.conversation_id}",
        }
    return {k: v for k, v in data.items() if v is not None}


def render_deleted(msg: Message) -> dict[str, Any]:
    """How ISync reports a deleted or purged message: its id and availability only (F3)."""
    return {"id": msg.id, "availability": msg.availability}
