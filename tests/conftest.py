"""Shared fixtures: emulator processes (real HTTP), and the CI rule that mount tests never skip."""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pluggy
import pytest

from tests.emulator_proc import EmulatorProc, api_client
from tests.mount_helper import GENEROUS_LIMITS, REAL_LIMITS

IN_CI = bool(os.environ.get("CI"))
LEFTOVER_PREFIX = "rcfs-"
_session_tmp: Path | None = None


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Give the run its own $TMPDIR (inherited by the emulator and mount processes), so the
    leftover check below sees only this run's folders, not another run's in the same /tmp.
    pytest's own tmp_path folders stay where they were (resolved before the switch)."""
    global _session_tmp
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is not None:
        factory.getbasetemp()
    _session_tmp = Path(tempfile.mkdtemp(prefix="pytest-tmp-"))
    os.environ["TMPDIR"] = str(_session_tmp)
    tempfile.tempdir = None  # gettempdir() reads $TMPDIR again


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a test left an ``rcfs-*`` folder in $TMPDIR (every test cleans up what
    it makes: about 100 folders per run piled up in /tmp before this check)."""
    global _session_tmp
    if _session_tmp is None:
        return
    top, _session_tmp = _session_tmp, None
    left = sorted(p.name for p in top.iterdir() if p.name.startswith(LEFTOVER_PREFIX))
    mounted = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
               if line.split()[1].startswith(str(top))]
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = (f"this run left {len(left)} folder(s) in $TMPDIR ({top}): "
                   f"{', '.join(left[:10])}")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(f"ERROR: {message}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if not mounted:  # never delete below a mount (a dead one would hang the walk)
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def collect_garbage() -> Iterator[None]:
    """Finalize a test's abandoned async generators before it ends, while its warning
    filters apply (``pytest.mark.usefixtures("collect_garbage")``). httpx and httpcore
    implement their response streams' ``__aiter__`` as async generators; a response closed
    before its body ends leaves them to the garbage collector, and trio warns
    (encode/httpx#3686; pyproject.toml ignores that warning). Nothing leaks: the response
    itself is closed."""
    yield
    gc.collect()


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., EmulatorProc]]:
    """Factory: ``start_emulator("--window", "2")``; every process is stopped at teardown."""
    procs: list[EmulatorProc] = []

    def start(*args: str) -> EmulatorProc:
        proc = EmulatorProc(*args)
        procs.append(proc)
        return proc

    yield start
    # Stop every process before reporting spec problems (stop() raises them).
    problems = []
    for p in procs:
        try:
            p.stop()
        except AssertionError as exc:
            problems.append(str(exc))
    if problems:
        raise AssertionError("\n".join(problems))


@pytest.fixture
def emulator(start_emulator: Callable[..., EmulatorProc]) -> EmulatorProc:
    """A fresh emulator with the default demo data (seed 1) and RingCentral's limits."""
    return start_emulator("--data-seed", "1")


def _limits(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """Mount (and CLI, outbox) tests get RingCentral's real counts with scaled windows;
    tests of the emulator and of the raw API client, which make many requests to check the
    emulator's answers and claim nothing about what a user experiences, keep generous ones.
    A module may name its own in ``EMULATOR_LIMITS`` (e.g. ``BUDGET_LIMITS``)."""
    own: tuple[str, ...] | None = getattr(request.module, "EMULATOR_LIMITS", None)
    if own is not None:
        return own
    name = request.module.__name__.rsplit(".", 1)[-1]
    if name.startswith(("test_emulator_", "test_api_")):
        return GENEROUS_LIMITS
    return REAL_LIMITS


@pytest.fixture(scope="module")
def emu(request: pytest.FixtureRequest) -> Iterator[EmulatorProc]:
    """A module's own emulator (seed 1, so any request in its log came from that module's
    tests) at RingCentral's default request counts, with the window and penalty scaled down
    (``REAL_LIMITS``: the test world is the real world, only faster; emulator and raw API
    client modules get generous counts, see ``_limits``). The one emulator fixture: a
    module names other limits in ``EMULATOR_LIMITS``; one that needs other settings defines
    its own ``emu``, and ``rest``/``user`` follow it."""
    with EmulatorProc("--data-seed", "1", *_limits(request)) as proc:
        yield proc


@pytest.fixture(scope="module")
def rest(emu: EmulatorProc) -> Iterator[httpx.Client]:
    """The module's REST client as the admin user of its ``emu``. One per module: every JWT
    login opens a session, and RingCentral keeps five per user and app (a sixth would end
    the mount's, and each login spends the Auth budget the mount shares)."""
    with api_client(emu) as client:
        yield client


@pytest.fixture(scope="module")
def user(emu: EmulatorProc) -> Iterator[httpx.Client]:
    """The module's REST client as a non-admin user of its ``emu``."""
    with api_client(emu, emu.user(admin=False)) as client:
        yield client


@pytest.fixture
def no_faults(emu: EmulatorProc) -> Iterator[None]:
    """No fault rule of the module's ``emu`` outlives a test, nor leaks into the next one
    (``pytest.mark.usefixtures("no_faults")``)."""
    emu.clear_faults()
    yield
    emu.clear_faults()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]
                              ) -> Generator[None, pluggy.Result[pytest.TestReport], None]:
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and item.get_closest_marker("mount") is not None:
        report.outcome = "failed"
        report.longrepr = f"mount test skipped in CI (skips are failures here): {report.longrepr}"


@pytest.fixture(autouse=True)
def close_outboxes() -> Iterator[None]:
    """Outboxes a unit test opened on the fake API (tests/outbox_fakes.py) close after it."""
    yield
    from tests.outbox_fakes import OPEN
    while OPEN:
        OPEN.pop().close()
