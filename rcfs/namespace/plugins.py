"""The narrow interface through which features beside the mailbox tree reach the FUSE layer.

``Exports/`` (a root folder), pinning (``user.rc.pin`` / ``user.rc.cached`` on any entry)
and such plug into the namespace view (``rcfs.namespace.view``), and through it the FUSE
layer, as ``FsPlugin`` instead of growing its path resolution: a plugin may add root
folders and answer extended attributes, and raises ``PluginError`` with what is wrong with
a refused request (``rcfs.refusal``).
"""

from __future__ import annotations

from typing import Protocol

from rcfs.namespace.entries import Entry
from rcfs.refusal import Refused

Path = tuple[str, ...]

__all__ = ["FsPlugin", "Path", "PluginError"]


class PluginError(Refused):
    """A request a plugin refuses; the kind's errno goes to the caller, the message to the
    log."""


class FsPlugin(Protocol):
    def roots(self) -> dict[str, Entry]:
        """Extra folders at the mount root (name -> tree); empty when not available."""
        ...

    async def getxattr(self, path: Path, entry: Entry, name: str) -> str | None:
        """The value of ``name`` on ``path``, or None when this plugin has no such xattr."""
        ...

    def xattr_names(self, path: Path, entry: Entry) -> list[str]:
        ...

    async def setxattr(self, path: Path, entry: Entry, name: str, value: bytes) -> bool:
        """True when handled (raise ``PluginError`` to refuse)."""
        ...

    async def removexattr(self, path: Path, entry: Entry, name: str) -> bool:
        ...
