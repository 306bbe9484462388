#!/usr/bin/env python3
"""Soak: a bounded mixed workload on a real mount at RingCentral's default request counts
(windows and penalties scaled to 6 s), for ``--minutes``, in phases.

During a phase: reader threads read whole files and seek-read 64 KiB slices of voicemails,
faxes and recordings (every ``pread`` timed); a sender queues texts and faxes through the
outbox; a refresher adds messages on the server and lists folders; random content and send
faults fire (seeded). Every ``--remount-every`` seconds the rcfs process gets kill -9 and the
mount comes back with the same cache and state.

After each phase (faults cleared): every file read so far is read again through the mount
(from its cache) and compared with the emulator's bytes, and every send is counted in the
emulator's ``/_emulator/sent`` once it is final: wrong bytes, duplicate or lost sends and
reads slower than the read deadline must all be 0. The summary (JSON) also gives the
operations done, faults injected and the mount's RSS at start and end.

Not a test (its 2-minute variant is tests/mount/test_mount_soak.py): run ``scripts/soak``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import json
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.emulator_proc import EmulatorProc, api_client  # noqa: E402
from tests.mount_helper import Mounted, expected_bytes, files_under, messages_of  # noqa: E402
from tests.outbox_support import FAST_CLOCKS, FAST_CONFIG, pdf  # noqa: E402

READ_TIMEOUT = 10.0  # the mount's read deadline
SLACK = 10.0  # a read slower than READ_TIMEOUT + SLACK is a hang
ALLOWED_ERRNOS = {errno.EAGAIN, errno.EIO}  # the README's table for opens and reads
STORE_LAG = 2.0  # the emulator's message-store lag behind sends
CONTENT_FAULTS: list[dict[str, Any]] = [
    {"kind": "reset"}, {"kind": "short206"}, {"kind": "ignore_range"},
    {"kind": "partial_200"}, {"kind": "no_length"}, {"kind": "lie_length"},
    {"kind": "bandwidth", "bytes_per_second": 2 << 20}, {"kind": "delay", "seconds": 1.5},
    {"kind": "status", "status": 429, "retry_after": 2}, {"kind": "status", "status": 500},
    {"kind": "status", "status": 503, "retry_after": 1}, {"kind": "revoke"},
]
SEND_FAULTS: list[dict[str, Any]] = [
    {"kind": "reset_response"}, {"kind": "reset_request"},
    {"kind": "status", "status": 503, "retry_after": 1},
    {"kind": "status", "status": 429, "retry_after": 2}, {"kind": "status", "status": 500},
    {"kind": "delay", "seconds": 3.0},
]


@dataclass
class Figures:
    ops: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    wrong_bytes: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    slowest_read: float = 0.0
    faults_injected: int = 0
    kills: int = 0
    phases: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, op: str, n: int = 1) -> None:
        with self.lock:
            self.ops[op] += n


@dataclass
class Send:
    kind: str  # "sms" | "fax"
    number: str
    name: str
    marker: str  # the text, or the sha256 of the fax document


class Soak:
    def __init__(self, workdir: Path, minutes: float, phase_s: float, remount_every: float,
                 seed: int, readers: int) -> None:
        self.workdir = workdir
        self.deadline = time.monotonic() + minutes * 60
        self.minutes = minutes
        self.phase_s = phase_s
        self.remount_every = remount_every
        self.rng = random.Random(seed)
        self.readers = readers
        self.fig = Figures()
        self.sends: list[Send] = []
        self.read_files: set[Path] = set()
        self.expected_dir = workdir / "expected"
        self.expected_dir.mkdir()
        (workdir / "emu").mkdir()
        self.emu = EmulatorProc("--data-seed", "1", "--window", "6", "--penalty", "6",
                                *FAST_CLOCKS, "--set", f"message_store_lag={STORE_LAG}",
                                workdir=workdir / "emu",
                                check_openapi=False)
        self.mnt = Mounted(self.emu, workdir / "mount", refresh_interval=5.0,
                           read_timeout=READ_TIMEOUT, timezone="UTC",
                           **{**FAST_CONFIG, "outbox_settle_time": 2 * STORE_LAG})
        self.messages: dict[str, dict[str, Any]] = {}
        self.files: list[Path] = []
        self.rss: list[int] = []
        # Voicemails the refresher added on the server: id -> None until the mount lists it.
        self.new_voicemails: dict[str, Path | None] = {}
        self.added_bytes: dict[Path, bytes] = {}
        # Bumped when a kill -9 starts and when the mount is back: an operation that spans
        # a change met a dead mount, which is the point, not a fault of rcfs.
        self.generation = 0
        self.content_requests = 0
        self.up = threading.Event()
        self.up.set()

    # -- setup ------------------------------------------------------------------------------

    def start(self) -> None:
        self.mnt.start()
        self.mnt.wait_loaded()
        with api_client(self.emu) as rc:
            for user in self.emu.info["users"]:
                for msg in messages_of(rc, user["extension_id"]):
                    self.messages[str(msg["id"])] = msg
        for path in files_under(self.mnt.root):
            area = path.parent.parent.name
            m = re.search(r"\[(\d+)\]", path.name)
            if area == "Recordings" or (area in ("Voicemail", "Fax") and m
                                        and m.group(1) in self.messages):
                self.files.append(path)
        self.rss.append(self.rss_kib())

    def rss_kib(self) -> int:
        assert self.mnt.proc is not None
        with open(f"/proc/{self.mnt.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def expected(self, path: Path) -> Path:
        key = hashlib.sha256(str(path.relative_to(self.mnt.root)).encode()).hexdigest()[:24]
        out = self.expected_dir / key
        if not out.exists():
            data = self.added_bytes.get(path)
            out.write_bytes(data if data is not None
                            else expected_bytes(self.emu, path, self.messages))
        return out

    # -- workload ---------------------------------------------------------------------------

    def timed_pread(self, fd: int, size: int, off: int, what: str) -> bytes:
        started = time.monotonic()
        try:
            return os.pread(fd, size, off)
        finally:
            took = time.monotonic() - started
            with self.fig.lock:
                self.fig.slowest_read = max(self.fig.slowest_read, took)
                if took > READ_TIMEOUT + SLACK:
                    self.fig.hangs.append(f"{what} at {off}: {took:.1f}s")

    def read_one(self, rng: random.Random, stop: float) -> None:
        self.up.wait()
        gen = self.generation
        added = [p for p in self.new_voicemails.values() if p is not None]
        path = rng.choice(added[-5:] if added and rng.random() < 0.3 else self.files)
        want_path = self.expected(path)
        size = want_path.stat().st_size
        seek = rng.random() < 0.4 and size > 65536
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            self.fig.errors[f"open {errno.errorcode.get(exc.errno or 0)}"] += 1
            if gen == self.generation and exc.errno not in ALLOWED_ERRNOS:
                self.fig.wrong_bytes.append(f"open {path.name}: {exc}")
            return
        try:
            with open(want_path, "rb") as want:
                if seek:
                    off = rng.randrange(0, size - 1)
                    data = self.timed_pread(fd, 65536, off, path.name)
                    want.seek(off)
                    good = want.read(65536)
                    self.fig.count("seek reads")
                else:
                    off, chunks = 0, []
                    while True:
                        chunk = self.timed_pread(fd, 1 << 17, off, path.name)
                        if not chunk:
                            break
                        chunks.append(chunk)
                        off += len(chunk)
                    data = b"".join(chunks)
                    good = want.read()
                    self.fig.count("whole reads")
                if data != good and gen != self.generation:
                    self.fig.count("reads cut by kill -9")
                elif data != good:
                    self.fig.wrong_bytes.append(f"{path.name}: {len(data)} vs {len(good)} bytes"
                                                f" ({'seek' if seek else 'whole'})")
                else:
                    with self.fig.lock:
                        self.read_files.add(path)
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
            self.fig.errors[f"read {name}"] += 1
            if exc.errno not in ALLOWED_ERRNOS and gen == self.generation:
                self.fig.wrong_bytes.append(f"{path.name}: unexpected {name}")
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)

    def reader(self, seed: int, stop: float) -> None:
        rng = random.Random(seed)
        while time.monotonic() < stop:
            self.read_one(rng, stop)

    def send_one(self, rng: random.Random, n: int) -> None:
        ob = self.mnt.folder() / "Outbox"
        if rng.random() < 0.75:
            kind, channel = "sms", "Text"
            number = f"+1415555{rng.randrange(400, 420):04d}"
            name = f"soak-{n:05d}.txt"
            body = f"soak text {n} {rng.random():.6f}".encode()
            marker = body.decode()
        else:
            kind, channel = "fax", "Fax"
            number = f"+1212555{rng.randrange(400, 410):04d}"
            name = f"soak-{n:05d}.pdf"
            body = pdf(1, f"soak {n} {rng.random():.6f}")
            marker = hashlib.sha256(body).hexdigest()
        rdir = ob / channel / number
        with contextlib.suppress(FileExistsError):
            rdir.mkdir()
        tmp = rdir / f".{name}"
        tmp.write_bytes(body)
        os.rename(tmp, rdir / name)  # like rsync: one job, sent after the rename
        self.sends.append(Send(kind, number, name, marker))
        self.fig.count(f"{kind} sends")

    def sender(self, stop: float) -> None:
        rng = random.Random(self.rng.random())
        while time.monotonic() < stop:
            self.up.wait()
            try:
                self.send_one(rng, len(self.sends))
            except OSError as exc:
                self.fig.errors[f"send {errno.errorcode.get(exc.errno or 0)}"] += 1
            time.sleep(rng.uniform(1.0, 3.0))

    def refresher(self, stop: float) -> None:
        """New texts and voicemails on the server; the folders in use are listed, and each
        new voicemail, once the mount shows it, joins the files the readers pick from (so
        cold reads go on after the seeded files are all cached)."""
        rng = random.Random(self.rng.random())
        admin = self.emu.user(admin=True)
        while time.monotonic() < stop:
            self.up.wait()
            self.emu.admin("POST", "/_emulator/messages", {
                "extension_id": admin["extension_id"], "type": "SMS", "direction": "Inbound",
                "from": f"+1415555{rng.randrange(500, 510):04d}", "text": "soak refresh"})
            vm = self.emu.admin("POST", "/_emulator/messages", {
                "extension_id": admin["extension_id"], "type": "VoiceMail",
                "from": f"+1415555{rng.randrange(600, 610):04d}",
                "duration": rng.randrange(20, 120)})
            self.new_voicemails[str(vm["id"])] = None
            for area in ("Texts", "Voicemail", "Fax"):
                with contextlib.suppress(OSError):
                    os.listdir(self.mnt.folder() / area)
            self.discover()
            self.fig.count("refreshes")
            time.sleep(rng.uniform(2.0, 4.0))

    def discover(self) -> None:
        waiting = {i for i, p in self.new_voicemails.items() if p is None}
        if not waiting:
            return
        top = self.mnt.folder() / "Voicemail"
        with contextlib.suppress(OSError):
            for month in sorted(os.listdir(top))[-2:]:
                for name in os.listdir(top / month):
                    m = re.search(r"\[(\d+)\]\.mp3$", name)
                    if m and m.group(1) in waiting:
                        path = top / month / name
                        self.added_bytes[path] = self.emu.content("message", m.group(1))
                        self.new_voicemails[m.group(1)] = path
                        with self.fig.lock:
                            self.files.append(path)
                        self.fig.count("new voicemails seen")

    def inject_faults(self, rng: random.Random) -> None:
        for spec in rng.sample(CONTENT_FAULTS, 4):
            self.emu.fault(**spec, path="/content", probability=0.15)
        spec = rng.choice(SEND_FAULTS)
        self.emu.fault(**spec, path="/(sms|fax)$", method="POST", probability=0.2)

    # -- phases -----------------------------------------------------------------------------

    def phase(self, kill: bool) -> None:
        stop = min(self.deadline, time.monotonic() + self.phase_s)
        self.inject_faults(self.rng)
        threads = [threading.Thread(target=self.reader, args=(self.rng.random(), stop))
                   for _ in range(self.readers)]
        threads += [threading.Thread(target=self.sender, args=(stop,)),
                    threading.Thread(target=self.refresher, args=(stop,))]
        for t in threads:
            t.start()
        if kill:  # in the middle of the workload, reads and sends in flight; from this
            # thread: the mount process gets SIGTERM when the thread that started it ends
            self.kill_and_remount(self.rng.uniform(0.3, 0.7) * max(0.0, stop - time.monotonic()))
        for t in threads:
            t.join(max(1.0, stop - time.monotonic()) + READ_TIMEOUT + 2 * SLACK + 60)
            if t.is_alive():
                self.fig.hangs.append(f"a workload thread still running after {t.name}")
        rules = self.emu.admin("GET", "/_emulator/faults")
        self.fig.faults_injected += sum(r["applied"] for r in rules)
        self.emu.clear_faults()
        self.fig.phases += 1

    def kill_and_remount(self, after: float = 0.0) -> None:
        time.sleep(after)
        assert self.mnt.proc is not None
        self.up.clear()
        self.generation += 1
        os.kill(self.mnt.proc.pid, 9)
        self.mnt.proc.wait(10)
        self.mnt.unmount()
        self.mnt.start()
        self.mnt.wait_loaded()
        self.generation += 1
        self.up.set()
        self.fig.kills += 1

    def verify_cache(self) -> None:
        """Every file read so far, again: from the cache, equal to the emulator's bytes."""
        for path in sorted(self.read_files):
            try:
                data = path.read_bytes()
            except OSError as exc:
                self.fig.wrong_bytes.append(f"verify {path.name}: {exc}")
                continue
            self.fig.count("verified files")
            if data != self.expected(path).read_bytes():
                self.fig.wrong_bytes.append(f"verify {path.name}: differs")

    def verify_sends(self, timeout: float = 180.0) -> dict[str, int]:
        """Wait until every send is final, then count each in the emulator's log."""
        ob = self.mnt.folder() / "Outbox"
        end = time.monotonic() + timeout
        pending = list(self.sends)
        while pending and time.monotonic() < end:
            pending = [s for s in pending if not any(
                (ob / box / ("Text" if s.kind == "sms" else "Fax") / s.number
                 / (s.name + ".status.txt")).exists() for box in ("Sent", "Failed"))]
            if pending:
                time.sleep(0.5)
        got: Counter[str] = Counter()
        for item in self.emu.sent():
            if item["status"] != 200:
                continue
            if item["kind"] == "sms":
                got[item["request"].get("text", "")] += 1
            elif item["kind"] == "fax":
                for att in item["attachments"]:
                    got[att["sha256"]] += 1
        failed = [s for s in self.sends if (ob / "Failed" / ("Text" if s.kind == "sms"
                                                             else "Fax") / s.number
                                            / (s.name + ".status.txt")).exists()]
        return {"sends": len(self.sends), "unfinished": len(pending),
                "failed": len(failed),
                "duplicate": sum(1 for s in self.sends if got[s.marker] > 1),
                "lost": sum(1 for s in self.sends if got[s.marker] == 0 and s not in pending)}

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        self.start()
        next_kill = time.monotonic() + self.remount_every
        sends: dict[str, int] = {}
        while time.monotonic() < self.deadline:
            kill = time.monotonic() + self.phase_s / 2 >= next_kill
            self.phase(kill)
            if kill:
                next_kill = time.monotonic() + self.remount_every
            self.verify_cache()
            sends = self.verify_sends()
            if not self.mnt.alive:
                self.fig.hangs.append("the mount died")
                self.mnt.unmount()
                self.mnt.start()
            print(f"phase {self.fig.phases}: {dict(self.fig.ops)} errors "
                  f"{dict(self.fig.errors)} sends {sends}", file=sys.stderr, flush=True)
        self.rss.append(self.rss_kib())
        self.mnt.check_log()
        self.content_requests = sum(1 for e in self.emu.requests()
                                    if "/content" in e["path"] and e["method"] == "GET")
        return self.summary(time.monotonic() - started, sends)

    def summary(self, seconds: float, sends: dict[str, int]) -> dict[str, Any]:
        fig = self.fig
        return {
            "minutes": round(seconds / 60, 1), "phases": fig.phases,
            "operations": sum(v for k, v in fig.ops.items() if k != "verified files"),
            "ops": dict(fig.ops), "read_errors": dict(fig.errors),
            "content_requests": self.content_requests,
            "faults_injected": fig.faults_injected, "kill9_remounts": fig.kills,
            "wrong_bytes": len(fig.wrong_bytes), "wrong_bytes_detail": fig.wrong_bytes[:20],
            "sends": sends, "duplicate_sends": sends.get("duplicate", 0),
            "lost_sends": sends.get("lost", 0) + sends.get("unfinished", 0)
            + sends.get("failed", 0),
            "hangs": len(fig.hangs), "hangs_detail": fig.hangs[:20],
            "slowest_read_s": round(fig.slowest_read, 2), "read_deadline_s": READ_TIMEOUT,
            "rss_kib_start": self.rss[0] if self.rss else None,
            "rss_kib_end": self.rss[-1] if self.rss else None,
        }

    def close(self) -> None:
        try:
            self.mnt.unmount()
        finally:
            self.emu.stop(check=False)


def soak(minutes: float, phase_s: float = 30.0, remount_every: float = 180.0, seed: int = 1,
         readers: int = 3, workdir: Path | None = None, keep: bool = False) -> dict[str, Any]:
    """Run the soak; returns the summary (the temp folder is removed unless ``keep``)."""
    top = Path(tempfile.mkdtemp(prefix="rcfs-soak-", dir=workdir))
    try:
        run = Soak(top, minutes, phase_s, remount_every, seed, readers)
        try:
            return run.run()
        finally:
            run.close()
    finally:
        if keep:
            print(f"kept {top}", file=sys.stderr)
        else:
            shutil.rmtree(top, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--phase", type=float, default=30.0, help="seconds per phase")
    p.add_argument("--remount-every", type=float, default=180.0,
                   help="seconds between kill -9 + remount")
    p.add_argument("--readers", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = p.parse_args()
    result = soak(args.minutes, args.phase, args.remount_every, args.seed, args.readers,
                  keep=args.keep)
    print(json.dumps(result, indent=1))
    bad = (result["wrong_bytes"] or result["duplicate_sends"] or result["lost_sends"]
           or result["hangs"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
