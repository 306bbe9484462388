"""Freshness: push events drive the index's syncs; polling is the safety net.

An event names one mailbox: only that mailbox is synced (message-sync, one Light request;
call-log sync when a call event says a recording may exist), and events that arrive while
its sync runs collapse into one more sync after it. While the socket is healthy the index
polls every ``push_poll_interval`` seconds (a safety net for an event the gateway never
sent); when the socket is down or unavailable it polls at ``refresh_interval`` again.

``IndexSync`` is the adapter to the metadata index's public API (sync a mailbox, mark a
call log stale, set the polling interval, message ids).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import trio

from rcfs.api.errors import RcError
from rcfs.api.models import Message
from rcfs.api.push import PushClient, PushEvent
from rcfs.api.scheduler import Priority
from rcfs.namespace.idset import IdSet
from rcfs.namespace.index import MetadataIndex

log = logging.getLogger(__name__)

COALESCE_S = 0.05  # events of one burst (several filters, one change) share a sync


class IndexSync:
    """What freshness needs from the metadata index (its public API only)."""

    def __init__(self, index: MetadataIndex) -> None:
        self.index = index
        self.started = time.time()

    def synced_here(self, ext_id: str) -> bool:
        """Has a sync of ``ext_id`` begun in this process (a snapshot's does not count)?"""
        state = self.index.states.get(ext_id)
        return self.index.syncing(ext_id) or (
            state is not None and state.refreshed_at >= self.started)

    def mailboxes(self) -> list[str]:
        return list(self.index.states)

    def loaded(self, ext_id: str) -> bool:
        """Has a full sync of ``ext_id`` completed (now or in an earlier mount)?"""
        state = self.index.states.get(ext_id)
        return state is not None and state.msgs_complete

    def message_ids(self, ext_id: str) -> set[str]:
        return self.index.message_ids(ext_id)

    def set_poll_interval(self, seconds: float) -> None:
        self.index.set_poll_interval(seconds)

    async def sync_now(self, ext_id: str, calls: bool) -> None:
        """A sync of ``ext_id`` that begins after this call (an event's change may be newer
        than a sync already in flight, whose answer is then not enough)."""
        await self.index.wait_sync(ext_id)
        await self.index.refresh(ext_id, Priority.LISTING)
        if calls:
            # A call ended: a recording may exist. The call log is Heavy; it is synced now
            # only if someone looks at Recordings, else marked stale for the next look.
            await self.index.calls_changed(ext_id, Priority.LISTING)


class Freshness:
    """Maps push events to syncs and sets the polling interval from the socket's state."""

    def __init__(self, sync: IndexSync, *, refresh_interval: float, safety_interval: float,
                 push: Callable[[Freshness], PushClient] | None = None,
                 on_new: Callable[[str, list[Message]], None] | None = None) -> None:
        self.sync = sync
        self.refresh_interval = refresh_interval
        self.safety_interval = max(safety_interval, refresh_interval)
        self.on_new = on_new
        self.interval = refresh_interval
        self.push = push(self) if push is not None else None
        self._dirty: dict[str, bool] = {}  # ext id -> call log too
        self._running: set[str] = set()
        self._wake = trio.Event()
        self._known: dict[str, IdSet] = {}
        self._armed = False
        self.event_syncs = 0

    # -- callbacks of the push client -------------------------------------------------------

    def on_event(self, event: PushEvent) -> None:
        mailboxes = self.sync.mailboxes()
        if event.ext_id is None or event.ext_id not in mailboxes:
            targets = mailboxes if event.ext_id is None else []
        else:
            targets = [event.ext_id]
        for ext in targets:
            self._mark(ext, event.kind == "telephony")

    def on_gap(self, initial: bool = False) -> None:
        """Events may have been lost: catch up every mailbox (each one sync). After the
        first subscription, only the mailboxes already synced: the others' first sync is
        still to come."""
        for ext in self.sync.mailboxes():
            if not initial or self.sync.synced_here(ext):
                self._mark(ext, not initial)

    def on_state(self, state: str) -> None:
        interval = self.safety_interval if state == "connected" else self.refresh_interval
        if interval != self.interval:
            log.info("push %s: polling every %g s", state, interval)
        self.interval = interval
        self.sync.set_poll_interval(interval)

    def filters(self) -> list[str]:
        out = []
        for ext in self.sync.mailboxes():
            base = f"/restapi/v1.0/account/~/extension/{ext}"
            out += [f"{base}/message-store", f"{base}/telephony/sessions"]
        return out

    # -- new items, for desktop notifications ----------------------------------------------

    def arm(self) -> None:
        """The initial load is done: from now on new items are news."""
        for ext in self.sync.mailboxes():
            if self.sync.loaded(ext):
                self._known[ext] = IdSet(self.sync.message_ids(ext))
        self._armed = True

    def messages_written(self, ext_id: str, records: list[Message]) -> None:
        """Index callback (a batch of messages written): report those not seen before."""
        if not self._armed or self.on_new is None:
            return
        known = self._known.get(ext_id)
        if known is None:
            # A mailbox added (or whose first load failed) before arm(): its first load
            # is not news; what it holds once loaded is the baseline.
            if self.sync.loaded(ext_id):
                self._known[ext_id] = IdSet(self.sync.message_ids(ext_id))
            return
        new = [m for m in records if m.id not in known]
        known.update(m.id for m in records)
        if new:
            self.on_new(ext_id, new)

    # -- the sync worker -------------------------------------------------------------------

    def _mark(self, ext: str, calls: bool) -> None:
        self._dirty[ext] = self._dirty.get(ext, False) or calls
        self._wake.set()

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            if self.push is not None:
                self.push.set_filters(self.filters())
                nursery.start_soon(self.push.run)
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                await trio.sleep(COALESCE_S)
                for ext in list(self._dirty):
                    if ext not in self._running:
                        calls = self._dirty.pop(ext)
                        self._running.add(ext)
                        nursery.start_soon(self._sync_loop, ext, calls)

    async def _sync_loop(self, ext: str, calls: bool) -> None:
        try:
            while True:
                self.event_syncs += 1
                try:
                    await self.sync.sync_now(ext, calls)
                except RcError:
                    pass  # logged by the index; the polling safety net retries
                if ext not in self._dirty:
                    return
                calls = self._dirty.pop(ext)
        finally:
            self._running.discard(ext)

    async def wait_poll(self) -> None:
        """Sleep one polling interval; wake early when the interval shrinks (socket lost)."""
        start = trio.current_time()
        while True:
            left = start + self.interval - trio.current_time()
            if left <= 0:
                return
            await trio.sleep(min(left, 1.0))

    def mailboxes_changed(self) -> None:
        if self.push is not None:
            self.push.set_filters(self.filters())

    def status(self) -> dict[str, Any]:
        push = self.push.status() if self.push is not None else {"state": "off"}
        return {**push, "poll_interval": self.interval, "event_syncs": self.event_syncs}
