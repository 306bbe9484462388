"""Incremental synchronisation of the message store and the call log.

Why sync instead of re-listing: a listing of a big mailbox is many requests; message-sync
ISync is one Light request returning only what changed (docs/ringcentral.md §5.2), call-log-sync one
Heavy request (§5.4). Both are state machines around a server-issued token that the caller
(the metadata index) persists: construct with the stored ``sync_token`` and read
``sync_token``/``sync_time`` back after each step.

Server quirks absorbed here:

* message-sync ISync windows overlap by 5 s, so a message can arrive twice; duplicates are
  dropped by ``(id, lastModifiedTime)`` against what recent steps already delivered.
* Deleted/purged messages arrive as ``{id, availability}`` stubs: reported in
  ``SyncResult.removed`` / ``removed_ids``, never as messages.
* An invalid or expired token → 400 ``MSG-333`` (messages) or ``CLG-101..105`` / "max sync
  record number limit is exceeded" (call log): the machine starts over with a full sync
  and says so (``SyncResult.full``).
* call-log-sync FSync returns at most 250 records from the last ~30 days, so the initial
  call-log history comes from the paged call-log listing (FSync first, for the token, then
  the listing: a change made meanwhile is in the listing or in the next ISync, never lost).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from rcfs.api.errors import ApiError
from rcfs.api.listing import ext_path, list_call_log
from rcfs.api.models import (
    EPOCH,
    CallLogRecord,
    Message,
    ModelError,
    RemovedMessage,
    SyncResult,
    format_time,
    parse_call_log_record,
    parse_message,
    parse_time,
    parse_time_opt,
)
from rcfs.api.paging import Params, as_list
from rcfs.api.protocol import ApiClient
from rcfs.api.scheduler import Priority

__all__ = [
    "CALL_LOG_SYNC_MAX",
    "CallLogSync",
    "MessageSync",
    "call_log_sync_needs_reset",
    "message_sync_needs_reset",
]

log = logging.getLogger(__name__)

CALL_LOG_SYNC_MAX = 250
"""call-log-sync's hard cap on ``recordCount`` and on changes per ISync."""
_DEDUPE_HORIZON = timedelta(seconds=120)
"""How long a delivered version is remembered: far more than the 5 s ISync overlap."""
_GAP_MARGIN = timedelta(days=1)
"""Re-listing after a lost call-log token starts this long before the last sync (calls
appear in the log 15-30 s after they end, and a long call started well before)."""


def message_sync_needs_reset(exc: ApiError) -> bool:
    """The server wants a new FSync (MSG-333, or the token parameter rejected)."""
    return exc.status == 400 and ("MSG-333" in exc.codes or exc.parameter_name == "syncToken")


def call_log_sync_needs_reset(exc: ApiError) -> bool:
    """Expired token (CLG-101..105), more than 250 changes, or the token rejected."""
    if exc.status != 400:
        return False
    if any(code.startswith("CLG-10") for code in exc.codes):
        return True
    return exc.parameter_name == "syncToken" or "max sync record number" in exc.message.lower()


def _sync_info(data: Any) -> tuple[list[Any], Mapping[str, Any]]:
    if not isinstance(data, Mapping):
        raise ModelError(f"sync response is {type(data).__name__}, not an object")
    records = data.get("records")
    info = data.get("syncInfo")
    return (records if isinstance(records, list) else [],
            info if isinstance(info, Mapping) else {})


def _token(info: Mapping[str, Any]) -> str | None:
    token = info.get("syncToken")
    return token if isinstance(token, str) and token else None


class MessageSync:
    """message-sync state machine: FSync once, then ISync with the stored token.

    ``sync()`` performs one step. The first step (no token) and any step after the server
    rejects the token is an FSync from ``date_from`` (explicit: the server's default window
    is 24 h or 7 days depending on the source); its result has ``full=True``: the records are
    everything alive in the window (``older_records_exist`` when ``record_count`` cut it).
    """

    def __init__(
        self,
        client: ApiClient,
        ext_id: str = "~",
        *,
        date_from: datetime | str = EPOCH,
        message_types: str | Iterable[str] | None = None,
        record_count: int | None = None,
        sync_token: str | None = None,
        sync_time: datetime | None = None,
        priority: Priority = Priority.BACKGROUND,
        deadline_s: float | None = None,
    ) -> None:
        self._client = client
        self.ext_id = ext_id
        self.date_from = date_from
        self.message_types = as_list(message_types)
        self.record_count = record_count
        self.sync_token = sync_token
        self.sync_time = sync_time
        self.priority = priority
        self.deadline_s = deadline_s
        self.resets = 0
        # id -> (version delivered, syncTime of the step that delivered it)
        self._recent: dict[str, tuple[tuple[Any, ...], datetime]] = {}

    @property
    def path(self) -> str:
        return ext_path(self.ext_id, "/message-sync")

    def _deadline(self) -> float | None:
        if self.deadline_s is None:
            return None
        deadline_in = getattr(self._client, "deadline_in", None)
        return deadline_in(self.deadline_s) if deadline_in is not None else None

    async def sync(self) -> SyncResult[Message]:
        """One step: ISync when a token is known (falling back to FSync), else FSync."""
        if self.sync_token is None:
            return await self.full_sync()
        params: Params = {"syncType": "ISync", "syncToken": self.sync_token}
        try:
            data = await self._client.get_json(self.path, params=params,
                                               priority=self.priority, deadline=self._deadline())
        except ApiError as exc:
            if not message_sync_needs_reset(exc):
                raise
            log.info("message-sync of %s: token rejected (%s), full sync", self.ext_id,
                     exc.error_code)
            self.resets += 1
            self.sync_token = None
            return await self.full_sync()
        return self._result(data, full=False)

    async def full_sync(self) -> SyncResult[Message]:
        params: Params = {"syncType": "FSync", "dateFrom": format_time(self.date_from)}
        if self.message_types:
            params["messageType"] = list(self.message_types)
        if self.record_count is not None:
            params["recordCount"] = str(self.record_count)
        data = await self._client.get_json(self.path, params=params, priority=self.priority,
                                           deadline=self._deadline())
        self._recent.clear()
        return self._result(data, full=True)

    async def grow(self, record_count: int) -> SyncResult[Message]:
        """One page further back: ISync with ``recordCount`` returns what changed plus up
        to ``record_count`` records older than the frame so far (message-sync has no
        paging; this is how a big mailbox loads in pages, each usable at once). The caller
        stops when a page brings nothing older. A rejected token raises (the caller starts
        the full sync over)."""
        if self.sync_token is None:
            raise ValueError("grow() needs the token of a full sync")
        params: Params = {"syncType": "ISync", "syncToken": self.sync_token,
                          "recordCount": str(record_count)}
        data = await self._client.get_json(self.path, params=params, priority=self.priority,
                                           deadline=self._deadline())
        return self._result(data, full=False)

    def _result(self, data: Any, *, full: bool) -> SyncResult[Message]:
        raw_records, info = _sync_info(data)
        sync_time = parse_time_opt(info.get("syncTime")) or datetime.now(UTC)
        records: dict[str, Message] = {}
        removed: dict[str, RemovedMessage] = {}
        for raw in raw_records:
            item = self._parse(raw)
            if item is None:
                continue
            if isinstance(item, Message):
                version: tuple[Any, ...] = ("m", item.last_modified_time, item.availability)
                rid = item.id
            else:
                version = ("r", item.availability)
                rid = item.id
            seen = self._recent.get(rid)
            if seen is not None and seen[0] == version and _has_version(item):
                continue  # delivered by a recent step (5 s ISync overlap)
            current = records.get(rid) or (removed[rid].message if rid in removed else None)
            if isinstance(item, Message) and isinstance(current, Message) and _older(
                    item, current):
                continue  # a newer version of the same message is already in this batch
            self._recent[rid] = (version, sync_time)
            if isinstance(item, Message) and item.availability == "Alive":
                removed.pop(rid, None)
                records[rid] = item
            elif isinstance(item, Message):
                records.pop(rid, None)
                removed[rid] = RemovedMessage(item.id, item.availability, item)
            else:
                records.pop(rid, None)
                removed[rid] = item
        self._prune(sync_time)
        token = _token(info)
        if token is not None:
            self.sync_token = token
        self.sync_time = sync_time
        sync_type = info.get("syncType")
        return SyncResult(
            records=tuple(records.values()),
            sync_token=self.sync_token,
            sync_time=sync_time,
            older_records_exist=bool(info.get("olderRecordsExist")),
            removed=tuple(removed.values()),
            full=full,
            sync_type=sync_type if isinstance(sync_type, str) else ("FSync" if full else "ISync"),
            removed_ids=tuple(removed),
        )

    def _parse(self, raw: Any) -> Message | RemovedMessage | None:
        if not isinstance(raw, Mapping):
            return None
        availability = raw.get("availability")
        if "creationTime" not in raw:
            # An ISync stub: {id, availability} of a deleted/purged message.
            rid = raw.get("id")
            if rid is None or availability in (None, "Alive"):
                log.warning("message-sync: unusable record %r", dict(raw))
                return None
            return RemovedMessage(str(rid).strip(), str(availability))
        try:
            return parse_message(raw)
        except ModelError as exc:
            log.warning("message-sync: skipping unparsable message: %s", exc)
            return None

    def forget_recent(self) -> None:
        """Drop the dedupe memory (after a full sync of many pages: it would hold every
        id until the horizon passes; a repeated record is then merely applied again)."""
        self._recent.clear()

    def _prune(self, now: datetime) -> None:
        horizon = now - _DEDUPE_HORIZON
        stale = [rid for rid, (_v, at) in self._recent.items() if at < horizon]
        for rid in stale:
            del self._recent[rid]


def _has_version(item: Message | RemovedMessage) -> bool:
    """Only versions that identify a change can be deduplicated: a message without
    ``lastModifiedTime`` is always passed on (a harmless repeat beats a lost update)."""
    return not isinstance(item, Message) or item.last_modified_time is not None


def _older(a: Message, b: Message) -> bool:
    if a.last_modified_time is None or b.last_modified_time is None:
        return False
    return a.last_modified_time < b.last_modified_time


class CallLogSync:
    """call-log-sync state machine for an extension (``ext_id``) or the whole account
    (``ext_id=None``, admin).

    First step: FSync (for a token) then the paged call-log listing from ``date_from`` for
    the complete history (``full=True``). Then ISync (``showDeleted=true``, so deletions are
    reported in ``removed_ids``). When the server rejects the token (expired, or more than
    250 changes since it), a new FSync is taken and the log is re-listed from a day before
    the last sync (``full=False``: upserts only; a deletion inside that gap is not seen —
    set ``full_relist_on_reset`` to re-list everything instead, at more Heavy requests).
    """

    def __init__(
        self,
        client: ApiClient,
        ext_id: str | None = "~",
        *,
        date_from: datetime | str = EPOCH,
        view: Literal["Simple", "Detailed"] = "Simple",
        sync_token: str | None = None,
        sync_time: datetime | None = None,
        fsync_record_count: int = CALL_LOG_SYNC_MAX,
        full_relist_on_reset: bool = False,
        priority: Priority = Priority.BACKGROUND,
        deadline_s: float | None = None,
    ) -> None:
        if not 1 <= fsync_record_count <= CALL_LOG_SYNC_MAX:
            raise ValueError(f"fsync_record_count must be 1..{CALL_LOG_SYNC_MAX}")
        self._client = client
        self.ext_id = ext_id
        self.date_from = date_from
        self.view = view
        self.sync_token = sync_token
        self.sync_time = sync_time
        self.fsync_record_count = fsync_record_count
        self.full_relist_on_reset = full_relist_on_reset
        self.priority = priority
        self.deadline_s = deadline_s
        self.resets = 0
        self.requests = 0

    @property
    def path(self) -> str:
        if self.ext_id is None:
            return "/restapi/v1.0/account/~/call-log-sync"
        return ext_path(self.ext_id, "/call-log-sync")

    def _deadline(self) -> float | None:
        if self.deadline_s is None:
            return None
        deadline_in = getattr(self._client, "deadline_in", None)
        return deadline_in(self.deadline_s) if deadline_in is not None else None

    async def sync(self) -> SyncResult[CallLogRecord]:
        if self.sync_token is None:
            return await self._fsync_and_list(self.date_from, full=True)
        params: Params = {"syncType": "ISync", "syncToken": self.sync_token,
                          "showDeleted": "true"}
        try:
            self.requests += 1
            data = await self._client.get_json(self.path, params=params,
                                               priority=self.priority, deadline=self._deadline())
        except ApiError as exc:
            if not call_log_sync_needs_reset(exc):
                raise
            log.info("call-log-sync of %s: token rejected (%s: %s), re-listing",
                     self.ext_id or "account", exc.error_code, exc.message)
            self.resets += 1
            self.sync_token = None
            if self.full_relist_on_reset or self.sync_time is None:
                return await self._fsync_and_list(self.date_from, full=True)
            since = self.sync_time - _GAP_MARGIN
            start = max(since, _as_datetime(self.date_from))
            return await self._fsync_and_list(start, full=False)
        raw_records, info = _sync_info(data)
        records, removed = self._split(raw_records)
        self._advance(info)
        return SyncResult(records=tuple(records.values()), sync_token=self.sync_token,
                          sync_time=self.sync_time, removed_ids=tuple(removed), full=False,
                          sync_type="ISync")

    async def _fsync(self) -> tuple[dict[str, CallLogRecord], list[str], Mapping[str, Any]]:
        # FSync only reaches ~30 days back and returns at most 250 records; its dateFrom is
        # explicit but recent, since the history comes from the listing.
        date_from = datetime.now(UTC) - timedelta(days=1)
        params: Params = {"syncType": "FSync", "recordCount": str(self.fsync_record_count),
                          "view": self.view, "dateFrom": format_time(date_from)}
        self.requests += 1
        data = await self._client.get_json(self.path, params=params, priority=self.priority,
                                           deadline=self._deadline())
        raw_records, info = _sync_info(data)
        records, removed = self._split(raw_records)
        return records, removed, info

    async def _fsync_and_list(self, date_from: datetime | str, *,
                              full: bool) -> SyncResult[CallLogRecord]:
        records, removed, info = await self._fsync()
        pager = list_call_log(self._client, self.ext_id, date_from=date_from, view=self.view,
                              priority=self.priority, deadline=self._deadline())
        async for record in pager:
            if record.deleted:
                records.pop(record.id, None)
                removed.append(record.id)
                continue
            if record.id not in records:
                records[record.id] = record
        self.requests += pager.pages
        self._advance(info)
        ordered = sorted(records.values(), key=lambda r: (r.start_time, r.id), reverse=True)
        return SyncResult(records=tuple(ordered), sync_token=self.sync_token,
                          sync_time=self.sync_time, removed_ids=tuple(dict.fromkeys(removed)),
                          full=full, sync_type="FSync")

    def _split(self, raw_records: list[Any]) -> tuple[dict[str, CallLogRecord], list[str]]:
        records: dict[str, CallLogRecord] = {}
        removed: list[str] = []
        for raw in raw_records:
            try:
                record = parse_call_log_record(raw)
            except ModelError as exc:
                rid = raw.get("id") if isinstance(raw, Mapping) else None
                if isinstance(raw, Mapping) and raw.get("deleted") and rid is not None:
                    removed.append(str(rid))
                else:
                    log.warning("call-log-sync: skipping unparsable record: %s", exc)
                continue
            if record.deleted:
                records.pop(record.id, None)
                removed.append(record.id)
            elif record.id not in records:  # newest first: keep the first occurrence
                records[record.id] = record
        return records, removed

    def _advance(self, info: Mapping[str, Any]) -> None:
        token = _token(info)
        if token is not None:
            self.sync_token = token
        self.sync_time = parse_time_opt(info.get("syncTime")) or datetime.now(UTC)


def _as_datetime(value: datetime | str) -> datetime:
    return parse_time(value)
