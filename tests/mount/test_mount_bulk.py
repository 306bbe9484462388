"""The bulk path of pinning on a real mount (issue 13): an admin pinning a mailbox-year of
500+ attachments gets them through one message-store-report export (at most 1 % of the
per-file request count), every file byte-exact with the emulator's content; members an
archive lacks or carries corrupt are fetched per file.

RingCentral's default request counts; windows and penalties scaled to 6 s.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.emulator_proc import EmulatorProc
from tests.mount_helper import (
    REAL_LIMITS,
    Mounted,
    RequestLog,
    cached_state,
    content_requests,
    expected_bytes,
    files_under,
    messages_by_id,
    module_mount,
    rcfs_cli,
)

pytestmark = [pytest.mark.mount, pytest.mark.usefixtures("healthy")]

YEAR = 2023
COUNT = 520
DAMAGED_YEAR = 2022
DAMAGED_COUNT = 60
DAY = 86400.0


def _add_year(emu: EmulatorProc, ext_id: str, year: int, count: int) -> list[str]:
    end = datetime(year, 12, 30, 12, tzinfo=UTC).timestamp()
    step = (360 * DAY) / count
    added = emu.admin("POST", "/_emulator/messages", {
        "extension_id": ext_id, "type": "VoiceMail", "duration": 2, "creation_time": end,
        "repeat": count, "step": step})
    return [str(i) for i in added["ids"]]


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProc]:
    with EmulatorProc("--data-seed", "1", *REAL_LIMITS,
                      "--set", "report_step=0.5") as proc:
        ext_id = str(proc.user(admin=True)["extension_id"])
        _add_year(proc, ext_id, YEAR, COUNT)
        _add_year(proc, ext_id, DAMAGED_YEAR, DAMAGED_COUNT)
        yield proc


@pytest.fixture(scope="module")
def mnt(emu: EmulatorProc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounted]:
    with module_mount(emu, tmp_path_factory.mktemp("bulk"), cache_size="256 MiB") as m:
        yield m


def _months(mnt: Mounted, year: int) -> list[Path]:
    vm = mnt.folder() / "Voicemail"
    return sorted(p for p in vm.iterdir() if p.name.startswith(f"{year}-"))


def _spent(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if "/content/" in e["path"] or "message-store-report" in e["path"]]


def _pin_year(mnt: Mounted, year: int) -> list[Path]:
    months = _months(mnt, year)
    assert len(months) >= 11
    rcfs_cli("pin", *map(str, months), timeout=600)
    return [f for m in months for f in files_under(m)]


def test_a_mailbox_year_comes_through_one_export(mnt: Mounted, emu: EmulatorProc,
                                                 rest: httpx.Client) -> None:
    log = RequestLog(emu).mark()
    files = _pin_year(mnt, YEAR)
    assert len(files) >= 500
    spent = _spent(log.since())
    assert len(spent) <= len(files) // 100, [(e["method"], e["path"]) for e in spent]
    assert not content_requests(spent)  # not one attachment fetched per file
    assert {cached_state(f) for f in files} == {"full"}
    assert "export: an export costs less budget" in mnt.status()["pinning"]["choice"]
    assert "bulk export stored 520 of 520 attachments" in mnt.log()
    messages = messages_by_id(rest, mnt.user["extension_id"])
    log = RequestLog(emu).mark()
    for f in files:
        assert f.read_bytes() == expected_bytes(emu, f, messages), f
    assert content_requests(log.since()) == []


def test_missing_and_corrupt_members_fall_back_to_per_file_gets(
        mnt: Mounted, emu: EmulatorProc, rest: httpx.Client) -> None:
    emu.admin("POST", "/_emulator/config",
              {"archive_drop_members": 3, "archive_corrupt_members": 3})
    try:
        log = RequestLog(emu).mark()
        files = _pin_year(mnt, DAMAGED_YEAR)
    finally:
        emu.admin("POST", "/_emulator/config",
                  {"archive_drop_members": 0, "archive_corrupt_members": 0})
    assert len(files) == DAMAGED_COUNT
    per_file = content_requests(log.since())
    assert len(per_file) == 6, [e["path"] for e in per_file]
    assert "CRC mismatch" in mnt.log()
    messages = messages_by_id(rest, mnt.user["extension_id"])
    for f in files:
        assert cached_state(f) == "full"
        assert f.read_bytes() == expected_bytes(emu, f, messages), f
