#!/usr/bin/env python3
"""Freshness benchmark: push (WebSocket) against polling, on a real mount.

At RingCentral's default request counts with every window scaled down ``--scale`` times
(emulator ``--window 60/scale --penalty 60/scale``; the mount's ``refresh_interval`` 60/scale
and ``push_poll_interval`` 1800/scale): for each mode, the latency from a voicemail being
added on the server to its file being listed (a file manager lists the folder every 50 ms),
median of ``--samples``; then the Light requests over 10 idle minutes of scaled time
(600/scale seconds) while the folder stays in use (listed every second). Push latency does
not depend on the scale; polling latency and idle requests are reported in scaled-back
(RingCentral) seconds and per 10 minutes.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.emulator_proc import EmulatorProc  # noqa: E402
from tests.mount_helper import Mounted, files_under, wait_for  # noqa: E402


def latency(emu: EmulatorProc, m: Mounted, samples: int, rng: random.Random) -> list[float]:
    admin = emu.user(admin=True)
    out = []
    for _ in range(samples):
        time.sleep(rng.uniform(0.5, 1.5))  # a random phase against the polling clock
        added = emu.admin("POST", "/_emulator/messages", {
            "extension_id": admin["extension_id"], "type": "VoiceMail", "duration": 5})
        start = time.monotonic()
        ident = f"[{added['id']}]"
        def listed(ident: str = ident) -> bool:
            return any(ident in p.name for p in files_under(m.folder()))

        wait_for(listed, 300, "the new voicemail", interval=0.05)
        out.append(time.monotonic() - start)
    return out


def idle_light(emu: EmulatorProc, m: Mounted, seconds: float) -> int:
    seen = -1
    while True:  # let the startup's requests end
        n = len(emu.requests())
        if n == seen:
            break
        seen = n
        time.sleep(2)
    start = len(emu.requests())
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        list(files_under(m.folder()))
        time.sleep(1.0)
    return sum(1 for e in emu.requests(start) if e.get("group") == "Light")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", type=float, default=10.0)
    p.add_argument("--samples", type=int, default=5)
    args = p.parse_args()
    scale = args.scale
    window = 60 / scale
    rng = random.Random(14)
    rows = []
    with tempfile.TemporaryDirectory(prefix="rcfs-bench-fresh-") as tmp, \
            EmulatorProc("--data-seed", "1", "--window", f"{window:g}", "--penalty",
                         f"{window:g}", check_openapi=False) as emu:
        for mode, args_ in (("push", []), ("polling", ["--no-push"])):
            with Mounted(emu, Path(tmp) / mode, refresh_interval=60 / scale,
                         push_poll_interval=1800 / scale, args=args_, timezone="UTC") as m:
                m.wait_loaded()
                if mode == "push":
                    def connected(m: Mounted = m) -> bool:
                        return bool(m.status()["push"]["state"] == "connected")

                    wait_for(connected, 30, "the push socket")
                lat = latency(emu, m, args.samples, rng)
                light = idle_light(emu, m, 600 / scale)
                factor = 1.0 if mode == "push" else scale
                rows.append((mode, statistics.median(lat) * factor, max(lat) * factor, light))
    print(f"scale 1/{scale:g}: window {window:g} s, refresh_interval {60 / scale:g} s, "
          f"push_poll_interval {1800 / scale:g} s")
    print("| freshness | new item listed after (median / max, s) | Light requests per 10 idle "
          "minutes |")
    print("|---|---|---|")
    for mode, med, worst, light in rows:
        print(f"| {mode} | {med:.2f} / {worst:.2f} | {light} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
