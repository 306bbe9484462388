#!/usr/bin/env python3
"""Requests a mount spends on its own (issue 10, item 4): mount the demo account at
RingCentral's default limits (real 60 s windows, default ``refresh_interval``), list the
root once, then touch nothing for ``--idle`` seconds (default 600). Prints the requests per
rate-limit group for the mount and for the idle period, and every Medium/Heavy one.

Not a test (it takes ten minutes): ``.venv/bin/python scripts/bench_idle.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.emulator_proc import EmulatorProc  # noqa: E402
from tests.mount_helper import Mounted  # noqa: E402


def per_group(entries: list[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(str(e.get("group")) for e in entries if e.get("group")))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--idle", type=float, default=600.0, help="idle seconds after the mount")
    p.add_argument("--refresh", type=float, default=60.0, help="refresh_interval")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rcfs-bench-idle-"))
    (work / "emu").mkdir()
    emu = EmulatorProc(workdir=work / "emu", check_openapi=False)
    m = Mounted(emu, work, refresh_interval=args.refresh)
    try:
        m.start()
        os.listdir(m.root)
        m.wait_loaded(120)
        mounted = emu.requests()
        mark = int(mounted[-1]["seq"]) + 1 if mounted else 0
        time.sleep(args.idle)
        idle = emu.requests(mark)
        out = {"mount": per_group(mounted), "idle_s": args.idle, "idle": per_group(idle),
               "idle_medium_heavy": [f"{e['group']} {e['method']} {e['path']}" for e in idle
                                     if e.get("group") in ("Medium", "Heavy")]}
        print(json.dumps(out, indent=2))
    finally:
        m.unmount()
        emu.stop(check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
