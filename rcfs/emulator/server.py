"""Command line and process: bind loopback ports, serve the three origins with uvicorn, and
write the port file once everything answers."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvicorn

from rcfs.emulator.app import make_admin_app, make_api_app
from rcfs.emulator.config import EmulatorConfig, parse_limits
from rcfs.emulator.core import Emulator
from rcfs.emulator.seed import build_store


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m rcfs.emulator",
                                description="Local RingCentral API emulator")
    p.add_argument("--data-seed", type=int, default=1, help="seed of the generated account")
    p.add_argument("--scale", type=int, default=0,
                   help="extra messages per extension (media generated on demand)")
    p.add_argument("--tls", action="store_true", help="serve HTTPS with a generated test CA")
    p.add_argument("--port-file", type=Path, help="write URLs and credentials here as JSON")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--platform-port", type=int, default=0)
    p.add_argument("--media-port", type=int, default=0)
    p.add_argument("--admin-port", type=int, default=0)
    p.add_argument("--limits", help="e.g. Light=50,Medium=40,Heavy=10,Auth=5")
    p.add_argument("--window", type=float, help="rate-limit window, seconds (default 60)")
    p.add_argument("--penalty", type=float, help="rate-limit penalty, seconds (default 60)")
    p.add_argument("--config", type=Path, help="JSON file of settings (see config.py)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="override one setting, e.g. --set fax_seconds_per_page=0.1")
    p.add_argument("--fault", action="append", default=[], metavar="JSON",
                   help='fault rule, e.g. \'{"kind":"short206","path":"/content"}\'')
    p.add_argument("--fault-file", type=Path, help="JSON list of fault rules")
    p.add_argument("--media-origin", default="",
                   help="hand out content URIs on this origin (e.g. a local nginx), writing "
                        "their files under --media-dir (benchmarks: one server for all)")
    p.add_argument("--media-dir", type=Path, help="where --media-origin's files are written")
    p.add_argument("--log-level", default="warning")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> EmulatorConfig:
    cfg = EmulatorConfig.from_file(args.config) if args.config else EmulatorConfig()
    cfg.seed = args.data_seed
    cfg.scale = args.scale
    cfg.tls = args.tls
    cfg.host = args.host
    if args.limits:
        cfg.limits = parse_limits(args.limits)
    if args.window is not None:
        cfg.window = args.window
    if args.penalty is not None:
        cfg.penalty = args.penalty
    for item in args.set:
        key, _, raw = item.partition("=")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        cfg.update({key: value})
    if args.fault_file:
        cfg.faults.extend(json.loads(args.fault_file.read_text()))
    cfg.faults.extend(json.loads(f) for f in args.fault)
    if args.media_origin:
        if args.media_dir is None:
            raise SystemExit("--media-origin needs --media-dir (where its files go)")
        cfg.media_origin, cfg.media_dir = args.media_origin, str(args.media_dir.resolve())
    return cfg


def _bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only when the
    # listening socket says it is TCP, and without it Nagle's algorithm and the client's
    # delayed ACK held every small response's body back ~40 ms after its headers.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to us (three run in one loop)."""

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        pass

    def capture_signals(self) -> Any:  # uvicorn >= 0.29
        import contextlib

        return contextlib.nullcontext()


def _tls_files(workdir: Path) -> tuple[Path, Path, Path]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
    ca_path = workdir / "emulator-ca.pem"
    cert_path = workdir / "emulator-cert.pem"
    key_path = workdir / "emulator-key.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(cert_path), append=True)
    cert.private_key_pem.write_to_path(str(key_path))
    return ca_path, cert_path, key_path


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=path.name + ".")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _info(emu: Emulator, urls: dict[str, str], ca_path: Path | None) -> dict[str, Any]:
    """What the emulator tells its starter (stdout or ``--port-file``, and ``/_emulator``):
    its URLs, CA, app credentials, account and users (with a JWT each), pid and limits."""
    store, cfg = emu.store, emu.config
    return {
        "platform_url": urls["platform"],
        "media_url": urls["media"],
        "admin_url": urls["admin"],
        "ca_cert": str(ca_path) if ca_path else None,
        "client_id": emu.tokens.server_app.client_id,
        "client_secret": emu.tokens.server_app.secret,
        "public_client_id": emu.tokens.public_app.client_id,
        "limited_client_id": emu.tokens.limited_app.client_id,
        "limited_client_secret": emu.tokens.limited_app.secret,
        "redirect_uris": cfg.redirect_uris,
        "account_id": str(store.account_id),
        "main_number": store.main_number,
        "users": [
            {"extension_id": str(e.id), "extension_number": e.number, "name": e.name,
             "admin": e.admin, "jwt": emu.tokens.make_jwt(e.id),
             "phone_numbers": [n.phone_number for n in e.phone_numbers]}
            for e in store.extensions.values() if e.type == "User"
        ],
        "pid": os.getpid(),
        "config": {"limits": cfg.limits, "window": cfg.window, "penalty": cfg.penalty},
    }


async def serve(cfg: EmulatorConfig, args: argparse.Namespace) -> None:
    store = build_store(cfg, time.time())
    emu = Emulator(cfg, store)
    scheme = "https" if cfg.tls else "http"
    socks = {
        "platform": _bind(cfg.host, args.platform_port),
        "media": _bind(cfg.host, args.media_port),
        "admin": _bind(cfg.host, args.admin_port),
    }
    urls = {name: f"{scheme}://{cfg.host}:{s.getsockname()[1]}" for name, s in socks.items()}
    emu.platform_url, emu.media_url, emu.admin_url = urls["platform"], urls["media"], urls["admin"]
    ssl_kw: dict[str, Any] = {}
    ca_path = None
    own_tls_dir: Path | None = None  # removed when the emulator stops
    if cfg.tls:
        if args.port_file:
            workdir = args.port_file.resolve().parent
        else:
            workdir = own_tls_dir = Path(tempfile.mkdtemp(prefix="rcfs-emulator-tls-"))
        ca_path, cert_path, key_path = _tls_files(workdir)
        ssl_kw = {"ssl_certfile": str(cert_path), "ssl_keyfile": str(key_path)}
    apps = {
        "platform": make_api_app(emu, "platform"),
        "media": make_api_app(emu, "media"),
        "admin": make_admin_app(emu),
    }
    servers = []
    for name, app in apps.items():
        config = uvicorn.Config(app, log_level=args.log_level, access_log=False,
                                lifespan="off", timeout_keep_alive=30, server_header=False,
                                ws="wsproto",
                                **ssl_kw)
        servers.append((_Server(config), socks[name]))

    info = _info(emu, urls, ca_path)
    for app in apps.values():
        inner: Any = getattr(app, "app", app)
        inner.state.info = info

    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server, _ in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)

    tasks = [asyncio.create_task(server.serve(sockets=[sock])) for server, sock in servers]
    while not all(server.started for server, _ in servers):
        if any(t.done() for t in tasks):
            break
        await asyncio.sleep(0.01)
    if all(server.started for server, _ in servers):
        if args.port_file:
            _write_atomic(args.port_file, info)
        else:
            print(json.dumps(info, indent=1), flush=True)
    try:
        await asyncio.gather(*tasks)
    finally:
        if own_tls_dir is not None:
            shutil.rmtree(own_tls_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = build_config(args)
    except (KeyError, ValueError, OSError) as exc:
        print(f"rcfs emulator: invalid configuration: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(cfg, args))
    return 0
