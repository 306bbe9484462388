"""Contract B (OAuth, docs/ringcentral.md §2, §13 B) against real emulator processes.

Time-dependent behaviour (token, code and grace lifetimes) is driven by ``emu.advance()``,
never by sleeping. Most tests share one module emulator with a huge Auth limit; those that
count sessions or Auth-group requests start their own.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.emulator_proc import EmulatorProc
from tests.mount_helper import GENEROUS_LIMITS

JWT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ACCOUNT = "/restapi/v1.0/account/~"



# -- helpers --------------------------------------------------------------------------------

def token_request(emu: EmulatorProc, data: dict[str, str], *, basic: bool = True,
                  client: tuple[str, str] | None = None, **kw: Any) -> httpx.Response:
    auth = None
    if basic:
        auth = client or (emu.info["client_id"], emu.info["client_secret"])
    return httpx.post(emu.info["platform_url"] + "/restapi/oauth/token", data=data,
                      auth=auth, **kw)


def jwt_login(emu: EmulatorProc, user: dict[str, Any] | None = None,
              client: tuple[str, str] | None = None, **extra: str) -> dict[str, Any]:
    user = user or emu.user(admin=True)
    r = token_request(emu, {"grant_type": JWT, "assertion": user["jwt"], **extra},
                      client=client)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def refresh(emu: EmulatorProc, rt: str, **kw: Any) -> httpx.Response:
    return token_request(emu, {"grant_type": "refresh_token", "refresh_token": rt}, **kw)


def api(emu: EmulatorProc, token: str, path: str = ACCOUNT, *, host: str = "platform_url",
        **kw: Any) -> httpx.Response:
    return httpx.get(emu.info[host] + path, headers={"Authorization": f"Bearer {token}"}, **kw)


def oauth_error(r: httpx.Response, status: int | tuple[int, ...], error: str,
                codes: set[str] | str) -> dict[str, Any]:
    """Assert the token-endpoint error shape of docs/ringcentral.md §2.9."""
    statuses = (status,) if isinstance(status, int) else status
    assert r.status_code in statuses, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error", "error_description", "errors"}, body
    assert body["error"] == error, body
    wanted = {codes} if isinstance(codes, str) else codes
    assert body["errors"][0]["errorCode"] in wanted, body
    assert body["errors"][0]["message"] == body["error_description"]
    return body  # type: ignore[no-any-return]


def api_error(r: httpx.Response, status: int, code: str, top: str | None = None) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["errors"][0]["errorCode"] == code, body
    if top is not None:
        assert body["errorCode"] == top, body


def pkce_pair() -> tuple[str, str]:
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize(emu: EmulatorProc, challenge: str | None, *, client_id: str | None = None,
              redirect_uri: str | None = None, state: str = "st-1",
              **extra: str) -> httpx.Response:
    params = {"response_type": "code",
              "client_id": client_id or emu.info["public_client_id"],
              "redirect_uri": redirect_uri or emu.info["redirect_uris"][0], "state": state,
              **extra}
    if challenge is not None:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    return httpx.get(emu.info["platform_url"] + "/restapi/oauth/authorize", params=params,
                     follow_redirects=False)


def code_from(r: httpx.Response) -> dict[str, str]:
    assert r.status_code == 302, (r.status_code, r.text)
    query = parse_qs(urlsplit(r.headers["location"]).query)
    return {k: v[0] for k, v in query.items()}


def exchange(emu: EmulatorProc, code: str, verifier: str | None, *,
             client_id: str | None = None, redirect_uri: str | None = None) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": redirect_uri or emu.info["redirect_uris"][0],
            "client_id": client_id or emu.info["public_client_id"]}
    if verifier is not None:
        data["code_verifier"] = verifier
    return token_request(emu, data, basic=False)


# -- B1-B5: token endpoint basics -----------------------------------------------------------

def test_b1_jwt_grant(emu: EmulatorProc) -> None:
    user = emu.user(admin=True)
    r = token_request(emu, {"grant_type": JWT, "assertion": user["jwt"]})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["x-rate-limit-group"] == "Auth"
    body = r.json()
    assert body["token_type"] == "bearer"
    assert 3599 <= body["expires_in"] <= 3600
    assert 604790 <= body["refresh_token_expires_in"] <= 604800
    assert body["access_token"] and body["refresh_token"]
    assert body["access_token"] != body["refresh_token"]
    scopes = body["scope"].split(" ")
    assert "ReadMessages" in scopes and "ReadCallLog" in scopes and "" not in scopes
    assert body["owner_id"] == user["extension_id"] and isinstance(body["owner_id"], str)
    assert body["endpoint_id"]
    assert api(emu, body["access_token"]).status_code == 200


def test_b1_invalid_assertion(emu: EmulatorProc) -> None:
    jwt = emu.user(admin=True)["jwt"]
    r = token_request(emu, {"grant_type": JWT, "assertion": jwt[:-4] + "AAAA"})
    oauth_error(r, (400, 401), "invalid_grant", {"OAU-140", "OAU-213"})


def test_b2_token_request_must_be_form_encoded(emu: EmulatorProc) -> None:
    user = emu.user(admin=True)
    r = httpx.post(emu.info["platform_url"] + "/restapi/oauth/token",
                   json={"grant_type": JWT, "assertion": user["jwt"]},
                   auth=(emu.info["client_id"], emu.info["client_secret"]))
    assert r.status_code in (415, 400), r.text
    assert r.json()["error"] == "invalid_request"


def test_b3_wrong_client_secret(emu: EmulatorProc) -> None:
    r = token_request(emu, {"grant_type": JWT, "assertion": emu.user(admin=True)["jwt"]},
                      client=(emu.info["client_id"], "not-the-secret"))
    oauth_error(r, (400, 401), "invalid_client", {"OAU-146", "OAU-153", "OAU-123"})


def test_b3_garbage_basic_header(emu: EmulatorProc) -> None:
    r = httpx.post(emu.info["platform_url"] + "/restapi/oauth/token",
                   data={"grant_type": JWT, "assertion": emu.user(admin=True)["jwt"]},
                   headers={"Authorization": "Basic %%%not-base64"})
    oauth_error(r, (400, 401), "invalid_client", {"OAU-123", "OAU-153"})


def test_b4_public_client_without_client_id(emu: EmulatorProc) -> None:
    verifier, challenge = pkce_pair()
    code = code_from(authorize(emu, challenge))["code"]
    r = token_request(emu, {"grant_type": "authorization_code", "code": code,
                            "redirect_uri": emu.info["redirect_uris"][0],
                            "code_verifier": verifier}, basic=False)
    body = oauth_error(r, 400, "invalid_client", "OAU-123")
    assert body["error_description"] == "Client authentication is required"


def test_b4_confidential_client_id_without_secret_is_refused(emu: EmulatorProc) -> None:
    r = token_request(emu, {"grant_type": JWT, "assertion": emu.user(admin=True)["jwt"],
                            "client_id": emu.info["client_id"]}, basic=False)
    oauth_error(r, (400, 401), "invalid_client", {"OAU-123", "OAU-153"})


def test_b4_b6_pkce_flow_public_client(emu: EmulatorProc) -> None:
    verifier, challenge = pkce_pair()
    r = authorize(emu, challenge, state="xyz-42")
    params = code_from(r)
    location = r.headers["location"]
    assert location.startswith(emu.info["redirect_uris"][0] + "?")
    assert params["state"] == "xyz-42"
    assert params["expires_in"] == "60"
    assert r.headers["x-rate-limit-group"] == "Auth"
    r = exchange(emu, params["code"], verifier)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and body["refresh_token"]
    # The user is whoever logged in (auto-consent picks the first extension by default).
    assert api(emu, body["access_token"]).status_code == 200
    # Refreshing a public client's token: client_id in the body, no Basic header.
    r = token_request(emu, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
                            "client_id": emu.info["public_client_id"]}, basic=False)
    assert r.status_code == 200, r.text


def test_b6_login_hint_selects_the_user(emu: EmulatorProc) -> None:
    user = emu.user(admin=False)
    verifier, challenge = pkce_pair()
    params = code_from(authorize(emu, challenge, login_hint=user["extension_id"]))
    body = exchange(emu, params["code"], verifier).json()
    assert body["owner_id"] == user["extension_id"]


def test_b5_unsupported_grant_type(emu: EmulatorProc) -> None:
    r = token_request(emu, {"grant_type": "password", "username": "x", "password": "y"})
    body = oauth_error(r, 400, "invalid_request", "OAU-250")
    assert body["errors"][0]["message"] == "Unsupported grant type"


def test_b5_grant_not_enabled_for_app(emu: EmulatorProc) -> None:
    # The public (PKCE) app has no JWT grant.
    r = token_request(emu, {"grant_type": JWT, "assertion": emu.user(admin=True)["jwt"],
                            "client_id": emu.info["public_client_id"]}, basic=False)
    oauth_error(r, 400, "unauthorized_client", "OAU-251")


# -- B6-B8: authorization code ----------------------------------------------------------------

def test_b7_unregistered_redirect_uri(emu: EmulatorProc) -> None:
    _, challenge = pkce_pair()
    registered = emu.info["redirect_uris"][0]
    for wrong in (registered + "x", registered.replace("/callback", "/other"),
                  "http://evil.example/callback"):
        r = authorize(emu, challenge, redirect_uri=wrong)
        assert r.status_code != 302 and "location" not in r.headers, r.headers
        assert r.json()["errors"][0]["errorCode"] == "OAU-109"


def test_b7_no_redirect_uri_registered(emu: EmulatorProc) -> None:
    _, challenge = pkce_pair()
    r = authorize(emu, challenge, client_id=emu.info["client_id"],
                  redirect_uri="http://localhost:53682/callback")
    assert r.status_code != 302 and "location" not in r.headers
    assert r.json()["errors"][0]["errorCode"] == "OAU-113"


def test_b8_wrong_verifier_burns_the_code(emu: EmulatorProc) -> None:
    verifier, challenge = pkce_pair()
    code = code_from(authorize(emu, challenge))["code"]
    oauth_error(exchange(emu, code, "x" * 43), 400, "invalid_grant", {"OAU-106", "OAU-109"})
    # The code stays unusable even with the right verifier.
    oauth_error(exchange(emu, code, verifier), 400, "invalid_grant", "OAU-106")


def test_b8_missing_verifier(emu: EmulatorProc) -> None:
    _, challenge = pkce_pair()
    code = code_from(authorize(emu, challenge))["code"]
    oauth_error(exchange(emu, code, None), 400, "invalid_grant", "OAU-106")


def test_b8_expired_code(emu: EmulatorProc) -> None:
    verifier, challenge = pkce_pair()
    code = code_from(authorize(emu, challenge))["code"]
    emu.advance(61)
    oauth_error(exchange(emu, code, verifier), 400, "invalid_grant", "OAU-108")


def test_b8_code_inside_its_lifetime(emu: EmulatorProc) -> None:
    verifier, challenge = pkce_pair()
    code = code_from(authorize(emu, challenge))["code"]
    emu.advance(55)
    assert exchange(emu, code, verifier).status_code == 200


def test_b8_reused_code(emu: EmulatorProc) -> None:
    verifier, challenge = pkce_pair()
    code = code_from(authorize(emu, challenge))["code"]
    assert exchange(emu, code, verifier).status_code == 200
    oauth_error(exchange(emu, code, verifier), 400, "invalid_grant", "OAU-106")


def test_b8_code_of_another_client(emu: EmulatorProc) -> None:
    verifier, challenge = pkce_pair()
    code = code_from(authorize(emu, challenge))["code"]
    r = token_request(emu, {"grant_type": "authorization_code", "code": code,
                            "redirect_uri": emu.info["redirect_uris"][0],
                            "code_verifier": verifier})
    oauth_error(r, 400, "invalid_grant", {"OAU-110", "OAU-106"})


# -- B9-B13: refresh --------------------------------------------------------------------------

def test_b9_refresh_rotates_both_tokens(emu: EmulatorProc) -> None:
    first = jwt_login(emu)
    r = refresh(emu, first["refresh_token"])
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["owner_id"] == first["owner_id"]
    assert api(emu, second["access_token"]).status_code == 200


def test_b10_old_access_token_after_refresh(emu: EmulatorProc) -> None:
    first = jwt_login(emu)
    assert refresh(emu, first["refresh_token"]).status_code == 200
    api_error(api(emu, first["access_token"]), 401, "OAU-129")
    emu.advance(10)
    api_error(api(emu, first["access_token"]), 401, "OAU-213")


def test_b11_grace_after_the_new_token_is_used(emu: EmulatorProc) -> None:
    first = jwt_login(emu)
    second = refresh(emu, first["refresh_token"]).json()
    assert api(emu, second["access_token"]).status_code == 200  # first use of A2
    emu.advance(5)
    again = refresh(emu, first["refresh_token"])
    assert again.status_code == 200, again.text
    assert again.json()["access_token"] == second["access_token"]
    assert again.json()["refresh_token"] == second["refresh_token"]
    emu.advance(6)  # 11 s after the first use of A2
    oauth_error(refresh(emu, first["refresh_token"]), 400, "invalid_grant",
                {"OAU-213", "OAU-210"})
    # The pair handed out stays good.
    assert api(emu, second["access_token"]).status_code == 200
    assert refresh(emu, second["refresh_token"]).status_code == 200


def test_b12_grace_while_the_new_token_is_unused(emu: EmulatorProc) -> None:
    first = jwt_login(emu)
    second = refresh(emu, first["refresh_token"]).json()
    for step in (240, 1800, 1500):  # up to 59 min after the refresh
        emu.advance(step)
        again = refresh(emu, first["refresh_token"])
        assert again.status_code == 200, again.text
        assert again.json()["access_token"] == second["access_token"]
    emu.advance(61 + 60)  # past 60 min
    oauth_error(refresh(emu, first["refresh_token"]), 400, "invalid_grant",
                {"OAU-213", "OAU-210"})


def test_b13_expired_refresh_token(emu: EmulatorProc) -> None:
    login = jwt_login(emu, refresh_token_ttl="120")
    assert 110 <= login["refresh_token_expires_in"] <= 120
    emu.advance(121)
    body = oauth_error(refresh(emu, login["refresh_token"]), 400, "invalid_grant", "OAU-210")
    assert body["error_description"] == "Token expired"


def test_b13_default_refresh_lifetime(emu: EmulatorProc) -> None:
    login = jwt_login(emu)
    emu.advance(604800 + 1)
    oauth_error(refresh(emu, login["refresh_token"]), 400, "invalid_grant", "OAU-210")


def test_refresh_token_of_another_client(emu: EmulatorProc) -> None:
    login = jwt_login(emu)
    r = refresh(emu, login["refresh_token"],
                client=(emu.info["limited_client_id"], emu.info["limited_client_secret"]))
    oauth_error(r, (400, 401), "invalid_grant", {"OAU-213", "OAU-153"})


# -- B14-B16: sessions, revoke, TTL clamping ---------------------------------------------------

def test_b14_sixth_session_ends_the_oldest(
        start_emulator: Callable[..., EmulatorProc]) -> None:
    emu = start_emulator(*GENEROUS_LIMITS)
    user = emu.user(admin=False)
    sessions = [jwt_login(emu, user) for _ in range(5)]
    for s in sessions:
        assert api(emu, s["access_token"]).status_code == 200
    sixth = jwt_login(emu, user)
    r = api(emu, sessions[0]["access_token"])
    assert r.status_code == 401, r.text
    assert r.json()["errors"][0]["errorCode"] in {"OAU-213", "OAU-129"}
    oauth_error(refresh(emu, sessions[0]["refresh_token"]), 400, "invalid_grant",
                {"OAU-213", "OAU-210"})
    for s in [*sessions[1:], sixth]:
        assert api(emu, s["access_token"]).status_code == 200
    # Sessions are per user+app: another user's, or another app's, are not affected.
    other = jwt_login(emu, emu.user(admin=True))
    limited = jwt_login(emu, user, client=(emu.info["limited_client_id"],
                                           emu.info["limited_client_secret"]))
    assert api(emu, sessions[1]["access_token"]).status_code == 200
    assert api(emu, other["access_token"]).status_code == 200
    assert api(emu, limited["access_token"]).status_code == 200


@pytest.mark.parametrize("which", ["access_token", "refresh_token"])
def test_b15_revoke_kills_the_session(emu: EmulatorProc, which: str) -> None:
    first = jwt_login(emu)
    second = refresh(emu, first["refresh_token"]).json()
    r = httpx.post(emu.info["platform_url"] + "/restapi/oauth/revoke",
                   data={"token": second[which]},
                   auth=(emu.info["client_id"], emu.info["client_secret"]))
    assert r.status_code == 200, r.text
    assert r.headers["x-rate-limit-group"] == "Auth"
    api_error(api(emu, second["access_token"]), 401, "OAU-213")
    oauth_error(refresh(emu, second["refresh_token"]), 400, "invalid_grant", "OAU-213")
    # The old refresh token's grace window is gone too.
    oauth_error(refresh(emu, first["refresh_token"]), 400, "invalid_grant", "OAU-213")


def test_b15_revoke_public_client(emu: EmulatorProc) -> None:
    verifier, challenge = pkce_pair()
    tokens = exchange(emu, code_from(authorize(emu, challenge))["code"], verifier).json()
    r = httpx.post(emu.info["platform_url"] + "/restapi/oauth/revoke",
                   data={"token": tokens["refresh_token"],
                         "client_id": emu.info["public_client_id"]})
    assert r.status_code == 200, r.text
    assert api(emu, tokens["access_token"]).status_code == 401


@pytest.mark.parametrize(("asked", "expected"), [("100", 600), ("600", 600), ("1800", 1800),
                                                  ("7200", 3600)])
def test_b16_access_ttl_is_clamped(emu: EmulatorProc, asked: str, expected: int) -> None:
    body = jwt_login(emu, access_token_ttl=asked)
    assert expected - 1 <= body["expires_in"] <= expected
    emu.advance(expected + 1)
    api_error(api(emu, body["access_token"]), 401, "OAU-128")


def test_b16_refresh_ttl_is_clamped_to_app_max(emu: EmulatorProc) -> None:
    body = jwt_login(emu, refresh_token_ttl=str(30 * 86400))
    assert 604790 <= body["refresh_token_expires_in"] <= 604800


# -- B17-B18: bearer checks ---------------------------------------------------------------------

def test_b17_no_authorization_header(emu: EmulatorProc) -> None:
    r = httpx.get(emu.info["platform_url"] + ACCOUNT)
    assert r.status_code == 401
    body = r.json()
    assert body["errorCode"] == "AGW-401"
    assert body["message"] == "Authorization header is not specified"


def test_b17_random_bearer(emu: EmulatorProc) -> None:
    r = api(emu, "U0FK" + secrets.token_urlsafe(32))
    api_error(r, 401, "OAU-149", top="TokenInvalid")


def test_b17_expired_access_token(emu: EmulatorProc) -> None:
    body = jwt_login(emu)
    emu.advance(3590)
    assert api(emu, body["access_token"]).status_code == 200
    emu.advance(11)
    api_error(api(emu, body["access_token"]), 401, "OAU-128")
    # An expired access token does not stop a refresh.
    assert refresh(emu, body["refresh_token"]).status_code == 200


def test_b17_unsupported_scheme(emu: EmulatorProc) -> None:
    r = httpx.get(emu.info["platform_url"] + ACCOUNT, headers={"Authorization": "Token abc"})
    api_error(r, 401, "OAU-151")


def _attachment_path(emu: EmulatorProc, token: str) -> str:
    r = api(emu, token, "/restapi/v1.0/account/~/extension/~/message-store",
            params={"dateFrom": "2000-01-01", "perPage": 1000})
    assert r.status_code == 200, r.text
    for msg in r.json()["records"]:
        for att in msg.get("attachments", []):
            return str(urlsplit(att["uri"]).path)
    pytest.fail("no message attachment in the seeded mailbox")


def test_b18_access_token_query_parameter(
        start_emulator: Callable[..., EmulatorProc]) -> None:
    emu = start_emulator(*GENEROUS_LIMITS)
    token = emu.token()
    path = _attachment_path(emu, token)
    for host in ("media_url", "platform_url"):
        r = httpx.get(emu.info[host] + path, params={"access_token": token})
        assert r.status_code == 200, (host, r.text)
        assert r.content == httpx.get(emu.info[host] + path,
                                      headers={"Authorization": f"Bearer {token}"}).content
    r = httpx.get(emu.info["platform_url"] + ACCOUNT, params={"access_token": token})
    assert r.status_code == 200
    # Configurable: platform calls stop accepting the query parameter, media keeps it.
    emu.admin("POST", "/_emulator/config", {"access_token_query_on_platform": False})
    r = httpx.get(emu.info["platform_url"] + path, params={"access_token": token})
    assert r.status_code == 401 and r.json()["errorCode"] == "AGW-401"
    assert httpx.get(emu.info["media_url"] + path,
                     params={"access_token": token}).status_code == 200
    bad = httpx.get(emu.info["media_url"] + path, params={"access_token": "nope"})
    api_error(bad, 401, "OAU-149")


# -- B19: the Auth group ---------------------------------------------------------------------

def test_b19_token_requests_use_the_auth_group(emulator: EmulatorProc) -> None:
    user = emulator.user(admin=True)
    data = {"grant_type": JWT, "assertion": user["jwt"]}
    remaining = []
    for _ in range(5):
        r = token_request(emulator, data)
        assert r.status_code == 200, r.text
        assert r.headers["x-rate-limit-group"] == "Auth"
        assert r.headers["x-rate-limit-limit"] == "5"
        remaining.append(int(r.headers["x-rate-limit-remaining"]))
    assert remaining == [4, 3, 2, 1, 0]
    r = token_request(emulator, data)
    assert r.status_code == 429, r.text
    assert r.json()["errorCode"] == "CMN-301"
    assert r.headers["x-rate-limit-group"] == "Auth"
    assert r.headers["retry-after"] == "60"
    # Counted per client + user: another user of the same app still gets a token.
    other = emulator.user(admin=False)
    assert token_request(emulator, {"grant_type": JWT,
                                    "assertion": other["jwt"]}).status_code == 200
    # After a quiet penalty the user can log in again.
    emulator.advance(61)
    assert token_request(emulator, data).status_code == 200


def test_b19_refresh_counts_in_auth(start_emulator: Callable[..., EmulatorProc]) -> None:
    emu = start_emulator("--limits", "Auth=3")
    login = jwt_login(emu)
    r1 = refresh(emu, login["refresh_token"])
    assert r1.status_code == 200 and r1.headers["x-rate-limit-remaining"] == "1"
    r2 = refresh(emu, r1.json()["refresh_token"])
    assert r2.status_code == 200 and r2.headers["x-rate-limit-remaining"] == "0"
    r3 = refresh(emu, r2.json()["refresh_token"])
    assert r3.status_code == 429 and r3.headers["x-rate-limit-group"] == "Auth"
    # API calls are in other groups and still work.
    assert api(emu, r2.json()["access_token"]).status_code == 200
