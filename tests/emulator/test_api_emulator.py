"""rcfs.api against the real emulator process (real HTTP, real clock, scaled windows)."""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from rcfs.api import Credentials, Priority, RcClient, TokenStore, login_with_browser
from rcfs.api.transport import HttpCore
from tests.emulator_proc import EmulatorProc, verify_for

MSG = "/restapi/v1.0/account/~/extension/~/message-store"
CALL_LOG = "/restapi/v1.0/account/~/extension/~/call-log"
SINCE = {"dateFrom": "1970-01-01T00:00:00Z", "perPage": "5"}

pytestmark = pytest.mark.slow


def credentials(emu: EmulatorProc, user: dict[str, Any] | None = None) -> Credentials:
    info = emu.info
    user = user or emu.user(admin=True)
    return Credentials(platform_url=info["platform_url"], client_id=info["client_id"],
                       client_secret=info["client_secret"], jwt=user["jwt"])


def rc_client(emu: EmulatorProc, store: TokenStore, **kw: Any) -> RcClient:
    return RcClient(credentials(emu), media_url=emu.info["media_url"], store=store,
                    verify=verify_for(emu.info), **kw)


def log_of(emu: EmulatorProc, path_part: str) -> list[dict[str, Any]]:
    return [e for e in emu.requests() if path_part in e["path"]]


async def test_twenty_callers_of_an_expired_token_make_one_token_request(
    start_emulator: Callable[..., EmulatorProc], tmp_path: Path
) -> None:
    emu = start_emulator("--data-seed", "1")
    store = TokenStore(tmp_path / "tokens.json")
    async with rc_client(emu, store) as c:
        first = await c.tokens.login_jwt()
    # A later process starts with a stored session whose access token has expired.
    store.save(dataclasses.replace(first, expires_at=time.time() - 5))
    emu.clear_requests()
    async with rc_client(emu, store) as c, trio.open_nursery() as n:
        for _ in range(20):
            n.start_soon(lambda: c.request("GET", MSG, params=SINCE, priority=Priority.LISTING))
    log = emu.requests()
    tokens = [e for e in log if e["path"] == "/restapi/oauth/token"]
    api = [e for e in log if e["path"].endswith("/message-store")]
    assert len(tokens) == 1 and tokens[0]["status"] == 200
    assert len(api) == 20 and {e["status"] for e in api} == {200}
    assert tokens[0]["seq"] < min(e["seq"] for e in api)  # no API call with the stale token
    saved = store.load()
    assert saved is not None and saved.refresh_token != first.refresh_token


async def test_revoked_session_falls_back_to_jwt_and_retries(
    start_emulator: Callable[..., EmulatorProc], tmp_path: Path
) -> None:
    emu = start_emulator("--data-seed", "1")
    async with rc_client(emu, TokenStore(tmp_path / "t.json")) as c:
        await c.tokens.login_jwt()
        await c.request("GET", MSG, params=SINCE)
        emu.admin("POST", "/_emulator/revoke", {})  # admin ends every session
        emu.clear_requests()
        r = await c.request("GET", MSG, params=SINCE)
        assert r.status_code == 200
    steps = [(e["path"].rsplit("/", 1)[-1], e["status"]) for e in emu.requests()]
    # 401 → refresh (dead session: 400) → JWT grant → retry.
    assert steps == [("message-store", 401), ("token", 400), ("token", 200),
                     ("message-store", 200)]


async def test_injected_429_means_silence_for_the_penalty(
    start_emulator: Callable[..., EmulatorProc], tmp_path: Path
) -> None:
    emu = start_emulator("--data-seed", "1", "--window", "2", "--penalty", "2")
    async with rc_client(emu, TokenStore(tmp_path / "t.json")) as c:
        await c.tokens.login_jwt()
        emu.fault(kind="status", status=429, path="message-store$", retry_after=2, skip=2,
                  count=1)
        for _ in range(6):
            await c.request("GET", MSG, params=SINCE, priority=Priority.LISTING)
        stats = c.scheduler.stats()["Light"]
    log = log_of(emu, "/message-store")
    assert [e["status"] for e in log] == [200, 200, 429, 200, 200, 200, 200]  # 6 + 1 retry
    gap = log[3]["time"] - log[2]["time"]
    assert gap >= 2.0
    assert stats["throttled_429"] == 1


async def test_real_429_from_a_shared_budget_is_waited_out(
    start_emulator: Callable[..., EmulatorProc], tmp_path: Path
) -> None:
    emu = start_emulator("--data-seed", "1", "--limits", "Light=50,Medium=40,Heavy=3,Auth=5",
                         "--window", "2", "--penalty", "2")
    async with rc_client(emu, TokenStore(tmp_path / "t.json")) as c:
        tok = (await c.tokens.login_jwt()).access_token
        # "Another process" of the same user+app spends the whole Heavy window.
        async with httpx.AsyncClient(base_url=emu.info["platform_url"],
                                     headers={"Authorization": f"Bearer {tok}"}) as other:
            for _ in range(3):
                assert (await other.get(CALL_LOG, params=SINCE)).status_code == 200
        # Ours gets the 429, goes silent for the penalty, then succeeds; later calls are
        # paced by the headers (limit 3 per 2 s) and never throttled again.
        for _ in range(5):
            await c.request("GET", CALL_LOG, params=SINCE, priority=Priority.LISTING)
        assert c.scheduler.stats()["Heavy"]["limit"] == 3
    log = log_of(emu, "/call-log")
    statuses = [e["status"] for e in log]
    assert statuses == [200, 200, 200, 429, 200, 200, 200, 200, 200]
    assert log[4]["time"] - log[3]["time"] >= 2.0
    assert all(e["group"] in ("Heavy", None) for e in log)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as trio's listener does
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def test_pkce_browser_login(
    start_emulator: Callable[..., EmulatorProc], tmp_path: Path
) -> None:
    emu = start_emulator("--data-seed", "1")
    redirect = emu.info["redirect_uris"][0]
    if not _port_free(httpx.URL(redirect).port or 80):
        pytest.skip("the registered loopback redirect port is busy")
    creds = Credentials(platform_url=emu.info["platform_url"],
                        client_id=emu.info["public_client_id"], redirect_uri=redirect)

    def browser(url: str) -> None:  # follows the emulator's 302 back to our listener
        with httpx.Client(follow_redirects=True, verify=verify_for(emu.info)) as h:
            assert h.get(url).status_code == 200

    store = TokenStore(tmp_path / "t.json")
    core = HttpCore(creds.platform_url, verify=verify_for(emu.info))
    ts = await login_with_browser(creds, browser, timeout=30, store=store, core=core)
    await core.aclose()
    assert store.load() == ts and ts.refresh_token
    # The stored session works, and refreshing a public client's token needs no secret.
    async with RcClient(creds, media_url=emu.info["media_url"], store=store) as c:
        await c.tokens.refresh()
        r = await c.request("GET", MSG, params=SINCE)
    assert r.status_code == 200
    forms = [e for e in emu.requests() if e["path"] == "/restapi/oauth/token"]
    assert [e["status"] for e in forms] == [200, 200]
