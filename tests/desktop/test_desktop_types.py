"""Content types as the desktop sees them (issue 10, "sizes and types right without a
download"): GIO's ``standard::content-type`` of every file of a demo mailbox, and the
default application xdg-mime picks for audio and PDF, on a mount at RingCentral's default
request counts. GIO types an empty regular file ``text/plain`` without looking at its name,
so a listing that says 0 for a voicemail makes Nautilus open it in a text editor."""

from __future__ import annotations

import configparser
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.desktop_support import (
    TYPE_OF_EXTENSION,
    by_group,
    desktop_env,
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
    run,
)
from tests.programs import require_programs

pytestmark = pytest.mark.mount


@pytest.fixture(scope="module")
def mnt(emu: EmulatorProc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounted]:
    with module_mount(emu, tmp_path_factory.mktemp("desktop-types")) as m:
        yield m


def expected_type(path: Path) -> str:
    return TYPE_OF_EXTENSION[path.suffix.lower()]


def gio_info(paths: list[Path], env: dict[str, str]) -> dict[str, dict[str, str]]:
    """``gio info -a standard::content-type,standard::size`` of many files, by local path."""
    out: dict[str, dict[str, str]] = {}
    for start in range(0, len(paths), 40):
        res = run(["gio", "info", "-a", "standard::content-type,standard::size",
                   *map(str, paths[start:start + 40])], env=env, timeout=120)
        current: dict[str, str] | None = None
        for line in res.stdout.splitlines():
            if line.startswith("local path: "):
                current = out.setdefault(line[len("local path: "):], {})
            elif current is not None and line.startswith("  standard::"):
                key, _, value = line.strip().partition(": ")
                current[key] = value
    return out


def test_every_file_has_its_type_without_a_download(mnt: Mounted, emu: EmulatorProc,
                                                   rest: httpx.Client,
                                                   tmp_path: Path) -> None:
    require_programs("gio")
    env = desktop_env(tmp_path / "home")
    folder = mnt.folder()
    files = list(files_under(folder))
    assert len(files) > 50, f"demo mailbox too small: {len(files)} files"
    log = RequestLog(emu).mark()
    info = gio_info(files, env)
    spent = log.since()

    messages = messages_by_id(rest, mnt.user["extension_id"])
    wrong = []
    for path in files:
        got = info.get(str(path), {})
        want = expected_type(path)
        if got.get("standard::content-type") != want:
            wrong.append(f"{path.relative_to(folder)}: {got.get('standard::content-type')} "
                         f"(size {got.get('standard::size')}), want {want}")
            continue
        empty = not expected_bytes(emu, path, messages)
        if (int(got["standard::size"]) == 0) != empty:
            wrong.append(f"{path.relative_to(folder)}: size {got['standard::size']} but the "
                         f"content is {'empty' if empty else 'not empty'}")
    assert not wrong, f"{len(wrong)} of {len(files)} files typed wrong:\n" + "\n".join(wrong[:30])
    # Types come from names and listed sizes: typing a mailbox downloads nothing.
    assert [e for e in spent if "/content" in e["path"]] == [], brief(spent)
    assert by_group(spent).get("Heavy", 0) == 0, brief(spent)


def default_app(mime: str, env: dict[str, str]) -> configparser.SectionProxy:
    res = run(["xdg-mime", "query", "default", mime], env=env, timeout=60)
    name = res.stdout.strip()
    assert name.endswith(".desktop"), f"no default application for {mime}: {res.stdout!r}"
    for base in env["XDG_DATA_DIRS"].split(":"):
        path = Path(base) / "applications" / name
        if path.exists():
            parser = configparser.ConfigParser(interpolation=None, strict=False)
            parser.read(path, encoding="utf-8")
            return parser["Desktop Entry"]
    raise AssertionError(f"{name} (default for {mime}) is not installed")


@pytest.mark.parametrize(("suffix", "wanted"), [
    (".mp3", {"AudioVideo", "Audio", "Player"}),
    (".pdf", {"Viewer", "Office"}),
])
def test_default_application_for_mount_files(mnt: Mounted, tmp_path: Path, suffix: str,
                                             wanted: set[str]) -> None:
    """The type GIO gives a mounted ``.mp3``/``.pdf`` has a player/viewer as its default
    application, never a text editor."""
    require_programs("gio", "xdg-mime")
    env = desktop_env(tmp_path / "home")
    path = next(p for p in files_under(mnt.folder()) if p.name.endswith(suffix)
                and not p.name.endswith(".transcript.txt"))
    mime = gio_info([path], env)[str(path)]["standard::content-type"]
    assert mime == expected_type(path), f"{path.name}: {mime}"
    entry = default_app(mime, env)
    categories = set(entry.get("Categories", "").strip(";").split(";"))
    assert categories & wanted, f"default for {mime}: {entry.get('Name')} {categories}"
    assert "TextEditor" not in categories, f"{mime} opens in {entry.get('Name')}"
    assert mime in entry.get("MimeType", "").split(";"), entry.get("MimeType")
