"""The metadata index: what the tree shows, synced from RingCentral into SQLite.

Why an index: listing a folder must never wait on the network when the answer is known
(file managers fire thousands of lookups), a remount must show everything at once, even
offline, and RingCentral's sync APIs turn "what changed" into one request per refresh.

How: the index lives on disk (``store``: one row per file, see its docstring
for why SQLite) and is queried (``tree``), never held whole; a refresh writes only the
rows that changed. Only each mailbox's small state and folder skeleton are in RAM.

* First sync in pages: message-sync FSync with ``recordCount``, then ISync growing the
  frame back one page at a time; each page is written (and listed) as it arrives, and
  ``status()`` shows the progress.
* Message store, call log and greetings sync independently: a 429 on one never hides the
  others. Listing waits for the network only for a folder never loaded, and at most
  ``lookup_deadline`` seconds; what arrives later shows through ``on_change`` (kernel
  invalidation).
* No budget spent on what nobody looks at: the call log (Heavy) only while Recordings is
  in use, backing off while nothing changes; greetings and answering rules (Medium) only
  while Greetings is; the message store (Light) only for mailboxes in use.
* Single-flight: concurrent refreshes of one mailbox, of the call log, of the greetings
  and the one recording-format probe each share one request.

For push notifications (``rcfs.push``): ``refresh(ext_id)`` syncs one mailbox now
(``wait_sync`` first lets an event's change, newer than a sync in flight, get its own);
``calls_changed(ext_id)`` marks a call log stale after a telephony event;
``set_poll_interval(seconds)`` sets how often mailboxes in use are polled (raised to a
safety-net interval while the socket is healthy); ``on_messages`` hears every batch of
messages written (desktop notifications pick the new ones); ``message_ids`` and
``message_files`` answer from the store.
For the account-level Calls/ (``rcfs.namespace.account_calls``): ``calls(ext_id)`` returns
a mailbox's call records.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio

from rcfs.api.errors import ApiError, RcError
from rcfs.api.listing import (
    delete_message,
    get_extension,
    list_extensions,
    list_phone_numbers,
    update_read_status,
)
from rcfs.api.models import EPOCH, Message, SyncResult
from rcfs.api.scheduler import Priority
from rcfs.api.sync import MessageSync
from rcfs.namespace import layout
from rcfs.namespace.callsync import GREETING_REFRESH, CallLogIndex
from rcfs.namespace.entries import Entry
from rcfs.namespace.mailbox import Mailbox, message_rows
from rcfs.namespace.store import Row, Store, decode
from rcfs.namespace.tree import Listing, TreeView
from rcfs.proc import release_memory

log = logging.getLogger(__name__)

MAILBOX_TYPES = ("User", "DigitalUser", "VirtualUser", "FaxUser", "Voicemail", "Department")
EXTENSIONS_REFRESH = 600.0
DB_NAME = "metadata.sqlite3"


@dataclass(frozen=True)
class MessageInfo:
    """What the index knows of one message without its API record."""

    type: str
    created: datetime
    attachments: tuple[tuple[str, str | None], ...]
    """(attachment id, fileName) of each attachment."""


class MetadataIndex(CallLogIndex):
    """Owns the per-mailbox sync state; answers the tree from the on-disk index. The call
    log and greetings are in ``CallLogIndex`` (callsync.py), state and writes in
    ``IndexBase`` (base.py)."""

    # -- opening and closing -----------------------------------------------------------------

    def _render_key(self) -> str:
        return f"{layout.RENDER_VERSION}/{getattr(self.tz, 'key', None) or self.tz!s}"

    async def open(self) -> None:
        """Open the index: every mailbox known before is listable before any request."""
        def _open() -> tuple[Store, dict[str, Any], dict[str, Any], dict[str, Any]]:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            _drop_v1(self.state_dir)
            store = Store(self.state_dir / DB_NAME)
            meta = store.meta()
            boxes = store.mailboxes()
            if boxes and meta.get("render") != self._render_key():
                log.info("names changed since the index was written (%s -> %s): rebuilding",
                         meta.get("render"), self._render_key())
                for ext_id in boxes:
                    store.drop_mailbox(ext_id)
                boxes, meta = {}, {}
            store.set_meta({"render": self._render_key()})
            store.refresh_snapshot()
            dirs = {ext_id: store.dir_stats(ext_id) for ext_id in boxes}
            return store, meta, boxes, dirs

        store, meta, boxes, dirs = await trio.to_thread.run_sync(_open, limiter=self._writer)
        self.store, self.view = store, TreeView(store)
        self.me = meta.get("me")
        self.recording_type = meta.get("recording_type")
        if meta.get("account_call"):
            token, when = meta["account_call"]
            self._account_calls = self._make_account_sync(token, when)
        for ext_id, data in boxes.items():
            try:
                box = Mailbox.restore(data)
            except (KeyError, TypeError, AttributeError) as exc:
                log.warning("ignoring unreadable state of mailbox %s: %s", ext_id, exc)
                continue
            box.set_dirs(dirs.get(ext_id, {}))
            self.states[ext_id] = box

    async def check(self) -> None:
        """The store's full integrity check, in a worker thread (after the mount answers)."""
        store = self.store
        if store is not None:
            await trio.to_thread.run_sync(store.check)

    async def close(self) -> None:
        if self.store is not None:
            store, self.store = self.store, None
            await trio.to_thread.run_sync(store.close, limiter=self._writer)

    # -- extensions --------------------------------------------------------------------------

    async def load_extensions(self, priority: Priority = Priority.LISTING) -> None:
        """Who am I, and which mailboxes may I read (admins: every user's)."""
        me = await get_extension(self.client, "~", priority=priority)
        self.me = me
        exts = [me]
        if me.is_admin:
            try:
                exts = await list_extensions(self.client, types=MAILBOX_TYPES,
                                             statuses="Enabled", priority=priority).collect()
            except ApiError as exc:
                log.warning("cannot list the account's extensions (%s); showing only %s",
                            exc, me.number)
        seen = set()
        for ext in exts:
            seen.add(ext.id)
            box = self.states.get(ext.id)
            if box is None:
                self.states[ext.id] = Mailbox(ext)
            else:
                box.ext = ext
            await self._save(ext.id)
        for gone in set(self.states) - seen:
            del self.states[gone]
            await self._write(lambda s, g=gone: s.drop_mailbox(g))  # type: ignore[misc]
        self.extensions_at = time.time()
        await self._save_meta()

    # -- scheduling --------------------------------------------------------------------------

    def bind(self, nursery: trio.Nursery) -> None:
        """Background refreshes run in ``nursery`` (the mount's)."""
        self._nursery = nursery

    def set_poll_interval(self, seconds: float) -> None:
        """How often a mailbox in use is polled (message store; the call log backs off from
        it). Push notifications raise it to a safety-net interval while the socket is
        healthy."""
        self.poll_interval = max(1.0, seconds)

    def syncing(self, ext_id: str) -> bool:
        """Is a message-store sync of ``ext_id`` running?"""
        return f"m:{ext_id}" in self._flights

    async def wait_sync(self, ext_id: str) -> None:
        """Wait for the message-store sync of ``ext_id`` in flight, if any."""
        running = self._flights.get(f"m:{ext_id}")
        if running is not None:
            await running.wait()

    def stale(self, ext_id: str) -> bool:
        box = self.states.get(ext_id)
        return box is None or time.time() - box.refreshed_at >= self.poll_interval

    def touch(self, ext_id: str, area: str | None = None, *, user: bool = True) -> None:
        """A folder of ``ext_id`` (in ``area``) is in use: refresh what it shows in the
        background when stale. ``user=False``: the mount's timer, which keeps fresh what
        was used recently without counting as a use itself (so idling stops refreshes)."""
        now = time.time()
        box = self.states.get(ext_id)
        if box is None:
            return
        if user:
            self.used_at[ext_id] = now
            if area is not None:
                self.area_used_at[(ext_id, area)] = now
        # Timer refreshes go after what someone is waiting for (and back off, below).
        priority = Priority.LISTING if user else Priority.METADATA
        if f"m:{ext_id}" not in self._flights and self.stale(ext_id):
            self._spawn(self.refresh, ext_id, priority)
        if area in layout.CALL_AREAS and self._calls_stale(box, backoff=not user):
            self._spawn(self.refresh_calls, ext_id, priority)
        elif area == layout.GREETINGS and now - box.greetings_at >= GREETING_REFRESH:
            self._spawn(self.refresh_greetings, ext_id, priority)

    async def ensure_loaded(self, ext_id: str, area: str | None = None) -> None:
        """A folder never loaded is being looked at: wait for it, at most
        ``lookup_deadline`` seconds (then it lists what is known and fills in later)."""
        box = self.states.get(ext_id)
        if box is None:
            return
        if area in layout.CALL_AREAS and box.calls_ok and not box.calls_loaded:
            fn: Callable[[str, Priority], Awaitable[None]] = self.refresh_calls
        elif area == layout.GREETINGS and not box.greetings_at:
            fn = self.refresh_greetings
        elif not box.loaded:
            fn = self.refresh
        else:
            return
        # One deadline per first look, not per FUSE request: ``ls`` of a new folder is a
        # lookup, a getattr and an opendir, which together wait at most the deadline.
        # The load runs in the background: a listing that stops waiting does not cancel it
        # (what arrives later shows through on_change).
        key = f"{fn.__name__}:{ext_id}"
        deadline = self._first_look.setdefault(key, trio.current_time() + self.lookup_deadline)
        if trio.current_time() >= deadline:
            return
        if self._nursery is None:
            with trio.move_on_at(deadline):
                await self._quietly(fn, ext_id, Priority.LISTING)
            return
        done = trio.Event()

        async def load() -> None:
            try:
                await self._quietly(fn, ext_id, Priority.LISTING)
            finally:
                done.set()

        self._nursery.start_soon(load)
        with trio.move_on_at(deadline):
            await done.wait()

    # -- message store -----------------------------------------------------------------------

    async def refresh(self, ext_id: str, priority: Priority = Priority.METADATA) -> None:
        """One message-store refresh of a mailbox (single-flight)."""
        await self._single_flight(f"m:{ext_id}", lambda: self._refresh(ext_id, priority))

    async def _refresh(self, ext_id: str, priority: Priority) -> None:
        box = self.states.get(ext_id)
        if box is None:
            return
        # Fresh as of the moment its requests were sent (stamping the end made the refresh
        # loop find the mailbox not quite stale every other tick).
        began = time.time()
        box.loading = True
        try:
            if not box.own_numbers:
                await self._own_numbers(box, priority)
            await self._sync_messages(box, priority)
        except RcError as exc:
            self.errors += 1
            box.last_error = str(exc)
            box.progress["waiting"] = None
            log.warning("refresh of mailbox %s failed, serving the last known listing: %s",
                        ext_id, exc)
            raise
        finally:
            box.loading = False
        box.refreshed_at = began
        box.last_error = None
        await self._save(ext_id)

    async def _own_numbers(self, box: Mailbox, priority: Priority) -> None:
        try:
            nums = await list_phone_numbers(self.client, box.ext.id, priority=priority)
            box.own_numbers = sorted({n.number for n in nums if n.number})
        except ApiError as exc:
            log.info("phone numbers of %s unavailable: %s", box.ext.id, exc)

    def _message_sync(self, box: Mailbox, priority: Priority) -> MessageSync:
        sync = self._msyncs.get(box.ext.id)
        token = box.msg_token if box.msgs_complete else None
        if sync is None or sync.sync_token != token:
            sync = MessageSync(self.client, box.ext.id, date_from=EPOCH, sync_token=token,
                               sync_time=box.msg_time, record_count=self.page_size)
            self._msyncs[box.ext.id] = sync
        sync.priority = priority
        return sync

    async def _sync_messages(self, box: Mailbox, priority: Priority) -> None:
        sync = self._message_sync(box, priority)
        box.progress.update(waiting="message-sync (Light)")
        if sync.sync_token is not None:
            result = await sync.sync()
            if not result.full:
                box.msg_token, box.msg_time = sync.sync_token, sync.sync_time
                await self._apply_messages(box, list(result.records),
                                           list(result.removed_ids))
                box.progress["waiting"] = None
                return
            async with self._pages:
                await self._full_sync(box, sync, result)
            return
        async with self._pages:
            await self._full_sync(box, sync, await sync.sync())

    async def _full_sync(self, box: Mailbox, sync: MessageSync,
                         first: SyncResult[Message]) -> None:
        """A full sync, in pages: each page is listed as soon as it is written, and only
        one page of parsed messages is alive at a time."""
        box.msgs_complete = False
        box.progress = {"phase": "first sync", "pages": 0, "messages": 0, "waiting": None,
                        "started": time.time()}
        seen: set[str] = set()
        oldest: datetime | None = None
        page: SyncResult[Message] | None = first
        more = first.older_records_exist
        del first
        while page is not None:
            older = [m.creation_time for m in page.records
                     if oldest is None or m.creation_time < oldest]
            seen.update(m.id for m in page.records)
            seen.difference_update(page.removed_ids)
            await self._apply_messages(box, list(page.records), list(page.removed_ids))
            box.progress["pages"] += 1
            box.progress["messages"] = len(seen)
            if older:
                oldest = min(older)
            if box.progress["pages"] > 1:
                # recordCount is a lower bound when more exist ("the server can return
                # more"): a page with fewer older records than asked for was the last.
                more = len(older) >= self.page_size
            page = None
            if more and oldest is not None:
                box.progress["waiting"] = (f"message-sync page {box.progress['pages'] + 1} "
                                           "(Light)")
                page = await sync.grow(self.page_size)
        await self._sweep(box, "m:", {f"m:{mid}" for mid in seen})
        box.msg_token, box.msg_time = sync.sync_token, sync.sync_time
        box.msgs_complete = True
        box.progress.update(phase="complete", waiting=None, finished=time.time())
        # The pages are written; what they cost in RAM goes back (the dedupe memory of
        # the sync only matters for the 5 s ISync overlap; a repeat writes nothing).
        sync.forget_recent()
        del seen
        release_memory()

    async def _apply_messages(self, box: Mailbox, records: list[Message],
                              removed: list[str]) -> None:
        if not records and not removed:
            return
        tz, own, ext_id = self.tz, box.own(), box.ext.id

        def build() -> tuple[dict[str, list[Row]], list[str]]:
            ups = {f"m:{m.id}": message_rows(m, tz, own, ext_id) for m in records}
            return ups, [f"m:{mid}" for mid in removed]

        await self._apply(ext_id, build)
        if records and self.on_messages is not None:
            self.on_messages(ext_id, records)

    # -- changes made through the filesystem -------------------------------------------------

    async def set_read_status(self, ext_id: str, message_id: str, status: str) -> None:
        """``setfattr -n user.rc.read_status -v Read``: one Medium PUT, then the index."""
        if status not in ("Read", "Unread"):
            raise ValueError(status)
        msg = await update_read_status(self.client, ext_id, message_id,
                                       "Read" if status == "Read" else "Unread",
                                       priority=Priority.INTERACTIVE)
        box = self.states.get(ext_id)
        if box is not None:
            await self._apply_messages(box, [msg], [])

    async def delete_message(self, ext_id: str, message_id: str) -> None:
        """``rm`` under --allow-delete: the message goes to RingCentral's Deleted state."""
        await delete_message(self.client, ext_id, message_id, priority=Priority.INTERACTIVE)
        box = self.states.get(ext_id)
        if box is not None:
            await self._apply_messages(box, [], [message_id])

    # -- the tree ----------------------------------------------------------------------------

    def folder_name(self, ext_id: str) -> str:
        ext = self.states[ext_id].ext
        return layout.extension_folder_name(ext.number, ext.name, ext_id)

    def folders(self) -> dict[str, str]:
        """Folder name -> extension id, cached: every FUSE lookup resolves through it."""
        key = tuple((k, s.ext.number, s.ext.name) for k, s in self.states.items())
        if self._folder_key != key:
            self._folder_map = {self.folder_name(e): e for e in self.states}
            self._folder_key = key
        return self._folder_map

    def node(self, ext_id: str, rel: tuple[str, ...]) -> Entry | None:
        """The entry at ``rel`` inside a mailbox's folder (``()``: the folder itself).
        Folders come back with ``children=None``: list them with ``children``."""
        box = self.states.get(ext_id)
        if box is None or self.view is None:
            return None
        return self.view.node(box, self.folder_name(ext_id), rel)

    def children(self, ext_id: str, rel: tuple[str, ...]) -> dict[str, Entry]:
        box = self.states.get(ext_id)
        if box is None or self.view is None:
            return {}
        return self.view.children(box, rel)

    def listing(self, ext_id: str, rel: tuple[str, ...]) -> Listing | None:
        """A folder's subfolders and files as plain tuples (what ``readdir`` needs)."""
        box = self.states.get(ext_id)
        if box is None or self.view is None or "/".join(rel) not in box.tree:
            return None
        return self.view.listing(box, rel)

    def message_ids(self, ext_id: str) -> set[str]:
        """Ids of the messages of a mailbox the index lists."""
        return self.store.source_ids(ext_id, "m:") if self.store is not None else set()

    def message_files(self, ext_id: str, message_id: str) -> list[tuple[str, ...]]:
        """Where a message's files are, relative to its mailbox's folder (a point query)."""
        if self.store is None:
            return []
        return [(*d.split("/"), n) for d, n in self.store.files_of(ext_id, f"m:{message_id}")]

    def message_info(self, ext_id: str, message_id: str) -> MessageInfo | None:
        """Type, creation time and attachments (id, fileName) of one message, from its
        rows (a point query): what the pinning's bulk path needs."""
        found = self.store.content_row(ext_id, f"m:{message_id}") if self.store else None
        if found is None:
            return None
        name, mtime, data = found
        entry = decode(name, mtime, data, ext_id)
        created = entry.xattrs.get("user.rc.created")
        when = (datetime.fromisoformat(created) if created
                else datetime.fromtimestamp(mtime, UTC))
        return MessageInfo(entry.xattrs.get("user.rc.type", ""), when, entry.siblings)

    def message_bytes(self, types: Iterable[str], start: datetime, end: datetime,
                      unknown: int) -> int:
        """Bytes of every mailbox's message files of ``types`` created in [start, end]
        (``unknown`` per file of unknown size): one SQL scan, no request."""
        if self.store is None:
            return 0
        return self.store.message_bytes(types, start.timestamp(), end.timestamp(), unknown)

    def subfolders(self, ext_id: str, rel: tuple[str, ...]) -> int:
        box = self.states.get(ext_id)
        return 0 if box is None or self.view is None else self.view.subfolders(box, rel)

    def status(self) -> dict[str, Any]:
        def when(t: float) -> str | None:
            return datetime.fromtimestamp(t, UTC).isoformat() if t else None

        out: dict[str, Any] = {}
        for ext_id, box in self.states.items():
            counts = dict(box.area_files)
            out[ext_id] = {
                "folder": self.folder_name(ext_id),
                "files": counts,
                "recordings": counts[layout.RECORDINGS],
                "greetings": counts[layout.GREETINGS],
                "greetings_loaded": bool(box.greetings_at),
                "loaded": box.loaded,
                "loading": box.loading or not box.msgs_complete,
                "progress": dict(box.progress),
                "calls": {"loaded": box.calls_loaded, "allowed": box.calls_ok,
                          "last_error": box.calls_error},
                "refreshed_at": when(box.refreshed_at),
                "last_error": box.last_error,
            }
        return out

    def index_status(self) -> dict[str, Any]:
        store = self.store
        return {"moved_aside": store.moved_aside if store is not None else 0,
                "queries": self.view.queries if self.view is not None else 0,
                "errors": self.errors}


def _drop_v1(state_dir: Path) -> None:
    """The first index (schema 1) was a diskcache directory of pickled snapshots: this rcfs
    cannot read it and rebuilds from RingCentral instead (one log line)."""
    old = state_dir / "metadata"
    if old.is_dir():
        import shutil

        log.warning("metadata index of an older rcfs (%s) removed: rebuilding", old)
        shutil.rmtree(old, ignore_errors=True)
