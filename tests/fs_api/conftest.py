"""The fs-API tests' fixtures (their fakes are in tests/fs_api_support.py): the kernel's
invalidations recorded, and ``fs``, a real ``RcfsOperations`` over the fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pyfuse3
import pytest

from tests.fs_api_support import Fs, Kernel, make_fs


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> Kernel:
    seen = Kernel()
    monkeypatch.setattr(pyfuse3, "invalidate_inode",
                        lambda inode, attr_only=False: seen.inodes.append(inode))
    monkeypatch.setattr(pyfuse3, "invalidate_entry_async",
                        lambda parent, name, ignore_enoent=False: seen.entries.append(
                            (parent, name)))
    return seen


@pytest.fixture
async def fs(tmp_path: Path, kernel: Kernel) -> AsyncIterator[Fs]:
    async with make_fs(tmp_path, kernel) as made:
        yield made
