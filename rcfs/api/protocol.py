"""What the typed RingCentral calls need of a client: ``ApiClient``.

``rcfs.api.client.RcClient`` is the real one (scheduler, auth, transport); the listing,
sync, upload and report modules are written against this protocol so their tests can pass
a scripted fake, and so they never depend on how the client spends its budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import httpx

from rcfs.api.scheduler import Priority

__all__ = ["ApiClient"]


class ApiClient(Protocol):
    """The part of ``RcClient`` this package's typed calls use (tests pass fakes)."""

    @property
    def platform_url(self) -> str: ...

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Any = None,
        json: Any = None,
        content: bytes | None = None,
        files: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        priority: Priority = Priority.METADATA,
        deadline: float | None = None,
        group: str | None = None,
    ) -> httpx.Response: ...

    async def get_json(
        self,
        url: str,
        *,
        params: Any = None,
        priority: Priority = Priority.METADATA,
        deadline: float | None = None,
    ) -> Any: ...
