"""RingCentral's official SDK extension (@rc-ex/core 1.8.6 + @rc-ex/ws 1.4.2, from npm,
unchanged) against the emulator's WebSocket gateway: JWT login, a REST call over the socket,
a message-store subscription and its event, auto-recovery after a dropped socket with the
missed event replayed, and revoke on exit (tests/rcex/subscriber.mjs)."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.emulator_proc import EmulatorProc
from tests.programs import require_programs

pytestmark = pytest.mark.slow

PACKAGES = ["@rc-ex/core@1.8.6", "@rc-ex/ws@1.4.2"]
SCRIPT = Path(__file__).resolve().parents[1] / "rcex" / "subscriber.mjs"


@pytest.fixture(scope="module")
def sdk() -> Iterator[Path]:
    _, npm = require_programs("node", "npm")  # RingCentral's JavaScript SDK runs on them
    work = Path(tempfile.mkdtemp(prefix="rcfs-rcex-"))
    try:
        res = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent",
                              *PACKAGES], cwd=work, capture_output=True, text=True,
                             timeout=300, check=False)
        if res.returncode != 0:  # the npm registry, not a program: unreachable offline
            pytest.skip(f"npm could not install {PACKAGES}: {res.stderr[-500:]}")
        shutil.copy(SCRIPT, work / SCRIPT.name)  # ES modules resolve next to the script
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


class Lines:
    """The script's JSON lines, read by a thread (bounded waits from the test)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.q: queue.Queue[dict[str, Any]] = queue.Queue()
        self.other: list[str] = []
        assert proc.stdout is not None
        self.stdout = proc.stdout
        self.done = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self.stdout:
                try:
                    self.q.put(json.loads(line))
                except ValueError:
                    self.other.append(line)
        finally:
            self.done.set()

    def next(self, key: str, timeout: float = 30.0) -> Any:
        while True:
            try:
                item = self.q.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {key!r} line; other output: {self.other[-20:]}")\
                    from None
            if key in item:
                return item[key]


def test_official_sdk_subscribes_receives_and_recovers(sdk: Path,
                                                        emulator: EmulatorProc) -> None:
    emu = emulator
    info, user = emu.info, emu.user(admin=True)
    proc = subprocess.Popen(
        ["node", str(sdk / SCRIPT.name), info["platform_url"], info["client_id"],
         info["client_secret"], user["jwt"]],
        cwd=sdk, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    lines = Lines(proc)
    try:
        assert lines.next("rest") == int(user["extension_id"])  # REST over the socket
        sub_id = lines.next("subscribed")
        first = emu.admin("POST", "/_emulator/messages", {
            "extension_id": user["extension_id"], "type": "SMS", "text": "to the SDK"})
        event = lines.next("event")
        assert event["subscriptionId"] == sub_id
        assert event["body"]["changes"][0]["newMessageIds"] == [first["id"]]

        emu.admin("POST", "/_emulator/ws", {"action": "drop"})
        missed = emu.admin("POST", "/_emulator/messages", {
            "extension_id": user["extension_id"], "type": "VoiceMail", "duration": 3})
        assert lines.next("recovered") is True
        event = lines.next("event")
        assert event["body"]["changes"][0]["newMessageIds"] == [missed["id"]]
        state = emu.admin("GET", "/_emulator/ws")
        assert state["stats"]["recoveries_ok"] == 1 and state["stats"]["replayed"] >= 1

        assert proc.stdin is not None
        proc.stdin.close()  # the script revokes its subscription and exits
        assert proc.wait(30) == 0
        state = emu.admin("GET", "/_emulator/ws")
        assert all(s["subscription"] is None for s in state["sessions"])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        lines.done.wait(10)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()
