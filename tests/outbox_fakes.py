"""A fake RingCentral for the outbox's unit tests, and outboxes opened on it (closed after
each test by ``close_outboxes`` in tests/conftest.py)."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import trio

from rcfs.api.errors import ApiError, TransportError
from rcfs.api.scheduler import Priority
from rcfs.outbox import Outbox, Settings


class FakeApi:
    """Just enough of RingCentral for the sender: sends create messages, the store lists
    them, batch GET reports their status. ``plan`` scripts the next POSTs: "ok", "lost"
    (created, then the answer is lost), "reset" (not created, connection reset), or an
    ApiError to answer with."""

    platform_url = "https://platform.example.com"

    def __init__(self) -> None:
        self.messages: dict[str, dict[str, Any]] = {}
        self.posts: list[dict[str, Any]] = []
        self.plan: list[Any] = []
        self.ids = itertools.count(1000)
        self.final_status = {"Fax": "Sent", "SMS": "Delivered"}
        self.calls: list[tuple[str, str, Priority]] = []

    def _response(self, body: Any, status: int = 200) -> httpx.Response:
        return httpx.Response(status, content=json.dumps(body).encode(),
                              headers={"Content-Type": "application/json"})

    async def request(self, method: str, url: str, *, params: Any = None, json: Any = None,
                      files: Any = None, data: Any = None, priority: Priority = Priority.METADATA,
                      **kw: Any) -> httpx.Response:
        await trio.sleep(0)
        self.calls.append((method, url, priority))
        if method == "POST":
            return self._post(url, json, files)
        if url.endswith("/phone-number"):
            return self._response({"records": [
                {"id": "1", "phoneNumber": "+16505550100", "usageType": "DirectNumber",
                 "features": ["SmsSender", "MmsSender"]}], "navigation": {}})
        m = re.search(r"/message-store/([\d,]+)$", url)
        if m:
            ids = m.group(1).split(",")
            items = [{"resourceId": i, "status": 200 if i in self.messages else 404,
                      "body": self._final(i) if i in self.messages else {
                          "errorCode": "CMN-102", "message": "not found"}} for i in ids]
            return self._response(items, 207)
        if url.endswith("/message-store"):
            return self._response({"records": list(self.messages.values()),
                                   "navigation": {}})
        raise AssertionError(f"unexpected {method} {url}")

    async def get_json(self, url: str, *, params: Any = None,
                       priority: Priority = Priority.METADATA, deadline: float | None = None
                       ) -> Any:
        return (await self.request("GET", url, params=params, priority=priority)).json()

    def _final(self, mid: str) -> dict[str, Any]:
        msg = dict(self.messages[mid])
        msg["messageStatus"] = self.final_status[msg["type"]]
        return msg

    def _post(self, url: str, body: Any, files: Any) -> httpx.Response:
        outcome = self.plan.pop(0) if self.plan else "ok"
        if isinstance(outcome, ApiError):
            raise outcome
        if outcome == "reset":
            raise TransportError("POST: RemoteProtocolError: reset")
        parts = files or []
        if parts:
            body = __import__("json").loads(parts[0][1][1])
        kind = "Fax" if url.endswith("/fax") else "SMS"
        mid = str(next(self.ids))
        atts = [{"id": f"{mid}{i}", "uri": f"{self.platform_url}/x/{mid}/{i}",
                 "type": "MmsAttachment", "fileName": f[1][0], "size": len(f[1][1])}
                for i, f in enumerate(parts[1:])] if kind == "SMS" else []
        msg = {"id": mid, "type": kind, "direction": "Outbound", "messageStatus": "Queued",
               "creationTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
               "to": body["to"], "from": body.get("from"), "subject": body.get("text"),
               "attachments": atts, "faxResolution": body.get("faxResolution")}
        self.messages[mid] = msg
        self.posts.append({"kind": kind, "body": body,
                           "files": [(f[1][0], f[1][1]) for f in parts[1:]]})
        if outcome == "lost":
            raise TransportError("POST: ReadError: connection reset")
        return self._response(msg)


FAST = Settings(settle_s=0.3, poll_min_s=0.02, poll_max_s=0.05, retry_base_s=0.02,
                retry_max_s=0.1)


async def put(box: Outbox, rel: tuple[str, ...], data: bytes, ext: str = "101") -> None:
    h = await box.create(ext, rel)
    await box.write(h, 0, data)
    await box.flush(h)
    await box.release(h)


async def until(cond: Callable[[], Any], timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(0.01)


def states(box: Outbox) -> list[str]:
    return sorted(j.state for j in box.store.jobs.values())


OPEN: list[Outbox] = []  # closed after every test (conftest's close_outboxes)


def outbox(tmp_path: Path, api: FakeApi, settings: Settings = FAST) -> Outbox:
    box = Outbox(api, tmp_path / "spool", settings)
    box.open()
    OPEN.append(box)
    return box
