"""rcfs at RingCentral's real limits (issue 10): default counts AND the real 60 s window and
penalty (the emulator's defaults), each scenario on a fresh emulator and a fresh mount.

* ``rsync-mailbox``: ``rsync -a`` of a mailbox's Voicemail and Fax folders, never opened;
* ``rsync-recordings``: ``rsync -a`` of a Recordings folder with 20 recordings;
* ``mpv-during-bulk``: ``cp -r`` of 20 uncached recordings started first, then ``mpv
  --length=3`` of another uncached recording: seconds until mpv plays, and the copy;
* ``idle``: requests per group spent by mounting and then ``--idle-minutes`` (10) of nothing.
  rcfs's timers run on real time (trio's clock), so this one waits in real time; it runs in
  parallel with the others (its own emulator and mount).

Every copy is compared byte for byte with what the emulator serves (its admin API, outside
the rate limits). The budget floor is the earliest the needed requests could all be sent
under the group's sliding window, given what the mount had already spent in the window when
the copy started (one request per file). Prints one JSON object per scenario and a Markdown
table; ``--json-out`` keeps the objects.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.emulator_proc import EmulatorProc, api_client  # noqa: E402
from tests.mount_helper import (  # noqa: E402
    Mounted,
    expected_bytes,
    files_under,
    messages_of,
)

LIMITS = {"Light": 50, "Medium": 40, "Heavy": 10, "Auth": 5}  # RingCentral's defaults


def floor_seconds(prior: list[float], start: float, n: int, limit: int, window: float) -> float:
    """Seconds after ``start`` at which the n-th of ``n`` new requests can be sent at the
    earliest, with ``prior`` requests of the group already in the sliding window."""
    sent = sorted(t for t in prior if t > start - window)
    t = start
    for _ in range(n):
        while True:
            recent = [s for s in sent if s > t - window]
            if len(recent) < limit:
                break
            t = recent[0] + window
        sent.append(t)
    return t - start


@contextmanager
def world(workdir: Path, window: float, **config: Any) -> Iterator[tuple[EmulatorProc, Mounted]]:
    args = ["--data-seed", "1"]
    if window != 60:
        args += ["--window", str(window), "--penalty", str(window)]
    with EmulatorProc(*args, check_openapi=False) as emu:
        m = Mounted(emu, workdir, refresh_interval=60, **config)
        try:
            m.start(timeout=300)
            m.wait_loaded(timeout=600)
            yield emu, m
        finally:
            m.unmount()


def group_times(emu: EmulatorProc, group: str) -> list[float]:
    return [float(e["time"]) for e in emu.requests()
            if e["group"] == group and e["status"] != 429]


def summarize(entries: list[dict[str, Any]]) -> dict[str, Any]:
    groups: dict[str, int] = {}
    for e in entries:
        groups[e["group"]] = groups.get(e["group"], 0) + 1
    return {"requests_by_group": groups,
            "content_requests": sum(1 for e in entries if "/content" in e["path"]),
            "throttled_429": sum(1 for e in entries if e["status"] == 429)}


def compare(emu: EmulatorProc, sources: list[tuple[Path, Path]],
            messages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Byte-exact check of copies: (file on the mount, its copy)."""
    exact, wrong = 0, []
    for src, dst in sources:
        want = expected_bytes(emu, src, messages)
        got = dst.read_bytes() if dst.exists() else None
        if got == want:
            exact += 1
        else:
            wrong.append(f"{src.name}: {'missing' if got is None else len(got)} of {len(want)}")
    return {"files": len(sources), "exact": exact, "wrong": wrong[:10],
            "bytes": sum(s.stat().st_size for s, _ in sources)}


def all_messages(emu: EmulatorProc) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    with api_client(emu) as rest:
        for user in emu.info["users"]:
            out.update({str(m["id"]): m for m in messages_of(rest, user["extension_id"])})
    return out


def copy_run(emu: EmulatorProc, cmd: list[str], group: str, n_needed: int, window: float
             ) -> dict[str, Any]:
    start_seq = (emu.requests() or [{"seq": -1}])[-1]["seq"] + 1
    prior = group_times(emu, group)
    t0 = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=False)
    wall = time.time() - t0
    floor = floor_seconds(prior, t0, n_needed, LIMITS[group], window)
    return {"command": " ".join(cmd[:2]) + " ...", "exit": res.returncode,
            "stderr_lines": len(res.stderr.splitlines()), "stderr": res.stderr[-800:],
            "wall_s": round(wall, 1), "floor_s": round(floor, 1),
            "ratio": round(wall / floor, 2) if floor > 0 else None,
            **summarize(emu.requests(start_seq))}


def by_mailbox(m: Mounted, number: str) -> Path:
    return next(p for p in m.root.iterdir() if p.name.startswith(number + " "))


def rsync_mailbox(workdir: Path, window: float) -> dict[str, Any]:
    with world(workdir / "w", window) as (emu, m):
        mailbox = m.folder()
        sources = [mailbox / "Voicemail", mailbox / "Fax"]
        dest = workdir / "dest"
        dest.mkdir()
        files = [p for s in sources for p in files_under(s)]
        out = copy_run(emu, ["rsync", "-a", *map(str, sources), str(dest)], "Medium",
                       len(files), window)
        pairs = [(p, dest / p.relative_to(mailbox)) for p in files]
        out["copy"] = compare(emu, pairs, all_messages(emu))
        out["what"] = f"rsync -a {mailbox.name}/Voicemail + Fax ({len(files)} files)"
        return out


def rsync_recordings(workdir: Path, window: float) -> dict[str, Any]:
    with world(workdir / "w", window) as (emu, m):
        folder = by_mailbox(m, "104") / "Recordings"
        files = list(files_under(folder))[:20]
        dest = workdir / "dest"
        dest.mkdir()
        out = copy_run(emu, ["rsync", "-a", *map(str, files), str(dest)], "Heavy",
                       len(files), window)
        out["copy"] = compare(emu, [(p, dest / p.name) for p in files], {})
        out["what"] = f"rsync -a of {len(files)} recordings"
        return out


def mpv_during_bulk(workdir: Path, window: float) -> dict[str, Any]:
    with world(workdir / "w", window) as (emu, m):
        files = list(files_under(by_mailbox(m, "104") / "Recordings"))[:20]
        clicked = next(iter(files_under(by_mailbox(m, "103") / "Recordings")))
        dest = workdir / "dest"
        dest.mkdir()
        start_seq = (emu.requests() or [{"seq": -1}])[-1]["seq"] + 1
        prior = group_times(emu, "Heavy")
        t0 = time.time()
        cp = subprocess.Popen(["cp", "-t", str(dest), *map(str, files)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while not any(e["group"] == "Heavy" for e in emu.requests(start_seq)):
                if time.monotonic() > deadline or cp.poll() is not None:
                    break
                time.sleep(0.05)
            clicked_at = time.time()
            started, mpv_exit = play(clicked)
            _, cp_err = cp.communicate(timeout=3600)
        finally:
            if cp.poll() is None:
                cp.kill()
            cp.wait(10)
            if cp.stderr is not None:
                cp.stderr.close()
        wall = time.time() - t0
        floor = floor_seconds(prior, t0, len(files) + 1, LIMITS["Heavy"], window)
        return {"what": f"cp of {len(files)} recordings, mpv --length=3 of another",
                "mpv_start_s": None if started is None else round(started, 1),
                "mpv_exit": mpv_exit, "mpv_clicked_after_s": round(clicked_at - t0, 1),
                "cp_exit": cp.returncode, "cp_stderr": cp_err[-800:],
                "wall_s": round(wall, 1), "floor_s": round(floor, 1),
                "ratio": round(wall / floor, 2) if floor > 0 else None,
                **summarize(emu.requests(start_seq)),
                "copy": compare(emu, [(p, dest / p.name) for p in files], {})}


def play(path: Path) -> tuple[float | None, int]:
    """mpv --length=3 of ``path``: seconds until it plays (None if never), exit status."""
    cmd = ["mpv", "--no-config", "--ao=null", "--vo=null", "--length=3",
           "--msg-level=all=error,term-msg=info", "--term-playing-msg=PLAYING"]
    start = time.monotonic()
    started = None
    with subprocess.Popen([*cmd, str(path)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if started is None and line.startswith("PLAYING"):
                started = time.monotonic() - start
        return started, proc.wait(600)


def idle(workdir: Path, window: float, minutes: float) -> dict[str, Any]:
    with world(workdir / "w", window) as (emu, m):
        loaded = summarize(emu.requests())
        seq = emu.requests()[-1]["seq"] + 1
        t0 = time.monotonic()
        time.sleep(minutes * 60)
        during = summarize(emu.requests(seq))
        return {"what": f"mount + {minutes:g} idle minutes",
                "mount_until_loaded": loaded, "idle": during,
                "idle_s": round(time.monotonic() - t0), "total": summarize(emu.requests())}


SCENARIOS = ("rsync-mailbox", "rsync-recordings", "mpv-during-bulk", "idle")


def table(results: dict[str, dict[str, Any]], window: float) -> str:
    def groups(d: dict[str, int]) -> str:
        return ", ".join(f"{g} {n}" for g, n in sorted(d.items())) or "0"

    rows = ["| scenario | wall s | floor s | wall/floor | requests by group | 429s | exact |",
            "|---|---|---|---|---|---|---|"]
    for name in SCENARIOS:
        r = results.get(name)
        if r is None:
            continue
        if name == "idle":
            mount = r["mount_until_loaded"]
            rows.append(f"| {r['what']}: mount | | | | {groups(mount['requests_by_group'])} | "
                        f"{mount['throttled_429']} | |")
            rows.append(f"| {r['what']}: idle | {r['idle_s']} | | | "
                        f"{groups(r['idle']['requests_by_group'])} | "
                        f"{r['idle']['throttled_429']} | |")
            continue
        what = r["what"]
        if name == "mpv-during-bulk":
            what += f" (mpv plays after {r['mpv_start_s']} s, exit {r['mpv_exit']})"
        rows.append(f"| {what} | {r['wall_s']} | {r['floor_s']} | {r['ratio']} | "
                    f"{groups(r['requests_by_group'])} | {r['throttled_429']} | "
                    f"{r['copy']['exact']}/{r['copy']['files']} |")
    return "\n".join(rows) + f"\n\nwindow {window:g} s\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", choices=SCENARIOS, default=list(SCENARIOS))
    ap.add_argument("--idle-minutes", type=float, default=10.0)
    ap.add_argument("--window", type=float, default=60.0,
                    help="rate-limit window and penalty; 60 is RingCentral's (the point of "
                         "this benchmark); smaller only for a quick trial of the script")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args()
    results: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="rcfs-bench-limits-") as tmp:
        base = Path(tmp)

        def run(name: str) -> None:
            work = base / name
            work.mkdir()
            try:
                if name == "idle":
                    results[name] = idle(work, args.window, args.idle_minutes)
                else:
                    results[name] = {"rsync-mailbox": rsync_mailbox,
                                     "rsync-recordings": rsync_recordings,
                                     "mpv-during-bulk": mpv_during_bulk}[name](work, args.window)
            except Exception as exc:  # reported; the other scenarios go on
                errors[name] = f"{type(exc).__name__}: {exc}"
            print(json.dumps({name: results.get(name) or errors.get(name)}), flush=True)

        idler = None
        if "idle" in args.only:
            idler = threading.Thread(target=run, args=("idle",))
            idler.start()
        for name in args.only:
            if name != "idle":
                run(name)
        if idler is not None:
            idler.join()
    if args.json_out:
        args.json_out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                   time.gmtime()),
                                             "window": args.window, "results": results,
                                             "errors": errors}, indent=1) + "\n")
    print(table(results, args.window))
    for name, err in errors.items():
        print(f"{name}: FAILED {err}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
