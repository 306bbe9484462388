"""The tree the FUSE layer sees, answered from the on-disk index.

Folders come from each mailbox's skeleton in RAM (a few hundred folder names and counts);
files from the index. A listing is one range query that returns only what attributes need
(name, time, size, content key), kept in a small LRU bounded by the number of files it
holds, so ``find`` of 100,000 files never holds them all and never decodes a file's
payload; a single file (lookup, getattr, open, xattrs) is one point query. A refresh drops
exactly the folders it changed.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from rcfs.namespace.entries import Entry
from rcfs.namespace.mailbox import Mailbox
from rcfs.namespace.store import Listed, Store, decode

MAX_CACHED_FILES = 10000
"""Files held in listing tuples (about 800 bytes each with their strings, measured with
tracemalloc at ``--scale 20000``): enough for the folders a desktop has open, while a
``find`` of 100k files re-reads from SQLite (one indexed query per folder) instead of
keeping 24 MB of listings."""
MAX_CACHED_ENTRIES = 1024
"""Decoded single entries (xattrs and all; about 2 KB each)."""


class Subfolder(NamedTuple):
    name: str
    mtime: float
    subfolders: int


class Listing(NamedTuple):
    """A folder's contents, sorted by name: subfolders, then files."""

    folders: list[Subfolder]
    files: list[Listed]


class TreeView:
    def __init__(self, store: Store, max_cached: int = MAX_CACHED_FILES) -> None:
        self.store = store
        self.max_cached = max_cached
        self._lists: OrderedDict[tuple[str, str], list[Listed]] = OrderedDict()
        self._listed = 0
        self._entries: OrderedDict[tuple[str, str, str], Entry | None] = OrderedDict()
        self.queries = 0

    def folder(self, box: Mailbox, name: str, rel: tuple[str, ...]) -> Entry | None:
        """The folder ``rel`` of a mailbox (``()`` = the mailbox itself), or None."""
        key = "/".join(rel)
        kids = box.tree.get(key)
        if kids is None:
            return None
        mtime = max(kids.values(), default=0.0)
        if key in box.dirs:
            mtime = max(mtime, box.dirs[key][1])
        return Entry(name if not rel else rel[-1], mtime, is_dir=True, children=None,
                     extension_id=box.ext.id)

    def node(self, box: Mailbox, name: str, rel: tuple[str, ...]) -> Entry | None:
        found = self.folder(box, name, rel)
        if found is not None or not rel:
            return found
        parent = "/".join(rel[:-1])
        if parent not in box.dirs:
            return None
        key = (box.ext.id, parent, rel[-1])
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        self.queries += 1
        row = self.store.get(box.ext.id, parent, rel[-1])
        entry = decode(rel[-1], row[0], row[1], box.ext.id, row[2]) if row else None
        self._entries[key] = entry
        if len(self._entries) > MAX_CACHED_ENTRIES:
            self._entries.popitem(last=False)
        return entry

    def listing(self, box: Mailbox, rel: tuple[str, ...]) -> Listing:
        key = "/".join(rel)
        folders = [Subfolder(sub, mtime, len(box.tree.get(f"{key}/{sub}" if key else sub, {})))
                   for sub, mtime in sorted(box.tree.get(key, {}).items())]
        files = self._files(box.ext.id, key) if key in box.dirs else []
        return Listing(folders, files)

    def children(self, box: Mailbox, rel: tuple[str, ...]) -> dict[str, Entry]:
        """Name -> decoded entry of every subfolder and file (for callers that need the
        payloads; listings use ``listing``)."""
        out: dict[str, Entry] = {}
        listing = self.listing(box, rel)
        for sub in listing.folders:
            found = self.folder(box, "", (*rel, sub.name))
            if found is not None:
                out[sub.name] = found
        for name, *_rest in listing.files:
            entry = self.node(box, "", (*rel, name))
            if entry is not None:
                out[name] = entry
        return out

    def subfolders(self, box: Mailbox, rel: tuple[str, ...]) -> int:
        return len(box.tree.get("/".join(rel), {}))

    def _files(self, ext_id: str, folder: str) -> list[Listed]:
        cache_key = (ext_id, folder)
        listing = self._lists.get(cache_key)
        if listing is not None:
            self._lists.move_to_end(cache_key)
            return listing
        self.queries += 1
        listing = self.store.listing(ext_id, folder)
        self._lists[cache_key] = listing
        self._listed += len(listing)
        while self._listed > self.max_cached and len(self._lists) > 1:
            _, dropped = self._lists.popitem(last=False)
            self._listed -= len(dropped)
        return listing

    def invalidate(self, ext_id: str, folders: list[str] | None = None) -> None:
        """Drop cached listings and entries of a mailbox (all, or the folders a write
        changed)."""
        for k in [k for k in self._lists
                  if k[0] == ext_id and (folders is None or k[1] in folders)]:
            self._listed -= len(self._lists.pop(k))
        for e in [e for e in self._entries
                  if e[0] == ext_id and (folders is None or e[1] in folders)]:
            del self._entries[e]
