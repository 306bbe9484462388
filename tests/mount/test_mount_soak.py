"""The soak's 2-minute variant (scripts/soak.py): a mixed workload of reads, seeks, sends and
refreshes with random faults and a kill -9 plus remount, at RingCentral's default request
counts with 6 s windows. No wrong byte, no duplicate or lost send, no read past the deadline.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.emulator_proc import ROOT
from tests.mount_helper import require_fuse

pytestmark = pytest.mark.mount


def _soak_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rcfs_soak", ROOT / "scripts" / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(600)
def test_two_minute_soak(tmp_path: Path) -> None:
    require_fuse()
    soak = _soak_module()
    result = soak.soak(minutes=2.0, phase_s=30.0, remount_every=45.0, seed=7,
                       workdir=tmp_path)
    print("soak:", json.dumps(result))
    assert result["wrong_bytes"] == 0, result["wrong_bytes_detail"]
    assert result["duplicate_sends"] == 0 and result["lost_sends"] == 0, result["sends"]
    assert result["hangs"] == 0, result["hangs_detail"]
    assert result["kill9_remounts"] >= 1
    assert result["faults_injected"] > 0
    assert result["sends"]["sends"] > 0
    assert result["ops"].get("whole reads", 0) > 0 and result["ops"].get("seek reads", 0) > 0
    assert not list(tmp_path.iterdir()), "the soak left its work folder"
