"""Real copy programs of folders never opened before, at RingCentral's default request counts
(windows scaled to 3 s, ``BUDGET_LIMITS``: the copies' time is the Heavy budget's): every
file arrives byte-exact, one content request per file, no 429 (issue 10: an rsync of a
never-opened Voicemail folder used to leave 0-byte files).

Each program copies the Voicemail, Fax and Recordings folders of its own mailbox, so every
file it reads is uncached when it starts; the bytes are compared with what the emulator
serves (``/_emulator/content``, no budget).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.emulator_proc import EmulatorProc
from tests.mount_helper import (
    BUDGET_LIMITS,
    Mounted,
    RequestLog,
    brief,
    expected_bytes,
    files_under,
    messages_by_id,
    module_mount,
    run,
    warm_truth,
)
from tests.programs import require_programs

pytestmark = [pytest.mark.mount, pytest.mark.usefixtures("healthy")]

AREAS = ("Voicemail", "Fax", "Recordings")


EMULATOR_LIMITS = BUDGET_LIMITS  # the emu fixture's (tests/conftest.py)


@pytest.fixture(scope="module")
def mnt(emu: EmulatorProc, rest: httpx.Client,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounted]:
    warm_truth(rest, emu)
    with module_mount(emu, tmp_path_factory.mktemp("copy")) as m:
        yield m



def _mailbox(mnt: Mounted, emu: EmulatorProc, number: str) -> tuple[Path, str]:
    """The folder of the mailbox with extension ``number`` and its extension id."""
    ext = next(e for e in emu.admin("GET", "/_emulator/summary")["extensions"]
               if e["number"] == number)
    folder = next(p for p in mnt.root.iterdir() if p.name.startswith(number + " "))
    return folder, str(ext["id"])


def _copy(program: str, src: Path, dst: Path) -> None:
    dst.mkdir(parents=True)
    sources = [str(src / a) for a in AREAS]
    if program == "rsync -a":
        run(["rsync", "-a", *sources, str(dst) + "/"], timeout=300)
    elif program == "cp -r":
        run(["cp", "-r", *sources, str(dst)], timeout=300)
    elif program == "cp -a":
        run(["cp", "-a", *sources, str(dst)], timeout=300)
    elif program == "tar -c":
        # GNU tar complains ("file shrank", "file changed as we read it") and exits 1 when
        # the size it saw differs from what it read: its stderr must stay empty.
        res = run(["bash", "-o", "pipefail", "-c",
                   'tar -c -f - -C "$1" "${@:3}" | tar -x -f - -C "$2"', "tar",
                   str(src), str(dst), *AREAS], timeout=300)
        assert res.stderr == "", res.stderr
    elif program == "shutil.copytree":
        code = ("import shutil, sys\n"
                "for a in sys.argv[3:]:\n"
                "    shutil.copytree(sys.argv[1] + '/' + a, sys.argv[2] + '/' + a)\n")
        run([sys.executable, "-c", code, str(src), str(dst), *AREAS], timeout=300)
    else:  # pragma: no cover
        raise AssertionError(program)


@pytest.mark.parametrize(("program", "number"), [
    ("rsync -a", "101"), ("cp -r", "102"), ("cp -a", "103"), ("tar -c", "200"),
    ("shutil.copytree", "104"),
])
def test_copy_of_never_opened_folders_is_exact(
        program: str, number: str, mnt: Mounted, emu: EmulatorProc, rest: httpx.Client,
        tmp_path: Path) -> None:
    require_programs(program.split()[0] if " " in program else "python3")
    src, ext_id = _mailbox(mnt, emu, number)
    messages = messages_by_id(rest, ext_id)
    files = [p for a in AREAS for p in files_under(src / a)]
    assert len(files) >= 10, files
    log = RequestLog(emu).mark()
    _copy(program, src, tmp_path / "copy")
    sent = log.since()
    wrong: list[str] = []
    for path in files:
        rel = path.relative_to(src)
        got = (tmp_path / "copy" / rel).read_bytes()
        want = expected_bytes(emu, path, messages)
        if got != want:
            wrong.append(f"{rel}: {len(got)} bytes, expected {len(want)}")
        assert os.stat(path).st_size == len(want), rel  # exact once opened
    assert not wrong, f"{program}: {len(wrong)} of {len(files)} files differ: {wrong[:5]}"
    content = [e for e in sent if "/content" in e["path"]]
    per_path = Counter(e["path"] for e in content)
    assert len(content) == len(files) and max(per_path.values()) == 1, (
        f"{program}: {len(content)} content requests for {len(files)} files:\n"
        + "\n".join(brief(content)))
    assert all(e["status"] in (200, 206) for e in content), brief(content)
    throttled = [e for e in sent if e["status"] == 429]
    assert throttled == [], brief(throttled)
    shutil.rmtree(tmp_path / "copy")
