"""Calls/ on a real mount (issue 13): the call log as one CSV per month, read with Python's
csv module and matched against the emulator's call log; the account-level one of an admin;
exact sizes, no request to read them, and the files follow new calls.

RingCentral's default request counts; windows and penalties scaled to 6 s.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.emulator_proc import EmulatorProc
from tests.mount_helper import Mounted, RequestLog, module_mount, wait_for

pytestmark = [pytest.mark.mount, pytest.mark.usefixtures("healthy")]

HEADER = ["time", "direction", "from", "to", "name", "duration", "result", "recording"]


@pytest.fixture(scope="module")
def mnt(emu: EmulatorProc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounted]:
    with module_mount(emu, tmp_path_factory.mktemp("calls"), refresh_interval=2) as m:
        yield m


def _rows(folder: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for csv_file in sorted(folder.glob("*.csv")):
        data = csv_file.read_bytes()
        assert os.stat(csv_file).st_size == len(data)
        reader = csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""))
        found = list(reader)
        assert reader.fieldnames is not None and reader.fieldnames[-len(HEADER):] == HEADER
        assert found and all(row["time"].startswith(csv_file.stem) for row in found)
        rows += found
    return rows


def _call_log(rest: httpx.Client, ext_id: str) -> list[dict[str, Any]]:
    r = rest.get(f"/restapi/v1.0/account/~/extension/{ext_id}/call-log",
                 params={"dateFrom": "1970-01-01T00:00:00Z", "perPage": 1000, "view": "Simple"})
    r.raise_for_status()
    return r.json()["records"]  # type: ignore[no-any-return]


def _key(time: str, direction: str, src: str, dst: str, duration: str,
         result: str) -> tuple[str, ...]:
    return (time, direction, src, dst, duration, result)


def _number(party: dict[str, Any] | None) -> str:
    party = party or {}
    return str(party.get("phoneNumber") or party.get("extensionNumber") or "")


def test_calls_csv_matches_the_call_log(mnt: Mounted, emu: EmulatorProc,
                                        rest: httpx.Client) -> None:
    calls = mnt.folder() / "Calls"
    log = RequestLog(emu).mark()
    # The call log (Heavy) is read on the first look at Calls/, like Recordings/.
    wait_for(lambda: bool(os.listdir(calls)), 30, "Calls/ loaded on its first look")
    assert any("call-log" in e["path"] for e in log.since())
    log.mark()
    rows = _rows(calls)
    # Built from the index: reading sends nothing (a folder in use may see one interval
    # refresh of the log fall into the reads, never one per file).
    assert sum("call-log" in e["path"] for e in log.since()) <= 1
    records = _call_log(rest, str(mnt.user["extension_id"]))
    assert records and len(rows) == len(records)
    want = Counter(_key(
        datetime.fromisoformat(r["startTime"].replace("Z", "+00:00")).astimezone(UTC)
        .isoformat(timespec="seconds"), r["direction"], _number(r.get("from")),
        _number(r.get("to")), str(r.get("duration", "")), r.get("result", ""))
        for r in records)
    got = Counter(_key(r["time"], r["direction"], r["from"], r["to"], r["duration"],
                       r["result"]) for r in rows)
    assert got == want
    recorded = [r for r in rows if r["recording"]]
    assert len(recorded) == sum(1 for r in records if r.get("recording"))
    for row in recorded:
        assert (mnt.folder() / row["recording"]).is_file(), row["recording"]
    names = {r["name"] for r in rows}
    assert names - {""}, "the other party's name is filled where the log has one"


def test_account_level_calls_for_admins(mnt: Mounted) -> None:
    account = _rows(mnt.root / "Calls")
    mine = _rows(mnt.folder() / "Calls")
    folder = mnt.folder().name
    assert {r["mailbox"] for r in account} <= {p.name for p in mnt.root.iterdir()}
    own = [dict(r) for r in account if r["mailbox"] == folder]
    for r in own:
        r.pop("mailbox")
        r["recording"] = r["recording"].removeprefix(folder + "/")
    assert sorted(map(sorted, (r.items() for r in own))) == sorted(
        map(sorted, (r.items() for r in mine)))
    for r in account:
        if r["recording"]:
            assert (mnt.root / r["recording"]).is_file()


def test_calls_csv_follows_new_calls(mnt: Mounted, emu: EmulatorProc) -> None:
    ext_id = str(mnt.user["extension_id"])
    calls = mnt.folder() / "Calls"
    old_month = "2020-03"
    assert not (calls / f"{old_month}.csv").exists()
    current = datetime.now(UTC).strftime("%Y-%m")
    before = len(_rows(calls))
    emu.admin("POST", "/_emulator/calls", {
        "extension_id": ext_id, "direction": "Inbound", "from": "+14155550199",
        "from_name": "Newcomer Ltd", "duration": 42, "result": "Accepted",
        "start_time": "2020-03-15T10:00:00Z"})
    emu.admin("POST", "/_emulator/calls", {
        "extension_id": ext_id, "direction": "Outbound", "to": "+14155550198",
        "duration": 7, "result": "Call connected"})

    def updated() -> bool:
        os.listdir(calls)  # a folder in use is refreshed
        return (calls / f"{old_month}.csv").exists() and len(_rows(calls)) == before + 2

    wait_for(updated, 30, "the new calls in Calls/")
    rows = list(csv.DictReader(io.StringIO((calls / f"{old_month}.csv").read_text())))
    assert [(r["from"], r["name"], r["duration"]) for r in rows] == [
        ("+14155550199", "Newcomer Ltd", "42")]
    current_rows = list(csv.DictReader(io.StringIO((calls / f"{current}.csv").read_text())))
    assert ("+14155550198", "7") in {(r["to"], r["duration"]) for r in current_rows}
