#!/usr/bin/env python3
"""rcfs under a WAN profile against curl under the same profile (issue 15, point 9).

Loopback hides latency. Here every content response of the emulator's media host starts
``--first-byte-ms`` late (fault ``delay``) and streams at ``--mbps`` MB/s (fault
``bandwidth``); metadata requests (platform host) are not slowed. With the mount up, N runs,
each on fresh (uncached) recordings, the order of the five contenders rotating run by run:

  * curl's time to first byte (``-w %{time_starttransfer}``) and its time for the whole
    recording: the reference, under the same profile;
  * mpv's time from launch to its first audio output, through the mount and on local disk
    (page cache). How: mpv plays with ``--ao=pcm --ao-pcm-waveheader=no
    --ao-pcm-file=/dev/stdout`` (its audio output writes the decoded samples into our pipe,
    no file header first) and the time is taken when the first byte of samples arrives,
    from just before the process is started. That is start-up, open, the header read, the
    first decode and the first write of the audio output: what a user waits for before
    hearing anything. (The output goes through stdio, so that first write is the first
    buffer of samples, 4 KiB or less: 0.13 s of these 8 kHz 16-bit recordings, decoded in
    microseconds.) ``--length=0.5`` ends the play; the pcm output is not paced, so it ends
    at once. mpv's own log (``--log-file``) shows where the time goes: through the mount
    its open of the file waits for the first byte, and playback starts right after;
  * ``ffprobe`` to its exit (it reads the header only, not the whole file), through the
    mount and on local disk;
  * a cold ``cp -r`` of a voicemail folder (a fresh mount with an empty cache each run)
    against one curl fetching the same URLs one after the other over one connection, the
    two alternating run by run while that mount is up.

Content requests are counted exactly: per recording path for the reads (each fresh file
belongs to one contender), per turn for the voicemail rows (nothing else reads content
then). The emulator runs with generous rate limits: these rows measure latency and
bandwidth, not the request budget (``scripts/bench_limits.py`` does that at RingCentral's
counts). Not a test: ``scripts/bench wan`` bootstraps and runs this.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import benchlib
import httpx
from benchlib import MIB, find, have, median, read_ahead_header, timed

from tests.emulator_proc import EmulatorProc  # importable: benchlib puts ROOT on sys.path
from tests.mount_helper import GENEROUS_LIMITS, Mounted

WAV_RATE = 16000
VM_MONTH = "2019-06"
Row = tuple[str, int, float, str]
MPV = ["mpv", "--no-config", "--really-quiet", "--vo=null", "--ao=pcm",
       "--ao-pcm-waveheader=no", "--ao-pcm-file=/dev/stdout", "--length=0.5"]
PROBE = ["ffprobe", "-v", "error", "-show_entries", "format=duration"]


def content_requests(emu: EmulatorProc, since: int, rid: str | None = None) -> int:
    """Content requests logged since ``since`` (a voicemail's path goes on after
    ``/content``); with ``rid``, those of that recording only."""
    log = emu.requests()[since:]
    if rid is None:
        return sum(1 for r in log if "/content" in r["path"])
    return sum(1 for r in log if r["path"].endswith(f"/recording/{rid}/content"))


def curl_times(url: str, token: str) -> tuple[float, float]:
    """(time to first byte, total) of one GET, as curl measures them."""
    out = subprocess.run(
        ["curl", "-sf", "-o", "/dev/null", "-H", f"Authorization: Bearer {token}", "-w",
         "%{time_starttransfer} %{time_total}", url],
        check=True, capture_output=True, text=True, timeout=120).stdout.split()
    return float(out[0]), float(out[1])


def mpv_first_audio(path: Path, timeout: float = 120) -> float:
    """Seconds from mpv's launch to the first byte of samples its audio output writes (see
    the module docstring); mpv must then exit 0 having written samples."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([*MPV, str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        first = proc.stdout.read(1)
        elapsed = time.perf_counter() - t0
        proc.stdout.read()
        code = proc.wait()
    finally:
        timer.cancel()
    if code != 0 or not first:
        raise RuntimeError(f"mpv played nothing from {path} (exit {code})")
    return elapsed


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
    return {"admin": admin, "rids": rids, "vm_urls": vm_urls, "rec_urls": rec_urls}


def read_rows(emu: EmulatorProc, ctx: dict[str, Any], files: list[Path], local: Path,
              n: int) -> list[Row]:
    """N runs with the mount up; in run i the contenders read fresh recordings (mpv the
    i-th, ffprobe the (n+i)-th, curl the (2n+i)-th) in an order rotating run by run."""
    since = len(emu.requests())
    rids = ctx["rids"]
    times: defaultdict[str, list[float]] = defaultdict(list)

    def curl(i: int) -> None:
        token = emu.token(ctx["admin"])  # fresh: see cp_rows
        ttfb, whole = curl_times(ctx["rec_urls"][2 * n + i], token)
        times["curl ttfb"].append(ttfb)
        times["curl whole"].append(whole)

    jobs: dict[str, Callable[[int], float | None]] = {"curl": curl}
    if have("mpv"):
        jobs["mpv rcfs"] = lambda i: mpv_first_audio(files[i])
        jobs["mpv local"] = lambda i: mpv_first_audio(local)
    else:
        print("mpv is not installed: its rows are missing", file=sys.stderr)
    if have("ffprobe"):
        jobs["ffprobe rcfs"] = lambda i: timed([*PROBE, str(files[n + i])], timeout=120)
        jobs["ffprobe local"] = lambda i: timed([*PROBE, str(local)], timeout=120)
    else:
        print("ffprobe is not installed: its rows are missing", file=sys.stderr)
    names = list(jobs)
    for i in range(n):
        k = i % len(names)
        for who in names[k:] + names[:k]:
            secs = jobs[who](i)
            if secs is not None:
                times[who].append(secs)

    def reqs(first: int) -> str:
        return f"{sum(content_requests(emu, since, rid) for rid in rids[first:first + n])} " \
               f"for {n} files"

    rows: list[Row] = [
        ("curl, time to first byte", n, median(times["curl ttfb"]), reqs(2 * n)),
        ("curl, whole recording", n, median(times["curl whole"]), reqs(2 * n))]
    for tool, what, first in (("mpv", "launch to first audio output", 0),
                              ("ffprobe", "launch to exit (reads the header only)", n)):
        if f"{tool} rcfs" not in times:
            continue
        through, on_disk = median(times[f"{tool} rcfs"]), median(times[f"{tool} local"])
        rows += [(f"{tool}, {what}: fresh recording through rcfs", n, through, reqs(first)),
                 (f"{tool}, {what}: same bytes on local disk (page cache)", n, on_disk, "0"),
                 (f"{tool}: added by the mount (rcfs - local)", n, through - on_disk, "")]
    return rows


def run(args: argparse.Namespace, work: Path) -> tuple[list[Row], list[str]]:
    wan = [{"kind": "delay", "path": "/content", "origin": "media",
            "seconds": args.first_byte_ms / 1000},
           {"kind": "bandwidth", "path": "/content", "origin": "media",
            "bytes_per_second": args.mbps * 1e6}]
    faults = [a for f in wan for a in ("--fault", json.dumps(f))]
    with EmulatorProc("--data-seed", "1", "--set", 'recording_format="wav"', *faults,
                      *GENEROUS_LIMITS, check_openapi=False) as emu:
        ctx = setup(emu, args)
        n = args.runs
        (work / "local").mkdir()
        local = work / "local" / "rec.wav"
        local.write_bytes(emu.content("recording", ctx["rids"][0]))
        mnt = Mounted(emu, work / "rcfs", refresh_interval=60)
        mnt.start()
        try:
            mnt.wait_loaded()
            header = read_ahead_header({"rcfs": mnt.mountpoint})
            folder = mnt.folder(ctx["admin"])
            files = [find(folder, f"Recordings/*/*[[]{rid}].wav") for rid in ctx["rids"]]
            rows = read_rows(emu, ctx, files, local, n)
        finally:
            mnt.unmount()
        rows += cp_rows(emu, ctx, work, n)
    return rows, header


def cp_rows(emu: EmulatorProc, ctx: dict[str, Any], work: Path, n: int) -> list[Row]:
    """Cold ``cp -r`` of the voicemail month (fresh mount and cache each run) against one
    curl fetching the same URLs in turn over one connection; the two alternate which goes
    first, and curl runs while that run's mount is up."""
    urls, admin = ctx["vm_urls"], ctx["admin"]
    times: dict[str, list[float]] = {"curl": [], "cp": []}
    reqs = {"curl": 0, "cp": 0}
    for i in range(n):
        mnt = Mounted(emu, work / f"cp{i}", refresh_interval=60)
        mnt.start()
        try:
            mnt.wait_loaded()
            src = find(mnt.folder(admin), f"Voice*/{VM_MONTH}")
            dest = work / f"copy{i}"
            for who in ("curl", "cp") if i % 2 == 0 else ("cp", "curl"):
                since = len(emu.requests())
                if who == "curl":  # a fresh token: a log-in past the emulator's sessions
                    # per user and app ends the oldest (rcfs/emulator/oauth.py), and every
                    # mount logs in
                    cmd = ["curl", "-sf", "-H", f"Authorization: Bearer {emu.token(admin)}"]
                    for u in urls:
                        cmd += ["-o", "/dev/null", u]
                    times[who].append(timed(cmd, timeout=300))
                else:
                    times[who].append(timed(["cp", "-r", str(src), str(dest)], timeout=300))
                    got = len(list(dest.iterdir()))
                    if got != len(urls):
                        raise RuntimeError(f"cp copied {got} files, expected {len(urls)}")
                reqs[who] += content_requests(emu, since)
        finally:
            mnt.unmount()
    k = len(urls)
    return [(f"curl, {k} voicemails one after another (one connection)", n,
             median(times["curl"]), f"{reqs['curl']} for {n} runs"),
            (f"cp -r of the {k}-voicemail folder, cold (fresh mount and cache)", n,
             median(times["cp"]), f"{reqs['cp']} for {n} runs")]


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--first-byte-ms", type=float, default=80.0)
    ap.add_argument("--mbps", type=float, default=20.0, help="MB/s (10^6 bytes) per response")
    ap.add_argument("--runs", type=int, default=5, help="N of the medians (fresh files each)")
    ap.add_argument("--size-mib", type=int, default=2, help="size of each recording")
    ap.add_argument("--voicemails", type=int, default=10)
    ap.add_argument("--vm-seconds", type=int, default=30)
    args = ap.parse_args()
    when = benchlib.run_header()
    work = Path(tempfile.mkdtemp(prefix="rcfs-bench-wan-"))
    try:
        rows, header = run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{when}\nWAN profile: content responses start {args.first_byte_ms:.0f} ms late "
          f"and stream at {args.mbps:g} MB/s; {args.size_mib} MiB recordings; medians of N "
          "runs, the contenders' order rotating run by run")
    for line in header:
        print(line)
    print("\n| what | N | seconds | content requests |\n|---|---|---|---|")
    for what, k, secs, reqs in rows:
        print(f"| {what} | {k} | {secs:.3f} | {reqs} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
