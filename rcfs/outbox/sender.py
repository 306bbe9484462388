"""The outbox's sender: sends each queued job exactly once and follows it to a final status.

The rule that makes "exactly once" hold (docs/ringcentral.md §7: a POST is never retried blindly):

* A job is journaled ``sending`` (fsync'd) *before* its POST. Whatever happens next —
  answer lost, reset, timeout, kill -9, reboot — a job found in ``sending`` has an unknown
  outcome, and is resolved by looking for it in the message store: same type, Outbound,
  same recipient, created no earlier than the attempt (minus a clock-skew allowance), same
  content (SMS text; MMS attachment names and sizes; fax resolution/cover options), and not
  already claimed by another job. Found: it was sent (its message id is recorded, never
  sent again). Not found: only once the attempt is surely over (its connection closed, or
  the process that made it is gone) plus a settle time for the store to show it, the job
  goes back to ``queued`` and is sent again.
* Answers that prove nothing was created (a 4xx, a 429, a 503, budget exhausted before
  sending, a refused connection) need no check: 4xx fails the job with RingCentral's code
  and message, the others retry with backoff.
* Greeting uploads are not messages and cannot be looked up: an ambiguous upload is sent
  again (a duplicate stored greeting is harmless and replaces the same slot).

Sends go through the client's scheduler (Heavy for fax/greetings, Medium for SMS/MMS) at
PREFETCH priority, so they use spare budget and never starve interactive reads; a burst of
texts is paced by the scheduler, not by 429s. Status polling is one batch GET (≤50 ids,
Light) per extension at BACKGROUND priority, with a per-job interval growing from
``poll_min_s`` to ``poll_max_s``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import trio

from rcfs.api.errors import (
    ApiError,
    AuthRequiredError,
    BudgetExhaustedError,
    NotSentError,
    RateLimitedError,
    RcError,
    TransportError,
)
from rcfs.api.listing import (
    BatchItemError,
    get_messages_batch,
    list_messages,
    list_phone_numbers,
)
from rcfs.api.models import Message, PhoneNumber
from rcfs.api.protocol import ApiClient
from rcfs.api.scheduler import Priority
from rcfs.api.uploads import (
    SendValidationError,
    UploadFile,
    is_final,
    safe_upload_name,
    send_fax,
    send_mms,
    send_sms,
    upload_greeting,
)
from rcfs.outbox.journal import Job, Store
from rcfs.outbox.matching import matches, text_of
from rcfs.outbox.names import shown_name
from rcfs.outbox.validate import greeting_type

log = logging.getLogger(__name__)

DEFAULT_RULE = "business-hours-rule"


@dataclass
class Settings:
    send_concurrency: int = 2  # POSTs in flight per kind (fax, sms, greeting)
    settle_s: float = 30.0  # after an unknown outcome, how long the store may lag
    skew_s: float = 600.0  # clock difference allowed between us and RingCentral
    poll_min_s: float = 5.0
    poll_max_s: float = 120.0
    sms_delivery_wait_s: float = 24 * 3600.0  # "Sent" with no delivery report: give up
    final_wait_s: float = 7 * 86400.0  # still not final after this: stop polling
    max_attempts: int = 8  # POSTs that failed transiently before the job fails
    retry_base_s: float = 5.0
    retry_max_s: float = 600.0
    fax_deadline_s: float = 900.0
    sms_deadline_s: float = 180.0
    numbers_ttl_s: float = 600.0
    send_priority: Priority = Priority.PREFETCH
    poll_priority: Priority = Priority.BACKGROUND
    # Test hook, deliberately not a configuration key: hold forever at this point so a test
    # can kill -9 the mount there (see ``_failpoint``).
    failpoint: str = field(default_factory=lambda: os.environ.get("RCFS_OUTBOX_FAILPOINT", ""))


class _Retry(Exception):
    """Nothing was sent; try again after ``delay`` seconds."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class _Fail(Exception):
    """The job cannot be sent (RingCentral refused it, or it can never be valid)."""

    def __init__(self, message: str, code: str | None = None, status: int | None = None
                 ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class _Unknown(Exception):
    """The request may have reached RingCentral: the message store decides."""


def _plain(exc: BaseException) -> str:
    if isinstance(exc, ApiError):
        code = f" {exc.error_code}" if exc.error_code else ""
        return f"HTTP {exc.status}{code}: {exc.message}".rstrip(": ")
    return str(exc) or type(exc).__name__


def _never_sent(exc: TransportError | RcError) -> bool:
    """A transport failure that happened before any byte of the request left."""
    return isinstance(exc, NotSentError)


class Sender:
    def __init__(self, store: Store, client: ApiClient, settings: Settings | None = None,
                 changed: Callable[[Job], None] | None = None) -> None:
        self.store = store
        self.client = client
        self.settings = settings or Settings()
        self.changed = changed or (lambda job: None)
        self.started = time.time()
        self._wake = trio.Event()
        self._poll_wake = trio.Event()
        self._active: set[str] = set()
        kinds = ("fax", "sms", "greeting")
        self._limits = {k: trio.CapacityLimiter(self.settings.send_concurrency) for k in kinds}
        self._numbers: dict[str, tuple[float, list[PhoneNumber]]] = {}
        self.counters = dict.fromkeys(("posts", "resolved_found", "resolved_resend",
                                       "store_checks", "polls", "retries"), 0)
        self.loaded()

    def loaded(self) -> None:
        """The store was (re)loaded: an attempt of a job left ``sending`` by an earlier
        process is over by now."""
        self.started = time.time()
        for job in self.store.jobs.values():
            if job.state == "sending":
                job.attempt_ended = max(job.attempt_ended or 0.0, self.started)

    def wake(self) -> None:
        self._wake.set()
        self._poll_wake.set()

    # -- the loops ------------------------------------------------------------------------

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._poll_loop)
            while True:
                self._wake = trio.Event()
                now = time.time()
                due = now + 30.0
                for job in sorted(self.store.jobs.values(), key=lambda j: (j.created, j.id)):
                    if job.id in self._active:
                        continue
                    if job.state not in ("queued", "sending"):
                        continue
                    if job.next_try > now:
                        due = min(due, job.next_try)
                        continue
                    self._active.add(job.id)
                    step = self._send if job.state == "queued" else self._resolve
                    nursery.start_soon(self._work, job, step)
                with trio.move_on_after(max(0.01, due - time.time())):
                    await self._wake.wait()

    async def _work(self, job: Job, step: Callable[[Job], Awaitable[None]]) -> None:
        try:
            await step(job)
        except Exception:  # a bug must not stop the other jobs; the job keeps its state
            log.exception("outbox: job %s", job.id)
            job.next_try = time.time() + min(60.0, self.settings.retry_max_s)
        finally:
            self._active.discard(job.id)
            self._wake.set()

    def _live(self, job: Job, state: str) -> bool:
        return self.store.jobs.get(job.id) is job and job.state == state

    async def _failpoint(self, name: str, job: Job) -> None:
        """Test hook (``RCFS_OUTBOX_FAILPOINT``): announce the point, then hold forever so a
        test can kill -9 the process exactly there."""
        if self.settings.failpoint != name:
            return
        marker = self.store.root / f"failpoint-{name}"
        marker.write_text(job.id)
        log.warning("outbox: failpoint %s reached by job %s; holding", name, job.id)
        await trio.sleep_forever()

    # -- sending ----------------------------------------------------------------------------

    async def _send(self, job: Job) -> None:
        async with self._limits[job.kind if job.kind != "mms" else "sms"]:
            if not self._live(job, "queued"):
                return
            await self._failpoint("queued", job)
            try:
                if job.kind in ("sms", "mms") and not job.options.get("from"):
                    job.options["from"] = await self._from_number(job)
                files = await trio.to_thread.run_sync(self._read_docs, job)
            except _Retry as exc:
                await self._retry(job, str(exc), exc.delay, counted=False)
                return
            except _Fail as exc:
                await self._fail(job, str(exc), exc.code, exc.status)
                return
            await self._await_budget(job)
            if not self._live(job, "queued"):
                return
            job.state = "sending"
            job.attempts += 1
            job.attempt_started = time.time()
            job.attempt_ended = None
            job.note(f"sending (attempt {job.attempts})")
            await self.store.save(job)
            self.changed(job)
            await self._failpoint("before_post", job)
            self.counters["posts"] += 1
            try:
                message_id, status = await self._post(job, files)
            except _Retry as exc:
                job.state = "queued"
                await self._retry(job, str(exc), exc.delay, counted=True)
                return
            except _Fail as exc:
                await self._fail(job, str(exc), exc.code, exc.status)
                return
            except _Unknown as exc:
                job.attempt_ended = time.time()
                job.error = str(exc)
                job.note(f"no clear answer ({exc}): checking the message store before "
                         "sending again")
                await self.store.save(job)
                self.changed(job)
                await self._resolve(job)
                return
            await self._failpoint("after_post", job)
            await self._accepted(job, message_id, status)

    async def _await_budget(self, job: Job) -> None:
        """Wait until the scheduler has spare budget for this send *before* journaling it
        ``sending``: the time a job spends with an unknown outcome (and the chance that its
        deadline runs out in the scheduler's queue) stays as short as the HTTP exchange."""
        scheduler = getattr(self.client, "scheduler", None)
        if scheduler is None:
            return
        group = "Heavy" if job.kind in ("fax", "greeting") else "Medium"
        while scheduler.spare(group) <= 0:
            await trio.sleep(0.1)

    def _read_docs(self, job: Job) -> list[UploadFile]:
        out = []
        for i, doc in enumerate(job.docs, 1):
            try:
                data = self.store.file_path(doc.file_id).read_bytes()
            except OSError as exc:
                raise _Fail(f"spooled file of {doc.name} unreadable: {exc}") from None
            out.append(UploadFile(safe_upload_name(doc.name, f"file{i}"), data, doc.ctype))
        return out

    async def _post(self, job: Job, files: list[UploadFile]) -> tuple[str, str | None]:
        """One POST. Returns (message or greeting id, remote status); raises _Retry, _Fail
        or _Unknown by what the failure proves."""
        s = self.settings
        opts = job.options
        prio = s.send_priority
        try:
            if job.kind == "fax":
                assert job.to is not None
                deadline = trio.current_time() + s.fax_deadline_s
                cover = opts.get("cover_index")
                msg = await send_fax(
                    self.client, job.to, files,
                    resolution="Low" if opts.get("fax_resolution") == "Low" else (
                        "High" if opts.get("fax_resolution") == "High" else None),
                    cover_index=int(cover) if cover else None,
                    cover_page_text=opts.get("cover_page_text") or None,
                    ext_id=job.ext, priority=prio, deadline=deadline)
                return msg.id, msg.message_status
            if job.kind in ("sms", "mms"):
                assert job.to is not None
                deadline = trio.current_time() + s.sms_deadline_s
                text = text_of(job)
                attachments = [f for f, d in zip(files, job.docs, strict=True) if d.text is None]
                if attachments:
                    msg = await send_mms(self.client, opts["from"], job.to, attachments,
                                         text, ext_id=job.ext, priority=prio,
                                         deadline=deadline)
                else:
                    assert text is not None
                    msg = await send_sms(self.client, opts["from"], job.to, text,
                                         ext_id=job.ext, priority=prio, deadline=deadline)
                return msg.id, msg.message_status
            deadline = trio.current_time() + s.fax_deadline_s
            rule = opts.get("answering_rule") or DEFAULT_RULE
            apply = rule.lower() != "none"
            greeting = await upload_greeting(
                self.client, greeting_type(job.name), files[0],
                answering_rule_id=rule if apply else None, apply=apply, ext_id=job.ext,
                priority=prio, deadline=deadline)
            return greeting.id, None
        except SendValidationError as exc:
            raise _Fail(f"refused before sending: {exc}") from None
        except RateLimitedError as exc:
            raise _Retry(f"rate limited ({_plain(exc)})", exc.retry_after or 60.0) from None
        except BudgetExhaustedError as exc:
            raise _Retry(f"waiting for request budget ({exc})", 5.0) from None
        except AuthRequiredError as exc:
            raise _Retry(f"not logged in ({exc})", 60.0) from None
        except ApiError as exc:
            if exc.status == 503:
                retry = exc.headers.get("retry-after")
                delay = float(retry) if retry and retry.isdigit() else None
                raise _Retry(_plain(exc), delay) from None
            if exc.status >= 500 or exc.status == 408:
                raise _Unknown(_plain(exc)) from None
            if exc.status == 401:
                raise _Retry(_plain(exc), 60.0) from None
            raise _Fail(f"refused by RingCentral: {_plain(exc)}", exc.error_code,
                        exc.status) from None
        except (TransportError, RcError) as exc:
            if _never_sent(exc):
                raise _Retry(f"cannot connect ({exc})") from None
            raise _Unknown(_plain(exc)) from None

    async def _accepted(self, job: Job, message_id: str, status: str | None) -> None:
        job.message_id = message_id
        job.remote_status = status
        job.sent_at = time.time()
        job.attempt_ended = job.sent_at
        job.error = None
        job.retries = 0
        if job.kind == "greeting":
            job.state = "delivered"
            job.note(f"uploaded: greeting {message_id}")
            self._finalize(job)
        else:
            job.state = "sent"
            job.note(f"accepted by RingCentral: message {message_id}, status {status}")
            job.poll_interval = self.settings.poll_min_s
            job.next_poll = time.time() + self.settings.poll_min_s
        await self.store.save(job)
        self.changed(job)
        self._poll_wake.set()

    async def _retry(self, job: Job, why: str, delay: float | None, counted: bool) -> None:
        s = self.settings
        self.counters["retries"] += 1
        job.retries += 1
        job.error = why
        if counted and job.attempts >= s.max_attempts:
            await self._fail(job, f"gave up after {job.attempts} attempts; last error: {why}")
            return
        if delay is None:
            delay = min(s.retry_max_s, s.retry_base_s * 2 ** (job.retries - 1))
        job.state = "queued"
        job.next_try = time.time() + delay
        job.note(f"not sent: {why}; next try in {delay:.0f} s")
        await self.store.save(job)
        self.changed(job)

    async def _fail(self, job: Job, why: str, code: str | None = None,
                    status: int | None = None) -> None:
        if self.store.jobs.get(job.id) is not job:
            return
        job.state = "failed"
        job.error = why
        job.error_code = code
        job.http_status = status
        job.note("failed: " + why)
        self._finalize(job)
        await self.store.save(job)
        self.changed(job)

    def _finalize(self, job: Job) -> None:
        job.final_at = time.time()
        job.final = True
        taken = {j.final_name for j in self.store.jobs.values()
                 if j is not job and j.final_name and j.parent == job.parent
                 and (j.state == "failed") == (job.state == "failed")}
        job.final_name = shown_name(job.name, taken)  # safe, and fits with .status.txt

    # -- from number ----------------------------------------------------------------------

    async def _from_number(self, job: Job) -> str:
        cached = self._numbers.get(job.ext)
        if cached is None or time.time() - cached[0] > self.settings.numbers_ttl_s:
            try:
                nums = await list_phone_numbers(self.client, job.ext,
                                                priority=self.settings.send_priority)
            except RcError as exc:
                raise _Retry(f"cannot list the extension's phone numbers ({_plain(exc)})"
                             ) from None
            cached = (time.time(), nums)
            self._numbers[job.ext] = cached
        mms = job.kind == "mms"
        able = [n for n in cached[1] if (n.can_send_mms if mms else n.can_send_sms)]
        if not able:
            raise _Fail(f"no phone number of this extension can send {job.kind.upper()} "
                        "(set user.rc.from on the Text folder to one that can)")
        able.sort(key=lambda n: (n.usage_type != "DirectNumber", n.number))
        return able[0].number

    # -- ambiguous outcomes ---------------------------------------------------------------

    async def _resolve(self, job: Job) -> None:
        s = self.settings
        failures = 0
        while self._live(job, "sending"):
            if job.kind == "greeting":
                job.state = "queued"
                job.note("upload outcome unknown: a greeting cannot be looked up, uploading "
                         "again")
                await self.store.save(job)
                self.changed(job)
                return
            self.counters["store_checks"] += 1
            try:
                found = await self._find_in_store(job)
            except RcError as exc:
                failures += 1
                delay = min(s.retry_max_s, s.retry_base_s * 2 ** min(failures, 10))
                log.info("outbox: job %s: message store check failed (%s); again in %.0f s",
                         job.id, exc, delay)
                await trio.sleep(delay)
                continue
            if not self._live(job, "sending"):
                return
            if found is not None:
                self.counters["resolved_found"] += 1
                job.note(f"found in the message store as message {found.id}: it was sent, "
                         "not sending again")
                await self._accepted(job, found.id, found.message_status)
                return
            started = job.attempt_started or 0.0
            settle_at = max(started, job.attempt_ended or started) + s.settle_s
            now = time.time()
            if now >= settle_at:
                self.counters["resolved_resend"] += 1
                job.state = "queued"
                job.next_try = 0.0
                job.note("not in the message store: it was not sent, sending again")
                await self.store.save(job)
                self.changed(job)
                return
            await trio.sleep(settle_at - now)

    async def _find_in_store(self, job: Job) -> Message | None:
        started = job.attempt_started or job.created
        since = datetime.fromtimestamp(started - self.settings.skew_s, UTC)
        pager = list_messages(
            self.client, job.ext, date_from=since,
            message_types=["Fax"] if job.kind == "fax" else ["SMS"], direction="Outbound",
            availability=["Alive", "Deleted", "Purged"], priority=self.settings.send_priority)
        messages = await pager.collect()
        # No await from here on: the claim below is atomic among concurrent resolutions.
        claimed = {j.message_id for j in self.store.jobs.values()
                   if j.message_id and j is not job}
        found = [m for m in messages if m.id not in claimed and matches(job, m)]
        if not found:
            return None
        return min(found, key=lambda m: (m.creation_time, m.id))

    # -- polling ----------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        while True:
            self._poll_wake = trio.Event()
            now = time.time()
            due: dict[str, list[Job]] = {}
            soonest = now + 30.0
            for job in self.store.jobs.values():
                if job.state != "sent" or job.final or not job.message_id:
                    continue
                if job.next_poll <= now:
                    due.setdefault(job.ext, []).append(job)
                else:
                    soonest = min(soonest, job.next_poll)
            for ext, jobs in due.items():
                await self._poll(ext, jobs)
            if due:
                continue
            with trio.move_on_after(max(0.01, soonest - time.time())):
                await self._poll_wake.wait()

    async def _poll(self, ext: str, jobs: list[Job]) -> None:
        s = self.settings
        self.counters["polls"] += 1
        ids = [j.message_id for j in jobs if j.message_id]
        try:
            found = await get_messages_batch(self.client, ext, ids, priority=s.poll_priority)
        except RcError as exc:
            log.info("outbox: status poll of %d messages failed: %s", len(ids), exc)
            for job in jobs:
                job.next_poll = time.time() + max(job.poll_interval, s.poll_min_s)
            return
        for job in jobs:
            if not self._live(job, "sent") or job.message_id is None:
                continue
            item = found.get(job.message_id)
            await self._update(job, item)

    async def _update(self, job: Job, item: Message | BatchItemError | None) -> None:
        s = self.settings
        now = time.time()
        job.poll_interval = min(s.poll_max_s, max(s.poll_min_s, job.poll_interval * 1.5))
        job.next_poll = now + job.poll_interval
        if isinstance(item, BatchItemError) or item is None:
            if isinstance(item, BatchItemError) and item.status == 404:
                job.final = True
                job.note("the message left the message store before a final status")
                self._finalize(job)
                await self.store.save(job)
                self.changed(job)
            return
        changed = item.message_status != job.remote_status
        job.remote_status = item.message_status
        if item.fax_page_count:
            job.pages = item.fax_page_count
        if is_final(item):
            status = item.message_status or "?"
            if status in ("Sent", "Delivered") and item.availability == "Alive":
                job.state = "delivered"
                job.note(f"{status}" + (f" ({job.pages} pages)" if job.pages else ""))
                self._finalize(job)
            elif status in ("Sent", "Delivered"):
                job.state = "delivered"
                job.note(f"{status}; the message was later deleted")
                self._finalize(job)
            else:
                code = item.delivery_error_code or next(
                    (p.fax_error_code for p in item.to if p.fax_error_code), None)
                await self._fail(job, f"RingCentral reports {status}"
                                 + (f": {code}" if code else ""), code)
                return
        elif job.sent_at is not None and (
                (job.kind != "fax" and item.message_status == "Sent"
                 and now - job.sent_at > s.sms_delivery_wait_s)
                or now - job.sent_at > s.final_wait_s):
            job.final = True
            job.note(f"still {item.message_status} after {now - job.sent_at:.0f} s: no "
                     "delivery report, giving up waiting")
            self._finalize(job)
        elif changed:
            job.note(f"RingCentral status: {item.message_status}")
        else:
            return
        await self.store.save(job)
        self.changed(job)
