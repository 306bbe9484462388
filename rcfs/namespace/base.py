"""The metadata index's core: its state, its writes to the store, and the scheduling
helpers its syncs share (see ``rcfs.namespace.index`` for what the index does and why).

Writes run in one worker thread (``_writer``); after each, the readers' snapshot moves on
the trio thread (``Store.refresh_snapshot``), then the FUSE layer hears what changed.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import tzinfo
from pathlib import Path
from typing import TypeVar

import trio

from rcfs.api.client import RcClient
from rcfs.api.errors import RcError
from rcfs.api.models import CallLogRecord, Extension, Message
from rcfs.api.scheduler import Priority
from rcfs.api.sync import CallLogSync, MessageSync
from rcfs.namespace.mailbox import Mailbox
from rcfs.namespace.store import Change, Row, Store
from rcfs.namespace.tree import TreeView

log = logging.getLogger(__name__)
T = TypeVar("T")

PAGE_SIZE = 4000
"""Messages per first-sync page: 20,000 messages are 6 Light requests of ~5 MB each (a
default Light window of 50 loads five such mailboxes)."""

OnChange = Callable[[str, list[tuple[str, ...]], list[tuple[str, ...]]], None]
"""(extension id, files that left the tree, folders whose listing changed)."""


class IndexBase:
    """State and writes shared by the message-store, call-log and greeting syncs."""

    def __init__(self, client: RcClient, state_dir: Path, *, refresh_interval: float = 60.0,
                 tz: tzinfo | None = None, lookup_deadline: float = 2.0,
                 on_change: OnChange | None = None, page_size: int = PAGE_SIZE) -> None:
        self.client = client
        self.state_dir = state_dir
        self.refresh_interval = refresh_interval
        self.poll_interval = refresh_interval
        self.tz = tz
        self.lookup_deadline = lookup_deadline
        self.on_change = on_change
        # Every batch of messages written (new or updated), after the FUSE layer heard.
        self.on_messages: Callable[[str, list[Message]], None] | None = None
        self.page_size = page_size
        self.me: Extension | None = None
        self.states: dict[str, Mailbox] = {}
        self.store: Store | None = None
        self.view: TreeView | None = None
        self._nursery: trio.Nursery | None = None
        self._writer = trio.CapacityLimiter(1)
        # One first-sync page in flight at a time, across mailboxes: a page is thousands of
        # parsed messages, and five at once would set the mount's RSS for good (the heap
        # does not shrink back); the pages wait for the same Light budget anyway.
        self._pages = trio.CapacityLimiter(1)
        self._flights: dict[str, trio.Event] = {}
        self._first_look: dict[str, float] = {}  # what -> when a listing stops waiting
        self._sizes: dict[str, int] = {}  # learned sizes waiting to be persisted
        self._sizes_flushing = False
        self._msyncs: dict[str, MessageSync] = {}
        self._account_calls: CallLogSync | None = None
        self._account_call_time = 0.0
        self._calls_unchanged = 0
        self.extensions_at = 0.0
        self.errors = 0
        # WAV or MP3 is an account-wide setting the call log does not tell: one recording's
        # metadata (one Heavy request, once per account, persisted) does.
        self.recording_type: str | None = None
        self._folder_map: dict[str, str] = {}
        self._folder_key: tuple[tuple[str, str | None, str | None], ...] | None = None
        self.used_at: dict[str, float] = {}  # ext id -> last use of one of its folders
        self.area_used_at: dict[tuple[str, str], float] = {}

    def in_use(self, ext_id: str, area: str | None = None, within: float | None = None) -> bool:
        """Was a folder of ``ext_id`` (in ``area``) used recently (default: within five
        polling intervals)?"""
        horizon = time.time() - (within if within is not None else 5 * self.poll_interval)
        if area is None:
            return self.used_at.get(ext_id, 0.0) >= horizon
        return self.area_used_at.get((ext_id, area), 0.0) >= horizon

    async def _write(self, fn: Callable[[Store], T]) -> T | None:
        store = self.store
        if store is None:
            return None
        result = await trio.to_thread.run_sync(fn, store, limiter=self._writer)
        if self.store is store:
            store.refresh_snapshot()
        return result

    def record_size(self, key: str, size: int) -> None:
        """A download (or the content cache) told the size of a file the API gave none
        for: persist it, batched in the background, so listings after a remount show it."""
        self._sizes[key] = size
        if not self._sizes_flushing and self._nursery is not None:
            self._sizes_flushing = True
            self._nursery.start_soon(self._flush_sizes)

    async def _flush_sizes(self) -> None:
        try:
            while self._sizes:
                batch, self._sizes = self._sizes, {}
                touched = await self._write(functools.partial(Store.set_size, sizes=batch))
                if self.view is not None:
                    for ext_id, folder in touched or ():
                        self.view.invalidate(ext_id, [folder])
        finally:
            self._sizes_flushing = False

    async def _save_meta(self) -> None:
        account_call = None
        if self._account_calls is not None:
            account_call = (self._account_calls.sync_token, self._account_calls.sync_time)
        values = {"me": self.me, "recording_type": self.recording_type,
                  "account_call": account_call}
        await self._write(lambda s: s.set_meta(values))

    async def _apply(self, ext_id: str, build: Callable[[], tuple[dict[str, list[Row]],
                                                                  list[str]]],
                     *, calls: list[CallLogRecord] | None = None,
                     removed_calls: list[str] | None = None) -> Change | None:
        """Render (in the writer thread) and write one batch of changes of a mailbox, then
        update its skeleton and tell the FUSE layer what left and what changed."""
        box = self.states.get(ext_id)
        if box is None:
            return None
        state = box.persisted()
        call_rows_ = [(c.id, c.start_time.timestamp(), c) for c in calls or ()]

        def _do(store: Store) -> Change:
            upserts, removed = build()
            return store.apply(ext_id, upserts, removed, state, call_rows_,
                               removed_calls or ())

        change = await self._write(_do)
        if change is None or ext_id not in self.states:
            return change
        if change.dirs:
            dirs = dict(box.dirs)
            dirs.update(change.dirs)
            box.set_dirs(dirs)
            assert self.view is not None
            self.view.invalidate(ext_id, list(change.dirs))
        if (change.dirs or change.removed) and self.on_change is not None:
            self.on_change(ext_id, [(*d.split("/"), n) for d, n in change.removed],
                           [tuple(d.split("/")) for d in change.dirs])
        return change

    async def _save(self, ext_id: str) -> None:
        box = self.states.get(ext_id)
        if box is not None:
            state = box.persisted()
            await self._write(lambda s: s.save_mailbox(ext_id, state))

    def _spawn(self, fn: Callable[[str, Priority], Awaitable[None]], ext_id: str,
               priority: Priority) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(self._quietly, fn, ext_id, priority)

    @staticmethod
    async def _quietly(fn: Callable[[str, Priority], Awaitable[None]], ext_id: str,
                       priority: Priority) -> None:
        try:
            await fn(ext_id, priority)
        except RcError:
            pass  # logged where it happened; the last known listing stays (stale-if-error)

    async def _single_flight(self, key: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` unless a run for ``key`` is in flight; then wait for that one."""
        running = self._flights.get(key)
        if running is not None:
            await running.wait()
            return
        done = self._flights[key] = trio.Event()
        try:
            await work()
        finally:
            del self._flights[key]
            done.set()

    async def _sweep(self, box: Mailbox, prefix: str, keep: set[str],
                     removed_calls: list[str] | None = None) -> None:
        """After a full sync: drop what the index holds that the server no longer has."""
        store = self.store
        if store is None:
            return
        have = await trio.to_thread.run_sync(store.sources, box.ext.id, prefix,
                                             limiter=self._writer)
        gone = sorted(have - keep)
        if gone or removed_calls:
            await self._apply(box.ext.id, lambda: ({}, gone), removed_calls=removed_calls)

    def _admin(self) -> bool:
        return self.me is not None and self.me.is_admin
