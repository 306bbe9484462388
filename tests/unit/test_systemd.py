"""The shipped user unit passes ``systemd-analyze verify`` (and the check can fail)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.programs import require_programs

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "rcfs@.service"


def _verify(analyze: str, unit_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [analyze, "verify", "--man=no", str(unit_dir / "rcfs@work.service")],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
    )


@pytest.fixture
def analyze() -> str:
    """The path of ``systemd-analyze`` (scripts/bootstrap installs systemd)."""
    return require_programs("systemd-analyze")[0]


def test_unit_verifies_cleanly(analyze: str, tmp_path: Path) -> None:
    text = UNIT.read_text()
    assert "Type=notify" in text and "Restart=on-failure" in text
    assert "rcfs mount %h/RingCentral/%i" in text
    shutil.copy(UNIT, tmp_path / "rcfs@work.service")
    res = _verify(analyze, tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == "", res.stderr


def test_verify_catches_a_broken_unit(analyze: str, tmp_path: Path) -> None:
    (tmp_path / "rcfs@work.service").write_text(
        UNIT.read_text().replace("Type=notify", "Type=notifyy"))
    res = _verify(analyze, tmp_path)
    assert "notifyy" in res.stderr
