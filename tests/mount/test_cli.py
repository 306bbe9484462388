"""The ``rcfs`` command (issue 5): mount from a config file or from flags only, foreground
and --daemon, status, unmount, signals, demo, and configuration errors that name the key
(exit code and message of the process; the parsing itself: tests/unit/test_config.py).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rcfs import __version__
from tests.emulator_proc import ROOT, EmulatorProc
from tests.mount_helper import (
    REAL_LIMITS,
    Mounted,
    folder_name,
    mounted_paths,
    mounts_under,
    require_fuse,
    run,
    wait_for,
    write_config,
)

RCFS = [sys.executable, "-m", "rcfs.cli"]


def rcfs(*args: str, timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return run([*RCFS, *args], check=False, timeout=timeout, cwd=ROOT, **kwargs)


@pytest.fixture
def emu(start_emulator: Callable[..., EmulatorProc]) -> EmulatorProc:
    return start_emulator("--data-seed", "1", *REAL_LIMITS)


# -- no mount: the command as a process (the same parsing in-process: tests/unit/test_config.py)


def test_version_and_help() -> None:
    res = rcfs("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"rcfs {__version__}"
    res = rcfs("mount", "--help")
    assert res.returncode == 0
    for flag in ("--config", "--server", "--media-server", "--client-id", "--jwt-file",
                 "--cache-dir", "--state-dir", "--cache-size", "--refresh-interval",
                 "--read-timeout", "--allow-delete", "--allow-other", "--daemon",
                 "--timezone", "--umask", "--outbox-concurrency", "--outbox-max-attempts",
                 "--outbox-retry-base", "--outbox-retry-max", "--outbox-poll-min",
                 "--outbox-poll-max", "--outbox-settle-time", "--outbox-clock-skew",
                 "--outbox-fax-timeout", "--outbox-sms-timeout", "--outbox-sms-delivery-wait"):
        assert flag in res.stdout, flag
    res = rcfs()
    assert res.returncode != 0 and "usage" in res.stderr


BAD_CONFIGS = [
    ("refresh_interval = -1\n", "refresh_interval"),
    ("refresh_interval = \"often\"\n", "refresh_interval"),
    ("bogus_key = 1\n", "bogus_key"),
    ("umask = \"999\"\n", "umask"),
    ("cache_size = \"lots\"\n", "cache_size"),
    ("server = \"ftp://example.com\"\n", "server"),
    ("timezone = \"Mars/Olympus_Mons\"\n", "timezone"),
    ("log_level = \"loud\"\n", "log_level"),
    ("read_timeout = 0\n", "read_timeout"),
    ("token_refresh_margin = 0\n", "token_refresh_margin"),
    ("allow_delete = \"perhaps\"\n", "allow_delete"),
    ("jwt_file = \"/nonexistent/rcfs.jwt\"\n", "jwt_file"),
    ("client_id = \"\"\n", "client_id"),
    ("this is = not toml [\n", "not valid TOML"),
    ("outbox_concurrency = 0\n", "outbox_concurrency"),
    ("read_ahead_kib = -1\n", "read_ahead_kib"),
    ("outbox_settle_time = -5\n", "outbox_settle_time"),
    ("outbox_poll_min = 10\noutbox_poll_max = 5\n", "outbox_poll_max"),
]


@pytest.mark.parametrize(("text", "key"), BAD_CONFIGS, ids=[k for _, k in BAD_CONFIGS])
def test_invalid_config_exits_nonzero_naming_the_key(text: str, key: str,
                                                     tmp_path: Path) -> None:
    base = {"server": "http://127.0.0.1:9", "client_id": "app", "jwt": "x.y.z",
            "cache_dir": str(tmp_path / "c"), "state_dir": str(tmp_path / "s")}
    own = {line.split("=")[0].strip() for line in text.splitlines() if "=" in line}
    if "jwt_file" in own:
        own.add("jwt")  # an inline jwt would win over the file
    cfg = tmp_path / "config.toml"
    cfg.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in base.items() if k not in own)
                   + text)
    mp = tmp_path / "mp"
    mp.mkdir()
    res = rcfs("mount", str(mp), "--config", str(cfg))
    assert res.returncode == 2, res
    assert key in res.stderr and "invalid configuration" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert mounts_under(tmp_path) == []
    assert not (tmp_path / "c").exists()  # nothing was started


def test_invalid_flag_and_missing_config_file(tmp_path: Path) -> None:
    mp = tmp_path / "mp"
    mp.mkdir()
    res = rcfs("mount", str(mp), "--config", str(tmp_path / "nope.toml"))
    assert res.returncode == 2 and "no such config file" in res.stderr
    cfg = tmp_path / "ok.toml"
    cfg.write_text('server = "http://127.0.0.1:9"\nclient_id = "app"\n')
    res = rcfs("mount", str(mp), "--config", str(cfg), "--refresh-interval", "soon")
    assert res.returncode == 2 and "refresh_interval" in res.stderr, res.stderr
    res = rcfs("mount", str(mp), "--config", str(cfg), "--umask", "0o77x")
    assert res.returncode == 2 and "umask" in res.stderr, res.stderr


def test_unreachable_server_with_nothing_cached_is_a_clear_error(tmp_path: Path) -> None:
    # Fails at login, before anything is mounted: no FUSE needed.
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'server = "http://127.0.0.1:9"\nclient_id = "app"\njwt = "a.b.c"\n'
                   f'cache_dir = "{tmp_path / "c"}"\nstate_dir = "{tmp_path / "s"}"\n')
    mp = tmp_path / "mp"
    mp.mkdir()
    res = rcfs("mount", str(mp), "--config", str(cfg), timeout=120)
    assert res.returncode == 1, res
    assert "cannot log in to http://127.0.0.1:9" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert str(mp) not in mounted_paths()


# -- mounts -----------------------------------------------------------------------------------


@pytest.mark.mount
def test_mount_from_flags_only_then_status_and_unmount(emu: EmulatorProc,
                                                       tmp_path: Path) -> None:
    require_fuse()
    m = Mounted(emu, tmp_path, flags=True, refresh_interval=600)
    with m:
        m.wait_loaded()
        assert folder_name(emu.user(admin=True)) in os.listdir(m.root)
        res = rcfs("status", str(m.root))
        assert res.returncode == 0, res.stderr
        assert f"{m.root}: rcfs {__version__} pid {m.proc.pid}" in res.stdout  # type: ignore[union-attr]
        assert "101 Alice Whitaker: " in res.stdout and " Voicemail, " in res.stdout
        res = rcfs("status", "--json", str(m.root))
        data = json.loads(res.stdout)
        assert data["pid"] == m.proc.pid and len(data["extensions"]) == 5  # type: ignore[union-attr]
        # ``rcfs unmount`` ends the mount process cleanly.
        res = rcfs("unmount", str(m.root))
        assert res.returncode == 0, res.stderr
        assert m.proc.wait(20) == 0  # type: ignore[union-attr]
        assert str(m.root) not in mounted_paths()
        res = rcfs("unmount", str(m.root))
        assert res.returncode != 0 and res.stderr.startswith("rcfs: ")
        res = rcfs("status", str(m.root))
        assert res.returncode == 1 and "no status" in res.stderr


@pytest.mark.mount
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_unmounts_cleanly(sig: signal.Signals, emu: EmulatorProc,
                                 tmp_path: Path) -> None:
    require_fuse()
    m = Mounted(emu, tmp_path, refresh_interval=600)
    with m:
        some = next(iter(os.listdir(m.folder())))
        assert some
        m.proc.send_signal(sig)  # type: ignore[union-attr]
        assert m.proc.wait(20) == 0, m.log()  # type: ignore[union-attr]
        assert str(m.root) not in mounted_paths()
        assert os.listdir(m.root) == []  # the empty mountpoint again, not a dead mount
        assert "Traceback" not in m.log()


@pytest.mark.mount
def test_daemon_mode_returns_once_mounted(emu: EmulatorProc, tmp_path: Path) -> None:
    require_fuse()
    cfg = write_config(tmp_path / "cfg.toml", emu, cache_dir=tmp_path / "c",
                       state_dir=tmp_path / "s", refresh_interval=600)
    mp = tmp_path / "mp"
    mp.mkdir()
    daemon_pid = None
    try:
        started = time.monotonic()
        res = rcfs("mount", str(mp), "--config", str(cfg), "--daemon", timeout=90)
        assert res.returncode == 0, res.stderr
        assert f"mounted {mp}" in res.stdout
        assert time.monotonic() - started < 60
        assert str(mp) in mounted_paths()
        status = json.loads((mp / ".rcfs" / "status.json").read_text())
        daemon_pid = status["pid"]
        assert daemon_pid != os.getpid()
        assert folder_name(emu.user(admin=True)) in os.listdir(mp)
        assert (tmp_path / "s" / "rcfs.log").exists()
        res = rcfs("unmount", str(mp))
        assert res.returncode == 0, res.stderr
        wait_for(lambda: not _alive(daemon_pid), 20, "the daemon to exit")
        assert str(mp) not in mounted_paths()
    finally:
        if str(mp) in mounted_paths():
            subprocess.run(["fusermount3", "-u", "-z", str(mp)], check=False, timeout=30)
        if daemon_pid is not None and _alive(daemon_pid):
            os.kill(daemon_pid, signal.SIGKILL)


@pytest.mark.mount
def test_daemon_mode_reports_failure(tmp_path: Path) -> None:
    require_fuse()
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f'server = "http://127.0.0.1:9"\nclient_id = "app"\njwt = "a.b.c"\n'
                   f'cache_dir = "{tmp_path / "c"}"\nstate_dir = "{tmp_path / "s"}"\n')
    mp = tmp_path / "mp"
    mp.mkdir()
    res = rcfs("mount", str(mp), "--config", str(cfg), "--daemon", timeout=120)
    assert res.returncode == 1
    assert "mount failed" in res.stderr and "cannot log in" in res.stderr, res.stderr
    assert str(mp) not in mounted_paths()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of ours is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    from rcfs.proc import die_with_parent

    mp = tmp_path / "demo"
    port_file = tmp_path / "emulator.json"
    log = open(tmp_path / "demo.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([*RCFS, "demo", str(mp), "--port-file", str(port_file)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    try:
        yield proc, mp, port_file
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if str(mp) in mounted_paths():
            subprocess.run(["fusermount3", "-u", "-z", str(mp)], check=False, timeout=30)
        log.close()


@pytest.mark.mount
def test_demo_mounts_lists_and_stops_on_ctrl_c(
        demo: tuple[subprocess.Popen[bytes], Path, Path], tmp_path: Path) -> None:
    require_fuse()
    proc, mp, port_file = demo
    wait_for(lambda: port_file.exists() and str(mp) in mounted_paths()
             or proc.poll() is not None, 60, "the demo to mount")
    assert proc.poll() is None, (tmp_path / "demo.log").read_text()
    wait_for(lambda: "101 Alice Whitaker" in os.listdir(mp), 30, "the demo tree")
    info = json.loads(port_file.read_text())
    voicemail = mp / "101 Alice Whitaker" / "Voicemail"
    wait_for(lambda: os.listdir(voicemail), 30, "the demo voicemails")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0, (tmp_path / "demo.log").read_text()
    assert str(mp) not in mounted_paths()
    wait_for(lambda: not _alive(info["pid"]), 15, "the demo's emulator to stop")
    out = (tmp_path / "demo.log").read_text()
    assert "the demo account is mounted at" in out and "Traceback" not in out


@pytest.mark.mount
def test_mount_over_a_dead_mount_cleans_it_up(emu: EmulatorProc, tmp_path: Path) -> None:
    require_fuse()
    m = Mounted(emu, tmp_path, refresh_interval=600)
    try:
        m.start()
        m.proc.kill()  # type: ignore[union-attr]  # no chance to unmount
        m.proc.wait(10)  # type: ignore[union-attr]
        with pytest.raises(OSError) as err:
            os.listdir(m.root)
        assert err.value.errno == errno.ENOTCONN
        m.start()  # rcfs lazily unmounts the dead mount first
        assert folder_name(emu.user(admin=True)) in os.listdir(m.root)
        assert "dead FUSE mount" in m.log()
        assert mounted_paths().count(str(m.root)) == 1
    finally:
        m.unmount()
    assert str(m.root) not in mounted_paths()
