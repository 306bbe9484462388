"""RingCentral's OpenAPI spec for tests/openapi_check.py: loaded once per process, matched to
paths, adapted for openapi-core; ``Problem`` and its formatting; the cheap whole-body checks
(timestamps, ``uri``s) and the list trimming that keeps schema validation fast.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from tests.openapi_rules import (
    ALLOW,
    NON_SPEC_PATHS,
    SPEC_FILE,
    SPEC_HOST,
    TS_OK,
    TS_RE,
    Allow,
    NonSpecPath,
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

class SpecRequest:
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


class SpecResponse:
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


def allowed_by(op: str, where: str, message: str) -> Allow | None:
    """The ``ALLOW`` entry that accepts this problem, if any."""
    norm = _norm_where(where)
    return next((a for a in ALLOW if fnmatch.fnmatchcase(op, a.op)
                 and fnmatch.fnmatchcase(norm, a.where) and a.message in message), None)


Kept = dict[tuple[Any, ...], list[int]]


def schema_errors(exc: BaseException, kept: Kept | None = None) -> list[tuple[str, str]]:
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


def jsonschema_errors(schema: dict[str, Any], value: Any, prefix: str = "") -> list[
        tuple[str, str]]:
    import jsonschema

    validator = jsonschema.Draft7Validator(schema)
    return [(join_where(prefix, where), msg) for err in validator.iter_errors(value)
            for where, msg in _explain(err)]


def join_where(prefix: str, where: str) -> str:
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


def body_checks(body: Any) -> list[tuple[str, str]]:
    out = []
    for where, value, key in _walk(body):
        if not isinstance(value, str):
            continue
        if TS_RE.match(value) and not TS_OK.match(value):
            out.append((where, f"timestamp {value!r} is not UTC 'Z' with optional ms (K1)"))
        if key is not None and key.lower().endswith("uri") and "/~" in value:
            out.append((where, f"uri {value!r} contains '~' instead of a numeric id (A2)"))
    return out
