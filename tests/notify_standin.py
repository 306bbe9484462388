"""A stand-in org.freedesktop.Notifications service on a private session bus (dbus-daemon),
recording every Notify call and able to emit ActionInvoked, for the notification tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from jeepney import DBusAddress, MessageType, message_bus, new_method_return, new_signal
from jeepney.io.blocking import open_dbus_connection
from jeepney.low_level import HeaderFields

NAME = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"


class PrivateBus:
    """``dbus-daemon --session`` on a socket in a temp folder; ``address`` to connect."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="rcfs-dbus-"))
        self.proc = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1",
             f"--address=unix:path={self.dir / 'bus'}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        self.address = self.proc.stdout.readline().strip()
        if not self.address:
            self.close()
            raise RuntimeError("dbus-daemon did not start")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class NotificationService:
    """Owns the well-known name; ``calls`` holds each Notify's arguments as a dict."""

    def __init__(self, address: str) -> None:
        self.conn = open_dbus_connection(address)
        reply = self.conn.send_and_get_reply(message_bus.RequestName(NAME))
        assert reply.body[0] == 1, reply.body  # primary owner
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._outgoing: list[Any] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                out, self._outgoing = self._outgoing, []
            for msg in out:
                self.conn.send(msg)
            try:
                msg = self.conn.receive(timeout=0.1)
            except TimeoutError:
                continue
            if (msg.header.message_type != MessageType.method_call
                    or msg.header.fields.get(HeaderFields.interface) != NAME):
                continue
            member = msg.header.fields.get(HeaderFields.member)
            if member == "Notify":
                app, replaces, icon, summary, body, actions, hints, timeout = msg.body
                with self._lock:
                    self.calls.append({"app": app, "icon": icon, "summary": summary,
                                       "body": body, "actions": list(actions),
                                       "hints": dict(hints), "id": len(self.calls) + 1})
                    nid = len(self.calls)
                self.conn.send(new_method_return(msg, "u", (nid,)))
            elif member == "GetCapabilities":
                self.conn.send(new_method_return(msg, "as", (["actions", "body"],)))

    def invoke(self, nid: int, key: str = "default") -> None:
        """Emit ActionInvoked, as a click on the notification would."""
        signal = new_signal(DBusAddress(PATH, interface=NAME), "ActionInvoked", "us",
                            (nid, key))
        with self._lock:
            self._outgoing.append(signal)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.conn.close()


def fake_opener(folder: Path) -> Path:
    """An ``xdg-open`` that records what it was asked to open (one path per line)."""
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / "opened.txt"
    script = folder / "xdg-open"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$1\" >> {record}\n")
    script.chmod(0o755)
    return record


def path_with(folder: Path) -> str:
    return f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"
