"""Pinning ("keep offline") on a real mount (issue 13): ``rcfs pin`` shows progress and
returns once everything is cached; pinned files survive eviction and remounts and read
with RingCentral unreachable; new items of a pinned folder are fetched; a pin the cache
budget cannot hold is refused before any download; ``user.rc.cached`` tells what is offline.

RingCentral's default request counts; windows and penalties scaled to 6 s.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.emulator_proc import EmulatorProc
from tests.mount_helper import (
    Mounted,
    RequestLog,
    cached_state,
    content_requests,
    expected_bytes,
    files_under,
    messages_by_id,
    module_mount,
    rcfs_cli,
    wait_for,
)

pytestmark = [pytest.mark.mount, pytest.mark.usefixtures("healthy")]

CACHE = 24 << 20


@pytest.fixture(scope="module")
def mnt(emu: EmulatorProc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounted]:
    with module_mount(emu, tmp_path_factory.mktemp("pin"), cache_size=str(CACHE),
                      refresh_interval=2) as m:
        yield m


def _pin(*paths: Path, check: bool = True) -> Any:
    return rcfs_cli("pin", *map(str, paths), timeout=300, check=check)


def test_pin_shows_progress_and_caches_everything(mnt: Mounted, emu: EmulatorProc,
                                                  rest: httpx.Client) -> None:
    fax = mnt.folder() / "Fax"
    files = list(files_under(fax))
    assert len(files) >= 20
    assert {cached_state(f) for f in files} == {"none"}
    assert os.getxattr(fax, "user.rc.pin") == b"0"
    log = RequestLog(emu).mark()
    res = _pin(fax)
    lines = res.stdout.strip().splitlines()
    assert f"{len(files)}/{len(files)} files" in lines[-1], res.stdout
    assert "requests left" in lines[0] and "ETA" in lines[0]
    assert os.getxattr(fax, "user.rc.pin") == b"1"
    assert os.getxattr(files[0], "user.rc.pin") == b"1"
    assert {cached_state(f) for f in files} == {"full"}
    # 29 faxes of an admin: one export costs less budget than 29 Medium GETs.
    spent = [e for e in log.since() if "/content/" in e["path"] or "report" in e["path"]]
    assert len(spent) < len(files) and all(e["status"] in (200, 202, 206) for e in spent)
    status = mnt.status()["pinning"]
    assert status["choice"].startswith("export"), status
    assert status["files_done"] == status["files_total"] == len(files)
    assert status["state"] == "idle" and status["pins"] == [f"{fax.parent.name}/Fax"]
    out = rcfs_cli("status", str(mnt.root)).stdout
    assert "pinned:" in out and f"{len(files)}/{len(files)} files" in out
    messages = messages_by_id(rest, mnt.user["extension_id"])
    for f in files:
        assert f.read_bytes() == expected_bytes(emu, f, messages)


def test_a_small_pin_is_fetched_per_file(mnt: Mounted, emu: EmulatorProc) -> None:
    months = sorted((mnt.folder() / "Recordings").iterdir(),
                    key=lambda m: len(list(m.iterdir())))
    month = next(m for m in months if len(list(m.iterdir())) >= 2)
    files = list(files_under(month))
    log = RequestLog(emu).mark()
    _pin(month)
    assert {cached_state(f) for f in files} == {"full"}
    got = content_requests(log.since())
    assert len(got) == len(files) and all(e["group"] == "Heavy" for e in got)
    assert all(f.read_bytes() == emu.content("recording", f.name.split("[")[-1].split("]")[0])
               for f in files)
    rcfs_cli("unpin", str(month))


def test_pinned_files_are_not_evicted(mnt: Mounted, emu: EmulatorProc) -> None:
    fax = list(files_under(mnt.folder() / "Fax"))
    before = mnt.status()["content"]["cache"]
    read = 0
    for f in files_under(mnt.folder() / "Voicemail"):
        read += len(f.read_bytes())
    for f in files_under(mnt.folder() / "Recordings"):
        if read > CACHE + (4 << 20):
            break
        read += len(f.read_bytes())
    assert read > CACHE  # more than the whole budget went through the cache
    after = mnt.status()["content"]["cache"]
    assert after.get("evicted_files", 0) > before.get("evicted_files", 0), after
    log = RequestLog(emu).mark()
    assert {cached_state(f) for f in fax} == {"full"}
    for f in fax:
        f.read_bytes()
    assert content_requests(log.since()) == []


def test_a_pin_the_budget_cannot_hold_is_refused(mnt: Mounted, emu: EmulatorProc) -> None:
    log = RequestLog(emu).mark()
    res = _pin(mnt.folder(), check=False)
    assert res.returncode == 1
    assert "cache budget cannot hold" in res.stderr
    assert "needs about" in mnt.log() and "raise cache_size" in mnt.log()
    assert content_requests(log.since()) == []
    assert mnt.status()["pinning"]["pins"] == [f"{mnt.folder().name}/Fax"]
    with pytest.raises(OSError) as info:
        os.setxattr(mnt.folder(), "user.rc.pin", b"1")
    assert info.value.errno == errno.ENOSPC


def test_new_items_in_a_pinned_folder_are_fetched(mnt: Mounted, emu: EmulatorProc) -> None:
    ext_id = str(mnt.user["extension_id"])
    added = emu.admin("POST", "/_emulator/messages", {
        "extension_id": ext_id, "type": "Fax", "pages": 2})
    mid = str(added["id"])
    fax = mnt.folder() / "Fax"

    def new_file() -> Path | None:
        os.listdir(fax)  # a folder in use is refreshed
        found = [f for f in files_under(fax) if f"[{mid}]" in f.name]
        return found[0] if found else None

    path = wait_for(new_file, 30, "the new fax in the listing")
    wait_for(lambda: cached_state(path) == "full", 30, "the new fax to be fetched",
             on_fail=lambda: str(mnt.status()["pinning"]))
    assert os.getxattr(path, "user.rc.pin") == b"1"


def test_pins_survive_a_remount_and_read_offline(mnt: Mounted, emu: EmulatorProc,
                                                 rest: httpx.Client) -> None:
    # fresh: an earlier test added a fax
    messages = messages_by_id(rest, mnt.user["extension_id"], fresh=True)
    fax = mnt.folder() / "Fax"
    files = list(files_under(fax))
    expected = {f.name: expected_bytes(emu, f, messages) for f in files}
    mnt.restart()
    emu.fault(kind="status", status=503, path="/restapi")
    try:
        log = RequestLog(emu).mark()
        for f in files_under(fax):
            assert cached_state(f) == "full"
            assert f.read_bytes() == expected[f.name]
        assert content_requests(log.since()) == []
        assert mnt.status()["pinning"]["pins"] == [f"{mnt.folder().name}/Fax"]
    finally:
        emu.clear_faults()


def test_unpin(mnt: Mounted) -> None:
    fax = mnt.folder() / "Fax"
    some = next(iter(files_under(fax)))
    with pytest.raises(OSError) as info:
        os.setxattr(some, "user.rc.pin", b"0")  # pinned through its folder
    assert info.value.errno == errno.EINVAL
    rcfs_cli("unpin", str(fax))
    assert os.getxattr(fax, "user.rc.pin") == b"0"
    wait_for(lambda: mnt.status()["pinning"]["pins"] == [], 10, "the pin to go")
    os.setxattr(some, "user.rc.pin", b"1")  # a single file
    assert os.getxattr(some, "user.rc.pin") == b"1"
    os.removexattr(some, "user.rc.pin")
    assert os.getxattr(some, "user.rc.pin") == b"0"


def test_cache_is_checked_in_the_background_after_an_unclean_shutdown(mnt: Mounted) -> None:
    import diskcache

    assert mnt.proc is not None
    mnt.proc.kill()  # no unmount, no cleanup: the cache stays marked as in use
    mnt.proc.wait(10)
    mnt.unmount()  # clears the dead mount
    roots = list(mnt.cache_dir.glob("*/v1/db"))
    assert len(roots) == 1
    with diskcache.Cache(str(roots[0])) as db:
        real = int(db.get("s:used"))
        db.set("s:used", 1 << 40)  # what a crash between two writes can leave
    mnt.start()
    wait_for(lambda: "content cache checked" in mnt.log(), 30, "the background check")
    assert "did not end cleanly" in mnt.log()
    used = mnt.status()["content"]["cache"]["used"]
    assert 0 < used < CACHE and abs(used - real) < (1 << 20)
    mnt.restart()  # a clean unmount: no check next time
    assert mnt.log_path.read_text().count("did not end cleanly") == 1
