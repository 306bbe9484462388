#!/usr/bin/env python3
"""Pinning a mailbox-year: per-file GETs against the export bulk path, at RingCentral's
default request counts (issue 13).

Adds ``--count`` voicemails spread over one year to a non-admin user of a fresh emulator,
then pins that year twice, each time from an empty cache:

* as the user (no report permission): every attachment is one Medium GET on spare budget;
* as the admin: one message-store-report export carries them all.

Prints requests (from the emulator's log), 429s and wall time per path as a Markdown table.
``--window 60`` (the default) is RingCentral's real window; smaller values scale the windows
and penalties like the tests do (the counts stay RingCentral's).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.emulator_proc import EmulatorProc  # noqa: E402
from tests.mount_helper import Mounted, files_under  # noqa: E402

YEAR = 2023


def _pin(m: Mounted, user: dict[str, Any], emu: EmulatorProc) -> dict[str, Any]:
    from tests.mount_helper import folder_name

    vm = m.root / folder_name(user) / "Voicemail"
    months = sorted(p for p in vm.iterdir() if p.name.startswith(f"{YEAR}-"))
    since = len(emu.requests())
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "rcfs.cli", "pin", *map(str, months)], cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL, timeout=6 * 3600)
    took = time.monotonic() - started
    files = [f for month in months for f in files_under(month)]
    spent = [e for e in emu.requests(since) if "/content/" in e["path"]
             or "message-store-report" in e["path"]]
    return {"files": len(files), "requests": len(spent),
            "throttled": sum(1 for e in spent if e["status"] == 429), "seconds": took}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=520)
    ap.add_argument("--window", type=float, default=60.0)
    ap.add_argument("--only", choices=("per-file", "export"), help="run one path only")
    args = ap.parse_args()
    window = f"{args.window:g}"
    rows = []
    with EmulatorProc("--data-seed", "1", "--window", window, "--penalty", window,
                      "--set", "report_step=5", check_openapi=False) as emu:
        user = emu.user(admin=False)
        end = datetime(YEAR, 12, 30, 12, tzinfo=UTC).timestamp()
        emu.admin("POST", "/_emulator/messages", {
            "extension_id": str(user["extension_id"]), "type": "VoiceMail", "duration": 2,
            "creation_time": end, "repeat": args.count, "step": 360 * 86400 / args.count})
        paths = (("per-file", "per-file GETs (no report permission)", user),
                 ("export", "export (admin)", emu.user(admin=True)))
        for key, label, who in paths:
            if args.only not in (None, key):
                continue
            work = Path(tempfile.mkdtemp(prefix="rcfs-bench-pin-"))
            try:
                with Mounted(emu, work, user=who, refresh_interval=600,
                             timezone="UTC") as m:
                    m.wait_loaded(timeout=300)
                    rows.append((label, _pin(m, user, emu)))
            finally:
                shutil.rmtree(work, ignore_errors=True)
    print(f"Pinning a mailbox-year ({args.count} voicemails), default counts, "
          f"{window} s windows\n")
    print("| path | files | requests | 429s | seconds |")
    print("|---|---|---|---|---|")
    for label, r in rows:
        print(f"| {label} | {r['files']} | {r['requests']} | {r['throttled']} | "
              f"{r['seconds']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
