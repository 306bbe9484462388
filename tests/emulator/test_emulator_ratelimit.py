"""Contract C (rate limiting, docs/ringcentral.md §3, §13 C) against real emulator processes.

The limiter runs on the emulator clock, so windows and penalties are crossed with
``emu.advance()``; each test that counts requests starts its own emulator with the limits it
needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.emulator_proc import EmulatorProc, api_client
from tests.emulator_support import ACCOUNT, CALL_LOG, EXT, EXTENSIONS, first_message
from tests.mount_helper import GENEROUS_LIMITS

RATE_HEADERS = ("x-rate-limit-group", "x-rate-limit-limit", "x-rate-limit-remaining",
                "x-rate-limit-window")
BODY_429 = {"errorCode": "CMN-301", "message": "Request rate exceeded",
            "errors": [{"errorCode": "CMN-301", "message": "Request rate exceeded"}]}

Start = Callable[..., EmulatorProc]


def rate(r: httpx.Response) -> tuple[str, int, int, int]:
    return (r.headers["x-rate-limit-group"], int(r.headers["x-rate-limit-limit"]),
            int(r.headers["x-rate-limit-remaining"]), int(r.headers["x-rate-limit-window"]))



@pytest.fixture(scope="module")
def big() -> Iterator[EmulatorProc]:
    """Huge limits: for the tests that only read headers."""
    with EmulatorProc(*GENEROUS_LIMITS) as proc:
        yield proc


# -- C1 ---------------------------------------------------------------------------------------

def test_c1_throttled_responses_carry_all_headers(start_emulator: Start) -> None:
    emu = start_emulator()
    with api_client(emu) as c:
        for r in (c.get(ACCOUNT),
                  c.get(EXT + "/message-store", params={"direction": "Sideways"}),  # 400
                  c.get(EXT + "/message-store/1"),  # 404
                  c.get(EXTENSIONS)):
            assert r.status_code in (200, 400, 404), r.text
            for h in RATE_HEADERS:
                assert h in r.headers, (r.request.url, h)
            assert r.headers["x-rate-limit-window"] == "60"
        # Defaults: Light 50, Medium 40 (docs/ringcentral.md §3.1).
        assert rate(c.get(ACCOUNT))[:2] == ("Light", 50)
        assert rate(c.get(EXTENSIONS))[:2] == ("Medium", 40)
    for path in ("/restapi", "/restapi/v1.0"):
        r = httpx.get(emu.info["platform_url"] + path)
        assert r.status_code == 200
        assert not [h for h in RATE_HEADERS if h in r.headers], r.headers


# -- C2 ---------------------------------------------------------------------------------------

def test_c2_counters_per_client_user_and_group(start_emulator: Start) -> None:
    emu = start_emulator("--limits", "Light=50,Medium=3,Heavy=2,Auth=100")
    admin, other = emu.user(admin=True), emu.user(admin=False)
    limited = (emu.info["limited_client_id"], emu.info["limited_client_secret"])
    with api_client(emu, admin) as c:
        for _ in range(2):
            assert c.get(CALL_LOG).status_code == 200
        assert c.get(CALL_LOG).status_code == 429  # Heavy exhausted
        r = c.get(ACCOUNT)  # Light unaffected
        assert r.status_code == 200 and rate(r)[0] == "Light"
        for _ in range(3):
            assert c.get(EXTENSIONS).status_code == 200
        assert c.get(EXTENSIONS).status_code == 429  # Medium exhausted
        assert c.get(ACCOUNT).status_code == 200
    with api_client(emu, other) as c2:  # same app, another user
        assert c2.get(CALL_LOG).status_code == 200
        r = c2.get(EXTENSIONS)
        assert r.status_code == 200 and rate(r)[2] == 2
    tok = httpx.post(emu.info["platform_url"] + "/restapi/oauth/token",
                     data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                           "assertion": admin["jwt"]}, auth=limited).json()["access_token"]
    r = httpx.get(emu.info["platform_url"] + EXTENSIONS,  # same user, another app
                  headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 200 and rate(r)[2] == 2


# -- C3-C5 ------------------------------------------------------------------------------------

def test_c3_sliding_window(start_emulator: Start) -> None:
    emu = start_emulator()  # Heavy 10 / 60 s
    with api_client(emu) as c:
        remaining = []
        for i in range(10):
            r = c.get(CALL_LOG)
            assert r.status_code == 200, (i, r.text)
            assert rate(r)[:2] == ("Heavy", 10)
            remaining.append(rate(r)[2])
            emu.advance(1)
        assert remaining == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
        emu.advance(20)  # t = 30 s
        r = c.get(CALL_LOG)
        assert r.status_code == 429


def test_c3_window_slides_out(start_emulator: Start) -> None:
    emu = start_emulator("--limits", "Light=50,Medium=40,Heavy=3,Auth=5", "--penalty", "5")
    with api_client(emu) as c:
        for _ in range(3):
            assert c.get(CALL_LOG).status_code == 200
            emu.advance(10)
        # t = 30: the first request (t = 0) leaves the window at t = 60.
        emu.advance(30.5)
        r = c.get(CALL_LOG)
        assert r.status_code == 200 and rate(r)[2] == 0


def test_c4_429_response(start_emulator: Start) -> None:
    emu = start_emulator("--limits", "Light=2,Medium=40,Heavy=10,Auth=5")
    with api_client(emu) as c:
        assert c.get(ACCOUNT).status_code == 200
        assert c.get(ACCOUNT).status_code == 200
        r = c.get(ACCOUNT)
    assert r.status_code == 429
    assert r.json() == BODY_429
    assert r.headers["retry-after"] == "60"
    assert rate(r) == ("Light", 2, 0, 60)
    assert r.headers["content-type"].startswith("application/json")


def test_c4_retry_after_follows_the_configured_penalty(start_emulator: Start) -> None:
    emu = start_emulator("--limits", "Light=1,Medium=40,Heavy=10,Auth=5", "--penalty", "45",
                         "--window", "30")
    with api_client(emu) as c:
        c.get(ACCOUNT)
        r = c.get(ACCOUNT)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "45"
    assert r.headers["x-rate-limit-window"] == "30"


def test_c5_penalty_restarts_on_every_request(start_emulator: Start) -> None:
    emu = start_emulator("--limits", "Light=2,Medium=40,Heavy=10,Auth=5")
    with api_client(emu) as c:
        c.get(ACCOUNT)
        c.get(ACCOUNT)
        assert c.get(ACCOUNT).status_code == 429  # t: penalty until t + 60
        emu.advance(30)
        assert c.get(ACCOUNT).status_code == 429  # t + 30: penalty now until t + 90
        emu.advance(31)
        assert c.get(ACCOUNT).status_code == 429  # t + 61: still inside, until t + 121
        emu.advance(59)
        assert c.get(ACCOUNT).status_code == 429  # t + 120: until t + 180
        emu.advance(60.5)  # a fully quiet penalty
        r = c.get(ACCOUNT)
        assert r.status_code == 200, r.text
        assert rate(r)[2] == 1  # rejected requests were not counted in the window


def test_c5_other_groups_work_during_a_penalty(start_emulator: Start) -> None:
    emu = start_emulator("--limits", "Light=1,Medium=40,Heavy=10,Auth=5")
    with api_client(emu) as c:
        c.get(ACCOUNT)
        assert c.get(ACCOUNT).status_code == 429
        assert c.get(EXTENSIONS).status_code == 200
        assert c.get(CALL_LOG).status_code == 200


# -- C6-C8 ------------------------------------------------------------------------------------

def test_c6_range_requests_count_one_each(start_emulator: Start) -> None:
    emu = start_emulator()
    with api_client(emu) as c:
        uri = first_message(c)["attachments"][0]["uri"]
        seen = []
        for rng in ("bytes=0-9", "bytes=10-19", "bytes=0-0", None):
            r = c.get(uri, headers={"Range": rng} if rng else {})
            assert r.status_code in (200, 206), r.text
            group, limit, remaining, _ = rate(r)
            assert (group, limit) == ("Medium", 40)
            seen.append(remaining)
    assert seen == [39, 38, 37, 36]


def _group(c: httpx.Client, method: str, url: str, **kw: Any) -> str:
    r = c.request(method, url, **kw)
    assert r.status_code < 500, (url, r.status_code, r.text)
    assert "x-rate-limit-group" in r.headers, (url, r.status_code, r.text)
    return r.headers["x-rate-limit-group"]


def test_c7_groups_per_endpoint(big: EmulatorProc) -> None:
    with api_client(big) as c:
        msg = first_message(c)
        calls = c.get(CALL_LOG, params={"dateFrom": "2000-01-01", "perPage": 1000,
                                        "recordingType": "All"})
        assert calls.status_code == 200, calls.text
        recorded = [x for x in calls.json()["records"] if x.get("recording")]
        rules = c.get(EXT + "/answering-rule").json()["records"]
        greeting = None
        for rule in rules:
            full = c.get(f"{EXT}/answering-rule/{rule['id']}").json()
            greeting = next((g["custom"] for g in full.get("greetings", [])
                             if g.get("custom")), None)
            if greeting:
                break
        expected: list[tuple[str, str, str, dict[str, Any]]] = [
            ("GET", ACCOUNT, "Light", {}),
            ("GET", EXT, "Light", {}),
            ("GET", EXT + "/phone-number", "Light", {}),
            ("GET", EXTENSIONS, "Medium", {}),
            ("GET", EXT + "/message-store", "Light", {}),
            ("GET", f"{EXT}/message-store/{msg['id']}", "Light", {}),
            ("GET", EXT + "/message-sync", "Light", {"params": {"syncType": "FSync"}}),
            ("GET", msg["attachments"][0]["uri"], "Medium", {}),
            ("PUT", f"{EXT}/message-store/{msg['id']}", "Medium",
             {"json": {"readStatus": "Read"}}),
            ("GET", CALL_LOG, "Heavy", {}),
            ("GET", EXT + "/call-log-sync", "Heavy",
             {"params": {"syncType": "FSync", "recordCount": 5}}),
            ("GET", "/restapi/v1.0/account/~/call-log", "Heavy", {}),
            ("GET", "/restapi/v1.0/account/~/call-log-sync", "Heavy",
             {"params": {"syncType": "FSync", "recordCount": 5}}),
            ("GET", EXT + "/answering-rule", "Medium", {}),
            ("POST", EXT + "/fax", "Heavy", {"json": {}}),
            ("POST", EXT + "/sms", "Medium", {"json": {}}),
            ("POST", "/restapi/v1.0/account/~/message-store-report", "Heavy",
             {"json": {"dateFrom": "2000-01-01T00:00:00Z"}}),
        ]
        if recorded:
            rec = recorded[0]["recording"]
            expected += [("GET", f"/restapi/v1.0/account/~/recording/{rec['id']}", "Heavy", {}),
                         ("GET", rec["contentUri"], "Heavy", {})]
        if greeting:
            g = c.get(f"{EXT}/greeting/{greeting['id']}")
            assert g.headers["x-rate-limit-group"] == "Medium"
            expected.append(("GET", g.json()["contentUri"], "Heavy", {}))
        wrong = [(method, url, want, got) for method, url, want, kw in expected
                 if (got := _group(c, method, url, **kw)) != want]
        assert not wrong, wrong
        assert recorded, "no recorded call in the seeded call log"
        assert greeting, "no custom greeting in the seeded answering rules"


def test_c8_batch_get_counts_once(start_emulator: Start) -> None:
    emu = start_emulator()
    with api_client(emu) as c:
        r = c.get(EXT + "/message-store", params={"dateFrom": "2000-01-01", "perPage": 5})
        ids = [m["id"] for m in r.json()["records"]][:3]
        assert len(ids) == 3
        before = rate(r)[2]
        r = c.get(f"{EXT}/message-store/{','.join(map(str, ids))}")
        assert r.status_code == 207, r.text
        assert rate(r)[:3] == ("Light", 50, before - 1)


# -- C9-C10 -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "message"), [
    ("CMN-301", "Request rate exceeded"),
    ("CMN-310", "Global request rate exceeded"),
    ("CMN-304", "Duplicate concurrent request. Try again later"),
])
def test_c9_429_without_retry_after_or_rate_headers(
        big: EmulatorProc, code: str, message: str) -> None:
    with api_client(big) as c:
        big.fault(kind="status", status=429, path=r"/extension/[^/]+/phone-number$",
                  retry_after=None, rate_headers=False, code=code, message=message, count=1)
        r = c.get(EXT + "/phone-number")
        assert r.status_code == 429
        assert "retry-after" not in r.headers
        assert not [h for h in RATE_HEADERS if h in r.headers], r.headers
        assert r.json()["errorCode"] == code
        assert r.json()["errors"][0] == {"errorCode": code, "message": message}
        assert r.headers["rcrequestid"] and r.headers["routingkey"]
        assert c.get(EXT + "/phone-number").status_code == 200  # count=1: one shot
        big.clear_faults()


def test_c9_fault_429_with_retry_after(big: EmulatorProc) -> None:
    with api_client(big) as c:
        big.fault(kind="status", status=429, path="/phone-number$", retry_after=17, count=1)
        r = c.get(EXT + "/phone-number")
        big.clear_faults()
    assert r.status_code == 429 and r.headers["retry-after"] == "17"
    assert r.json() == BODY_429


def test_c10_group_header_casing(start_emulator: Start) -> None:
    emu = start_emulator("--set", "group_header_case=lower")
    with api_client(emu) as c:
        assert c.get(ACCOUNT).headers["x-rate-limit-group"] == "light"
        assert c.get(EXTENSIONS).headers["x-rate-limit-group"] == "medium"
        emu.admin("POST", "/_emulator/config", {"group_header_case": "title"})
        assert c.get(ACCOUNT).headers["x-rate-limit-group"] == "Light"
