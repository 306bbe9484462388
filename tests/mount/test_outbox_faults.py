"""Faults around a send: 429, 503, 500, a connection reset during the upload, a response
lost after the server acted, a timeout, a send refused by RingCentral. Each ends in the
right final state, with the error visible, and the emulator received exactly one message
(or none when refused). Plus a burst of 100 texts under a small Medium budget."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.emulator_proc import EmulatorProc
from tests.mount_helper import Mounted, require_fuse
from tests.outbox_support import (
    FAST_CONFIG,
    BreakingProxy,
    emulator_args,
    outbox,
    pdf,
    proxy_for,
    to,
    wait,
    write_file,
    xattr,
)

pytestmark = pytest.mark.mount


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[EmulatorProc, Mounted, BreakingProxy]]:
    """One emulator, reached through a proxy that can break a send's connection."""
    require_fuse()
    emu = EmulatorProc(*emulator_args())
    try:
        with proxy_for(emu) as proxy, Mounted(emu, tmp_path_factory.mktemp("faults"),
                                              server=proxy.url, outbox_sms_timeout=2.0,
                                              **FAST_CONFIG) as m:
            yield emu, m, proxy
    finally:
        emu.stop()



def send_and_wait(m: Mounted, channel: str, number: str, name: str, data: bytes,
                  box: str = "Sent") -> str:
    rdir = outbox(m) / channel / number
    rdir.mkdir()
    assert write_file(rdir / name, data) == 0
    status = outbox(m) / box / channel / number / (name + ".status.txt")
    wait(status.exists, 30, f"{status}", on_fail=lambda: (m.log() + "\n" + json.dumps(
        m.status().get("outbox"), indent=1)))
    return status.read_text()


def faulted(emu: EmulatorProc, path: str, status: int) -> int:
    return sum(1 for e in emu.requests() if e["method"] == "POST"
               and e["path"].endswith(path) and e["status"] == status)


def test_429_waits_for_the_penalty_then_sends_once(env: Any) -> None:
    emu, m, _ = env
    emu.fault(kind="status", status=429, path="/sms$", method="POST", count=1, retry_after=1)
    text = send_and_wait(m, "Text", "+14155550201", "a.txt", b"after a 429")
    assert "rate limited" in text and "CMN-301" in text
    assert len(to(emu, "+14155550201")) == 1
    assert faulted(emu, "/sms", 429) == 1


def test_503_is_retried(env: Any) -> None:
    emu, m, _ = env
    emu.fault(kind="status", status=503, path="/fax$", method="POST", count=1)
    text = send_and_wait(m, "Fax", "+12125550202", "a.pdf", pdf(1, "503"))
    assert "HTTP 503 CMN-201" in text and "attempt 2" in text
    assert len(to(emu, "+12125550202")) == 1


def test_500_is_checked_in_the_message_store_before_resending(env: Any) -> None:
    emu, m, _ = env
    emu.fault(kind="status", status=500, path="/sms$", method="POST", count=1)
    text = send_and_wait(m, "Text", "+14155550203", "a.txt", b"after a 500")
    assert "checking the message store" in text and "not in the message store" in text
    assert len(to(emu, "+14155550203")) == 1


def test_reset_during_upload_resends_once(tmp_path: Path) -> None:
    """The connection is reset after the headers and a few body bytes: RingCentral never
    got the fax, rcfs cannot know that, checks the store, finds nothing, sends it again.
    Own emulator, unchecked: the emulator answers the cut request with a plain-text 500
    (the connection is gone, nobody reads it), which the OpenAPI check would flag."""
    require_fuse()
    emu = EmulatorProc(*emulator_args(), check_openapi=False)
    try:
        with proxy_for(emu) as proxy, Mounted(emu, tmp_path, server=proxy.url,
                                              **FAST_CONFIG) as m:
            proxy.arm("cut_request", "/fax")
            text = send_and_wait(m, "Fax", "+12125550204", "big.pdf", pdf(4, "reset"))
            assert proxy.fired == 1
        assert "not in the message store" in text, text
        assert len(to(emu, "+12125550204")) == 1
    finally:
        emu.stop()


def test_lost_response_is_found_and_not_resent(env: Any) -> None:
    emu, m, proxy = env
    before = proxy.fired
    proxy.arm("drop_response", "/sms")
    text = send_and_wait(m, "Text", "+14155550205", "a.txt", b"the answer was lost")
    assert proxy.fired == before + 1
    assert "found in the message store" in text, text
    assert len(to(emu, "+14155550205")) == 1


def test_timeout_after_the_server_acted_is_not_resent(env: Any) -> None:
    emu, m, _ = env
    emu.fault(kind="delay", path="/sms$", method="POST", seconds=4, count=1)
    text = send_and_wait(m, "Text", "+14155550206", "a.txt", b"slow answer")
    assert "found in the message store" in text, text
    assert len(to(emu, "+14155550206")) == 1


def test_refused_by_ringcentral_fails_with_its_code(env: Any) -> None:
    emu, m, _ = env
    emu.fault(kind="status", status=415, path="/fax$", method="POST", count=1,
              code="MSG-348", message="Unsupported attachment media type")
    text = send_and_wait(m, "Fax", "+12125550207", "a.pdf", pdf(), box="Failed")
    assert "HTTP 415 MSG-348" in text and "Unsupported attachment media type" in text
    failed = outbox(m) / "Failed" / "Fax" / "+12125550207" / "a.pdf"
    assert xattr(failed, "user.rc.status") == "failed"
    assert "MSG-348" in (xattr(failed, "user.rc.error") or "")
    assert to(emu, "+12125550207") == []


def test_delivery_failure_is_reported(env: Any) -> None:
    emu, m, _ = env
    text = send_and_wait(m, "Text", "+14155550000", "a.txt", b"to nowhere", box="Failed")
    assert "DeliveryFailed" in text and "SMS-CAR-411" in text
    assert len(to(emu, "+14155550000")) == 1


def test_burst_of_100_texts_respects_the_sms_budget(
        tmp_path: Path, start_emulator: Callable[..., EmulatorProc]) -> None:
    require_fuse()
    emu = start_emulator(*emulator_args(
        "--window", "2", "--penalty", "2",
        limits=("--limits", "Light=100000,Medium=25,Heavy=100000,Auth=100000")))
    number = "+14155550299"
    with Mounted(emu, tmp_path, **FAST_CONFIG) as m:
        rdir = outbox(m) / "Text" / number
        rdir.mkdir()
        for i in range(100):
            assert write_file(rdir / f"t{i:03}.txt", f"text number {i}".encode()) == 0
        box = outbox(m) / "Sent" / "Text" / number
        wait(lambda: len([n for n in os.listdir(box) if n.endswith(".status.txt")]) == 100
             if box.exists() else False, 90, "100 texts to finish", interval=0.2)
        stats = m.status()
    got = to(emu, number)
    texts = sorted(s["request"]["text"] for s in got)
    assert texts == sorted(f"text number {i}" for i in range(100))  # all 100, none twice
    posts = [e for e in emu.requests() if e["method"] == "POST" and e["path"].endswith("/sms")]
    throttled = [e for e in posts if e["status"] == 429]
    figures = {"texts": 100, "accepted": len(got), "sms_posts": len(posts),
               "429s": len(throttled), "duplicates": len(got) - len(set(texts)),
               "medium": stats["requests"].get("Medium")}
    print("burst figures:", json.dumps(figures))
    assert len(posts) == 100 and not throttled
