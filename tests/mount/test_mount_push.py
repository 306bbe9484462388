"""Push freshness of a real rcfs mount (issue 14), at RingCentral's default request counts
with the windows scaled down 10x (``--window 6 --penalty 6``; the mount's intervals are
scaled alike: refresh_interval 6 s stands for 60 s, push_poll_interval 180 s for 1800 s).

New voicemails, faxes and texts appear within 2 s through the WebSocket; deletions vanish;
a dropped socket loses nothing (recovery replays, a refused recovery resubscribes and
catches up); an app without the WebSocket permission polls; idle Light requests with the
socket are under a tenth of polling's.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.emulator_proc import EmulatorProc
from tests.mount_helper import (
    Mounted,
    RequestLog,
    brief,
    files_under,
    find_by_id,
    module_mount,
    require_fuse,
    run,
    wait_for,
)

pytestmark = [pytest.mark.mount, pytest.mark.usefixtures("healthy")]

SCALE = 10  # emulator window and mount intervals are 1/10 of RingCentral's
REFRESH = 60 / SCALE
SAFETY = 1800 / SCALE
PUSH_WITHIN = 2.0



@pytest.fixture(scope="module")
def mnt(emu: EmulatorProc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounted]:
    with module_mount(emu, tmp_path_factory.mktemp("push"), refresh_interval=REFRESH,
                      push_poll_interval=SAFETY) as m:
        wait_connected(m)
        yield m


def wait_connected(m: Mounted, timeout: float = 30.0) -> dict[str, Any]:
    status: dict[str, Any] = wait_for(
        lambda: m.status()["push"]["state"] == "connected" and m.status()["push"],
        timeout, "the push socket to be connected",
        on_fail=lambda: f"{m.status().get('push')}\n{m.log()}")
    return status



def _seen_within(top: Path, ident: str, timeout: float, gone: bool = False) -> float:
    start = time.monotonic()
    wait_for(lambda: bool(find_by_id(top, ident)) != gone, timeout,
             f"message {ident} to {'disappear' if gone else 'appear'}", interval=0.05)
    return time.monotonic() - start


def test_voicemail_fax_and_text_appear_within_2s(mnt: Mounted, emu: EmulatorProc) -> None:
    admin = emu.user(admin=True)
    top = mnt.folder()
    status = mnt.status()["push"]
    assert status["poll_interval"] == SAFETY  # polling is only the safety net now
    events_before = status["events"]
    took = {}
    for kind, spec in (("VoiceMail", {"from_name": "Push Caller", "duration": 9}),
                       ("Fax", {"pages": 2}),
                       ("SMS", {"text": "pushed to you"})):
        added = emu.admin("POST", "/_emulator/messages", {
            "extension_id": admin["extension_id"], "type": kind, **spec})
        took[kind] = _seen_within(top, str(added["id"]), PUSH_WITHIN + 3)
    print(f"push latency: {took}")
    assert all(t <= PUSH_WITHIN for t in took.values()), took
    status = mnt.status()["push"]
    assert status["events"] >= events_before + 3 and status["reconnects"] == 0
    assert status["last_event"]["kind"] == "message-store"
    assert status["last_event"]["extension"] == admin["extension_id"]
    out = run([sys.executable, "-m", "rcfs.cli", "status", str(mnt.mountpoint)]).stdout
    assert "push: connected since" in out and f"polling every {SAFETY:g}s" in out, out
    assert "last event" in out and "message-store of extension" in out, out


def test_deleted_message_disappears(mnt: Mounted, emu: EmulatorProc) -> None:
    admin = emu.user(admin=True)
    top = mnt.folder()
    added = emu.admin("POST", "/_emulator/messages", {
        "extension_id": admin["extension_id"], "type": "VoiceMail", "duration": 5})
    _seen_within(top, str(added["id"]), PUSH_WITHIN + 3)
    emu.admin("DELETE", f"/_emulator/messages/{added['id']}")
    took = _seen_within(top, str(added["id"]), PUSH_WITHIN + 3, gone=True)
    print(f"deleted message gone after {took:.2f}s")
    assert took <= PUSH_WITHIN


def test_a_new_folder_shows_in_its_parents_attributes_at_once(
        mnt: Mounted, emu: EmulatorProc) -> None:
    """The kernel holds a folder's attributes for a few seconds: a pushed change that adds
    a month folder invalidates them (the link count counts subfolders)."""
    vm = mnt.folder() / "Voicemail"
    links = os.stat(vm).st_nlink  # now in the kernel's attribute cache
    added = emu.admin("POST", "/_emulator/messages", {
        "extension_id": emu.user(admin=True)["extension_id"], "type": "VoiceMail",
        "duration": 4, "creation_time": "2019-01-15T10:00:00Z"})
    _seen_within(vm / "2019-01", str(added["id"]), PUSH_WITHIN + 3)
    wait_for(lambda: os.stat(vm).st_nlink == links + 1, PUSH_WITHIN,
             "the Voicemail folder's link count to count 2019-01", interval=0.05)


def test_a_call_event_syncs_the_call_log_only_where_recordings_is_in_use(
        mnt: Mounted, emu: EmulatorProc) -> None:
    """A telephony event (a call ended: a recording may exist) syncs the call log (Heavy)
    at once while someone looks at that mailbox's Recordings; a call of a mailbox whose
    Recordings nobody looks at costs its message-sync only (its next look refreshes)."""
    admin, other = emu.user(admin=True), emu.user(admin=False)
    recordings = mnt.folder() / "Recordings"
    list(files_under(recordings))  # in use now: the first look loads the call log
    wait_for(lambda: mnt.status()["extensions"][admin["extension_id"]]["calls"]["loaded"],
             30, "the call log to load", on_fail=mnt.log)
    settle(emu)
    log = RequestLog(emu).mark()
    emu.admin("POST", "/_emulator/calls", {"extension_id": other["extension_id"],
                                            "recording": True, "duration": 30})
    wait_for(lambda: any(f"/extension/{other['extension_id']}/message-sync" in e["path"]
                         for e in log.since()), PUSH_WITHIN + 3,
             "the other mailbox's event sync", on_fail=lambda: "\n".join(brief(log.since())))
    added = emu.admin("POST", "/_emulator/calls", {"extension_id": admin["extension_id"],
                                                    "recording": True, "duration": 30})
    took = _seen_within(recordings, str(added["recording_id"]), PUSH_WITHIN + 3)
    print(f"recording listed after {took:.2f}s")
    assert took <= PUSH_WITHIN
    call_log = [e for e in log.since() if "/call-log" in e["path"]]
    assert len(call_log) == 1, brief(log.since())


def test_dropped_socket_misses_nothing(mnt: Mounted, emu: EmulatorProc) -> None:
    """Messages keep arriving while the socket is dropped twice, once with its recovery
    refused: every one of them shows up."""
    admin = emu.user(admin=True)
    top = mnt.folder()
    before = mnt.status()["push"]
    ids: list[str] = []

    def producer() -> None:
        for i in range(12):
            added = emu.admin("POST", "/_emulator/messages", {
                "extension_id": admin["extension_id"], "type": "SMS",
                "text": f"during the outage {i}"})
            ids.append(str(added["id"]))
            time.sleep(0.25)

    thread = threading.Thread(target=producer)
    thread.start()
    try:
        time.sleep(0.5)
        emu.admin("POST", "/_emulator/ws", {"action": "drop"})
        wait_for(lambda: mnt.status()["push"]["recoveries"] > before["recoveries"], 15,
                 "the socket to be recovered", on_fail=mnt.log)
        emu.admin("POST", "/_emulator/ws", {"action": "refuse_recovery"})
        emu.admin("POST", "/_emulator/ws", {"action": "drop"})
    finally:
        thread.join(30)
    wait_for(lambda: all(find_by_id(top, i) for i in ids), 20, "every message sent meanwhile",
             on_fail=lambda: f"missing {[i for i in ids if not find_by_id(top, i)]}\n{mnt.log()}")
    after = wait_connected(mnt)
    assert after["reconnects"] >= before["reconnects"] + 2
    assert after["recoveries"] >= before["recoveries"] + 1
    assert after["recoveries_failed"] >= before["recoveries_failed"] + 1
    assert after["subscriptions"] >= before["subscriptions"] + 1


def test_no_websocket_permission_polls_at_the_normal_interval(
        emu: EmulatorProc, tmp_path: Path) -> None:
    require_fuse()
    info = emu.info
    with Mounted(emu, tmp_path, refresh_interval=REFRESH, push_poll_interval=SAFETY,
                 client_id=info["limited_client_id"],
                 client_secret=info["limited_client_secret"]) as m:
        m.wait_loaded()
        status = wait_for(lambda: m.status()["push"]["state"] == "unavailable"
                          and m.status()["push"], 30, "push to be unavailable",
                          on_fail=m.log)
        assert status["poll_interval"] == REFRESH
        assert "WebSocket" in status["last_error"]
        added = emu.admin("POST", "/_emulator/messages", {
            "extension_id": emu.user(admin=True)["extension_id"], "type": "Fax"})
        took = _seen_within(m.folder(), str(added["id"]), REFRESH * 3)
        print(f"fax seen by polling after {took:.2f}s")
        log = m.log()
    assert log.count("push notifications unavailable") == 1


def settle(emu: EmulatorProc, quiet: float = 2.0) -> None:
    """Wait until the startup's requests are over (none for ``quiet`` seconds)."""
    seen = -1

    def quiet_now() -> bool:
        nonlocal seen
        n = len(emu.requests())
        done = n == seen
        seen = n
        return done

    wait_for(quiet_now, 60, "the mount to stop sending requests", interval=quiet)


def _idle_light(emu: EmulatorProc, m: Mounted, seconds: float, look_every: float
                ) -> list[str]:
    """Light requests while a file manager keeps the mailbox folder open (lists it every
    ``look_every`` seconds) and nothing changes on the server."""
    top = m.folder()
    list(files_under(top))  # the first look loads Greetings: not idle requests
    settle(emu)
    start = len(emu.requests())
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        list(files_under(top))
        time.sleep(look_every)
    return [f"{e['method']} {e['path']}" for e in emu.requests(start)
            if e.get("group") == "Light"]


IDLE_SCALE = 2 * SCALE  # this comparison's clocks run 20x: it only counts requests


@pytest.mark.slow
def test_idle_light_requests_push_vs_polling(
        emu: EmulatorProc, mnt: Mounted, start_emulator: Callable[..., EmulatorProc],
        tmp_path: Path) -> None:
    """10 idle minutes with the folder listed every 10 s, scaled 20x (30 s, listed every
    0.5 s; the polling mount refreshes every 3 s for 60 s): the socket's Light requests are
    under a tenth of polling's. The polling mount has its own emulator (same seed and
    limits), so both idle spans run at once and each log counts one mount's requests."""
    idle, look_every = 600 / IDLE_SCALE, 10 / IDLE_SCALE
    wait_connected(mnt)
    polling_emu = start_emulator("--data-seed", "1", "--window", "6", "--penalty", "6")
    push: list[str] = []
    errors: list[BaseException] = []

    def measure_push() -> None:
        try:
            push.extend(_idle_light(emu, mnt, idle, look_every))
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    with Mounted(polling_emu, tmp_path, refresh_interval=60 / IDLE_SCALE,
                 args=["--no-push"], timezone="UTC") as polling_mount:
        polling_mount.wait_loaded()
        assert polling_mount.status()["push"]["state"] == "off"
        thread = threading.Thread(target=measure_push)
        thread.start()
        try:
            polling = _idle_light(polling_emu, polling_mount, idle, look_every)
        finally:
            thread.join(idle + 90)
    assert not thread.is_alive(), "the push mount's idle span did not end"
    if errors:
        raise errors[0]
    assert mnt.status()["push"]["state"] == "connected"
    print(f"Light requests over 10 idle (scaled) minutes: push {len(push)}, polling "
          f"{len(polling)}\npush: {push}\npolling: {polling}")
    assert len(polling) >= 5, polling
    assert len(push) * 10 < len(polling), (push, polling)


@pytest.mark.slow
def test_token_refresh_keeps_the_socket_and_its_events(
        start_emulator: Callable[..., EmulatorProc], tmp_path: Path) -> None:
    """Access tokens that live 80 s (rcfs renews 60 s before expiry) and a mount idle for
    longer (100 s), all scaled down 10x like the windows: tokens live 8 s, rcfs renews 6 s
    before expiry, the mount idles 10 s. The socket stays up across the refreshes (no
    reconnect) and its events arrive. (The gateway closes a socket whose OAuth token expired
    unrefreshed.)"""
    require_fuse()
    ttl, margin, idle = 80 / SCALE, 60 / SCALE, 100 / SCALE
    emu = start_emulator("--data-seed", "1", "--window", "6", "--penalty", "6",
                         "--set", f"access_ttl={ttl:g}")
    admin = emu.user(admin=True)
    with Mounted(emu, tmp_path, refresh_interval=REFRESH, push_poll_interval=SAFETY,
                 token_refresh_margin=margin, timezone="UTC") as m:
        m.wait_loaded()
        first = wait_connected(m)
        tokens_before = m.status()["token_requests"]
        late = []
        # ``idle`` seconds without a REST call, longer than a token lives: only the socket's
        # keep-alive renews the token. The idle time is waited out on purpose: it is what
        # the test observes, not a synchronisation.
        for pause in (0, idle):
            time.sleep(pause)
            added = emu.admin("POST", "/_emulator/messages", {
                "extension_id": admin["extension_id"], "type": "SMS", "text": "tick"})
            if _seen_within(m.folder(), str(added["id"]), 10) > PUSH_WITHIN:
                late.append(added["id"])
        status = m.status()
    assert status["token_requests"] >= tokens_before + 2, "the access token was not renewed"
    assert status["push"]["reconnects"] == first["reconnects"], status["push"]
    assert status["push"]["state"] == "connected"
    assert not late, f"arrived later than {PUSH_WITHIN}s: {late}"
