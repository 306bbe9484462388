"""The tree rcfs shows, as plain data: what the FUSE layer turns into inodes.

An ``Entry`` is a directory (``children``) or a file whose bytes are either inline
(``data``: SMS text, status files) or remote (``content``: a ``ContentRef`` the content
engine downloads and caches; its key is content-addressed, so the cache survives
remounts). Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rcfs.content.source import ContentRef

__all__ = ["ContentRef", "Entry"]


@dataclass
class Entry:
    name: str
    mtime: float
    is_dir: bool = False
    children: dict[str, Entry] | None = None
    content: ContentRef | None = None
    data: bytes | None = None
    xattrs: dict[str, str] = field(default_factory=dict)
    writable: bool = False
    local_path: str | None = None  # bytes in a local file (the outbox spool)
    local_size: int | None = None
    message_id: str | None = None  # for setxattr read_status / unlink
    extension_id: str | None = None
    live: bool = False  # bytes may change under the same name (Calls CSVs): no long caching
    siblings: tuple[tuple[str, str | None], ...] = ()
    """(attachment id, fileName) of every attachment of the message this file came from
    (the bulk path matches export-archive members by them)."""

    @classmethod
    def directory(cls, name: str, mtime: float = 0.0, writable: bool = False) -> Entry:
        return cls(name, mtime, is_dir=True, children={}, writable=writable)

    @property
    def size(self) -> int | None:
        if self.is_dir:
            return 0
        if self.data is not None:
            return len(self.data)
        if self.local_path is not None:
            return self.local_size
        return self.content.size if self.content is not None else 0

    def add(self, child: Entry) -> Entry:
        assert self.children is not None
        self.children[child.name] = child
        if child.mtime > self.mtime:
            self.mtime = child.mtime
        return child

    def subdir(self, name: str) -> Entry:
        """The child directory ``name``, created on first use."""
        assert self.children is not None
        found = self.children.get(name)
        if found is None:
            found = self.add(Entry.directory(name))
        return found

    def walk(self, path: tuple[str, ...]) -> Entry | None:
        node: Entry | None = self
        for part in path:
            if node is None or node.children is None:
                return None
            node = node.children.get(part)
        return node
