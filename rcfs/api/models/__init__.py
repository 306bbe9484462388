"""Typed, immutable views of RingCentral JSON objects, parsed in exactly one place.

Why one place: RingCentral's JSON is inconsistent across endpoints and versions
(docs/ringcentral.md §1.3, §5.1, §9): ids are JSON numbers in REST and strings in events,
``attachments[].size`` is often absent, the attachment file name is ``fileName`` in listings
but ``filename`` in the fax-create response, timestamps come with and without milliseconds,
enum sets grow over time, and ``conversationId`` exceeds 2^53. Every quirk is absorbed here
so the rest of rcfs works with one shape.

Conventions:

* Every id is a ``str`` (the canonical decimal form for numeric ids). Ids are used as file
  names, cache keys and URL path segments, and call-log / recording / greeting ids are
  opaque strings anyway; a single type avoids int/str mismatches in dictionaries.
  ``conversation_id`` is the one exception: an exact ``int`` (Python's ``json`` keeps big
  integers exact, and a digit string is converted without a float round trip).
* Enumerations (``type``, ``status`` ...) stay plain strings: an unknown value from a newer
  server is kept verbatim instead of failing the whole listing.
* URIs (``uri``, ``content_uri``) are kept verbatim; the HTTP client decides whether their
  origin is one it may send credentials to.
* Timestamps are timezone-aware UTC ``datetime`` objects.
* Each object keeps the JSON it came from in ``raw`` (excluded from equality, hashing and
  repr) so callers can write JSON sidecars without a second request.

Malformed required data (a message without ``id`` or ``creationTime``) raises
``ModelError``; everything optional degrades to ``None`` / empty.

The package is split by what the objects are: ``values`` (scalars and ``ModelError``),
``account``, ``messages`` (and sync results), ``calls``, ``greetings``, ``reports``.
Import from ``rcfs.api.models``: every public name is here.
"""

from __future__ import annotations

from rcfs.api.models.account import (
    Extension,
    PhoneNumber,
    parse_extension,
    parse_phone_number,
)
from rcfs.api.models.calls import (
    CallLeg,
    CallLogRecord,
    Recording,
    parse_call_log_record,
    parse_recording,
)
from rcfs.api.models.greetings import (
    AnsweringRule,
    Greeting,
    GreetingRef,
    parse_answering_rule,
    parse_greeting,
)
from rcfs.api.models.messages import (
    Attachment,
    Message,
    Party,
    RemovedMessage,
    SyncResult,
    parse_attachment,
    parse_message,
    parse_party,
)
from rcfs.api.models.reports import (
    ArchiveRef,
    ReportTask,
    parse_archive_ref,
    parse_report_task,
)
from rcfs.api.models.values import (
    EPOCH,
    ModelError,
    format_time,
    parse_time,
    parse_time_opt,
)

__all__ = [
    "EPOCH",
    "AnsweringRule",
    "ArchiveRef",
    "Attachment",
    "CallLeg",
    "CallLogRecord",
    "Extension",
    "Greeting",
    "GreetingRef",
    "Message",
    "ModelError",
    "Party",
    "PhoneNumber",
    "Recording",
    "RemovedMessage",
    "ReportTask",
    "SyncResult",
    "format_time",
    "parse_answering_rule",
    "parse_archive_ref",
    "parse_attachment",
    "parse_call_log_record",
    "parse_extension",
    "parse_greeting",
    "parse_message",
    "parse_party",
    "parse_phone_number",
    "parse_recording",
    "parse_report_task",
    "parse_time",
    "parse_time_opt",
]
