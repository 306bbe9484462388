"""RcClient against httpx.MockTransport: origins and headers, error parsing, tokens (401
handling and secrecy). Rate limits, retries and throttling groups: test_api_client_limits.py.
"""

from __future__ import annotations

import json
import logging
import pickle

import httpx
import pytest
import trio

from rcfs.api import (
    ApiError,
    AuthRequiredError,
    BudgetExhaustedError,
    DeadlineExceededError,
    ForeignHostError,
    RateLimitedError,
    RcClient,
    TransportError,
    default_media_url,
)
from rcfs.api.transport import parse_retry_after
from tests.api_fakes import (
    CONTENT,
    MEDIA,
    MSG,
    PLATFORM,
    SECRET_MARKERS,
    FakeRC,
    client,
    creds,
    error_body,
    json_response,
)


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        for marker in SECRET_MARKERS:
            assert marker not in text, f"{marker!r} leaked into {text[:200]!r}"


# -- origins and headers -------------------------------------------------------------------


async def test_bearer_only_on_platform_and_media_origins() -> None:
    fake = FakeRC()
    async with client(fake) as c:
        await c.request("GET", MSG)
        await c.request("GET", f"{PLATFORM}{MSG}?page=2")
        await c.request("GET", f"{MEDIA}{CONTENT}")
        await c.request("GET", f"https://media.example.com:443{CONTENT}")
        await c.request("GET", f"HTTPS://Media.Example.COM{CONTENT}")
    assert len(fake.requests) == 5
    for r in fake.requests:
        assert r.headers["Authorization"] == "Bearer AT-secret-0"
        assert "access_token" not in str(r.url)
        assert r.headers["User-Agent"].startswith("rcfs/")


@pytest.mark.parametrize("url", [
    "https://evil.example.net/restapi/v1.0/x?access_token=AT-secret-0&q=1",
    "http://media.example.com/restapi/v1.0/x",  # scheme differs
    "https://media.example.com:8443/restapi/v1.0/x",  # port differs
    "https://platform.example.com.evil.net/restapi/v1.0/x",
    "https://media.ringcentral.com/greetings/en_US/1210/reggae.wav",  # not our configured media
    "relative/path",
])
async def test_foreign_origin_is_refused_and_never_sent(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeRC()
    caplog.set_level(logging.DEBUG)
    async with client(fake) as c:
        with pytest.raises(ForeignHostError) as ei:
            await c.request("GET", url)
        with pytest.raises(ForeignHostError):
            async with c.stream("GET", url):
                pass
    assert fake.requests == []
    assert "?" not in str(ei.value)
    assert_no_secrets(str(ei.value), caplog.text)
    if url.startswith("https://evil"):
        assert "https://evil.example.net/restapi/v1.0/x" in caplog.text
        assert "q=1" not in caplog.text


@pytest.mark.parametrize("platform,ok", [
    ("http://platform.example.com", False),
    ("http://10.0.0.1:8080", False),
    ("ftp://platform.example.com", False),
    ("http://127.0.0.1:8080", True),
    ("http://127.3.4.5:8080", True),
    ("http://localhost:8080", True),
    ("http://[::1]:8080", True),
    ("https://platform.example.com", True),
])
async def test_plain_http_only_for_loopback(platform: str, ok: bool) -> None:
    if ok:
        async with RcClient(creds(platform=platform), transport=FakeRC().transport()) as c:
            assert c.platform_url.startswith(platform.split(":")[0])
    else:
        with pytest.raises(ValueError):
            RcClient(creds(platform=platform), transport=FakeRC().transport())


def test_default_media_url() -> None:
    assert default_media_url("https://platform.ringcentral.com") == "https://media.ringcentral.com"
    assert default_media_url("https://platform.ringcentral.biz/") == "https://media.ringcentral.biz/"
    assert default_media_url("http://127.0.0.1:9000") == "http://127.0.0.1:9000"


async def test_params_lists_repeat_keys_and_json_body() -> None:
    fake = FakeRC()
    async with client(fake) as c:
        await c.request("GET", MSG, params={"messageType": ["SMS", "Fax"], "perPage": "1000"})
        await c.request("GET", MSG, params=[("direction", "Inbound"), ("direction", "Outbound")])
        await c.request("PUT", f"{MSG}/5", json={"readStatus": "Read"})
    q0, q1 = (r.url.query.decode() for r in fake.requests[:2])
    assert q0 == "messageType=SMS&messageType=Fax&perPage=1000"
    assert q1 == "direction=Inbound&direction=Outbound"
    assert json.loads(fake.requests[2].content) == {"readStatus": "Read"}


async def test_multipart_upload_passes_through() -> None:
    fake = FakeRC()
    async with client(fake) as c:
        await c.request("POST", "/restapi/v1.0/account/~/extension/~/fax",
                        data={"to": ["+15551234567"]},
                        files=[("attachment", ("a.pdf", b"%PDF-1.4", "application/pdf"))])
    r = fake.requests[0]
    assert r.headers["Content-Type"].startswith("multipart/form-data")
    assert b"%PDF-1.4" in r.content and b"+15551234567" in r.content


async def test_get_json_keeps_big_ints() -> None:
    fake = FakeRC(script=[httpx.Response(
        200, content=b'{"conversationId": 8031152018338945839}',
        headers={"Content-Type": "application/json"})])
    async with client(fake) as c:
        doc = await c.get_json(MSG)
    assert doc["conversationId"] == 8031152018338945839


async def test_stream_leaves_body_unread_and_forwards_range() -> None:
    body = bytes(range(256)) * 64
    fake = FakeRC(script=[httpx.Response(
        206, content=body[:1024],
        headers={"Content-Range": f"bytes 0-1023/{len(body)}", "Content-Type": "audio/x-wav"})])
    async with client(fake) as c, c.stream("GET", f"{MEDIA}{CONTENT}",
                                           headers={"Range": "bytes=0-1023"}) as resp:
        assert resp.status_code == 206
        got = b"".join([chunk async for chunk in resp.aiter_bytes()])
    assert got == body[:1024]
    assert fake.requests[0].headers["Range"] == "bytes=0-1023"
    assert fake.requests[0].headers["Authorization"] == "Bearer AT-secret-0"


async def test_stream_error_status_raises_parsed_api_error() -> None:
    fake = FakeRC(script=[json_response(416, error_body("CMN-107", "Requested range not "
                                                                    "satisfiable"))])
    async with client(fake) as c:
        with pytest.raises(ApiError) as ei:
            async with c.stream("GET", f"{MEDIA}{CONTENT}", headers={"Range": "bytes=9999-"}):
                pass
    assert (ei.value.status, ei.value.error_code) == (416, "CMN-107")
    assert ei.value.headers["content-type"] == "application/json"


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("body,code,param,oauth", [
    (error_body("CMN-102", "Resource for parameter [messageId] is not found",
                parameterName="messageId"), "CMN-102", "messageId", None),
    ({"errors": [{"errorCode": "MSG-333", "message": "full sync required"}]}, "MSG-333", None,
     None),
    ({"errorCode": "InsufficientPermissions", "message": "no",
      "errors": [{"errorCode": "CMN-401", "message": "no", "permissionName": "ReadCallLog"}]},
     "InsufficientPermissions", None, None),
    ({"error": "invalid_grant", "error_description": "Token expired",
      "errors": [{"errorCode": "OAU-210", "message": "Token expired"}]}, "OAU-210", None,
     "invalid_grant"),
    ({"error": "invalid_client", "error_description": "bad"}, "invalid_client", None,
     "invalid_client"),
])
async def test_api_error_parsing(body: dict[str, object], code: str, param: str | None,
                                 oauth: str | None) -> None:
    fake = FakeRC(script=[json_response(400, body)])
    async with client(fake) as c:
        with pytest.raises(ApiError) as ei:
            await c.request("GET", f"{MSG}/1")
    e = ei.value
    assert (e.status, e.error_code, e.parameter_name, e.oauth_error) == (400, code, param, oauth)
    assert e.body == body
    assert code in str(e) and "HTTP 400" in str(e)


async def test_non_json_error_body() -> None:
    fake = FakeRC(script=[httpx.Response(502, content=b"<html>Bad gateway</html>")])
    async with client(fake) as c:
        with pytest.raises(ApiError) as ei:
            await c.request("POST", "/restapi/v1.0/account/~/extension/~/sms", json={})
    assert ei.value.status == 502 and ei.value.error_code is None
    assert "Bad gateway" in str(ei.value)


def test_errors_pickle() -> None:
    errs: list[Exception] = [
        ApiError(404, "CMN-102", "not found", "messageId", {"a": 1}, None, "https://x/y"),
        RateLimitedError(429, "CMN-301", "rate", None, None, None, None, {"retry-after": "60"},
                         60.0, "Heavy"),
        BudgetExhaustedError("Heavy", 42.0),
        DeadlineExceededError("slow"),
        AuthRequiredError("session expired"),
        ForeignHostError("https://evil/x"),
        TransportError("boom"),
    ]
    for e in errs:
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is type(e) and str(back) == str(e)
    assert str(BudgetExhaustedError("Heavy", 42.0)) == "Heavy budget empty for 42.0 s"
    assert "rcfs login" in str(AuthRequiredError())
    rl = pickle.loads(pickle.dumps(errs[1]))
    assert isinstance(rl, RateLimitedError) and rl.retry_after == 60.0 and rl.group == "Heavy"
    assert rl.headers == {"retry-after": "60"}


def test_parse_retry_after() -> None:
    assert parse_retry_after("60") == 60
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now_wall=1445412470) == 10


# -- tokens: 401 handling and secrecy --------------------------------------------------------


async def test_401_refreshes_once_and_retries_once() -> None:
    fake = FakeRC(valid_access={"AT-secret-1"})  # the server killed AT-secret-0
    async with client(fake) as c:
        r = await c.request("POST", "/restapi/v1.0/account/~/extension/~/sms", json={"t": 1})
    assert r.status_code == 200
    auths = [req.headers["Authorization"] for req in fake.api_requests()]
    assert auths == ["Bearer AT-secret-0", "Bearer AT-secret-1"]
    assert len(fake.token_forms) == 1 and fake.token_forms[0]["grant_type"] == "refresh_token"


async def test_401_after_refresh_is_not_retried_again() -> None:
    dead = json_response(401, error_body("OAU-213", "Token not found"))
    fake = FakeRC(script=[dead, dead, dead])
    async with client(fake) as c:
        with pytest.raises(ApiError) as ei:
            await c.request("GET", MSG)
    assert ei.value.status == 401
    assert len(fake.api_requests()) == 2 and len(fake.token_forms) == 1


async def test_401_with_other_code_is_not_a_token_problem() -> None:
    fake = FakeRC(script=[json_response(401, error_body("CMN-405", "Login to extension"))])
    async with client(fake) as c:
        with pytest.raises(ApiError):
            await c.request("GET", MSG)
    assert fake.token_forms == []


async def test_concurrent_401s_cause_one_refresh() -> None:
    fake = FakeRC(valid_access={"AT-secret-1"}, token_delay=0.05)
    async with client(fake) as c, trio.open_nursery() as n:
        for _ in range(20):
            n.start_soon(c.request, "GET", MSG)
    assert len(fake.token_forms) == 1


async def test_no_token_without_session_says_run_login() -> None:
    fake = FakeRC()
    async with RcClient(creds(), media_url=MEDIA, transport=fake.transport()) as c:
        with pytest.raises(AuthRequiredError, match="rcfs login"):
            await c.request("GET", MSG)
    assert fake.requests == []


async def test_tokens_never_in_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeRC(valid_access={"AT-secret-1"}, script=[
        json_response(401, error_body("OAU-129", "Access token corrupted")),
        json_response(500, error_body("CMN-203", "Internal")),
        json_response(404, error_body("CMN-102", "Resource for parameter [messageId] "
                                                 "is not found")),
    ])
    texts: list[str] = []
    async with client(fake, max_attempts=2, rng=__import__("random").Random(1)) as c:
        with pytest.raises(ApiError) as ei:
            await c.request("GET", f"{MSG}/1")
        texts += [str(ei.value), repr(ei.value)]
        fake.token_error = json_response(400, {
            "error": "invalid_grant", "error_description": "Token expired",
            "errors": [{"errorCode": "OAU-210", "message": "Token expired"}]})
        with pytest.raises(AuthRequiredError) as ai:
            await c.tokens.refresh()
        texts += [str(ai.value), repr(ai.value), repr(c.tokens.current), repr(c.credentials)]
    texts.append(caplog.text)
    assert_no_secrets(*texts)
