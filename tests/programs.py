"""External programs the tests drive (``ffprobe``, ``cp``, ``mpv``, ``gio``...): the one
check that they are installed."""

from __future__ import annotations

import os
import shutil

import pytest


def require_programs(*names: str) -> list[str]:
    """Paths of ``names``, in order. A missing one skips the test locally and fails it
    under CI, where scripts/bootstrap has installed them all (a skipped check would pass
    unseen)."""
    paths = [shutil.which(name) for name in names]
    missing = [name for name, path in zip(names, paths, strict=True) if path is None]
    if missing:
        msg = f"missing programs: {', '.join(missing)} (scripts/bootstrap installs them)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return [path for path in paths if path is not None]
