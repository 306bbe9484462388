"""Which throttling group a request will be charged to, before the server tells us.

The scheduler must reserve budget *before* sending, but ``X-Rate-Limit-Group`` only arrives
with the response. This guesses from the generated spec table; unknown operations fall back to
"Medium", the conservative middle (the client re-keys once the real group is seen).
"""

from __future__ import annotations

from functools import lru_cache

from rcfs.api.group_table import TABLE

DEFAULT_GROUP = "Medium"

# Specificity: a literal segment beats a parameter at the leftmost differing position, so
# ".../greeting/hold-music" wins over ".../greeting/*".
_Row = tuple[tuple[str, ...], tuple[int, ...], str]


def _build() -> dict[tuple[str, int], list[_Row]]:
    index: dict[tuple[str, int], list[_Row]] = {}
    for method, tmpl, group in TABLE:
        segs = tuple(tmpl.strip("/").split("/"))
        spec = tuple(1 if s == "*" else 0 for s in segs)
        index.setdefault((method, len(segs)), []).append((segs, spec, group))
    for rows in index.values():
        rows.sort(key=lambda r: r[1])
    return index


_INDEX = _build()


def _segments(path: str) -> tuple[str, ...]:
    path = path.split("?", 1)[0].split("#", 1)[0]
    return tuple(s for s in path.strip("/").split("/") if s != "")


@lru_cache(maxsize=4096)
def group_for(method: str, path: str) -> str:
    """Group of ``method path`` (path only, query ignored); unknown → ``DEFAULT_GROUP``.

    Any path segment (``~``, numeric ids, comma-separated id lists, opaque ids) matches a
    template parameter. HEAD is charged like GET.
    """
    m = method.upper()
    if m == "HEAD":
        m = "GET"
    segs = _segments(path)
    for segs_t, _spec, group in _INDEX.get((m, len(segs)), ()):
        if all(t == "*" or t == s for t, s in zip(segs_t, segs, strict=True)):
            return group
    return DEFAULT_GROUP


@lru_cache(maxsize=4096)
def route_key(method: str, path: str) -> str:
    """A stable key for "the same operation": the matched template, else the path with
    id-like segments (digits, ``~``, comma lists) replaced by ``*``.

    The client remembers the server-reported group under this key.
    """
    m = method.upper()
    if m == "HEAD":
        m = "GET"
    segs = _segments(path)
    for segs_t, _spec, _group in _INDEX.get((m, len(segs)), ()):
        if all(t == "*" or t == s for t, s in zip(segs_t, segs, strict=True)):
            return f"{m} /" + "/".join(segs_t)
    return f"{m} /" + "/".join("*" if _id_like(s) else s for s in segs)


def _id_like(seg: str) -> bool:
    return seg == "~" or all(part.isdigit() or part == "~" for part in seg.split(","))
