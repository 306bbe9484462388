"""Builders of messages and calls, shared by the seed (``rcfs.emulator.seed``) and the admin
API (``rcfs.emulator.admin_specs``): each makes one store object, with media as a ``Blob``
that ``rcfs.emulator.media`` regenerates on download.
"""

from __future__ import annotations

import functools
import hashlib
import random
from typing import Any

from rcfs.emulator.config import EmulatorConfig
from rcfs.emulator.seed_data import (
    ALNUM,
    DAY_MS,
    HOUR_MS,
    KIND_CONTENT_TYPES,
    MAX_AGE_MS,
    MIN_AGE_MS,
    MmsImage,
)
from rcfs.emulator.store import (
    Attachment,
    Blob,
    CallRecord,
    Extension,
    Message,
    Recording,
    Store,
)


def whole_ms(t: float) -> float:
    """Round a timestamp to whole milliseconds (what the API shows)."""
    return round(t * 1000) / 1000


def random_age(rng: random.Random, bucket: str | None = None) -> int:
    """An age in milliseconds: recent (inside the default 24 h window), weeks, or years."""
    if bucket is None:
        r = rng.random()
        bucket = "recent" if r < 0.15 else "month" if r < 0.4 else "old"
    if bucket == "recent":
        return rng.randrange(MIN_AGE_MS, 23 * HOUR_MS)
    if bucket == "month":
        return rng.randrange(26 * HOUR_MS, 30 * DAY_MS)
    return rng.randrange(30 * DAY_MS, MAX_AGE_MS)


def ext_party(ext: Extension, number: str | None = None) -> dict[str, Any]:
    """An extension as a ``from``/``to`` party (extensionId is a string, per spec)."""
    data: dict[str, Any] = {}
    if number is not None:
        data["phoneNumber"] = number
    data["extensionNumber"] = ext.number
    data["extensionId"] = str(ext.id)
    data["name"] = ext.name
    return data


def number_with(ext: Extension, feature: str | None = None,
                type_: str | None = None) -> str | None:
    """The extension's first direct number having ``feature`` and/or ``type_``."""
    for num in ext.phone_numbers:
        if feature is not None and feature not in num.features:
            continue
        if type_ is not None and num.type != type_:
            continue
        return num.phone_number
    return None


def voice_number(ext: Extension) -> str:
    return number_with(ext, type_="VoiceFax") or ext.phone_numbers[0].phone_number


def fax_number(ext: Extension) -> str:
    return number_with(ext, type_="FaxOnly") or voice_number(ext)


def new_attachment(config: EmulatorConfig, att_id: int, att_type: str, blob: Blob,
                   **fields: Any) -> Attachment:
    """An attachment whose ``size`` is hidden for the types ``config.omit_size_types`` lists."""
    report = fields.pop("report_size", None)
    if report is None:
        report = att_type not in config.omit_size_types
    return Attachment(att_id, att_type, blob, report_size=bool(report), **fields)


def audio_blob(fmt: str, duration: float, seed: int, *, greeting: bool = False) -> Blob:
    """Lazy audio: mp3 as audio/mpeg, wav (8 kHz) as audio/x-wav (audio/wav for greetings)."""
    if fmt == "mp3":
        return Blob("audio/mpeg", kind="mp3", params=(float(duration), seed))
    if fmt == "wav":
        return Blob("audio/wav" if greeting else "audio/x-wav", kind="wav",
                    params=(float(duration), seed))
    raise ValueError(f"unknown audio format {fmt!r}")


def text_blob(text: str) -> Blob:
    return Blob("text/plain", kind="text", params=(text,))


def read_state_at(roll: float, delay_s: int, now_ms: int, t: float,
                inbound: bool) -> tuple[str, float]:
    """Read status and lastModifiedTime: old inbound messages were mostly read some time
    after they arrived (``roll``/``delay_s`` drawn at planning time); outbound are Read."""
    if not inbound:
        return "Read", t
    p_read = 0.3 if now_ms - t * 1000 < DAY_MS else 0.85
    if roll >= p_read:
        return "Unread", t
    return "Read", whole_ms(min(t + delay_s, (now_ms - 1000) / 1000))


# ---------------------------------------------------------------------------------------------
# Message builders (shared by the seed and the admin API)


@functools.lru_cache(maxsize=256)
def vm_subject(who: str) -> str:
    """One shared string per caller, so scale mode does not hold 100,000 copies."""
    return f"Voice Message from {who}"


def build_voicemail(store: Store, config: EmulatorConfig, ext: Extension, t: float,
                    caller: dict[str, Any], duration: int, fmt: str,
                    transcript: str | None = None, *, msg_id: int | None = None,
                    read_status: str = "Unread", to_number: str | None = None,
                    to: list[dict[str, Any]] | None = None) -> Message:
    """An Inbound VoiceMail with its audio and, when ``transcript`` is set, its text."""
    mid = msg_id if msg_id is not None else store.new_id()
    atts = [new_attachment(config, mid, "AudioRecording", audio_blob(fmt, duration, mid),
                           vm_duration=int(duration))]
    if transcript is not None:
        atts.append(new_attachment(config, store.new_id(), "AudioTranscription",
                                   text_blob(transcript)))
    who = caller.get("name") or caller.get("phoneNumber") or "Unknown"
    if to is None:
        to = [ext_party(ext, to_number or voice_number(ext))]
    return Message(
        mid, ext.id, "VoiceMail", "Inbound", t, caller, to, atts,
        subject=vm_subject(who), message_status="Received",
        read_status=read_status,
        vm_transcription_status="Completed" if transcript is not None else "NotAvailable",
    )


def build_fax(store: Store, config: EmulatorConfig, ext: Extension, t: float, direction: str,
              other: list[dict[str, Any]] | dict[str, Any], pages: int, *,
              resolution: str = "High", subject: str | None = None, doc: str = "pdf",
              msg_id: int | None = None, status: str | None = None,
              cover_index: int | None = None, cover_text: str | None = None,
              source: tuple[str, str, int] | None = None, fax_error: str | None = None,
              read_status: str = "Unread", to: list[dict[str, Any]] | None = None) -> Message:
    """A received (``other`` = sender) or sent (``other`` = recipients) fax.

    ``faxPageCount`` equals the pages of the rendered PDF/TIFF; ``source`` adds a
    SourceDocument ``(kind, fileName, pages)`` as for faxes sent from a file.
    """
    mid = msg_id if msg_id is not None else store.new_id()
    title = subject or "Fax"
    if doc == "tiff":
        blob = Blob("image/tiff", kind="tiff", params=(pages, mid))
    else:
        blob = Blob("application/pdf", kind="pdf", params=(pages, mid, title))
    atts = [new_attachment(config, mid, "RenderedDocument", blob)]
    if source is not None:
        kind, file_name, src_pages = source
        if kind == "pdf":
            src = Blob("application/pdf", kind="pdf", params=(src_pages, mid + 7, file_name))
        else:
            src = Blob(KIND_CONTENT_TYPES[kind], kind=kind, params=(850, 1100, mid + 7))
        atts.append(new_attachment(config, store.new_id(), "SourceDocument", src,
                                   file_name=file_name))
    if direction == "Inbound":
        assert isinstance(other, dict)
        from_ = other
        if to is None:
            to = [ext_party(ext, fax_number(ext))]
        msg_status = status or "Received"
    else:
        from_ = ext_party(ext, fax_number(ext))
        del from_["extensionId"]
        msg_status = status or "Sent"
        recipients = other if isinstance(other, list) else [other]
        to = []
        for r in recipients:
            item = dict(r)
            item["messageStatus"] = msg_status
            if fax_error is not None and msg_status == "SendingFailed":
                item["faxErrorCode"] = fax_error
            to.append(item)
        read_status = "Read"
    return Message(
        mid, ext.id, "Fax", direction, t, from_, to, atts, subject=subject,
        message_status=msg_status, read_status=read_status, fax_page_count=pages,
        fax_resolution=resolution, cover_index=cover_index, cover_page_text=cover_text,
    )


def conversation_id_for(account_id: int, numbers: list[str]) -> int:
    """The conversationId of a set of participants: one thread per set, as on RingCentral,
    a 63-bit integer above 2^53 (E9). Same formula as the SMS send route, so a message sent
    to a seeded contact joins the seeded thread."""
    key = f"{account_id}:" + ",".join(sorted(set(numbers)))
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return (1 << 60) + h % ((1 << 63) - (1 << 60))


def build_sms(store: Store, config: EmulatorConfig, ext: Extension, t: float, direction: str,
              from_: dict[str, Any], to: list[dict[str, Any]], text: str | None,
              conversation_id: int | None, *, mms: list[MmsImage] | None = None,
              msg_id: int | None = None, status: str | None = None,
              error_code: str | None = None, read_status: str = "Unread") -> Message:
    """An SMS, or an MMS when ``mms`` lists ``(kind, width, height, fileName)`` images.

    The text is both ``subject`` and a Text attachment; outbound recipients carry their own
    ``messageStatus`` as the API does. ``conversation_id`` None: the participants' thread.
    """
    mid = msg_id if msg_id is not None else store.new_id()
    if conversation_id is None:
        conversation_id = conversation_id_for(
            store.account_id, [str(p.get("phoneNumber")) for p in [from_, *to]])
    atts: list[Attachment] = []
    if text is not None:
        atts.append(new_attachment(config, mid, "Text", text_blob(text)))
    for i, (kind, width, height, file_name) in enumerate(mms or []):
        aid = mid if not atts else store.new_id()
        blob = Blob(KIND_CONTENT_TYPES[kind], kind=kind, params=(width, height, mid * 16 + i))
        atts.append(new_attachment(config, aid, "MmsAttachment", blob, file_name=file_name,
                                   width=width, height=height))
    sending_attempts = None
    delivery_time = None
    if direction == "Outbound":
        msg_status = status or "Delivered"
        to = [{**r, "messageStatus": msg_status} for r in to]
        sending_attempts = 1
        if msg_status == "Delivered":
            delivery_time = whole_ms(t + 2.5)
        read_status = "Read"
    else:
        msg_status = status or "Received"
    return Message(
        mid, ext.id, "SMS", direction, t, from_, to, atts, subject=text,
        message_status=msg_status, read_status=read_status, conversation_id=conversation_id,
        delivery_error_code=error_code, sms_sending_attempts=sending_attempts,
        sms_delivery_time=delivery_time,
    )


def build_pager(store: Store, config: EmulatorConfig, ext: Extension, t: float, direction: str,
                other: dict[str, Any], text: str, *, msg_id: int | None = None,
                read_status: str = "Unread") -> Message:
    """An internal (extension to extension) Pager message."""
    mid = msg_id if msg_id is not None else store.new_id()
    me = ext_party(ext)
    if direction == "Inbound":
        from_, to, status = other, [me], "Received"
    else:
        from_, to, status, read_status = me, [other], "Sent", "Read"
    return Message(mid, ext.id, "Pager", direction, t, from_, to,
                   [new_attachment(config, mid, "Text", text_blob(text))], subject=text,
                   message_status=status, read_status=read_status)


def mark_deleted(msg: Message, at: float, purged: bool = False) -> None:
    """Deleted (restorable) or Purged (content gone, metadata kept) since ``at``."""
    at = max(at, msg.creation_time)
    msg.availability = "Purged" if purged else "Deleted"
    msg.deleted_at = at
    if purged:
        msg.purged_at = at
    msg.read_status = "Read"
    msg.last_modified_time = max(msg.last_modified_time, at)


# ---------------------------------------------------------------------------------------------
# Call builders


class IdSource:
    """Generators of the string ids of calls, sessions, recordings and greetings."""

    def __init__(self, rng: random.Random, store: Store) -> None:
        self.rng = rng
        self.store = store
        self.next_recording = 401_700_000_000 + rng.randrange(10_000) * 10_000
        self.next_greeting = 751_560_000 + rng.randrange(1000) * 10
        self.used: set[str] = set()

    def call_id(self) -> str:
        while True:
            cid = "".join(self.rng.choices(ALNUM, k=15))
            if cid not in self.used and cid not in self.store.calls:
                self.used.add(cid)
                return cid

    def session_id(self) -> str:
        return str(self.rng.randrange(10**10, 10**11))

    def telephony_session_id(self) -> str:
        return f"s-a0d1{self.rng.getrandbits(96):024x}z{self.rng.getrandbits(40):010x}"

    def recording_id(self) -> str:
        while True:
            self.next_recording += 1000 + self.rng.randrange(1, 9) * 8
            rid = str(self.next_recording)
            if rid not in self.store.recordings:
                return rid

    def greeting_id(self) -> str:
        while True:
            self.next_greeting += 1 + self.rng.randrange(40)
            gid = str(self.next_greeting)
            if gid not in self.store.greetings:
                return gid


def build_call(ids: IdSource, ext: Extension, start: float, duration: int, direction: str,
               other: dict[str, Any], *, result: str | None = None,
               action: str | None = None, recording: tuple[str, str] | None = None,
               short_recording: bool = False, message_id: int | None = None,
               call_type: str = "Voice", my_number: str | None = None,
               visible_at: float = 0.0, available_at: float = 0.0) -> CallRecord:
    """A call-log record; ``recording`` = ``(format mp3|wav, Automatic|OnDemand)``; the
    default result is what an answered call shows (Accepted in, Call connected out)."""
    if result is None:
        result = "Accepted" if direction == "Inbound" else "Call connected"
    me = ext_party(ext, my_number or voice_number(ext))
    del me["extensionId"]
    from_, to = (other, me) if direction == "Inbound" else (me, other)
    cid = ids.call_id()
    rec = None
    if recording is not None and not short_recording:
        fmt, rtype = recording
        rid = ids.recording_id()
        rec = Recording(rid, audio_blob(fmt, duration, int(rid)), duration, rtype,
                        available_at=available_at)
    if action is None:
        if call_type == "Fax":
            action = "Incoming Fax" if direction == "Inbound" else "Outgoing Fax"
        else:
            action = "Phone Call" if direction == "Inbound" else "VoIP Call"
    return CallRecord(
        cid, ext.id, ids.session_id(), ids.telephony_session_id(), start, duration, direction,
        from_, to, type=call_type, action=action, result=result, recording=rec,
        short_recording=short_recording, visible_at=visible_at, message_id=message_id,
    )
