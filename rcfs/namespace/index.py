"""The metadata index: everything the tree needs, fetched by sync and persisted.

Why an index: listing a folder must never wait on the network when we already know the
answer (file managers fire thousands of lookups), a remount offline must still show
everything, and RingCentral's sync APIs turn "what changed" into one request per refresh
(message-sync ISync, Light) instead of re-listing. Each extension's state is persisted in
a diskcache under the state directory after every refresh.

Freshness: a folder in use triggers ``touch(ext_id)``; a refresh runs in the background at
most every ``refresh_interval`` seconds; the caller only waits (with a deadline) when an
extension has never been loaded. Failures keep the last known state (stale-if-error).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import diskcache
import trio

from rcfs.api.client import RcClient
from rcfs.api.errors import ApiError, RcError
from rcfs.api.listing import (
    delete_message,
    get_extension,
    get_recording,
    list_extensions,
    list_greetings,
    list_phone_numbers,
    update_read_status,
)
from rcfs.api.models import EPOCH, CallLogRecord, Extension, Greeting, Message
from rcfs.api.scheduler import Priority
from rcfs.api.sync import CallLogSync, MessageSync
from rcfs.namespace import layout
from rcfs.namespace.entries import Entry

log = logging.getLogger(__name__)

SNAPSHOT_VERSION = 2  # 2: every call is kept (Calls/), not only recorded ones
MAILBOX_TYPES = ("User", "DigitalUser", "VirtualUser", "FaxUser", "Voicemail", "Department")
GREETING_REFRESH = 3600.0
EXTENSIONS_REFRESH = 600.0


@dataclass
class ExtensionState:
    ext: Extension
    own_numbers: set[str] = field(default_factory=set)
    messages: dict[str, Message] = field(default_factory=dict)
    calls: dict[str, CallLogRecord] = field(default_factory=dict)
    greetings: list[Greeting] = field(default_factory=list)
    msg_token: str | None = None
    msg_time: datetime | None = None
    call_token: str | None = None
    call_time: datetime | None = None
    loaded: bool = False
    refreshed_at: float = 0.0  # time.time() when the last successful refresh began
    greetings_at: float = 0.0
    greeting_seen: dict[str, float] = field(default_factory=dict)  # id -> first seen
    calls_ok: bool = True
    last_error: str | None = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "ext": self.ext, "own_numbers": self.own_numbers, "messages": self.messages,
            "calls": self.calls, "greetings": self.greetings, "msg_token": self.msg_token,
            "msg_time": self.msg_time, "call_token": self.call_token,
            "call_time": self.call_time, "refreshed_at": self.refreshed_at,
            "greetings_at": self.greetings_at, "calls_ok": self.calls_ok,
            "greeting_seen": self.greeting_seen,
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> ExtensionState:
        state = cls(data["ext"])
        for key, value in data.items():
            if key != "ext":
                setattr(state, key, value)
        state.loaded = True
        return state


class MetadataIndex:
    """Owns the per-extension metadata and the trees built from it."""

    def __init__(self, client: RcClient, state_dir: Path, *, refresh_interval: float = 60.0,
                 tz: tzinfo | None = None, first_load_timeout: float = 30.0,
                 on_change: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.state_dir = state_dir
        self.refresh_interval = refresh_interval
        self.tz = tz
        self.first_load_timeout = first_load_timeout
        self.on_change = on_change
        self.me: Extension | None = None
        self.states: dict[str, ExtensionState] = {}
        self.trees: dict[str, Entry] = {}
        self._db: diskcache.Cache | None = None
        self._refreshing: dict[str, trio.Event] = {}
        self._nursery: trio.Nursery | None = None
        self._limiter = trio.CapacityLimiter(1)
        self._account_calls_lock = trio.Lock()  # one account call-log sync at a time
        self._account_calls: CallLogSync | None = None
        self._account_call_time = 0.0
        self.extensions_at = 0.0
        self.errors = 0
        # WAV or MP3 is an account-wide setting and the call log does not say which: one
        # recording's metadata (one Heavy request, once per account, persisted) tells.
        self.recording_type: str | None = None
        self._folder_map: dict[str, str] = {}
        self._folder_key: tuple[tuple[str, str | None, str | None], ...] | None = None
        self.used_at: dict[str, float] = {}  # ext id -> last time one of its folders was used

    # -- persistence -------------------------------------------------------------------------

    async def open(self) -> None:
        """Load the persisted snapshot: the tree is complete before any network call."""
        def _open() -> tuple[diskcache.Cache, dict[str, Any]]:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            db = diskcache.Cache(str(self.state_dir / "metadata"))
            found = {}
            if db.get("version") == SNAPSHOT_VERSION:
                for key in db.get("extensions", []):
                    data = db.get(f"ext:{key}")
                    if data is not None:
                        found[key] = data
            meta = {"me": db.get("me"), "exts": found,
                    "account_call": db.get("account_call"),
                    "recording_type": db.get("recording_type")}
            return db, meta

        self._db, meta = await trio.to_thread.run_sync(_open, limiter=self._limiter)
        self.me = meta["me"]
        self.recording_type = meta["recording_type"]
        for ext_id, data in meta["exts"].items():
            try:
                self.states[ext_id] = ExtensionState.restore(data)
            except (KeyError, TypeError, AttributeError) as exc:
                log.warning("ignoring unreadable cached metadata of extension %s: %s",
                            ext_id, exc)
        if meta["account_call"]:
            token, when = meta["account_call"]
            self._account_calls = self._make_account_sync(token, when)
        for ext_id in self.states:
            self._rebuild(ext_id, notify=False)

    async def _persist(self, ext_id: str | None = None) -> None:
        db = self._db
        if db is None:
            return
        snaps = {k: s.snapshot() for k, s in self.states.items()
                 if ext_id is None or k == ext_id}
        me = self.me
        account_call = None
        if self._account_calls is not None:
            account_call = (self._account_calls.sync_token, self._account_calls.sync_time)
        ids = list(self.states)
        recording_type = self.recording_type

        def _write() -> None:
            db.set("recording_type", recording_type)
            for k, snap in snaps.items():
                db.set(f"ext:{k}", snap)
            db.set("me", me)
            db.set("extensions", ids)
            db.set("account_call", account_call)
            db.set("version", SNAPSHOT_VERSION)

        await trio.to_thread.run_sync(_write, limiter=self._limiter)

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await trio.to_thread.run_sync(db.close, limiter=self._limiter)

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
            state = self.states.get(ext.id)
            if state is None:
                self.states[ext.id] = ExtensionState(ext)
            else:
                state.ext = ext
        for gone in set(self.states) - seen:
            del self.states[gone]
            self.trees.pop(gone, None)
        self.extensions_at = time.time()
        await self._persist()

    # -- refresh -----------------------------------------------------------------------------

    def bind(self, nursery: trio.Nursery) -> None:
        """Background refreshes run in ``nursery`` (the mount's)."""
        self._nursery = nursery

    def stale(self, ext_id: str) -> bool:
        state = self.states.get(ext_id)
        return state is None or time.time() - state.refreshed_at >= self.refresh_interval

    def touch(self, ext_id: str) -> None:
        """A folder of ``ext_id`` is in use: refresh it in the background if stale."""
        self.used_at[ext_id] = time.time()
        if ext_id in self._refreshing or not self.stale(ext_id) or self._nursery is None:
            return
        self._nursery.start_soon(self._refresh_quietly, ext_id, Priority.LISTING)

    async def ensure_loaded(self, ext_id: str) -> None:
        """Wait (bounded) for the first load of an extension nobody has seen yet."""
        state = self.states.get(ext_id)
        if state is None or state.loaded:
            return
        with trio.move_on_after(self.first_load_timeout):
            await self.refresh(ext_id, Priority.LISTING)

    async def _refresh_quietly(self, ext_id: str, priority: Priority) -> None:
        try:
            await self.refresh(ext_id, priority)
        except RcError:
            pass  # logged in refresh; the last known listing stays (stale-if-error)

    async def refresh(self, ext_id: str, priority: Priority = Priority.METADATA) -> None:
        """One refresh of an extension (single-flight: concurrent callers wait for it)."""
        running = self._refreshing.get(ext_id)
        if running is not None:
            await running.wait()
            return
        done = self._refreshing[ext_id] = trio.Event()
        try:
            await self._refresh(ext_id, priority)
        except RcError as exc:
            self.errors += 1
            state = self.states.get(ext_id)
            if state is not None:
                state.last_error = str(exc)
            log.warning("refresh of extension %s failed, serving the last known listing: %s",
                        ext_id, exc)
            raise
        finally:
            del self._refreshing[ext_id]
            done.set()

    async def _refresh(self, ext_id: str, priority: Priority) -> None:
        state = self.states[ext_id]
        # The listing is as fresh as the moment its requests were sent. (Stamping the end
        # instead made the refresh loop, which ticks every refresh_interval, find the
        # extension not quite stale on every other tick: a period of twice the interval.)
        began = time.time()
        changed = await self._sync_messages(state, priority)
        if not state.own_numbers:
            try:
                nums = await list_phone_numbers(self.client, ext_id, priority=priority)
                state.own_numbers = {n.number for n in nums}
            except ApiError as exc:
                log.info("phone numbers of %s unavailable: %s", ext_id, exc)
        if state.calls_ok:
            changed |= await self._sync_calls(state, priority)
            if self.recording_type is None and await self._learn_recording_type(priority):
                changed = True
                for other in self.states:
                    if other != ext_id and other in self.trees:
                        self._rebuild(other)
        if time.time() - state.greetings_at >= GREETING_REFRESH:
            changed |= await self._sync_greetings(state, priority)
        state.loaded = True
        state.refreshed_at = began
        state.last_error = None
        if changed or ext_id not in self.trees:
            self._rebuild(ext_id)
        await self._persist(ext_id)

    async def _sync_messages(self, state: ExtensionState, priority: Priority) -> bool:
        sync = MessageSync(self.client, state.ext.id, date_from=EPOCH,
                           sync_token=state.msg_token, sync_time=state.msg_time,
                           priority=priority)
        result = await sync.sync()
        changed = False
        if result.full and not result.older_records_exist:
            fresh = {m.id: m for m in result.records}
            changed = fresh.keys() != state.messages.keys() or any(
                state.messages.get(k) != m for k, m in fresh.items())
            state.messages = fresh
        else:
            for msg in result.records:
                if state.messages.get(msg.id) != msg:
                    state.messages[msg.id] = msg
                    changed = True
        for mid in result.removed_ids:
            if state.messages.pop(mid, None) is not None:
                changed = True
        for removed in result.removed:
            if state.messages.pop(removed.id, None) is not None:
                changed = True
        state.msg_token, state.msg_time = sync.sync_token, sync.sync_time
        return changed

    def _make_account_sync(self, token: str | None, when: datetime | None) -> CallLogSync:
        return CallLogSync(self.client, None, date_from=EPOCH, sync_token=token,
                           sync_time=when, priority=Priority.METADATA)

    async def _sync_calls(self, state: ExtensionState, priority: Priority) -> bool:
        """Recordings come from the call log: the account-level log for admins (one request
        per 1,000 records for everyone), the extension's own otherwise."""
        try:
            if self.me is not None and self.me.is_admin:
                return await self._sync_account_calls(priority)
            sync = CallLogSync(self.client, state.ext.id, date_from=EPOCH,
                               sync_token=state.call_token, sync_time=state.call_time,
                               priority=priority)
            result = await sync.sync()
            state.call_token, state.call_time = sync.sync_token, sync.sync_time
            return self._apply_calls(state, result.records, result.removed_ids, result.full)
        except ApiError as exc:
            if exc.status == 403:
                log.warning("no permission to read the call log (%s): Recordings stay empty",
                            exc.error_code)
                state.calls_ok = False
                return False
            raise

    async def _sync_account_calls(self, priority: Priority) -> bool:
        # Refreshes of several extensions run concurrently and all land here: one sync
        # serves them all (concurrent syncs would spend Heavy budget on the same token).
        async with self._account_calls_lock:
            if time.time() - self._account_call_time < self.refresh_interval:
                return False
            if self._account_calls is None:
                self._account_calls = self._make_account_sync(None, None)
            self._account_calls.priority = priority
            began = time.time()
            result = await self._account_calls.sync()
            self._account_call_time = began
            by_ext: dict[str, list[CallLogRecord]] = {}
            for rec in result.records:
                if rec.extension_id:
                    by_ext.setdefault(rec.extension_id, []).append(rec)
            changed = False
            for ext_id, state in self.states.items():
                if self._apply_calls(state, by_ext.get(ext_id, []), result.removed_ids,
                                     result.full):
                    changed = True
                    if ext_id in self.trees:
                        self._rebuild(ext_id)
                        # The persisted account token now points past these calls: persist
                        # the extension too, or a remount would never show them.
                        await self._persist(ext_id)
            return changed

    async def _learn_recording_type(self, priority: Priority) -> bool:
        sample = next((rec for st in self.states.values() for call in st.calls.values()
                       for rec in call.recordings), None)
        if sample is None:
            return False
        try:
            meta = await get_recording(self.client, sample.id, priority=priority)
        except ApiError as exc:
            log.info("recording format unknown (%s); names use .mp3 for now", exc)
            return False
        self.recording_type = meta.content_type
        return meta.content_type is not None

    @staticmethod
    def _apply_calls(state: ExtensionState, records: Any, removed: Any, full: bool) -> bool:
        # Every call, not only recorded ones: Calls/ lists them all.
        with_rec = {r.id: r for r in records}
        if full:
            changed = with_rec.keys() != state.calls.keys()
            state.calls = with_rec
            return changed
        changed = False
        for rid, rec in with_rec.items():
            if state.calls.get(rid) != rec:
                state.calls[rid] = rec
                changed = True
        for rid in removed:
            if state.calls.pop(rid, None) is not None:
                changed = True
        return changed

    async def _sync_greetings(self, state: ExtensionState, priority: Priority) -> bool:
        try:
            greetings = await list_greetings(self.client, state.ext.id, priority=priority)
        except ApiError as exc:
            log.info("greetings of %s unavailable: %s", state.ext.id, exc)
            state.greetings_at = time.time()
            return False
        state.greetings_at = time.time()
        changed = [g.id for g in greetings] != [g.id for g in state.greetings]
        state.greetings = greetings
        for g in greetings:
            state.greeting_seen.setdefault(g.id, state.greetings_at)
        return changed

    # -- changes made through the filesystem ---------------------------------------------------

    async def set_read_status(self, ext_id: str, message_id: str, status: str) -> None:
        """``setfattr -n user.rc.read_status -v Read``: one Medium PUT, then the index."""
        if status not in ("Read", "Unread"):
            raise ValueError(status)
        msg = await update_read_status(self.client, ext_id, message_id,
                                       "Read" if status == "Read" else "Unread",
                                       priority=Priority.INTERACTIVE)
        state = self.states.get(ext_id)
        if state is not None:
            state.messages[msg.id] = msg
            self._rebuild(ext_id)
            await self._persist(ext_id)

    async def delete_message(self, ext_id: str, message_id: str) -> None:
        """``rm`` under --allow-delete: the message goes to RingCentral's Deleted state."""
        await delete_message(self.client, ext_id, message_id, priority=Priority.INTERACTIVE)
        state = self.states.get(ext_id)
        if state is not None and state.messages.pop(message_id, None) is not None:
            self._rebuild(ext_id)
            await self._persist(ext_id)

    def calls(self, ext_id: str, start: float | None = None,
              end: float | None = None) -> list[CallLogRecord]:
        """Call-log records of a mailbox in [start, end) (the account-level Calls CSV)."""
        state = self.states.get(ext_id)
        if state is None:
            return []
        return [c for c in state.calls.values()
                if (start is None or c.start_time.timestamp() >= start)
                and (end is None or c.start_time.timestamp() < end)]

    # -- trees -------------------------------------------------------------------------------

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

    def _rebuild(self, ext_id: str, notify: bool = True) -> None:
        state = self.states.get(ext_id)
        if state is None:
            return
        own = set(state.own_numbers)
        if state.ext.number:
            own.add(state.ext.number)
        greet_mtime = state.greeting_seen
        self.trees[ext_id] = layout.build_extension(
            self.folder_name(ext_id), state.messages.values(), state.calls.values(),
            state.greetings, own, self.tz, ext_id, greeting_mtime=greet_mtime,
            recording_type=self.recording_type)
        if notify and self.on_change is not None:
            self.on_change(ext_id)

    def status(self) -> dict[str, Any]:
        return {
            ext_id: {
                "folder": self.folder_name(ext_id),
                "messages": len(s.messages),
                "recordings": sum(len(c.recordings) for c in s.calls.values()),
                "greetings": len(s.greetings),
                "loaded": s.loaded,
                "refreshed_at": datetime.fromtimestamp(s.refreshed_at, UTC).isoformat()
                if s.refreshed_at else None,
                "last_error": s.last_error,
            }
            for ext_id, s in self.states.items()
        }
