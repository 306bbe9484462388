"""Message-store-report task outcomes (docs/ringcentral.md §13 J3): ``config.report_outcome``
makes a task end Completed (default), Failed or Cancelled, or fail one attempt (AttemptFailed)
and be retried to Completed. Real emulator processes; the clock is moved with ``emu.advance``
except in the real-time test (``report_step=0.01``)."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.emulator_proc import EmulatorProc, api_client
from tests.emulator_support import assert_error

BIG = "Light=100000,Medium=100000,Heavy=100000,Auth=100000"
REPORT = "/restapi/v1.0/account/~/message-store-report"
STEP = 30.0
TERMINAL = ("Completed", "Failed", "Cancelled")

Start = Callable[..., EmulatorProc]


@pytest.fixture
def start(start_emulator: Start) -> Start:
    """Start emulators with ``--set`` pairs (conftest's factory stops them and checks their
    exchanges against the spec)."""
    def run(*settings: str) -> EmulatorProc:
        return start_emulator("--limits", BIG, *(a for s in settings for a in ("--set", s)))

    return run


def get(client: httpx.Client, path: str) -> dict[str, Any]:
    r = client.get(path)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def create(client: httpx.Client) -> dict[str, Any]:
    r = client.post(REPORT, json={})
    assert r.status_code == 202, r.text
    task: dict[str, Any] = r.json()
    assert task["status"] == "Accepted"
    return task


def walk(emu: EmulatorProc, client: httpx.Client, uri: str, steps: int) -> list[dict[str, Any]]:
    """The task after each of ``steps`` clock steps."""
    seen = []
    for _ in range(steps):
        emu.advance(STEP)
        seen.append(get(client, uri))
    return seen


def test_default_outcome_is_completed(start: Start) -> None:
    emu = start(f"report_step={STEP}")
    assert emu.admin("GET", "/_emulator/config")["report_outcome"] == "Completed"
    with api_client(emu) as rc:
        task = create(rc)
        running, done = walk(emu, rc, task["uri"], 2)
    assert running["status"] == "InProgress" and done["status"] == "Completed"
    emu.advance(10 * STEP)


@pytest.mark.parametrize("outcome", ["Failed", "Cancelled"])
def test_task_ends_without_archives(start: Start, outcome: str) -> None:
    emu = start(f'report_outcome="{outcome}"', f"report_step={STEP}")
    with api_client(emu) as rc:
        task = create(rc)
        running, ended = walk(emu, rc, task["uri"], 2)
        assert running["status"] == "InProgress" and "startTime" in running
        assert "finishTime" not in running
        assert ended["status"] == outcome
        assert ended["finishTime"] >= ended["startTime"] == running["startTime"]
        assert ended["lastModifiedTime"] == ended["finishTime"]
        assert ended["id"] == task["id"] and ended["creationTime"] == task["creationTime"]
        # No archive was built: the list and any archive id are 404 on archiveId.
        assert_error(rc.get(task["uri"] + "/archive"), 404, "CMN-102",
                     parameterName="archiveId")
        assert_error(rc.get(task["uri"] + "/archive/0"), 404, "CMN-102",
                     parameterName="archiveId")
        # A terminal state: the task stays as it is and no longer counts as unfinished.
        emu.advance(10 * STEP)
        assert get(rc, task["uri"]) == ended
        for _ in range(2):  # max_report_tasks unfinished tasks are allowed again
            create(rc)
        emu.advance(10 * STEP)


def test_attempt_failed_is_retried_to_completed(start: Start) -> None:
    emu = start('report_outcome="AttemptFailed"', f"report_step={STEP}",
                "max_report_tasks=1")
    with api_client(emu) as rc:
        task = create(rc)
        running, failed_once, retrying, done = walk(emu, rc, task["uri"], 4)
        assert [s["status"] for s in (running, failed_once, retrying, done)] == [
            "InProgress", "AttemptFailed", "InProgress", "Completed"]
        # AttemptFailed is not terminal: no finishTime, the first attempt's startTime kept.
        assert "finishTime" not in failed_once and "finishTime" not in retrying
        assert failed_once["startTime"] == retrying["startTime"] == running["startTime"]
        assert (running["lastModifiedTime"] < failed_once["lastModifiedTime"]
                < retrying["lastModifiedTime"] < done["lastModifiedTime"])
        assert done["finishTime"] == done["lastModifiedTime"]
        records = get(rc, task["uri"] + "/archive")["records"]
        assert records
        r = rc.get(records[0]["uri"])
        assert r.status_code == 200 and len(r.content) == records[0]["size"]
        assert zipfile.ZipFile(io.BytesIO(r.content)).namelist()

        # While the retry is pending the task is still unfinished: with one task allowed
        # the next request is refused until the whole 4-step lifecycle has run.
        second = create(rc)
        emu.advance(2 * STEP)
        assert get(rc, second["uri"])["status"] == "AttemptFailed"
        refused = rc.post(REPORT, json={})
        assert_error(refused, 429, "CMN-304")
        retry_after = int(refused.headers["retry-after"])
        assert STEP < retry_after <= 2 * STEP
        emu.advance(2 * STEP)
        assert get(rc, second["uri"])["status"] == "Completed"
        create(rc)
        emu.advance(10 * STEP)


@pytest.mark.parametrize("outcome,path", [
    ("Failed", ["Accepted", "InProgress", "Failed"]),
    ("AttemptFailed", ["Accepted", "InProgress", "AttemptFailed", "InProgress", "Completed"]),
])
def test_real_time_lifecycle(start: Start, outcome: str, path: list[str]) -> None:
    """With ``report_step=0.01`` a polling client sees the states in order, ending terminal."""
    emu = start(f"report_outcome={outcome}", "report_step=0.01")
    with api_client(emu) as rc:
        task = create(rc)
        seen = ["Accepted"]
        deadline = time.monotonic() + 10
        while seen[-1] not in TERMINAL and time.monotonic() < deadline:
            status = get(rc, task["uri"])["status"]
            if status != seen[-1]:
                seen.append(status)
            time.sleep(0.005)
    assert seen[-1] == path[-1]
    # Polling may miss a short-lived state, never reorder them.
    it = iter(path)
    assert all(state in it for state in seen), seen


def test_outcome_can_be_changed_at_run_time(start: Start) -> None:
    """``POST /_emulator/config`` switches the outcome for tasks created afterwards."""
    emu = start(f"report_step={STEP}")
    r = emu.http.post("/_emulator/config", json={"report_outcome": "Cancelled"})
    assert r.status_code == 200, r.text
    assert r.json()["report_outcome"] == "Cancelled"
    with api_client(emu) as rc:
        task = create(rc)
        assert walk(emu, rc, task["uri"], 2)[-1]["status"] == "Cancelled"
