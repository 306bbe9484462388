"""Helpers for the outbox tests: sample documents, a fault-injecting TCP proxy, waits."""

from __future__ import annotations

import errno
import io
import os
import select
import socket
import struct
import threading
import time
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.emulator_proc import EmulatorProc
from tests.mount_helper import REAL_LIMITS, Mounted, wait_for

FAST_CLOCKS = ("--set", "fax_seconds_per_page=0.05", "--set", "sms_send_delay=0.05",
               "--set", "sms_deliver_delay=0.05")
# Outbox timings scaled down for tests: config keys, e.g. ``Mounted(emu, dir, **FAST_CONFIG)``.
FAST_CONFIG: dict[str, Any] = {
    "outbox_poll_min": 0.1, "outbox_poll_max": 0.3, "outbox_settle_time": 1.0,
    "outbox_retry_base": 0.2, "outbox_retry_max": 1.0,
}
FAX_TO = "+12125557464"
SMS_TO = "+14155550123"


def emulator_args(*extra: str, limits: tuple[str, ...] = REAL_LIMITS) -> tuple[str, ...]:
    return ("--data-seed", "1", *limits, *FAST_CLOCKS, *extra)


# -- sample files ------------------------------------------------------------------------------


def pdf(pages: int = 1, tag: str = "") -> bytes:
    body = b"%PDF-1.4\n% " + tag.encode() + b"\n"
    kids = " ".join(f"{i + 3} 0 R" for i in range(pages))
    body += b"1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    body += f"2 0 obj<</Type/Pages/Kids[{kids}]/Count {pages}>>endobj\n".encode()
    for i in range(pages):
        body += f"{i + 3} 0 obj<</Type/Page/Parent 2 0 R>>endobj\n".encode()
    return body + b"trailer<</Root 1 0 R>>\n%%EOF\n"


def jpeg(seed: int = 0, size: int = 16) -> bytes:
    from PIL import Image

    img = Image.new("RGB", (size, size), (seed % 256, (seed * 7) % 256, 99))
    buf = io.BytesIO()
    img.save(buf, "JPEG")
    return buf.getvalue()


def png(seed: int = 0) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (seed % 256, 1, 2)).save(buf, "PNG")
    return buf.getvalue()


def wav(seconds: float = 0.2, tone: int = 3) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        frames = int(8000 * seconds)
        w.writeframes(b"".join(struct.pack("<h", (i * tone % 200) - 100)
                               for i in range(frames)))
    return buf.getvalue()


# -- writing into the mount --------------------------------------------------------------------


def write_file(path: Path, data: bytes, chunk: int = 65536) -> int:
    """Write like cp (create, write, close); returns 0 or the errno of the failing call."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as exc:
        return exc.errno or -1
    try:
        for off in range(0, len(data), chunk):
            os.write(fd, data[off:off + chunk])
    except OSError as exc:
        try:
            os.close(fd)
        except OSError:
            pass
        return exc.errno or -1
    try:
        os.close(fd)
    except OSError as exc:
        return exc.errno or -1
    return 0


def errno_name(code: int) -> str:
    return errno.errorcode.get(code, str(code))


def outbox(m: Mounted) -> Path:
    return m.folder() / "Outbox"


def wait(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05,
         on_fail: Callable[[], str] | None = None) -> Any:
    """``wait_for`` polling faster: outbox state changes within tens of milliseconds."""
    return wait_for(predicate, timeout, what, interval, on_fail)


def sends(emu: EmulatorProc, kind: str | None = None, ok: bool = True) -> list[dict[str, Any]]:
    """What the emulator received (accepted ones only, by default)."""
    return [s for s in emu.sent() if (kind is None or s["kind"] == kind)
            and (not ok or s["status"] == 200)]


def to(emu: EmulatorProc, number: str, kind: str | None = None, ok: bool = True
       ) -> list[dict[str, Any]]:
    """The sends (accepted ones, by default) the emulator received for ``number``."""
    return [s for s in sends(emu, kind, ok)
            if any(r.get("phoneNumber") == number for r in s["request"].get("to", []))]


def xattr(path: Path, name: str) -> str | None:
    try:
        return os.getxattr(path, name).decode()
    except OSError:
        return None


def failpoint_marker(m: Mounted, name: str) -> Path | None:
    found = list(m.state_dir.glob(f"accounts/*/outbox/failpoint-{name}"))
    return found[0] if found else None


def kill9(m: Mounted) -> None:
    """kill -9 exactly the rcfs process this test started, then clear its dead mount."""
    assert m.proc is not None
    os.kill(m.proc.pid, 9)
    m.proc.wait(10)
    m.unmount()


# -- a TCP proxy that breaks send requests -----------------------------------------------------


class BreakingProxy:
    """Forwards a TCP port to the emulator's platform port. Armed with ``mode``, the next
    POST whose request line contains ``match``:

    * ``cut_request``: only the headers and ``keep`` body bytes reach the server, then both
      connections are reset (the server never gets a whole request: nothing is created);
    * ``drop_response``: the whole request reaches the server (it creates the message), its
      response is thrown away and the client's connection reset.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(32)
        self.port = self.listener.getsockname()[1]
        self.mode: str | None = None
        self.match = b""
        self.keep = 64
        self.fired = 0
        self._stop = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arm(self, mode: str, match: str) -> None:
        with self._lock:
            self.mode, self.match = mode, match.encode()

    def _take(self, chunk: bytes) -> str | None:
        with self._lock:
            if self.mode and chunk.startswith(b"POST ") and self.match in chunk.split(
                    b"\r\n", 1)[0]:
                mode, self.mode = self.mode, None
                self.fired += 1
                return mode
        return None

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    @staticmethod
    def _reset(*socks: socket.socket) -> None:
        for s in socks:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
            except OSError:
                pass

    def _pipe(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        try:
            self._relay(client, server)
        finally:
            client.close()
            server.close()

    def _relay(self, client: socket.socket, server: socket.socket) -> None:
        mode: str | None = None
        body_left = -1
        try:
            while not self._stop:
                ready, _, _ = select.select([client, server], [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is client:
                        fired = self._take(data)
                        if fired:
                            mode = fired
                        if mode == "cut_request":
                            head, sep, _ = data.partition(b"\r\n\r\n")
                            if body_left < 0:
                                body_left = self.keep
                                server.sendall(head + sep + _[:body_left])
                            time.sleep(0.2)  # let the server see the partial request
                            self._reset(client, server)
                            return
                        server.sendall(data)
                    else:
                        if mode == "drop_response":
                            self._reset(client, server)
                            return
                        client.sendall(data)
        except OSError:
            self._reset(client, server)

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        self.listener.close()


@contextmanager
def proxy_for(emu: EmulatorProc) -> Iterator[BreakingProxy]:
    host, port = emu.info["platform_url"].rsplit(":", 1)
    proxy = BreakingProxy((host.removeprefix("http://"), int(port)))
    try:
        yield proxy
    finally:
        proxy.close()
