"""Deterministic demo data for the emulator, and the builders the admin API reuses.

Everything derives from ``config.seed`` through string-seeded ``random.Random`` instances
(stable across processes, independent of ``PYTHONHASHSEED``): two builds with the same seed
produce the same ids, names, texts and relative ages; only absolute times follow ``now``
(whole milliseconds before ``now``). Items are planned first, then created oldest first,
so message ids grow with ``creationTime`` as on a real account and ``Store.add_message``
appends instead of shifting its sorted index.

The account deliberately carries hostile data a filesystem must survive (docs/ringcentral.md
§13 E7-E9): names with ``/``, RTL marks, emoji, combining and zero-width characters, a
caller name longer than 255 UTF-8 bytes, another with control characters, an SMS short
code, a caller without a name, ``..`` as a name, duplicate ``creationTime`` values,
attachments without ``size``, Deleted and Purged messages.

Media is never produced here: attachments, recordings and greetings get a ``Blob`` with
``(kind, params)`` that ``store`` regenerates through ``media`` on download, so scale mode
(``config.scale`` extra messages per extension) costs only the Python objects.
"""

from __future__ import annotations

import base64
import functools
import gc
import hashlib
import random
import string
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rcfs.emulator.config import EmulatorConfig
from rcfs.emulator.store import (
    AnsweringRule,
    Attachment,
    Blob,
    CallRecord,
    Extension,
    Greeting,
    Message,
    PhoneNumber,
    Recording,
    Store,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from rcfs.emulator.core import Emulator

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MIN_AGE_MS = 3 * 60_000  # the newest seeded item is a few minutes old
MAX_AGE_MS = 730 * DAY_MS  # two years of history

MESSAGE_TYPES = ("VoiceMail", "Fax", "SMS", "Pager")
DIRECTIONS = ("Inbound", "Outbound")
AVAILABILITIES = ("Alive", "Deleted", "Purged")

# Content type and default attachment type of each media kind the admin API accepts.
KIND_CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "wav": "audio/x-wav",
    "pdf": "application/pdf",
    "tiff": "image/tiff",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "text": "text/plain",
}
_KIND_EXT = {"jpeg": "jpg", "png": "png", "gif": "gif", "pdf": "pdf", "tiff": "tif",
             "mp3": "mp3", "wav": "wav", "text": "txt"}

_ALNUM = string.ascii_letters + string.digits

# An MMS picture: (kind jpeg|png|gif, width, height, fileName or None).
MmsImage = tuple[str, int, int, str | None]


# ---------------------------------------------------------------------------------------------
# People


@dataclass(frozen=True)
class Contact:
    """An outside party: a phone number, maybe a caller-id name and a location."""

    name: str | None
    number: str
    location: str | None = None

    def party(self) -> dict[str, Any]:
        """The ``from``/``to`` object RingCentral returns; absent fields stay absent."""
        data: dict[str, Any] = {"phoneNumber": self.number}
        if self.name is not None:
            data["name"] = self.name
        if self.location is not None:
            data["location"] = self.location
        return data


LONG_NAME = (
    "Pinnacle Worldwide Logistics & Freight Forwarding Holdings — Accounts Payable / "
    "Receivable Reconciliation Department, Building 7, Suite 1200 — "
    "株式会社ピナクル・ワールドワイド・ロジスティクス国際貨物部門 📦🚚 "
    "Ελληνικό Γραφείο Εκτελωνισμού"
)
assert len(LONG_NAME.encode()) > 300  # over NAME_MAX (255 bytes) with room to spare
CONTROL_NAME = "Robo\x07Caller\x1b[31m WIN\x1b[0m\r\n\tPRIZE\x7f\x01"

# Hostile parties, by role; each appears in the admin's and the first user's mailboxes.
HOSTILE: dict[str, Contact] = {
    "slash": Contact("Smith / Jones LLP", "+12125550147", "New York (Manhattan), NY"),
    "rtl": Contact("\u200fمكتب الأمل للمحاماة\u200f", "+13135550111", "Dearborn, MI"),
    "emoji": Contact("🍕 Tony's Pizza 🍕", "+17185550123", "Brooklyn, NY"),
    "combining": Contact("Zoe\u0308 Saldan\u0303a-Bjo\u0308rk", "+14155550176",
                         "San Francisco, CA"),
    "zero_width": Contact("Ma\u200brie\u200d Cu\u2060rie\ufeff", "+16175550135", "Boston, MA"),
    "long": Contact(LONG_NAME, "+13055550188", "Miami, FL"),
    "control": Contact(CONTROL_NAME, "+18005550166", None),
    "dots": Contact("..", "+15035550102", "Portland, OR"),
    "no_name": Contact(None, "+19175550199", None),
    "short_code": Contact(None, "22395", None),
}

CONTACTS: tuple[Contact, ...] = (
    Contact("Maria Garcia", "+14085550131", "San Jose, CA"),
    Contact("James Wilson", "+13125550142", "Chicago, IL"),
    Contact("Priya Raman", "+15125550153", "Austin, TX"),
    Contact("Wei Chen", "+12065550164", "Seattle, WA"),
    Contact("Olivia Brown", "+16465550175", "New York, NY"),
    Contact("Mohammed Al-Farsi", "+17135550186", "Houston, TX"),
    Contact("Sofia Rossi", "+13035550197", "Denver, CO"),
    Contact("Lakeside Dental Care", "+16125550108", "Minneapolis, MN"),
    Contact("Dr. Emily Carter", "+16195550119", "San Diego, CA"),
    Contact("Kenji Watanabe", "+15035550121", "Portland, OR"),
    Contact("Grace Okafor", "+14045550132", "Atlanta, GA"),
    Contact("Brightline Insurance", "+18885550143", None),
    Contact("WIRELESS CALLER", "+17025550154", "Las Vegas, NV"),
    Contact("Lucas Martin", "+12155550165", "Philadelphia, PA"),
    Contact("Hannah Schmidt", "+15035550176", "Beaverton, OR"),
    Contact(None, "+19495550187", "Irvine, CA"),
)

FAX_SENDERS: tuple[Contact, ...] = (
    Contact("Acme Medical Records", "+18665550110", None),
    Contact("County Clerk Office", "+15305550121", "Sacramento, CA"),
    Contact("First National Bank", "+18005550132", None),
    Contact("Lakeside Dental Care", "+16125550109", "Minneapolis, MN"),
    Contact("Harbor Freight Brokers", "+15625550143", "Long Beach, CA"),
    Contact(None, "+17735550154", "Chicago, IL"),
)


@dataclass(frozen=True)
class _Person:
    number: str
    first: str
    last: str
    admin: bool
    kind: str  # "normal" | "tollfree" | "department"


PEOPLE = (
    _Person("101", "Alice", "Whitaker", True, "normal"),
    _Person("102", "Bruno", "Díaz", False, "normal"),
    # NFD spelling on purpose: the combining acute must survive into directory names.
    _Person("103", "Chloe\u0301", "Nakamura", False, "normal"),
    _Person("104", "Dmitri", "Volkov", False, "tollfree"),
    _Person("200", "Support Queue / Tier 1", "", False, "department"),
)

# ---------------------------------------------------------------------------------------------
# Texts

TRANSCRIPTS = (
    "Hi, this is Maria from Lakeside Dental calling to confirm your appointment on Thursday at "
    "ten AM. Please call us back if you need to reschedule. Thanks!",
    "Hey, it's James. The quarterly numbers look good, give me a call when you get a chance.",
    "This message is for the accounts payable team regarding invoice 4411. Please return my "
    "call at your earliest convenience.",
    "Hello, this is Brightline Insurance with an important update about your policy renewal.",
    "Hi, just checking whether the shipment went out yesterday. Talk soon.",
    "Good morning! Calling about the proposal you sent over, we have a few questions.",
    "It's me. Running about fifteen minutes late, start without me.",
    "Hello, this is the pharmacy. Your prescription is ready for pickup.",
)

SMS_SCRIPTS: tuple[tuple[tuple[str, str], ...], ...] = (
    (("in", "Hi! Are we still on for lunch tomorrow?"), ("out", "Yes, 12:30 at the usual place"),
     ("in", "Perfect 👍"), ("out", "See you then"), ("in", "Running 5 min late, sorry!"),
     ("out", "No worries")),
    (("out", "Can you send me the signed contract?"), ("in", "Sending it over now"),
     ("in", "Did you get it?"), ("out", "Got it, thanks!")),
    (("in", "Your package will arrive between 2-4 PM today."), ("out", "Thank you"),
     ("in", "Delivered. Reply STOP to opt out.")),
    (("out", "Meeting moved to 3/14 at 10am / room B"), ("in", "ok, noted"),
     ("in", "Should I bring the slides?"), ("out", "Yes please 🙏"),
     ("in", "Will do ✅")),
    (("in", "Happy birthday!! 🎉🎂🥳"), ("out", "Thank you so much! ❤️"),
     ("in", "Drinks on Friday?"), ("out", "Absolutely")),
    (("out", "The invoice total is $1,245.00 — due 2024/07/01"), ("in", "Received, paying today"),
     ("in", "Payment sent via ACH"), ("out", "Confirmed, thanks")),
    (("in", "Is the office open on Monday?"), ("out", "Closed for the holiday, back Tuesday"),
     ("in", "Thanks")),
)

GROUP_TEXTS = (
    "Team dinner Friday 7pm — who's in?", "I'm in!", "Count me in 🍝", "Can't make it, sorry",
    "Booked a table for 6", "See you all there",
)

PAGER_TEXTS = (
    "Client on line 2 for you", "Can you cover the front desk at 3?", "Server room door is open",
    "Lunch is here 🍕", "Please call me back, urgent", "Conference room B is free now",
)

HOSTILE_TEXTS = (
    "..",
    "../../etc/passwd",
    "see a/b/c.txt and \\windows\\path",
    "invoice\u202efdp.exe",
    "Zalgo: Z\u0351\u034a\u0361a\u0352l\u0363g\u0350o\u0346 \u0298\u032e",
    "family: 👨\u200d👩\u200d👧\u200d👦 flags: 🇺🇸🇯🇵 skin: 👍🏽",
    "\u200f\u202bمرحبا بالعالم\u202c\u200f and back to LTR",
    ("Long message: " + "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 12).strip(),
)

FAX_SUBJECTS = (
    "Invoice 2024/03/15 / PO#4411", "Medical records request", "Signed lease agreement",
    "Purchase order", "W-9 form", "Claim documents", "Referral", None,
)
HOSTILE_FAX_SUBJECTS = ("../../etc/passwd", "Re: contract.pdf\u202egpj.exe", "100% / 50% split")

GREETING_PRESETS = {
    "Introductory": ("0", "None"),
    "Announcement": ("66048", "Default"),
    "ConnectingMessage": ("66304", "Default"),
    "ConnectingAudio": ("66816", "Acoustic"),
    "Voicemail": ("65536", "Default"),
    "Unavailable": ("65792", "Default"),
    "InterruptPrompt": ("67072", "Default"),
    "HoldMusic": ("67328", "Acoustic"),
}


# ---------------------------------------------------------------------------------------------
# Small helpers


def _ms(t: float) -> float:
    """Round a timestamp to whole milliseconds (what the API shows)."""
    return round(t * 1000) / 1000


def _age(rng: random.Random, bucket: str | None = None) -> int:
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


def _read_state(roll: float, delay_s: int, now_ms: int, t: float,
                inbound: bool) -> tuple[str, float]:
    """Read status and lastModifiedTime: old inbound messages were mostly read some time
    after they arrived (``roll``/``delay_s`` drawn at planning time); outbound are Read."""
    if not inbound:
        return "Read", t
    p_read = 0.3 if now_ms - t * 1000 < DAY_MS else 0.85
    if roll >= p_read:
        return "Unread", t
    return "Read", _ms(min(t + delay_s, (now_ms - 1000) / 1000))


# ---------------------------------------------------------------------------------------------
# Message builders (shared by the seed and the admin API)


@functools.lru_cache(maxsize=256)
def _vm_subject(who: str) -> str:
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
        subject=_vm_subject(who), message_status="Received",
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
            delivery_time = _ms(t + 2.5)
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


class _Ids:
    """Generators of the string ids of calls, sessions, recordings and greetings."""

    def __init__(self, rng: random.Random, store: Store) -> None:
        self.rng = rng
        self.store = store
        self.next_recording = 401_700_000_000 + rng.randrange(10_000) * 10_000
        self.next_greeting = 751_560_000 + rng.randrange(1000) * 10
        self.used: set[str] = set()

    def call_id(self) -> str:
        while True:
            cid = "".join(self.rng.choices(_ALNUM, k=15))
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


def build_call(ids: _Ids, ext: Extension, start: float, duration: int, direction: str,
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


# ---------------------------------------------------------------------------------------------
# The seed


class _Seeder:
    """Plans every item with its age, then builds them oldest first."""

    def __init__(self, config: EmulatorConfig, now: float) -> None:
        self.config = config
        self.seed = config.seed
        self.now_ms = int(now * 1000)
        rng = random.Random(f"rcfs-emulator/{self.seed}/account")
        account_id = 400_000_000_000 + rng.randrange(1_000_000) * 1000 + 8
        main = f"+1650555{rng.randrange(100, 200):04d}"
        self.store = Store(account_id, main, "Northwind Traders & Co.")
        self.ids = _Ids(random.Random(f"rcfs-emulator/{self.seed}/ids"), self.store)
        self.rng = rng
        self.plans: list[tuple[int, int, Callable[[float], None]]] = []

    # -- time ------------------------------------------------------------------------------

    def t(self, age_ms: int) -> float:
        return (self.now_ms - age_ms) / 1000

    def plan(self, age_ms: int, build: Callable[[float], None]) -> None:
        self.plans.append((age_ms, len(self.plans), build))

    def run_plans(self) -> None:
        # Oldest first; equal ages keep their planning order (duplicate creationTime pairs).
        for age_ms, _, build in sorted(self.plans, key=lambda p: (-p[0], p[1])):
            build(self.t(age_ms))
        self.plans.clear()

    # -- account ---------------------------------------------------------------------------

    def extensions(self) -> list[Extension]:
        rng = self.rng
        used_ids: set[int] = {self.store.account_id}
        used_numbers = {self.store.main_number}
        next_number_id = 1_470_000_000 + rng.randrange(10_000) * 1000

        def number_id() -> int:
            nonlocal next_number_id
            next_number_id += 1000 + rng.randrange(1, 99)
            return next_number_id

        def direct_number(area: str) -> str:
            while True:
                num = f"+1{area}555{rng.randrange(100, 200):04d}"
                if num not in used_numbers:
                    used_numbers.add(num)
                    return num

        exts = []
        for person in PEOPLE:
            while True:
                ext_id = 400_000_000_000 + rng.randrange(1_000_000) * 1000 + 8
                if ext_id not in used_ids:
                    used_ids.add(ext_id)
                    break
            mail_name = "support" if person.kind == "department" else unicodedata.normalize(
                "NFKD", f"{person.first}.{person.last}".lower())
            ext = Extension(
                ext_id, person.number, person.first, person.last,
                f"{mail_name.encode('ascii', 'ignore').decode()}@northwind.example",
                admin=person.admin,
                type="Department" if person.kind == "department" else "User",
            )
            if person.kind == "tollfree":
                ext.phone_numbers.append(PhoneNumber(
                    number_id(), direct_number("833"), "DirectNumber", "VoiceFax", ["CallerId"]))
            elif person.kind == "department":
                ext.phone_numbers.append(PhoneNumber(
                    number_id(), direct_number("650"), "DirectNumber", "VoiceFax",
                    ["CallerId"]))
            else:
                ext.phone_numbers.append(PhoneNumber(
                    number_id(), direct_number("650"), "DirectNumber", "VoiceFax",
                    ["CallerId", "SmsSender", "A2PSmsSender", "MmsSender",
                     "InternationalSmsSender"]))
            if person.admin:
                ext.phone_numbers.append(PhoneNumber(
                    number_id(), self.store.main_number, "MainCompanyNumber", "VoiceFax",
                    ["CallerId"]))
            if person.kind == "normal" and person.number in ("101", "102"):
                ext.phone_numbers.append(PhoneNumber(
                    number_id(), direct_number("650"), "DirectNumber", "FaxOnly", []))
            self.store.add_extension(ext)
            exts.append(ext)
        return exts

    # -- per-extension plans ---------------------------------------------------------------

    def plan_extension(self, ext: Extension, index: int, all_exts: list[Extension]) -> None:
        rng = random.Random(f"rcfs-emulator/{self.seed}/ext/{ext.number}")
        department = ext.type == "Department"
        can_text = number_with(ext, "SmsSender") is not None
        n_vm = 8 if department else 22 + rng.randrange(6)
        n_fax_in = 4 if department else 12 + rng.randrange(6)
        n_fax_out = 0 if department else 6 + rng.randrange(4)
        n_calls = 6 if department else 26 + rng.randrange(8)
        n_pager = 0 if department else 4 + rng.randrange(3)

        for i in range(n_vm):
            bucket = "recent" if i < 2 else "old" if i == n_vm - 1 else None
            self.plan_voicemail(ext, rng, _age(rng, bucket), rng.choice(CONTACTS).party(),
                                with_call=rng.random() < 0.4)
        for i in range(n_fax_in):
            bucket = "recent" if i == 0 else "old" if i == n_fax_in - 1 else None
            self.plan_fax_in(ext, rng, _age(rng, bucket), rng.choice(FAX_SENDERS).party(),
                             rng.choice(FAX_SUBJECTS), tiff=(i == n_fax_in - 2))
        for i in range(n_fax_out):
            self.plan_fax_out(ext, rng, _age(rng, "recent" if i == 0 else None),
                              failed=(i == n_fax_out - 1))
        if can_text:
            self.plan_sms(ext, rng)
        colleagues = [e for e in all_exts if e is not ext and e.type == "User"]
        for i in range(n_pager):
            other = colleagues[(index + i) % len(colleagues)]
            direction = "Inbound" if i % 2 == 0 else "Outbound"
            text = PAGER_TEXTS[(i + index) % len(PAGER_TEXTS)]
            self.plan(_age(rng, "recent" if i == 0 else None),
                      self._pager(ext, rng, direction, ext_party(other), text))
        for i in range(n_calls):
            self.plan_call(ext, rng, i, all_exts)
        if index == 0:
            # The one-hour recording (the seed promises at least one of 3600 s).
            age = _age(rng, "month")
            self.plan(age, lambda t: self._add_call(
                build_call(self.ids, ext, t, 3600, "Outbound", CONTACTS[1].party(),
                           recording=(self.config.recording_format, "Automatic"))))
        if index in (0, 1):
            self.plan_hostile(ext, rng)

    def _mark(self, msg: Message, rng: random.Random, t: float) -> None:
        """Leave ~6% Deleted (recently, so the 5-day purge does not hit during tests)."""
        if rng.random() < 0.06:
            mark_deleted(msg, _ms(self.now_ms / 1000 - rng.uniform(600, 2 * 86400)))

    def plan_voicemail(self, ext: Extension, rng: random.Random, age: int,
                       caller: dict[str, Any], *, with_call: bool = False,
                       transcript: str | None = None, duration: int | None = None,
                       fmt: str | None = None, deletable: bool = True) -> None:
        duration = duration or rng.choice((4, 9, 15, 22, 31, 45, 63, 88, 120, 184))
        age = max(age, MIN_AGE_MS + duration * 1000)
        fmt = fmt or rng.choice(("mp3", "mp3", "wav"))
        if transcript is None and rng.random() < 0.5:
            transcript = rng.choice(TRANSCRIPTS)
        ring = rng.randrange(12, 28)
        read_roll, read_delay = rng.random(), rng.randrange(60, 3 * 86400)

        def build(t: float) -> None:
            mid = self.store.new_id()
            read, lmt = _read_state(read_roll, read_delay, self.now_ms, t, True)
            msg = build_voicemail(self.store, self.config, ext, t, dict(caller), duration, fmt,
                                  transcript, msg_id=mid, read_status=read)
            msg.last_modified_time = lmt
            if deletable:
                self._mark(msg, rng, t)
            self.store.add_message(msg)
            if with_call:
                self._add_call(build_call(self.ids, ext, _ms(t - ring), ring + duration,
                                          "Inbound", dict(caller), result="Voicemail",
                                          message_id=mid))

        self.plan(age, build)

    def plan_fax_in(self, ext: Extension, rng: random.Random, age: int,
                    sender: dict[str, Any], subject: str | None, *, tiff: bool = False) -> None:
        pages = rng.choice((1, 1, 2, 3, 5, 8))
        resolution = rng.choice(("High", "Low"))
        with_call = rng.random() < 0.3
        read_roll, read_delay = rng.random(), rng.randrange(60, 3 * 86400)

        def build(t: float) -> None:
            read, lmt = _read_state(read_roll, read_delay, self.now_ms, t, True)
            msg = build_fax(self.store, self.config, ext, t, "Inbound", dict(sender), pages,
                            resolution=resolution, subject=subject,
                            doc="tiff" if tiff else "pdf", read_status=read)
            msg.last_modified_time = lmt
            self._mark(msg, rng, t)
            self.store.add_message(msg)
            if with_call:
                self._add_call(build_call(self.ids, ext, _ms(t - 30 * pages), 30 * pages,
                                          "Inbound", dict(sender), result="Received",
                                          call_type="Fax", message_id=msg.id,
                                          my_number=fax_number(ext)))

        self.plan(age, build)

    def plan_fax_out(self, ext: Extension, rng: random.Random, age: int, failed: bool) -> None:
        recipients = [rng.choice(FAX_SENDERS + CONTACTS[:6]).party()
                      for _ in range(1 if rng.random() < 0.8 else 2)]
        pages = rng.choice((1, 2, 2, 4, 6))
        cover = rng.choice((0, 0, 1, 3, 7))
        cover_text = rng.choice((None, "Please see attached / call with questions",
                                 "Signed copy — thanks!")) if cover else None
        src_roll = rng.random()
        source: tuple[str, str, int] | None = None
        if src_roll < 0.2:
            source = ("pdf", "Quote 2024/Q3 final.pdf", max(1, pages - (1 if cover else 0)))
        elif src_roll < 0.35:
            source = ("png", "scan_0001.png", 1)

        def build(t: float) -> None:
            msg = build_fax(self.store, self.config, ext, t, "Outbound", recipients, pages,
                            resolution=rng.choice(("High", "Low")), cover_index=cover,
                            cover_text=cover_text, source=source,
                            status="SendingFailed" if failed else "Sent",
                            fax_error="LineBusy" if failed else None)
            msg.last_modified_time = _ms(t + 60 * pages)
            self.store.add_message(msg)

        self.plan(age, build)

    def plan_sms(self, ext: Extension, rng: random.Random) -> None:
        mine = {"phoneNumber": number_with(ext, "SmsSender"), "name": ext.name}
        peers = rng.sample(CONTACTS[:11], 5)
        for k, peer in enumerate(peers):
            script = SMS_SCRIPTS[rng.randrange(len(SMS_SCRIPTS))]
            # The first conversation is recent, the others start at random points in the past.
            age = _age(rng, "recent" if k == 0 else None)
            age = max(age, MIN_AGE_MS + len(script) * 10 * 60_000)
            for j, (way, text) in enumerate(script):
                msg_age = age - j * rng.randrange(30_000, 10 * 60_000)
                inbound = way == "in"
                from_ = peer.party() if inbound else dict(mine)
                to = [dict(mine)] if inbound else [peer.party()]
                status = "DeliveryFailed" if (k == 3 and j == 0 and not inbound) else None
                self.plan(msg_age, self._sms(ext, rng, "Inbound" if inbound else "Outbound",
                                             from_, to, text, status=status))
        # A group chat: several recipients in `to`, replies from each member.
        members = rng.sample(CONTACTS[:11], 3)
        age = _age(rng, "month")
        for j, text in enumerate(GROUP_TEXTS):
            msg_age = age - j * 90_000
            if j % 2 == 0:
                from_ = dict(mine)
                to = [m.party() for m in members]
                direction = "Outbound"
            else:
                sender = members[j % 3]
                from_ = sender.party()
                to = [dict(mine)] + [m.party() for m in members if m is not sender]
                direction = "Inbound"
            self.plan(msg_age, self._sms(ext, rng, direction, from_, to, text))
        # MMS: pictures with fileName, width, height and size.
        for j in range(5):
            peer = rng.choice(CONTACTS[:11])
            kind = ("jpeg", "png", "gif", "jpeg", "png")[j]
            w, h = rng.choice(((640, 480), (480, 640), (320, 240), (800, 600), (200, 200)))
            name = f"IMG_{rng.randrange(1000, 9999)}.{_KIND_EXT[kind]}"
            images: list[MmsImage] = [(kind, w, h, name)]
            if j == 3:
                images.append(("png", 160, 120, "sticker.png"))
            inbound = j % 2 == 0
            caption: str | None = rng.choice(("Look at this!", "📷", None, "Here's the receipt"))
            from_ = peer.party() if inbound else dict(mine)
            to = [dict(mine)] if inbound else [peer.party()]
            self.plan(_age(rng, "recent" if j == 0 else None),
                      self._sms(ext, rng, "Inbound" if inbound else "Outbound", from_, to,
                                caption, mms=images))

    def _sms(self, ext: Extension, rng: random.Random, direction: str,
             from_: dict[str, Any], to: list[dict[str, Any]], text: str | None,
             *, status: str | None = None,
             mms: list[MmsImage] | None = None,
             deletable: bool = True) -> Callable[[float], None]:
        read_roll, read_delay = rng.random(), rng.randrange(60, 3 * 86400)
        error = "SMS-CAR-411" if status == "DeliveryFailed" else None

        def build(t: float) -> None:
            read, lmt = _read_state(read_roll, read_delay, self.now_ms, t,
                                    direction == "Inbound")
            msg = build_sms(self.store, self.config, ext, t, direction, from_, to, text, None,
                            mms=mms, status=status, error_code=error, read_status=read)
            msg.last_modified_time = lmt if direction == "Inbound" else (
                msg.sms_delivery_time or t)
            if deletable:
                self._mark(msg, rng, t)
            self.store.add_message(msg)

        return build

    def _pager(self, ext: Extension, rng: random.Random, direction: str,
               other: dict[str, Any], text: str) -> Callable[[float], None]:
        read_roll, read_delay = rng.random(), rng.randrange(60, 3 * 86400)

        def build(t: float) -> None:
            read, lmt = _read_state(read_roll, read_delay, self.now_ms, t,
                                    direction == "Inbound")
            msg = build_pager(self.store, self.config, ext, t, direction, other, text,
                              read_status=read)
            msg.last_modified_time = lmt
            self.store.add_message(msg)

        return build

    def plan_call(self, ext: Extension, rng: random.Random, i: int,
                  all_exts: list[Extension]) -> None:
        roll = rng.random()
        direction = rng.choice(DIRECTIONS)
        other = rng.choice(CONTACTS).party()
        if rng.random() < 0.1:
            peer = all_exts[(all_exts.index(ext) + 1 + rng.randrange(3)) % len(all_exts)]
            other = ext_party(peer)
            del other["extensionId"]
        result = "Call connected" if direction == "Outbound" else "Accepted"
        recording: tuple[str, str] | None = None
        short = False
        if roll < 0.12 and direction == "Inbound":
            result, duration = "Missed", 0
        elif roll < 0.24:
            duration = rng.randrange(5, 29)
            short = True
            recording = ("mp3", "Automatic")
        else:
            # 30 s .. 1 h, mostly a few minutes.
            duration = min(3600, int(30 * (120 ** rng.random())))
            if rng.random() < 0.8:
                # WAV vs MP3 is an account setting in RingCentral (docs/ringcentral.md §5.3).
                recording = (self.config.recording_format,
                             "Automatic" if rng.random() < 0.7 else "OnDemand")
        bucket = "recent" if i < 3 else None
        age = max(_age(rng, bucket), MIN_AGE_MS + duration * 1000)
        action = None if direction == "Inbound" else rng.choice(
            ("VoIP Call", "VoIP Call", "RingOut Web", "Phone Call"))
        if short:
            # Too short to keep: shortRecording, no recording object (G4).
            recording = None
        self.plan(age, lambda t: self._add_call(build_call(
            self.ids, ext, t, duration, direction, other, result=result, action=action,
            recording=recording, short_recording=short)))

    def _add_call(self, call: CallRecord) -> None:
        self.store.add_call(call)

    def plan_hostile(self, ext: Extension, rng: random.Random) -> None:
        """The hostile names and shapes, some inside the 24 h window and some older."""
        h = HOSTILE
        hostile_vm = (
            ("control", "recent", True), ("long", "recent", False), ("rtl", "month", False),
            ("no_name", "recent", False), ("slash", "old", True), ("emoji", "month", False),
            ("zero_width", "old", False), ("combining", "recent", False),
            ("dots", "month", False),
        )
        for key, bucket, with_call in hostile_vm:
            self.plan_voicemail(ext, rng, _age(rng, bucket), h[key].party(),
                                with_call=with_call, deletable=False)
        self.plan(_age(rng, "month"), lambda t: self._add_call(build_call(
            self.ids, ext, t, 95, "Inbound", h["control"].party(),
            recording=(self.config.recording_format, "Automatic"))))
        for k, subject in enumerate(HOSTILE_FAX_SUBJECTS):
            self.plan_fax_in(ext, rng, _age(rng, "recent" if k == 0 else "old"),
                             h["slash"].party() if k else h["long"].party(), subject)
        mine = {"phoneNumber": number_with(ext, "SmsSender"), "name": ext.name}
        # SMS from a short code, and a conversation of hostile texts with an emoji sender.
        self.plan(_age(rng, "recent"), self._sms(
            ext, rng, "Inbound", h["short_code"].party(), [dict(mine)],
            "Your verification code is 482913. Do not share it.", deletable=False))
        base = _age(rng, "recent") + 20 * 60_000
        for j, text in enumerate(HOSTILE_TEXTS):
            inbound = j % 2 == 0
            peer = h["emoji"] if j < 4 else h["rtl"]
            self.plan(base - j * 60_000, self._sms(
                ext, rng, "Inbound" if inbound else "Outbound",
                peer.party() if inbound else dict(mine),
                [dict(mine)] if inbound else [peer.party()], text, deletable=False))
        # A picture whose fileName is a path.
        self.plan(_age(rng, "month"), self._sms(
            ext, rng, "Inbound", h["slash"].party(), [dict(mine)], "scan attached",
            mms=[("jpeg", 320, 240, "../photos/2024/IMG 0001.jpg")],
            deletable=False))
        # Duplicate creationTime: a voicemail and a fax, and two SMS of one conversation,
        # once inside the 24 h window and once a year ago.
        for bucket in ("recent", "old"):
            age = max(_age(rng, bucket), MIN_AGE_MS + 60_000)
            self.plan_voicemail(ext, rng, age, CONTACTS[4].party(), duration=30,
                                deletable=False)
            self.plan_fax_in(ext, rng, age, FAX_SENDERS[0].party(), "Same second as a voicemail")
            for text in ("Part 1 of a split message", "Part 2 of a split message"):
                self.plan(age, self._sms(ext, rng, "Inbound", CONTACTS[5].party(),
                                         [dict(mine)], text, deletable=False))
        # Explicitly deleted and purged messages (not left to chance).
        now = self.now_ms / 1000

        def deleted_vm(t: float) -> None:
            msg = build_voicemail(self.store, self.config, ext, t, CONTACTS[2].party(), 20,
                                  "mp3", "Please delete this message.", read_status="Read")
            mark_deleted(msg, _ms(now - 3600))
            self.store.add_message(msg)

        def purged_fax(t: float) -> None:
            msg = build_fax(self.store, self.config, ext, t, "Inbound",
                            FAX_SENDERS[1].party(), 2, subject="Purged fax")
            mark_deleted(msg, _ms(now - 7200), purged=True)
            self.store.add_message(msg)

        self.plan(_age(rng, "recent"), deleted_vm)
        self.plan(_age(rng, "month"), purged_fax)

    # -- greetings -------------------------------------------------------------------------

    def greetings(self, ext: Extension) -> None:
        rng = random.Random(f"rcfs-emulator/{self.seed}/greetings/{ext.number}")

        def custom(rule_id: str, gtype: str, fmt: str) -> dict[str, Any]:
            gid = self.ids.greeting_id()
            blob = audio_blob(fmt, rng.randrange(4, 26), int(gid), greeting=True)
            self.store.greetings[gid] = Greeting(gid, ext.id, gtype, blob, rule_id)
            return {"type": gtype, "custom_id": gid}

        def preset(gtype: str) -> dict[str, Any]:
            pid, name = GREETING_PRESETS[gtype]
            return {"type": gtype, "preset": {"id": pid, "name": name}}

        if ext.type == "Department":
            rules = [AnsweringRule("business-hours-rule", ext.id, "BusinessHours", "Work Hours",
                                   greetings=[custom("business-hours-rule", "Voicemail", "wav"),
                                              preset("ConnectingAudio"), preset("HoldMusic")])]
        else:
            bh = "business-hours-rule"
            ah = "after-hours-rule"
            fmt = rng.choice(("wav", "mp3"))
            business = [
                custom(bh, "Introductory", "mp3") if rng.random() < 0.5 else preset(
                    "Introductory"),
                preset("Announcement"),
                preset("ConnectingMessage"),
                preset("ConnectingAudio"),
                custom(bh, "Voicemail", fmt),
                preset("Unavailable"),
                preset("InterruptPrompt"),
                preset("HoldMusic"),
            ]
            after = [
                preset("Introductory"),
                custom(ah, "Voicemail", "mp3") if rng.random() < 0.6 else preset("Voicemail"),
                preset("Unavailable"),
            ]
            custom_id = str(3_107_580_000 + rng.randrange(10_000) * 10 + ext.id % 10)
            vip = [
                custom(custom_id, "Announcement", "wav"),
                custom(custom_id, "Voicemail", "mp3"),
                preset("ConnectingAudio"),
            ]
            rules = [
                AnsweringRule(bh, ext.id, "BusinessHours", "Work Hours", greetings=business),
                AnsweringRule(ah, ext.id, "AfterHours", "After Hours", greetings=after),
                AnsweringRule(custom_id, ext.id, "Custom", "Holiday / Out of office (VIP ☎)",
                              enabled=rng.random() < 0.5, greetings=vip),
            ]
        for rule in rules:
            self.store.rules[rule_key(ext.id, rule.id)] = rule

    # -- scale mode ------------------------------------------------------------------------

    def scale(self, exts: list[Extension], per_ext: int) -> None:
        """``per_ext`` cheap messages per extension spread over two years: voicemails, faxes
        and SMS (a few MMS), oldest first.

        This loop builds the store's objects directly (no builder calls, float draws only)
        because it runs 100,000s of times; party dicts, ``to`` lists and SMS text blobs are
        shared between these messages, media blobs stay per message (seed = message id).
        """
        store, config = self.store, self.config
        omit = config.omit_size_types
        size_audio = "AudioRecording" not in omit
        size_doc = "RenderedDocument" not in omit
        size_text = "Text" not in omit
        size_tr = "AudioTranscription" not in omit
        size_mms = "MmsAttachment" not in omit
        parties = [c.party() for c in CONTACTS + FAX_SENDERS]
        n_callers = len(CONTACTS)
        subjects = [_vm_subject(p.get("name") or p["phoneNumber"]) for p in parties]
        texts = [script[0][1] for script in SMS_SCRIPTS]
        text_blobs = [text_blob(x) for x in texts]
        transcripts = [text_blob(x) for x in TRANSCRIPTS]
        span = MAX_AGE_MS - MIN_AGE_MS - 200_000
        now_ms = self.now_ms
        for ext in exts:
            rng = random.Random(f"rcfs-emulator/{self.seed}/scale/{ext.number}")
            rand = rng.random
            ext_id = ext.id
            me_voice = [ext_party(ext, voice_number(ext))]
            me_fax = [ext_party(ext, fax_number(ext))]
            sms_number = number_with(ext, "SmsSender")
            mine = {"phoneNumber": sms_number, "name": ext.name}
            me_sms = [mine]
            peers = parties[:12]
            convs = [conversation_id_for(store.account_id, [str(sms_number), p["phoneNumber"]])
                     for p in peers]
            out_to = [[{**p, "messageStatus": "Delivered"}] for p in peers]
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


def rule_key(extension_id: int, rule_id: str) -> str:
    """Key of an answering rule in ``Store.rules``: rule ids such as ``business-hours-rule``
    repeat in every extension, so the dict is keyed by ``"<extensionId>/<ruleId>"``."""
    return f"{extension_id}/{rule_id}"


def build_store(config: EmulatorConfig, now: float) -> Store:
    """The seeded account for ``config.seed`` (plus ``config.scale`` messages per extension).

    The cyclic GC is paused meanwhile: with 100,000+ new objects its generation scans would
    cost more than building them (nothing here creates reference cycles worth collecting);
    in scale mode the result is frozen out of later collections for the same reason.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        seeder = _Seeder(config, now)
        exts = seeder.extensions()
        for index, ext in enumerate(exts):
            seeder.plan_extension(ext, index, exts)
        seeder.run_plans()
        for ext in exts:
            seeder.greetings(ext)
        if config.scale > 0:
            seeder.scale(exts, config.scale)
        if len(seeder.store.messages) >= 10_000:
            # Move the (long-lived, acyclic) seeded objects out of the collector's reach:
            # otherwise the first collections after this traverse millions of them (7 s
            # each at 500,000 messages).
            gc.freeze()
        return seeder.store
    finally:
        if was_enabled:
            gc.enable()


# ---------------------------------------------------------------------------------------------
# Admin API: add a message or a call at run time


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
        return _ms(default)
    if isinstance(raw, int | float):
        return _ms(float(raw))
    return _ms(parse_date(str(raw), key))


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
            file_name = f"{stem}.{_KIND_EXT[kind]}"
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
        mark_deleted(msg, _ms(now), purged=availability == "Purged")
    msg.last_modified_time = max(msg.last_modified_time, _ms(now))
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
    ids = _Ids(random.Random(f"rcfs-emulator/{config.seed}/runtime-call/{len(store.calls)}"),
               store)
    message_id = None
    if spec.get("voicemail") or result == "Voicemail":
        ring = min(20, duration)
        vm = build_voicemail(store, config, ext, _ms(start + ring), other,
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
    call.last_modified_time = _ms(max(end, now))
    store.add_call(call)
    return call
