"""RcClient against httpx.MockTransport (trio's MockClock for the waits): 429s and penalties,
the request budget, rate headers, retries of 5xx and network errors within the deadline,
and the throttling group of each endpoint.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio
from trio.testing import MockClock

from rcfs.api import (
    ApiError,
    BudgetExhaustedError,
    DeadlineExceededError,
    Priority,
    RateLimitedError,
    RequestScheduler,
    TransportError,
    group_for,
)
from rcfs.api.errors import NotSentError
from rcfs.api.transport import REFUSED_MEMORY_S
from tests.api_fakes import (
    CONTENT,
    MSG,
    FakeRC,
    client,
    error_body,
    json_response,
    tokens,
)

# -- rate limits -----------------------------------------------------------------------------


def throttled(retry_after: str | None = "2", group: str | None = "Light") -> httpx.Response:
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    if group is not None:
        headers.update({"X-Rate-Limit-Group": group, "X-Rate-Limit-Limit": "50",
                        "X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Window": "60"})
    return json_response(429, error_body("CMN-301", "Request rate exceeded"), headers)


def _stamped(sent_at: list[float], resp: httpx.Response) -> object:
    """A scripted answer that notes (in ``sent_at``) when its request went out."""
    def f(_req: httpx.Request) -> httpx.Response:
        sent_at.append(trio.current_time())
        return resp
    return f


async def test_get_429_waits_out_the_penalty_then_retries(autojump_clock: MockClock) -> None:
    sent_at: list[float] = []
    stamp = functools.partial(_stamped, sent_at)

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
        fake.script = [httpx.ReadError("reset")] * 4
        with pytest.raises(TransportError, match="ReadError"):
            await c.request("GET", MSG, priority=Priority.LISTING)
    assert len(fake.api_requests()) == 8


async def test_a_host_that_refused_moments_ago_is_not_retried(autojump_clock: MockClock) -> None:
    """Offline, a refused connection is not worth a backoff per request: the first refusal
    after a connection that worked is retried (a blip), one that follows another within
    REFUSED_MEMORY_S fails at once, and any answer clears the memory."""
    refused = [httpx.ConnectError("refused")] * 8
    fake = FakeRC(script=list(refused))
    async with client(fake, max_attempts=4) as c:
        with pytest.raises(NotSentError, match="ConnectError"):
            await c.request("GET", MSG, priority=Priority.LISTING)
        assert len(fake.api_requests()) == 2  # one retry, then taken as down
        t0 = trio.current_time()
        with pytest.raises(NotSentError, match="ConnectError"):
            await c.request("GET", MSG, priority=Priority.LISTING)
        assert len(fake.api_requests()) == 3 and trio.current_time() == t0  # at once
        fake.script = [json_response(200, {"ok": 1}), *refused]
        assert (await c.request("GET", MSG)).json() == {"ok": 1}  # one attempt: it answers
        with pytest.raises(NotSentError):
            await c.request("GET", MSG, priority=Priority.LISTING)
        assert len(fake.api_requests()) == 6  # the answer cleared it: retried once more
        await trio.sleep(REFUSED_MEMORY_S)
        with pytest.raises(NotSentError):
            await c.request("GET", MSG, priority=Priority.LISTING)
        assert len(fake.api_requests()) == 8  # long ago: a blip again


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
    stamp = functools.partial(_stamped, sent_at)

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
    stamp = functools.partial(_stamped, sent_at)

    fake = FakeRC(script=[stamp(throttled("3", None)), stamp(json_response(200, {"ok": 1}))])
    async with client(fake) as c:
        await c.request("GET", CONTENT, group="Heavy", priority=Priority.INTERACTIVE)
    assert len(sent_at) == 2 and sent_at[1] - sent_at[0] >= 3.0
