#!/usr/bin/env python3
"""Benchmark: download every attachment of a seeded mailbox through RcClient.

Starts an emulator process (``python -m rcfs.emulator``) at RingCentral's default limits
(Light 50, Medium 40, Heavy 10 per 60 s) unless ``--port-file`` points at a running one,
lists one mailbox, downloads every attachment with ``rcfs.api.content`` through the
client's scheduler, then prints, from the emulator's request log:

* requests sent (listing, content) and 429s received,
* wall time,
* the rate-limit floor: content requests / Medium limit per minute × 60 s, and the ratio
  download time / floor (1.0 = as fast as the budget allows; the first window's burst makes
  it lower than 1), plus the sliding-window floor (one window per batch of ``limit``
  requests after the first).

Why: attachment downloads are capped by the Medium budget; the client must approach that
floor without ever provoking a 429 (a 429 costs a whole 60 s penalty for the group).

Usage: .venv/bin/python scripts/bench_api_download.py [--seed 1] [--ext NUMBER|ID]
       [--workers 4] [--limits Light=50,Medium=40,Heavy=10,Auth=5] [--port-file FILE]
       [--fault '{"kind":"reset","path":"/content/","probability":0.3}']
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rcfs.api import Credentials, Priority, RcClient  # noqa: E402
from rcfs.api.content import fetch_range  # noqa: E402
from rcfs.api.listing import list_messages  # noqa: E402
from rcfs.api.models import Attachment  # noqa: E402

DEFAULT_MEDIUM = 40


def start_emulator(seed: int, limits: str | None, faults: list[str],
                   workdir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    port_file = workdir / "emulator.json"
    args = [sys.executable, "-m", "rcfs.emulator", "--data-seed", str(seed),
            "--port-file", str(port_file)]
    if limits:
        args += ["--limits", limits]
    for fault in faults:
        args += ["--fault", fault]
    log = open(workdir / "emulator.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"emulator did not start; see {workdir / 'emulator.log'}")
        time.sleep(0.05)
    time.sleep(0.05)  # the file is written whole, but give the writer a moment
    return proc, port_file


def pick_user(info: dict[str, Any], ext: str | None) -> dict[str, Any]:
    users: list[dict[str, Any]] = info["users"]
    if ext is None:
        return next(u for u in users if u["admin"])
    for u in users:
        if ext in (str(u["extension_id"]), str(u["extension_number"])):
            return u
    raise SystemExit(f"no user with extension id/number {ext}")


async def run(info: dict[str, Any], user: dict[str, Any], workers: int) -> dict[str, Any]:
    creds = Credentials(platform_url=info["platform_url"], client_id=info["client_id"],
                        client_secret=info["client_secret"], jwt=user["jwt"])
    verify: Any = True
    if info.get("ca_cert"):
        import ssl
        verify = ssl.create_default_context(cafile=info["ca_cert"])
    async with RcClient(creds, media_url=info["media_url"], verify=verify) as client:
        await client.tokens.login_jwt()
        t0 = trio.current_time()
        messages = await list_messages(client, str(user["extension_id"])).collect()
        attachments: list[Attachment] = [a for m in messages for a in m.attachments]
        listed = trio.current_time()
        total_bytes = 0
        extra_requests = 0
        send, receive = trio.open_memory_channel[Attachment](len(attachments))
        for a in attachments:
            send.send_nowait(a)
        send.close()

        async def worker() -> None:
            nonlocal total_bytes, extra_requests
            async for att in receive:
                # Bulk download: queue for budget rather than fail fast, hence the long
                # deadline; METADATA is below INTERACTIVE so a real reader would go first.
                async with fetch_range(client, att.uri, priority=Priority.METADATA,
                                       deadline=client.deadline_in(3600)) as reader:
                    async for _offset, chunk in reader:
                        total_bytes += len(chunk)
                extra_requests += reader.continuations

        async with trio.open_nursery() as nursery:
            for _ in range(workers):
                nursery.start_soon(worker)
        done = trio.current_time()
        return {"messages": len(messages), "attachments": len(attachments),
                "bytes": total_bytes, "continuations": extra_requests,
                "list_s": listed - t0, "download_s": done - listed, "wall_s": done - t0,
                "scheduler": client.scheduler.stats()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ext", help="extension id or number (default: the admin user)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--limits", help="emulator limits (default: RingCentral's defaults)")
    parser.add_argument("--port-file", type=Path, help="use an already running emulator")
    parser.add_argument("--fault", action="append", default=[],
                        help='emulator fault rule (repeatable), e.g. '
                             '\'{"kind":"reset","path":"/content/","probability":0.3}\'')
    args = parser.parse_args()

    proc = None
    if args.port_file:
        port_file = args.port_file
    else:
        workdir = Path(tempfile.mkdtemp(prefix="rcfs-bench-"))
        proc, port_file = start_emulator(args.seed, args.limits, args.fault, workdir)
    try:
        info = json.loads(port_file.read_text())
        admin = httpx.Client(base_url=info["admin_url"], timeout=30)
        user = pick_user(info, args.ext)
        medium = int((info.get("config") or {}).get("limits", {}).get("Medium",
                                                                      DEFAULT_MEDIUM))
        start_seq = len(admin.get("/_emulator/requests").json())
        result = trio.run(run, info, user, args.workers)
        log = [e for e in admin.get("/_emulator/requests").json() if e["seq"] >= start_seq]
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

    content = [e for e in log if "/content" in e["path"]]
    statuses = Counter(e["status"] for e in log)
    by_group = Counter(str(e.get("group")) for e in log)
    floor = len(content) / medium * 60.0
    print(f"mailbox            : ext {user['extension_number']} ({user['name']}), "
          f"{result['messages']} messages, {result['attachments']} attachments, "
          f"{result['bytes']:,} bytes")
    print(f"requests sent      : {len(log)} total; {len(content)} content "
          f"({result['continuations']} continuations); by group {dict(by_group)}")
    print(f"statuses           : {dict(statuses)}")
    print(f"429s received      : {statuses.get(429, 0)}")
    print(f"wall time          : {result['wall_s']:.1f} s (listing {result['list_s']:.1f} s, "
          f"downloads {result['download_s']:.1f} s, {args.workers} workers)")
    print(f"rate-limit floor   : {len(content)} / {medium} per min x 60 s = {floor:.1f} s")
    ratio = result["download_s"] / floor if floor else float("nan")
    print(f"ratio              : {ratio:.2f} (download time / floor)")
    # With a sliding window the first `limit` requests may go at once, so the true minimum
    # is one window per further batch of `limit` requests.
    burst_floor = (math.ceil(len(content) / medium) - 1) * 60.0 if content else 0.0
    burst_ratio = result["download_s"] / burst_floor if burst_floor else float("nan")
    print(f"sliding-window floor: {burst_floor:.1f} s (ratio {burst_ratio:.2f})")
    print(f"scheduler          : {json.dumps(result['scheduler'])}")


if __name__ == "__main__":
    main()
