"""Messages and calls added at run time through the admin API (``POST /_emulator/...``),
from a JSON spec whose omitted fields get the seed's defaults.
"""

from __future__ import annotations

import base64
import random
from typing import Any

from rcfs.emulator.config import EmulatorConfig
from rcfs.emulator.seed_builders import (
    IdSource,
    build_call,
    build_fax,
    build_pager,
    build_sms,
    build_voicemail,
    ext_party,
    fax_number,
    mark_deleted,
    new_attachment,
    number_with,
    text_blob,
    voice_number,
    whole_ms,
)
from rcfs.emulator.seed_data import (
    AVAILABILITIES,
    DIRECTIONS,
    KIND_CONTENT_TYPES,
    KIND_EXT,
    MESSAGE_TYPES,
)
from rcfs.emulator.store import (
    Attachment,
    Blob,
    CallRecord,
    Extension,
    Message,
    Store,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from rcfs.emulator.core import Emulator


def _spec_extension(store: Store, ext_id: Any) -> Extension:
    if ext_id is None:
        for ext in store.extensions.values():
            if ext.type == "User":
                return ext
        raise KeyError("no User extension")
    found = store.extensions.get(int(ext_id))
    if found is None:
        raise KeyError(f"unknown extension_id {ext_id!r}")
    return found


def _choice(spec: dict[str, Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = spec.get(key, default)
    if value not in allowed:
        raise ValueError(f"{key} must be one of {', '.join(allowed)}")
    return str(value)


def _time(spec: dict[str, Any], key: str, default: float) -> float:
    from rcfs.emulator.core import parse_date

    raw = spec.get(key)
    if raw is None:
        return whole_ms(default)
    if isinstance(raw, int | float):
        return whole_ms(float(raw))
    return whole_ms(parse_date(str(raw), key))


def _party(number: Any, name: Any = None, store: Store | None = None) -> dict[str, Any]:
    """A party from a spec: an extension number (e.g. ``"102"``) or a phone number."""
    if store is not None and isinstance(number, str):
        for ext in store.extensions.values():
            if ext.number == number:
                party = ext_party(ext)
                if name is not None:
                    party["name"] = str(name)
                return party
    data: dict[str, Any] = {"phoneNumber": str(number)}
    if name is not None:
        data["name"] = str(name)
    return data


def _spec_attachments(store: Store, config: EmulatorConfig, msg_type: str, mid: int,
                      spec: dict[str, Any]) -> list[Attachment]:
    """Attachments from ``spec["attachments"]``; the first gets the message's id."""
    out: list[Attachment] = []
    for i, item in enumerate(spec["attachments"]):
        kind = str(item.get("kind", "text"))
        if kind not in KIND_CONTENT_TYPES:
            raise ValueError(f"unknown attachment kind {kind!r}")
        aid = mid if i == 0 else store.new_id()
        seed = mid * 16 + i
        content_type = str(item.get("content_type") or KIND_CONTENT_TYPES[kind])
        if item.get("data_b64") is not None:
            blob = Blob(content_type, data=base64.b64decode(item["data_b64"], validate=True))
        elif kind in ("mp3", "wav"):
            duration = float(item.get("duration", spec.get("duration", 30)))
            blob = Blob(content_type, kind=kind, params=(duration, seed))
        elif kind == "pdf":
            blob = Blob(content_type, kind="pdf",
                        params=(int(item.get("pages", spec.get("pages", 1))), seed,
                                str(item.get("title", spec.get("subject") or "Fax"))))
        elif kind == "tiff":
            blob = Blob(content_type, kind="tiff",
                        params=(int(item.get("pages", spec.get("pages", 1))), seed))
        elif kind in ("jpeg", "png", "gif"):
            blob = Blob(content_type, kind=kind, params=(int(item.get("width", 640)),
                                                         int(item.get("height", 480)), seed))
        else:
            blob = text_blob(str(item.get("text", spec.get("text") or "")))
        att_type = item.get("type")
        if att_type is None:
            att_type = {
                "VoiceMail": "AudioTranscription" if kind == "text" else "AudioRecording",
                "Fax": "RenderedDocument" if kind in ("pdf", "tiff") else "SourceDocument",
                "SMS": "Text" if kind == "text" else "MmsAttachment",
                "Pager": "Text",
            }[msg_type]
        file_name = item.get("file_name")
        if file_name is None and att_type in ("MmsAttachment", "SourceDocument"):
            # MMS parts and fax sources always carry a fileName on RingCentral.
            stem = f"IMG_{aid % 10000:04d}" if kind in ("jpeg", "png", "gif") else f"file{i + 1}"
            file_name = f"{stem}.{KIND_EXT[kind]}"
        fields: dict[str, Any] = {"file_name": file_name}
        if att_type == "AudioRecording":
            fields["vm_duration"] = int(float(item.get("duration", spec.get("duration", 30))))
        if att_type == "MmsAttachment" and kind in ("jpeg", "png", "gif"):
            fields["width"] = int(item.get("width", 640))
            fields["height"] = int(item.get("height", 480))
        if "size_reported" in item:
            fields["report_size"] = bool(item["size_reported"])
        out.append(new_attachment(config, aid, str(att_type), blob, **fields))
    return out


def _spec_parties(store: Store, ext: Extension, spec: dict[str, Any], msg_type: str,
                  direction: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The sender and recipients of a spec'd message: the extension's own number (by the
    message type) on its side, ``from``/``to`` or a default outside number on the other."""
    if msg_type == "SMS":
        my_number = number_with(ext, "SmsSender") or voice_number(ext)
    elif msg_type == "Fax":
        my_number = fax_number(ext)
    else:
        my_number = voice_number(ext)
    other_default = "+14155550100"
    to_raw = spec.get("to")
    if isinstance(to_raw, str):
        to_raw = [to_raw]
    if direction == "Inbound":
        from_ = _party(spec.get("from", other_default), spec.get("from_name"), store)
        to = [_party(n, store=store) for n in to_raw] if to_raw else [ext_party(ext, my_number)]
    else:
        from_ = _party(spec.get("from", my_number), spec.get("from_name", ext.name), store)
        to = [_party(n, store=store) for n in (to_raw or [other_default])]
    return from_, to


def add_message_from_spec(emu: Emulator, spec: dict[str, Any]) -> Message:
    """Build a realistic message from an admin API payload and store it (freshness tests).

    Keys: extension_id (default: first User), type, direction, from, from_name, to, text,
    duration, pages, creation_time (ISO or epoch; default now), attachments, availability,
    read_status, message_status, subject, transcription, resolution.
    """
    store, config = emu.store, emu.config
    if not isinstance(spec, dict):
        raise TypeError("message spec must be a JSON object")
    ext = _spec_extension(store, spec.get("extension_id"))
    msg_type = _choice(spec, "type", MESSAGE_TYPES, "VoiceMail")
    direction = _choice(spec, "direction", DIRECTIONS, "Inbound")
    now = emu.clock.now()
    t = _time(spec, "creation_time", now)
    mid = store.new_id()
    text = spec.get("text")

    from_, to = _spec_parties(store, ext, spec, msg_type, direction)

    msg: Message
    if msg_type == "VoiceMail":
        duration = int(float(spec.get("duration", 30)))
        fmt = str(spec.get("format", "mp3"))
        msg = build_voicemail(store, config, ext, t, from_, duration, fmt,
                              spec.get("transcription"), msg_id=mid,
                              to_number=to[0].get("phoneNumber"))
        msg.to = to
        msg.direction = direction
    elif msg_type == "Fax":
        pages = int(spec.get("pages", 1))
        msg = build_fax(store, config, ext, t, direction, from_ if direction == "Inbound" else to,
                        pages, resolution=str(spec.get("resolution", "High")),
                        subject=spec.get("subject"), msg_id=mid,
                        status=spec.get("message_status"))
        if direction == "Inbound":
            msg.to = to
        else:
            msg.from_ = from_
    elif msg_type == "SMS":
        conv = spec.get("conversation_id")
        msg = build_sms(store, config, ext, t, direction, from_, to,
                        None if text is None else str(text),
                        None if conv is None else int(conv), msg_id=mid,
                        status=spec.get("message_status"))
    else:
        other = from_ if direction == "Inbound" else to[0]
        msg = build_pager(store, config, ext, t, direction, other, str(text or ""), msg_id=mid)

    if spec.get("attachments") is not None:
        msg.attachments = _spec_attachments(store, config, msg_type, mid, spec)
        if msg_type == "Fax" and spec.get("pages") is None:
            msg.fax_page_count = next((int(a.blob.params[0]) for a in msg.attachments
                                       if a.blob.kind in ("pdf", "tiff")), msg.fax_page_count)
    if "subject" in spec:
        msg.subject = spec["subject"]
    if "read_status" in spec:
        msg.read_status = _choice(spec, "read_status", ("Read", "Unread"), "Unread")
    if "message_status" in spec:
        msg.message_status = str(spec["message_status"])
    availability = _choice(spec, "availability", AVAILABILITIES, "Alive")
    if availability != "Alive":
        mark_deleted(msg, whole_ms(now), purged=availability == "Purged")
    msg.last_modified_time = max(msg.last_modified_time, whole_ms(now))
    store.add_message(msg)
    return msg


def add_call_from_spec(emu: Emulator, spec: dict[str, Any]) -> CallRecord:
    """Add a finished call: it shows in the call log ``call_log_lag`` seconds after it ends,
    its recording content ``recording_processing`` seconds after (docs/ringcentral.md §13 G5).

    Keys: extension_id, direction, from, to, from_name, to_name, start_time (ISO or epoch;
    default: the call just ended), duration, recording, recording_format, recording_type,
    short_recording, result, action, type (Voice|Fax), voicemail (also add the linked
    VoiceMail message; implied by result "Voicemail").
    """
    store, config = emu.store, emu.config
    if not isinstance(spec, dict):
        raise TypeError("call spec must be a JSON object")
    ext = _spec_extension(store, spec.get("extension_id"))
    direction = _choice(spec, "direction", DIRECTIONS, "Inbound")
    duration = int(spec.get("duration", 60))
    if duration < 0:
        raise ValueError("duration must not be negative")
    now = emu.clock.now()
    start = _time(spec, "start_time", now - duration)
    end = start + duration
    call_type = _choice(spec, "type", ("Voice", "Fax"), "Voice")
    mine = voice_number(ext) if call_type == "Voice" else fax_number(ext)
    if direction == "Inbound":
        other = _party(spec.get("from", "+14155550100"), spec.get("from_name"), store)
        my_number = str(spec.get("to", mine))
    else:
        other = _party(spec.get("to", "+14155550100"), spec.get("to_name"), store)
        my_number = str(spec.get("from", mine))
    recording = None
    if spec.get("recording"):
        recording = (_choice(spec, "recording_format", ("mp3", "wav"), config.recording_format),
                     _choice(spec, "recording_type", ("Automatic", "OnDemand"), "Automatic"))
    result = str(spec.get("result", "Accepted" if direction == "Inbound" else "Call connected"))
    ids = IdSource(random.Random(f"rcfs-emulator/{config.seed}/runtime-call/{len(store.calls)}"),
               store)
    message_id = None
    if spec.get("voicemail") or result == "Voicemail":
        ring = min(20, duration)
        vm = build_voicemail(store, config, ext, whole_ms(start + ring), other,
                             max(1, duration - ring), str(spec.get("recording_format", "mp3")),
                             spec.get("transcription"), to_number=my_number)
        vm.last_modified_time = vm.creation_time
        store.add_message(vm)
        message_id = vm.id
        result = "Voicemail"
    call = build_call(
        ids, ext, start, duration, direction, other, result=result, action=spec.get("action"),
        recording=recording, short_recording=bool(spec.get("short_recording", False)),
        message_id=message_id, call_type=call_type, my_number=my_number,
        visible_at=end + config.call_log_lag, available_at=end + config.recording_processing,
    )
    call.last_modified_time = whole_ms(max(end, now))
    store.add_call(call)
    return call
