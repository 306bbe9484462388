"""The ``rcfs`` command: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rcfs import __version__
from rcfs.proc import die_with_parent


def _emulator(argv: list[str]) -> int:
    # A separate process by design: the product never imports the emulator.
    return subprocess.call([sys.executable, "-m", "rcfs.emulator", *argv])


def _demo(args: argparse.Namespace) -> int:
    """Start the emulator with its demo account and show how to reach it."""
    workdir = Path(tempfile.mkdtemp(prefix="rcfs-demo-"))
    port_file = Path(args.port_file) if args.port_file else workdir / "emulator.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rcfs.emulator", "--data-seed", str(args.seed),
         "--port-file", str(port_file)],
        preexec_fn=die_with_parent,
    )
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            print("rcfs demo: the emulator did not start", file=sys.stderr)
            proc.kill()
            return 1
        time.sleep(0.05)
    info = json.loads(port_file.read_text())
    admin = next(u for u in info["users"] if u["admin"])
    print(f"""
rcfs demo: a RingCentral emulator is running with a demo account.

  platform API : {info['platform_url']}/restapi/v1.0
  media        : {info['media_url']}
  emulator admin API: {info['admin_url']}/_emulator/summary
  port file (URLs + credentials): {port_file}

Log in as the admin ({admin['extension_number']} {admin['name']}) with the JWT grant:

  curl -s -u '{info['client_id']}:{info['client_secret']}' \\
    -d grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer \\
    -d assertion=$(python3 -c "import json;print(json.load(open('{port_file}'))['users'][0]['jwt'])") \\
    {info['platform_url']}/restapi/oauth/token

then list voicemails and faxes of the last two years:

  curl -s -H "Authorization: Bearer $TOKEN" \\
    '{info['platform_url']}/restapi/v1.0/account/~/extension/~/message-store?dateFrom=2000-01-01'

Press Ctrl-C to stop.
""", flush=True)
    try:
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rcfs", description="Mount a RingCentral account.")
    p.add_argument("--version", action="version", version=f"rcfs {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("emulator", help="run the local RingCentral emulator (see --help)",
                   add_help=False)
    demo = sub.add_parser("demo", help="start the emulator with the demo account")
    demo.add_argument("--port-file", help="write the emulator's URLs and credentials here")
    demo.add_argument("--seed", type=int, default=1)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "emulator":
        return _emulator(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    return 2


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
