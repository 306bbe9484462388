"""RcClient against httpx.MockTransport: origins, tokens, rate limits, retries, errors."""

from __future__ import annotations

import json
import logging
import pickle
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio
from trio.testing import MockClock

from rcfs.api import (
    ApiError,
    AuthRequiredError,
    BudgetExhaustedError,
    DeadlineExceededError,
    ForeignHostError,
    Priority,
    RateLimitedError,
    RcClient,
    RequestScheduler,
    TransportError,
    default_media_url,
    group_for,
)
from rcfs.api.transport import parse_retry_after
from tests.api_fakes import (
    MEDIA,
    PLATFORM,
    SECRET_MARKERS,
    FakeRC,
    client,
    creds,
    error_body,
    json_response,
    tokens,
)

MSG = "/restapi/v1.0/account/~/extension/~/message-store"
CONTENT = "/restapi/v1.0/account/1/extension/2/message-store/3/content/4"


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


# -- rate limits -----------------------------------------------------------------------------


def throttled(retry_after: str | None = "2", group: str | None = "Light") -> httpx.Response:
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    if group is not None:
        headers.update({"X-Rate-Limit-Group": group, "X-Rate-Limit-Limit": "50",
                        "X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Window": "60"})
    return json_response(429, error_body("CMN-301", "Request rate exceeded"), headers)


async def test_get_429_waits_out_the_penalty_then_retries(autojump_clock: MockClock) -> None:
    sent_at: list[float] = []

    def stamp(resp: httpx.Response) -> object:
        def f(_req: httpx.Request) -> httpx.Response:
            sent_at.append(trio.current_time())
            return resp
        return f

    fake = FakeRC(script=[stamp(throttled("2")), stamp(json_response(200, {"ok": 1}))])
    async with client(fake) as c:
        r = await c.request("GET", MSG, priority=Priority.INTERACTIVE)
        assert r.json() == {"ok": 1}
        st = c.scheduler.stats()["Light"]
    assert len(sent_at) == 2 and sent_at[1] - sent_at[0] >= 2.0
    assert st["throttled_429"] == 1


async def test_post_429_is_not_retried_and_silences_the_group(autojump_clock: MockClock) -> None:
    fake = FakeRC(script=[throttled("30", "Medium")])
    async with client(fake) as c:
        t0 = trio.current_time()
        with pytest.raises(RateLimitedError) as ei:
            await c.request("POST", "/restapi/v1.0/account/~/extension/~/sms", json={})
        assert (ei.value.retry_after, ei.value.group, ei.value.error_code) == (30, "Medium",
                                                                               "CMN-301")
        assert len(fake.api_requests()) == 1
        # Nothing more is sent in Medium until the penalty is over...
        with pytest.raises(BudgetExhaustedError):
            await c.request("GET", "/restapi/v1.0/account/~/extension", deadline=t0 + 10)
        assert len(fake.api_requests()) == 1
        # ...while other groups are unaffected.
        await c.request("GET", MSG)
        await c.request("GET", "/restapi/v1.0/account/~/extension")
        assert trio.current_time() >= t0 + 30
    assert len(fake.api_requests()) == 3


async def test_429_without_headers_penalizes_the_guessed_group(autojump_clock: MockClock) -> None:
    fake = FakeRC(script=[throttled(None, None)])
    async with client(fake) as c:
        t0 = trio.current_time()
        with pytest.raises(RateLimitedError) as ei:
            await c.request("DELETE", f"{MSG}/5")
        assert ei.value.retry_after is None and ei.value.group == "Medium"
        assert c.scheduler.resume_at("Medium") >= t0 + 60  # default 60 s when absent
        assert c.scheduler.resume_at("Light") < t0


async def test_get_429_with_penalty_past_deadline_raises(autojump_clock: MockClock) -> None:
    fake = FakeRC(script=[throttled("60")])
    async with client(fake) as c:
        t0 = trio.current_time()
        with pytest.raises(RateLimitedError):
            await c.request("GET", MSG, priority=Priority.INTERACTIVE)  # default deadline 20 s
        assert trio.current_time() == t0
    assert len(fake.api_requests()) == 1


async def test_budget_exhausted_before_sending(autojump_clock: MockClock) -> None:
    fake = FakeRC(script=[json_response(200, {}), json_response(200, {})])
    sched = RequestScheduler(limits={"Heavy": 2})
    async with client(fake, scheduler=sched) as c:
        rec = "/restapi/v1.0/account/~/recording/7/content"
        assert group_for("GET", rec) == "Heavy"
        await c.request("GET", rec)
        await c.request("GET", rec)
        with pytest.raises(BudgetExhaustedError) as ei:
            await c.request("GET", rec, deadline=c.deadline_in(5))
    assert ei.value.group == "Heavy" and ei.value.wait_s > 50
    assert len(fake.api_requests()) == 2


async def test_rate_headers_rekey_and_correct_the_estimate() -> None:
    def light(_req: httpx.Request) -> httpx.Response:
        return json_response(200, {}, {"X-Rate-Limit-Group": "light", "X-Rate-Limit-Limit": "50",
                                       "X-Rate-Limit-Remaining": "10",
                                       "X-Rate-Limit-Window": "60"})

    fake = FakeRC(script=[light, light])
    unknown = "/restapi/v1.0/account/~/some-new-thing/7"
    assert group_for("GET", unknown) == "Medium"
    async with client(fake) as c:
        await c.request("GET", unknown)
        st = c.scheduler.stats()
        assert st["Medium"]["sent"] == 0 and st["Light"]["sent"] == 1
        assert c.scheduler.remaining("Light") == 10  # another client spent 39
        await c.request("GET", "/restapi/v1.0/account/~/some-new-thing/8")  # learned: Light
        assert c.scheduler.stats()["Medium"]["sent"] == 0


# -- retries ---------------------------------------------------------------------------------


async def test_get_5xx_retried_with_retry_after(autojump_clock: MockClock) -> None:
    fake = FakeRC(script=[
        json_response(503, error_body("CMN-201", "unavailable"), {"Retry-After": "7"}),
        json_response(500, error_body("CMN-203", "internal")),
        json_response(200, {"ok": 2}),
    ])
    async with client(fake) as c:
        t0 = trio.current_time()
        r = await c.request("GET", MSG, priority=Priority.LISTING)
        assert r.json() == {"ok": 2} and trio.current_time() - t0 >= 7
    assert len(fake.api_requests()) == 3


async def test_get_5xx_gives_up_when_the_deadline_is_near(autojump_clock: MockClock) -> None:
    fake = FakeRC(script=[json_response(503, error_body("CMN-201", "x"), {"Retry-After": "60"})])
    async with client(fake) as c:
        t0 = trio.current_time()
        with pytest.raises(ApiError) as ei:
            await c.request("GET", MSG, priority=Priority.INTERACTIVE)
        assert ei.value.status == 503 and trio.current_time() == t0


async def test_post_5xx_and_connect_errors_are_never_retried() -> None:
    fake = FakeRC(script=[json_response(500, error_body("CMN-203", "x")),
                          httpx.ConnectError("refused")])
    async with client(fake) as c:
        with pytest.raises(ApiError):
            await c.request("POST", "/restapi/v1.0/account/~/extension/~/fax", content=b"x")
        with pytest.raises(TransportError):
            await c.request("POST", "/restapi/v1.0/account/~/extension/~/fax", content=b"x")
    assert len(fake.api_requests()) == 2


async def test_get_network_errors_retried_then_transport_error(autojump_clock: MockClock) -> None:
    fake = FakeRC(script=[httpx.ConnectError("refused"), httpx.ReadError("reset"),
                          httpx.RemoteProtocolError("eof"), json_response(200, {"ok": 3})])
    async with client(fake, max_attempts=4) as c:
        assert (await c.request("GET", MSG, priority=Priority.LISTING)).json() == {"ok": 3}
        fake.script = [httpx.ConnectError("refused")] * 4
        with pytest.raises(TransportError, match="ConnectError"):
            await c.request("GET", MSG, priority=Priority.LISTING)
    assert len(fake.api_requests()) == 8


async def test_refused_connections_spend_no_budget(autojump_clock: MockClock) -> None:
    """A request that never reached the server (refused, connect timeout) gives its slot
    back: an outage must read as "offline", not drain the budget into "throttled"."""
    fake = FakeRC(script=[httpx.ConnectError("refused"), httpx.ConnectTimeout("syn"),
                          httpx.ReadError("reset"), json_response(200, {"ok": 1})])
    async with client(fake, max_attempts=4) as c:
        before = c.scheduler.remaining("Light")
        assert (await c.request("GET", MSG, priority=Priority.LISTING)).json() == {"ok": 1}
        # Two refused attempts cost nothing; the reset one reached the server, as did the 200.
        assert c.scheduler.remaining("Light") == before - 2
        assert c.scheduler.stats()["Light"]["sent"] == 2


async def test_timeouts_end_in_deadline_exceeded(autojump_clock: MockClock) -> None:
    fake = FakeRC(script=[httpx.ReadTimeout("slow")] * 4)
    async with client(fake) as c:
        with pytest.raises(DeadlineExceededError):
            await c.request("GET", MSG)


async def test_slow_server_is_cut_at_the_deadline(autojump_clock: MockClock) -> None:
    async def slow(_req: httpx.Request) -> httpx.Response:
        await trio.sleep(1000)
        return json_response(200, {})

    fake = FakeRC(script=[slow, slow])
    async with client(fake) as c:
        t0 = trio.current_time()
        with pytest.raises(DeadlineExceededError):
            await c.request("GET", MSG, deadline=c.deadline_in(5))
        assert trio.current_time() == pytest.approx(t0 + 5)
        t0 = trio.current_time()
        with pytest.raises(DeadlineExceededError):
            await c.request("GET", MSG, priority=Priority.INTERACTIVE)  # default 20 s
        assert trio.current_time() == pytest.approx(t0 + 20)


# -- throttling groups -----------------------------------------------------------------------


@pytest.mark.parametrize("method,path,group", [
    ("GET", "/restapi/v1.0/account/~/extension/~/message-store", "Light"),
    ("GET", "/restapi/v1.0/account/~/extension/~/message-store?dateFrom=x&page=2", "Light"),
    ("GET", "/restapi/v1.0/account/123/extension/456/message-store/", "Light"),
    ("GET", "/restapi/v1.0/account/~/extension/~/message-store/1,2,3", "Light"),
    ("HEAD", "/restapi/v1.0/account/~/extension/~/message-store/5", "Light"),
    ("put", "/restapi/v1.0/account/~/extension/~/message-store/5", "Medium"),
    ("DELETE", "/restapi/v1.0/account/~/extension/~/message-store/5", "Medium"),
    ("GET", "/restapi/v1.0/account/1/extension/2/message-store/3/content/4", "Medium"),
    ("GET", "/restapi/v1.0/account/~/extension/~/message-sync", "Light"),
    ("POST", "/restapi/v1.0/account/~/extension/~/sms", "Medium"),
    ("POST", "/restapi/v1.0/account/~/extension/~/mms", "Medium"),
    ("POST", "/restapi/v1.0/account/~/extension/~/fax", "Heavy"),
    ("GET", "/restapi/v1.0/account/~/extension", "Medium"),
    ("GET", "/restapi/v1.0/account/~/extension/~", "Light"),
    ("GET", "/restapi/v1.0/account/~", "Light"),
    ("GET", "/restapi/v1.0/account/~/extension/~/call-log", "Heavy"),
    ("GET", "/restapi/v1.0/account/~/call-log-sync", "Heavy"),
    ("GET", "/restapi/v1.0/account/~/recording/401786818008", "Heavy"),
    ("GET", "/restapi/v1.0/account/~/recording/401786818008/content", "Heavy"),
    ("GET", "/restapi/v1.0/account/~/extension/~/greeting/751564020", "Medium"),
    ("GET", "/restapi/v1.0/account/~/extension/~/greeting/751564020/content", "Heavy"),
    ("GET", "/restapi/v1.0/account/~/extension/~/greeting/hold-music", "Medium"),
    ("GET", "/restapi/v1.0/account/~/greeting/1/content", "Heavy"),
    ("GET", "/restapi/v1.0/account/~/ivr-prompts/1/content", "Heavy"),
    ("GET", "/restapi/v1.0/account/~/extension/~/answering-rule/business-hours-rule", "Light"),
    ("POST", "/restapi/v1.0/account/~/message-store-report", "Heavy"),
    ("GET", "/restapi/v1.0/account/~/message-store-report/a-b-c/archive/0", "Heavy"),
    ("GET", "/restapi/v1.0/dictionary/fax-cover-page", "Light"),
    ("GET", "/restapi/v1.0/dictionary/greeting", "Medium"),
    ("POST", "/restapi/oauth/token", "Auth"),
    ("POST", "/restapi/oauth/revoke", "Auth"),
    ("GET", "/restapi", "NoThrottling"),
    ("GET", "/restapi/v1.0", "NoThrottling"),
    ("GET", "/restapi/v1.0/account/~/something-new", "Medium"),
    ("PATCH", "/restapi/v1.0/account/~", "Medium"),
    ("GET", "/greetings/en_US/1210/reggae.wav", "Medium"),
])
def test_group_for(method: str, path: str, group: str) -> None:
    assert group_for(method, path) == group


def test_generated_group_table_is_current(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    spec = root / "tests" / "data" / "openapi3.json.gz"  # RingCentral's spec v1.0.46
    out = tmp_path / "group_table.py"
    subprocess.run([sys.executable, str(root / "scripts" / "gen_throttling_groups.py"),
                    str(spec), str(out)], check=True, capture_output=True)
    assert out.read_text() == (root / "rcfs" / "api" / "group_table.py").read_text()


async def test_token_call_is_retried_on_503(autojump_clock: MockClock) -> None:
    fake = FakeRC()
    unavailable = json_response(503, error_body("CMN-201", "unavailable"), {"Retry-After": "3"})
    calls = {"n": 0}
    original = fake._token

    async def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return unavailable if calls["n"] == 1 else await original(request)

    fake._token = flaky  # type: ignore[method-assign]
    async with client(fake, ts=tokens(expires_in=-1)) as c:
        assert await c.tokens.access_token(deadline=c.deadline_in(20)) == "AT-secret-1"
    assert calls["n"] == 2


def test_response_bodies_are_read_in_large_pieces() -> None:
    """httpcore's 64 KiB socket reads cost a 64 MiB download 2-3x its time (measured in
    rcfs/api/transport.py); importing the transport raises them to 1 MiB."""
    import httpcore

    from rcfs.api import transport

    assert httpcore.AsyncHTTP11Connection.READ_NUM_BYTES >= transport.HTTP_READ_BYTES >= 1 << 20


async def test_get_429_resend_waits_retry_after_even_in_a_pinned_group(
        autojump_clock: MockClock) -> None:
    """A content GET pinned to Heavy gets a 429 whose rate headers name another group: the
    resend of that very request still waits out Retry-After (it went out 0.03 s later), and
    the route's next request (same pinned group) waits for the penalty too."""
    sent_at: list[float] = []

    def stamp(resp: httpx.Response) -> object:
        def f(_req: httpx.Request) -> httpx.Response:
            sent_at.append(trio.current_time())
            return resp
        return f

    fake = FakeRC(script=[stamp(throttled("3", "Light")), stamp(json_response(200, {"ok": 1})),
                          stamp(json_response(200, {"ok": 2}))])
    async with client(fake) as c:
        r = await c.request("GET", CONTENT, group="Heavy", priority=Priority.INTERACTIVE)
        assert r.json() == {"ok": 1}
        assert c.scheduler.resume_at("Heavy") >= sent_at[0] + 3
        assert c.scheduler.resume_at("Light") >= sent_at[0] + 3
        stats = c.scheduler.stats()
    assert len(sent_at) == 2 and sent_at[1] - sent_at[0] >= 3.0
    # One 429 arrived: counted once, in the group the server named.
    assert stats["Light"]["throttled_429"] == 1 and stats["Heavy"]["throttled_429"] == 0


async def test_get_429_without_rate_headers_resend_waits_retry_after(
        autojump_clock: MockClock) -> None:
    sent_at: list[float] = []

    def stamp(resp: httpx.Response) -> object:
        def f(_req: httpx.Request) -> httpx.Response:
            sent_at.append(trio.current_time())
            return resp
        return f

    fake = FakeRC(script=[stamp(throttled("3", None)), stamp(json_response(200, {"ok": 1}))])
    async with client(fake) as c:
        await c.request("GET", CONTENT, group="Heavy", priority=Priority.INTERACTIVE)
    assert len(sent_at) == 2 and sent_at[1] - sent_at[0] >= 3.0
