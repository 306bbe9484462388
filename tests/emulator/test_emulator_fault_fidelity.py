"""Injected faults look like RingCentral's own answers on the route they hit, and the
message store's indexing lag (``message_store_lag``), against real emulator processes.

A ``status`` fault is answered where the route counts the request, so a 429 on a recording's
content carries ``X-Rate-Limit-Group: Heavy`` and Heavy's limit, exactly as a real 429 of that
route would; an injected 429 is not counted (a real one is not), an injected 5xx is.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.emulator_proc import EmulatorProc, api_client
from tests.emulator_support import ACCOUNT, CALL_LOG, EXT, EXTENSIONS, first_message

# Distinct limits, so the limit header names the group too.
LIMITS = {"Light": 1001, "Medium": 1002, "Heavy": 1003, "Auth": 1004}
# The emu fixture's (tests/conftest.py): a distinct limit per group, to tell them apart.
EMULATOR_LIMITS = ("--limits", ",".join(f"{k}={v}" for k, v in LIMITS.items()))
SMS = EXT + "/sms"



@pytest.fixture
def c(emu: EmulatorProc) -> Iterator[httpx.Client]:
    emu.clear_faults()
    with api_client(emu) as client:
        yield client
    emu.clear_faults()


def _routes(c: httpx.Client) -> list[tuple[str, str, str]]:
    """(method, url, real group) of routes of every group, content URLs included."""
    msg = first_message(c)
    calls = c.get(CALL_LOG, params={"dateFrom": "2000-01-01", "perPage": 1000,
                                    "recordingType": "All"}).json()["records"]
    rec = next(x["recording"] for x in calls if x.get("recording"))
    return [
        ("GET", ACCOUNT, "Light"),
        ("GET", EXT + "/message-store", "Light"),
        ("GET", EXTENSIONS, "Medium"),
        ("GET", msg["attachments"][0]["uri"], "Medium"),
        ("GET", CALL_LOG, "Heavy"),
        ("GET", f"/restapi/v1.0/account/~/recording/{rec['id']}", "Heavy"),
        ("GET", rec["contentUri"], "Heavy"),
    ]


def _path_of(url: str) -> str:
    return httpx.URL(url).path if "://" in url else url


@pytest.mark.parametrize("status", [429, 503, 500])
def test_status_faults_carry_the_routes_real_group(emu: EmulatorProc, c: httpx.Client,
                                                   status: int) -> None:
    wrong: list[Any] = []
    for method, url, group in _routes(c):
        path = _path_of(url)
        emu.fault(kind="status", status=status, path=f"^{path}$", count=1, retry_after=3)
        r = c.request(method, url)
        emu.clear_faults()
        assert r.status_code == status, (url, r.status_code, r.text)
        got = (r.headers.get("x-rate-limit-group"), r.headers.get("x-rate-limit-limit"),
               r.headers.get("x-rate-limit-window"))
        if got != (group, str(LIMITS[group]), "60"):
            wrong.append((url, group, got))
        if status == 429:
            assert r.headers["x-rate-limit-remaining"] == "0"
            assert r.headers["retry-after"] == "3"
        logged = emu.requests()[-1]
        assert (logged["status"], logged["group"]) == (status, group), logged
    assert not wrong, wrong


def test_the_recording_content_429_of_issue_11_is_heavy(emu: EmulatorProc,
                                                         c: httpx.Client) -> None:
    """The case that was labelled Light: a 429 on a recording's content URL (media host)."""
    url = _routes(c)[-1][1]
    emu.fault(kind="status", status=429, path=r"/recording/[^/]+/content$", count=1)
    r = c.get(url)
    assert r.status_code == 429
    assert r.headers["x-rate-limit-group"] == "Heavy"
    assert r.headers["x-rate-limit-limit"] == str(LIMITS["Heavy"])
    assert r.json()["errorCode"] == "CMN-301"


def test_injected_429_is_not_counted_and_5xx_is(emu: EmulatorProc, c: httpx.Client) -> None:
    def remaining() -> int:
        r = c.get(EXTENSIONS)
        assert r.status_code == 200
        return int(r.headers["x-rate-limit-remaining"])

    before = remaining()
    emu.fault(kind="status", status=429, path="/extension$", count=1)
    assert c.get(EXTENSIONS).status_code == 429
    after_429 = remaining()
    assert after_429 == before - 1  # only the successful request counted
    emu.fault(kind="status", status=503, path="/extension$", count=1)
    r = c.get(EXTENSIONS)
    assert r.status_code == 503
    assert int(r.headers["x-rate-limit-remaining"]) == after_429 - 1
    assert remaining() == after_429 - 2


def test_rate_headers_false_and_other_codes_keep_their_shape(emu: EmulatorProc,
                                                            c: httpx.Client) -> None:
    emu.fault(kind="status", status=429, path="/phone-number$", rate_headers=False,
              retry_after=None, count=1)
    r = c.get(EXT + "/phone-number")
    assert r.status_code == 429
    assert "x-rate-limit-group" not in r.headers and "retry-after" not in r.headers
    emu.fault(kind="status", status=415, path="/phone-number$", code="MSG-348", count=1)
    r = c.get(EXT + "/phone-number")
    assert r.status_code == 415 and r.json()["errorCode"] == "MSG-348"
    assert r.headers["x-rate-limit-group"] == "Light"


def test_a_fault_the_route_never_counts_still_fires(emu: EmulatorProc) -> None:
    """Unthrottled endpoints and requests refused before counting (no token) get the fault
    all the same, without a group (none is known)."""
    emu.fault(kind="status", status=503, path="^/restapi$", count=1)
    r = httpx.get(emu.info["platform_url"] + "/restapi")
    assert r.status_code == 503 and r.json()["errorCode"] == "CMN-201"
    assert "x-rate-limit-group" not in r.headers
    assert httpx.get(emu.info["platform_url"] + "/restapi").status_code == 200
    emu.fault(kind="status", status=429, path="/phone-number$", count=1)
    r = httpx.get(emu.info["platform_url"] + EXT + "/phone-number")  # no token
    assert r.status_code == 429 and r.json()["errorCode"] == "CMN-301"
    emu.clear_faults()


# -- message_store_lag ---------------------------------------------------------------------------


def _sender(c: httpx.Client) -> str:
    records = c.get(EXT + "/phone-number").json()["records"]
    return next(str(r["phoneNumber"]) for r in records if "SmsSender" in r["features"])


def _listed(c: httpx.Client, mid: str) -> bool:
    r = c.get(EXT + "/message-store", params={"dateFrom": "2000-01-01", "perPage": 1000,
                                              "direction": "Outbound"})
    r.raise_for_status()
    return any(str(m["id"]) == mid for m in r.json()["records"])


def test_message_store_lag_hides_a_sent_text_from_listings_and_sync(
        emu: EmulatorProc, c: httpx.Client) -> None:
    emu.admin("POST", "/_emulator/config", {"message_store_lag": 120})
    try:
        fsync = c.get(EXT + "/message-sync", params={"syncType": "FSync"}).json()
        token = fsync["syncInfo"]["syncToken"]
        r = c.post(SMS, json={"from": {"phoneNumber": _sender(c)},
                              "to": [{"phoneNumber": "+14155550123"}], "text": "lagging"})
        assert r.status_code == 200, r.text
        mid = str(r.json()["id"])
        # Known by id at once (the send's answer names it), absent from every listing.
        assert c.get(f"{EXT}/message-store/{mid}").status_code == 200
        assert not _listed(c, mid)
        isync = c.get(EXT + "/message-sync", params={"syncType": "ISync",
                                                     "syncToken": token}).json()
        assert mid not in {str(m["id"]) for m in isync["records"]}
        token = isync["syncInfo"]["syncToken"]
        emu.advance(60)
        assert not _listed(c, mid)
        emu.advance(61)
        assert _listed(c, mid)
        # Appearing is a change for incremental sync, though the message itself is older
        # than the token.
        isync = c.get(EXT + "/message-sync", params={"syncType": "ISync",
                                                     "syncToken": token}).json()
        assert mid in {str(m["id"]) for m in isync["records"]}
    finally:
        emu.admin("POST", "/_emulator/config", {"message_store_lag": 0})


def test_message_store_lag_zero_lists_at_once(emu: EmulatorProc, c: httpx.Client) -> None:
    r = c.post(SMS, json={"from": {"phoneNumber": _sender(c)},
                          "to": [{"phoneNumber": "+14155550124"}], "text": "no lag"})
    assert r.status_code == 200, r.text
    assert _listed(c, str(r.json()["id"]))
