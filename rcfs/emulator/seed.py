"""Deterministic seed data (placeholder: being extended)."""

from __future__ import annotations

import random
from typing import Any

from rcfs.emulator.config import EmulatorConfig
from rcfs.emulator.store import (
    Attachment,
    Blob,
    CallRecord,
    Extension,
    Message,
    PhoneNumber,
    Store,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from rcfs.emulator.core import Emulator


def build_store(config: EmulatorConfig, now: float) -> Store:
    rng = random.Random(config.seed)
    account_id = 400_000_000_000 + rng.randrange(1_000_000) * 1000 + 8
    store = Store(account_id, "+16505550100", "Emulated Co")
    people = [("101", "Alice", "Smith", True), ("102", "Bob", "Jones", False),
              ("103", "Carol", "Nguyen", False), ("104", "Dan", "Okafor", False)]
    for i, (num, first, last, admin) in enumerate(people):
        ext = Extension(account_id + 1000 * (i + 1), num, first, last,
                        f"{first.lower()}@example.com", admin=admin)
        ext.phone_numbers.append(PhoneNumber(
            store.new_id(), f"+1650555{1000 + i:04d}", "DirectNumber", "VoiceFax",
            ["CallerId", "SmsSender", "MmsSender", "FaxSender"]))
        store.add_extension(ext)
        for k in range(3):
            t = now - 86400 * (k * 30 + 1) - rng.randrange(3600)
            mid = store.new_id()
            store.add_message(Message(
                mid, ext.id, "VoiceMail", "Inbound", t,
                {"phoneNumber": "+12125557464", "name": "Bob Jones"},
                [{"phoneNumber": ext.phone_numbers[0].phone_number, "name": ext.name}],
                [Attachment(mid, "AudioRecording", Blob("audio/mpeg", kind="mp3",
                                                         params=(42.0, mid)), vm_duration=42)],
            ))
    return store


def add_message_from_spec(emu: Emulator, spec: dict[str, Any]) -> Message:
    raise NotImplementedError


def add_call_from_spec(emu: Emulator, spec: dict[str, Any]) -> CallRecord:
    raise NotImplementedError
