"""Shared pieces of the benchmarks (scripts/bench_mount.py, scripts/bench_wan.py); not a test.

* ``Nginx``: one static server on 127.0.0.1 (the emulator's ``--media-origin``), started and
  stopped by PID, with an access log that counts requests per client (User-Agent);
* ``drop_caches``: the global page-cache drop (root only: a benchmark may do it, a test never);
* ``rclone_mount``, ``passthrough_mount``, ``set_read_ahead`` and ``read_ahead_header``:
  the comparison mounts, given rcfs's kernel read-ahead, and every mount's value read back
  (a loud warning when they differ);
* ``run_header``: when and at which commit a run ran;
* ``settle`` and ``warm_memory``: what runs before every timed read (see ``warm_memory``);
* timing helpers: ``timed``, ``dd``, ``median``.

Every loop is bounded in count and time; every process is ended by its PID.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rcfs.fs.readahead import mount_device  # noqa: E402

MIB = 1 << 20
IS_ROOT = os.geteuid() == 0


def timed(cmd: list[str], timeout: float = 600) -> float:
    """Seconds ``cmd`` ran, measured to its exit. Not ``subprocess.run(timeout=...)``: that
    polls for the exit with sleeps doubling up to 50 ms, so every time it returned snapped
    up to 31, 63, 113, 163... ms (a 40 ms read measured 63 ms). A blocking ``wait`` returns
    at the exit; a timer kills a process that overstays ``timeout``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        code = proc.wait()
    finally:
        timer.cancel()
    elapsed = time.perf_counter() - t0
    if code != 0:
        raise subprocess.CalledProcessError(code, cmd)
    return elapsed


def dd(path: Path) -> float:
    """Seconds to read ``path`` whole with ``dd bs=1M`` (a process like cp's)."""
    return timed(["dd", f"if={path}", "of=/dev/null", "bs=1M"])


def median(xs: Iterable[float]) -> float:
    return statistics.median(list(xs))


WARM_MIB = 256
"""MiB ``warm_memory`` touches; 0 turns it off (``--no-warm``, to see the VM's effect)."""
WARM_RATES: list[float] = []
"""MiB/s of every ``warm_memory`` so far: how costly fresh memory was during the run."""


def warm_memory(mib: int | None = None) -> float:
    """Touch ``mib`` MiB of fresh anonymous memory, free it, and return the MiB/s that ran at.

    This machine is a VM that hands free memory back to its host (virtio-balloon free page
    reporting), and the first touch of a page the host took back costs a host fault: late in
    a benchmark run a first touch of 256 MiB ran at 134-453 MiB/s instead of ~1,600, and
    every program that needs new pages (page cache for a FUSE file or a cache file, buffers)
    slowed down with it, while curl writing to /dev/null did not. Pages freed here are the
    ones the kernel is likely to hand out next, and they stay backed for the seconds before
    they are reported: touched just before it, a slow reread ran at 742-767 MiB/s instead of
    57-258. So every contender's timed read starts on memory the host backs, as it would on
    a machine that is not a VM. ``mib`` defaults to ``WARM_MIB``."""
    mib = WARM_MIB if mib is None else mib
    if mib <= 0:
        return 0.0
    chunk = b"\x01" * (1 << 20)
    t0 = time.perf_counter()
    with mmap.mmap(-1, mib << 20) as mem:
        for _ in range(mib):
            mem.write(chunk)
    rate = mib / (time.perf_counter() - t0)
    WARM_RATES.append(rate)
    return rate


def settle() -> None:
    """Before a timed read: earlier cache writes on disk (``sync``), fresh memory warmed."""
    os.sync()
    warm_memory()


def drop_caches() -> bool:
    """Drop the whole page cache (every file, every mount), then warm fresh memory
    (``warm_memory``: the pages just freed are what the next read gets); False when not
    root. Global: acceptable in a benchmark script, never in a test."""
    if not IS_ROOT:
        return False
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")
    warm_memory()
    return True


def read_ahead_kib(mountpoint: Path) -> int | None:
    dev = mount_device(mountpoint)
    if dev is None:
        return None
    try:
        return int(Path(f"/sys/class/bdi/{dev}/read_ahead_kb").read_text())
    except (OSError, ValueError):
        return None


def set_read_ahead(mountpoint: Path, kib: int) -> int | None:
    """Set a FUSE mount's read-ahead to exactly ``kib`` (root only); the value in effect,
    read back. A value that did not take is said on stderr (``read_ahead_header`` says it
    again in the run's header)."""
    dev = mount_device(mountpoint)
    if dev is not None and IS_ROOT:
        with contextlib.suppress(OSError):
            Path(f"/sys/class/bdi/{dev}/read_ahead_kb").write_text(f"{kib}\n")
    got = read_ahead_kib(mountpoint)
    if got != kib:
        print(f"WARNING: read-ahead of {mountpoint} is {got} KiB, not the {kib} KiB asked for"
              f"{'' if IS_ROOT else ' (setting it needs root)'}", file=sys.stderr)
    return got


def read_ahead_header(mounts: dict[str, Path]) -> list[str]:
    """Header lines with each mount's kernel read-ahead as read back from
    ``/sys/class/bdi/<major:minor>/read_ahead_kb`` (None: not found), and a WARNING line when
    they differ: then the mounts' rows do not compare like with like. Printed to stderr at
    once too, so the warning is seen while the run goes on."""
    values = {who: read_ahead_kib(path) for who, path in mounts.items()}
    shown = ", ".join(f"{who} {'unknown' if v is None else f'{v} KiB'}"
                      for who, v in values.items())
    lines = [f"kernel read-ahead, read back from each mount's bdi: {shown}"]
    if len(set(values.values())) > 1:
        lines.append(f"WARNING: THE MOUNTS' READ-AHEAD DIFFERS ({shown}): their rows do not "
                     "compare like with like" + ("" if IS_ROOT else
                                                  " (setting read-ahead needs root)"))
    for line in lines:
        print(line, file=sys.stderr)
    return lines


def run_header() -> str:
    """``YYYY-MM-DD HH:MM UTC, commit <hash>`` (``+ changes`` when the tree differs from it)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True,
                              text=True, timeout=30).stdout.strip()

    dirty = " + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") \
        else ""
    return (f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, commit "
            f"{git('rev-parse', '--short', 'HEAD') or 'unknown'}{dirty}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


NGINX_CONF = """\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format bench '$http_user_agent|$request_method|$uri|$status|$body_bytes_sent';
    access_log {prefix}/access.log bench;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 30;
    types {{ }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        autoindex on;
    }}
}}
"""


class Nginx:
    """nginx serving ``root`` on 127.0.0.1 (a port of its own), in the foreground as our
    child; ``requests`` counts its access log per client since a mark."""

    def __init__(self, root: Path, prefix: Path) -> None:
        self.root, self.prefix = root, prefix
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Nginx:
        (self.prefix / "tmp").mkdir(parents=True, exist_ok=True)
        for _attempt in range(5):  # the port may be taken between free_port() and bind()
            self.port = free_port()
            conf = self.prefix / "nginx.conf"
            conf.write_text(NGINX_CONF.format(prefix=self.prefix, port=self.port,
                                              root=self.root))
            self.proc = subprocess.Popen(
                ["nginx", "-p", str(self.prefix), "-c", str(conf), "-g", "daemon off;"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                with contextlib.suppress(OSError), socket.create_connection(
                        ("127.0.0.1", self.port), timeout=0.5):
                    return self
                time.sleep(0.05)
            self.stop()
        raise RuntimeError(f"nginx did not start: {(self.prefix / 'error.log').read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful; workers exit with the master
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def mark(self) -> int:
        log = self.prefix / "access.log"
        return log.stat().st_size if log.exists() else 0

    def requests(self, since: int, agent: str, suffix: str = "/content") -> int:
        """Requests by clients whose User-Agent starts with ``agent`` for paths ending in
        ``suffix``, logged after ``since`` (a ``mark``). nginx writes each line when the
        response is done, so call it after the client finished."""
        counts: Counter[str] = Counter()
        with open(self.prefix / "access.log", "rb") as fh:
            fh.seek(since)
            for line in fh.read().decode(errors="replace").splitlines():
                ua, _, rest = line.partition("|")
                uri = rest.split("|")[1] if rest.count("|") >= 2 else ""
                if ua.startswith(agent) and uri.endswith(suffix):
                    counts[ua] += 1
        return sum(counts.values())

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def have(program: str) -> bool:
    return shutil.which(program) is not None


@contextlib.contextmanager
def rclone_mount(url: str, mountpoint: Path, cache: Path,
                 read_ahead: int | None) -> Iterator[Path]:
    """``rclone mount`` of an HTTP remote with ``--vfs-cache-mode full``; its kernel
    read-ahead set to ``read_ahead`` KiB (rcfs's) so neither mount gets a larger one. The
    caller reads every mount's value back (``read_ahead_header``): setting it needs root."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        ["rclone", "mount", ":http:", str(mountpoint), "--http-url", url,
         "--vfs-cache-mode", "full", "--cache-dir", str(cache), "--read-only",
         "--dir-cache-time", "1h"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not os.path.ismount(mountpoint):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("rclone mount did not come up")
            time.sleep(0.1)
        if read_ahead is not None:
            set_read_ahead(mountpoint, read_ahead)
        yield mountpoint
    finally:
        _unmount(mountpoint, proc)


@contextlib.contextmanager
def passthrough_mount(source: Path, mountpoint: Path,
                      read_ahead: int | None) -> Iterator[Path]:
    """``scripts/passthrough_fs.py`` (the smallest pyfuse3 filesystem over a local folder,
    rcfs's mount options) mounted at ``mountpoint``, its read-ahead raised to
    ``read_ahead`` KiB as rcfs raises its own (None: the passthrough's default, rcfs's)."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    ra = [] if read_ahead is None else ["--read-ahead-kib", str(read_ahead)]
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "passthrough_fs.py"), *ra, str(source),
         str(mountpoint)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        ready = threading.Timer(30, proc.kill)  # a mount that never comes up ends the wait
        ready.start()
        try:
            line = proc.stdout.readline()
        finally:
            ready.cancel()
        if line.strip() != b"ready":
            raise RuntimeError("the passthrough filesystem did not come up")
        yield mountpoint
    finally:
        _unmount(mountpoint, proc)


def _unmount(mountpoint: Path, proc: subprocess.Popen[bytes]) -> None:
    """Unmount (lazily if it is busy), then stop the server this script started."""
    subprocess.run(["fusermount3", "-u", str(mountpoint)], check=False,
                   capture_output=True, timeout=30)
    subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False,
                   capture_output=True, timeout=30)
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def wait_settled(status_file: Path, timeout: float = 120.0) -> None:
    """Wait (bounded) until rcfs has no download running: a download ends only after its
    blocks are in the block cache, so a read timed up to here includes its cache writes."""
    import json

    deadline = time.monotonic() + timeout
    while True:
        content = json.loads(status_file.read_text()).get("content", {})
        if content.get("active_streams", 0) == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"rcfs still downloading after {timeout:.0f} s: {content}")
        time.sleep(0.002)


def wait_cached(path: Path, timeout: float = 120.0) -> None:
    """Wait (bounded) until every block of ``path`` is in rcfs's block cache on disk (its
    ``user.rc.cached`` says ``full``: the cache's record, committed with the blocks). One
    getxattr per poll: polling ``.rcfs/status.json`` instead renders the whole status (2-3
    times per read, about 1.2 ms) every few milliseconds while the timed read runs."""
    deadline = time.monotonic() + timeout
    while os.getxattr(path, "user.rc.cached") != b"full":
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} not fully cached after {timeout:.0f} s")
        time.sleep(0.002)


def find(root: Path, pattern: str, timeout: float = 30.0) -> Path:
    """The first match; a folder listed for the first time may fill in a little later
    (``lookup_deadline``), so this looks again until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        hits = sorted(root.glob(pattern))
        if hits:
            return hits[0]
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing matches {pattern} under {root}")
        time.sleep(0.2)  # a bounded poll of a listing, not a synchronising sleep
