"""Shared fixtures: emulator processes (real HTTP), and the CI rule that mount tests never skip."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from typing import Any

import httpx
import pluggy
import pytest

from tests.emulator_proc import EmulatorProc, api_client
from tests.mount_helper import GENEROUS_LIMITS, REAL_LIMITS

IN_CI = bool(os.environ.get("CI"))


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
    emulator's answers and claim nothing about what a user experiences, keep generous ones."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    if name.startswith(("test_emulator_", "test_api_")):
        return GENEROUS_LIMITS
    return REAL_LIMITS


@pytest.fixture(scope="module")
def emu(request: pytest.FixtureRequest) -> Iterator[EmulatorProc]:
    """A module's own emulator (seed 1, so any request in its log came from that module's
    tests) at RingCentral's default request counts, with the window and penalty scaled down
    (``REAL_LIMITS``: the test world is the real world, only faster); modules that need
    other settings define their own ``emu``."""
    with EmulatorProc("--data-seed", "1", *_limits(request)) as proc:
        yield proc


@pytest.fixture(scope="module")
def rest(emu: EmulatorProc) -> Iterator[httpx.Client]:
    """One REST session per module: every extra JWT login opens a session, and RingCentral
    keeps five per user and app (a sixth would end the mount's)."""
    with api_client(emu) as client:
        yield client


@pytest.fixture
def admin(emu: EmulatorProc) -> Iterator[httpx.Client]:
    """A REST client as the admin user of the module's ``emu``."""
    with api_client(emu) as client:
        yield client


@pytest.fixture
def user(emu: EmulatorProc) -> Iterator[httpx.Client]:
    """A REST client as a non-admin user of the module's ``emu``."""
    with api_client(emu, emu.user(admin=False)) as client:
        yield client


@pytest.fixture(scope="module")
def shared_emulator(request: pytest.FixtureRequest) -> Iterator[EmulatorProc]:
    """One emulator for a module of read-only tests, at RingCentral's default counts with
    scaled windows (``REAL_LIMITS``)."""
    with EmulatorProc("--data-seed", "1", *_limits(request)) as proc:
        yield proc


@pytest.fixture
def rc(shared_emulator: EmulatorProc) -> Iterator[Any]:
    """An httpx client authenticated as the admin user on the shared emulator."""
    with api_client(shared_emulator) as client:
        yield client


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]
                              ) -> Generator[None, pluggy.Result[pytest.TestReport], None]:
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and item.get_closest_marker("mount") is not None:
        report.outcome = "failed"
        report.longrepr = f"mount test skipped in CI (skips are failures here): {report.longrepr}"
