"""Exports/ on a real mount (issue 13): ``rcfs export`` creates a message-store report, its
folder follows the task's states, the archives read byte-exact (also by ranges) through
the block cache, and an expired archive URI is renewed by listing the archives again.

RingCentral's default request counts (Heavy 10); windows and penalties scaled to 6 s.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.emulator_proc import ROOT, EmulatorProc
from tests.mount_helper import REAL_LIMITS, Mounted, RequestLog, module_mount, run, wait_for

pytestmark = [pytest.mark.mount, pytest.mark.usefixtures("healthy")]

ARCHIVE_TTL = 120


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProc]:
    with EmulatorProc("--data-seed", "1", *REAL_LIMITS,
                      "--set", "report_step=1", "--set", f"archive_uri_ttl={ARCHIVE_TTL}",
                      "--set", "archive_max_bytes=3000000") as proc:
        yield proc


@pytest.fixture(scope="module")
def mnt(emu: EmulatorProc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounted]:
    with module_mount(emu, tmp_path_factory.mktemp("exports")) as m:
        yield m


def _export(mnt: Mounted, *args: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "rcfs.cli", "export", *args, str(mnt.root)],
               timeout=180, check=False, cwd=ROOT)


def _task(mnt: Mounted, **match: Any) -> dict[str, Any]:
    tasks = [t for t in mnt.status().get("exports", [])
             if all(t.get(k) == v for k, v in match.items())]
    assert len(tasks) == 1, mnt.status().get("exports")
    found: dict[str, Any] = tasks[0]
    return found


def test_exports_folder_only_for_report_capable_credentials(
        mnt: Mounted, emu: EmulatorProc, tmp_path: Path) -> None:
    assert (mnt.root / "Exports").is_dir()
    with Mounted(emu, tmp_path / "user", user=emu.user(admin=False), refresh_interval=600,
                 timezone="UTC") as user_mnt:
        user_mnt.wait_loaded()
        assert "Exports" not in os.listdir(user_mnt.root)
        res = run([sys.executable, "-m", "rcfs.cli", "export", "--from", "2025-01-01",
                   "--to", "2025-02-01", str(user_mnt.root)], check=False, cwd=ROOT)
        assert res.returncode == 1 and "cannot create reports" in res.stderr


def test_export_lifecycle_archives_and_ranges(mnt: Mounted, emu: EmulatorProc) -> None:
    log = RequestLog(emu).mark()
    res = _export(mnt, "--from", "2024-01-01", "--to", "2027-12-31", "--types",
                  "Fax,VoiceMail")
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines and "Completed" in lines[-1], res.stdout
    assert not any("\r" in line for line in lines)  # plain lines when not on a terminal
    task = _task(mnt, status="Completed", types=["Fax", "VoiceMail"])
    reports = [e for e in log.since() if "message-store-report" in e["path"]]
    assert reports[0]["method"] == "POST" and reports[0]["status"] == 202
    polls = [e for e in reports if e["method"] == "GET" and e["path"].endswith(task["id"])]
    assert polls and all(e["group"] == "Heavy" for e in reports)
    folder = mnt.root / task["folder"]
    assert folder.name.startswith("2024-01-01 to 2028-01-01 Fax+VoiceMail Completed")
    names = sorted(os.listdir(folder))
    assert len(names) == task["archives"] >= 3, names  # the JSON archive + split binaries
    # Exact sizes before any byte was read; bytes equal to what the emulator serves.
    content_before = len([e for e in emu.requests() if "/archive/" in e["path"]])
    for n, name in enumerate(names[:2]):
        expected = emu.content("report", f"{task['id']}/{n}")
        assert (folder / name).stat().st_size == len(expected)
        assert (folder / name).read_bytes() == expected
        zipfile.ZipFile(io.BytesIO(expected)).testzip()
    # Range read of an archive nobody read yet: only the asked range arrives, by Range.
    third = folder / names[2]
    expected = emu.content("report", f"{task['id']}/2")
    mark = RequestLog(emu).mark()
    with open(third, "rb") as fh:
        fh.seek(len(expected) - 5000)
        assert fh.read(5000) == expected[-5000:]
    got = [e for e in mark.since() if "/archive/2" in e["path"]]
    assert len(got) == 1 and (got[0].get("range") or "").startswith("bytes="), got
    # Reread after the first reads: served from the cache, no request.
    mark = RequestLog(emu).mark()
    assert (folder / names[0]).read_bytes() == emu.content("report", f"{task['id']}/0")
    assert not [e for e in mark.since() if "/archive/" in e["path"]]
    assert len([e for e in emu.requests() if "/archive/" in e["path"]]) > content_before


def test_expired_archive_uri_is_renewed(mnt: Mounted, emu: EmulatorProc) -> None:
    res = _export(mnt, "--from", "2024-01-01", "--to", "2027-12-31", "--types", "Fax")
    assert res.returncode == 0, res.stdout + res.stderr
    task = _task(mnt, status="Completed", types=["Fax"])
    folder = mnt.root / task["folder"]
    name = sorted(os.listdir(folder))[-1]
    emu.advance(ARCHIVE_TTL + 60)  # every URI the mount holds has expired
    log = RequestLog(emu).mark()
    n = int(name.split("-")[1].split(".")[0])
    assert (folder / name).read_bytes() == emu.content("report", f"{task['id']}/{n}")
    seen = [(e["status"], e["path"].rsplit("/", 2)[-2:]) for e in log.since()
            if "message-store-report" in e["path"]]
    statuses = [s for s, _ in seen]
    assert statuses[0] == 404 and 200 in statuses[1:], seen
    assert any(p[-1] == "archive" for _, p in seen), seen  # the list was asked again


def test_failed_export_shows_its_state(mnt: Mounted, emu: EmulatorProc) -> None:
    emu.admin("POST", "/_emulator/config", {"report_outcome": "Failed"})
    try:
        res = _export(mnt, "--from", "2025-03-01", "--to", "2025-03-31")
    finally:
        emu.admin("POST", "/_emulator/config", {"report_outcome": "Completed"})
    assert res.returncode == 1
    assert "Failed" in res.stdout.strip().splitlines()[-1]
    task = _task(mnt, status="Failed")
    assert "Failed" in task["folder"] and (mnt.root / task["folder"]).is_dir()
    assert os.listdir(mnt.root / task["folder"]) == []


def test_exports_survive_a_remount(mnt: Mounted) -> None:
    before = sorted(os.listdir(mnt.root / "Exports"))
    assert before
    mnt.restart()
    wait_for(lambda: sorted(os.listdir(mnt.root / "Exports")) == before, 30,
             "the exports after a remount", on_fail=lambda: json.dumps(
                 mnt.status().get("exports"), indent=1))


def test_bad_export_requests_are_refused(mnt: Mounted) -> None:
    res = _export(mnt, "--from", "2025-03-01", "--to", "2025-02-01")
    assert res.returncode == 1 and "Invalid argument" in res.stderr
    res = _export(mnt, "--from", "2025-03-01", "--to", "2025-04-01", "--types", "Calls")
    assert res.returncode == 1
