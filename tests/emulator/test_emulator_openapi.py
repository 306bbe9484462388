"""The emulator's responses conform to RingCentral's OpenAPI spec (tests/openapi_check.py).

``test_broad_sample_conforms`` drives a wide sample of endpoints through one emulator and
asserts that the checker validated each operation and found nothing; the other tests prove the
checker catches wrong responses (missing required field, wrong type, unknown field, bad error
shape, missing headers) and that a problem fails the owning test from ``EmulatorProc.stop()``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests import openapi_check as oc
from tests.emulator_proc import EmulatorProc, api_client
from tests.openapi_rules import ALLOW
from tests.openapi_spec import Problem, format_problems

EXT = "/restapi/v1.0/account/~/extension/~"



def _get(c: httpx.Client, url: str, **kw: Any) -> httpx.Response:
    r = c.get(url, **kw)
    assert r.status_code < 500, (url, r.status_code, r.text[:300])
    return r


def _drive(emu: EmulatorProc) -> set[str]:
    """Call a broad sample of endpoints; returns the operation ids expected to be validated."""
    admin = emu.user(admin=True)
    other = emu.user(admin=False)
    expected = {"readAPIVersions", "readAPIVersion", "readAccountInfo", "listExtensions",
                "readExtension", "listExtensionPhoneNumbers", "listMessages", "readMessage",
                "syncMessages", "readUserCallLog", "readCompanyCallLog", "readUserCallRecord",
                "readCallRecording", "listAnsweringRules", "readAnsweringRule",
                "readCustomGreeting", "listStandardGreetings", "getToken"}
    with api_client(emu, admin) as c, api_client(emu, other) as c2:
        _drive_account_and_messages(c, c2, other)
        if _drive_calls_and_greetings(c):
            expected.add("listCallRecordingData")
        _drive_errors(emu, c, c2, admin)
    return expected


def _drive_account_and_messages(c: httpx.Client, c2: httpx.Client,
                                other: dict[str, Any]) -> None:
    """The account, extensions, phone numbers, the message store (every type, content,
    batch GETs) and message sync."""
    _get(c, "/restapi")
    _get(c, "/restapi/v1.0")
    _get(c, "/restapi/v1.0/account/~")
    _get(c, "/restapi/v1.0/account/~/extension", params={"perPage": 2})
    _get(c, "/restapi/v1.0/account/~/extension", params={"page": 2, "perPage": 2})
    _get(c, EXT)
    _get(c, f"/restapi/v1.0/account/~/extension/{other['extension_id']}")
    _get(c, EXT + "/phone-number")
    _get(c2, EXT)

    msgs = _get(c, EXT + "/message-store",
                params={"dateFrom": "2000-01-01", "perPage": 1000}).json()["records"]
    for kind in ("VoiceMail", "Fax", "SMS", "Pager"):
        _get(c, EXT + "/message-store", params={"dateFrom": "2000-01-01",
                                                "messageType": kind, "perPage": 5})
    _get(c, EXT + "/message-store", params={"dateFrom": "2000-01-01T00:00:00Z",
                                            "direction": "Outbound", "perPage": 3})
    assert msgs, "the seeded admin mailbox is empty"
    by_type: dict[str, dict[str, Any]] = {}
    for m in msgs:
        by_type.setdefault(m["type"], m)
    for m in by_type.values():
        _get(c, f"{EXT}/message-store/{m['id']}")
        for att in m.get("attachments", [])[:2]:
            r = _get(c, att["uri"])
            assert r.status_code == 200, att["uri"]
            _get(c, att["uri"], headers={"Range": "bytes=0-9"})
    ids = ",".join(str(m["id"]) for m in msgs[:3])
    _get(c, f"{EXT}/message-store/{ids}",
         headers={"Accept": "application/vnd.ringcentral.multipart+json"})
    _get(c, f"{EXT}/message-store/{ids}")
    fsync = _get(c, EXT + "/message-sync", params={"syncType": "FSync"}).json()
    token = fsync["syncInfo"]["syncToken"]
    _get(c, EXT + "/message-sync", params={"syncType": "ISync", "syncToken": token})


def _drive_calls_and_greetings(c: httpx.Client) -> bool:
    """Call logs, recordings, call-log sync, answering rules and greetings; True when a
    recording's content was downloaded."""
    calls = _get(c, EXT + "/call-log", params={"dateFrom": "2000-01-01",
                                               "perPage": 1000}).json()["records"]
    _get(c, EXT + "/call-log", params={"dateFrom": "2000-01-01", "view": "Detailed",
                                       "perPage": 20})
    _get(c, "/restapi/v1.0/account/~/call-log",
         params={"dateFrom": "2000-01-01", "recordingType": "All", "perPage": 20})
    if calls:
        _get(c, f"{EXT}/call-log/{calls[0]['id']}")
    with_rec = [x for x in calls if x.get("recording")]
    for call in with_rec[:2]:
        rec = call["recording"]
        _get(c, f"/restapi/v1.0/account/~/recording/{rec['id']}")
        _get(c, rec["contentUri"])
    _get(c, EXT + "/call-log-sync", params={"syncType": "FSync", "recordCount": 10})
    _get(c, "/restapi/v1.0/account/~/call-log-sync",
         params={"syncType": "FSync", "recordCount": 10})

    rules = _get(c, EXT + "/answering-rule").json()["records"]
    greeting_ids: list[str] = []
    for rule in rules:
        full = _get(c, f"{EXT}/answering-rule/{rule['id']}").json()
        greeting_ids += [g["custom"]["id"] for g in full.get("greetings", [])
                         if g.get("custom")]
    for gid in greeting_ids[:2]:
        greeting = _get(c, f"{EXT}/greeting/{gid}").json()
        if greeting.get("contentUri"):
            _get(c, greeting["contentUri"])
    _get(c, "/restapi/v1.0/dictionary/greeting")
    return bool(with_rec)


def _drive_errors(emu: EmulatorProc, c: httpx.Client, c2: httpx.Client,
                  admin: dict[str, Any]) -> None:
    """Errors: every one is checked against the RingCentral error shape."""
    _get(c, EXT + "/message-store", params={"direction": "Sideways"})
    _get(c, EXT + "/message-store", params={"dateFrom": "yesterday"})
    _get(c, f"{EXT}/message-store/1")
    _get(c, "/restapi/v1.0/no-such-thing")
    _get(c2, f"/restapi/v1.0/account/~/extension/{admin['extension_id']}/message-store")
    _get(c, EXT + "/call-log", params={"view": "Fancy"})
    httpx.get(emu.info["platform_url"] + EXT)
    httpx.get(emu.info["platform_url"] + EXT, headers={"Authorization": "Bearer nope"})
    httpx.post(emu.info["platform_url"] + "/restapi/oauth/token",
               data={"grant_type": "password"},
               auth=(emu.info["client_id"], emu.info["client_secret"]))


def test_broad_sample_conforms(emu: EmulatorProc) -> None:
    expected = _drive(emu)
    checker = oc.ExchangeChecker()
    problems = emu.openapi_problems(checker)
    assert not problems, format_problems(problems)
    validated_ops = {op for op, _ in checker.validated}
    missing = expected - validated_ops
    assert not missing, f"operations never validated: {sorted(missing)}"
    # Error responses were validated too (400, 401, 403, 404).
    statuses = {status for _, status in checker.validated}
    assert {200, 400, 401, 403, 404} <= statuses, statuses
    assert checker.exchanges >= 60


# -- the checker catches wrong responses ---------------------------------------------------------

def _record(path: str, status: int, body: Any, *, method: str = "GET", query: str = "",
            ctype: str = "application/json; charset=UTF-8",
            headers: dict[str, str] | None = None) -> dict[str, Any]:
    text = body if isinstance(body, str) or body is None else json.dumps(body)
    hdrs = {"rcrequestid": "0b7f3e1a-8f7e-4a7e-9a55-3f2a0c3d2e10", "routingkey": "SJC12P01",
            "content-type": ctype}
    hdrs.update(headers or {})
    return {"origin": "platform", "method": method, "path": path, "query": query,
            "request_content_type": None, "request_body": None, "status": status,
            "response_content_type": ctype, "response_headers": hdrs, "response_body": text,
            "response_truncated": False, "faults": []}


ACCOUNT = {"uri": "https://platform.ringcentral.com/restapi/v1.0/account/400", "id": 400,
           "mainNumber": "+16505550100", "status": "Confirmed"}


def _problems(rec: dict[str, Any]) -> list[Problem]:
    return oc.ExchangeChecker().check(rec)


def test_valid_fabricated_response_passes() -> None:
    assert _problems(_record("/restapi/v1.0/account/~", 200, ACCOUNT)) == []


@pytest.mark.parametrize(("body", "where", "needle"), [
    ({**ACCOUNT, "id": "four hundred"}, "id", "is not of type 'integer'"),
    ({**ACCOUNT, "status": "Sleeping"}, "status", "is not one of"),
    ({**ACCOUNT, "companyName": "X"}, "companyName", "not in the spec"),
])
def test_wrong_account_body_is_caught(body: dict[str, Any], where: str, needle: str) -> None:
    problems = _problems(_record("/restapi/v1.0/account/~", 200, body))
    assert [p.where for p in problems] == [where], problems
    assert needle in problems[0].message
    assert problems[0].op == "readAccountInfo" and problems[0].status == 200


def test_missing_required_field_is_caught() -> None:
    body = {"uri": "https://x/restapi/v1.0/account/4/extension", "paging": {},
            "navigation": {}}
    problems = _problems(_record("/restapi/v1.0/account/~/extension", 200, body))
    assert any("'records' is a required property" in p.message for p in problems), problems


def test_wrong_nested_type_in_message_list_is_caught() -> None:
    msg = {"id": 5, "uri": "https://x/m/5", "type": "Fax", "direction": "Inbound",
           "creationTime": "2024-01-01T00:00:00.000Z", "attachments": [{"id": "five"}]}
    body = {"uri": "https://x", "records": [msg], "paging": {"perPage": 1},
            "navigation": {}}
    problems = _problems(_record(EXT + "/message-store", 200, body))
    assert [p.where for p in problems] == ["records[0].attachments[0].id"], problems


@pytest.mark.parametrize(("body", "needle"), [
    ({"errorCode": "CMN-102", "message": "x"}, "'errors' is a required property"),
    ({"errorCode": "CMN-102", "message": "m", "errors": [{"errorCode": "CMN-101",
                                                           "message": "m"}]},
     "does not mirror"),
    ({"message": "m", "errors": []}, "'errorCode' is a required property"),
    ({"errorCode": "CMN-102", "message": "m", "errors": []}, "empty errors[]"),
])
def test_bad_error_shapes_are_caught(body: dict[str, Any], needle: str) -> None:
    problems = _problems(_record(EXT + "/message-store/1", 404, body))
    assert any(needle in p.message for p in problems), problems


def test_non_json_error_and_missing_headers_are_caught() -> None:
    rec = _record(EXT + "/message-store/1", 404, "oops", ctype="text/html",
                  headers={"rcrequestid": "", "x-rate-limit-group": "Light"})
    rec["response_body"] = None
    messages = " | ".join(p.message for p in _problems(rec))
    assert "not JSON" in messages and "(A8)" in messages and "(C1)" in messages


def test_oauth_paths_use_hand_written_schemas() -> None:
    good = {"access_token": "a", "token_type": "bearer", "expires_in": 3599,
            "refresh_token": "r", "refresh_token_expires_in": 604799, "scope": "ReadAccounts",
            "owner_id": "123", "endpoint_id": "e"}
    assert _problems(_record("/restapi/oauth/token", 200, good, method="POST")) == []
    bad = {k: v for k, v in good.items() if k != "access_token"}
    problems = _problems(_record("/restapi/oauth/token", 200, bad, method="POST"))
    assert any("'access_token' is a required property" in p.message for p in problems)
    err = {"error": "invalid_grant", "error_description": "Token expired"}
    problems = _problems(_record("/restapi/oauth/token", 400, err, method="POST"))
    assert any("'errors' is a required property" in p.message for p in problems)


def test_request_the_spec_forbids_is_caught_when_accepted() -> None:
    body = {"uri": "https://x", "records": [], "paging": {"perPage": 1}, "navigation": {}}
    rec = _record(EXT + "/message-store", 200, body, query="direction=Sideways")
    problems = _problems(rec)
    assert [p.where for p in problems] == ["query.direction"], problems
    # ... but not when the emulator rejected it, and documented date forms are allowed.
    assert _problems(_record(EXT + "/message-store", 200, body,
                             query="dateFrom=2012-07-16&dateTo=2012-07-16T23:12")) == []


def test_timestamps_and_tilde_uris_are_caught() -> None:
    body = {**ACCOUNT, "uri": "https://platform/restapi/v1.0/account/~"}
    assert any("(A2)" in p.message for p in _problems(_record("/restapi/v1.0/account/~", 200,
                                                              body)))
    msg = {"id": 5, "creationTime": "2024-01-01T00:00:00+02:00"}
    body = {"uri": "https://x", "records": [msg], "paging": {}, "navigation": {}}
    assert any("(K1)" in p.message for p in _problems(_record(EXT + "/message-store", 200,
                                                              body)))


def test_sampling_bounds_work_but_covers_every_status() -> None:
    checker = oc.ExchangeChecker(per_status=3, max_shapes=5)
    for _ in range(10):
        checker.check(_record("/restapi/v1.0/account/~", 200, ACCOUNT))
    assert checker.validated[("readAccountInfo", 200)] == 3
    assert checker.seen[("readAccountInfo", 200)] == 10
    # A new shape is validated again (and its problem found) even after the first three ...
    problems = checker.check(_record("/restapi/v1.0/account/~", 200, {**ACCOUNT, "bsid": 7}))
    assert [p.where for p in problems] == ["bsid"]
    # ... and so is a new value at an enum-constrained path.
    problems = checker.check(_record("/restapi/v1.0/account/~", 200,
                                     {**ACCOUNT, "status": "Sleeping"}))
    assert [p.where for p in problems] == ["status"]
    assert checker.check(_record("/restapi/v1.0/account/~", 200, ACCOUNT)) == []
    assert checker.validated[("readAccountInfo", 200)] == 5
    # A status never seen before is always validated.
    err = {"errorCode": "CMN-102", "message": "m",
           "errors": [{"errorCode": "CMN-102", "message": "m"}]}
    checker.check(_record("/restapi/v1.0/account/~", 404, err))
    assert checker.validated[("readAccountInfo", 404)] == 1


def test_a_problem_fails_the_owning_emulator(tmp_path: Any) -> None:
    """``stop()`` raises with a readable list (operation, status, JSON path)."""
    proc = EmulatorProc("--data-seed", "3", workdir=tmp_path)
    try:
        with api_client(proc) as c:
            assert c.get("/restapi/v1.0/account/~").status_code == 200
        assert proc.openapi_problems(oc.ExchangeChecker()) == []
        assert proc.exchanges_path is not None
        with proc.exchanges_path.open("a") as fh:
            fh.write(json.dumps(_record("/restapi/v1.0/account/~", 200,
                                        {**ACCOUNT, "id": "x"})) + "\n")
    except BaseException:
        proc.stop(check=False)
        raise
    with pytest.raises(AssertionError) as info:
        proc.stop()
    text = str(info.value)
    assert "GET /restapi/v1.0/account/~ [readAccountInfo] -> 200: at id:" in text
    assert proc.proc.poll() is not None


def test_long_lists_are_validated_on_representatives_with_true_indices() -> None:
    def msg(i: int, direction: str = "Inbound") -> dict[str, Any]:
        return {"id": i, "uri": f"https://x/m/{i}", "type": "SMS", "direction": direction,
                "creationTime": "2024-01-01T00:00:00.000Z"}

    records = [msg(i) for i in range(300)]
    records[150] = msg(150, "Sideways")  # a new enum value: its own representative
    records[220]["type"] = 7  # a new JSON type: likewise
    body = {"uri": "https://x", "records": records, "paging": {"perPage": 300},
            "navigation": {}}
    problems = _problems(_record(EXT + "/message-store", 200, body))
    assert {p.where for p in problems} == {"records[150].direction",
                                           "records[220].type"}, problems


# -- the allowlist holds only what is still needed -----------------------------------------------

def _drive_allowed_deviations(emu: EmulatorProc) -> None:
    """Exchanges that show each deviation ``ALLOW`` accepts, beyond ``_drive``'s."""
    with api_client(emu) as c:
        calls = _get(c, EXT + "/call-log", params={"dateFrom": "2000-01-01", "perPage": 1000,
                                                   "recordingType": "All"}).json()["records"]
        for call in calls:  # every recording: both formats the account has
            _get(c, call["recording"]["contentUri"], headers={"Range": "bytes=0-99"})
        made = [emu.admin("POST", "/_emulator/messages", {
            "extension_id": emu.user(admin=True)["extension_id"], "type": "SMS",
            "direction": "Inbound", "from": "+12125550101", "to": ["+16505551000"],
            "text": f"batch {i}"})["id"] for i in range(2)]
        ids = ",".join(str(i) for i in made)
        _get(c, f"{EXT}/message-store/{ids}")
        multipart_json = {"Accept": "application/vnd.ringcentral.multipart+json"}
        assert c.put(f"{EXT}/message-store/{ids}", json={"readStatus": "Read"},
                     headers=multipart_json).status_code == 207
        assert c.delete(f"{EXT}/message-store/{ids}").status_code == 204
        task = c.post("/restapi/v1.0/account/~/message-store-report",
                      json={"dateFrom": "2000-01-01T00:00:00Z"}).json()
        for _ in range(20):  # until it is final: startTime, then finishTime appear
            state = _get(c, f"/restapi/v1.0/account/~/message-store-report/{task['id']}")
            if state.json()["status"] in ("Completed", "Failed", "Cancelled"):
                break
            emu.advance(30)


def test_every_allowlist_entry_is_still_needed(emu: EmulatorProc) -> None:
    """Each ``ALLOW`` entry accepts at least one real exchange: an entry that nothing needs
    any more (the emulator changed, or the spec) fails here and must be removed."""
    _drive(emu)
    _drive_allowed_deviations(emu)
    checker = oc.ExchangeChecker(per_status=10**6, max_shapes=10**6)  # validate every one
    problems = emu.openapi_problems(checker)
    assert not problems, format_problems(problems)
    unused = [f"{a.op} {a.where} {a.message!r}" for a in ALLOW if not checker.allowed[a]]
    assert not unused, f"allowlist entries no exchange needs: {unused}"
