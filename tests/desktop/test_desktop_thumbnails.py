"""The thumbnailers GNOME uses, run by GNOME's own thumbnail factory (bwrap sandbox, the argv
of /usr/share/thumbnailers) the way Nautilus runs it, on MMS pictures, faxes and audio of a
mount at RingCentral's default request counts (issue 10; docs/thumbnailers.md).

GNOME records any thumbnailer failure for good (``thumbnails/fail/gnome-thumbnail-factory``),
so what matters is: cached files get thumbnails for free; an uncached file's thumbnail
waits for spare budget (never ahead of what the user clicked or copies) instead of failing;
with ``thumbnails = cached`` a refused file's failure record disappears once the file is
cached, and the next try makes the thumbnail."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.desktop_support import (
    FACTORY,
    SYSTEM_PYTHON,
    WINDOW,
    by_group,
    content_of,
    desktop_env,
    fail_records,
    ident_of,
    png_text,
    remove_sandbox_leftovers,
    require_factory,
    run_factory,
    throttled,
)
from tests.emulator_proc import EmulatorProc
from tests.mount_helper import (
    Mounted,
    RequestLog,
    brief,
    expected_bytes,
    files_under,
    messages_by_id,
    module_mount,
    wait_for,
)
from tests.programs import require_programs

pytestmark = pytest.mark.mount

PICTURES = (".jpg", ".png", ".gif")


@pytest.fixture(scope="module")
def messages(emu: EmulatorProc, rest: httpx.Client) -> dict[str, dict[str, Any]]:
    return messages_by_id(rest, *(user["extension_id"] for user in emu.info["users"]))


@pytest.fixture(scope="module")
def mnt(emu: EmulatorProc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounted]:
    """``thumbnails`` left at its default (``always``)."""
    with module_mount(emu, tmp_path_factory.mktemp("desktop-thumbs")) as m:
        yield m


def area_files(top: Path, area: str, suffixes: tuple[str, ...]) -> list[Path]:
    return [p for p in files_under(top) if area in p.parts and p.suffix.lower() in suffixes
            and not p.name.endswith(".transcript.txt")]


def medium_files(top: Path) -> list[Path]:
    """Files whose content is a message attachment (Medium group): faxes, voicemail audio,
    MMS pictures."""
    return [p for p in files_under(top)
            if ("Fax" in p.parts or "Voicemail" in p.parts
                or ("Texts" in p.parts and p.suffix.lower() != ".txt"))]


def read_exact(emu: EmulatorProc, path: Path, messages: dict[str, dict[str, Any]]) -> None:
    data = path.read_bytes()
    want = expected_bytes(emu, path, messages)
    assert data == want, f"{path.name}: read {len(data)} bytes, expected {len(want)}"


def medium_in_window(emu: EmulatorProc) -> int:
    now = time.time()
    return sum(1 for e in emu.requests()
               if e["group"] == "Medium" and e["status"] != 429 and e["time"] > now - WINDOW)


def classes_waiting(status: dict[str, Any]) -> set[str]:
    """Reader classes that wait now, wherever status.json lists them (a ``class`` field of a
    waiting read, or the keys of a group's ``queue``)."""
    found: set[str] = set()

    def visit(node: Any, under_queue: bool = False) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("class"), str):
                found.add(node["class"])
            for key, value in node.items():
                if under_queue and isinstance(value, dict) and value.get("waiting"):
                    found.add(str(key))
                visit(value, key == "queue")
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(status)
    return found


def test_cached_pictures_and_faxes_get_thumbnails_without_requests(
        mnt: Mounted, emu: EmulatorProc, messages: dict[str, dict[str, Any]],
        tmp_path: Path) -> None:
    require_factory()
    folder = mnt.folder()
    faxes = area_files(folder, "Fax", (".pdf",))[:2] + area_files(folder, "Fax", (".tif",))[:1]
    pictures = area_files(folder, "Texts", PICTURES)[:4]
    files = faxes + pictures
    assert {p.suffix for p in faxes} == {".pdf", ".tif"} and len(pictures) >= 3, files
    for path in files:
        read_exact(emu, path, messages)

    env = desktop_env(tmp_path / "home")
    log = RequestLog(emu).mark()
    records = run_factory(files, env)
    spent = log.since()

    for rec in records:
        assert rec["result"] == "thumbnail", rec
        meta = png_text(Path(rec["thumbnail"]))
        assert meta["Thumb::URI"] == rec["uri"] and meta["Thumb::MTime"] == str(rec["mtime"])
    assert fail_records(env) == []
    assert [e for e in spent if "/content" in e["path"]] == [], brief(spent)


def test_audio_never_thumbnails_and_cached_audio_costs_nothing(
        mnt: Mounted, emu: EmulatorProc, messages: dict[str, dict[str, Any]],
        tmp_path: Path) -> None:
    """totem-video-thumbnailer fails on audio without cover art (RingCentral audio has
    none): that failure record is true, and a cached file costs no request."""
    require_factory()
    folder = mnt.folder()
    audio = (area_files(folder, "Voicemail", (".mp3", ".wav"))[:1]
             + area_files(folder, "Recordings", (".mp3", ".wav"))[:1])
    assert len(audio) == 2, audio
    for path in audio:
        read_exact(emu, path, messages)
    env = desktop_env(tmp_path / "home")
    log = RequestLog(emu).mark()
    records = run_factory(audio, env)
    spent = log.since()
    assert [r["result"] for r in records] == ["failed", "failed"], records
    assert len(fail_records(env)) == 2
    assert [e for e in spent if "/content" in e["path"]] == [], brief(spent)


def test_uncached_thumbnail_waits_for_spare_budget_never_ahead_of_the_user(
        mnt: Mounted, emu: EmulatorProc, messages: dict[str, dict[str, Any]],
        tmp_path: Path) -> None:
    """A bulk ``cp`` of 60 Medium files empties the window; the thumbnailer of an uncached
    fax then waits (no error, so no failure record); a ``cat`` the user starts after it is
    served first, within a window; every byte is exact and nothing is throttled."""
    require_factory()
    require_programs("cp", "cat")
    folders = sorted(p for p in mnt.root.iterdir() if p.is_dir() and not p.name.startswith("."))
    others = [p for p in folders if p != mnt.folder()]
    target, clicked = area_files(others[0], "Fax", (".pdf",))[:2]
    bulk = [p for top in others for p in medium_files(top) if p not in (target, clicked)][:60]
    assert len(bulk) == 60, len(bulk)

    wait_for(lambda: medium_in_window(emu) == 0, 3 * WINDOW, "a Medium window with no request")
    env = desktop_env(tmp_path / "home")
    dest = tmp_path / "copy"
    dest.mkdir()
    log = RequestLog(emu).mark()
    cp = subprocess.Popen(["cp", "-t", str(dest), *map(str, bulk)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    factory = None
    try:
        wait_for(lambda: medium_in_window(emu) >= 30, 4 * WINDOW,
                 "the bulk copy using the Medium window")
        factory = subprocess.Popen([SYSTEM_PYTHON, str(FACTORY), str(target)], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: "background" in classes_waiting(mnt.status()), 2 * WINDOW,
                 "the thumbnailer waiting for budget (status.json)",
                 on_fail=lambda: f"status: {mnt.status()}\nlog: {mnt.log()[-2000:]}")
        started = time.monotonic()
        clicked_copy = tmp_path / "clicked.pdf"
        with open(clicked_copy, "wb") as out:
            subprocess.run(["cat", str(clicked)], stdout=out, check=True, timeout=120)
        clicked_s = time.monotonic() - started
        _, cp_err = cp.communicate(timeout=180)
        f_out, f_err = factory.communicate(timeout=240)
    finally:
        remove_sandbox_leftovers(env["XDG_CACHE_HOME"])
        for proc in (cp, factory):
            if proc is None:
                continue
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
    spent = log.since()

    assert cp.returncode == 0, cp_err
    for path in bulk:
        got = (dest / path.name).read_bytes()
        assert got == expected_bytes(emu, path, messages), f"cp: {path.name} differs"
    assert clicked_copy.read_bytes() == expected_bytes(emu, clicked, messages)
    assert clicked_s < WINDOW + 4, f"the user's cat took {clicked_s:.1f} s during the copy"
    assert factory.returncode == 0, f_err
    [rec] = json.loads(f_out)
    assert rec["result"] == "thumbnail", rec
    assert fail_records(env) == []

    assert throttled(spent) == [], brief(throttled(spent))
    content = [e for e in spent if "/content" in e["path"]]
    bulk_ids = {ident_of(p) for p in bulk}  # a voicemail and its transcript share an id
    per_class = {
        "bulk": sum(len(content_of(content, ident)) for ident in bulk_ids),
        "interactive": len(content_of(content, ident_of(clicked))),
        "background": len(content_of(content, ident_of(target))),
    }
    assert per_class == {"bulk": 60, "interactive": 1, "background": 1}, brief(content)
    assert by_group(content) == {"Medium": 62}, brief(content)
    [user_req] = content_of(content, ident_of(clicked))
    [thumb_req] = content_of(content, ident_of(target))
    assert user_req["time"] < thumb_req["time"], "the thumbnail went ahead of the user's read"


def test_cached_policy_refuses_uncached_files_then_lifts_the_failure(
        emu: EmulatorProc, messages: dict[str, dict[str, Any]], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``thumbnails = cached``: browsing costs no request; the factory's failure record for a
    refused file is removed once the user opens the file, and the next try succeeds."""
    require_factory()
    require_programs("cat")
    env = desktop_env(tmp_path / "home")
    monkeypatch.setenv("XDG_CACHE_HOME", env["XDG_CACHE_HOME"])  # the mount's user session
    with Mounted(emu, tmp_path / "m", refresh_interval=600, timezone="UTC",
                 thumbnails="cached") as m:
        m.wait_loaded()
        fax = area_files(m.folder(), "Fax", (".pdf",))[-1]
        picture = area_files(m.folder(), "Texts", PICTURES)[-1]
        log = RequestLog(emu).mark()
        first = run_factory([fax, picture], env)
        assert [r["result"] for r in first] == ["failed", "failed"], first
        assert len(fail_records(env)) == 2
        assert [e for e in log.since() if "/content" in e["path"]] == [], brief(log.since())

        for path in (fax, picture):
            out = subprocess.run(["cat", str(path)], capture_output=True, check=True,
                                 timeout=120).stdout
            assert out == expected_bytes(emu, path, messages)
        wait_for(lambda: fail_records(env) == [], 10, "the failure records removed",
                 on_fail=lambda: f"{fail_records(env)}\n{m.log()[-2000:]}")
        log.mark()
        second = run_factory([fax, picture], env)
        assert [r["result"] for r in second] == ["thumbnail", "thumbnail"], second
        assert [e for e in log.since() if "/content" in e["path"]] == [], brief(log.since())
