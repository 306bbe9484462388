"""Start and control an emulator process for tests and benchmarks (never imported by rcfs)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from rcfs.proc import die_with_parent

ROOT = Path(__file__).resolve().parent.parent


def verify_for(info: dict[str, Any]) -> ssl.SSLContext | bool:
    """TLS verification against the emulator's generated CA (or default for plain http)."""
    ca = info.get("ca_cert")
    return ssl.create_default_context(cafile=ca) if ca else True


class EmulatorProc:
    """A running ``python -m rcfs.emulator``; ``info`` is its port file.

    Every exchange is recorded (``record_exchanges``) and, at ``stop()``, validated
    (tests/openapi_check.py) against RingCentral's OpenAPI spec v1.0.46 (docs/ringcentral.md
    §0) and, where the spec lacks or gets something wrong, against docs/ringcentral.md: the
    token and OAuth error shapes (§2.6, §2.9), the error shape (§4.1), and the contract ids
    of §13 checked on every exchange (A2, A8, C1, K1); the known spec defects are listed
    with their reasons in tests/openapi_rules.py. A non-conforming response raises
    ``AssertionError`` from ``stop()``, failing the test that owned the emulator.
    ``check_openapi=False`` turns both off (benchmarks, scale mode).
    """

    def __init__(self, *args: str, workdir: Path | None = None, timeout: float = 30.0,
                 check_openapi: bool = True) -> None:
        # A folder we made is removed at stop() (kept only when the spec check failed, so
        # the exchanges named in the failure can be read).
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="rcfs-emu-"))
        self.port_file = self.workdir / "emulator.json"
        self.log_path = self.workdir / "emulator.log"
        self.exchanges_path: Path | None = None
        self.check_openapi = check_openapi
        self._checked = False
        self.args = list(args)
        if check_openapi:
            self.exchanges_path = self.workdir / "exchanges.jsonl"
            self.args += ["--set", f"record_exchanges={self.exchanges_path}"]
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rcfs.emulator", "--port-file", str(self.port_file),
             *self.args],
            cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while not self.port_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"emulator exited {self.proc.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                self.stop(check=False)
                raise RuntimeError(f"emulator did not start: {self.log()}")
            time.sleep(0.02)
        self.info: dict[str, Any] = json.loads(self.port_file.read_text())
        self.http = httpx.Client(base_url=self.info["admin_url"], timeout=30,
                                 verify=verify_for(self.info))

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def user(self, admin: bool | None = None, index: int = 0) -> dict[str, Any]:
        users = [u for u in self.info["users"] if admin is None or u["admin"] == admin]
        return users[index]  # type: ignore[no-any-return]

    def admin(self, method: str, path: str, json: Any = None) -> Any:
        r = self.http.request(method, path, json=json)
        r.raise_for_status()
        return r.json() if r.content and r.headers.get("content-type", "").startswith(
            "application/json") else r.content

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        return self.admin("GET", f"/_emulator/requests?since={since}")  # type: ignore[no-any-return]

    def clear_requests(self) -> None:
        self.admin("DELETE", "/_emulator/requests")

    def fault(self, **spec: Any) -> dict[str, Any]:
        return self.admin("POST", "/_emulator/faults", spec)[0]  # type: ignore[no-any-return]

    def clear_faults(self) -> None:
        self.admin("DELETE", "/_emulator/faults")

    def advance(self, seconds: float) -> None:
        self.admin("POST", "/_emulator/clock", {"advance": seconds})

    def content(self, kind: str, ident: str) -> bytes:
        r = self.http.get(f"/_emulator/content/{kind}/{ident}")
        r.raise_for_status()
        return r.content

    def sent(self) -> list[dict[str, Any]]:
        return self.admin("GET", "/_emulator/sent")  # type: ignore[no-any-return]

    def token(self, user: dict[str, Any] | None = None) -> str:
        """A fresh access token for ``user`` (JWT grant, confidential app)."""
        user = user or self.user(admin=True)
        r = httpx.post(
            self.info["platform_url"] + "/restapi/oauth/token",
            data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                  "assertion": user["jwt"]},
            auth=(self.info["client_id"], self.info["client_secret"]),
            verify=verify_for(self.info),
        )
        r.raise_for_status()
        return r.json()["access_token"]  # type: ignore[no-any-return]

    def openapi_problems(self, checker: Any = None) -> list[Any]:
        """Spec/contract problems in the exchanges recorded so far (see openapi_check)."""
        from tests import openapi_check

        if self.exchanges_path is None:
            return []
        return openapi_check.check_file(self.exchanges_path, checker)

    def stop(self, check: bool = True) -> None:
        """Stop the process; then (once) validate its recorded exchanges, raising
        ``AssertionError`` with a readable list when a response does not conform."""
        if hasattr(self, "http"):
            # Our own keep-alive connection first: a TLS one held open would make the
            # server wait for it before exiting.
            self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        if check and self.check_openapi and not self._checked:
            self._checked = True
            from tests.openapi_spec import format_problems

            problems = self.openapi_problems()
            if problems:
                raise AssertionError(format_problems(problems, str(self.exchanges_path)))
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> EmulatorProc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def api_client(emu: EmulatorProc, user: dict[str, Any] | None = None) -> httpx.Client:
    """A plain httpx client with a bearer token, for emulator contract tests."""
    tok = emu.token(user)
    return httpx.Client(base_url=emu.info["platform_url"],
                        headers={"Authorization": f"Bearer {tok}"}, timeout=30,
                        verify=verify_for(emu.info))


def limited_client(emu: EmulatorProc, user: dict[str, Any]) -> httpx.Client:
    """A client of the emulator's "limited" app, whose scopes lack ReadCallLog,
    ReadCallRecording and EditExtensions (403 InsufficientPermissions tests)."""
    r = httpx.post(
        emu.info["platform_url"] + "/restapi/oauth/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
              "assertion": user["jwt"]},
        auth=(emu.info["limited_client_id"], emu.info["limited_client_secret"]),
        verify=verify_for(emu.info),
    )
    r.raise_for_status()
    return httpx.Client(base_url=emu.info["platform_url"], timeout=30,
                        headers={"Authorization": f"Bearer {r.json()['access_token']}"},
                        verify=verify_for(emu.info))


if os.environ.get("RCFS_EMULATOR_DEBUG"):
    print("emulator_proc loaded", file=sys.stderr)
