"""Message-store-report tasks (RingCentral's compliance export) under the API's rules.

Shared by the ``Exports/`` folder and the bulk path of pinning, because the rules are the
account's, not one caller's:

* at most 2 unfinished tasks per account: a local semaphore, and a 429 ``CMN-304`` (the
  server's own refusal) waits for its ``Retry-After`` instead of failing;
* every call is Heavy (10 per minute): polls run at BACKGROUND priority, so they only
  spend spare budget, on a schedule that starts short (small exports finish in seconds)
  and doubles up to ``max_poll_s`` (large ones take minutes);
* archive URIs are handed out by the archive list and may expire: ``archives`` is asked
  again when a download answers 404.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import trio

from rcfs.api.errors import RateLimitedError
from rcfs.api.listing import (
    create_message_store_report,
    get_message_store_report,
    list_report_archives,
)
from rcfs.api.models import ArchiveRef, ReportTask
from rcfs.api.protocol import ApiClient
from rcfs.api.scheduler import Priority

log = logging.getLogger(__name__)

__all__ = ["EXPORT_TYPES", "ReportRunner", "RunnerConfig"]

EXPORT_TYPES = ("Fax", "VoiceMail", "SMS")
"""Message types a message-store-report carries (texts: MMS attachments)."""


@dataclass
class RunnerConfig:
    max_tasks: int = 2
    first_poll_s: float = 2.0
    max_poll_s: float = 30.0
    busy_retries: int = 20
    """429 CMN-304 answers (too many tasks on the account) waited out before giving up."""
    task_timeout_s: float = 6 * 3600.0


class ReportRunner:
    """Creates tasks, waits for them and lists their archives."""

    def __init__(self, client: ApiClient, config: RunnerConfig | None = None) -> None:
        self.client = client
        self.config = config or RunnerConfig()
        self._slots = trio.Semaphore(self.config.max_tasks)
        self.requests = 0  # report API calls made (status, tests)

    async def create(self, date_from: datetime, date_to: datetime,
                     types: Iterable[str] = (), *,
                     priority: Priority = Priority.METADATA) -> ReportTask:
        """Start a task once fewer than ``max_tasks`` are unfinished; the caller must then
        ``wait`` for it (which frees the slot)."""
        await self._slots.acquire()
        try:
            for _ in range(self.config.busy_retries):
                try:
                    self.requests += 1
                    return await create_message_store_report(
                        self.client, date_from=date_from, date_to=date_to,
                        message_types=list(types) or None, priority=priority)
                except RateLimitedError as exc:
                    # The account has 2 unfinished tasks we do not know of (another app, an
                    # earlier session): wait as told, the scheduler already stopped Heavy.
                    wait = exc.retry_after if exc.retry_after is not None else 30.0
                    log.info("report task refused (%s): %d tasks running on the account; "
                             "retrying in %.0f s", exc.error_code, self.config.max_tasks, wait)
                    await trio.sleep(wait)
            raise TimeoutError("the account's report tasks stayed busy")
        except BaseException:
            self._slots.release()
            raise

    def adopt(self) -> None:
        """An unfinished task of an earlier session takes a slot too (release by ``wait``).
        Never blocks: with more than ``max_tasks`` remembered, the extra ones go unslotted."""
        try:
            self._slots.acquire_nowait()
        except trio.WouldBlock:
            log.info("more unfinished report tasks than the account allows")

    async def wait(self, task_id: str,
                   on_update: Callable[[ReportTask], None] | None = None) -> ReportTask:
        """Poll until the task is final (Completed, Failed or Cancelled); frees its slot."""
        delay = self.config.first_poll_s
        try:
            with trio.fail_after(self.config.task_timeout_s):
                while True:
                    await trio.sleep(delay)
                    self.requests += 1
                    task = await get_message_store_report(self.client, task_id,
                                                          priority=Priority.BACKGROUND)
                    if on_update is not None:
                        on_update(task)
                    if task.is_finished:
                        return task
                    delay = min(self.config.max_poll_s, delay * 2)
        finally:
            if self._slots.value < self.config.max_tasks:
                self._slots.release()

    async def status(self, task_id: str) -> ReportTask:
        self.requests += 1
        return await get_message_store_report(self.client, task_id,
                                              priority=Priority.BACKGROUND)

    async def archives(self, task_id: str,
                       priority: Priority = Priority.BACKGROUND) -> list[ArchiveRef]:
        self.requests += 1
        return await list_report_archives(self.client, task_id, priority=priority)
