"""The desktop tour (issue 10; not CI): Nautilus on an ``rcfs demo`` mount at RingCentral's
default limits (real 60 s windows), in a virtual X server. It opens a Fax month, a Texts
conversation and a Recordings month in icon view, waits until the folder is quiet
(thumbnails made or refused, no request for a while), saves a PNG screenshot of each, and
writes what each folder cost: requests per rate-limit group (the emulator's request log) and
opens per reader class, waits and thumbnail counters (rcfs's status.json).

Run through ``scripts/desktop-tour`` (it provides Xvfb and a D-Bus session). Every process
the tour starts carries ``RCFS_DESKTOP_TOUR=<token>`` in its environment and is ended by
PID at the end, including the session services D-Bus activates for Nautilus.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
# scripts/desktop-tour sets it before starting D-Bus, so the services the session bus
# activates (gvfsd, tracker, ...) carry it too.
TOKEN = os.environ.get("RCFS_DESKTOP_TOUR") or uuid.uuid4().hex


def session_env(home: Path) -> dict[str, str]:
    for sub in ("cache", "config", "data", "run"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    (home / "run").chmod(0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env.update({
        "HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data"),
        "XDG_RUNTIME_DIR": str(home / "run"), "GSETTINGS_BACKEND": "memory",
        "GSK_RENDERER": "cairo", "NO_AT_BRIDGE": "1", "GTK_A11Y": "none",
        "LC_ALL": "C.UTF-8", "RCFS_DESKTOP_TOUR": TOKEN,
    })
    return env


def parent_of(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def ancestors(pid: int) -> set[int]:
    out = set()
    while pid > 1:
        out.add(pid)
        pid = parent_of(pid)
    return out


def tour_pids(keep: int | None = None) -> list[int]:
    """Processes started by this tour (they carry its token), except this process, its
    ancestors (the D-Bus session wrapper) and ``keep`` with its descendants."""
    mine = f"RCFS_DESKTOP_TOUR={TOKEN}".encode()
    skip = ancestors(os.getpid())
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        if keep is not None and keep in ancestors(int(entry.name)):
            continue
        try:
            if mine in (entry / "environ").read_bytes().split(b"\0"):
                out.append(int(entry.name))
        except OSError:
            continue
    return out


def end_processes(pids: list[int], grace: float = 5.0) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
        time.sleep(0.1)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Demo:
    """``rcfs demo`` (emulator at default limits + mount) as a child process."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.mountpoint = workdir / "RingCentral-demo"
        self.port_file = workdir / "emulator.json"
        self.log = open(workdir / "demo.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rcfs.cli", "demo", str(self.mountpoint),
             "--port-file", str(self.port_file)],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 90
        while not (self.port_file.exists() and self.status_path.exists()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rcfs demo did not come up; see {self.log.name}")
            time.sleep(0.2)
        info = json.loads(self.port_file.read_text())
        self.admin = httpx.Client(base_url=info["admin_url"], timeout=30,
                                  verify=info.get("ca_cert") or True)

    @property
    def status_path(self) -> Path:
        return self.mountpoint / ".rcfs" / "status.json"

    def status(self) -> dict[str, Any]:
        return json.loads(self.status_path.read_text())  # type: ignore[no-any-return]

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        r = self.admin.get("/_emulator/requests", params={"since": since})
        r.raise_for_status()
        return r.json()  # type: ignore[no-any-return]

    def next_seq(self) -> int:
        entries = self.requests()
        return entries[-1]["seq"] + 1 if entries else 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # the demo unmounts on Ctrl-C
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if str(self.mountpoint) in Path("/proc/mounts").read_text():
            subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], check=False)
        self.log.close()


def pick_folders(root: Path) -> dict[str, Path]:
    """The demo admin's Fax month, Texts conversation and Recordings month with the most
    pictures/files, so the screenshots show something."""
    mailbox = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))[0]

    def richest(area: str, score: Any) -> Path:
        folders = [p for p in (mailbox / area).iterdir() if p.is_dir()]
        return max(folders, key=lambda p: (score(p), p.name))

    def count(p: Path) -> int:
        return sum(1 for _ in p.iterdir())

    def pictures(p: Path) -> int:
        return sum(1 for f in p.iterdir() if f.suffix in (".jpg", ".png", ".gif"))

    return {"fax-month": richest("Fax", count), "texts-conversation": richest("Texts", pictures),
            "recordings-month": richest("Recordings", count)}


def delta(after: Any, before: Any) -> Any:
    """after - before for the numbers of two status.json fragments."""
    if isinstance(after, dict):
        return {k: delta(v, before.get(k) if isinstance(before, dict) else None)
                for k, v in after.items() if isinstance(v, int | float | dict)}
    if isinstance(after, int | float) and not isinstance(after, bool):
        return round(after - (before if isinstance(before, int | float) else 0), 3)
    return after


def visit(demo: Demo, folder: Path, name: str, env: dict[str, str], out: Path,
          quiet_s: float, max_s: float) -> dict[str, Any]:
    seq = demo.next_seq()
    before = demo.status()
    thumbs = Path(env["XDG_CACHE_HOME"]) / "thumbnails"
    known = set(thumbs.glob("*/*.png")) | set(thumbs.glob("fail/*/*.png"))
    started = time.monotonic()
    nautilus = subprocess.Popen(["nautilus", "--new-window", str(folder)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last_change, seen = time.monotonic(), -1
    while True:  # quiet: no new request for quiet_s and nobody waiting, or max_s
        time.sleep(1)
        entries = demo.requests(seq)
        waiting = demo.status().get("readers", {}).get("waiting", [])
        if len(entries) != seen or waiting:
            seen, last_change = len(entries), time.monotonic()
        now = time.monotonic()
        if (now - last_change >= quiet_s and now - started >= 8) or now - started >= max_s:
            break
    shot = out / f"{name}.png"
    # Nautilus 43 opens its first window at 890x550 in the top-left corner (no window manager).
    subprocess.run(["scrot", "--overwrite", "--autoselect", "0,0,890,550", str(shot)],
                   env=env, check=True, timeout=30)
    subprocess.run(["nautilus", "-q"], env=env, check=False, timeout=30)
    try:
        nautilus.wait(15)
    except subprocess.TimeoutExpired:
        nautilus.kill()
        nautilus.wait(5)
    after = demo.status()
    entries = demo.requests(seq)
    groups: dict[str, int] = {}
    for e in entries:
        groups[e["group"]] = groups.get(e["group"], 0) + 1
    return {
        "folder": str(folder.relative_to(demo.mountpoint)),
        "screenshot": shot.name,
        "seconds": round(time.monotonic() - started, 1),
        "requests_by_group": groups,
        "content_requests": sum(1 for e in entries if "/content" in e["path"]),
        "throttled_429": sum(1 for e in entries if e["status"] == 429),
        "readers": delta(after.get("readers", {}), before.get("readers", {})) or "n/a",
        "scheduler_sent": {g: v.get("sent", 0) - before.get("requests", {}).get(g, {})
                           .get("sent", 0) for g, v in after.get("requests", {}).items()},
        "thumbnails_made": sum(1 for p in thumbs.glob("*/*.png") if p not in known),
        "thumbnails_failed": sum(1 for p in thumbs.glob("fail/*/*.png") if p not in known),
    }


def remove_sandbox_leftovers(workdir: Path) -> None:
    """The factory's /tmp/gnome-desktop-thumbnailer-XXXXXX folders holding our cache path
    (bwrap creates the GStreamer cache's mount point inside them when the cache is under
    /tmp, as the tour's is, and gnome-desktop cannot remove them then)."""
    if not str(workdir).startswith("/tmp/"):
        return
    rel = workdir.relative_to("/tmp")
    for leftover in Path("/tmp").glob("gnome-desktop-thumbnailer-*"):
        if (leftover / rel).exists():
            shutil.rmtree(leftover, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "desktop-tour-out")
    ap.add_argument("--quiet", type=float, default=10.0,
                    help="a folder is done after this many seconds without a request")
    ap.add_argument("--max", type=float, default=150.0, help="longest wait per folder")
    args = ap.parse_args()
    for tool in ("nautilus", "scrot"):
        if shutil.which(tool) is None:
            print(f"desktop-tour: {tool} is missing (scripts/bootstrap installs it)",
                  file=sys.stderr)
            return 2
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="rcfs-tour-"))
    env = session_env(workdir / "home")
    demo = None
    try:
        demo = Demo(workdir, env)
        mounted = time.monotonic()
        while not all(e.get("loaded") for e in demo.status().get("extensions", {}).values()):
            if time.monotonic() - mounted > 120:
                raise RuntimeError("the demo account did not load within 120 s")
            time.sleep(0.5)
        mount_groups: dict[str, int] = {}
        for e in demo.requests():
            mount_groups[e["group"]] = mount_groups.get(e["group"], 0) + 1
        folders: dict[str, Any] = {}
        for name, folder in pick_folders(demo.mountpoint).items():
            print(f"desktop-tour: {name}: {folder}", file=sys.stderr)
            folders[name] = visit(demo, folder, name, env, args.out, args.quiet, args.max)
            print(json.dumps(folders[name], indent=1), file=sys.stderr)
        results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                   "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                            capture_output=True, text=True).stdout.strip(),
                   "mount_requests_by_group": mount_groups, "folders": folders}
        (args.out / "summary.json").write_text(json.dumps(results, indent=1) + "\n")
        print(f"desktop-tour: screenshots and summary.json in {args.out}", file=sys.stderr)
        return 0
    finally:
        end_processes(tour_pids(keep=demo.proc.pid if demo is not None else None))
        if demo is not None:
            demo.stop()
        end_processes(tour_pids())
        remove_sandbox_leftovers(workdir)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
