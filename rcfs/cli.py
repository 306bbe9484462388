"""The ``rcfs`` command: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rcfs import __version__
from rcfs.config import FIELDS, OUTBOX_KEYS, Config, ConfigError, load
from rcfs.proc import die_with_parent

log = logging.getLogger("rcfs")

# Flags that map 1:1 onto config keys (every option is also a flag).
CONFIG_FLAGS = ("server", "media_server", "client_id", "client_secret", "jwt_file",
                "redirect_uri", "ca_cert", "cache_dir", "state_dir", "cache_size",
                "refresh_interval", "read_timeout", "uid", "gid", "umask", "timezone",
                "log_level", "thumbnails", "thumbnail_wait")
# Flags of ``rcfs mount`` only: the kernel's read-ahead, the outbox's tuning (nothing else
# mounts or sends).
MOUNT_FLAGS = ("read_ahead_kib", "push_poll_interval", "lookup_deadline", *OUTBOX_KEYS)


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    # httpx logs every URL at INFO; ours are logged (without queries) by rcfs.api.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def _add_config_flags(p: argparse.ArgumentParser, extra: tuple[str, ...] = ()) -> None:
    p.add_argument("--config", type=Path, help="config file (default ~/.config/rcfs/config.toml)")
    for key in (*CONFIG_FLAGS, *extra):
        p.add_argument("--" + key.replace("_", "-"), dest=key, default=None,
                       help=f"config key {key} (type {FIELDS[key].type})")


def _config(args: argparse.Namespace, **extra: Any) -> Config:
    overrides = {k: getattr(args, k, None) for k in (*CONFIG_FLAGS, *MOUNT_FLAGS)}
    overrides.update(extra)
    return load(args.config, overrides)


# -- mount ----------------------------------------------------------------------------------


def _run_mount(cfg: Config, mountpoint: Path, notify_fd: int | None = None,
               tour: str | None = None) -> int:
    import trio

    from rcfs.mount import Mount, MountError, check_mountpoint

    try:
        check_mountpoint(mountpoint)
    except MountError as exc:
        print(f"rcfs: {exc}", file=sys.stderr)
        _notify_parent(notify_fd, f"error: {exc}")
        return 2

    mount = Mount(cfg, mountpoint)

    async def main() -> None:
        ready = trio.Event()
        async with trio.open_nursery() as nursery:
            async def tell() -> None:
                await ready.wait()
                _notify_parent(notify_fd, "ok")
                if tour:
                    print(tour, flush=True)
            nursery.start_soon(tell)
            await mount.run(ready)
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    except BaseException as group:
        # Trio's nurseries wrap what their body raises in exception groups, even a single
        # MountError: unwrap, or the user gets a traceback instead of the reason.
        error = _leaf(group)
        if isinstance(error, MountError | ConfigError):
            message = str(error)
        elif isinstance(error, RuntimeError):  # pyfuse3.init failures (no /dev/fuse, ...)
            log.debug("mount failed", exc_info=error)
            message = f"cannot mount {mountpoint}: {error}"
        else:
            raise
        print(f"rcfs: {message}", file=sys.stderr)
        _notify_parent(notify_fd, f"error: {message}")
        return 1
    return 0


def _leaf(exc: BaseException) -> BaseException:
    """The first real exception inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _notify_parent(fd: int | None, message: str) -> None:
    if fd is None:
        return
    try:
        os.write(fd, (message + "\n").encode())
        os.close(fd)
    except OSError:
        pass


def _mount(args: argparse.Namespace) -> int:
    extra = {"allow_other": args.allow_other or None, "allow_delete": args.allow_delete or None,
             "notify": args.notify, "push": args.push}
    try:
        cfg = _config(args, **extra)
        cfg.jwt_value()  # an unreadable jwt_file is a configuration error, found up front
    except ConfigError as exc:
        print(f"rcfs: invalid configuration: {exc}", file=sys.stderr)
        return 2
    _setup_logging(cfg.log_level)
    mountpoint = Path(args.mountpoint).absolute()
    if not args.daemon:
        return _run_mount(cfg, mountpoint, args.notify_fd)
    # --daemon: a detached child mounts; we return once it says the mount answers.
    read_fd, write_fd = os.pipe()
    argv = [a for a in sys.argv[1:] if a != "--daemon"]
    log_path = Path(cfg.state_dir).expanduser() / "rcfs.log"
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Private like everything in state_dir (the log names callers and files).
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "ab") as logf:
        subprocess.Popen([sys.executable, "-m", "rcfs.cli", *argv, "--notify-fd", str(write_fd)],
                         pass_fds=(write_fd,), start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=logf, stderr=logf)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        answer = pipe.readline().strip()
    if answer == "ok":
        print(f"rcfs: mounted {mountpoint} (log: {log_path})")
        return 0
    print(f"rcfs: mount failed: {answer or 'the mount process died'} (log: {log_path})",
          file=sys.stderr)
    return 1


def _unmount(args: argparse.Namespace) -> int:
    path = Path(args.mountpoint).absolute()
    for tool in ("fusermount3", "fusermount"):
        try:
            res = subprocess.run([tool, "-u", *(["-z"] if args.lazy else []), str(path)],
                                 capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            continue
        if res.returncode != 0:
            print(f"rcfs: {res.stderr.strip()}", file=sys.stderr)
        return res.returncode
    print("rcfs: fusermount3 not found (install fuse3)", file=sys.stderr)
    return 1


# -- status ---------------------------------------------------------------------------------


def _find_mounts() -> list[Path]:
    found = []
    with open("/proc/mounts") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) > 2 and parts[2] == "fuse.rcfs":
                found.append(Path(parts[1].replace("\\040", " ")))
    return found


def _status(args: argparse.Namespace) -> int:
    try:
        code = _print_status(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # `rcfs status | head -1`: the reader is gone. Exit quietly, non-zero like any
        # program whose output was cut (point stdout at /dev/null so the interpreter's final
        # flush does not raise again).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 1
    return code


def _print_status(args: argparse.Namespace) -> int:
    from rcfs.api.authstate import auth_line

    mounts = [Path(args.mountpoint)] if args.mountpoint else _find_mounts()
    if not mounts:
        print("rcfs: no rcfs mount found", file=sys.stderr)
        return 1
    for mp in mounts:
        try:
            data = json.loads((mp / ".rcfs" / "status.json").read_text())
        except (OSError, ValueError) as exc:
            print(f"rcfs: {mp}: no status ({exc})", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps(data, indent=2))
            continue
        print(f"{mp}: rcfs {data.get('version')} pid {data.get('pid')}")
        print(f"  {auth_line(data.get('auth') or {})}")
        for action in (data.get("auth") or {}).get("missing_permissions") or []:
            print(f"  permission: {action}")
        for healed in data.get("rebuilt_stores") or []:
            print(f"  {healed.get('store')} was damaged and rebuilt at mount "
                  f"({healed.get('reason')}); old copy: {healed.get('moved_to')}")
        groups = data.get("requests", {}).get("groups", data.get("requests", {}))
        for name, g in sorted(groups.items()):
            if isinstance(g, dict):
                print(f"  {name:<7} sent {g.get('sent', 0):>5}  429s {g.get('throttled_429', 0)}"
                      f"  remaining {g.get('remaining')}/{g.get('limit')}"
                      f"  next free slot {float(g.get('next_free_s', 0) or 0):.0f}s"
                      f"  penalty {max(0.0, float(g.get('penalty_remaining_s', 0) or 0)):.0f}s")
                for cls, q in sorted((g.get("queue") or {}).items()):
                    print(f"          queued {cls}: {q.get('waiting')} request(s) from "
                          f"{q.get('tenants')} reader(s), longest {q.get('longest_wait_s')}s")
        for w in data.get("readers", {}).get("waiting", []):
            print(f"  waiting {w.get('waiting_s')}s: pid {w.get('pid')} ({w.get('comm')}, "
                  f"{w.get('class')}) {w.get('file')}")
        content = data.get("content", {})
        cache = content.get("cache", {})
        print(f"  content: {content.get('reads', 0)} reads, {content.get('requests', 0)} "
              f"downloads, {content.get('active_streams', 0)} in progress; cache "
              f"{cache.get('used', 0)} of {cache.get('budget', 0)} bytes")
        for ext in data.get("extensions", {}).values():
            print(f"  {ext['folder']}: {_mailbox_line(ext)}")
        pinning = data.get("pinning") or {}
        if pinning.get("pins"):
            from rcfs.cli_offline import progress_line

            print(f"  pinned: {', '.join(pinning['pins'])}")
            print(f"    {progress_line(pinning)}")
        for task in data.get("exports", []):
            print(f"  export: {task.get('status')}  {task.get('folder')}")
        index = data.get("index", {})
        if index.get("moved_aside"):
            print(f"  metadata index: {index['moved_aside']} unreadable index(es) moved aside "
                  f"and rebuilt")
        _print_push(data)
        queue = data.get("outbox", [])
        print(f"  outbox: {len(queue)} queued")
        for job in queue:
            error = f"  ({job['error']})" if job.get("error") else ""
            print(f"    {job.get('state', '?'):<8} {job.get('kind', '?'):<8} "
                  f"{job.get('to') or '':<16} {job.get('path', '')}{error}")
    return 0


def _print_push(data: dict[str, Any]) -> None:
    push = data.get("push")
    if not push:
        return
    since = (" since " + time.strftime("%H:%M:%S", time.localtime(push["since"]))
             if push.get("since") else "")
    line = (f"  push: {push.get('state')}{since}, polling every "
            f"{push.get('poll_interval', 0):g}s")
    if push.get("state") != "off":
        line += (f"; {push.get('events', 0)} events, {push.get('reconnects', 0)} reconnects, "
                 f"{push.get('recoveries', 0)} recoveries "
                 f"({push.get('recoveries_failed', 0)} failed)")
    print(line)
    last = push.get("last_event")
    if last:
        at = time.strftime("%H:%M:%S", time.localtime(last.get("at") or 0))
        print(f"    last event {at}: {last.get('kind')} of extension {last.get('extension')}")
    if push.get("last_error") and push.get("state") != "connected":
        print(f"    last error: {push['last_error']}")
    notify = data.get("notify")
    if notify:
        print(f"  notifications: {notify.get('state')}, {notify.get('raised', 0)} raised")


def _mailbox_line(ext: dict[str, Any]) -> str:
    """One mailbox of ``rcfs status``: files per folder, loading progress, errors."""
    files = ext.get("files", {})
    areas = ("Voicemail", "Fax", "Texts", "Recordings", "Greetings")
    text = ", ".join(f"{files[k]} {k}" for k in areas if files.get(k)) or "no files yet"
    progress = ext.get("progress") or {}
    if ext.get("loading") and progress:
        text += (f"; loading: {progress.get('messages', 0)} messages in "
                 f"{progress.get('pages', 0)} pages")
        if progress.get("waiting"):
            text += f", waiting for {progress['waiting']}"
    elif ext.get("loading"):
        text += "; loading"
    if ext.get("last_error"):
        text += f" (error: {ext['last_error']})"
    calls = ext.get("calls") or {}
    if calls.get("last_error"):
        text += f" (call log: {calls['last_error']})"
    return text


# -- login / logout ------------------------------------------------------------------------


def _login(args: argparse.Namespace) -> int:
    import webbrowser

    import trio

    from rcfs.api import Credentials, RcError, login_with_browser
    from rcfs.mount import make_client, token_store

    try:
        cfg = _config(args)
    except ConfigError as exc:
        print(f"rcfs: invalid configuration: {exc}", file=sys.stderr)
        return 2
    _setup_logging(cfg.log_level)
    store = token_store(cfg)

    async def main() -> None:
        if cfg.jwt_value():
            async with make_client(cfg, store) as client:
                await client.tokens.login_jwt(client.deadline_in(60))
            return
        creds = Credentials(platform_url=cfg.server, client_id=cfg.client_id,
                            client_secret=cfg.client_secret or None,
                            redirect_uri=cfg.redirect_uri)
        opener = None if args.no_browser else webbrowser.open
        await login_with_browser(creds, opener, timeout=args.timeout, store=store)

    try:
        trio.run(main)
    except (RcError, ValueError) as exc:
        print(f"rcfs: login failed: {exc}", file=sys.stderr)
        return 1
    print(f"rcfs: logged in; session stored in {store.path}")
    return 0


def _logout(args: argparse.Namespace) -> int:
    import trio

    from rcfs.mount import make_client, token_store

    try:
        cfg = _config(args)
    except ConfigError as exc:
        print(f"rcfs: invalid configuration: {exc}", file=sys.stderr)
        return 2
    store = token_store(cfg)

    async def main() -> None:
        async with make_client(cfg, store) as client:
            await client.tokens.revoke(client.deadline_in(30))

    trio.run(main)
    print("rcfs: logged out")
    return 0


# -- demo -----------------------------------------------------------------------------------


def _start_emulator(port_file: Path, seed: int) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    # A separate process by design: the product never imports the emulator.
    proc = subprocess.Popen(
        [sys.executable, "-m", "rcfs.emulator", "--data-seed", str(seed),
         "--port-file", str(port_file)],
        preexec_fn=die_with_parent,
    )
    deadline = time.monotonic() + 60
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the emulator did not start")
        time.sleep(0.05)
    return proc, json.loads(port_file.read_text())


def _demo(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="rcfs-demo-"))
    port_file = Path(args.port_file).absolute() if args.port_file else workdir / "emulator.json"
    if port_file.exists():
        port_file.unlink()
    _setup_logging(args.log_level)
    try:
        return _demo_in(args, workdir, port_file)
    finally:
        # The demo's cache, state and emulator files live only as long as the demo.
        shutil.rmtree(workdir, ignore_errors=True)


def _demo_in(args: argparse.Namespace, workdir: Path, port_file: Path) -> int:
    try:
        proc, info = _start_emulator(port_file, args.seed)
    except RuntimeError as exc:
        print(f"rcfs demo: {exc}", file=sys.stderr)
        return 1
    admin = next(u for u in info["users"] if u["admin"])
    cfg = Config(server=info["platform_url"], media_server=info["media_url"],
                 client_id=info["client_id"], client_secret=info["client_secret"],
                 jwt=admin["jwt"], cache_dir=str(workdir / "cache"),
                 state_dir=str(workdir / "state"), ca_cert=info.get("ca_cert") or "",
                 log_level=args.log_level)
    mountpoint = Path(args.mountpoint).absolute()
    mountpoint.mkdir(parents=True, exist_ok=True)
    folder = f"{admin['extension_number']} {admin['name']}"
    tour = f"""
rcfs demo: the demo account is mounted at {mountpoint}
(a local RingCentral emulator at {info['platform_url']}; its URLs and credentials: {port_file})

Try, in another terminal:
  ls "{mountpoint}"                                   # one folder per mailbox
  ls -l "{mountpoint}/{folder}/Voicemail"/*            # voicemails by month
  ffprobe "$(ls -d "{mountpoint}/{folder}/Recordings"/*/* | head -1)"
  pdfinfo "$(ls -d "{mountpoint}/{folder}/Fax"/*/*.pdf | head -1)"
  getfattr -d "$(ls -d "{mountpoint}/{folder}/Texts"/*/* | head -1)"
  rcfs status {mountpoint}

Press Ctrl-C to unmount and stop the emulator.
"""
    try:
        code = _run_mount(cfg, mountpoint, tour=tour)
    except KeyboardInterrupt:
        code = 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    if code != 0:
        print(f"rcfs demo: the mount did not come up at {mountpoint}", file=sys.stderr)
    return code


# -- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rcfs", description="Mount a RingCentral account.")
    p.add_argument("--version", action="version", version=f"rcfs {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("mount", help="mount the account (foreground; --daemon to detach)")
    m.add_argument("mountpoint")
    _add_config_flags(m, MOUNT_FLAGS)
    m.add_argument("--allow-other", action="store_true", help="let other users see the mount")
    m.add_argument("--allow-delete", action="store_true",
                   help="rm of a message moves it to RingCentral's Deleted state")
    m.add_argument("--notify", action=argparse.BooleanOptionalAction, default=None,
                   help="desktop notifications of new voicemails, faxes and texts")
    m.add_argument("--push", action=argparse.BooleanOptionalAction, default=None,
                   help="push events over RingCentral's WebSocket (default on); "
                        "--no-push polls every refresh_interval")
    m.add_argument("--daemon", action="store_true", help="detach once the mount answers")
    m.add_argument("--notify-fd", type=int, help=argparse.SUPPRESS)
    m.set_defaults(func=_mount)

    u = sub.add_parser("unmount", help="unmount a mountpoint")
    u.add_argument("mountpoint")
    u.add_argument("--lazy", action="store_true", help="detach even if busy")
    u.set_defaults(func=_unmount)

    s = sub.add_parser("status", help="requests, budgets, cache and outbox of a mount")
    s.add_argument("mountpoint", nargs="?")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_status)

    li = sub.add_parser("login", help="log in (browser, PKCE) or with the configured JWT")
    _add_config_flags(li)
    li.add_argument("--no-browser", action="store_true", help="print the URL instead")
    li.add_argument("--timeout", type=float, default=300.0)
    li.set_defaults(func=_login)

    lo = sub.add_parser("logout", help="revoke and forget the stored session")
    _add_config_flags(lo)
    lo.set_defaults(func=_logout)

    d = sub.add_parser("demo", help="mount a demo account served by a local emulator")
    d.add_argument("mountpoint", nargs="?", default="RingCentral-demo")
    d.add_argument("--port-file", help="write the emulator's URLs and credentials here")
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--log-level", default="warning")
    d.set_defaults(func=_demo)

    sub.add_parser("emulator", help="run the local RingCentral emulator (see its --help)",
                   add_help=False)
    from rcfs.cli_offline import add_commands

    add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "emulator":
        return subprocess.call([sys.executable, "-m", "rcfs.emulator", *argv[1:]])
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
