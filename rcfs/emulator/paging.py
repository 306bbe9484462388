"""RingCentral's paging + navigation envelopes (docs/ringcentral.md §13 E3-E5, G3)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request


def page_uri(base: str, request: Request, page: int, per_page: int,
             extra: dict[str, str] | None = None) -> str:
    """Absolute URI of another page, echoing the caller's filters."""
    items = [(k, v) for k, v in request.query_params.multi_items()
             if k not in ("page", "perPage", "access_token")]
    for k, v in (extra or {}).items():
        if k not in {key for key, _ in items}:
            items.append((k, v))
    items += [("page", str(page)), ("perPage", str(per_page))]
    return f"{base}?{urlencode(items)}"


def page_of(request: Request, base: str, records: list[Any], page: int, per_page: int,
            *, totals: bool = True, extra: dict[str, str] | None = None) -> dict[str, Any]:
    """Slice ``records`` and wrap them; ``totals=False`` is the call-log shape (no totals,
    no lastPage)."""
    total = len(records)
    total_pages = max(1, -(-total // per_page))
    start = (page - 1) * per_page
    chunk = records[start:start + per_page]
    paging: dict[str, Any] = {"perPage": per_page}
    if chunk:
        paging.update(page=page, pageStart=start, pageEnd=start + len(chunk) - 1)
    if totals:
        paging.update(totalPages=total_pages, totalElements=total)
    nav: dict[str, Any] = {"firstPage": {"uri": page_uri(base, request, 1, per_page, extra)}}
    if start + per_page < total:
        nav["nextPage"] = {"uri": page_uri(base, request, page + 1, per_page, extra)}
    if page > 1:
        nav["previousPage"] = {"uri": page_uri(base, request, page - 1, per_page, extra)}
    if totals:
        nav["lastPage"] = {"uri": page_uri(base, request, total_pages, per_page, extra)}
    return {
        "uri": page_uri(base, request, page, per_page, extra),
        "records": chunk,
        "paging": paging,
        "navigation": nav,
    }
