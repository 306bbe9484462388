#!/usr/bin/env python3
"""Benchmark of the mounted filesystem against rclone and curl, like for like (issues 5, 15).

One nginx on 127.0.0.1 serves every content byte: the emulator runs with ``--media-origin``
(its recordings' content URIs point at nginx, and it writes their files into nginx's root),
rcfs is configured with that origin as its media server (``media_server``: the host it
sends its token to, as it would to media.ringcentral.com), rclone mounts nginx's folder as an
HTTP remote, and curl reads the same URLs: the limit row. In one run:

  * cold sequential reads of fresh 64 MiB recordings by curl, rcfs and ``rclone mount
    --vfs-cache-mode full``, the order rotating file by file; rcfs's time runs until its
    download has finished writing the block cache (status.json: no active stream). curl
    also saves each file to the disk rcfs caches on: what storing the bytes costs here;
  * the first reread of each file through rcfs (from the mount's page cache: the first open
    proved the size with the download's first response, a 206 to ``bytes=0-``, and read
    through the page cache; nginx honours ranges) and through rclone: half of the files right
    after their cold read, the other half once all cold reads are done (a minute or more
    later); the page cache is not dropped (the block files just written are in it), as the
    rows of both say;
  * warm rereads from the page cache, alternating with the same bytes on local disk, the
    order of the five readers rotating round by round;
  * after a remount of both, with the page cache dropped before every read (root only; the
    rows say so otherwise): rcfs's block cache from disk, rclone's cache, local disk, and
    the local files through the smallest pyfuse3 filesystem (``passthrough_fs.py``);
  * ``ls -l`` of a 10,000-entry folder and ffprobe + a seek in a one-hour recording.

Requests are counted exactly per contender in nginx's access log (by User-Agent). rclone's
mount and the passthrough get rcfs's kernel read-ahead (rcfs raises its own to 1 MiB as
root; ``--read-ahead-kib``); every mount's value is read back from its
``/sys/class/bdi/<major:minor>/read_ahead_kb`` and printed in the run's header, with a
WARNING line when they differ (as another user than root, nothing can set them). Rows are
medians of N reads (N in the row). Not a test: ``scripts/bench`` bootstraps, installs nginx
and rclone if it can, and runs this.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import benchlib
from benchlib import (
    IS_ROOT,
    MIB,
    WARM_RATES,
    Nginx,
    dd,
    drop_caches,
    find,
    have,
    median,
    rclone_mount,
    read_ahead_header,
    read_ahead_kib,
    settle,
    timed,
    wait_cached,
    wait_settled,
)

from tests.emulator_proc import EmulatorProc  # importable: benchlib puts ROOT on sys.path
from tests.mount_helper import GENEROUS_LIMITS, Mounted

WAV_RATE = 16000  # bytes/s of the emulator's 8 kHz 16-bit mono recordings
CONTENDERS = ("curl", "curl-file", "rcfs", "rclone")
AGENTS = {"curl": "curl/", "curl-file": "curl-file/", "rcfs": "rcfs/", "rclone": "rclone/"}


def read_in_process(path: Path) -> float:
    """Open + read the whole file in 1 MiB reads from this process (no process start-up in
    the timing, which dominates a 64 MiB read from the page cache)."""
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as fh:
        while fh.read(MIB):
            pass
    return time.perf_counter() - t0


class Table:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.header: list[str] = []
        """The run's header lines (when, what, each mount's read-ahead), printed first."""

    def add(self, what: str, times: list[float], nbytes: int | None, requests: int | str | None,
            ref: float | None = None) -> float:
        t = median(times)
        self.rows.append({"what": what, "n": len(times), "seconds": round(t, 4),
                          "MiB/s": round(nbytes / MIB / t, 1) if nbytes else None,
                          "ratio": round(ref / t, 2) if ref else None, "requests": requests})
        return t

    def print(self) -> None:
        for line in self.header:
            print(line)
        width = max(len(r["what"]) for r in self.rows)
        print(f"\n| {'what':<{width}} | N | seconds | MiB/s | ratio | requests |")
        print(f"|{'-' * (width + 2)}|---|---|---|---|---|")
        for r in self.rows:
            mibs = "" if r["MiB/s"] is None else f"{r['MiB/s']:.1f}"
            ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
            req = "" if r["requests"] is None else r["requests"]
            print(f"| {r['what']:<{width}} | {r['n']} | {r['seconds']:.3f} | {mibs} | {ratio} "
                  f"| {req} |")


def setup_data(emu: EmulatorProc, args: argparse.Namespace) -> dict[str, Any]:
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
        "from_name": "Bench Sender", "text": "benchmark", "repeat": args.entries, "step": 30})
    return {"admin": admin, "rids": rids, "hour": hour["recording_id"]}


@dataclass
class Rereads:
    """First rereads of one kind: seconds and the content requests nginx logged, per mount."""

    times: dict[str, list[float]] = field(default_factory=lambda: {"rcfs": [], "rclone": []})
    requests: dict[str, int] = field(default_factory=lambda: {"rcfs": 0, "rclone": 0})

    def read(self, ctx: dict[str, Any], web: Nginx, who: str, i: int) -> None:
        """Reread file ``i`` through ``who``'s mount, after ``settle``."""
        settle()
        mark = web.mark()
        if who == "rcfs":
            self.times[who].append(dd(ctx["targets"][i]))
        else:
            self.times[who].append(dd(ctx["rclone"] / ctx["rids"][i] / "content"))
        self.requests[who] += web.requests(mark, AGENTS[who])


def cold_rows(t: Table, ctx: dict[str, Any], web: Nginx, soon: Rereads) -> float:
    """Fresh files, one per contender turn, the order rotating; returns curl's median. Files
    0, 2, 4... get their first reread right after their own cold read (into ``soon``): a
    reread seconds later, as a user replaying a file would."""
    times: dict[str, list[float]] = {c: [] for c in CONTENDERS}
    mark = web.mark()
    auth = ["-H", f"Authorization: Bearer {ctx['token']}"]
    for i in range(len(ctx["rids"])):
        k = i % len(CONTENDERS)
        for who in CONTENDERS[k:] + CONTENDERS[:k]:
            settle()  # no one's cache writes still going to disk during another's turn
            if who == "curl":
                times[who].append(timed(["curl", "-sf", "-o", "/dev/null", *auth,
                                         ctx["urls"][i]]))
            elif who == "curl-file":
                out = ctx["curl_out"] / f"{i}.wav"
                times[who].append(timed(["curl", "-sf", "-A", "curl-file/1", "-o", str(out),
                                         *auth, ctx["urls"][i]]))
                out.unlink()
            elif who == "rcfs":
                t0 = time.perf_counter()
                dd(ctx["targets"][i])
                wait_cached(ctx["targets"][i])  # its cache writes are part of the read
                times[who].append(time.perf_counter() - t0)
                wait_settled(ctx["status"])  # and its download has ended (not timed)
            elif ctx["rclone"] is not None:
                times[who].append(dd(ctx["rclone"] / ctx["rids"][i] / "content"))
            if who in ("rcfs", "rclone") and i % 2 == 0 and (
                    who == "rcfs" or ctx["rclone"] is not None):
                soon.read(ctx, web, who, i)
    n, size = len(ctx["rids"]), ctx["size"]
    curl = t.add(f"curl, cold (median of {n} files)", times["curl"], size,
                 f"{web.requests(mark, AGENTS['curl'])} for {n} files")
    t.add("curl to a file on the cache's disk (stores the bytes, as rcfs and rclone do)",
          times["curl-file"], size,
          f"{web.requests(mark, AGENTS['curl-file'])} for {n} files", ref=curl)
    t.add("rcfs cold, incl. block-cache writes", times["rcfs"], size,
          f"{web.requests(mark, AGENTS['rcfs'])} for {n} files", ref=curl)
    if times["rclone"]:
        t.add("rclone mount cold, vfs full", times["rclone"], size,
              f"{web.requests(mark, AGENTS['rclone'])} for {n} files", ref=curl)
    return curl


def reread_rows(t: Table, ctx: dict[str, Any], web: Nginx, curl: float, soon: Rereads) -> None:
    """First rereads (rcfs's from the page cache its first open filled, see the docstring):
    ``soon``, files 0, 2, 4... right after their cold read (``cold_rows``), and here files
    1, 3, 5... once every cold read is done, rcfs and rclone alternating. The page cache is
    not dropped; the rows count the content requests nginx logged during the rereads."""
    late = Rereads()
    for i in range(1, len(ctx["rids"]), 2):
        order = ("rcfs", "rclone") if i % 4 == 1 else ("rclone", "rcfs")
        for who in order:
            if who == "rcfs" or ctx["rclone"] is not None:
                late.read(ctx, web, who, i)
    for when, r in (("right after its cold read", soon), ("after all cold reads", late)):
        t.add(f"rcfs first reread, {when} (page cache not dropped)", r.times["rcfs"],
              ctx["size"], r.requests["rcfs"], ref=curl)
        if r.times["rclone"]:
            t.add(f"rclone first reread, {when} (page cache not dropped)", r.times["rclone"],
                  ctx["size"], r.requests["rclone"], ref=curl)


def warm_rows(t: Table, ctx: dict[str, Any], web: Nginx, rounds: int) -> float:
    """Page-cache rereads, interleaved with the same bytes on local disk; the order of the
    five readers rotates round by round, so none always follows the same one."""
    target, local = ctx["targets"][0], ctx["locals"][0]
    rc = None if ctx["rclone"] is None else ctx["rclone"] / ctx["rids"][0] / "content"
    for p in (target, rc, local):  # fill the page cache
        if p is not None:
            dd(p)
    readers: dict[str, Callable[[], float]] = {
        "local": lambda: dd(local), "rcfs": lambda: dd(target),
        "local_py": lambda: read_in_process(local), "rcfs_py": lambda: read_in_process(target)}
    if rc is not None:
        readers["rclone"] = lambda: dd(rc)
    names = list(readers)
    warm: dict[str, list[float]] = {k: [] for k in (*names, "rclone")}
    mark = web.mark()
    for r in range(rounds):
        k = r % len(names)
        for who in names[k:] + names[:k]:
            warm[who].append(readers[who]())
    size = ctx["size"]
    hot = t.add("local disk, page cache (dd)", warm["local"], size, None)
    hot_py = t.add("local disk, page cache (in-process)", warm["local_py"], size, None)
    t.add("rcfs warm, page cache (dd)", warm["rcfs"], size,
          web.requests(mark, AGENTS["rcfs"]), ref=hot)
    t.add("rcfs warm, page cache (in-process)", warm["rcfs_py"], size,
          web.requests(mark, AGENTS["rcfs"]), ref=hot_py)
    if warm["rclone"]:
        t.add("rclone mount warm, page cache (dd)", warm["rclone"], size,
              web.requests(mark, AGENTS["rclone"]), ref=hot)
    return hot


def dropped_rows(t: Table, ctx: dict[str, Any], web: Nginx, passthrough: Path) -> None:
    """After a remount (empty RAM), every read on a dropped page cache, rotating order.
    ``passthrough`` mounts the local copies through the smallest pyfuse3 filesystem
    (``scripts/passthrough_fs.py``): what FUSE in Python costs before any of rcfs's work."""
    dropped = IS_ROOT
    note = "page cache dropped" if dropped else "page cache NOT dropped (not root)"
    names = ("local", "passthrough", "rcfs", "rclone")
    times: dict[str, list[float]] = {who: [] for who in names}
    mark = web.mark()
    for i, rid in enumerate(ctx["rids"]):
        local = ctx["locals"][i]
        paths = {"local": local, "passthrough": passthrough / local.name,
                 "rcfs": ctx["targets"][i],
                 "rclone": None if ctx["rclone"] is None else ctx["rclone"] / rid / "content"}
        k = i % len(names)
        for who in names[k:] + names[:k]:
            path = paths[who]
            if path is not None:
                drop_caches()
                times[who].append(dd(path))
    size = ctx["size"]
    ref = t.add(f"local disk, {note} (dd)", times["local"], size, None)
    t.add(f"same files through a minimal pyfuse3 passthrough, {note}", times["passthrough"],
          size, None, ref=ref)
    t.add(f"rcfs after remount, block cache, {note}", times["rcfs"], size,
          web.requests(mark, AGENTS["rcfs"]), ref=ref)
    if times["rclone"]:
        t.add(f"rclone after remount, vfs cache, {note}", times["rclone"], size,
              web.requests(mark, AGENTS["rclone"]), ref=ref)


def tool_rows(t: Table, ctx: dict[str, Any], web: Nginx, folder: Path) -> None:
    texts = find(folder, "Texts/+14155559999*")
    ls_cold = timed(["ls", "-l", str(texts)])
    ls_warm = [timed(["ls", "-l", str(texts)]) for _ in range(5)]
    n = len(os.listdir(texts))
    t.add(f"ls -l {n} entries, first", [ls_cold], None, 0)
    t.add(f"ls -l {n} entries, warm", ls_warm, None, 0)
    hour_file = find(folder, f"Recordings/*/*[[]{ctx['hour']}].wav")
    mark = web.mark()
    t_probe = timed(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                     str(hour_file)])
    t_seek = timed(["ffmpeg", "-v", "error", "-ss", "1800", "-t", "5", "-i", str(hour_file),
                    "-f", "null", "-"])
    wait_settled(ctx["status"])  # the download goes on into the cache; nginx logs it at its end
    t.add("ffprobe + seek 1800 s, 1 h wav", [t_probe + t_seek], None,
          web.requests(mark, AGENTS["rcfs"]))


def run(args: argparse.Namespace, work: Path) -> Table:
    t = Table()
    t.header.append(f"{benchlib.run_header()}; {args.files} fresh files of {args.size_mib} "
                    f"MiB, {args.rounds} warm rounds{'' if IS_ROOT else '; NOT root'}")
    media = work / "media"
    media.mkdir()
    with Nginx(media, work / "nginx") as web, EmulatorProc(
            "--data-seed", "1", "--set", 'recording_format="wav"', "--media-origin", web.url,
            "--media-dir", str(media), *GENEROUS_LIMITS, check_openapi=False) as emu:
        ctx = setup_data(emu, args)
        ra = [] if args.read_ahead_kib is None else ["--read-ahead-kib",
                                                      str(args.read_ahead_kib)]
        # The origin is rcfs's configured media server: its token goes there and nowhere
        # else (docs/ringcentral.md §1.1; rcfs/api/transport.py refuses other origins).
        mnt = Mounted(emu, work / "rcfs", refresh_interval=60, args=ra, media_server=web.url)
        mnt.start()
        rclone_mp = work / "rclone"
        try:
            mnt.wait_loaded()
            acc = emu.info["account_id"]
            folder = mnt.folder(ctx["admin"])
            # The call log is read only while Recordings is looked at: list it, so the
            # emulator hands out the content URIs (and writes the files into nginx's root).
            ctx["targets"] = [find(folder, f"Recordings/*/*[[]{rid}].wav")
                              for rid in ctx["rids"]]
            base = f"/restapi/v1.0/account/{acc}/recording"
            ctx["urls"] = [f"{web.url}{base}/{rid}/content" for rid in ctx["rids"]]
            (work / "local").mkdir()
            ctx["curl_out"] = work / "curl-out"  # beside rcfs's cache: the same disk
            ctx["curl_out"].mkdir()
            ctx["locals"] = []
            for rid in ctx["rids"]:  # the same bytes on local disk, the reference
                ctx["locals"].append(work / "local" / f"{rid}.wav")
                shutil.copyfile(media / base.lstrip("/") / rid / "content", ctx["locals"][-1])
            ctx["size"] = ctx["locals"][0].stat().st_size
            ctx["token"] = emu.token(ctx["admin"])
            ctx["status"] = mnt.mountpoint / ".rcfs" / "status.json"
            ra_kib = read_ahead_kib(mnt.mountpoint)  # what rcfs got; the others get it too
            with contextlib.ExitStack() as stack:
                ctx["rclone"] = None
                if have("rclone"):
                    ctx["rclone"] = stack.enter_context(rclone_mount(
                        f"{web.url}{base}/", rclone_mp, work / "rclone-cache", ra_kib))
                else:
                    print("rclone is not installed: its rows are missing", file=sys.stderr)
                t.header += read_ahead_header(
                    {"rcfs": mnt.mountpoint, "rclone": rclone_mp} if ctx["rclone"]
                    else {"rcfs": mnt.mountpoint})
                soon = Rereads()
                curl = cold_rows(t, ctx, web, soon)
                reread_rows(t, ctx, web, curl, soon)
                warm_rows(t, ctx, web, args.rounds)
                tool_rows(t, ctx, web, folder)
            mnt.unmount()
            mnt.start()
            with contextlib.ExitStack() as stack:
                if ctx["rclone"] is not None:
                    stack.enter_context(rclone_mount(f"{web.url}{base}/", rclone_mp,
                                                     work / "rclone-cache", ra_kib))
                ctx["targets"] = [find(folder, f"Recordings/*/*[[]{rid}].wav")
                                  for rid in ctx["rids"]]
                passthrough = stack.enter_context(benchlib.passthrough_mount(
                    work / "local", work / "passthrough", ra_kib))
                mounts = {"rcfs": mnt.mountpoint, "passthrough": passthrough}
                if ctx["rclone"] is not None:
                    mounts["rclone"] = rclone_mp
                t.header += [f"after the remount: {line}"
                             for line in read_ahead_header(mounts)]
                dropped_rows(t, ctx, web, passthrough)
        finally:
            mnt.unmount()
    return t


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--files", type=int, default=6,
                    help="fresh files read cold by each contender (N of the medians)")
    ap.add_argument("--rounds", type=int, default=10, help="interleaved warm-read rounds")
    ap.add_argument("--entries", type=int, default=10000)
    ap.add_argument("--read-ahead-kib", type=int, default=None,
                    help="rcfs's read_ahead_kib (0: the kernel's 128 KiB, as for a non-root "
                         "user; default: rcfs's default); rclone's mount and the passthrough "
                         "get the value rcfs's mount got")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON too")
    ap.add_argument("--no-warm", action="store_true",
                    help="do not warm fresh memory before timed reads (benchlib.warm_memory)")
    args = ap.parse_args()
    if args.no_warm:
        benchlib.WARM_MIB = 0
    if not have("nginx"):
        print("nginx is not installed (scripts/bench installs it)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="rcfs-bench-"))
    work.chmod(0o755)  # nginx's workers (user nobody) read the media folder
    try:
        t = run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    t.print()
    print("\nratio: reference time / this time; > 1 is faster than the reference. Cold and "
          "first-reread rows against curl's cold median (same nginx, same run), and so is "
          "curl to a file; warm rows against local disk from the page cache (dd against dd, "
          "in-process against in-process); after-remount rows and the passthrough row "
          "against local disk with the page cache dropped. "
          "requests: content requests nginx logged for that client, in total.")
    if WARM_RATES:
        print(f"\nfresh memory before timed reads: {len(WARM_RATES)} warm-ups of "
              f"{benchlib.WARM_MIB} MiB ran at {min(WARM_RATES):.0f}-{max(WARM_RATES):.0f} "
              f"MiB/s (median {median(WARM_RATES):.0f}); see benchlib.warm_memory")
    else:
        print("\nfresh memory was not warmed before timed reads (--no-warm)")
    if args.json:
        print(json.dumps(t.rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
