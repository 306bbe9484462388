"""Where each RingCentral object goes in the tree and what it is called (README "Naming").

    <ext number> <name>/
      Voicemail/YYYY-MM/<time> from <party> (<duration>) [<id>].mp3 (+ .transcript.txt)
      Fax/YYYY-MM/<time> in|out <party> (<n> pages) [<id>].pdf
      Texts/<party>/<time> in|out [<id>].txt   (+ [<id>]-<n>.<ext> for MMS attachments)
      Recordings/YYYY-MM/<time> in|out <party> to|from <party> (<duration>) [<rec id>].mp3
      Greetings/<Type> [<id>].wav
      Calls/YYYY-MM.csv                        (the call log, rcfs.namespace.calls_csv)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import tzinfo

from rcfs.api.models import Attachment, CallLogRecord, Greeting, Message, Party, Recording
from rcfs.namespace import calls_csv, naming
from rcfs.namespace.entries import ContentRef, Entry

VOICEMAIL, FAX, TEXTS, RECORDINGS, GREETINGS = (
    "Voicemail", "Fax", "Texts", "Recordings", "Greetings")
CALLS = calls_csv.CALLS
AREAS = (VOICEMAIL, FAX, TEXTS, RECORDINGS, GREETINGS, CALLS)
CALL_AREAS = (RECORDINGS, CALLS)
"""Areas shown from the call log (Heavy): loaded on their first look, refreshed while used."""
RENDER_VERSION = 2
"""The metadata index stores rendered names: bump this when a name or a folder of this
module (or ``naming``) changes, so an index written before is rebuilt, never misread."""
TEXT_TYPES = {"SMS", "Pager", "Text"}


def _party_of(p: Party | None) -> str:
    if p is None:
        return "unknown"
    return naming.party(p.phone_number, p.name, p.extension_number)


def _message_xattrs(msg: Message) -> dict[str, str]:
    x = {
        "user.rc.id": msg.id,
        "user.rc.type": msg.type or "",
        "user.rc.direction": msg.direction or "",
        "user.rc.read_status": msg.read_status or "",
        "user.rc.from": _party_of(msg.from_) if msg.from_ else "",
        "user.rc.to": ", ".join(_party_of(p) for p in msg.to),
        "user.rc.status": msg.message_status or "",
        "user.rc.created": msg.creation_time.isoformat(),
    }
    if msg.subject and msg.type in TEXT_TYPES:
        x["user.rc.subject"] = msg.subject
    return {k: v for k, v in x.items() if v}


def _content(att: Attachment, msg: Message) -> ContentRef:
    """Message attachments cost a Medium request each."""
    return ContentRef("msg", (msg.id, att.id), att.uri, "Medium", att.size, att.content_type)


def _file(name: str, mtime: float, xattrs: dict[str, str], *, content: ContentRef | None = None,
          data: bytes | None = None, msg: Message | None = None, ext_id: str = "") -> Entry:
    mime = content.content_type if content else "text/plain"
    attrs = dict(xattrs)
    if mime:
        attrs["user.mime_type"] = mime.split(";")[0]
    siblings = tuple((a.id, a.file_name) for a in msg.attachments) if msg and content else ()
    return Entry(name, mtime, content=content, data=data, xattrs=attrs,
                 message_id=msg.id if msg else None, extension_id=ext_id or None,
                 siblings=siblings)


def _conversation_party(msg: Message, own: set[str]) -> str:
    """Folder of a text conversation: the other side(s), numbers only so a changed display
    name never splits a conversation; the name of the first message is added once."""
    parties = [msg.from_] if msg.from_ else []
    parties += list(msg.to)
    others = [p for p in parties if p is not None and (p.phone_number or p.extension_number)
              and (p.phone_number or p.extension_number) not in own]
    if not others:
        others = [p for p in parties if p is not None]
    keys = sorted({(p.phone_number or p.extension_number or "unknown") for p in others})
    if len(keys) == 1:
        p = others[0]
        return naming.fit(naming.party(keys[0], p.name), "")
    return naming.fit("Group " + ", ".join(naming.clean(k) for k in keys), "")


def add_message(root: Entry, msg: Message, tz: tzinfo | None, own: set[str],
                ext_id: str) -> None:
    """Place one message (and its attachments) under the extension folder ``root``."""
    if msg.availability != "Alive":
        return
    when = msg.creation_time
    mtime = when.timestamp()
    stamp = naming.stamp(when, tz)
    xattrs = _message_xattrs(msg)
    direction = "in" if msg.direction != "Outbound" else "out"

    if msg.type == "VoiceMail":
        audio = [a for a in msg.attachments if a.type == "AudioRecording"]
        transcripts = [a for a in msg.attachments if a.type == "AudioTranscription"]
        folder = root.subdir(VOICEMAIL).subdir(naming.month(when, tz))
        duration = audio[0].vm_duration if audio else None
        if duration is not None:
            xattrs["user.rc.duration"] = str(duration)
        # The duration goes with the id into the part ``fit`` never cuts: a caller name too
        # long for NAME_MAX is shortened, not what the file is.
        stem = naming.join(stamp, "from", _party_of(msg.from_))
        tag = f" ({naming.duration(duration)})" if duration is not None else ""
        for i, att in enumerate(audio):
            suffix = f"-{i + 1}" if i else ""
            ext = naming.extension_for(att.content_type, att.file_name)
            name = naming.fit(stem, tag + naming.id_tail(msg.id, ext, suffix))
            folder.add(_file(name, mtime, xattrs, content=_content(att, msg), msg=msg,
                             ext_id=ext_id))
        for i, att in enumerate(transcripts):
            suffix = f"-{i + 1}" if i else ""
            name = naming.fit(stem, tag + naming.id_tail(msg.id, ".transcript.txt", suffix))
            folder.add(_file(name, mtime, xattrs, content=_content(att, msg), msg=msg,
                             ext_id=ext_id))
        return

    if msg.type == "Fax":
        docs = [a for a in msg.attachments if a.type in ("RenderedDocument", None)] or \
            list(msg.attachments)
        folder = root.subdir(FAX).subdir(naming.month(when, tz))
        other = msg.from_ if direction == "in" else (msg.to[0] if msg.to else None)
        pages = msg.fax_page_count
        if pages is not None:
            xattrs["user.rc.pages"] = str(pages)
        tag = f" ({pages} page{'s' if pages != 1 else ''})" if pages else ""
        stem = naming.join(stamp, direction, _party_of(other))
        for i, att in enumerate(docs):
            suffix = f"-{i + 1}" if i else ""
            ext = naming.extension_for(att.content_type, att.file_name)
            name = naming.fit(stem, tag + naming.id_tail(msg.id, ext, suffix))
            folder.add(_file(name, mtime, xattrs, content=_content(att, msg), msg=msg,
                             ext_id=ext_id))
        return

    if msg.type in TEXT_TYPES:
        folder = root.subdir(TEXTS).subdir(_conversation_party(msg, own))
        stem = naming.join(stamp, direction)
        text = (msg.subject or "").encode("utf-8")
        media = [a for a in msg.attachments if a.type == "MmsAttachment"]
        if text or not media:  # a picture-only MMS has no text file
            name = naming.fit(stem, naming.id_tail(msg.id, ".txt"))
            folder.add(_file(name, mtime, xattrs, data=text, msg=msg, ext_id=ext_id))
        for i, att in enumerate(media):
            ext = naming.extension_for(att.content_type, att.file_name)
            name = naming.fit(stem, naming.id_tail(msg.id, ext, f"-{i + 1}"))
            folder.add(_file(name, mtime, xattrs, content=_content(att, msg), msg=msg,
                             ext_id=ext_id))


def _call_parts(call: CallLogRecord, rec: Recording, tz: tzinfo | None,
                recording_type: str | None) -> tuple[str, str, str, int | None]:
    """(month folder, file name, content type, duration) of one recording of a call."""
    when = call.start_time
    direction = "in" if call.direction == "Inbound" else "out"
    other, me = (call.from_, call.to) if direction == "in" else (call.to, call.from_)
    duration = rec.duration if rec.duration is not None else call.duration
    stem = naming.join(naming.stamp(when, tz), direction, _party_of(other),
                       "to" if direction == "in" else "from", _party_of(me))
    tag = f" ({naming.duration(duration)})" if duration is not None else ""
    # The call log does not say; the account's format comes from one recording's
    # metadata (MetadataIndex.recording_type).
    mime = rec.content_type or recording_type or "audio/mpeg"
    ext = naming.extension_for(mime)
    name = naming.fit(stem, tag + naming.id_tail(rec.id, ext))
    return naming.month(when, tz), name, mime, duration


def recording_path(call: CallLogRecord, tz: tzinfo | None,
                   recording_type: str | None = None) -> str | None:
    """``Recordings/YYYY-MM/<name>`` of the call's first recording (the Calls CSV names it)."""
    if call.deleted:
        return None
    for rec in call.recordings:
        if rec.content_uri:
            month, name, _mime, _duration = _call_parts(call, rec, tz, recording_type)
            return f"{RECORDINGS}/{month}/{name}"
    return None


def add_call(root: Entry, call: CallLogRecord, tz: tzinfo | None, ext_id: str,
             recording_type: str | None = None) -> None:
    """Place each recording of a call under Recordings/YYYY-MM/."""
    if call.deleted:
        return
    for rec in call.recordings:
        if not rec.content_uri:
            continue
        when = call.start_time
        month, name, mime, duration = _call_parts(call, rec, tz, recording_type)
        xattrs = {
            "user.rc.id": rec.id,
            "user.rc.type": "CallRecording",
            "user.rc.call_id": call.id,
            "user.rc.direction": call.direction or "",
            "user.rc.from": _party_of(call.from_),
            "user.rc.to": _party_of(call.to),
            "user.rc.duration": str(duration) if duration is not None else "",
            "user.rc.recording_type": rec.type or "",
            "user.mime_type": mime.split(";")[0],
        }
        ref = ContentRef("rec", (rec.id,), rec.content_uri, "Heavy", None, mime)
        folder = root.subdir(RECORDINGS).subdir(month)
        folder.add(_file(name, when.timestamp(), {k: v for k, v in xattrs.items() if v},
                         content=ref, ext_id=ext_id))


def add_greeting(root: Entry, greeting: Greeting, mtime: float, ext_id: str) -> None:
    if not greeting.content_uri:
        return
    mime = greeting.content_type or "audio/wav"
    ext = naming.extension_for(mime)
    name = naming.fit(naming.clean(greeting.type or "Greeting"), naming.id_tail(greeting.id, ext))
    ref = ContentRef("greeting", (greeting.id,), greeting.content_uri, "Heavy", None,
                     greeting.content_type)
    xattrs = {"user.rc.id": greeting.id, "user.rc.type": "Greeting",
              "user.rc.greeting_type": greeting.type or "", "user.mime_type": mime.split(";")[0]}
    root.subdir(GREETINGS).add(_file(name, mtime, xattrs, content=ref, ext_id=ext_id))


def extension_folder_name(number: str | None, name: str | None, ext_id: str) -> str:
    stem = naming.join(naming.clean(number or ""), naming.clean(name or ""))
    return naming.fit(stem or f"Extension {ext_id}", "")


def rows(build: Callable[[Entry], None]) -> list[tuple[str, Entry]]:
    """The files one object becomes, as ``(folder, entry)`` pairs (``folder`` relative to
    the extension, e.g. ``Voicemail/2026-11``): what the metadata index stores as rows.
    ``build`` is one of the ``add_*`` calls above applied to a scratch root."""
    root = Entry.directory("")
    build(root)
    return list(_flatten(root, ""))


def _flatten(folder: Entry, prefix: str) -> Iterator[tuple[str, Entry]]:
    for child in (folder.children or {}).values():
        if child.is_dir:
            yield from _flatten(child, f"{prefix}/{child.name}" if prefix else child.name)
        else:
            yield prefix, child
