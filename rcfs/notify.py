"""Desktop notifications (``notify = true`` / ``rcfs mount --notify``).

A new inbound voicemail, fax or text raises one org.freedesktop.Notifications notification
over the session D-Bus, naming the caller and the duration (pages for a fax); its default
action opens the file with the user's default application (``xdg-open``, else
``gio open``). Items arriving within ``burst_s`` of each other collapse into one
notification. No session bus: nothing is raised, said once in the log.

jeepney is pure Python and runs on trio (``jeepney.io.trio``): no libdbus, no GLib loop.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from jeepney import DBusAddress, MatchRule, message_bus, new_method_call
from jeepney.io.trio import open_dbus_router
from jeepney.low_level import HeaderFields

from rcfs.api.models import Message

log = logging.getLogger(__name__)

BUS_NAME = "org.freedesktop.Notifications"
OBJECT_PATH = "/org/freedesktop/Notifications"
KINDS = {"VoiceMail": "voicemail", "Fax": "fax", "SMS": "text"}
PLURAL = {"voicemail": "voicemails", "fax": "faxes", "text": "texts"}
MAX_LINES = 5


@dataclass(frozen=True)
class Item:
    kind: str  # voicemail | fax | text
    caller: str
    detail: str  # "0m42s", "2 pages", the text's first words
    path: Path | None  # the file in the mount, for the "open" action


def describe(msg: Message, path: Path | None) -> Item | None:
    """The notification line of a message, or None if it is not news."""
    kind = KINDS.get(msg.type or "")
    if kind is None or msg.direction != "Inbound":
        return None
    party = msg.from_
    number = party.phone_number or party.extension_number if party else None
    name = party.name if party else None
    caller = f"{name} ({number})" if name and number else (name or number or "unknown caller")
    if kind == "voicemail":
        secs = next((a.vm_duration for a in msg.attachments if a.vm_duration), None)
        detail = f"{secs // 60}m{secs % 60:02d}s" if secs is not None else ""
    elif kind == "fax":
        pages = msg.fax_page_count
        detail = f"{pages} page{'s' if pages != 1 else ''}" if pages else ""
    else:
        text = (msg.subject or "").strip().replace("\n", " ")
        detail = text[:80] + ("…" if len(text) > 80 else "")
    return Item(kind, caller, detail, path)


def render(items: list[Item]) -> tuple[str, str]:
    """(summary, body) of one notification for a burst of items."""
    if len(items) == 1:
        item = items[0]
        summary = f"New {item.kind} from {item.caller}"
        return summary, item.detail
    counts: dict[str, int] = {}
    for item in items:
        counts[item.kind] = counts.get(item.kind, 0) + 1
    summary = f"{len(items)} new messages: " + ", ".join(
        f"{n} {PLURAL[kind] if n > 1 else kind}" for kind, n in counts.items())
    lines = [f"{i.kind} from {i.caller}" + (f" ({i.detail})" if i.detail else "")
             for i in items[:MAX_LINES]]
    if len(items) > MAX_LINES:
        lines.append(f"and {len(items) - MAX_LINES} more")
    return summary, "\n".join(lines)


def opener() -> list[str] | None:
    """The desktop's "open with the default application" command."""
    if shutil.which("xdg-open"):
        return ["xdg-open"]
    if shutil.which("gio"):
        return ["gio", "open"]
    return None


class DesktopNotifier:
    """Collects new items (``add``) and raises notifications from ``run``."""

    def __init__(self, resolve: Callable[[str, str], Path | None], *,
                 burst_s: float = 1.0, app_name: str = "rcfs") -> None:
        self.resolve = resolve
        self.burst_s = burst_s
        self.app_name = app_name
        self._pending: list[Item] = []
        self._wake = trio.Event()
        self._targets: dict[int, Path] = {}  # notification id -> what "open" opens
        self.raised = 0
        self.state = "starting"

    def add(self, ext_id: str, messages: list[Message]) -> None:
        for msg in sorted(messages, key=lambda m: m.creation_time):
            item = describe(msg, None)
            if item is not None:
                self._pending.append(Item(item.kind, item.caller, item.detail,
                                          self.resolve(ext_id, msg.id)))
        if self._pending:
            self._wake.set()

    async def run(self) -> None:
        if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
            self.state = "no session bus"
            log.info("desktop notifications off: no session D-Bus")
            return
        try:
            async with open_dbus_router(bus="SESSION") as router, trio.open_nursery() as n:
                self.state = "ready"
                n.start_soon(self._actions, router)
                await self._raise_loop(router)
        except (OSError, ConnectionError, ValueError, KeyError) as exc:
            self.state = f"unavailable: {exc}"
            log.info("desktop notifications off: session D-Bus unreachable (%s)", exc)

    async def _raise_loop(self, router: Any) -> None:
        address = DBusAddress(OBJECT_PATH, bus_name=BUS_NAME, interface=BUS_NAME)
        while True:
            await self._wake.wait()
            # The rest of the burst joins this one: wait for a quiet ``burst_s`` (bounded).
            with trio.move_on_after(10 * self.burst_s):
                while True:
                    count = len(self._pending)
                    await trio.sleep(self.burst_s)
                    if len(self._pending) == count:
                        break
            self._wake = trio.Event()
            items, self._pending = self._pending, []
            if not items:
                continue
            summary, body = render(items)
            target = items[0].path if len(items) == 1 else _common_folder(items)
            actions = ["default", "Open"] if target is not None else []
            msg = new_method_call(address, "Notify", "susssasa{sv}i", (
                self.app_name, 0, "mail-message-new", summary, body, actions,
                {"category": ("s", "im.received")}, -1))
            try:
                with trio.fail_after(10):
                    reply = await router.send_and_get_reply(msg)
            except (trio.TooSlowError, OSError) as exc:
                log.info("desktop notification not shown: %s", exc)
                continue
            self.raised += 1
            if reply.body and target is not None:
                self._targets[int(reply.body[0])] = target

    async def _actions(self, router: Any) -> None:
        rule = MatchRule(type="signal", interface=BUS_NAME, path=OBJECT_PATH)
        await router.send_and_get_reply(message_bus.AddMatch(rule))
        async with router.filter(rule, bufsize=16) as signals:
            async for signal in signals:
                member = signal.header.fields.get(HeaderFields.member)
                if member == "ActionInvoked":
                    nid, _key = signal.body
                    path = self._targets.get(int(nid))
                    if path is not None:
                        await self._open(path)
                elif member == "NotificationClosed":
                    self._targets.pop(int(signal.body[0]), None)

    async def _open(self, path: Path) -> None:
        cmd = opener()
        if cmd is None:
            log.info("cannot open %s: neither xdg-open nor gio is installed", path)
            return
        try:
            with trio.move_on_after(30):
                await trio.run_process([*cmd, str(path)], check=False,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError as exc:
            log.info("cannot open %s: %s", path, exc)


def _common_folder(items: list[Item]) -> Path | None:
    paths = [i.path for i in items if i.path is not None]
    if not paths:
        return None
    return Path(os.path.commonpath([str(p.parent) for p in paths]))
