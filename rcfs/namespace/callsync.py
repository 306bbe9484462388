"""The call log (Recordings) and greetings side of the metadata index.

Both cost scarce budget (call-log sync and listing are Heavy; greetings are answering rules
and one GET per greeting, Medium), so both load only when their folder is looked at and are
kept fresh only while in use: the call log every refresh interval while someone looks at a
Recordings folder, backing off (up to ``CALLS_BACKOFF_MAX`` intervals) on the timer while
nothing changes; greetings at most hourly. Admins sync the account-level call log: one sync
serves every mailbox (single-flight, never one per mailbox with the same token). A 403 means
the credentials may not read the call log: Recordings stay empty, nothing is retried.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

import trio

from rcfs.api.errors import ApiError, RcError
from rcfs.api.listing import get_recording, list_greetings
from rcfs.api.models import EPOCH, CallLogRecord
from rcfs.api.scheduler import Priority
from rcfs.api.sync import CallLogSync
from rcfs.namespace import calls_csv, layout
from rcfs.namespace.base import IndexBase
from rcfs.namespace.mailbox import Mailbox, call_rows, greeting_rows
from rcfs.namespace.store import Row, row

log = logging.getLogger(__name__)

GREETING_REFRESH = 3600.0
CALLS_BACKOFF_MAX = 8
"""An unchanged call log is polled at most every 8 refresh intervals while in use."""


class CallLogIndex(IndexBase):
    """Recordings (from the call log) and greetings of every mailbox."""

    def _calls_stale(self, box: Mailbox, backoff: bool = False) -> bool:
        """Due for a call-log refresh: every interval while someone looks at Recordings;
        on the timer (recently looked at, nobody looking now) the interval doubles with
        each refresh that brought nothing new, up to ``CALLS_BACKOFF_MAX``."""
        if not box.calls_ok:
            return False
        if not box.calls_loaded or box.calls_due:
            return True
        at = self._account_call_time if self._admin() else box.calls_at
        factor = min(CALLS_BACKOFF_MAX, 2 ** self._calls_unchanged) if backoff else 1
        return bool(time.time() - at >= self.poll_interval * factor)

    async def refresh_calls(self, ext_id: str, priority: Priority = Priority.METADATA) -> None:
        """One call-log refresh for a mailbox: the account-level log for admins (one sync
        serves every mailbox), the extension's own otherwise. Single-flight."""
        key = "calls:account" if self._admin() else f"calls:{ext_id}"
        await self._single_flight(key, lambda: self._refresh_calls(ext_id, priority))

    async def calls_changed(self, ext_id: str, priority: Priority = Priority.LISTING) -> None:
        """An event says the call log of ``ext_id`` changed (a call ended; a recording may
        exist): it is stale now. Refreshed at once only while Recordings is in use; a
        log nobody looks at costs nothing (its next look refreshes it)."""
        box = self.states.get(ext_id)
        if box is None or not box.calls_ok or not box.calls_loaded:
            return  # never loaded: its first look loads it
        # A sync in flight may have been answered before the change: a new one after it.
        running = self._flights.get("calls:account" if self._admin() else f"calls:{ext_id}")
        if running is not None:
            await running.wait()
        # This mailbox only: with the account-level log of an admin, a call of a mailbox
        # nobody looks at must not make the next look at another one's Recordings pay a
        # Heavy request for it.
        box.calls_due = True
        if any(self.in_use(ext_id, area) for area in layout.CALL_AREAS):
            await self.refresh_calls(ext_id, priority)

    async def _refresh_calls(self, ext_id: str, priority: Priority) -> None:
        box = self.states.get(ext_id)
        if box is None or not box.calls_ok:
            return
        if box.calls_loaded and not self._calls_stale(box, backoff=priority > Priority.LISTING):
            return  # a shared account sync just ran
        targets = list(self.states.values()) if self._admin() else [box]
        pending = [t for t in targets if t.calls_due]
        for target in pending:
            target.calls_due = False  # an event during the sync marks it again
        try:
            changed = await self._sync_calls(box, priority)
        except RcError as exc:
            if isinstance(exc, ApiError) and exc.status == 403:
                log.warning("no permission to read the call log (%s): Recordings stay empty",
                            exc.error_code)
                for target in targets:
                    target.calls_ok = False
                return
            self._note_calls_error(targets, exc)
            self._still_due(pending)
            raise
        except BaseException:  # cancelled: the calls did not come either
            self._still_due(pending)
            raise
        self._calls_unchanged = 0 if changed else self._calls_unchanged + 1
        for target in targets:
            target.calls_error = None
        if self.recording_type is None:
            await self._learn_recording_type(priority)

    @staticmethod
    def _still_due(boxes: list[Mailbox]) -> None:
        """A failed sync did not bring those mailboxes' calls: they are still due."""
        for box in boxes:
            box.calls_due = True

    def _note_calls_error(self, targets: list[Mailbox], exc: RcError) -> None:
        self.errors += 1
        for target in targets:
            target.calls_error = str(exc)
        log.warning("call-log refresh failed, Recordings show the last known calls: %s", exc)

    def _make_account_sync(self, token: str | None, when: datetime | None) -> CallLogSync:
        return CallLogSync(self.client, None, date_from=EPOCH, sync_token=token,
                           sync_time=when, priority=Priority.METADATA)

    async def _sync_calls(self, box: Mailbox, priority: Priority) -> bool:
        if self._admin():
            if self._account_calls is None:
                self._account_calls = self._make_account_sync(None, None)
            sync = self._account_calls
        else:
            sync = CallLogSync(self.client, box.ext.id, date_from=EPOCH,
                               sync_token=box.call_token, sync_time=box.call_time)
        sync.priority = priority
        began = time.time()
        result = await sync.sync()
        if self._admin():
            self._account_call_time = began
            by_ext: dict[str, list[CallLogRecord]] = {}
            for rec in result.records:
                if rec.extension_id:
                    by_ext.setdefault(rec.extension_id, []).append(rec)
            targets = list(self.states.values())
        else:
            box.call_token, box.call_time, box.calls_at = sync.sync_token, sync.sync_time, began
            by_ext = {box.ext.id: list(result.records)}
            targets = [box]
        changed = False
        for target in targets:
            target.calls_loaded = True
            recs = by_ext.get(target.ext.id, [])  # every call: Calls/ lists them all
            changed |= await self._apply_calls(target, recs, list(result.removed_ids),
                                               result.full)
        if self._admin():
            await self._save_meta()  # the account token, after every mailbox has its calls
        return changed

    async def _apply_calls(self, box: Mailbox, records: list[CallLogRecord],
                           removed: list[str], full: bool) -> bool:
        tz, ext_id, rtype = self.tz, box.ext.id, self.recording_type

        def build() -> tuple[dict[str, list[Row]], list[str]]:
            ups = {f"c:{c.id}": call_rows(c, tz, ext_id, rtype) for c in records}
            return ups, [f"c:{cid}" for cid in removed]

        change = await self._apply(ext_id, build, calls=records, removed_calls=removed)
        changed = change is not None and bool(change.dirs or change.removed)
        if full:
            keep = {f"c:{c.id}" for c in records}
            store = self.store
            have = set() if store is None else await trio.to_thread.run_sync(
                store.sources, ext_id, "c:", limiter=self._writer)
            gone = sorted(have - keep)
            if gone:
                changed = True
                await self._apply(ext_id, lambda: ({}, gone),
                                  removed_calls=[g[2:] for g in gone])
        if records or removed or full:
            changed |= await self._write_call_months(box)
        return changed

    async def _write_call_months(self, box: Mailbox) -> bool:
        """Rewrite the mailbox's ``Calls/YYYY-MM.csv`` rows from its call table (unchanged
        months are skipped by ``Store.apply``; a month without calls any more is removed).
        Runs after the calls are written, so the readers' snapshot already holds them."""
        tz, ext_id, rtype, store = self.tz, box.ext.id, self.recording_type, self.store
        calls = self.calls(ext_id)

        def recording(call: CallLogRecord) -> str | None:
            return layout.recording_path(call, tz, rtype)

        def build() -> tuple[dict[str, list[Row]], list[str]]:
            files = calls_csv.month_files(calls, tz, recording)
            ups = {f"cm:{m}": [row(layout.CALLS, e)] for m, e in files.items()}
            have = store.sources(ext_id, "cm:") if store is not None else set()
            return ups, sorted(have - set(ups))

        change = await self._apply(ext_id, build)
        return change is not None and bool(change.dirs or change.removed)

    async def _learn_recording_type(self, priority: Priority) -> None:
        await self._single_flight("recording-type", lambda: self._probe_recording(priority))

    async def _probe_recording(self, priority: Priority) -> None:
        if self.recording_type is not None or self.store is None:
            return
        sample = None
        for ext_id in self.states:
            calls = self.store.calls(ext_id)
            sample = next((r for c in calls for r in c.recordings), None)
            if sample is not None:
                break
        if sample is None:
            return
        try:
            meta = await get_recording(self.client, sample.id, priority=priority)
        except ApiError as exc:
            log.info("recording format unknown (%s); names use .mp3 for now", exc)
            return
        self.recording_type = meta.content_type
        await self._save_meta()
        if self.recording_type is not None and self.recording_type != "audio/mpeg":
            for box in list(self.states.values()):  # names change: .wav instead of .mp3
                calls = self.store.calls(box.ext.id) if self.store is not None else []
                await self._apply_calls(box, calls, [], False)

    def calls(self, ext_id: str, start: float | None = None,
              end: float | None = None) -> list[CallLogRecord]:
        """Call-log records of a mailbox (every call, recorded or not) in [start, end)."""
        return self.store.calls(ext_id, start, end) if self.store is not None else []

    async def refresh_greetings(self, ext_id: str,
                                priority: Priority = Priority.METADATA) -> None:
        await self._single_flight(f"g:{ext_id}", lambda: self._refresh_greetings(ext_id,
                                                                                priority))

    async def _refresh_greetings(self, ext_id: str, priority: Priority) -> None:
        box = self.states.get(ext_id)
        if box is None or time.time() - box.greetings_at < GREETING_REFRESH:
            return
        try:
            greetings = await list_greetings(self.client, ext_id, priority=priority)
        except ApiError as exc:
            log.info("greetings of %s unavailable: %s", ext_id, exc)
            box.greetings_at = time.time()
            return
        box.greetings_at = time.time()
        box.greetings = greetings
        for g in greetings:
            box.greeting_seen.setdefault(g.id, box.greetings_at)
        seen = dict(box.greeting_seen)
        keep = {f"g:{g.id}" for g in greetings}

        def build() -> tuple[dict[str, list[Row]], list[str]]:
            # Greetings carry no time in the API: the time rcfs first saw each one
            # (persisted), so it stays the same across refreshes and remounts.
            ups = {f"g:{g.id}": greeting_rows(g, seen.get(g.id, 0.0), ext_id)
                   for g in greetings}
            return ups, []

        await self._apply(ext_id, build)
        await self._sweep(box, "g:", keep)
