"""The admin's account-level ``Calls/`` at the mount root (an ``FsPlugin``): every
mailbox's calls in one CSV per month, with a ``mailbox`` column (``calls_csv``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo

from rcfs.api.models import CallLogRecord
from rcfs.namespace import calls_csv, layout
from rcfs.namespace.entries import Entry
from rcfs.namespace.index import MetadataIndex
from rcfs.namespace.plugins import Path

__all__ = ["AccountCalls"]


class AccountCalls:
    """Built from the index when first looked at after a change (no request, ever)."""

    def __init__(self, index: MetadataIndex, tz: tzinfo | None,
                 visible: Callable[[], bool]) -> None:
        self.index = index
        self.tz = tz
        self.visible = visible
        self._tree: Entry | None = None

    def changed(self, *_: object) -> None:
        self._tree = None

    def _build(self) -> Entry:
        index = self.index
        folder_of: dict[str, str] = {}
        calls: list[CallLogRecord] = []
        for ext_id in list(index.states):
            folder = index.folder_name(ext_id)
            for call in index.calls(ext_id):
                folder_of[call.id] = folder
                calls.append(call)

        def recording(call: CallLogRecord) -> str | None:
            path = layout.recording_path(call, self.tz, index.recording_type)
            return f"{folder_of[call.id]}/{path}" if path else None

        return calls_csv.account_folder(calls, self.tz, recording,
                                        lambda call: folder_of[call.id])

    def roots(self) -> dict[str, Entry]:
        if not self.visible():
            return {}
        if self._tree is None:
            self._tree = self._build()
        return {calls_csv.CALLS: self._tree}

    async def getxattr(self, path: Path, entry: Entry, name: str) -> str | None:
        return None

    def xattr_names(self, path: Path, entry: Entry) -> list[str]:
        return []

    async def setxattr(self, path: Path, entry: Entry, name: str, value: bytes) -> bool:
        return False

    async def removexattr(self, path: Path, entry: Entry, name: str) -> bool:
        return False
