"""Desktop notifications of a real mount (``--notify``), against a stand-in notification
service on a private D-Bus session bus: the content names the caller and the duration, the
action opens the file with the default application, a burst of 20 raises one, the initial
sync raises none; without a session bus nothing is attempted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio

from rcfs.api.models import Attachment, Message, Party
from rcfs.notify import DesktopNotifier, describe, render
from tests.emulator_proc import EmulatorProc
from tests.mount_helper import Mounted, require_fuse, wait_for
from tests.notify_standin import NotificationService, PrivateBus, fake_opener, path_with
from tests.programs import require_programs

BURST = 20



@pytest.fixture
def bus() -> Iterator[PrivateBus]:
    require_programs("dbus-daemon")  # PrivateBus starts one
    b = PrivateBus()
    try:
        yield b
    finally:
        b.close()


@pytest.mark.mount
def test_notifications_content_action_and_burst(
        emu: EmulatorProc, bus: PrivateBus, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    require_fuse()
    service = NotificationService(bus.address)
    opened = fake_opener(tmp_path / "bin")
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", bus.address)
    monkeypatch.setenv("PATH", path_with(tmp_path / "bin"))
    admin = emu.user(admin=True)
    try:
        with Mounted(emu, tmp_path / "m", refresh_interval=6, args=["--notify"],
                     timezone="UTC") as m:
            m.wait_loaded()
            wait_for(lambda: m.status()["push"]["state"] == "connected", 30, "push",
                     on_fail=m.log)
            assert m.status()["notify"]["state"] == "ready"
            time.sleep(2.5)  # longer than a burst: the initial sync would have raised one
            assert service.calls == [], "the initial sync raised a notification"

            vm = emu.admin("POST", "/_emulator/messages", {
                "extension_id": admin["extension_id"], "type": "VoiceMail",
                "from": "+14155550199", "from_name": "Nora Notify", "duration": 42})
            wait_for(lambda: len(service.calls) == 1, 15, "one notification", on_fail=m.log)
            call = service.calls[0]
            assert call["app"] == "rcfs"
            assert call["summary"] == "New voicemail from Nora Notify (+14155550199)"
            assert call["body"] == "0m42s"
            assert call["actions"] == ["default", "Open"]

            service.invoke(call["id"])
            wait_for(lambda: opened.exists() and opened.read_text().strip(), 15,
                     "the default application to be started", on_fail=m.log)
            (target,) = opened.read_text().split("\n")[:1]
            path = Path(target)
            assert f"[{vm['id']}]" in path.name and path.suffix == ".mp3"
            assert path.is_relative_to(m.folder()) and path.exists()

            for i in range(BURST):
                emu.admin("POST", "/_emulator/messages", {
                    "extension_id": admin["extension_id"], "type": "SMS",
                    "from": "+14155550177", "text": f"burst {i}"})
            wait_for(lambda: len(service.calls) >= 2, 20, "the burst's notification",
                     on_fail=m.log)
            time.sleep(3)  # a second notification for the same burst would come by now
            assert len(service.calls) == 2, [c["summary"] for c in service.calls]
            burst = service.calls[1]
            assert burst["summary"] == f"{BURST} new messages: {BURST} texts"
            assert "text from +14155550177 (burst 0)" in burst["body"]
            assert burst["body"].endswith(f"and {BURST - 5} more")
            assert m.status()["notify"]["raised"] == 2
    finally:
        service.close()


async def test_no_session_bus_raises_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    notifier = DesktopNotifier(lambda ext, mid: None, burst_s=0.01)
    with trio.fail_after(5):
        await notifier.run()
    assert notifier.state == "no session bus" and notifier.raised == 0


def _msg(kind: str, **kw: object) -> Message:
    base: dict[str, object] = dict(
        id="1", uri=None, extension_id="9", type=kind, direction="Inbound",
        availability="Alive", message_status="Received", read_status="Unread",
        creation_time=datetime(2026, 1, 1, tzinfo=UTC), last_modified_time=None,
        from_=Party(phone_number="+14155550100", name="Ann"), to=())
    base.update(kw)
    return Message(**base)  # type: ignore[arg-type]


def test_rendering() -> None:
    fax = describe(_msg("Fax", fax_page_count=3), None)
    assert fax is not None and render([fax]) == ("New fax from Ann (+14155550100)", "3 pages")
    vm = describe(_msg("VoiceMail", attachments=(
        Attachment("1", "u", "AudioRecording", vm_duration=75),)), None)
    assert vm is not None and vm.detail == "1m15s"
    assert describe(_msg("SMS", direction="Outbound"), None) is None
    assert describe(_msg("Pager"), None) is None
    summary, body = render([fax, vm, fax])
    assert summary == "3 new messages: 2 faxes, 1 voicemail"
    assert body.splitlines()[1] == "voicemail from Ann (+14155550100) (1m15s)"
