#!/usr/bin/env python3
"""rcfs under a WAN profile against curl under the same profile (issue 15, point 9).

Loopback hides latency. Here every content response of the emulator's media host starts
``--first-byte-ms`` late (fault ``delay``) and streams at ``--mbps`` MB/s (fault
``bandwidth``); metadata requests (platform host) are not slowed. In one run, medians of N:

  * curl's time to first byte and its time for a whole recording (the limit);
  * ``mpv --length=0.5`` of a fresh (uncached) recording through the mount, and of the same
    bytes on local disk (the program's own start-up and playing time);
  * ``ffprobe`` of a fresh recording through the mount, and on local disk;
  * a cold ``cp -r`` of a voicemail folder (a fresh mount with an empty cache each time),
    against one curl fetching the same URLs one after the other over one connection.

The emulator runs with generous rate limits: these rows measure latency and bandwidth, not
the request budget (``scripts/bench_limits.py`` does that at RingCentral's counts).
Not a test: ``scripts/bench wan`` bootstraps and runs this.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from benchlib import MIB, find, have, median, timed

from tests.emulator_proc import EmulatorProc  # importable: benchlib puts ROOT on sys.path
from tests.mount_helper import GENEROUS_LIMITS, Mounted

WAV_RATE = 16000
VM_MONTH = "2019-06"


def content_requests(emu: EmulatorProc, since: int) -> int:
    return sum(1 for r in emu.requests()[since:] if "/content" in r["path"])


def curl_times(url: str, token: str) -> tuple[float, float]:
    """(time to first byte, total) of one GET, as curl measures them."""
    out = subprocess.run(
        ["curl", "-sf", "-o", "/dev/null", "-H", f"Authorization: Bearer {token}", "-w",
         "%{time_starttransfer} %{time_total}", url],
        check=True, capture_output=True, text=True, timeout=120).stdout.split()
    return float(out[0]), float(out[1])


def setup(emu: EmulatorProc, args: argparse.Namespace) -> dict[str, Any]:
    admin = emu.user(admin=True)
    secs = -(-args.size_mib * MIB // WAV_RATE)
    rids = [emu.admin("POST", "/_emulator/calls", {
        "extension_id": admin["extension_id"], "direction": "Inbound", "from": "+14155550111",
        "duration": secs, "recording": True, "recording_format": "wav",
        "start_time": time.time() - secs - 3600 * (i + 1)})["recording_id"]
        for i in range(3 * args.runs)]
    emu.admin("POST", "/_emulator/messages", {
        "extension_id": admin["extension_id"], "type": "VoiceMail", "from": "+14155550133",
        "duration": args.vm_seconds, "repeat": args.voicemails, "step": 3600,
        "creation_time": f"{VM_MONTH}-20T12:00:00Z"})
    token = emu.token(admin)
    r = httpx.get(f"{emu.info['platform_url']}/restapi/v1.0/account/~/extension/~/message-store",
                  params={"messageType": "VoiceMail", "dateFrom": f"{VM_MONTH}-01T00:00:00Z",
                          "dateTo": f"{VM_MONTH}-30T23:59:59Z", "perPage": 1000},
                  headers={"Authorization": f"Bearer {token}"}, timeout=30)
    r.raise_for_status()
    vm_urls = [a["uri"] for m in r.json()["records"] for a in m["attachments"]]
    acc = emu.info["account_id"]
    rec_urls = [f"{emu.info['media_url']}/restapi/v1.0/account/{acc}/recording/{rid}/content"
                for rid in rids]
    return {"admin": admin, "rids": rids, "token": token, "vm_urls": vm_urls,
            "rec_urls": rec_urls}


def run(args: argparse.Namespace, work: Path) -> list[tuple[str, int, float, str]]:
    rows: list[tuple[str, int, float, str]] = []
    wan = [{"kind": "delay", "path": "/content", "origin": "media",
            "seconds": args.first_byte_ms / 1000},
           {"kind": "bandwidth", "path": "/content", "origin": "media",
            "bytes_per_second": args.mbps * 1e6}]
    faults = [a for f in wan for a in ("--fault", json.dumps(f))]
    with EmulatorProc("--data-seed", "1", "--set", 'recording_format="wav"', *faults,
                      *GENEROUS_LIMITS, check_openapi=False) as emu:
        ctx = setup(emu, args)
        n = args.runs
        # curl on recordings that nobody reads afterwards through the mount
        since = len(emu.requests())
        curl = [curl_times(u, ctx["token"]) for u in ctx["rec_urls"][2 * n:]]
        got = f"{content_requests(emu, since)} for {n} GETs"
        ttfb, whole = median(c[0] for c in curl), median(c[1] for c in curl)
        rows.append(("curl, time to first byte", n, ttfb, got))
        rows.append((f"curl, whole {args.size_mib} MiB recording", n, whole, got))
        (work / "local").mkdir()
        local = work / "local" / "rec.wav"
        local.write_bytes(emu.content("recording", ctx["rids"][0]))
        mnt = Mounted(emu, work / "rcfs", refresh_interval=60)
        mnt.start()
        try:
            mnt.wait_loaded()
            folder = mnt.folder(ctx["admin"])
            files = [find(folder, f"Recordings/*/*[[]{rid}].wav") for rid in ctx["rids"]]
            mpv = ["mpv", "--no-config", "--really-quiet", "--ao=null", "--vo=null",
                   "--length=0.5"]
            probe = ["ffprobe", "-v", "error", "-show_entries", "format=duration"]
            for label, cmd, pick in (("mpv --length=0.5", mpv, files[:n]),
                                     ("ffprobe", probe, files[n:2 * n])):
                if not have(cmd[0]):
                    print(f"{cmd[0]} is not installed: its rows are missing", file=sys.stderr)
                    continue
                since = len(emu.requests())
                cold = [timed([*cmd, str(p)], timeout=120) for p in pick]
                reqs = content_requests(emu, since)
                ref = [timed([*cmd, str(local)], timeout=120) for _ in pick]
                rows.append((f"{label}, fresh recording through rcfs", n, median(cold),
                             f"{reqs} for {n} files"))
                rows.append((f"{label}, same bytes on local disk", n, median(ref), "0"))
                rows.append((f"{label}: added by the mount (rcfs - local)", n,
                             median(cold) - median(ref), ""))
        finally:
            mnt.unmount()
        rows += cp_rows(emu, ctx, work, n)
    return rows


def cp_rows(emu: EmulatorProc, ctx: dict[str, Any], work: Path,
            n: int) -> list[tuple[str, int, float, str]]:
    """Cold ``cp -r`` of the voicemail month (fresh mount and cache each run) against one
    curl fetching the same URLs in turn over one connection."""
    urls = ctx["vm_urls"]
    cmd = ["curl", "-sf", "-H", f"Authorization: Bearer {ctx['token']}"]
    for u in urls:
        cmd += ["-o", "/dev/null", u]
    since = len(emu.requests())
    curl = [timed(cmd, timeout=300) for _ in range(n)]
    curl_reqs = content_requests(emu, since)
    cps: list[float] = []
    since = len(emu.requests())
    for i in range(n):
        mnt = Mounted(emu, work / f"cp{i}", refresh_interval=60)
        mnt.start()
        try:
            mnt.wait_loaded()
            src = find(mnt.folder(ctx["admin"]), f"Voice*/{VM_MONTH}")
            dest = work / f"copy{i}"
            cps.append(timed(["cp", "-r", str(src), str(dest)], timeout=300))
            got = len(list(dest.iterdir()))
            if got != len(urls):
                raise RuntimeError(f"cp copied {got} files, expected {len(urls)}")
        finally:
            mnt.unmount()
    reqs = content_requests(emu, since)
    k = len(urls)
    return [(f"curl, {k} voicemails one after another (one connection)", n, median(curl),
             f"{curl_reqs} for {n} runs"),
            (f"cp -r of the {k}-voicemail folder, cold (fresh mount and cache)", n,
             median(cps), f"{reqs} for {n} runs")]


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--first-byte-ms", type=float, default=80.0)
    ap.add_argument("--mbps", type=float, default=20.0, help="MB/s (10^6 bytes) per response")
    ap.add_argument("--runs", type=int, default=5, help="N of the medians (fresh files each)")
    ap.add_argument("--size-mib", type=int, default=2, help="size of each recording")
    ap.add_argument("--voicemails", type=int, default=10)
    ap.add_argument("--vm-seconds", type=int, default=30)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rcfs-bench-wan-"))
    try:
        rows = run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nWAN profile: content responses start {args.first_byte_ms:.0f} ms late and stream "
          f"at {args.mbps:g} MB/s; medians of N runs\n")
    print("| what | N | seconds | content requests |\n|---|---|---|---|")
    for what, k, secs, reqs in rows:
        print(f"| {what} | {k} | {secs:.3f} | {reqs} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
