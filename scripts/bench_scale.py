#!/usr/bin/env python3
"""Benchmark of the metadata index at scale (issue 12): an emulator account of
``--scale N`` extra messages per mailbox (5 mailboxes, mounted as the admin), at
RingCentral's default request counts per window.

Reports, as JSON and as a README table row:

* first mount: time until the root answers, until every mailbox finished its first sync and
  lists all its months, until a full ``find`` completes; requests per rate-limit group;
* RSS of the mount process after the full ``find`` (and its peak);
* bytes written (``/proc/<pid>/io`` write_bytes) per refresh while idle (folders in use,
  nothing changed on the server);
* remount: time until the root answers and every month folder of every mailbox lists;
* ``ls -l`` of the folder closest to 1,000 entries (first and warm), ``find`` warm.

Not a test: ``.venv/bin/python scripts/bench_scale.py --scale 20000``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchlib import timed  # noqa: E402

from tests.emulator_proc import EmulatorProc  # noqa: E402
from tests.mount_helper import Mounted  # noqa: E402

AREAS = ("Voicemail", "Fax", "Recordings")


def proc_field(pid: int, name: str, key: str) -> int:
    for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
        k, _, v = line.partition(":")
        if k.strip() == key:
            return int(v.split()[0])
    raise KeyError(key)


def groups(entries: list[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(str(e.get("group")) for e in entries if e.get("group")))


def seq(emu: EmulatorProc) -> int:
    log = emu.requests()
    return int(log[-1]["seq"]) + 1 if log else 0


def all_loaded(m: Mounted) -> bool:
    try:
        exts = m.status().get("extensions", {})
    except (OSError, ValueError):
        return False
    return bool(exts) and all(e.get("loaded") and not e.get("loading") for e in exts.values())


def list_months(m: Mounted) -> int:
    """Every month folder of every mailbox, listed; returns how many."""
    n = 0
    for box in os.listdir(m.root):
        if box.startswith("."):
            continue
        for area in AREAS:
            path = m.root / box / area
            try:
                months = os.listdir(path)
            except OSError:
                continue
            for month in months:
                os.listdir(path / month)
                n += 1
    return n


def biggest_near(m: Mounted, target: int = 1000) -> tuple[Path, int]:
    best: tuple[Path, int] | None = None
    for dirpath, _dirs, files in os.walk(m.root):
        if "/Outbox" in dirpath or "/.rcfs" in dirpath:
            continue
        n = len(files)
        if n >= target and (best is None or n < best[1]):
            best = (Path(dirpath), n)
    if best is None:  # nothing that big: the biggest there is
        for dirpath, _dirs, files in os.walk(m.root):
            if best is None or len(files) > best[1]:
                best = (Path(dirpath), len(files))
    assert best is not None
    return best


def idle_writes(m: Mounted, emu: EmulatorProc, seconds: float) -> dict[str, Any]:
    """Keep every mailbox in use (one listing per second) while nothing changes; bytes the
    mount wrote per message-sync refresh."""
    assert m.proc is not None
    pid = m.proc.pid
    boxes = [b for b in os.listdir(m.root)  # mailboxes (not Calls/, .rcfs)
             if not b.startswith(".") and (m.root / b / "Voicemail").is_dir()]
    mark = seq(emu)
    before = proc_field(pid, "io", "write_bytes")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for box in boxes:
            os.listdir(m.root / box / "Voicemail")
        time.sleep(1.0)
    written = proc_field(pid, "io", "write_bytes") - before
    sent = emu.requests(mark)
    refreshes = sum(1 for e in sent if e["path"].endswith("/message-sync"))
    costly = Counter(f"{e['group']} {e['method']} {e['path']}" for e in sent
                     if e.get("group") in ("Medium", "Heavy"))
    return {"seconds": seconds, "write_bytes": written, "refreshes": refreshes,
            "bytes_per_refresh": written // max(1, refreshes), "requests": groups(sent),
            "medium_heavy": dict(costly)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="rcfs-bench-scale-"))
    emu_args = ["--scale", str(args.scale), "--window", str(args.window),
                "--penalty", str(args.window)]
    out: dict[str, Any] = {"scale": args.scale, "window": args.window}
    (work / "emu").mkdir()
    emu = EmulatorProc(*emu_args, workdir=work / "emu", timeout=600, check_openapi=False)
    # Polling unless --push: idle refreshes are what the idle rows measure (with the push
    # socket connected there are none and the idle phase writes and asks nothing).
    m = Mounted(emu, work, refresh_interval=args.refresh, timezone="UTC", push=args.push)
    try:
        mark = seq(emu)
        t0 = time.perf_counter()
        m.start(timeout=600)
        out["first_root_s"] = round(time.perf_counter() - t0, 2)
        while not all_loaded(m):
            time.sleep(0.2)
        out["months"] = list_months(m)
        out["first_all_months_s"] = round(time.perf_counter() - t0, 2)
        res = subprocess.run(["find", str(m.root)], capture_output=True, text=True,
                             check=True, timeout=1800)
        out["entries"] = res.stdout.count("\n")
        out["first_find_s"] = round(time.perf_counter() - t0, 2)
        out["first_requests"] = groups(emu.requests(mark))
        assert m.proc is not None
        out["rss_mb"] = proc_field(m.proc.pid, "status", "VmRSS") // 1024
        out["rss_peak_mb"] = proc_field(m.proc.pid, "status", "VmHWM") // 1024
        folder, n = biggest_near(m)
        out["ls_entries"] = n
        out["ls_first_s"] = round(timed(["ls", "-l", str(folder)]), 3)
        out["ls_warm_s"] = round(statistics.median(
            timed(["ls", "-l", str(folder)]) for _ in range(5)), 3)
        out["find_warm_s"] = round(statistics.median(
            timed(["find", str(m.root)]) for _ in range(3)), 3)
        out["idle"] = idle_writes(m, emu, args.idle)
        m.unmount()
        mark = seq(emu)
        t0 = time.perf_counter()
        m.start(timeout=600)
        out["remount_root_s"] = round(time.perf_counter() - t0, 2)
        out["remount_startup"] = m.status().get("startup")  # the mount's own share
        months = list_months(m)
        out["remount_months_s"] = round(time.perf_counter() - t0, 2)
        out["remount_months"] = months
        out["remount_requests_before_listed"] = groups(emu.requests(mark))
    finally:
        m.unmount()
        emu.stop(check=False)
        shutil.rmtree(work, ignore_errors=True)
    return out


def row(r: dict[str, Any]) -> str:
    req = ", ".join(f"{k} {v}" for k, v in sorted(r["first_requests"].items()))
    return (f"| {r['scale']} | {r['entries']} | {r['first_root_s']} | {r['first_all_months_s']}"
            f" | {r['first_find_s']} | {req} | {r['rss_mb']} ({r['rss_peak_mb']}) | "
            f"{r['idle']['bytes_per_refresh']} | {r['remount_root_s']} / "
            f"{r['remount_months_s']} | {r['ls_entries']}: {r['ls_first_s']} / "
            f"{r['ls_warm_s']} | {r['find_warm_s']} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=int, default=20000, help="extra messages per mailbox")
    p.add_argument("--window", type=float, default=60.0,
                   help="rate-limit window and penalty, seconds (counts stay the defaults)")
    p.add_argument("--refresh", type=float, default=10.0, help="refresh_interval of the mount")
    p.add_argument("--idle", type=float, default=45.0, help="idle measurement, seconds")
    p.add_argument("--push", action="store_true",
                   help="keep the push socket (default: polling, whose idle refreshes the "
                        "idle rows measure)")
    p.add_argument("--json", type=Path, help="also write the result here")
    args = p.parse_args()
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    print(row(result))
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
