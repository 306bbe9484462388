"""Scalar values of RingCentral JSON, read leniently: timestamps, ids, numbers, flags.

Every model of this package reads its fields through these, so each quirk (ids as numbers
or strings, timestamps with or without milliseconds, numbers as digit strings) is absorbed
once; see the ``rcfs.api.models`` docstring for the conventions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Default ``dateFrom`` for full-history listings: the server's default window is 24 h."""

Raw = Mapping[str, Any]


class ModelError(ValueError):
    """A response object lacks a required field or has one of an impossible type."""


# -- timestamps -------------------------------------------------------------------------------

_FRACTION = re.compile(r"(\.\d+)")
_DATE_ONLY = re.compile(r"^\d{4}(-\d{2}){0,2}$")


def parse_time(value: Any) -> datetime:
    """Parse an ISO 8601 timestamp as RingCentral writes it, into an aware UTC datetime.

    Accepts ``2018-10-08T09:17:27.000Z``, ``2019-07-31T20:01:58Z``, offsets (``+04:00``,
    ``+0400``), any number of fractional digits, naive values (taken as UTC, which is what
    the API means), date-only values, and epoch milliseconds as a number (push payloads).
    """
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, bool):
        raise ModelError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000.0, tz=UTC)
    if not isinstance(value, str) or not value.strip():
        raise ModelError(f"not a timestamp: {value!r}")
    text = value.strip()
    if _DATE_ONLY.match(text):
        parts = [int(p) for p in text.split("-")] + [1, 1]
        return datetime(parts[0], parts[1], parts[2], tzinfo=UTC)
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    # datetime.fromisoformat wants at most 6 fractional digits; servers may send more.
    text = _FRACTION.sub(lambda m: m.group(1)[:7], text, count=1)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ModelError(f"not a timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_time_opt(value: Any) -> datetime | None:
    """``parse_time`` for optional fields: absent or unparsable → ``None``."""
    if value is None or value == "":
        return None
    try:
        return parse_time(value)
    except ModelError:
        return None


def format_time(value: datetime | str) -> str:
    """Format a query timestamp (``dateFrom`` ...) as UTC ISO 8601 with ``Z``.

    Strings pass through unchanged so a caller can send a server-echoed value verbatim.
    Milliseconds are written only when present, so the epoch is ``1970-01-01T00:00:00Z``.
    """
    if isinstance(value, str):
        return value
    dt = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- ids, numbers, strings, containers --------------------------------------------------------


def opt_id(value: Any) -> str | None:
    """An id as a canonical string; ints and digit strings agree (``5`` == ``"5"``)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text.isdigit():
            return str(int(text))
        return text
    return None


def req_id(d: Raw, key: str, what: str) -> str:
    """The id at ``d[key]``; absent or unusable raises ``ModelError`` (``what`` names the
    object in the message)."""
    value = opt_id(d.get(key))
    if value is None:
        raise ModelError(f"{what} without {key!r}: {dict(d)!r}"[:400])
    return value


def opt_int(value: Any) -> int | None:
    """An optional integer from a JSON number or digit string; anything else → ``None``."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
    return None


def opt_str(value: Any) -> str | None:
    """A string, or a number written as one (ids and codes come both ways)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def opt_bool(value: Any) -> bool | None:
    """A JSON boolean or ``"true"``/``"false"``; anything else → ``None``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def opt_map(value: Any) -> Raw:
    """An optional nested object: absent or not an object → empty."""
    return value if isinstance(value, Mapping) else {}


def opt_list(value: Any) -> list[Any]:
    """An optional array: absent or not an array → empty."""
    return value if isinstance(value, list) else []


def json_object(d: Any, what: str) -> Raw:
    """``d`` itself when it is a JSON object; anything else raises ``ModelError``."""
    if not isinstance(d, Mapping):
        raise ModelError(f"{what} is not a JSON object: {d!r}"[:400])
    return d
