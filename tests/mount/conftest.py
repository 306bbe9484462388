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
    shared mount fails, not the next one. Modules whose tests share one mount apply it with
    ``pytest.mark.usefixtures("healthy")``."""
    yield
    if "mnt" in request.fixturenames:
        mnt: Mounted = request.getfixturevalue("mnt")
        assert mnt.alive, f"the mount died:\n{mnt.log()}"
        mnt.check_log()


@pytest.fixture(scope="module")
def summary(emu: EmulatorProc) -> dict[str, Any]:
    """The module's emulator's account summary: its extensions and their message counts."""
    return emu.admin("GET", "/_emulator/summary")  # type: ignore[no-any-return]
