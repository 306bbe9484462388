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
Known spec46 defects are listed in ``ALLOW`` with the reason;
tests/emulator/test_emulator_openapi.py fails when an entry is no longer needed by any
exchange.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import threading
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

# A gzipped copy of RingCentral's official spec v1.0.46 (docs/ringcentral.md §0) ships with
# the tests so CI on a fresh clone validates against exactly the same document.
SPEC_FILE = Path(os.environ.get("RCFS_OPENAPI_SPEC")
                 or Path(__file__).resolve().parent / "data" / "openapi3.json.gz")
SPEC_HOST = "https://platform.ringcentral.com"

# application/json and application/*+json (the batch multipart+json).
_JSON_RE = re.compile(r"^application/([\w.+-]*\+)?json$")
_TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d")
_TS_OK = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
# Legacy symbolic top-level codes (docs/ringcentral.md §4.1); TokenExpired (around OAU-128) is the
# emulator's choice, by analogy with TokenInvalid.
LEGACY_TOP_CODES = {"InsufficientPermissions", "TokenInvalid", "TokenExpired"}
RATE_HEADERS = ("x-rate-limit-group", "x-rate-limit-limit", "x-rate-limit-remaining",
                "x-rate-limit-window")
CONTENT_OPS = {"readMessageContent", "listCallRecordingData", "readIVRPromptContent",
               "readMessageStoreReportArchiveContent", "readGreetingContent",
               "readCompanyGreetingContent"}


# -- hand-written schemas (docs/ringcentral.md) -------------------------------------------------

_ERROR_ENTRY = {
    "type": "object",
    "required": ["errorCode", "message"],
    "properties": {
        "errorCode": {"type": "string", "minLength": 1},
        "message": {"type": "string"},
        "parameterName": {"type": "string"},
        "parameterValue": {"type": "string"},
        "permissionName": {"type": "string"},
        "additionalInfo": {"type": "object"},
    },
    "additionalProperties": False,
}
# §4.1: top-level errorCode + message mirror errors[0]; optional extra attributes.
RC_ERROR_SCHEMA = {
    "type": "object",
    "required": ["errorCode", "message", "errors"],
    "properties": {
        "errorCode": {"type": "string", "minLength": 1},
        "message": {"type": "string"},
        "errors": {"type": "array", "items": _ERROR_ENTRY},
        "parameterName": {"type": "string"},
        "parameterValue": {"type": "string"},
        "permissionName": {"type": "string"},
    },
    "additionalProperties": False,
}
# §2.9: token-endpoint errors are OAuth fields plus RingCentral's errors[].
OAUTH_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "error_description", "errors"],
    "properties": {
        "error": {"enum": ["invalid_request", "invalid_client", "invalid_grant",
                           "unauthorized_client", "unsupported_grant_type", "invalid_scope",
                           "unsupported_response_type", "access_denied", "server_error",
                           "temporarily_unavailable"]},
        "error_description": {"type": "string"},
        "errors": {"type": "array", "minItems": 1, "items": _ERROR_ENTRY},
    },
    "additionalProperties": False,
}
# §2.6 (spec48 TokenInfo + the newer optional session fields from ext).
TOKEN_SCHEMA = {
    "type": "object",
    "required": ["access_token", "token_type", "expires_in", "scope"],
    "properties": {
        "access_token": {"type": "string", "minLength": 1},
        "token_type": {"enum": ["bearer"]},
        "expires_in": {"type": "integer", "minimum": 0},
        "refresh_token": {"type": "string", "minLength": 1},
        "refresh_token_expires_in": {"type": "integer", "minimum": 0},
        "scope": {"type": "string"},
        "owner_id": {"type": "string", "pattern": "^[0-9]+$"},
        "endpoint_id": {"type": "string"},
        "id_token": {"type": "string"},
        "session_id": {"type": "string"},
        "session_expires_in": {"type": "integer"},
        "session_expiration_time": {"type": "string"},
        "session_idle_timeout": {"type": "integer"},
    },
    "additionalProperties": False,
}
# docs/ringcentral.md §12.1: the ext spec's WsTokenResponse.
WSTOKEN_SCHEMA = {
    "type": "object",
    "required": ["ws_access_token", "uri", "expires_in"],
    "properties": {"ws_access_token": {"type": "string"}, "uri": {"type": "string"},
                   "expires_in": {"type": "integer"}},
    "additionalProperties": False,
}
# §4.3 / docs batch-requests.md: 207 with Accept: application/vnd.ringcentral.multipart+json.
BATCH_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["resourceId", "status", "body"],
        "properties": {"resourceId": {"type": "string"}, "status": {"type": "integer"},
                       "body": {"type": "object"}},
        "additionalProperties": False,
    },
}


@dataclass(frozen=True)
class NonSpecPath:
    """A path spec46 lacks, checked by hand: ``schema`` for 2xx JSON bodies (None: no body)."""

    method: str
    template: str
    op: str
    statuses: tuple[int, ...]
    schema: dict[str, Any] | None = None
    binary: bool = False
    reason: str = ""


NON_SPEC_PATHS = (
    NonSpecPath("POST", "/restapi/oauth/token", "getToken", (200,), TOKEN_SCHEMA,
                reason="spec48 only (docs/ringcentral.md §2.1, §2.6)"),
    NonSpecPath("POST", "/restapi/oauth/revoke", "revokeToken", (200,), None,
                reason="spec48 only (docs/ringcentral.md §2.8): 200 with an empty body"),
    NonSpecPath("POST", "/restapi/oauth/wstoken", "createWsToken", (200,), WSTOKEN_SCHEMA,
                reason="WebSocket token, newer spec only (docs/ringcentral.md §12.1)"),
    NonSpecPath("GET", "/restapi/oauth/authorize", "authorize", (302,), None,
                reason="browser login page (docs/ringcentral.md §2.4): 302 with Location"),
    NonSpecPath("GET",
                "/restapi/v1.0/account/{accountId}/extension/{extensionId}/greeting/"
                "{greetingId}/content", "readGreetingContent", (200, 206), None, True,
                reason="newer spec only (docs/ringcentral.md §1.1, §3.4)"),
    NonSpecPath("GET", "/restapi/v1.0/account/{accountId}/greeting/{greetingId}/content",
                "readCompanyGreetingContent", (200, 206), None, True,
                reason="newer spec only (docs/ringcentral.md §1.1, §3.4)"),
)


@dataclass(frozen=True)
class Allow:
    """An accepted deviation from spec46: ``op``/``where`` are fnmatch globs; ``where`` uses
    ``[]`` for every list index; ``message`` is a substring of the error."""

    op: str
    where: str
    message: str
    reason: str


# Every entry says why the *spec* is wrong (or incomplete) rather than the emulator.
ALLOW: tuple[Allow, ...] = (
    Allow("readMessageContent", "content-type", "",
          "spec46 declares only text/plain and image/tiff; voicemail/fax/MMS content is "
          "audio/mpeg, audio/x-wav, application/pdf, images (docs/ringcentral.md §6.2, §8)"),
    Allow("readMessage", "path.messageId", "",
          "batch GET takes a comma-separated id list in {messageId} (docs/ringcentral.md "
          "§5.1, E10); spec46 types it as a single integer"),
    Allow("readMessage", "content-type", "multipart/mixed",
          "a batch GET answers 207 multipart/mixed by default (docs/ringcentral.md §5.1, E10); "
          "spec46 declares only application/json"),
    Allow("*", "query.date*", "is not a 'date-time'",
          "query dates accept 2012-07-16, 2012-07-16T23:12, offsets, fractions "
          "(docs/ringcentral.md §9, K2); spec46 types them as strict date-time"),
    Allow("read*CallLog", "uri", "additional property",
          "the current spec's CallLogResponse has a top-level uri (ext/RingCentral.Net "
          "CallLogResponse); spec46 lacks it"),
    Allow("*AnsweringRule*", "*greetings[].custom.uri", "additional property",
          "RingCentral's CustomGreetingInfo carries uri (and contentUri) besides id (SDK "
          "definitions generated from the older spec); spec46 lists only id"),
    Allow("readMessageStoreReportTask", "startTime", "additional property",
          "the export docs' task samples carry startTime once running (docs/ringcentral.md §5.7); "
          "spec46's MessageStoreReport lacks it"),
    Allow("readMessageStoreReportTask", "finishTime", "additional property",
          "the export docs' task samples carry finishTime once final (docs/ringcentral.md §5.7); "
          "spec46's MessageStoreReport lacks it"),
)


# -- the spec, loaded once per process ----------------------------------------------------------

class _Spec:
    """The parsed spec, openapi-core validators and a fast path -> operation index."""

    def __init__(self, path: Path) -> None:
        from jsonschema_path import SchemaPath
        from openapi_core import V30ResponseValidator
        from openapi_core.validation.request import (
            V30RequestBodyValidator,
            V30RequestParametersValidator,
        )

        if path.suffix == ".gz":
            import gzip

            raw = json.loads(gzip.decompress(path.read_bytes()))
        else:
            raw = json.loads(path.read_text())
        # Non-standard top-level keys that make strict spec validators refuse the file.
        raw.pop("guideMapping", None)
        raw.pop("primaryIcons", None)
        self.raw = raw
        self.schema_path = SchemaPath.from_dict(raw)
        self.response = V30ResponseValidator(
            self.schema_path, forbid_unspecified_additional_properties=True)
        self.params = V30RequestParametersValidator(self.schema_path)
        self.body = V30RequestBodyValidator(self.schema_path)
        self.index: list[tuple[re.Pattern[str], int, str, dict[str, Any]]] = []
        for template, item in raw["paths"].items():
            self.index.append((_template_re(template), _literal_weight(template), template,
                               item))
        self.index.sort(key=lambda row: -row[1])
        self.non_spec = [(_template_re(n.template), n) for n in NON_SPEC_PATHS]
        self._enums: dict[tuple[str, int], frozenset[str]] = {}

    def find(self, method: str, path: str) -> tuple[str, str, dict[str, Any]] | None:
        """(template, operationId, operation) of the most specific matching spec path."""
        m = method.lower()
        for regex, _, template, item in self.index:
            if regex.match(path) and m in item:
                op = item[m]
                return template, str(op.get("operationId", f"{m} {template}")), op
        return None

    def enums(self, found: tuple[str, str, dict[str, Any]] | None,
              status: int) -> frozenset[str]:
        """Enum-constrained paths of an operation's response schema for ``status``."""
        if found is None:
            return frozenset()
        key = (found[1], status)
        if key not in self._enums:
            responses = found[2].get("responses", {})
            response = responses.get(str(status)) or responses.get("default") or {}
            content = response.get("content") or {}
            media: dict[str, Any] = (content.get("application/json")
                                     or next(iter(content.values()), {}))
            self._enums[key] = enum_paths(media.get("schema", {}), self.raw)
        return self._enums[key]

    def find_non_spec(self, method: str, path: str) -> NonSpecPath | None:
        for regex, entry in self.non_spec:
            if entry.method == method.upper() and regex.match(path):
                return entry
        return None


def _template_re(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    body = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{body}/?$")


def _literal_weight(template: str) -> int:
    """More literal segments first, so ``/greeting/{id}`` loses to ``/greeting/hold-music``."""
    segs = template.strip("/").split("/")
    return sum(1000 if not s.startswith("{") else 1 for s in segs)


_SPEC: _Spec | None = None
_SPEC_LOCK = threading.Lock()


def spec() -> _Spec:
    """The spec and its validators, built on first use and cached for the process."""
    global _SPEC
    with _SPEC_LOCK:
        if _SPEC is None:
            if not SPEC_FILE.exists():
                raise FileNotFoundError(
                    f"RingCentral OpenAPI spec not found at {SPEC_FILE}; set RCFS_OPENAPI_SPEC")
            _SPEC = _Spec(SPEC_FILE)
        return _SPEC


# -- request/response adapters for openapi-core -------------------------------------------------

class _Request:
    def __init__(self, rec: dict[str, Any], path: str | None = None) -> None:
        from openapi_core.datatypes import RequestParameters
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        self.host_url = SPEC_HOST
        self.path = path or rec["path"]
        self.method = str(rec["method"]).lower()
        body = rec.get("request_body")
        self.body = body.encode() if body else None
        self.content_type = (rec.get("request_content_type") or "").lower()
        query = parse_qsl(rec.get("query") or "", keep_blank_values=True)
        self.parameters = RequestParameters(query=ImmutableMultiDict(query), header=Headers())


class _Response:
    def __init__(self, status: int, body: str | None, content_type: str,
                 headers: dict[str, str]) -> None:
        from werkzeug.datastructures import Headers

        self.status_code = status
        self.data = body.encode() if body else b""
        self.content_type = content_type.lower()
        self.headers = Headers(headers)


# -- problems -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    method: str
    path: str
    op: str
    status: int
    where: str
    message: str

    def __str__(self) -> str:
        message = self.message if len(self.message) <= 240 else self.message[:240] + "..."
        return (f"{self.method} {self.path} [{self.op}] -> {self.status}: "
                f"at {self.where or '<body>'}: {message}")


def format_problems(problems: list[Problem], source: str = "") -> str:
    head = f"OpenAPI/contract conformance: {len(problems)} problem(s)"
    if source:
        head += f" in {source}"
    lines = [head]
    groups: dict[tuple[str, int, str, str], list[Problem]] = {}
    for p in problems:
        key = (p.op, p.status, _norm_where(p.where), p.message[:120])
        groups.setdefault(key, []).append(p)
    for same in groups.values():
        more = f"  (x{len(same)})" if len(same) > 1 else ""
        lines.append(f"  - {same[0]}{more}")
    return "\n".join(lines)


def _json_path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _norm_where(where: str) -> str:
    return re.sub(r"\[\d+\]", "[]", where)


def _allowed(op: str, where: str, message: str) -> Allow | None:
    """The ``ALLOW`` entry that accepts this problem, if any."""
    norm = _norm_where(where)
    return next((a for a in ALLOW if fnmatch.fnmatchcase(op, a.op)
                 and fnmatch.fnmatchcase(norm, a.where) and a.message in message), None)


Kept = dict[tuple[Any, ...], list[int]]


def _schema_errors(exc: BaseException, kept: Kept | None = None) -> list[tuple[str, str]]:
    """(JSON path, message) for each jsonschema error under an openapi-core exception; one
    entry per unexpected property, so the allowlist can name single fields."""
    out: list[tuple[str, str]] = []
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    errors = list(getattr(cause, "schema_errors", None) or [])
    if not errors:
        return [("", f"{type(exc).__name__}: {exc}")]
    for err in errors:
        out.extend(_explain(err, kept))
    return out


def _explain(err: Any, kept: Kept | None = None) -> list[tuple[str, str]]:
    path = _remap(list(getattr(err, "absolute_path", []) or []), kept or {})
    message = str(getattr(err, "message", err))
    if message.startswith("Additional properties are not allowed") and isinstance(
            err.instance, dict) and isinstance(err.schema, dict):
        known = set(err.schema.get("properties", {}))
        patterns = [re.compile(pat) for pat in err.schema.get("patternProperties", {})]
        extras = [k for k in err.instance
                  if k not in known and not any(pat.search(k) for pat in patterns)]
        if extras:
            return [(_json_path([*path, k]), "field not in the spec (additional property)")
                    for k in extras]
    if getattr(err, "context", None) and getattr(err, "validator", None) in (
            "anyOf", "oneOf"):
        from jsonschema.exceptions import best_match

        best = best_match(err.context)
        if best is not None:
            return _explain(best, kept)
    return [(_json_path(path), message)]


def _jsonschema_errors(schema: dict[str, Any], value: Any, prefix: str = "") -> list[
        tuple[str, str]]:
    import jsonschema

    validator = jsonschema.Draft7Validator(schema)
    return [(_join(prefix, where), msg) for err in validator.iter_errors(value)
            for where, msg in _explain(err)]


def _join(prefix: str, where: str) -> str:
    if not prefix or not where:
        return prefix or where
    return prefix + where if where.startswith("[") else f"{prefix}.{where}"


# -- cheap whole-body checks --------------------------------------------------------------------

def _walk(value: Any, path: str = "") -> Iterator[tuple[str, Any, str | None]]:
    """(path, value, key) for every node."""
    if isinstance(value, dict):
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            yield sub, v, str(k)
            yield from _walk(v, sub)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            sub = f"{path}[{i}]"
            yield sub, v, None
            yield from _walk(v, sub)


def _shapes(value: Any, path: str, enums: frozenset[str], out: set[str]) -> set[str]:
    out.add(f"{path}:{type(value).__name__}")
    if path in enums and isinstance(value, (str, int, bool)):
        out.add(f"{path}={value!r}")
    if isinstance(value, dict):
        for k, sub in value.items():
            _shapes(sub, f"{path}.{k}" if path else str(k), enums, out)
    elif isinstance(value, list):
        for sub in value:
            _shapes(sub, f"{path}[]", enums, out)
    return out


def shape_signature(value: Any, enum_paths: frozenset[str] = frozenset()) -> str:
    """A digest of the body's structure (key paths and JSON types, list indices folded) plus
    the values found at the schema's enum-constrained paths, so a new enum value counts as a
    new shape and gets validated."""
    shapes = _shapes(value, "", enum_paths, set())
    return hashlib.sha1("\n".join(sorted(shapes)).encode()).hexdigest()[:16]


LIST_KEEP = 10  # lists longer than this are validated on representatives ...
LIST_MAX = 40  # ... at most this many: the first items, then one per new item shape.


def trim_lists(value: Any, enums: frozenset[str]) -> tuple[Any, dict[tuple[Any, ...],
                                                                     list[int]]]:
    """A copy of ``value`` whose long lists keep only representative items (schema validation
    of a 1000-record page costs seconds), and, per trimmed list (by its path in the copy),
    the original indices of the kept items."""
    kept: dict[tuple[Any, ...], list[int]] = {}

    def visit(v: Any, norm: str, parts: tuple[Any, ...]) -> Any:
        if isinstance(v, dict):
            return {k: visit(sub, f"{norm}.{k}" if norm else str(k), (*parts, k))
                    for k, sub in v.items()}
        if not isinstance(v, list):
            return v
        indices = list(range(len(v)))
        if len(v) > LIST_KEEP:
            seen: set[str] = set()
            indices = []
            for i, item in enumerate(v):
                sig = "\n".join(sorted(_shapes(item, f"{norm}[]", enums, set())))
                if i < LIST_KEEP // 2 or sig not in seen:
                    indices.append(i)
                seen.add(sig)
                if len(indices) >= LIST_MAX:
                    break
            kept[parts] = indices
        return [visit(v[i], f"{norm}[]", (*parts, n)) for n, i in enumerate(indices)]

    return visit(value, "", ()), kept


def _remap(path: list[Any], kept: dict[tuple[Any, ...], list[int]]) -> list[Any]:
    """Error path in a trimmed copy -> path in the original body."""
    out: list[Any] = []
    for n, part in enumerate(path):
        prefix = tuple(path[:n])
        if isinstance(part, int) and prefix in kept and part < len(kept[prefix]):
            out.append(kept[prefix][part])
        else:
            out.append(part)
    return out


def enum_paths(schema: Any, root: dict[str, Any]) -> frozenset[str]:
    """Normalised JSON paths (``records[].legs[].legType``) whose schema has an ``enum``."""
    out: set[str] = set()

    def visit(node: Any, path: str, depth: int) -> None:
        if not isinstance(node, dict) or depth > 40:
            return
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = root
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            visit(target, path, depth + 1)
            return
        if "enum" in node:
            out.add(path)
        for key in ("allOf", "anyOf", "oneOf"):
            for sub in node.get(key) or []:
                visit(sub, path, depth + 1)
        for name, sub in (node.get("properties") or {}).items():
            visit(sub, f"{path}.{name}" if path else name, depth + 1)
        if isinstance(node.get("items"), dict):
            visit(node["items"], f"{path}[]", depth + 1)
        if isinstance(node.get("additionalProperties"), dict):
            visit(node["additionalProperties"], f"{path}.*", depth + 1)

    visit(schema, "", 0)
    return frozenset(out)


def _body_checks(body: Any) -> list[tuple[str, str]]:
    out = []
    for where, value, key in _walk(body):
        if not isinstance(value, str):
            continue
        if _TS_RE.match(value) and not _TS_OK.match(value):
            out.append((where, f"timestamp {value!r} is not UTC 'Z' with optional ms (K1)"))
        if key is not None and key.lower().endswith("uri") and "/~" in value:
            out.append((where, f"uri {value!r} contains '~' instead of a numeric id (A2)"))
    return out


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
            problems += _body_checks(body)

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
            allow = _allowed(op, where, msg)
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
        if not rid or not _UUID_RE.match(rid):
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
        textual = bool(_JSON_RE.match(ctype))
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
        response = _Response(status, text, ctype, rec.get("response_headers") or {})
        for exc in sp.response.iter_errors(_Request(rec), response):
            out += _schema_errors(exc, kept)
        return out

    def _request_checks(self, rec: dict[str, Any], op_id: str) -> list[tuple[str, str]]:
        """The emulator accepted this request: the spec must accept it too."""
        sp = spec()
        out = []
        req = _Request(rec)
        for exc in sp.params.iter_errors(req):
            name = getattr(exc, "name", "")
            location = getattr(exc, "location", "query")
            for where, msg in _schema_errors(exc):
                label = f"{location}.{name}" if name else where
                out.append((label, f"request accepted though the spec forbids it: {msg}"))
        length = len(rec.get("request_body") or "")
        if rec.get("request_body") and length < 4096 and _JSON_RE.match(
                (rec.get("request_content_type") or "").split(";")[0].strip().lower()):
            for exc in sp.body.iter_errors(req):
                for where, msg in _schema_errors(exc):
                    out.append((_join("request", where),
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
        out = _jsonschema_errors(BATCH_SCHEMA, body)
        if out:
            return out
        sp = spec()
        for i, part in enumerate(body):
            where = f"[{i}].body"
            if int(part["status"]) >= 400:
                out += _rc_error_semantics(part["body"], where)
                out += _jsonschema_errors(RC_ERROR_SCHEMA, part["body"], where)
                continue
            response = _Response(200, json.dumps(part["body"]), "application/json", {})
            for exc in sp.response.iter_errors(_Request(rec, _first_id(rec["path"])), response):
                out += [(_join(where, w), m) for w, m in _schema_errors(exc)]
        return out

    def _error_shape(self, rec: dict[str, Any], status: int, body: Any,
                     non_spec: NonSpecPath | None) -> list[tuple[str, str]]:
        if non_spec is not None and non_spec.op in ("getToken", "revokeToken", "authorize") \
                and isinstance(body, dict) and "error" in body:
            return _jsonschema_errors(OAUTH_ERROR_SCHEMA, body)
        out = _jsonschema_errors(RC_ERROR_SCHEMA, body)
        if not out:
            out = _rc_error_semantics(body, "")
        return out

    def _non_spec(self, rec: dict[str, Any], status: int, ctype: str, body: Any,
                  parsed: bool, entry: NonSpecPath) -> list[tuple[str, str]]:
        if status not in entry.statuses:
            return [("<status>", f"status {status} is not expected here ({entry.reason})")]
        if entry.binary:
            if _JSON_RE.match(ctype):
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
        return _jsonschema_errors(entry.schema, body)


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
