"""The emulated account's state: extensions, messages, calls, greetings, sends.

Objects hold what RingCentral stores; the JSON shapes are produced by ``render.py``. Media
is described by a ``Blob`` that either holds uploaded bytes or regenerates seeded media on
demand, so a scale-mode mailbox of 100,000 messages costs no disk.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rcfs.emulator import media


@functools.lru_cache(maxsize=48)
def _generate(kind: str, params: tuple[Any, ...]) -> bytes:
    if kind == "wav":
        return media.wav(params[0], params[1])
    if kind == "mp3":
        return media.mp3(params[0], params[1])
    if kind == "pdf":
        return media.pdf(params[0], params[1], params[2])
    if kind == "tiff":
        return media.tiff(params[0], params[1])
    if kind == "jpeg":
        return media.jpeg(params[0], params[1], params[2])
    if kind == "png":
        return media.png(params[0], params[1], params[2])
    if kind == "gif":
        return media.gif(params[0], params[1], params[2])
    if kind == "text":
        return str(params[0]).encode("utf-8")
    raise ValueError(f"unknown media kind {kind}")


@dataclass(eq=False)
class Blob:
    """Content of an attachment, recording or greeting: literal bytes or seeded media."""

    content_type: str
    data: bytes | None = None
    kind: str = ""
    params: tuple[Any, ...] = ()

    def bytes(self) -> bytes:
        if self.data is not None:
            return self.data
        return _generate(self.kind, self.params)

    def size(self) -> int:
        return len(self.bytes())

    def sha256(self) -> str:
        return hashlib.sha256(self.bytes()).hexdigest()


@dataclass
class PhoneNumber:
    id: int
    phone_number: str
    usage_type: str = "DirectNumber"
    type: str = "VoiceFax"
    features: list[str] = field(default_factory=list)


@dataclass
class Extension:
    id: int
    number: str
    first_name: str
    last_name: str
    email: str
    admin: bool = False
    type: str = "User"
    status: str = "Enabled"
    phone_numbers: list[PhoneNumber] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


@dataclass
class Attachment:
    id: int
    type: str
    blob: Blob
    file_name: str | None = None
    vm_duration: int | None = None
    width: int | None = None
    height: int | None = None
    report_size: bool = True


@dataclass
class Message:
    id: int
    extension_id: int
    type: str  # Fax | SMS | VoiceMail | Pager
    direction: str  # Inbound | Outbound
    creation_time: float
    from_: dict[str, Any]
    to: list[dict[str, Any]]
    attachments: list[Attachment] = field(default_factory=list)
    subject: str | None = None
    availability: str = "Alive"
    message_status: str = "Received"
    read_status: str = "Unread"
    priority: str = "Normal"
    last_modified_time: float = 0.0
    conversation_id: int | None = None
    fax_page_count: int | None = None
    fax_resolution: str | None = None
    cover_index: int | None = None
    cover_page_text: str | None = None
    vm_transcription_status: str | None = None
    delivery_error_code: str | None = None
    sms_sending_attempts: int | None = None
    sms_delivery_time: float | None = None
    deleted_at: float | None = None
    purged_at: float | None = None
    gone: bool = False
    # Listings and message-sync leave the message out until then (message_store_lag).
    visible_at: float = 0.0

    def __post_init__(self) -> None:
        if not self.last_modified_time:
            self.last_modified_time = self.creation_time


@dataclass
class Recording:
    id: str
    blob: Blob
    duration: int
    type: str = "Automatic"
    available_at: float = 0.0


@dataclass
class CallRecord:
    id: str
    extension_id: int
    session_id: str
    telephony_session_id: str
    start_time: float
    duration: int
    direction: str
    from_: dict[str, Any]
    to: dict[str, Any]
    type: str = "Voice"
    action: str = "Phone Call"
    result: str = "Call connected"
    recording: Recording | None = None
    short_recording: bool = False
    last_modified_time: float = 0.0
    visible_at: float = 0.0
    deleted: bool = False
    message_id: int | None = None

    def __post_init__(self) -> None:
        if not self.last_modified_time:
            self.last_modified_time = self.start_time + self.duration


@dataclass
class Greeting:
    id: str
    extension_id: int
    type: str
    blob: Blob
    answering_rule_id: str | None = None


@dataclass
class AnsweringRule:
    id: str
    extension_id: int
    type: str  # BusinessHours | AfterHours | Custom
    name: str
    enabled: bool = True
    # Each item: {"type": ..., "custom_id": "..."} or {"type": ..., "preset": {...}}
    greetings: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ReportTask:
    id: str
    account_id: int
    extension_id: int
    creation_time: float
    date_from: float
    date_to: float
    message_types: list[str]
    status: str = "Accepted"
    last_modified_time: float = 0.0
    start_time: float | None = None
    finish_time: float | None = None
    archives: list[Blob] = field(default_factory=list)


@dataclass
class SentItem:
    """What a send endpoint received, for tests to compare against (GET /_emulator/sent)."""

    kind: str  # fax | sms | mms | greeting
    extension_id: int
    time: float
    request: dict[str, Any]
    attachments: list[dict[str, Any]]
    result_id: str | None = None
    status: int = 200


class Store:
    """All data of one emulated account, with the indexes the routes need."""

    def __init__(self, account_id: int, main_number: str, company: str) -> None:
        self.account_id = account_id
        self.main_number = main_number
        self.company = company
        self.extensions: dict[int, Extension] = {}
        self.messages: dict[int, Message] = {}
        # Per extension, messages sorted by (creation_time, id): listing is a bisect + slice.
        self._by_ext: dict[int, list[tuple[float, int]]] = {}
        self.calls: dict[str, CallRecord] = {}
        self._calls_sorted: list[tuple[float, str]] = []
        self.recordings: dict[str, Recording] = {}
        self.greetings: dict[str, Greeting] = {}
        self.rules: dict[str, AnsweringRule] = {}
        self.reports: dict[str, ReportTask] = {}
        self.sent: list[SentItem] = []
        self._next_id = 5_209_304_000 + account_id % 1000
        # Called as listener(change, obj) for run-time changes (the WebSocket gateway's
        # events): "message_new", "message_updated", "message_deleted", "call_new".
        self.listeners: list[Callable[[str, Any], None]] = []

    def emit(self, change: str, obj: Any) -> None:
        for listener in list(self.listeners):
            listener(change, obj)

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add_extension(self, ext: Extension) -> None:
        self.extensions[ext.id] = ext
        self._by_ext.setdefault(ext.id, [])

    def add_message(self, msg: Message) -> None:
        self.messages[msg.id] = msg
        bisect.insort(self._by_ext.setdefault(msg.extension_id, []), (msg.creation_time, msg.id))
        self.emit("message_new", msg)

    def remove_message(self, msg_id: int) -> None:
        msg = self.messages.pop(msg_id)
        lst = self._by_ext[msg.extension_id]
        i = bisect.bisect_left(lst, (msg.creation_time, msg.id))
        if i < len(lst) and lst[i] == (msg.creation_time, msg.id):
            del lst[i]
        self.emit("message_deleted", msg)

    def messages_of(self, ext_id: int, start: float, end: float) -> list[Message]:
        """Messages of one extension created in (start, end], newest first."""
        lst = self._by_ext.get(ext_id, [])
        lo = bisect.bisect_right(lst, (start, 1 << 62))
        hi = bisect.bisect_right(lst, (end, 1 << 62))
        return [self.messages[mid] for _, mid in reversed(lst[lo:hi])]

    def add_call(self, call: CallRecord) -> None:
        self.calls[call.id] = call
        bisect.insort(self._calls_sorted, (call.start_time, call.id))
        if call.recording is not None:
            self.recordings[call.recording.id] = call.recording
        self.emit("call_new", call)

    def calls_between(
        self, start: float, end: float, keep: Callable[[CallRecord], bool]
    ) -> list[CallRecord]:
        """Calls started in [start, end), newest first, filtered by ``keep``."""
        lo = bisect.bisect_left(self._calls_sorted, (start, ""))
        hi = bisect.bisect_left(self._calls_sorted, (end, ""))
        out = []
        for _, cid in reversed(self._calls_sorted[lo:hi]):
            call = self.calls[cid]
            if keep(call):
                out.append(call)
        return out

    def find_attachment(self, msg_id: int, att_id: int) -> tuple[Message, Attachment] | None:
        msg = self.messages.get(msg_id)
        if msg is None:
            return None
        for att in msg.attachments:
            if att.id == att_id:
                return msg, att
        return None
