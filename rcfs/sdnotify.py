"""systemd ``sd_notify`` without libsystemd: one datagram to ``$NOTIFY_SOCKET``."""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    """Send e.g. ``READY=1`` or ``STATUS=...``; False when not run by systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
        return True
    except OSError:
        return False
