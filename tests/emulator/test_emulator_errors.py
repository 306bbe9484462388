"""Contracts A (hosts and routing), D (errors) and K (time and format) against real emulator
processes (docs/ringcentral.md §1, §4, §9; §13 A, D, K)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.emulator_proc import EmulatorProc, api_client
from tests.emulator_support import assert_error

EXT = "/restapi/v1.0/account/~/extension/~"
ACCOUNT = "/restapi/v1.0/account/~"
MS_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ANY_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")

Start = Callable[..., EmulatorProc]


@pytest.fixture(scope="module")
def messages(rest: httpx.Client) -> list[dict[str, Any]]:
    r = rest.get(EXT + "/message-store", params={"dateFrom": "2000-01-01",
                                                    "perPage": 1000})
    assert r.status_code == 200, r.text
    assert r.json()["records"], "the seeded admin mailbox is empty"
    return r.json()["records"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def calls(rest: httpx.Client) -> list[dict[str, Any]]:
    r = rest.get(EXT + "/call-log", params={"dateFrom": "2000-01-01", "perPage": 1000,
                                               "view": "Detailed"})
    assert r.status_code == 200, r.text
    return r.json()["records"]  # type: ignore[no-any-return]


def walk(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield k, v
            yield from walk(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v, key)


# -- A. hosts and routing ----------------------------------------------------------------------

def test_a1_both_hosts_serve_the_same_tree(emu: EmulatorProc,
                                           rest: httpx.Client) -> None:
    token = rest.headers["authorization"]
    bodies = []
    for host in ("platform_url", "media_url"):
        r = httpx.get(emu.info[host] + EXT, headers={"Authorization": token})
        assert r.status_code == 200, (host, r.text)
        bodies.append(r.json())
    assert bodies[0] == bodies[1]
    # Resource uris are platform URLs whichever host answered.
    assert bodies[0]["uri"].startswith(emu.info["platform_url"])


def test_a2_tilde_resolves_to_the_token_owner(emu: EmulatorProc,
                                              rest: httpx.Client,
                                              user: httpx.Client) -> None:
    acc = emu.info["account_id"]
    for c, who in ((rest, emu.user(admin=True)),
                   (user, emu.user(admin=False))):
        me = c.get(EXT).json()
        assert str(me["id"]) == who["extension_id"]
        assert me["uri"].endswith(f"/restapi/v1.0/account/{acc}/extension/{me['id']}")
        explicit = c.get(f"/restapi/v1.0/account/{acc}/extension/{me['id']}").json()
        assert explicit == me


def test_a2_uris_never_contain_tilde(rest: httpx.Client,
                                     messages: list[dict[str, Any]],
                                     calls: list[dict[str, Any]]) -> None:
    bodies = [rest.get(p).json() for p in (ACCOUNT, EXT, EXT + "/phone-number",
                                              "/restapi/v1.0/account/~/extension",
                                              EXT + "/answering-rule")]
    bodies += [messages, calls]
    uris = [v for body in bodies for k, v in walk(body)
            if isinstance(v, str) and k.lower().endswith("uri")]
    assert len(uris) > 20
    bad = [u for u in uris if "~" in u or not u.startswith("http")]
    assert not bad, bad[:5]


def test_a3_content_host_switch(start_emulator: Start) -> None:
    emu = start_emulator("--limits", "Light=1000,Medium=1000,Heavy=1000,Auth=100")
    info = emu.info
    with api_client(emu) as c:
        for setting, base in (("media", info["media_url"]),
                              ("platform", info["platform_url"]),
                              ("media443", info["media_url"])):  # :443 only on real https
            emu.admin("POST", "/_emulator/config", {"content_host": setting})
            msgs = c.get(EXT + "/message-store", params={
                "dateFrom": "2000-01-01", "perPage": 20,
                "messageType": ["VoiceMail", "Fax"]}).json()["records"]
            uris = [a["uri"] for m in msgs for a in m.get("attachments", [])]
            assert uris, "no attachments"
            assert all(u.startswith(base + "/restapi/v1.0/account/") for u in uris), uris[:2]
            r = c.get(uris[0])  # the client must be able to download from each
            assert r.status_code == 200, (setting, r.text)
            assert r.content == emu.content("message", "/".join(urlsplit(uris[0]).path
                                                                  .split("/")[-3::2]))
        calls = c.get(EXT + "/call-log", params={"dateFrom": "2000-01-01", "perPage": 1000,
                                                 "recordingType": "All"}).json()["records"]
        recs = [x["recording"] for x in calls if x.get("recording")]
        assert recs, "no recordings"
        assert all(r["contentUri"].startswith("http") and "/recording/" in r["contentUri"]
                   for r in recs)


def test_a4_unknown_path(emu: EmulatorProc, rest: httpx.Client) -> None:
    expected = {"errorCode": "AGW-404", "message": "Resource not found", "errors": []}
    for path in ("/restapi/v1.0/nope", "/restapi/v2.0/account/~", EXT + "/no-such-thing",
                 "/totally/elsewhere"):
        r = rest.get(path)
        assert r.status_code == 404, path
        assert r.json() == expected, (path, r.text)
        assert r.headers["content-type"].startswith("application/json")
    r = httpx.get(emu.info["media_url"] + "/restapi/v1.0/nope")
    assert r.status_code == 404 and r.json() == expected


def test_a5_version_endpoints_are_unthrottled(emu: EmulatorProc) -> None:
    for host in ("platform_url", "media_url"):
        for path in ("/restapi", "/restapi/v1.0"):
            r = httpx.get(emu.info[host] + path)  # no token needed
            assert r.status_code == 200, (host, path)
            assert not [h for h in r.headers if h.startswith("x-rate-limit")], r.headers
    body = httpx.get(emu.info["platform_url"] + "/restapi").json()
    assert body["apiVersions"][0]["uriString"] == "v1.0"
    assert "~" not in body["uri"]


def test_a6_method_tunnelling(emulator: EmulatorProc) -> None:
    with api_client(emulator) as c:
        ids = [m["id"] for m in c.get(EXT + "/message-store", params={
            "dateFrom": "2000-01-01", "perPage": 5}).json()["records"]]
        assert len(ids) >= 3
        r = c.post(f"{EXT}/message-store/{ids[0]}",
                   headers={"X-HTTP-Method-Override": "DELETE"})
        assert r.status_code == 204, r.text
        assert c.get(f"{EXT}/message-store/{ids[0]}").json()["availability"] == "Deleted"
        r = c.post(f"{EXT}/message-store/{ids[1]}", params={"_method": "DELETE"})
        assert r.status_code == 204, r.text
        assert c.get(f"{EXT}/message-store/{ids[1]}").json()["availability"] == "Deleted"
        r = c.post(f"{EXT}/message-store/{ids[2]}", params={"_method": "PUT"},
                   headers={"X-HTTP-Method-Override": "DELETE"})
        assert r.status_code == 400, r.text
        assert r.json()["errors"][0]["errorCode"] == "CMN-101"
        assert r.headers["rcrequestid"]
        assert c.get(f"{EXT}/message-store/{ids[2]}").json()["availability"] == "Alive"
        # Same value twice is not a conflict; PUT through the tunnel works too.
        r = c.post(f"{EXT}/message-store/{ids[2]}", params={"_method": "put"},
                   headers={"X-HTTP-Method-Override": "PUT"}, json={"readStatus": "Read"})
        assert r.status_code == 200, r.text
        assert r.json()["readStatus"] == "Read"


def test_a7_repeated_query_keys_are_or_filters(rest: httpx.Client,
                                               messages: list[dict[str, Any]]) -> None:
    have = {m["type"] for m in messages}
    assert {"SMS", "Fax"} <= have, have
    r = rest.get(EXT + "/message-store", params=[
        ("dateFrom", "2000-01-01"), ("perPage", "1000"),
        ("messageType", "SMS"), ("messageType", "Fax")])
    got = {m["type"] for m in r.json()["records"]}
    assert got == {"SMS", "Fax"}
    expected = sum(1 for m in messages if m["type"] in ("SMS", "Fax"))
    assert len(r.json()["records"]) == expected


def test_a8_request_ids_and_json_content_type(emu: EmulatorProc,
                                              rest: httpx.Client) -> None:
    ids = set()
    responses = [rest.get(p) for p in (ACCOUNT, ACCOUNT, EXT, "/restapi/v1.0/nope",
                                          EXT + "/message-store/1")]
    responses.append(httpx.get(emu.info["platform_url"] + "/restapi"))
    responses.append(httpx.get(emu.info["platform_url"] + ACCOUNT))  # 401
    for r in responses:
        rid = r.headers["rcrequestid"]
        uuid.UUID(rid)
        ids.add(rid)
        assert r.headers["routingkey"]
        ctype = r.headers["content-type"].replace(" ", "").lower()
        assert ctype in ("application/json", "application/json;charset=utf-8"), ctype
    assert len(ids) == len(responses)


# -- D. errors ---------------------------------------------------------------------------------

def test_d1_error_shape(rest: httpx.Client) -> None:
    assert_error(rest.get(EXT + "/message-store", params={"readStatus": "Maybe"}), 400,
             "CMN-101", parameterName="readStatus")
    body = assert_error(rest.get(f"{EXT}/message-store/1"), 404, "CMN-102",
                    parameterName="messageId")
    assert body["parameterName"] == "messageId"


def test_d2_unknown_ids(emu: EmulatorProc, rest: httpx.Client,
                        messages: list[dict[str, Any]]) -> None:
    body = assert_error(rest.get(f"{EXT}/message-store/999999999"), 404, "CMN-102",
                    parameterName="messageId")
    assert body["message"] == "Resource for parameter [messageId] is not found"
    msg = next(m for m in messages if m.get("attachments"))
    assert_error(rest.get(f"{EXT}/message-store/{msg['id']}/content/1"), 404, "CMN-102",
             parameterName="attachmentId")
    r = httpx.get(emu.info["media_url"]
                  + "/restapi/v1.0/account/~/recording/123456789/content",
                  headers={"Authorization": rest.headers["authorization"]})
    body = assert_error(r, 404, "CMN-102", parameterName="callRecordingId")
    assert body["message"] == "Resource for parameter [callRecordingId] is not found"
    body = assert_error(rest.get("/restapi/v1.0/account/~/recording/123456789"), 404,
                    "CMN-102")
    assert "Id]" in body["message"]


@pytest.mark.parametrize(("path", "param", "value"), [
    (EXT + "/message-store", "direction", "Sideways"),
    (EXT + "/message-store", "messageType", "Telegram"),
    (EXT + "/message-store", "availability", "Gone"),
    (EXT + "/call-log", "view", "Fancy"),
    (EXT + "/call-log", "direction", "Sideways"),
    ("/restapi/v1.0/account/~/extension", "status", "Asleep"),
])
def test_d3_invalid_enum(rest: httpx.Client, path: str, param: str, value: str) -> None:
    body = assert_error(rest.get(path, params={param: value}), 400, "CMN-101",
                        parameterName=param)
    assert body["message"] == f"Parameter [{param}] value is invalid."


def test_d4_missing_app_scope(emu: EmulatorProc) -> None:
    info = emu.info
    tok = httpx.post(info["platform_url"] + "/restapi/oauth/token",
                     data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                           "assertion": emu.user(admin=True)["jwt"]},
                     auth=(info["limited_client_id"], info["limited_client_secret"])).json()
    assert "ReadCallLog" not in tok["scope"].split()
    hdr = {"Authorization": f"Bearer {tok['access_token']}"}
    r = httpx.get(info["platform_url"] + EXT + "/call-log", headers=hdr)
    body = assert_error(r, 403, "CMN-401", top="InsufficientPermissions")
    assert body["errors"][0]["permissionName"] == "ReadCallLog"
    assert body["permissionName"] == "ReadCallLog"
    # Scopes the app has still work.
    assert httpx.get(info["platform_url"] + ACCOUNT, headers=hdr).status_code == 200


def test_d5_other_extensions_mailbox(emu: EmulatorProc,
                                     user: httpx.Client, rest: httpx.Client) -> None:
    admin_id = emu.user(admin=True)["extension_id"]
    other_id = emu.user(admin=False, index=1)["extension_id"]
    base = f"/restapi/v1.0/account/~/extension/{admin_id}"
    assert_error(user.get(base + "/message-store"), 403, "CMN-419")
    assert_error(user.get(base + "/message-sync", params={"syncType": "FSync"}), 403, "CMN-419")
    # The admin may read another mailbox.
    r = rest.get(f"/restapi/v1.0/account/~/extension/{other_id}/message-store")
    assert r.status_code == 200, r.text


def test_d6_injected_5xx(emu: EmulatorProc, rest: httpx.Client) -> None:
    try:
        emu.fault(kind="status", status=500, path=r"/phone-number$", count=1)
        r = rest.get(EXT + "/phone-number")
        body = assert_error(r, 500, "CMN-203")
        assert body["message"]
        assert "retry-after" not in r.headers
        emu.fault(kind="status", status=503, path=r"/phone-number$", count=1,
                              retry_after=30)
        r = rest.get(EXT + "/phone-number")
        assert_error(r, 503, "CMN-201")
        assert r.headers["retry-after"] == "30"
        assert r.headers["rcrequestid"] and r.headers["routingkey"]
        assert rest.get(EXT + "/phone-number").status_code == 200
    finally:
        emu.clear_faults()


# -- K. time and format ------------------------------------------------------------------------

def test_k1_timestamps_are_utc_with_milliseconds(messages: list[dict[str, Any]],
                                                 calls: list[dict[str, Any]]) -> None:
    assert calls, "the seeded call log is empty"
    stamps = [(k, v) for body in (messages, calls) for k, v in walk(body)
              if k in ("creationTime", "lastModifiedTime", "startTime", "smsDeliveryTime")]
    assert len(stamps) > 20
    bad = [(k, v) for k, v in stamps if not isinstance(v, str) or not MS_TS.match(v)]
    assert not bad, bad[:5]


def test_k1_every_timestamp_is_utc(rest: httpx.Client) -> None:
    for path in (ACCOUNT, EXT, EXT + "/answering-rule"):
        for _, v in walk(rest.get(path).json()):
            if isinstance(v, str) and re.match(r"^\d{4}-\d\d-\d\dT", v):
                assert ANY_TS.match(v), v


@pytest.mark.parametrize("value", ["2012-07-16", "2012-07-16T23:12", "2012-07-16T23:12:30Z",
                                   "2012-07-16T23:12:30+04:00", "2012-07-16T23:12:30.45Z"])
@pytest.mark.parametrize("path", [EXT + "/message-store", EXT + "/call-log"])
def test_k2_query_date_forms(rest: httpx.Client, path: str, value: str) -> None:
    r = rest.get(path, params={"dateFrom": value})
    assert r.status_code == 200, (value, r.text)
    r = rest.get(path, params={"dateFrom": "2000-01-01", "dateTo": value})
    assert r.status_code == 200, (value, r.text)


def test_k2_date_bounds_are_applied(rest: httpx.Client,
                                    messages: list[dict[str, Any]]) -> None:
    newest = max(m["creationTime"] for m in messages)
    day = newest[:10]
    r = rest.get(EXT + "/message-store", params={"dateFrom": day, "perPage": 1000})
    got = r.json()["records"]
    assert got and all(m["creationTime"] >= day for m in got)
    assert len(got) == sum(1 for m in messages if m["creationTime"] >= day + "T00:00:00")


@pytest.mark.parametrize("value", ["yesterday", "2012-13-01", "16/07/2012", "2012-07-16T25:00",
                                   "2012-07-16T23:12:30+99:00"])
@pytest.mark.parametrize(("path", "param"), [(EXT + "/message-store", "dateFrom"),
                                             (EXT + "/message-store", "dateTo"),
                                             (EXT + "/call-log", "dateFrom")])
def test_k3_invalid_date(rest: httpx.Client, path: str, param: str, value: str) -> None:
    assert_error(rest.get(path, params={param: value}), 400, "CMN-101", parameterName=param)
