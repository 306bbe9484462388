"""The clock-driven state machines of a sent fax and a sent SMS/MMS (the lifecycles the
``rcfs.emulator.routes_send`` docstring describes), on the emulator clock (``emu.at``).
"""

from __future__ import annotations

from collections.abc import Callable

from rcfs.emulator.core import Emulator
from rcfs.emulator.store import Message

# Deterministic failure triggers: the last four digits of a recipient's number (the
# ``rcfs.emulator.routes_send`` docstring lists them).
FAX_FAILURES = {"0000": "NoAnswer", "9999": "InvalidNumber", "1111": "LineBusy",
                "2222": "NoFaxMachine"}
SMS_DELIVERY_FAILURES = {"0000": "SMS-CAR-411", "4130": "SMS-RC-413"}
SMS_SENDING_FAILURE = "9999"


def _live(emu: Emulator, msg_id: int) -> Message | None:
    """The message if it still exists and was not deleted (a deleted Queued send is
    cancelled: its remaining timers do nothing)."""
    msg = emu.store.messages.get(msg_id)
    if msg is None or msg.availability != "Alive" or msg.gone:
        return None
    return msg


def _touch(emu: Emulator, msg: Message, when: float) -> None:
    msg.last_modified_time = max(when, msg.last_modified_time + 0.001)
    emu.store.emit("message_updated", msg)  # a status change: a message-store event


def fax_aggregate(statuses: list[str]) -> str:
    """Aggregate fax status (spec): any Queued ⇒ Queued; any SendingFailed ⇒ that; else Sent."""
    if "Queued" in statuses:
        return "Queued"
    if "SendingFailed" in statuses:
        return "SendingFailed"
    return "Sent"


def schedule_fax(emu: Emulator, msg_id: int, start: float, pages: int,
                 render_error: str | None) -> None:
    """Arm the fax timers: recipients are dialled one after the other from ``start``."""
    spp = emu.config.fax_seconds_per_page
    msg = emu.store.messages[msg_id]
    if render_error is not None:
        def fail_all(when: float) -> None:
            m = _live(emu, msg_id)
            if m is None:
                return
            for rcpt in m.to:
                rcpt["messageStatus"] = "SendingFailed"
                rcpt["faxErrorCode"] = render_error
            m.message_status = "SendingFailed"
            _touch(emu, m, when)
        emu.at(start + spp, fail_all)
        return

    def finisher(index: int) -> Callable[[float], None]:
        def finish(when: float) -> None:
            m = _live(emu, msg_id)
            if m is None or index >= len(m.to):
                return
            rcpt = m.to[index]
            code = FAX_FAILURES.get(str(rcpt.get("phoneNumber", ""))[-4:])
            if code is None:
                rcpt["messageStatus"] = "Sent"
                rcpt.pop("faxErrorCode", None)
            else:
                rcpt["messageStatus"] = "SendingFailed"
                rcpt["faxErrorCode"] = code
            if not m.fax_page_count:
                m.fax_page_count = pages
            m.message_status = fax_aggregate([str(r.get("messageStatus")) for r in m.to])
            _touch(emu, m, when)
        return finish

    for i in range(len(msg.to)):
        emu.at(start + (i + 1) * pages * spp, finisher(i))


def schedule_sms(emu: Emulator, msg_id: int, start: float) -> None:
    """Queued → Sent → Delivered, or the failures of the module docstring."""
    cfg = emu.config
    msg = emu.store.messages[msg_id]
    tails = [str(r.get("phoneNumber", ""))[-4:] for r in msg.to]

    def sent(when: float) -> None:
        m = _live(emu, msg_id)
        if m is None:
            return
        if SMS_SENDING_FAILURE in tails:
            m.message_status = "SendingFailed"
            m.delivery_error_code = "SMS-UP-410"
        else:
            m.message_status = "Sent"
        _touch(emu, m, when)

    def delivered(when: float) -> None:
        m = _live(emu, msg_id)
        if m is None or m.message_status != "Sent":
            return
        codes = [SMS_DELIVERY_FAILURES[t] for t in tails if t in SMS_DELIVERY_FAILURES]
        if codes:
            m.message_status = "DeliveryFailed"
            m.delivery_error_code = codes[0]
        else:
            m.message_status = "Delivered"
            m.sms_delivery_time = when
        _touch(emu, m, when)

    emu.at(start + cfg.sms_send_delay, sent)
    emu.at(start + cfg.sms_send_delay + cfg.sms_deliver_delay, delivered)
