"""Fixtures shared by the mount tests (the emulator fixtures are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.emulator_proc import EmulatorProc
from tests.mount_helper import Mounted


@pytest.fixture
def healthy(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test, its module's mount (the ``mnt`` fixture, when the test used it) is still
    alive and rcfs logged no exception that escaped a FUSE handler: the test that broke a
    shared mount fails, not the next one. Every module here whose tests share one mount as
    ``mnt`` (``module_mount``) applies it with ``pytest.mark.usefixtures("healthy")``;
    test_mount_faults_matrix shares its mount as ``world`` and checks the same inline after
    each row, once the fault it provoked on purpose is over. (tests/desktop does not see
    this conftest: its mounts' logs are checked at unmount, as every mount's is.)"""
    yield
    if "mnt" in request.fixturenames:
        mnt: Mounted = request.getfixturevalue("mnt")
        assert mnt.alive, f"the mount died:\n{mnt.log()}"
        mnt.check_log()


@pytest.fixture(scope="module")
def summary(emu: EmulatorProc) -> dict[str, Any]:
    """The module's emulator's account summary: its extensions and their message counts."""
    return emu.admin("GET", "/_emulator/summary")  # type: ignore[no-any-return]
