"""Scale mode: ``config.scale`` cheap messages per extension on top of the seed, so the
filesystem can be measured against mailboxes of 100,000+ messages.

``add_scale_messages`` is one loop of about 90 lines on purpose: it runs 100,000s of
times, so it builds the store's objects inline (no builder calls, float draws only) rather
than through ``rcfs.emulator.seed_builders``.
"""

from __future__ import annotations

import random
from typing import Any, NamedTuple

from rcfs.emulator.config import EmulatorConfig
from rcfs.emulator.seed_builders import (
    conversation_id_for,
    ext_party,
    fax_number,
    number_with,
    text_blob,
    vm_subject,
    voice_number,
)
from rcfs.emulator.seed_data import (
    CONTACTS,
    FAX_SENDERS,
    MAX_AGE_MS,
    MIN_AGE_MS,
    SMS_SCRIPTS,
    TRANSCRIPTS,
)
from rcfs.emulator.store import (
    Attachment,
    Blob,
    Extension,
    Message,
    Store,
)


class _ExtParties(NamedTuple):
    """One extension's side of its scale messages, and the peers it texts with."""

    me_voice: list[dict[str, Any]]
    me_fax: list[dict[str, Any]]
    sms_number: str | None
    mine: dict[str, Any]
    me_sms: list[dict[str, Any]]
    peers: list[dict[str, Any]]
    convs: list[int]
    out_to: list[list[dict[str, Any]]]


def _ext_parties(store: Store, ext: Extension, parties: list[dict[str, Any]]) -> _ExtParties:
    """The parties of ``ext``'s messages, built once per extension (shared by its messages)."""
    me_voice = [ext_party(ext, voice_number(ext))]
    me_fax = [ext_party(ext, fax_number(ext))]
    sms_number = number_with(ext, "SmsSender")
    mine = {"phoneNumber": sms_number, "name": ext.name}
    me_sms = [mine]
    peers = parties[:12]
    convs = [conversation_id_for(store.account_id, [str(sms_number), p["phoneNumber"]])
             for p in peers]
    out_to = [[{**p, "messageStatus": "Delivered"}] for p in peers]
    return _ExtParties(me_voice, me_fax, sms_number, mine, me_sms, peers, convs, out_to)


def add_scale_messages(store: Store, config: EmulatorConfig, now_ms: int, exts: list[Extension],
                       per_ext: int) -> None:
    """``per_ext`` cheap messages per extension spread over two years: voicemails, faxes
    and SMS (a few MMS), oldest first.

    This loop builds the store's objects directly (no builder calls, float draws only)
    because it runs 100,000s of times; party dicts, ``to`` lists and SMS text blobs are
    shared between these messages, media blobs stay per message (seed = message id).
    """
    omit = config.omit_size_types
    size_audio, size_doc, size_text, size_tr, size_mms = (
        kind not in omit for kind in ("AudioRecording", "RenderedDocument", "Text",
                                      "AudioTranscription", "MmsAttachment"))
    parties = [c.party() for c in CONTACTS + FAX_SENDERS]
    n_callers = len(CONTACTS)
    subjects = [vm_subject(p.get("name") or p["phoneNumber"]) for p in parties]
    texts = [script[0][1] for script in SMS_SCRIPTS]
    text_blobs = [text_blob(x) for x in texts]
    transcripts = [text_blob(x) for x in TRANSCRIPTS]
    span = MAX_AGE_MS - MIN_AGE_MS - 200_000
    for ext in exts:
        rng = random.Random(f"rcfs-emulator/{config.seed}/scale/{ext.number}")
        rand = rng.random
        ext_id = ext.id
        me_voice, me_fax, sms_number, mine, me_sms, peers, convs, out_to = _ext_parties(
            store, ext, parties)
        ages = sorted((MIN_AGE_MS + 200_000 + int(rand() * span) for _ in range(per_ext)),
                      reverse=True)
        batch: list[Message] = []
        for age in ages:
            t = (now_ms - age) / 1000
            r = rand() if sms_number else rand() * 0.65
            mid = store.new_id()
            msg: Message
            if r < 0.40:
                k = int(rand() * n_callers)
                duration = 5 + int(rand() * 115)
                if r < 0.3:
                    blob = Blob("audio/mpeg", None, "mp3", (duration, mid))
                else:
                    blob = Blob("audio/x-wav", None, "wav", (duration, mid))
                atts = [Attachment(mid, "AudioRecording", blob, None, duration,
                                   report_size=size_audio)]
                if r < 0.2:
                    atts.append(Attachment(store.new_id(), "AudioTranscription",
                                           transcripts[k % len(transcripts)],
                                           report_size=size_tr))
                msg = Message(mid, ext_id, "VoiceMail", "Inbound", t, parties[k], me_voice,
                              atts, subjects[k], read_status="Read",
                              vm_transcription_status="Completed" if r < 0.2
                              else "NotAvailable")
            elif r < 0.65:
                pages = 1 + int(rand() * 4)
                blob = Blob("application/pdf", None, "pdf", (pages, mid, "Fax"))
                msg = Message(mid, ext_id, "Fax", "Inbound", t,
                              parties[n_callers + int(rand() * len(FAX_SENDERS))], me_fax,
                              [Attachment(mid, "RenderedDocument", blob,
                                          report_size=size_doc)],
                              read_status="Read", fax_page_count=pages,
                              fax_resolution="High" if r < 0.55 else "Low")
            else:
                k = int(rand() * len(peers))
                j = int(rand() * len(texts))
                atts = [Attachment(mid, "Text", text_blobs[j], report_size=size_text)]
                if r > 0.98:
                    atts.append(Attachment(
                        store.new_id(), "MmsAttachment",
                        Blob("image/jpeg", None, "jpeg", (320, 240, mid)),
                        f"IMG_{mid % 10000:04d}.jpg", None, 320, 240, size_mms))
                if rand() < 0.5:
                    msg = Message(mid, ext_id, "SMS", "Inbound", t, peers[k], me_sms, atts,
                                  texts[j], read_status="Read", conversation_id=convs[k])
                else:
                    msg = Message(mid, ext_id, "SMS", "Outbound", t, mine, out_to[k], atts,
                                  texts[j], message_status="Delivered", read_status="Read",
                                  conversation_id=convs[k], sms_sending_attempts=1)
            batch.append(msg)
        _add_sorted_batch(store, ext_id, batch)


def _add_sorted_batch(store: Store, ext_id: int, msgs: list[Message]) -> None:
    """``store.add_message`` for many messages at once: one sort of the extension's index
    instead of a bisect per message (2-3 s saved per 500,000 messages).

    Relies on ``Store._by_ext`` (sorted ``(creation_time, id)`` per extension); if the
    store's layout changes, this falls back to the public method.
    """
    index = getattr(store, "_by_ext", {}).get(ext_id)
    if not isinstance(index, list) or any(m.extension_id != ext_id for m in msgs[:1]):
        for msg in msgs:
            store.add_message(msg)
        return
    messages = store.messages
    for msg in msgs:
        messages[msg.id] = msg
    index.extend([(m.creation_time, m.id) for m in msgs])
    index.sort()
