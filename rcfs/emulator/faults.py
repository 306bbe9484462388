"""Deterministic fault injection, per route.

A rule matches requests by method and a regular expression searched in the path (and,
optionally, which origin served it). Each match is decided by a seeded RNG (``probability``),
``skip`` (let the first N matches pass) and ``count`` (apply at most N times), so a test
gets the same faults on every run.

Kinds:
  status       answer ``status`` (429 with/without Retry-After and rate headers, 500, 503)
               instead of processing; ``code``/``message``/``retry_after``/``rate_headers``.
               It fires where the route counts the request (``Emulator.throttle``), so its
               headers name the route's real rate-limit group, limit and window; a 429 is
               not counted, another status is. A request the route answers before counting
               it (bad token, unknown path, unthrottled endpoint) gets it without a group.
  delay        process the request, then wait ``seconds`` before the response starts
               (slow first byte; a send whose response is late).
  reset        content: send ``after_bytes`` (default: half) of the body, then drop the
               connection.
  short206     content: answer a 206 with only ``bytes`` (default: half) of what was asked.
  ignore_range content: answer 200 with the whole body, ignoring Range.
  partial_200  content: answer a request for the whole object (a plain GET or ``bytes=0-``)
               with a 206 of the first ``bytes`` only (H6b).
  no_length    content: omit Content-Length (chunked transfer).
  bandwidth    content: cap the body at ``bytes_per_second``.
  revoke       revoke the caller's session before handling (token revoked mid-session).
  lie_length   content: announce a Content-Length larger than the body, then close.
  reset_request  any request (meant for POST sends: fax, sms, mms, greeting): read the
               request body (``read_body``, default true; false drops while the client may
               still be uploading), then drop the connection with a TCP reset before any
               handler runs. Nothing is created, nothing is recorded in ``/_emulator/sent``
               and no response bytes are written: the client sees a connection error
               (httpx ``RemoteProtocolError``/``ReadError``/``WriteError``). The request log
               entry has ``status: null`` and ``dropped: true``.
  reset_response any request (meant for POST sends): the handler runs to completion (a send
               creates its message and is recorded in ``/_emulator/sent``), its response is
               discarded and the connection is dropped with a TCP reset before the status
               line: the client cannot know the request took effect. The request log entry
               keeps the status the handler answered, with ``dropped: true``.

A drop is a real socket reset (``SO_LINGER`` 0, then abort of uvicorn's transport); the ASGI
app then returns without a response, which uvicorn accepts silently once the connection is
lost, so it never becomes a 500. Neither kind writes a recorded exchange (no response exists
to check against the OpenAPI spec).
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass, field
from typing import Any

from rcfs.emulator.errors import ApiError, rc_error

KINDS = {
    "status", "delay", "reset", "short206", "ignore_range", "partial_200", "no_length",
    "bandwidth", "revoke", "lie_length", "reset_request", "reset_response",
}
CONTENT_KINDS = {"reset", "short206", "ignore_range", "partial_200", "no_length", "bandwidth",
                 "lie_length"}


@dataclass
class FaultRule:
    id: int
    kind: str
    path: str = ""
    method: str | None = None
    origin: str | None = None  # "platform" | "media" | None (both)
    probability: float = 1.0
    skip: int = 0
    count: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    matched: int = 0
    applied: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "path": self.path, "method": self.method,
            "origin": self.origin, "probability": self.probability, "skip": self.skip,
            "count": self.count, "applied": self.applied, **self.params,
        }


class Faults:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rules: list[FaultRule] = []
        self._ids = itertools.count(1)

    def add(self, spec: dict[str, Any]) -> FaultRule:
        spec = dict(spec)
        kind = spec.pop("kind", None)
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(KINDS)}")
        path = str(spec.pop("path", ""))
        re.compile(path)
        rule = FaultRule(
            id=next(self._ids),
            kind=kind,
            path=path,
            method=(spec.pop("method", None) or None),
            origin=spec.pop("origin", None),
            probability=float(spec.pop("probability", 1.0)),
            skip=int(spec.pop("skip", 0)),
            count=spec.pop("count", None),
            params=spec,
        )
        rule._rng = random.Random(f"{self.seed}:{rule.id}")
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()

    def remove(self, rule_id: int) -> bool:
        before = len(self.rules)
        self.rules = [r for r in self.rules if r.id != rule_id]
        return len(self.rules) != before

    def take(self, method: str, path: str, origin: str) -> list[FaultRule]:
        """The rules that fire for this request (consuming their counts)."""
        fired = []
        for rule in self.rules:
            if rule.method and rule.method.upper() != method.upper():
                continue
            if rule.origin and rule.origin != origin:
                continue
            if rule.path and not re.search(rule.path, path):
                continue
            if rule.count is not None and rule.applied >= rule.count:
                continue
            rule.matched += 1
            if rule.matched <= rule.skip:
                continue
            if rule.probability < 1.0 and rule._rng.random() >= rule.probability:
                continue
            rule.applied += 1
            fired.append(rule)
        return fired


def fault_error(params: dict[str, Any], rate_headers: dict[str, str]) -> ApiError:
    """The error a ``status`` rule answers with. ``rate_headers`` are the route's real
    rate-limit headers (its group, limit, window): a 429 CMN-301 carries them with
    ``Remaining: 0`` unless ``rate_headers`` is false; other statuses carry them as they
    are (the gateway counted the request before the backend failed)."""
    status = int(params.get("status", 503))
    headers: dict[str, str] = {}
    if status != 429:
        headers.update(rate_headers)
    if status == 429:
        code = str(params.get("code", "CMN-301"))
        message = str(params.get("message", "Request rate exceeded"))
        if params.get("rate_headers", True) and code == "CMN-301" and rate_headers:
            headers.update(rate_headers)
            headers["X-Rate-Limit-Remaining"] = "0"
        if params.get("retry_after", 60) is not None and code == "CMN-301":
            headers["Retry-After"] = str(params.get("retry_after", 60))
        return rc_error(429, code, message, headers=headers)
    if status == 503:
        if params.get("retry_after") is not None:
            headers["Retry-After"] = str(params["retry_after"])
        return rc_error(503, str(params.get("code", "CMN-201")),
                        str(params.get("message", "Service temporary unavailable")),
                        headers=headers)
    return rc_error(status, str(params.get("code", "CMN-203")),
                    str(params.get("message", "Internal Server Error")), headers=headers)
