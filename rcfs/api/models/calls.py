"""Call-log records, their legs and recordings (``…/call-log``, ``…/recording/{id}``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rcfs.api.models.messages import Party, parse_party
from rcfs.api.models.values import (
    ModelError,
    Raw,
    json_object,
    opt_bool,
    opt_id,
    opt_int,
    opt_list,
    opt_map,
    opt_str,
    parse_time,
    parse_time_opt,
    req_id,
)


@dataclass(frozen=True, slots=True)
class Recording:
    """A call recording. The call-log ``recording`` object has no ``content_type`` and no
    ``duration``; ``GET …/recording/{id}`` has both. There is never a size."""

    id: str
    uri: str | None = None
    type: str | None = None
    content_uri: str | None = None
    content_type: str | None = None
    duration: int | None = None
    raw: Raw = field(default_factory=dict, compare=False, repr=False)


def parse_recording(d: Any) -> Recording:
    d = json_object(d, "recording")
    return Recording(
        id=req_id(d, "id", "recording"),
        uri=opt_str(d.get("uri")),
        type=opt_str(d.get("type")),
        content_uri=opt_str(d.get("contentUri")),
        content_type=opt_str(d.get("contentType")),
        duration=opt_int(d.get("duration")),
        raw=d,
    )


def _recording_opt(value: Any) -> Recording | None:
    if isinstance(value, Mapping) and opt_id(value.get("id")) is not None:
        return parse_recording(value)
    return None


@dataclass(frozen=True, slots=True)
class CallLeg:
    """One leg of a multi-leg call (``view=Detailed``); each may carry its own recording."""

    start_time: datetime | None
    duration: int | None
    type: str | None
    direction: str | None
    action: str | None
    result: str | None
    from_: Party | None
    to: Party | None
    leg_type: str | None = None
    master: bool | None = None
    extension_id: str | None = None
    recording: Recording | None = None
    raw: Raw = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class CallLogRecord:
    """A call-log record (extension or company level)."""

    id: str
    session_id: str | None
    telephony_session_id: str | None
    start_time: datetime
    duration: int | None
    type: str | None
    direction: str | None
    action: str | None
    result: str | None
    from_: Party | None
    to: Party | None
    extension_id: str | None
    recording: Recording | None
    uri: str | None = None
    reason: str | None = None
    last_modified_time: datetime | None = None
    short_recording: bool = False
    deleted: bool = False
    message_id: str | None = None
    legs: tuple[CallLeg, ...] = ()
    raw: Raw = field(default_factory=dict, compare=False, repr=False)

    @property
    def recordings(self) -> tuple[Recording, ...]:
        """The record's recording plus those of its legs, each id once (transfers record one
        file per leg, docs/ringcentral.md §5.3)."""
        seen: dict[str, Recording] = {}
        for rec in (self.recording, *(leg.recording for leg in self.legs)):
            if rec is not None and rec.id not in seen:
                seen[rec.id] = rec
        return tuple(seen.values())


def _party_opt(value: Any) -> Party | None:
    return parse_party(value) if isinstance(value, Mapping) else None


def _extension_id_of(d: Raw) -> str | None:
    return opt_id(opt_map(d.get("extension")).get("id")) or opt_id(d.get("extensionId"))


def _parse_leg(d: Raw) -> CallLeg:
    return CallLeg(
        start_time=parse_time_opt(d.get("startTime")),
        duration=opt_int(d.get("duration")),
        type=opt_str(d.get("type")),
        direction=opt_str(d.get("direction")),
        action=opt_str(d.get("action")),
        result=opt_str(d.get("result")),
        from_=_party_opt(d.get("from")),
        to=_party_opt(d.get("to")),
        leg_type=opt_str(d.get("legType")),
        master=opt_bool(d.get("master")),
        extension_id=_extension_id_of(d),
        recording=_recording_opt(d.get("recording")),
        raw=d,
    )


def parse_call_log_record(d: Any) -> CallLogRecord:
    d = json_object(d, "call-log record")
    start = d.get("startTime")
    if start is None:
        raise ModelError(f"call-log record without 'startTime': {dict(d)!r}"[:400])
    message = opt_map(d.get("message"))
    return CallLogRecord(
        id=req_id(d, "id", "call-log record"),
        session_id=opt_id(d.get("sessionId")),
        telephony_session_id=opt_str(d.get("telephonySessionId")),
        start_time=parse_time(start),
        duration=opt_int(d.get("duration")),
        type=opt_str(d.get("type")),
        direction=opt_str(d.get("direction")),
        action=opt_str(d.get("action")),
        result=opt_str(d.get("result")),
        from_=_party_opt(d.get("from")),
        to=_party_opt(d.get("to")),
        extension_id=_extension_id_of(d),
        recording=_recording_opt(d.get("recording")),
        uri=opt_str(d.get("uri")),
        reason=opt_str(d.get("reason")),
        last_modified_time=parse_time_opt(d.get("lastModifiedTime")),
        short_recording=bool(opt_bool(d.get("shortRecording"))),
        deleted=bool(opt_bool(d.get("deleted"))),
        message_id=opt_id(message.get("id")),
        legs=tuple(_parse_leg(leg) for leg in opt_list(d.get("legs")) if isinstance(leg, Mapping)),
        raw=d,
    )
