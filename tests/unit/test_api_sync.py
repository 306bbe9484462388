"""rcfs.api.sync against a scripted fake server: message sync (FSync, ISync, deduplication,
removals, MSG-333 reset, resuming from a stored token) and call-log sync (initial listing,
ISync, CLG-104 and "max sync record number limit is exceeded" re-listing the gap).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from rcfs.api.errors import ApiError
from rcfs.api.sync import CallLogSync, MessageSync
from tests.api_fakes import FakeClient, error_response, msg, query

# -- message sync -----------------------------------------------------------------------------


class MessageSyncServer:
    """Scripted message-sync: each ISync answer is taken from ``script``."""

    def __init__(self) -> None:
        self.script: list[Callable[[httpx.Request], httpx.Response]] = []
        self.requests: list[dict[str, list[str]]] = []
        self.fsyncs = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        q = query(request)
        self.requests.append(q)
        if q["syncType"] == ["FSync"]:
            self.fsyncs += 1
            assert q["dateFrom"] == ["1970-01-01T00:00:00Z"]
            return httpx.Response(200, json={
                "records": [msg(3), msg(2), msg(1)],
                "syncInfo": {"syncType": "FSync", "syncToken": f"F{self.fsyncs}",
                             "syncTime": "2020-01-01T00:00:10.000Z",
                             "olderRecordsExist": False}})
        return self.script.pop(0)(request)


def isync(records: list[dict[str, Any]], token: str, time: str
          ) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"records": records, "syncInfo": {
            "syncType": "ISync", "syncToken": token, "syncTime": time}})
    return answer


async def test_message_sync_fsync_isync_dedupe_removals_and_reset() -> None:
    server = MessageSyncServer()
    sync = MessageSync(FakeClient(server))
    first = await sync.sync()
    assert first.full and first.sync_type == "FSync" and first.sync_token == "F1"
    assert [m.id for m in first.records] == ["3", "2", "1"]

    # ISync 1: a new message 4, message 2 modified, message 1 deleted (stub).
    server.script.append(isync([
        msg(4, t="2020-01-01T00:00:12.000Z"),
        msg(2, lm="2020-01-01T00:00:11.000Z", readStatus="Read"),
        {"id": 1, "availability": "Deleted"},
    ], "I1", "2020-01-01T00:00:20.000Z"))
    step = await sync.sync()
    assert not step.full and step.sync_token == "I1" == sync.sync_token
    assert sorted(m.id for m in step.records) == ["2", "4"]
    assert step.removed_ids == ("1",) and step.removed[0].availability == "Deleted"
    assert step.removed[0].message is None
    assert server.requests[-1]["syncToken"] == ["F1"]

    # ISync 2 overlaps by 5 s: message 4 and the stub again (duplicates), message 4 also
    # repeated inside the same answer with an older version, message 3 purged as a full
    # record, and a new version of 2.
    server.script.append(isync([
        msg(4, t="2020-01-01T00:00:12.000Z"),
        msg(2, lm="2020-01-01T00:00:19.000Z", readStatus="Unread"),
        msg(2, lm="2020-01-01T00:00:11.000Z", readStatus="Read"),
        {"id": "1", "availability": "Deleted"},
        msg(3, lm="2020-01-01T00:00:21.000Z", availability="Purged"),
    ], "I2", "2020-01-01T00:00:30.000Z"))
    step = await sync.sync()
    assert [m.id for m in step.records] == ["2"]
    assert step.records[0].read_status == "Unread"
    assert step.removed_ids == ("3",) and step.removed[0].message is not None

    # The token expired: MSG-333 → a new FSync, reported as full.
    server.script.append(lambda r: error_response(
        400, "MSG-333",
        "Invalid message synchronisation request: full synchronization is required"))
    step = await sync.sync()
    assert step.full and step.sync_token == "F2" and sync.resets == 1
    assert len(step.records) == 3

    # Other errors propagate.
    server.script.append(lambda r: error_response(403, "CMN-419"))
    with pytest.raises(ApiError) as info:
        await sync.sync()
    assert info.value.status == 403
    assert sync.sync_token == "F2"


async def test_message_sync_resumes_from_stored_token() -> None:
    server = MessageSyncServer()
    server.script.append(isync([msg(9)], "I9", "2020-02-01T00:00:00Z"))
    sync = MessageSync(FakeClient(server), "7", sync_token="STORED",
                       message_types=["Fax"], record_count=100)
    step = await sync.sync()
    assert not step.full and [m.id for m in step.records] == ["9"]
    assert server.requests[0] == {"syncType": ["ISync"], "syncToken": ["STORED"]}
    await sync.full_sync()
    assert server.requests[1]["messageType"] == ["Fax"]
    assert server.requests[1]["recordCount"] == ["100"]


# -- call-log sync ----------------------------------------------------------------------------


class CallLogServer:
    def __init__(self, history: int = 5) -> None:
        self.history = history
        self.log: list[tuple[str, dict[str, list[str]]]] = []
        self.script: list[Callable[[httpx.Request], httpx.Response]] = []
        self.tokens = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        q = query(request)
        path = request.url.path
        self.log.append((path, q))
        if path.endswith("/call-log"):
            assert "dateFrom" in q
            recs = [{"id": f"c{i}", "startTime": f"2020-01-0{1 + i % 9}T00:00:00Z"}
                    for i in range(self.history)]
            return httpx.Response(200, json={"records": recs, "navigation": {}})
        assert path.endswith("/call-log-sync")
        if q["syncType"] == ["FSync"]:
            assert 1 <= int(q["recordCount"][0]) <= 250 and "dateFrom" in q
            self.tokens += 1
            return httpx.Response(200, json={
                "records": [{"id": "c0", "startTime": "2020-01-01T00:00:00Z",
                             "result": "Accepted"}],
                "syncInfo": {"syncType": "FSync", "syncToken": f"T{self.tokens}",
                             "syncTime": "2020-03-01T00:00:00Z"}})
        assert q["showDeleted"] == ["true"]
        return self.script.pop(0)(request)


async def test_call_log_sync_initial_listing_then_isync() -> None:
    server = CallLogServer(history=5)
    sync = CallLogSync(FakeClient(server), None)
    first = await sync.sync()
    assert first.full and sync.sync_token == "T1"
    assert sorted(r.id for r in first.records) == [f"c{i}" for i in range(5)]
    # FSync first (for the token), then the listing (account level).
    assert server.log[0][0] == "/restapi/v1.0/account/~/call-log-sync"
    assert server.log[1][0] == "/restapi/v1.0/account/~/call-log"
    assert server.log[1][1]["dateFrom"] == ["1970-01-01T00:00:00Z"]

    server.script.append(lambda r: httpx.Response(200, json={
        "records": [{"id": "c9", "startTime": "2020-03-01T00:00:00Z"},
                    {"id": "c1", "startTime": "2020-01-02T00:00:00Z", "deleted": True}],
        "syncInfo": {"syncType": "ISync", "syncToken": "T1b",
                     "syncTime": "2020-03-01T00:10:00Z"}}))
    step = await sync.sync()
    assert [r.id for r in step.records] == ["c9"] and step.removed_ids == ("c1",)
    assert sync.sync_token == "T1b"


@pytest.mark.parametrize("failure", [
    (400, "CMN-101", "Parameter [syncToken] is invalid [max sync record number limit is "
                     "exceeded]", "syncToken"),
    (400, "CLG-104", "Parameter [syncToken] is invalid [Sync token expired, call log was "
                     "reset]", None),
])
async def test_call_log_sync_token_rejected_relists_gap(
        failure: tuple[int, str, str, str | None]) -> None:
    server = CallLogServer(history=3)
    sync = CallLogSync(FakeClient(server), "~", sync_token="OLD",
                       sync_time=datetime(2020, 2, 1, tzinfo=UTC))
    server.script.append(lambda r: error_response(*failure))
    step = await sync.sync()
    assert not step.full and sync.resets == 1 and sync.sync_token == "T1"
    listing = [q for p, q in server.log if p.endswith("/call-log")]
    assert listing and listing[0]["dateFrom"] == ["2020-01-31T00:00:00Z"]
    assert len(step.records) == 3


async def test_call_log_sync_rejects_bad_record_count() -> None:
    with pytest.raises(ValueError):
        CallLogSync(FakeClient(CallLogServer()), fsync_record_count=251)
