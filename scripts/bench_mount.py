#!/usr/bin/env python3
"""Benchmark of the mounted filesystem (issue 5), all in one run on the same loopback data.

  * sequential read of a 64 MiB recording: curl on the content URL (the network limit),
    rcfs cold, rcfs warm (page cache), rcfs after a remount (block cache only), rclone mount
    (--vfs-cache-mode full) of the same bytes served by a local Range-capable HTTP server,
    and the same file read from local disk;
  * ``ls -l`` of a 10,000-entry folder (cold and warm);
  * ffprobe + a 5 s seek read in the middle of a one-hour recording;
  * the content requests each used (from the emulator's request log).

Machines are noisy: each cold read is of a fresh file, rcfs and rclone alternating file by
file (both mounted at once); warm reads alternate with the local-disk reference; rows report
medians, as ratios against references measured in the same run. Not a test:
run ``scripts/bench`` (which bootstraps, installs rclone if it can, and runs this).
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.emulator_proc import EmulatorProc  # noqa: E402
from tests.mount_helper import GENEROUS_LIMITS, Mounted  # noqa: E402

MIB = 1 << 20
WAV_RATE = 16000  # bytes/s of the emulator's 8 kHz 16-bit mono recordings


def content_requests(emu: EmulatorProc, since: int) -> int:
    return sum(1 for r in emu.requests(since) if r["path"].endswith("/content")
               or "/content/" in r["path"])


def seq(emu: EmulatorProc) -> int:
    log = emu.requests()
    return log[-1]["seq"] + 1 if log else 0


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=600)
    return time.perf_counter() - t0


def read_file(path: Path) -> float:
    return timed(["dd", f"if={path}", "of=/dev/null", "bs=1M"])


def read_in_process(path: Path) -> float:
    """Open + read the whole file in 1 MiB reads from this process (no process start-up in
    the timing, which dominates a 64 MiB read from the page cache)."""
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as fh:
        while fh.read(MIB):
            pass
    return time.perf_counter() - t0


def drop_from_page_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # dirty pages (the file was just written) are not dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with single Range support (for rclone's http backend)."""

    requests_seen = 0

    def log_message(self, *args: Any) -> None:
        pass

    def send_head(self) -> Any:
        type(self).requests_seen += 1
        path = Path(self.translate_path(self.path))
        if path.is_dir() or "Range" not in self.headers:
            return super().send_head()
        size = path.stat().st_size
        spec = self.headers["Range"].removeprefix("bytes=").split(",")[0]
        start_s, _, end_s = spec.partition("-")
        start = int(start_s) if start_s else size - int(end_s)
        end = min(int(end_s), size - 1) if start_s and end_s else size - 1
        fh = open(path, "rb")  # noqa: SIM115
        fh.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._remaining = end - start + 1
        return _Limited(fh, end - start + 1)


class _Limited:
    def __init__(self, fh: Any, n: int) -> None:
        self.fh, self.n = fh, n

    def read(self, size: int = -1) -> bytes:
        if self.n <= 0:
            return b""
        data = self.fh.read(self.n if size < 0 else min(size, self.n))
        self.n -= len(data)
        return data

    def close(self) -> None:
        self.fh.close()


@contextlib.contextmanager
def static_server(directory: Path) -> Iterator[str]:
    handler = lambda *a, **k: _RangeHandler(*a, directory=str(directory), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()


@contextlib.contextmanager
def rclone_mount(url: str, mountpoint: Path, cache: Path) -> Iterator[Path]:
    mountpoint.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        ["rclone", "mount", ":http:", str(mountpoint), "--http-url", url,
         "--vfs-cache-mode", "full", "--cache-dir", str(cache), "--read-only"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not os.path.ismount(mountpoint):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("rclone mount did not come up")
            time.sleep(0.1)
        yield mountpoint
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()


def find(root: Path, pattern: str) -> Path:
    hits = sorted(root.glob(pattern))
    if not hits:
        raise RuntimeError(f"nothing matches {pattern} under {root}")
    return hits[0]


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--files", type=int, default=5,
                    help="cold reads per contender (one fresh file each), interleaved")
    ap.add_argument("--rounds", type=int, default=15, help="interleaved warm-read rounds")
    ap.add_argument("--entries", type=int, default=10000)
    ap.add_argument("--read-ahead-kib", type=int, default=None,
                    help="rcfs's read_ahead_kib (0: the kernel's 128 KiB, as for a non-root "
                         "user; default: rcfs's default)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rcfs-bench-"))
    rows: list[dict[str, Any]] = []

    def row(what: str, seconds: float, nbytes: int | None, requests: int | None,
            ref: float | None = None) -> None:
        rows.append({"what": what, "seconds": round(seconds, 4),
                     "MiB/s": round(nbytes / MIB / seconds, 1) if nbytes else None,
                     "vs_ref": round(ref / seconds, 2) if ref else None,
                     "content_requests": requests})

    # Recordings are WAV or MP3 per account (the call log does not say which; rcfs asks one
    # recording's metadata): this account records WAV.
    # Throughput is measured with generous rate limits: at RingCentral's Heavy 10/min, the
    # fresh files of the cold rows would queue behind the budget (by design).
    with EmulatorProc("--data-seed", "1", "--set", 'recording_format="wav"',
                      *GENEROUS_LIMITS, check_openapi=False) as emu:
        admin = emu.user(admin=True)
        duration = -(-args.size_mib * MIB // WAV_RATE)
        rids = [emu.admin("POST", "/_emulator/calls", {
            "extension_id": admin["extension_id"], "direction": "Inbound",
            "from": "+14155550111", "duration": duration, "recording": True,
            "recording_format": "wav", "start_time": time.time() - duration - 3600 * (i + 1)}
        )["recording_id"] for i in range(args.files)]
        hour = emu.admin("POST", "/_emulator/calls", {
            "extension_id": admin["extension_id"], "direction": "Outbound",
            "to": "+14155550122", "duration": 3600, "recording": True,
            "recording_format": "wav", "start_time": time.time() - 3 * 86400})
        emu.admin("POST", "/_emulator/messages", {
            "extension_id": admin["extension_id"], "type": "SMS", "from": "+14155559999",
            "from_name": "Bench Sender", "text": "benchmark", "repeat": args.entries,
            "step": 30})
        (work / "local").mkdir()
        locals_ = []
        for i, rid in enumerate(rids):  # the same bytes, for rclone and the local reference
            locals_.append(work / "local" / f"big{i}.wav")
            locals_[-1].write_bytes(emu.content("recording", rid))
        local = locals_[0]
        size = local.stat().st_size
        acc = emu.info["account_id"]
        url = f"{emu.info['media_url']}/restapi/v1.0/account/{acc}/recording/{rids[0]}/content"
        token = emu.token(admin)

        s0 = seq(emu)
        curls = [timed(["curl", "-sf", "-o", "/dev/null", "-H",
                        f"Authorization: Bearer {token}", url]) for _ in range(args.files)]
        curl = median(curls)
        row("curl (content URL)", curl, size, content_requests(emu, s0) // args.files)

        ra = [] if args.read_ahead_kib is None else ["--read-ahead-kib",
                                                      str(args.read_ahead_kib)]
        mnt = Mounted(emu, work / "rcfs", refresh_interval=60, args=ra)
        mnt.start()
        mnt.wait_loaded()
        have_rclone = shutil.which("rclone") is not None
        if not have_rclone:
            print("rclone not installed: its rows are missing", file=sys.stderr)
        with contextlib.ExitStack() as stack:
            if have_rclone:
                base = stack.enter_context(static_server(local.parent))
                rmp = stack.enter_context(rclone_mount(base, work / "rclone",
                                                       work / "rclone-cache"))
            try:
                folder = mnt.mountpoint / f"{admin['extension_number']} {admin['name']}"
                targets = [find(folder, f"Recordings/*/*[[]{rid}].wav") for rid in rids]
                # Cold reads, interleaved file by file so both contenders see the same noise.
                cold: list[float] = []
                rc_cold: list[float] = []
                s0 = seq(emu)
                _RangeHandler.requests_seen = 0
                for i, target in enumerate(targets):
                    cold.append(read_file(target))
                    if have_rclone:
                        rc_cold.append(read_file(rmp / locals_[i].name))
                row(f"rcfs cold (median of {len(cold)} files)", median(cold), size,
                    content_requests(emu, s0) // len(cold), ref=curl)
                if have_rclone:
                    row(f"rclone mount cold, vfs full (median of {len(rc_cold)})",
                        median(rc_cold), size, _RangeHandler.requests_seen // len(rc_cold),
                        ref=curl)

                # Warm rereads (page cache), interleaved with the local-disk reference.
                target = targets[0]
                s0 = seq(emu)
                seen = _RangeHandler.requests_seen
                read_file(target)  # the first open after a download fills the page cache
                if have_rclone:
                    read_file(rmp / local.name)
                warm: dict[str, list[float]] = {k: [] for k in (
                    "local", "rcfs", "local_py", "rcfs_py", "rclone")}
                for _ in range(args.rounds):
                    warm["local"].append(read_file(local))
                    warm["rcfs"].append(read_file(target))
                    warm["local_py"].append(read_in_process(local))
                    warm["rcfs_py"].append(read_in_process(target))
                    if have_rclone:
                        warm["rclone"].append(read_file(rmp / local.name))
                local_hot, local_hot_py = median(warm["local"]), median(warm["local_py"])
                row("local disk, page cache (dd)", local_hot, size, 0)
                row("local disk, page cache (in-process)", local_hot_py, size, 0)
                row("rcfs warm, page cache (dd)", median(warm["rcfs"]), size,
                    content_requests(emu, s0), ref=local_hot)
                row("rcfs warm, page cache (in-process)", median(warm["rcfs_py"]), size,
                    content_requests(emu, s0), ref=local_hot_py)
                if have_rclone:
                    row("rclone mount warm (dd)", median(warm["rclone"]), size,
                        _RangeHandler.requests_seen - seen, ref=local_hot)
                drop_from_page_cache(local)
                row("local disk, cold page cache (dd)", read_file(local), size, 0)

                texts = find(folder, "Texts/+14155559999*")
                s0 = seq(emu)
                ls_cold = timed(["ls", "-l", str(texts)])
                ls_warm = median([timed(["ls", "-l", str(texts)]) for _ in range(5)])
                n = len(os.listdir(texts))
                row(f"ls -l {n} entries, first", ls_cold, None, content_requests(emu, s0))
                row(f"ls -l {n} entries, warm (median of 5)", ls_warm, None, 0)

                hour_file = find(folder, f"Recordings/*/*[[]{hour['recording_id']}].wav")
                s0 = seq(emu)
                t_probe = timed(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                                 str(hour_file)])
                t_seek = timed(["ffmpeg", "-v", "error", "-ss", "1800", "-t", "5", "-i",
                                str(hour_file), "-f", "null", "-"])
                row("ffprobe + seek 1800 s, 1 h wav", t_probe + t_seek, None,
                    content_requests(emu, s0))
            finally:
                mnt.unmount()
        mnt.start()
        try:
            s0 = seq(emu)
            remount = [read_file(find(mnt.mountpoint, f"*/Recordings/*/*[[]{rid}].wav"))
                       for rid in rids]
            row(f"rcfs after remount, block cache (median of {len(remount)})",
                median(remount), size, content_requests(emu, s0), ref=local_hot)
        finally:
            mnt.unmount()

    width = max(len(r["what"]) for r in rows)
    print(f"\n{'what':<{width}}  {'seconds':>8}  {'MiB/s':>8}  {'ratio':>6}  requests")
    for r in rows:
        mibs = "" if r["MiB/s"] is None else f"{r['MiB/s']:.1f}"
        ratio = "" if r["vs_ref"] is None else f"{r['vs_ref']:.2f}"
        print(f"{r['what']:<{width}}  {r['seconds']:>8.3f}  {mibs:>8}  {ratio:>6}  "
              f"{r['content_requests']}")
    print("\nratio: reference time / this time (cold reads vs curl; warm reads vs local "
          "disk with page cache, dd against dd, in-process against in-process); > 1 is "
          "faster than the reference. Requests: content requests per file (cold rows) or "
          "in total.")
    if args.json:
        print(json.dumps(rows, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
