"""Spec conformance of recorded emulator exchanges (so the emulator cannot drift from RingCentral).

The emulator, started with ``--set record_exchanges=FILE``, appends one JSON line per exchange
(``rcfs/emulator/app.py`` ``_Recorder``). ``check_file`` validates those lines:

* operations in RingCentral's OpenAPI spec v1.0.46 (``openapi3.json``): the response body with
  openapi-core (unknown fields are errors too), the query parameters and JSON body of requests
  the emulator *accepted* (an accepted request the spec forbids is drift as well);
* paths the spec lacks (``/restapi/oauth/*``, greeting content) against hand-written schemas from
  docs/ringcentral.md §2.6/§2.9, and every error response (4xx/5xx) against the error shape of
  §4.1 -- spec46's own error schemas are incomplete (they lack the top-level ``errorCode``), and
  where spec and docs/ringcentral.md disagree the latter wins;
* cheap checks on every exchange (ids of docs/ringcentral.md §13): ``RCRequestId``/``RoutingKey``
  (A8), complete ``X-Rate-Limit-*`` sets (C1), UTC ``Z`` timestamps (K1), no ``~`` in returned
  ``uri``s (A2).

The 4 MB spec is loaded once per process. Each (operation, status) is schema-validated for its
first ``per_status`` exchanges plus each new response shape (key paths, JSON types and the
values at the schema's enum paths), up to ``max_shapes``, so a suite of thousands of calls
stays fast while every operation/status seen is validated at least once.
Known spec46 defects are listed in ``ALLOW`` (tests/openapi_rules.py, with the hand-written
schemas) with the reason; tests/emulator/test_emulator_openapi.py fails when an entry is no
longer needed by any exchange. Loading and matching the spec, and the cheap whole-body checks,
are in tests/openapi_spec.py.
"""

from __future__ import annotations

import fnmatch
import json
import re
import threading
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from tests.openapi_rules import (
    BATCH_SCHEMA,
    CONTENT_OPS,
    JSON_RE,
    LEGACY_TOP_CODES,
    OAUTH_ERROR_SCHEMA,
    RATE_HEADERS,
    RC_ERROR_SCHEMA,
    UUID_RE,
    Allow,
    NonSpecPath,
)
from tests.openapi_spec import (
    Problem,
    SpecRequest,
    SpecResponse,
    allowed_by,
    body_checks,
    join_where,
    jsonschema_errors,
    schema_errors,
    shape_signature,
    spec,
    trim_lists,
)

# -- the checker --------------------------------------------------------------------------------

class ExchangeChecker:
    """Validates recorded exchanges; sampling counters live on the instance (the module-level
    ``DEFAULT`` is shared by every emulator of a pytest process)."""

    def __init__(self, per_status: int = 3, max_shapes: int = 24) -> None:
        self.per_status = per_status
        self.max_shapes = max_shapes
        self.validated: Counter[tuple[str, int]] = Counter()
        self.shapes: defaultdict[tuple[str, int], set[str]] = defaultdict(set)
        self.seen: Counter[tuple[str, int]] = Counter()
        self.allowed: Counter[Allow] = Counter()
        """How many problems each ``ALLOW`` entry accepted (an entry never used is stale)."""
        self.exchanges = 0
        self._lock = threading.Lock()

    # public API -------------------------------------------------------------------------------

    def check_file(self, path: Path | str) -> list[Problem]:
        path = Path(path)
        if not path.exists():
            return []
        problems: list[Problem] = []
        request_ids: dict[str, int] = {}
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    problems.append(Problem("?", "?", "?", 0, f"line {lineno}",
                                            "unreadable exchange record"))
                    continue
                rid = (rec.get("response_headers") or {}).get("rcrequestid")
                if rid:
                    if rid in request_ids:
                        problems.append(self._problem(rec, "?", "header RCRequestId",
                                                      f"duplicate of line {request_ids[rid]} "
                                                      "(A8: unique per request)"))
                    request_ids[rid] = lineno
                problems.extend(self.check(rec))
        return problems

    def check(self, rec: dict[str, Any]) -> list[Problem]:
        """All problems of one exchange record."""
        with self._lock:
            return self._check(rec)

    # internals --------------------------------------------------------------------------------

    def _problem(self, rec: dict[str, Any], op: str, where: str, message: str) -> Problem:
        path = rec.get("path", "?")
        if rec.get("query"):
            path += "?" + _redact(rec["query"])
        return Problem(str(rec.get("method", "?")), path, op, int(rec.get("status") or 0),
                       where, message)

    def _check(self, rec: dict[str, Any]) -> list[Problem]:
        self.exchanges += 1
        sp = spec()
        method = str(rec.get("method", "GET")).upper()
        status = int(rec.get("status") or 0)
        found = sp.find(method, rec["path"])
        non_spec = None if found else sp.find_non_spec(method, rec["path"])
        if found:
            op = found[1]
        elif non_spec:
            op = non_spec.op
        else:
            op = f"{method} <not in spec>"
        problems: list[tuple[str, str]] = []

        body_text = rec.get("response_body")
        ctype = (rec.get("response_content_type") or "").split(";")[0].strip().lower()
        body: Any = None
        parsed = False
        if body_text:
            try:
                body = json.loads(body_text)
                parsed = True
            except ValueError:
                problems.append(("<body>", f"{ctype} body is not valid JSON"))
        problems += self._header_checks(rec, status, ctype, bool(body_text))
        if parsed:
            problems += body_checks(body)

        key = (op, status)
        self.seen[key] += 1
        sig = (shape_signature(body, sp.enums(found, status)) if parsed
               else f"ctype:{ctype}")
        sample = (self.validated[key] < self.per_status
                  or (sig not in self.shapes[key] and len(self.shapes[key]) < self.max_shapes))
        if sample:
            self.validated[key] += 1
            self.shapes[key].add(sig)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                problems += self._deep(rec, method, status, ctype, body, parsed, found,
                                       non_spec, op)
        out = []
        for where, msg in problems:
            allow = allowed_by(op, where, msg)
            if allow is None:
                out.append(self._problem(rec, op, where, msg))
            else:
                self.allowed[allow] += 1
        return out

    def _header_checks(self, rec: dict[str, Any], status: int, ctype: str,
                       has_body: bool) -> list[tuple[str, str]]:
        out = []
        headers = rec.get("response_headers") or {}
        rid = headers.get("rcrequestid")
        if not rid or not UUID_RE.match(rid):
            out.append(("header RCRequestId", f"missing or not a uuid: {rid!r} (A8)"))
        if not headers.get("routingkey"):
            out.append(("header RoutingKey", "missing (A8)"))
        present = [h for h in RATE_HEADERS if h in headers]
        if present and len(present) != len(RATE_HEADERS):
            missing = sorted(set(RATE_HEADERS) - set(present))
            out.append(("header X-Rate-Limit-*", f"incomplete set, missing {missing} (C1)"))
        elif present:
            try:
                limit = int(headers["x-rate-limit-limit"])
                remaining = int(headers["x-rate-limit-remaining"])
                window = int(headers["x-rate-limit-window"])
                if not (0 <= remaining <= limit and window > 0):
                    raise ValueError
            except ValueError:
                out.append(("header X-Rate-Limit-*", "limit/remaining/window are not "
                            f"consistent integers: {[headers[h] for h in RATE_HEADERS]} (C1)"))
        if status == 429 and "retry-after" in headers:
            try:
                int(headers["retry-after"])
            except ValueError:
                out.append(("header Retry-After", f"not an integer: {headers['retry-after']!r}"))
        if has_body and status not in (204, 304) and not ctype:
            out.append(("header Content-Type", "missing on a response with a body"))
        return out

    def _deep(self, rec: dict[str, Any], method: str, status: int, ctype: str, body: Any,
              parsed: bool, found: tuple[str, str, dict[str, Any]] | None,
              non_spec: NonSpecPath | None, op: str) -> list[tuple[str, str]]:
        """Schema validation of one sampled exchange."""
        textual = bool(JSON_RE.match(ctype))
        if status >= 400:
            if not textual:
                return [("content-type", f"error response is {ctype or 'untyped'}, not JSON "
                         "(docs/ringcentral.md §4.1)")]
            if rec.get("response_truncated") or not parsed:
                return []
            return self._error_shape(rec, status, body, non_spec)
        if found is None and non_spec is None:
            if status < 300 or status == 304:
                return [("<path>", "2xx/3xx on a path that is neither in spec46 nor in "
                         "NON_SPEC_PATHS")]
            return []
        if non_spec is not None:
            return self._non_spec(rec, status, ctype, body, parsed, non_spec)
        assert found is not None
        template, op_id, operation = found
        out = self._request_checks(rec, op_id)
        responses = operation.get("responses", {})
        if status == 206 and op_id in CONTENT_OPS:
            # Range responses (docs/ringcentral.md §6.2) are not declared anywhere in spec46.
            return out
        if not textual:
            return out + self._binary(rec, status, ctype, responses)
        if rec.get("response_truncated") or not parsed:
            return out
        if status == 207 and isinstance(body, list):
            return out + self._batch(rec, body, op_id)
        sp = spec()
        trimmed, kept = trim_lists(body, sp.enums(found, status))
        text = json.dumps(trimmed) if kept else rec.get("response_body")
        response = SpecResponse(status, text, ctype, rec.get("response_headers") or {})
        for exc in sp.response.iter_errors(SpecRequest(rec), response):
            out += schema_errors(exc, kept)
        return out

    def _request_checks(self, rec: dict[str, Any], op_id: str) -> list[tuple[str, str]]:
        """The emulator accepted this request: the spec must accept it too."""
        sp = spec()
        out = []
        req = SpecRequest(rec)
        for exc in sp.params.iter_errors(req):
            name = getattr(exc, "name", "")
            location = getattr(exc, "location", "query")
            for where, msg in schema_errors(exc):
                label = f"{location}.{name}" if name else where
                out.append((label, f"request accepted though the spec forbids it: {msg}"))
        length = len(rec.get("request_body") or "")
        if rec.get("request_body") and length < 4096 and JSON_RE.match(
                (rec.get("request_content_type") or "").split(";")[0].strip().lower()):
            for exc in sp.body.iter_errors(req):
                for where, msg in schema_errors(exc):
                    out.append((join_where("request", where),
                                f"request body accepted though the spec forbids it: {msg}"))
        return out

    def _binary(self, rec: dict[str, Any], status: int, ctype: str,
                responses: dict[str, Any]) -> list[tuple[str, str]]:
        declared = responses.get(str(status)) or responses.get("default")
        if declared is None:
            return [("<status>", f"status {status} not declared for this operation")]
        content = declared.get("content") or {}
        if not content or not ctype:
            return []
        for media in content:
            if fnmatch.fnmatchcase(ctype, media.lower()):
                return []
        return [("content-type", f"{ctype} is not among the declared {sorted(content)}")]

    def _batch(self, rec: dict[str, Any], body: list[Any], op_id: str) -> list[
            tuple[str, str]]:
        out = jsonschema_errors(BATCH_SCHEMA, body)
        if out:
            return out
        sp = spec()
        for i, part in enumerate(body):
            where = f"[{i}].body"
            if int(part["status"]) >= 400:
                out += _rc_error_semantics(part["body"], where)
                out += jsonschema_errors(RC_ERROR_SCHEMA, part["body"], where)
                continue
            response = SpecResponse(200, json.dumps(part["body"]), "application/json", {})
            for exc in sp.response.iter_errors(SpecRequest(rec, _first_id(rec["path"])), response):
                out += [(join_where(where, w), m) for w, m in schema_errors(exc)]
        return out

    def _error_shape(self, rec: dict[str, Any], status: int, body: Any,
                     non_spec: NonSpecPath | None) -> list[tuple[str, str]]:
        if non_spec is not None and non_spec.op in ("getToken", "revokeToken", "authorize") \
                and isinstance(body, dict) and "error" in body:
            return jsonschema_errors(OAUTH_ERROR_SCHEMA, body)
        out = jsonschema_errors(RC_ERROR_SCHEMA, body)
        if not out:
            out = _rc_error_semantics(body, "")
        return out

    def _non_spec(self, rec: dict[str, Any], status: int, ctype: str, body: Any,
                  parsed: bool, entry: NonSpecPath) -> list[tuple[str, str]]:
        if status not in entry.statuses:
            return [("<status>", f"status {status} is not expected here ({entry.reason})")]
        if entry.binary:
            if JSON_RE.match(ctype):
                return [("content-type", "content endpoint answered JSON with a 2xx")]
            return []
        if status == 302:
            if not (rec.get("response_headers") or {}).get("location"):
                return [("header Location", "302 without Location")]
            return []
        if entry.schema is None:
            if rec.get("response_body"):
                return [("<body>", f"expected an empty body ({entry.reason})")]
            return []
        if not parsed:
            return [("<body>", "expected a JSON body")]
        return jsonschema_errors(entry.schema, body)


def _first_id(path: str) -> str:
    """``…/message-store/1,2,3`` -> ``…/message-store/1`` (to find the single-item schema)."""
    head, _, last = path.rstrip("/").rpartition("/")
    return f"{head}/{last.split(',')[0]}"


def _rc_error_semantics(body: Any, prefix: str) -> list[tuple[str, str]]:
    """§4.1: top-level errorCode/message mirror errors[0] (legacy symbolic top codes aside);
    only gateway errors (AGW-*) may carry an empty errors[]."""
    if not isinstance(body, dict):
        return []
    errors = body.get("errors") or []
    code = str(body.get("errorCode", ""))
    p = f"{prefix}." if prefix else ""
    if not errors:
        if code.startswith("AGW-"):
            return []
        return [(f"{p}errors", "empty errors[] (only gateway AGW-* errors may have none)")]
    first = errors[0]
    out = []
    if code != first.get("errorCode") and code not in LEGACY_TOP_CODES:
        out.append((f"{p}errorCode", f"top-level {code!r} does not mirror errors[0] "
                    f"{first.get('errorCode')!r}"))
    if body.get("message") != first.get("message"):
        out.append((f"{p}message", "top-level message does not mirror errors[0].message"))
    for attr in ("parameterName", "parameterValue", "permissionName"):
        if attr in body and body[attr] != first.get(attr):
            out.append((f"{p}{attr}", f"top-level {attr} does not mirror errors[0]"))
    return out


def _redact(query: str) -> str:
    return re.sub(r"(access_token=)[^&]+", r"\1…", query)


DEFAULT = ExchangeChecker()


def check_file(path: Path | str, checker: ExchangeChecker | None = None) -> list[Problem]:
    """Problems in a recorded exchanges file, using the process-wide sampling counters."""
    return (checker or DEFAULT).check_file(path)
