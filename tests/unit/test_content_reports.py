"""Report tasks under the API's rules without a server: at most 2 unfinished, a 429 CMN-304
waited out, polls at background priority growing from 2 s; export requests parsed."""

from __future__ import annotations

import errno
from typing import Any

import httpx
import pytest
import trio

from rcfs.api.errors import RateLimitedError
from rcfs.api.scheduler import Priority
from rcfs.content.reports import ReportRunner, RunnerConfig
from rcfs.fs.errors import to_errno
from rcfs.namespace.exports import parse_request
from rcfs.namespace.plugins import PluginError

PLATFORM = "https://platform.example"


class Reports:
    """A fake ``ApiClient`` answering the report endpoints from a script."""

    def __init__(self, busy: int = 0, polls_to_finish: int = 1) -> None:
        self.platform_url = PLATFORM
        self.busy = busy
        self.polls_to_finish = polls_to_finish
        self.polls: dict[str, int] = {}
        self.calls: list[tuple[str, str, Priority, float]] = []
        self.created = 0

    async def request(self, method: str, url: str, *, priority: Priority = Priority.METADATA,
                      **_: Any) -> httpx.Response:
        self.calls.append((method, url, priority, trio.current_time()))
        if self.busy:
            self.busy -= 1
            raise RateLimitedError(429, "CMN-304", "Duplicate concurrent request",
                                   retry_after=7.0, group="Heavy")
        self.created += 1
        task = f"t{self.created}"
        self.polls[task] = 0
        return httpx.Response(202, json={"id": task, "status": "Accepted"},
                              request=httpx.Request(method, url))

    async def get_json(self, url: str, *, priority: Priority = Priority.METADATA,
                       **_: Any) -> Any:
        self.calls.append(("GET", url, priority, trio.current_time()))
        task = url.rsplit("/", 1)[-1]
        self.polls[task] += 1
        done = self.polls[task] >= self.polls_to_finish
        return {"id": task, "status": "Completed" if done else "InProgress"}


async def test_busy_account_is_waited_out(autojump_clock: trio.abc.Clock) -> None:
    api = Reports(busy=2)
    runner = ReportRunner(api)
    start = trio.current_time()
    task = await runner.create(trio_dt(0), trio_dt(1), ["Fax"])
    assert task.id == "t1" and trio.current_time() - start == pytest.approx(14.0)
    assert [c[0] for c in api.calls] == ["POST"] * 3


async def test_polls_grow_and_run_in_the_background(autojump_clock: trio.abc.Clock) -> None:
    api = Reports(polls_to_finish=5)
    runner = ReportRunner(api, RunnerConfig(first_poll_s=2, max_poll_s=10))
    task = await runner.create(trio_dt(0), trio_dt(1))
    t0 = trio.current_time()
    final = await runner.wait(task.id)
    assert final.status == "Completed"
    polls = [c for c in api.calls if c[0] == "GET"]
    assert [round(c[3] - t0) for c in polls] == [2, 6, 14, 24, 34]
    assert {c[2] for c in polls} == {Priority.BACKGROUND}


async def test_at_most_two_unfinished_tasks(autojump_clock: trio.abc.Clock) -> None:
    api = Reports(polls_to_finish=1)
    runner = ReportRunner(api, RunnerConfig(first_poll_s=5))
    a = await runner.create(trio_dt(0), trio_dt(1))
    await runner.create(trio_dt(0), trio_dt(1))
    third_at: list[float] = []

    async def third() -> None:
        await runner.create(trio_dt(0), trio_dt(1))
        third_at.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        t0 = trio.current_time()
        nursery.start_soon(third)
        await trio.sleep(1)
        assert third_at == [] and api.created == 2  # no third POST while two run
        await runner.wait(a.id)
    assert third_at and third_at[0] - t0 == pytest.approx(6.0)  # as soon as one is final


def trio_dt(day: int) -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=day)


def test_export_requests() -> None:
    task = parse_request(b'{"from": "2025-01-01", "to": "2025-01-31", "types": ["Fax"]}')
    assert task.date_from == "2025-01-01T00:00:00+00:00"
    assert task.date_to == "2025-02-01T00:00:00+00:00"  # the --to day is included
    assert task.folder().startswith("2025-01-01 to 2025-02-01 Fax Queued [")
    for bad in (b"nope", b"[]", b'{"from": "2025-02-01", "to": "2025-01-01"}',
                b'{"from": "2025-01-01", "to": "2025-01-02", "types": ["Calls"]}',
                b'{"to": "2025-01-02"}'):
        with pytest.raises(PluginError) as info:
            parse_request(bad)
        assert to_errno(info.value) == errno.EINVAL
