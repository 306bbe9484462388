"""Tokens: store on disk, single-flight refresh, fallbacks, PKCE login, revoke."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import time
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from rcfs.api import (
    AuthRequiredError,
    LoginError,
    TokenSet,
    TokenStore,
    authorize_url,
    login_with_browser,
    make_pkce,
    state_dir,
)
from rcfs.api.transport import HttpCore
from tests.api_fakes import (
    MEDIA,
    PLATFORM,
    SECRET_MARKERS,
    FakeRC,
    client,
    creds,
    json_response,
    tokens,
)

MSG = "/restapi/v1.0/account/~/extension/~/message-store"
DEAD_REFRESH = json_response(400, {
    "error": "invalid_grant", "error_description": "Token not found",
    "errors": [{"errorCode": "OAU-213", "message": "Token not found"}]})


# -- TokenSet / TokenStore --------------------------------------------------------------------


def test_tokenset_from_response_and_repr_hides_tokens() -> None:
    ts = TokenSet.from_response(
        {"access_token": "AT-secret-9", "expires_in": 2717, "refresh_token": "RT-secret-9",
         "refresh_token_expires_in": 604799, "scope": "A B", "owner_id": 256440016,
         "token_type": "Bearer"}, now=1000.0)
    assert ts.expires_at == 3717.0 and ts.refresh_expires_at == 605799.0
    assert ts.owner_id == "256440016"
    assert "secret" not in repr(ts)
    kept = TokenSet.from_response({"access_token": "AT-secret-10", "expires_in": 60}, 5.0,
                                  previous=ts)
    assert kept.refresh_token == "RT-secret-9"
    with pytest.raises(ValueError):
        TokenSet.from_response({"error": "x"}, 0)


def test_state_dir_honours_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_dir() == tmp_path / "xdg" / "rcfs"
    assert TokenStore().path == tmp_path / "xdg" / "rcfs" / "tokens.json"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert state_dir() == tmp_path / "home" / ".local" / "state" / "rcfs"


def test_store_roundtrip_is_private_and_atomic(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "state" / "rcfs" / "tokens.json")
    assert store.load() is None
    ts = tokens()
    store.save(ts)
    assert store.load() == ts
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    store.save(ts2 := tokens(access="AT-secret-2"))
    assert store.load() == ts2
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["tokens.json"]  # no temps
    store.clear()
    assert store.load() is None
    store.clear()  # idempotent


def test_store_tolerates_corrupt_and_fixes_mode(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    for junk in (b"", b"{not json", b"[]", b'{"tokens": {"access_token": 5}}', b"\xff\xfe"):
        store.path.write_bytes(junk)
        assert store.load() is None
    store.save(tokens())
    os.chmod(store.path, 0o644)
    assert store.load() is not None
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_credentials_repr_hides_secrets() -> None:
    c = creds(jwt="jwt-secret-1")
    assert "client-secret-xyz" not in repr(c) and "jwt-secret" not in repr(c)


# -- TokenManager ----------------------------------------------------------------------------


async def test_twenty_callers_of_an_expired_token_make_one_request() -> None:
    fake = FakeRC(token_delay=0.2)
    got: list[str] = []
    async with client(fake, ts=tokens(expires_in=-10)) as c:
        async def one() -> None:
            got.append(await c.tokens.access_token())

        async with trio.open_nursery() as n:
            for _ in range(20):
                n.start_soon(one)
    assert len(fake.token_forms) == 1
    assert got == ["AT-secret-1"] * 20
    assert fake.token_forms[0] == {"grant_type": "refresh_token", "refresh_token": "RT-secret-0"}


async def test_proactive_refresh_inside_the_margin() -> None:
    fake = FakeRC()
    async with client(fake, ts=tokens(expires_in=30)) as c:
        assert await c.tokens.access_token() == "AT-secret-1"  # 30 s < 60 s margin
    async with client(fake, ts=tokens(expires_in=90)) as c:
        assert await c.tokens.access_token() == "AT-secret-0"
    assert len(fake.token_forms) == 1


async def test_short_lived_token_does_not_loop() -> None:
    fake = FakeRC(access_lifetime=20)  # shorter than the 60 s margin
    async with client(fake, ts=tokens(expires_in=-1)) as c:
        assert await c.tokens.access_token() == "AT-secret-1"
    assert len(fake.token_forms) == 1


async def test_invalidate_only_the_current_token() -> None:
    fake = FakeRC()
    async with client(fake) as c:
        c.tokens.invalidate("AT-something-else")
        assert await c.tokens.access_token() == "AT-secret-0"
        c.tokens.invalidate("AT-secret-0")
        assert await c.tokens.access_token() == "AT-secret-1"
        c.tokens.invalidate("AT-secret-0")  # stale 401 from before the refresh: no-op
        assert await c.tokens.access_token() == "AT-secret-1"
    assert len(fake.token_forms) == 1


async def test_dead_refresh_token_falls_back_to_jwt() -> None:
    fake = FakeRC(token_error=DEAD_REFRESH)
    async with client(fake, ts=tokens(expires_in=-1),
                      credentials=creds(jwt="jwt-secret-1")) as c:
        assert await c.tokens.access_token() == "AT-secret-1"
    grants = [f["grant_type"] for f in fake.token_forms]
    assert grants == ["refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer"]
    assert fake.token_forms[1]["assertion"] == "jwt-secret-1"
    basic = base64.b64encode(b"client-id-1:client-secret-xyz").decode()
    assert fake.token_headers[1]["Authorization"] == f"Basic {basic}"


async def test_dead_refresh_token_without_jwt_requires_login() -> None:
    fake = FakeRC(token_error=DEAD_REFRESH)
    async with client(fake, ts=tokens(expires_in=-1)) as c:
        with pytest.raises(AuthRequiredError, match="rcfs login"):
            await c.request("GET", MSG)
    assert fake.api_requests() == []


async def test_rejected_jwt_requires_login() -> None:
    fake = FakeRC(token_error=DEAD_REFRESH, jwt_error=json_response(400, {
        "error": "invalid_grant", "errors": [{"errorCode": "OAU-210", "message": "x"}]}))
    async with client(fake, ts=tokens(expires_in=-1), credentials=creds(jwt="jwt-secret-1")) as c:
        with pytest.raises(AuthRequiredError, match="JWT"):
            await c.tokens.access_token()


async def test_followers_share_the_leaders_auth_failure() -> None:
    fake = FakeRC(token_error=DEAD_REFRESH, token_delay=0.1)
    errors: list[BaseException] = []
    async with client(fake, ts=tokens(expires_in=-1)) as c:
        async def one() -> None:
            try:
                await c.tokens.access_token()
            except AuthRequiredError as exc:
                errors.append(exc)

        async with trio.open_nursery() as n:
            for _ in range(5):
                n.start_soon(one)
    assert len(errors) == 5 and len(fake.token_forms) == 1


async def test_cancelled_leader_hands_over_to_a_follower(autojump_clock: trio.abc.Clock
                                                          ) -> None:
    """The leader's refresh is cancelled before any answer: the waiting follower refreshes
    itself (with the same refresh token, which the server never consumed) and gets the one
    token the server issued. Virtual time: the order of events is fixed, not raced."""
    fake = FakeRC(token_delay=0.3)
    async with client(fake, ts=tokens(expires_in=-1)) as c:
        result: list[str] = []
        async with trio.open_nursery() as n:
            leader = trio.CancelScope()

            async def lead() -> None:
                with leader:
                    await c.tokens.access_token()

            async def follow() -> None:
                result.append(await c.tokens.access_token())

            n.start_soon(lead)
            await trio.sleep(0.05)
            n.start_soon(follow)
            await trio.sleep(0.05)
            leader.cancel()
    assert result == ["AT-secret-1"]
    assert [f["refresh_token"] for f in fake.token_forms] == ["RT-secret-0", "RT-secret-0"]


async def test_public_client_sends_client_id_and_no_basic() -> None:
    fake = FakeRC()
    async with client(fake, ts=tokens(expires_in=-1), credentials=creds(secret=None)) as c:
        await c.tokens.access_token()
    assert "Authorization" not in fake.token_headers[0]
    assert fake.token_forms[0]["client_id"] == "client-id-1"
    assert fake.token_headers[0]["Content-Type"] == "application/x-www-form-urlencoded"


async def test_refresh_token_persisted_before_the_access_token_is_used(tmp_path: Path) -> None:
    fake = FakeRC()
    seen: list[tuple[str | None, str | None]] = []
    holder: list[Any] = []

    class SpyStore(TokenStore):
        def save(self, ts: TokenSet) -> None:
            cur = holder[0].tokens.current
            seen.append((ts.refresh_token, cur.access_token if cur else None))
            super().save(ts)

    store = SpyStore(tmp_path / "tokens.json")
    TokenStore(store.path).save(tokens(expires_in=-1))
    async with client(fake, ts=None, store=store) as c:
        holder.append(c)
        await c.request("GET", MSG)
    # Saved while the manager still handed out the old token; the API saw the new one.
    assert seen == [("RT-secret-1", "AT-secret-0")]
    assert fake.api_requests()[0].headers["Authorization"] == "Bearer AT-secret-1"
    loaded = TokenStore(tmp_path / "tokens.json").load()
    assert loaded is not None and loaded.refresh_token == "RT-secret-1"
    assert loaded.platform_url == PLATFORM and loaded.client_id == "client-id-1"


async def test_adopts_a_session_refreshed_by_another_process(tmp_path: Path) -> None:
    fake = FakeRC(valid_access={"AT-other"})
    store = TokenStore(tmp_path / "tokens.json")
    async with client(fake, ts=tokens(expires_in=-1), store=store) as c:
        store.save(tokens(access="AT-other", refresh="RT-other"))
        assert await c.tokens.access_token() == "AT-other"
    assert fake.token_forms == []


async def test_session_from_another_server_is_ignored(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    store.save(TokenSet(access_token="AT-secret-x", refresh_token="RT-secret-x",
                        expires_at=time.time() + 999, platform_url="https://other.example"))
    async with client(FakeRC(), ts=None, store=store) as c:
        with pytest.raises(AuthRequiredError):
            await c.tokens.access_token()


async def test_revoke_posts_and_forgets(tmp_path: Path) -> None:
    fake = FakeRC()
    store = TokenStore(tmp_path / "tokens.json")
    store.save(tokens())
    async with client(fake, ts=None, store=store) as c:
        await c.tokens.revoke()
        assert c.tokens.current is None
    revoke = [r for r in fake.requests if r.url.path == "/restapi/oauth/revoke"]
    assert len(revoke) == 1
    assert urllib.parse.parse_qs(revoke[0].content.decode()) == {"token": ["RT-secret-0"]}
    assert revoke[0].headers["Authorization"].startswith("Basic ")
    assert store.load() is None


async def test_token_calls_are_scheduled_in_auth_group() -> None:
    fake = FakeRC()
    async with client(fake, ts=tokens(expires_in=-1)) as c:
        await c.tokens.access_token()
        st = c.scheduler.stats()["Auth"]
    assert st["sent"] == 1 and st["remaining"] == 4


# -- PKCE and browser login -------------------------------------------------------------------


def test_make_pkce_s256() -> None:
    verifier, challenge = make_pkce()
    assert 43 <= len(verifier) <= 128 and "=" not in verifier + challenge
    assert set(verifier) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    digest = hashlib.sha256(verifier.encode()).digest()
    assert challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert make_pkce()[0] != verifier


def test_authorize_url() -> None:
    c = creds(secret=None)
    url = httpx.URL(authorize_url(c, "st8", "chal"))
    assert str(url).startswith(f"{PLATFORM}/restapi/oauth/authorize?")
    q = dict(url.params)
    assert q == {"response_type": "code", "client_id": "client-id-1",
                 "redirect_uri": c.redirect_uri, "state": "st8", "code_challenge": "chal",
                 "code_challenge_method": "S256"}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def browser(tamper_state: bool = False, error: str | None = None) -> Any:
    """A fake browser: 'logs in' by calling the redirect URI like the real server would."""
    def open_url(url: str) -> None:
        q = dict(httpx.URL(url).params)
        with httpx.Client() as h:
            h.get(q["redirect_uri"].replace("/callback", "/favicon.ico"))
            params = {"code": "the-code", "state": "forged" if tamper_state else q["state"]}
            if error:
                params = {"error": error, "error_description": "denied", "state": q["state"]}
            r = h.get(q["redirect_uri"], params=params)
            assert r.status_code == 200
    return open_url


async def test_login_with_browser_exchanges_the_code(tmp_path: Path) -> None:
    fake = FakeRC()
    c = creds(secret=None)
    c = type(c)(c.platform_url, c.client_id, None, None,
                f"http://localhost:{free_port()}/callback")
    core = HttpCore(PLATFORM, MEDIA, transport=fake.transport())
    store = TokenStore(tmp_path / "tokens.json")
    ts = await login_with_browser(c, browser(), timeout=30, store=store, core=core)
    await core.aclose()
    assert ts.access_token == "AT-secret-1"
    assert store.load() == ts
    form = fake.token_forms[0]
    assert form["grant_type"] == "authorization_code" and form["code"] == "the-code"
    assert form["redirect_uri"] == c.redirect_uri and form["client_id"] == "client-id-1"
    assert len(form["code_verifier"]) >= 43
    assert "Authorization" not in fake.token_headers[0]


@pytest.mark.parametrize("tamper,error", [(True, None), (False, "access_denied")])
async def test_login_rejects_forged_state_or_error(tmp_path: Path, tamper: bool,
                                                   error: str | None) -> None:
    fake = FakeRC()
    c = creds(secret=None)
    c = type(c)(c.platform_url, c.client_id, None, None,
                f"http://127.0.0.1:{free_port()}/callback")
    core = HttpCore(PLATFORM, MEDIA, transport=fake.transport())
    with pytest.raises(LoginError):
        await login_with_browser(c, browser(tamper, error), timeout=30,
                                 store=TokenStore(tmp_path / "t.json"), core=core)
    await core.aclose()
    assert fake.token_forms == []


async def test_login_times_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = creds(secret=None)
    c = type(c)(c.platform_url, c.client_id, None, None,
                f"http://127.0.0.1:{free_port()}/callback")
    from rcfs.api import DeadlineExceededError

    with pytest.raises(DeadlineExceededError):
        await login_with_browser(c, None, timeout=0.2, store=TokenStore(tmp_path / "t.json"))
    assert "/restapi/oauth/authorize?" in capsys.readouterr().err


def test_no_secret_in_saved_json_keys_but_tokens_present(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    store.save(tokens())
    doc = json.loads(store.path.read_text())
    assert doc["format"] == 1 and doc["tokens"]["access_token"] == "AT-secret-0"
    assert not any(m in json.dumps(doc) for m in SECRET_MARKERS[2:])
