"""The whole tree a mount shows, path by path: what the FUSE layer resolves inodes against.

The metadata index holds the mailbox folders; around them the view adds the synthetic
parts: ``.rcfs/status.json`` at the root, each mailbox's ``Outbox`` (the outbox's own tree),
the root folders of plugins (``Exports/``), and the names desktops probe in every folder
(answered as absent without a lookup). It also says what size each file shows (exact, or
the content reader's estimate) and makes the changes users may make to messages (read
status, deletion). Keeping that here lets ``RcfsOperations`` stay an adapter from entries
to kernel structures, and lets tests resolve paths without a kernel. The mount builds one
view and gives it to the FUSE layer and to the plugins that walk the tree (pinning).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from rcfs.content.reader import ContentReader
from rcfs.content.source import ContentRef
from rcfs.namespace.entries import Entry
from rcfs.namespace.index import MetadataIndex
from rcfs.namespace.plugins import FsPlugin
from rcfs.namespace.store import Listed
from rcfs.refusal import Refusal, Refused

log = logging.getLogger(__name__)

Path = tuple[str, ...]

CONTROL_DIR = ".rcfs"
OUTBOX = "Outbox"
STATUS_FILE = "status.json"
STATUS_PATH: Path = (CONTROL_DIR, STATUS_FILE)
READ_STATUS = "user.rc.read_status"
READ_STATUSES = ("Read", "Unread")

# Names desktops and tools probe in every folder; answered locally with a negative entry.
PROBE_NAMES = frozenset({
    ".hidden", ".directory", "desktop.ini", "Desktop.ini", "Thumbs.db", "thumbs.db",
    ".DS_Store", "autorun.inf", "AUTORUN.INF", ".xdg-volume-info", ".localized",
    "folder.jpg", "Folder.jpg", "folder.png", "cover.jpg", "Cover.jpg", ".git", ".svn",
    ".hg", "@eaDir", ".Trash", ".comment", ".metadata_never_index", "lost+found",
    ".Spotlight-V100", ".fseventsd", ".TemporaryItems", "AlbumArtSmall.jpg",
})
PROBE_PREFIXES = (".Trash-", "._", ".goutputstream-")

__all__ = ["CONTROL_DIR", "OUTBOX", "PROBE_NAMES", "READ_STATUS", "STATUS_FILE",
           "STATUS_PATH", "NamespaceView", "OutboxTree", "is_probe_name"]


class OutboxTree(Protocol):
    """What the view needs of the outbox: the tree it shows. The outbox (``rcfs.outbox``:
    its tree and the operations the FUSE layer calls) sits above the namespace and imports
    it, so the namespace must not import ``rcfs.outbox``; it sees the outbox only through
    this protocol."""

    def root(self, ext_id: str) -> Entry: ...


def is_probe_name(name: str) -> bool:
    """A name desktops look for in every folder and rcfs never has."""
    return name in PROBE_NAMES or name.startswith(PROBE_PREFIXES)


def duration_pages(entry: Entry) -> tuple[float | None, int | None]:
    """Duration (s) and page count from the entry's attributes, for size estimates."""
    def number(key: str) -> float | None:
        try:
            return float(entry.xattrs.get(key) or "")
        except ValueError:
            return None

    pages = number("user.rc.pages")
    return number("user.rc.duration"), int(pages) if pages is not None else None


class NamespaceView:
    """Path resolution over the index, the outbox trees, the plugins and ``.rcfs``."""

    def __init__(self, index: MetadataIndex, reader: ContentReader,
                 outbox: OutboxTree | None = None, plugins: Sequence[FsPlugin] = (),
                 status: Callable[[], dict[str, Any]] | None = None) -> None:
        self.index = index
        self.reader = reader
        self.outbox = outbox
        self.plugins = list(plugins)
        self.status = status or (dict)

    # -- resolution ---------------------------------------------------------------------------

    def folders(self) -> dict[str, str]:
        """Mailbox folder name -> extension id."""
        return self.index.folders()

    def ext_of(self, path: Path) -> str | None:
        return self.folders().get(path[0]) if path else None

    def root(self) -> Entry:
        root = Entry.directory("", 0.0)
        for name, ext_id in self.folders().items():
            node = self.index.node(ext_id, ())
            root.add(node if node is not None else Entry.directory(name))
        control = Entry.directory(CONTROL_DIR)
        control.add(Entry(STATUS_FILE, 0.0, data=b""))
        root.add(control)
        for tree in self._plugin_roots().values():
            root.add(tree)
        return root

    def _plugin_roots(self) -> dict[str, Entry]:
        return {name: tree for p in self.plugins for name, tree in p.roots().items()}

    def resolve(self, path: Path) -> Entry | None:
        """The entry at ``path``, or None when there is none."""
        if not path:
            return self.root()
        if path[0] == CONTROL_DIR:
            return self.root().walk(path)
        extra = self._plugin_roots().get(path[0]) if self.plugins else None
        if extra is not None:
            return extra.walk(path[1:])
        ext_id = self.folders().get(path[0])
        if ext_id is None:
            return None
        if len(path) >= 2 and path[1] == OUTBOX and self.outbox is not None:
            return self.outbox.root(ext_id).walk(path[2:])
        return self.index.node(ext_id, path[1:])

    def children(self, path: Path, entry: Entry) -> dict[str, Entry]:
        """A folder's entries: index folders (``children is None``) are queried; a
        mailbox folder also shows its Outbox."""
        if entry.children is not None:
            return entry.children
        ext_id = self.ext_of(path)
        if ext_id is None:
            return {}
        kids = self.index.children(ext_id, path[1:])
        if len(path) == 1 and self.outbox is not None:
            kids = {**kids, OUTBOX: self.outbox.root(ext_id)}
        return kids

    def subfolders(self, path: Path, entry: Entry) -> int:
        if entry.children is not None:
            return sum(1 for c in entry.children.values() if c.is_dir)
        ext_id = self.ext_of(path)
        if ext_id is None:
            return 0
        outbox = 1 if len(path) == 1 and self.outbox is not None else 0
        return self.index.subfolders(ext_id, path[1:]) + outbox

    def listing(self, path: Path,
                entry: Entry) -> tuple[list[str], list[Any], list[Listed]] | None:
        """An index folder's sorted names and, per name, a folder (``Subfolder``), a file
        (``Listed``: attributes without decoding the message) or None (the Outbox, to
        resolve by path); then its files alone. None for folders outside the index
        (resolve their children)."""
        ext_id = self.ext_of(path)
        if ext_id is None or entry.children is not None:
            return None
        listing = self.index.listing(ext_id, path[1:])
        if listing is None:
            return None
        items: dict[str, Any] = {sub.name: sub for sub in listing.folders}
        items.update((f[0], f) for f in listing.files)
        if len(path) == 1 and self.outbox is not None:
            items[OUTBOX] = None
        names = sorted(items)
        return names, [items[n] for n in names], listing.files

    def outbox_target(self, path: Path) -> tuple[str, Path] | None:
        """(extension id, path below Outbox) when ``path`` is inside an Outbox."""
        if len(path) < 3 or path[1] != OUTBOX or self.outbox is None:
            return None
        ext_id = self.folders().get(path[0])
        if ext_id is None:
            return None
        return ext_id, path[2:]

    @staticmethod
    def in_outbox(path: Path) -> bool:
        """The Outbox folder of a mailbox or anything below it."""
        return path[1:2] == (OUTBOX,)

    @staticmethod
    def is_live(path: Path, entry: Entry) -> bool:
        """Bytes that change under the same name: ``.rcfs``, the outbox, the Calls CSVs."""
        return path[:1] == (CONTROL_DIR,) or path[1:2] == (OUTBOX,) or entry.live

    def folder_of(self, ext_id: str) -> str | None:
        """The folder name of mailbox ``ext_id``; None when the index has no such mailbox."""
        if ext_id not in self.index.states:
            return None
        return self.index.folder_name(ext_id)

    def outbox_path(self, ext_id: str, rel: Path) -> Path | None:
        """Where ``rel`` below mailbox ``ext_id``'s Outbox is in the tree (None: no such
        mailbox)."""
        top = self.folder_of(ext_id)
        return None if top is None else (top, OUTBOX, *rel)

    def outbox_folders(self, ext_id: str | None) -> list[str]:
        """Names of the mailbox folders whose Outbox belongs to ``ext_id`` (all: None)."""
        return [name for name, ext in self.folders().items() if ext_id in (None, ext)]

    async def ensure(self, path: Path) -> None:
        """First visit of an extension: wait (bounded) for its first load; else refresh in
        the background when stale."""
        ext_id = self.ext_of(path)
        if ext_id is None:
            return
        area = path[1] if len(path) > 1 else None
        await self.index.ensure_loaded(ext_id, area)
        self.index.touch(ext_id, area)

    # -- changes to messages -------------------------------------------------------------

    async def delete_message(self, entry: Entry) -> None:
        """Delete the message ``entry`` is a file of (RingCentral's Deleted state)."""
        assert entry.extension_id is not None and entry.message_id is not None
        await self.index.delete_message(entry.extension_id, entry.message_id)

    async def setxattr(self, path: Path, entry: Entry, name: str, value: bytes) -> None:
        """The one attribute the namespace itself lets users write: a message's
        ``user.rc.read_status`` (Read or Unread), written through to RingCentral. Anything
        else is refused (the errno table decides what the caller sees)."""
        where = "/".join(path)
        if name != READ_STATUS or entry.message_id is None:
            raise Refused(Refusal.UNSUPPORTED, f"{where}: {name} cannot be set here")
        wanted = value.decode(errors="replace").strip()
        if wanted not in READ_STATUSES:
            raise Refused(Refusal.INVALID,
                          f"{where}: {READ_STATUS} {wanted!r} is not Read or Unread")
        assert entry.extension_id is not None
        await self.index.set_read_status(entry.extension_id, entry.message_id, wanted)

    def status_bytes(self) -> bytes:
        return (json.dumps(self.status(), indent=2, sort_keys=True, default=str) + "\n").encode()

    def inline_data(self, path: Path, entry: Entry) -> bytes | None:
        """The bytes of a file held in memory (texts, status.json: taken now)."""
        return self.status_bytes() if path == STATUS_PATH else entry.data

    def content_of(self, path: Path) -> ContentRef | None:
        entry = self.resolve(path)
        return entry.content if entry is not None else None

    # -- sizes --------------------------------------------------------------------------------

    def size(self, entry: Entry, path: Path | None = None) -> int | None:
        """The exact size, or None while only an estimate is known."""
        if path == STATUS_PATH:
            return len(self.status_bytes())
        if entry.data is not None or entry.is_dir or entry.local_path is not None:
            return entry.size
        if entry.content is None:
            return 0
        return self.reader.known_size(entry.content)

    def shown_size(self, entry: Entry, path: Path | None = None) -> int:
        """What stat shows: the exact size, else a plausible estimate (never 0 for content
        that is not known to be empty: GIO types a 0-byte file as text/plain)."""
        size = self.size(entry, path)
        if entry.content is None:
            return size or 0
        duration, pages = duration_pages(entry)
        return self._shown(size, entry.content.content_type, duration, pages)

    def listed_size(self, item: Listed) -> tuple[int, bool]:
        """(what stat shows, whether it is the exact size) for a file of an index listing,
        without decoding its message: the listing's size (the API's or a recorded one), else
        one the reader knows, else an estimate, as ``shown_size`` for an entry."""
        _name, _mtime, size, key, content_type, duration, pages = item
        if size is None and key is not None:
            size = self.reader.known_size_of(key)
        return self._shown(size, content_type, duration, pages), size is not None

    def _shown(self, size: int | None, content_type: str | None, duration: float | None,
               pages: int | None) -> int:
        """``size`` when known, else an estimate from the type, duration and page count."""
        if size is not None:
            return size
        return self.reader.sizes.estimate(content_type, duration, pages)

    def size_proven(self, entry: Entry, size: int | None) -> bool:
        """``size`` is ``entry``'s exact size, no guess: for content, the proven size or
        (none proven) the API's; anything else is held whole (in memory, on disk)."""
        if entry.content is None:
            return True
        return self.reader.sizes.proven(entry.content.key, entry.content.size, size)

    async def size_from_cache(self, entry: Entry) -> None:
        """A size learned by a download of an earlier session survives in the content cache:
        look it up once (no request), so listings after a remount show the exact size (rsync
        compares sizes) instead of an estimate."""
        if not entry.is_dir and entry.content is not None:
            await self.reader.probe_size(entry.content)
            self.record_proven(entry.content)

    def learned(self, entry: Entry, size: int) -> None:
        """An exact size the open of ``entry`` learned: listings after a remount show it
        (once proven), and it refines the estimates of files like it."""
        assert entry.content is not None
        self.record_proven(entry.content)
        duration, pages = duration_pages(entry)
        self.reader.sizes.observe(entry.content.content_type, size, duration, pages)

    def record_proven(self, ref: ContentRef) -> None:
        """Persist the size of a file the API gave none for, once it is proven: the index
        shows a recorded size as if the API had given it, so a claim (a Content-Length
        larger than its body) must never get there."""
        size = self.reader.proven_size(ref.key)
        if size is not None and ref.size is None:
            self.index.record_size(ref.key, size)

    def to_probe(self, files: list[Listed]) -> list[str]:
        """Names of listed files whose size an earlier session's download may have left in
        the content cache (none before anything was downloaded); claimed until probed."""
        if self.reader.cache.used == 0:
            return []  # nothing downloaded yet (a first mount): nothing to find
        keys = {f[0]: f[3] for f in files if f[2] is None and f[3] is not None}
        names = self.reader.sizes.claim_probes(keys, self.reader.known_size_of)
        return names

    async def probe(self, folder: Path, names: list[str],
                    found: Callable[[Path], None]) -> None:
        """Look up the cached sizes of ``names`` (no request); ``found`` gets each path
        whose size turned up."""
        for name in names:
            path = (*folder, name)
            try:
                entry = self.resolve(path)
                if entry is None or entry.content is None:
                    continue
                size = await self.reader.probe_size(entry.content)
            except Exception as exc:  # a background nicety: never worth a crash
                log.debug("size probe of %s: %s", "/".join(path), exc)
                return
            if size is not None:
                self.record_proven(entry.content)
                found(path)
