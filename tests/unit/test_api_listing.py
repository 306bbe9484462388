"""rcfs.api.listing against a scripted fake server: account and extensions, message listing
and paging, batch GETs, read status and delete, the call log, greetings and reports.

The fake (``FakeClient`` from tests/api_fakes.py, over httpx.MockTransport) answers each
request with a handler written per test, so every quirk is explicit: absolute next-page
URIs, pages without totals, 207 in both encodings. rcfs.api.sync and rcfs.api.uploads have
their own modules (test_api_sync.py, test_api_uploads.py); the same calls against the
emulator are in tests/emulator/test_api_listing.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from rcfs.api.errors import ApiError
from rcfs.api.listing import (
    MULTIPART_JSON,
    BatchItemError,
    create_message_store_report,
    delete_message,
    get_extension,
    get_messages_batch,
    list_call_log,
    list_extensions,
    list_greetings,
    list_messages,
    list_phone_numbers,
    list_report_archives,
    update_read_status,
)
from rcfs.api.models import Message
from rcfs.api.scheduler import Priority
from rcfs.content.reports import ReportRunner, RunnerConfig
from tests.api_fakes import BASE, PLATFORM, FakeClient, error_response, msg, query

# -- account / extensions ---------------------------------------------------------------------


async def test_account_extension_phone_numbers() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/restapi/v1.0/account/~":
            return httpx.Response(200, json={"id": 1, "mainNumber": "+1650", "status": "Confirmed"})
        if path == "/restapi/v1.0/account/~/extension/~":
            return httpx.Response(200, json={"id": 2, "extensionNumber": "101", "name": "Jane",
                                             "permissions": {"admin": {"enabled": True}},
                                             "account": {"id": 1}})
        if path == "/restapi/v1.0/account/~/extension/~/phone-number":
            return httpx.Response(200, json={"records": [
                {"id": 9, "phoneNumber": "+16505550100", "features": ["SmsSender"]},
                {"id": 10, "features": []}]})  # no number: skipped
        raise AssertionError(path)

    client = FakeClient(handler)
    me = await get_extension(client)
    nums = await list_phone_numbers(client)
    assert me.id == "2" and me.is_admin and me.account_id == "1"
    assert [n.number for n in nums] == ["+16505550100"] and nums[0].can_send_sms


async def test_list_extensions_follows_next_page_and_repeats_keys() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        q = query(request)
        page = int(q.get("page", ["1"])[0])
        if page == 1:
            assert q["perPage"] == ["1000"] and q["type"] == ["User", "Department"]
            return httpx.Response(200, json={
                "records": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
                "paging": {"page": 1, "totalPages": 2},
                "navigation": {"nextPage": {"uri": f"{PLATFORM}/restapi/v1.0/account/1/"
                                                   "extension?type=User&type=Department"
                                                   "&perPage=1000&page=2"}}})
        return httpx.Response(200, json={"records": [{"id": 3, "name": "c"}],
                                         "paging": {"page": 2}, "navigation": {}})

    pager = list_extensions(FakeClient(handler), types=["User", "Department"])
    exts = await pager.collect()
    assert [e.id for e in exts] == ["1", "2", "3"] and pager.pages == 2
    assert seen[1].endswith("page=2") and seen[1].startswith(PLATFORM)


# -- message listing -------------------------------------------------------------------------


def paged_messages(all_ids: list[int], per_page: int,
                   calls: list[httpx.Request]) -> Callable[[httpx.Request], httpx.Response]:
    """newest-first pages; ``navigation.nextPage`` only (no totals), like call-log."""

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        q = query(request)
        page = int(q.get("page", ["1"])[0])
        chunk = all_ids[(page - 1) * per_page: page * per_page]
        body: dict[str, Any] = {"uri": str(request.url),
                                "records": [msg(i) for i in chunk], "navigation": {}}
        if page * per_page < len(all_ids):
            body["navigation"]["nextPage"] = {
                "uri": f"{BASE}/message-store?dateFrom={q['dateFrom'][0]}&page={page + 1}"
                       f"&perPage={per_page}"}
        return httpx.Response(200, json=body)

    return handler


async def test_list_messages_explicit_date_from_and_paging() -> None:
    calls: list[httpx.Request] = []
    client = FakeClient(paged_messages(list(range(100, 0, -1)), 30, calls))
    pager = list_messages(client, message_types=["SMS", "Fax"], availability="Alive")
    got = [m.id async for m in pager]
    assert got == [str(i) for i in range(100, 0, -1)]
    q = query(calls[0])
    assert q["dateFrom"] == ["1970-01-01T00:00:00Z"] and q["perPage"] == ["1000"]
    assert q["messageType"] == ["SMS", "Fax"] and q["availability"] == ["Alive"]
    assert len(calls) == 4 and pager.pages == 4
    assert client.calls[0]["priority"] == Priority.LISTING
    assert calls[0].url.path == "/restapi/v1.0/account/~/extension/~/message-store"


async def test_list_messages_dedupes_shifted_pages_and_stops_on_loops() -> None:
    calls = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        calls[0] += 1
        q = query(request)
        page = int(q.get("page", ["1"])[0])
        if page == 1:
            records = [msg(5), msg(4)]
        else:  # a new message arrived: page 2 repeats id 4, and points at itself
            records = [msg(4), msg(3)]
        return httpx.Response(200, json={"records": records, "navigation": {
            "nextPage": {"uri": f"{BASE}/message-store?page=2"}}})

    pager = list_messages(FakeClient(handler), "~", date_from="2020-01-01")
    assert [m.id for m in await pager.collect()] == ["5", "4", "3"]
    assert calls[0] == 2


async def test_list_messages_stops_on_empty_page_and_skips_bad_records() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(query(request).get("page", ["1"])[0])
        if page == 1:
            return httpx.Response(200, json={"records": [msg(1), {"id": 2}, "junk"],
                                             "navigation": {"nextPage": {
                                                 "uri": f"{BASE}/message-store?page=2"}}})
        return httpx.Response(200, json={"records": [], "navigation": {
            "nextPage": {"uri": f"{BASE}/message-store?page=3"}}})

    pager = list_messages(FakeClient(handler))
    assert [m.id for m in await pager.collect()] == ["1"]
    assert pager.skipped == 2 and pager.pages == 2


async def test_early_break_leaves_nothing_behind() -> None:
    calls: list[httpx.Request] = []
    client = FakeClient(paged_messages(list(range(50, 0, -1)), 10, calls))
    async for _m in list_messages(client):
        break
    assert len(calls) == 1


# -- batch ----------------------------------------------------------------------------------


def batch_handler(encoding: str, known: set[int]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        ids = request.url.path.rsplit("/", 1)[1].split(",")
        assert len(ids) <= 50
        if len(ids) == 1:
            if int(ids[0]) in known:
                return httpx.Response(200, json=msg(int(ids[0])))
            return error_response(404, "CMN-102", "Resource for parameter [messageId] is not found",
                         "messageId")
        assert MULTIPART_JSON in request.headers["accept"]
        items = [(i, 200, msg(int(i))) if int(i) in known else
                 (i, 404, {"errorCode": "CMN-102", "message": "not found"}) for i in ids]
        if encoding == "json":
            return httpx.Response(207, json=[{"resourceId": i, "status": s, "body": b}
                                             for i, s, b in items],
                                  headers={"Content-Type": MULTIPART_JSON})
        boundary = "Boundary_1_2_3"
        parts = [{"response": [{"href": f"{BASE}/message-store/{i}", "status": s}
                               for i, s, _ in items]}] + [b for _, _, b in items]
        body = b"".join(f"--{boundary}\r\nContent-Type: application/json\r\n\r\n".encode()
                        + json.dumps(p).encode() + b"\r\n" for p in parts)
        body += f"--{boundary}--\r\n".encode()
        return httpx.Response(207, content=body, headers={
            "Content-Type": f"multipart/mixed; boundary={boundary}"})

    return handler


@pytest.mark.parametrize("encoding", ["json", "mixed"])
async def test_batch_get_chunks_of_50(encoding: str) -> None:
    known = set(range(1, 121)) - {7, 77}
    client = FakeClient(batch_handler(encoding, known))
    ids = [str(i) for i in range(1, 121)] + ["3"]  # a duplicate is asked once
    result = await get_messages_batch(client, "~", ids)
    assert len(client.sent) == 3  # 50 + 50 + 20
    assert set(result) == {str(i) for i in range(1, 121)}
    assert isinstance(result["1"], Message) and result["1"].id == "1"
    missing = result["77"]
    assert isinstance(missing, BatchItemError) and missing.status == 404
    assert missing.error_code == "CMN-102"


async def test_batch_single_id_plain_answers() -> None:
    client = FakeClient(batch_handler("json", {5}))
    assert isinstance((await get_messages_batch(client, "~", ["5"]))["5"], Message)
    gone = (await get_messages_batch(client, "~", ["6"]))["6"]
    assert isinstance(gone, BatchItemError) and gone.status == 404


async def test_read_status_and_delete() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            body = json.loads(request.content)
            return httpx.Response(200, json=msg(5, readStatus=body["readStatus"]))
        if request.method == "DELETE":
            if request.url.path.endswith("/404"):
                return error_response(404, "CMN-102")
            if request.url.path.endswith("/403"):
                return error_response(403, "CMN-419")
            assert query(request).get("purge") == (["true"] if "purge" in str(request.url)
                                                   else None)
            return httpx.Response(204)
        raise AssertionError(request.method)

    client = FakeClient(handler)
    m = await update_read_status(client, "~", "5", "Read")
    assert m.read_status == "Read" and client.calls[0]["json"] == {"readStatus": "Read"}
    with pytest.raises(ValueError):
        await update_read_status(client, "~", "5", "Maybe")  # type: ignore[arg-type]
    await delete_message(client, "~", "5")
    await delete_message(client, "~", "5", purge=True)
    await delete_message(client, "~", "404")  # already gone: fine
    with pytest.raises(ApiError) as info:
        await delete_message(client, "~", "403")
    assert info.value.status == 403


# -- call log / greetings / reports ------------------------------------------------------------


async def test_company_call_log_with_recordings() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        q = query(request)
        page = int(q.get("page", ["1"])[0])
        recs = [{"id": f"c{page}{i}", "startTime": "2020-01-01T00:00:00Z",
                 "recording": {"id": f"r{page}{i}", "contentUri": f"https://media/r{page}{i}"}}
                for i in range(3)]
        nav = {"nextPage": {"uri": f"{PLATFORM}/restapi/v1.0/account/1/call-log?page=2"}} \
            if page == 1 else {}
        return httpx.Response(200, json={"records": recs, "navigation": nav,
                                         "paging": {"page": page, "perPage": 1000}})

    records = await list_call_log(FakeClient(handler), None, recording_type="All",
                                  view="Detailed").collect()
    assert len(records) == 6 and all(r.recording is not None for r in records)
    q = query(seen[0])
    assert seen[0].url.path == "/restapi/v1.0/account/~/call-log"
    assert q["recordingType"] == ["All"] and q["view"] == ["Detailed"]
    assert q["dateFrom"] == ["1970-01-01T00:00:00Z"] and q["perPage"] == ["1000"]


async def test_greetings_walk_rules() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        paths.append(path)
        if path.endswith("/answering-rule"):
            return httpx.Response(200, json={"records": [{"id": "business-hours-rule"},
                                                         {"id": "42"}]})
        if path.endswith("/answering-rule/business-hours-rule"):
            return httpx.Response(200, json={"id": "business-hours-rule", "greetings": [
                {"type": "Voicemail", "custom": {"id": "900"}},
                {"type": "Introductory", "preset": {"id": "1", "name": "Default"}}]})
        if path.endswith("/answering-rule/42"):
            return httpx.Response(200, json={"id": "42", "greetings": [
                {"type": "Voicemail", "custom": {"id": "900"}},
                {"type": "Announcement", "custom": {"id": "901"}}]})
        if path.endswith("/greeting/900"):
            return httpx.Response(200, json={"id": "900", "type": "Voicemail",
                                             "contentType": "audio/wav",
                                             "contentUri": "https://media/g/900/content",
                                             "answeringRule": {"id": "business-hours-rule"}})
        if path.endswith("/greeting/901"):
            return error_response(404, "CMN-102")
        raise AssertionError(path)

    greetings = await list_greetings(FakeClient(handler))
    assert [g.id for g in greetings] == ["900"]
    assert greetings[0].content_uri == "https://media/g/900/content"
    assert sum(p.endswith("/greeting/900") for p in paths) == 1


async def test_message_store_report() -> None:
    polls = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST":
            body = json.loads(request.content)
            assert body["dateFrom"] == "1970-01-01T00:00:00Z"
            assert body["messageTypes"] == ["Fax", "VoiceMail"]
            return httpx.Response(202, json={"id": "1-2-abc", "status": "Accepted",
                                             "creationTime": "2020-01-01T00:00:00Z"})
        if path.endswith("/archive"):
            return httpx.Response(200, json={"records": [
                {"size": 14168, "uri": f"{PLATFORM}/restapi/v1.0/account/1/"
                                       "message-store-report/1-2-abc/archive/0"},
                {"uri": f"{PLATFORM}/x/archive/1"}]})
        polls[0] += 1
        status = "Completed" if polls[0] >= 3 else "InProgress"
        return httpx.Response(200, json={"id": "1-2-abc", "status": status})

    client = FakeClient(handler)
    task = await create_message_store_report(client, message_types=["Fax", "VoiceMail"])
    assert task.status == "Accepted"
    done = await ReportRunner(client, RunnerConfig(first_poll_s=0.01)).wait(task.id)
    assert done.status == "Completed" and polls[0] == 3
    archives = await list_report_archives(client, task.id)
    assert [a.size for a in archives] == [14168, None]


async def test_pager_retries_the_same_page_after_an_error() -> None:
    calls: list[httpx.Request] = []
    inner = paged_messages(list(range(20, 0, -1)), 10, calls)
    failures = {1: True, 2: True}

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(query(request).get("page", ["1"])[0])
        if failures.pop(page, False):
            return error_response(400, "CMN-999", "try again")
        return inner(request)

    pager = list_messages(FakeClient(handler))
    got: list[str] = []
    errors = 0
    while True:
        try:
            got.append((await pager.__anext__()).id)
        except StopAsyncIteration:
            break
        except ApiError:
            errors += 1
    assert errors == 2 and got == [str(i) for i in range(20, 0, -1)]
