"""pyfuse3 ``Operations`` for rcfs: the mailbox tree, and the outbox delegated to ``OutboxFs``.

Every handler answers from memory when the namespace index knows the answer; the only
waits are a bounded first load of an extension never seen before and content reads, which
carry a deadline. No exception escapes a handler: ``_guard`` maps domain errors through
``errors.ERRNO_TABLE`` and turns anything unexpected into EIO with a logged traceback.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import stat
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import pyfuse3
import trio

from rcfs.api.errors import RcError
from rcfs.api.scheduler import TENANT
from rcfs.content.reader import ContentReader
from rcfs.content.sizes import SizeEstimator
from rcfs.content.source import ContentRef
from rcfs.fs.errors import fuse_error
from rcfs.fs.inodes import ROOT, InodeTable, Path
from rcfs.fs.readers import Reader, ReaderClass, ReaderClassifier
from rcfs.fs.thumbnails import ThumbnailPolicy
from rcfs.fs.waits import WaitWatch
from rcfs.namespace.calls_csv import CALLS
from rcfs.namespace.entries import Entry
from rcfs.namespace.index import MetadataIndex
from rcfs.namespace.plugins import FsPlugin
from rcfs.namespace.store import Listed
from rcfs.namespace.tree import Subfolder
from rcfs.outbox.protocol import OutboxFs, Rel
from rcfs.refusal import Refused

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

FILE_TIMEOUT = 3600.0  # content files are immutable
DIR_TIMEOUT = 5.0  # listings change: keep the kernel's view short-lived
UNKNOWN_SIZE_TIMEOUT = 1.0
IO_SIZE = 1 << 20
"""st_blksize: cp, cat and rsync size their reads by it (coreutils: at least 128 KiB). A
first open that runs with direct I/O (size unknown until then) makes one FUSE request per
read, so 1 MiB reads (the largest FUSE request, the cache's block) mean 8x fewer round trips."""
ATTR_CACHE = 4096
"""Attributes kept per inode (LRU): a listing served again builds nothing, yet a find of
100,000 files does not keep 100,000 of them."""
NEGATIVE_TIMEOUT = 600.0
OUTBOX_TIMEOUT = 1.0
"""Outbox entries are live (files move to Sent/, status files appear and change): a short
timeout, and the outbox's change notifications invalidate the ones the kernel knows."""
CONTROL_DIR = ".rcfs"
OUTBOX = "Outbox"
STATUS_FILE = "status.json"

# Names desktops and tools probe in every folder; answered locally with a negative entry.
PROBE_NAMES = frozenset({
    ".hidden", ".directory", "desktop.ini", "Desktop.ini", "Thumbs.db", "thumbs.db",
    ".DS_Store", "autorun.inf", "AUTORUN.INF", ".xdg-volume-info", ".localized",
    "folder.jpg", "Folder.jpg", "folder.png", "cover.jpg", "Cover.jpg", ".git", ".svn",
    ".hg", "@eaDir", ".Trash", ".comment", ".metadata_never_index", "lost+found",
    ".Spotlight-V100", ".fseventsd", ".TemporaryItems", "AlbumArtSmall.jpg",
})
PROBE_PREFIXES = (".Trash-", "._", ".goutputstream-")


def _guard(
    what: str,
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Callable[P, Coroutine[Any, Any, R]]]:
    def wrap(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        @functools.wraps(fn)
        async def handler(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await fn(*args, **kwargs)
            except pyfuse3.FUSEError:
                raise
            except (RcError, Refused) as exc:
                raise fuse_error(exc, what) from None
            except Exception:
                log.exception("unexpected error in %s", what)
                raise pyfuse3.FUSEError(errno.EIO) from None
        return handler
    return wrap


@dataclass
class MountOptions:
    uid: int = os.getuid()
    gid: int = os.getgid()
    umask: int = 0o022
    allow_delete: bool = False
    read_timeout: float = 150.0
    """The deadline of one user operation (an open and the reads that follow it): long
    enough by default to ride out a full 60 s window plus a 60 s penalty."""
    thumbnails: str = "always"
    thumbnail_wait: float = 600.0
    mountpoint: str = ""  # for the thumbnail failure records (file:// URIs)


@dataclass
class _Handle:
    entry: Entry
    inode: int
    data: bytes | None  # inline snapshot (texts, status.json)
    outbox: int | None = None  # the outbox's handle of a file opened for writing
    reader: Reader | None = None  # who opened it (content files)
    deadline: float = 0.0  # the open's operation deadline, shared with its first reads


class RcfsOperations(pyfuse3.Operations):
    # No writeback cache: there is nothing to write outside the outbox.
    enable_writeback_cache = False

    def __init__(self, index: MetadataIndex, reader: ContentReader,
                 options: MountOptions | None = None,
                 status: Callable[[], dict[str, Any]] | None = None,
                 outbox: OutboxFs | None = None, plugins: Sequence[FsPlugin] = ()) -> None:
        super().__init__()
        self.outbox = outbox
        self.plugins = list(plugins)
        self.index = index
        self.reader = reader
        self.options = options or MountOptions()
        self.status = status or (dict)
        self.inodes = InodeTable()
        self._handles: dict[int, _Handle] = {}
        # fh -> (folder, sorted names, what each name is: an index listing's tuples, taken
        # at opendir, so readdir continues without querying again; None: resolve by path)
        self._dirs: dict[int, tuple[Path, list[str], list[Any] | None]] = {}
        # inode -> (entry, attributes) for files whose attributes cannot change while the
        # entry stays equal (known size, outside .rcfs and the outbox): listing a big folder
        # again builds nothing. A changed entry compares unequal and misses.
        self._attrs: OrderedDict[int, tuple[Entry, pyfuse3.EntryAttributes]] = OrderedDict()
        self._reported: dict[int, int] = {}  # inode -> the st_size the kernel was last given
        # Content keys read up to their end in this session: a size from a response header
        # may lie (Content-Length larger than the body), so until then opens use direct I/O.
        self._confirmed: set[str] = set()
        self._next_fh = 1
        self.sizes = SizeEstimator()
        self.readers = ReaderClassifier()
        self.waits = WaitWatch()
        self.thumbnails = ThumbnailPolicy(self.options.thumbnails, self.options.mountpoint,
                                          wait_s=self.options.thumbnail_wait)
        self._probing: set[str] = set()  # content keys whose cached size is being looked up
        self._outbox_inodes: dict[str, set[int]] = {}  # folder -> inodes shown in its Outbox
        self._nursery: trio.Nursery | None = None
        self.counters = dict.fromkeys(("lookups", "getattrs", "readdirs", "reads",
                                       "read_bytes", "probe_misses", "getxattrs",
                                       "listxattrs", "forgets", "sizes_learned_at_open",
                                       "interrupted"), 0)
        self.opens_by_class = dict.fromkeys((c.value for c in ReaderClass), 0)

    def bind(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        nursery.start_soon(self.waits.run)
        nursery.start_soon(self._repair_thumbnails)

    async def _repair_thumbnails(self) -> None:
        """Once the tree is loaded: failure records of files now cached go (thumbnails.py)."""
        await trio.sleep(10)
        try:
            await self.thumbnails.repair(self._content_of, self.reader)
        except Exception:  # a convenience for the desktop: never take the mount down
            log.exception("checking failed-thumbnail records")

    async def _thumbnail_retry(self, ref: ContentRef) -> None:
        """A file a thumbnailer failed on was read: once its download has reached the disk,
        the desktop's failure record goes."""
        with trio.move_on_after(120):
            await self.reader.settle(ref)
        try:
            await self.thumbnails.cached(ref, self.reader)
        except Exception:
            log.exception("%s: removing failed-thumbnail records", ref.key)

    def _content_of(self, path: Path) -> ContentRef | None:
        entry = self._resolve(path)
        return entry.content if entry is not None else None

    def readers_status(self) -> dict[str, Any]:
        """Who reads (status.json): opens per class, the requests waiting now."""
        return {"opens_by_class": dict(self.opens_by_class), "waiting": self.waits.waiting(),
                **self.waits.counters, "thumbnails": self.thumbnails.stats()}

    # -- the tree -----------------------------------------------------------------------------

    def _folders(self) -> dict[str, str]:
        return self.index.folders()

    def _root(self) -> Entry:
        root = Entry.directory("", 0.0)
        for name, ext_id in self._folders().items():
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
        """The entry at ``path`` (plugins walk the tree with it: pinning a folder)."""
        return self._resolve(path)

    def children(self, path: Path, entry: Entry) -> dict[str, Entry]:
        """A folder's entries, index folders included (plugins walk folders with it)."""
        return self._children(path, entry)

    def _resolve(self, path: Path) -> Entry | None:
        if not path:
            return self._root()
        if path[0] == CONTROL_DIR:
            return self._root().walk(path)
        extra = self._plugin_roots().get(path[0]) if self.plugins else None
        if extra is not None:
            return extra.walk(path[1:])
        ext_id = self._folders().get(path[0])
        if ext_id is None:
            return None
        if len(path) >= 2 and path[1] == OUTBOX and self.outbox is not None:
            return self.outbox.root(ext_id).walk(path[2:])
        return self.index.node(ext_id, path[1:])

    def _children(self, path: Path, entry: Entry) -> dict[str, Entry]:
        """A folder's entries: index folders (``children is None``) are queried; a
        mailbox folder also shows its Outbox."""
        if entry.children is not None:
            return entry.children
        ext_id = self._ext_of(path)
        if ext_id is None:
            return {}
        kids = self.index.children(ext_id, path[1:])
        if len(path) == 1 and self.outbox is not None:
            kids = {**kids, OUTBOX: self.outbox.root(ext_id)}
        return kids

    def _subfolders(self, path: Path, entry: Entry) -> int:
        if entry.children is not None:
            return sum(1 for c in entry.children.values() if c.is_dir)
        ext_id = self._ext_of(path)
        if ext_id is None:
            return 0
        outbox = 1 if len(path) == 1 and self.outbox is not None else 0
        return self.index.subfolders(ext_id, path[1:]) + outbox

    def _outbox_target(self, path: Path) -> tuple[OutboxFs, str, Rel] | None:
        """(outbox, extension id, path below Outbox) when ``path`` is inside an Outbox."""
        if len(path) < 3 or path[1] != OUTBOX or self.outbox is None:
            return None
        ext_id = self._folders().get(path[0])
        if ext_id is None:
            return None
        return self.outbox, ext_id, path[2:]

    def _ext_of(self, path: Path) -> str | None:
        return self._folders().get(path[0]) if path else None

    async def _ensure(self, path: Path) -> None:
        """First visit of an extension: wait (bounded) for its first load; else refresh in
        the background when stale."""
        ext_id = self._ext_of(path)
        if ext_id is None:
            return
        area = path[1] if len(path) > 1 else None
        await self.index.ensure_loaded(ext_id, area)
        self.index.touch(ext_id, area)

    def _size(self, entry: Entry) -> int | None:
        """The exact size, or None while only an estimate is known."""
        if entry.data is not None or entry.is_dir or entry.local_path is not None:
            return entry.size
        if entry.content is None:
            return 0
        return self.reader.known_size(entry.content)

    def _shown_size(self, entry: Entry) -> int:
        """What stat shows: the exact size, else a plausible estimate (never 0 for content
        that is not known to be empty: GIO types a 0-byte file as text/plain)."""
        size = self._size(entry)
        if size is not None or entry.content is None:
            return size or 0
        duration, pages = _duration_pages(entry)
        return self.sizes.estimate(entry.content.content_type, duration, pages)

    async def _size_from_cache(self, entry: Entry) -> None:
        """A size learned by a download of an earlier session survives in the content cache:
        look it up once (no request), so listings after a remount show the exact size (rsync
        compares sizes) instead of an estimate."""
        if not entry.is_dir and entry.content is not None:
            size = await self.reader.probe_size(entry.content)
            if size is not None and entry.content.size is None:
                self.index.record_size(entry.content.key, size)

    def _attr(self, inode: int, entry: Entry, path: Path) -> pyfuse3.EntryAttributes:
        cached = self._attrs.get(inode)
        if cached is not None and cached[0] == entry:
            self._attrs.move_to_end(inode)
            return cached[1]
        attr = pyfuse3.EntryAttributes()
        attr.st_ino = inode
        attr.generation = 0
        mtime_ns = int(entry.mtime * 1e9)
        attr.st_mtime_ns = attr.st_ctime_ns = attr.st_atime_ns = mtime_ns
        attr.st_uid = self.options.uid
        attr.st_gid = self.options.gid
        attr.st_blksize = IO_SIZE
        if entry.is_dir:
            perm = 0o755 if entry.writable else 0o555
            attr.st_mode = stat.S_IFDIR | (perm & ~self.options.umask)
            attr.st_nlink = 2 + self._subfolders(path, entry)
            attr.st_size = 0
            attr.entry_timeout = attr.attr_timeout = DIR_TIMEOUT
        else:
            perm = 0o644 if entry.writable else 0o444
            attr.st_mode = stat.S_IFREG | (perm & ~self.options.umask)
            attr.st_nlink = 1
            size = self._size(entry)
            if path == (CONTROL_DIR, STATUS_FILE):
                size = len(self._status_bytes())
            attr.st_size = size if size is not None else self._shown_size(entry)
            self._reported[inode] = attr.st_size
            attr.st_blocks = (attr.st_size + 511) // 512
            known = size is not None and path[:1] != (CONTROL_DIR,) and not entry.live
            attr.entry_timeout = FILE_TIMEOUT if known else UNKNOWN_SIZE_TIMEOUT
            attr.attr_timeout = FILE_TIMEOUT if known else UNKNOWN_SIZE_TIMEOUT
        if path[1:2] == (OUTBOX,):
            attr.entry_timeout = attr.attr_timeout = OUTBOX_TIMEOUT
            self._outbox_inodes.setdefault(path[0], set()).add(inode)
        elif not entry.is_dir and attr.attr_timeout == FILE_TIMEOUT:
            self._attrs[inode] = (entry, attr)
            if len(self._attrs) > ATTR_CACHE:
                self._attrs.popitem(last=False)
        return attr

    def _listed_attr(self, inode: int, item: Subfolder | Listed,
                     live: bool = False) -> pyfuse3.EntryAttributes:
        """Attributes of one item of an index listing (a folder, or an immutable message
        file), without decoding the file's payload: what makes ``find`` fast. ``live``:
        a file whose bytes change under its name (a Calls CSV) keeps short timeouts."""
        attr = pyfuse3.EntryAttributes()
        attr.st_ino = inode
        attr.generation = 0
        mtime_ns = int(item[1] * 1e9)
        attr.st_mtime_ns = attr.st_ctime_ns = attr.st_atime_ns = mtime_ns
        attr.st_uid = self.options.uid
        attr.st_gid = self.options.gid
        attr.st_blksize = IO_SIZE
        if isinstance(item, Subfolder):
            attr.st_mode = stat.S_IFDIR | (0o555 & ~self.options.umask)
            attr.st_nlink = 2 + item.subfolders
            attr.entry_timeout = attr.attr_timeout = DIR_TIMEOUT
            return attr
        _name, _mtime, size, key, ctype, duration, pages = item
        if size is None and key is not None:
            size = self.reader.known_size_of(key)
        attr.st_mode = stat.S_IFREG | (0o444 & ~self.options.umask)
        attr.st_nlink = 1
        attr.st_size = size if size is not None else self.sizes.estimate(ctype, duration,
                                                                           pages)
        self._reported[inode] = attr.st_size  # readdirplus gives it to the kernel
        attr.st_blocks = (attr.st_size + 511) // 512
        attr.entry_timeout = attr.attr_timeout = (
            FILE_TIMEOUT if size is not None and not live else UNKNOWN_SIZE_TIMEOUT)
        return attr

    def _probe_sizes(self, folder: Path, files: list[Listed]) -> None:
        """Sizes learned by downloads of an earlier session survive in the content cache:
        look them up in the background (no request), never while a listing waits, and
        refresh the attributes of the files whose size turned up."""
        if self.reader.cache.used == 0 or self._nursery is None:
            return  # nothing downloaded yet (a first mount): nothing to find
        names = [f[0] for f in files if f[2] is None and f[3] is not None
                 and f[3] not in self._probing and self.reader.known_size_of(f[3]) is None]
        if not names:
            return
        self._probing.update(f[3] for f in files if f[0] in set(names) and f[3])
        self._nursery.start_soon(self._probe_files, folder, names)

    async def _probe_files(self, folder: Path, names: list[str]) -> None:
        for name in names:
            path = (*folder, name)
            try:
                entry = self._resolve(path)
                if entry is None or entry.content is None:
                    continue
                size = await self.reader.probe_size(entry.content)
            except Exception as exc:  # a background nicety: never worth a crash
                log.debug("size probe of %s: %s", "/".join(path), exc)
                return
            if size is not None:
                self.index.record_size(entry.content.key, size)
                inode = self.inodes.known(path)
                if inode is not None:
                    self._invalidate_attr(inode)

    def _path_of(self, inode: int) -> Path:
        path = self.inodes.path(inode)
        if path is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return path

    def _entry_of(self, inode: int) -> tuple[Path, Entry]:
        path = self._path_of(inode)
        entry = self._resolve(path)
        if entry is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return path, entry

    def _status_bytes(self) -> bytes:
        return (json.dumps(self.status(), indent=2, sort_keys=True, default=str) + "\n").encode()

    # -- lookups and attributes ---------------------------------------------------------------

    @_guard("lookup")
    async def lookup(self, parent_inode: int, name: bytes,
                     ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        self.counters["lookups"] += 1
        text = os.fsdecode(name)
        if text in PROBE_NAMES or text.startswith(PROBE_PREFIXES):
            self.counters["probe_misses"] += 1
            neg = pyfuse3.EntryAttributes()
            neg.st_ino = 0
            neg.entry_timeout = NEGATIVE_TIMEOUT
            return neg
        parent = self._path_of(parent_inode)
        if text == ".":
            path = parent
        elif text == "..":
            path = parent[:-1]
        else:
            path = (*parent, text)
        if len(path) >= 1:
            await self._ensure(path)
        entry = self._resolve(path)
        if entry is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        await self._size_from_cache(entry)
        inode = self.inodes.inode(path)
        self.inodes.looked_up(inode)
        return self._attr(inode, entry, path)

    @_guard("getattr")
    async def getattr(self, inode: int,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        self.counters["getattrs"] += 1
        path, entry = self._entry_of(inode)
        await self._size_from_cache(entry)
        return self._attr(inode, entry, path)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        # Not guarded by _guard (forget has no reply), so nothing here may raise.
        for inode, n in inode_list:
            self.counters["forgets"] += 1
            if not self.inodes.forget(inode, n):
                continue
            self._reported.pop(inode, None)  # the kernel dropped its attributes
            path = self.inodes.path(inode)
            try:
                gone = path is not None and self._resolve(path) is None
            except Exception:
                log.exception("forget of inode %d (%s)", inode, path)
                continue
            if gone:  # (an open file holds a kernel reference: it is never forgotten)
                self.inodes.drop(inode)
                self._attrs.pop(inode, None)

    # -- directories --------------------------------------------------------------------------

    @_guard("opendir")
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        path = self._path_of(inode)
        await self._ensure(path)
        entry = self._resolve(path)
        if entry is None or not entry.is_dir:
            raise pyfuse3.FUSEError(errno.ENOTDIR if entry else errno.ENOENT)
        fh = self._new_fh()
        ext_id = self._ext_of(path)
        listing = (self.index.listing(ext_id, path[1:])
                   if ext_id is not None and entry.children is None else None)
        if listing is None:
            children = self._children(path, entry)
            for child in children.values():
                await self._size_from_cache(child)
            self._dirs[fh] = (path, sorted(children), None)
            return fh
        items: dict[str, Any] = {sub.name: sub for sub in listing.folders}
        items.update((f[0], f) for f in listing.files)
        if len(path) == 1 and self.outbox is not None:
            items[OUTBOX] = None  # resolved by path
        names = sorted(items)
        self._dirs[fh] = (path, names, [items[n] for n in names])
        self._probe_sizes(path, listing.files)
        return fh

    @_guard("readdir")
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        self.counters["readdirs"] += 1
        listing = self._dirs.get(fh)
        if listing is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        folder, names, items = listing
        children: dict[str, Entry] = {}
        if items is None and folder:
            # One walk for the folder, not one per child. The root is the exception: an
            # extension folder resolved alone also shows its Outbox.
            parent = self._resolve(folder)
            children = self._children(folder, parent) if parent is not None else {}
        for i in range(start_id, len(names)):
            name = names[i]
            path = (*folder, name)
            item = items[i] if items is not None else None
            if item is not None:
                inode = self.inodes.inode(path)
                attr = self._listed_attr(inode, item, live=folder[1:2] == (CALLS,))
            else:
                entry = children.get(name) if children else self._resolve(path)
                if entry is None:
                    continue  # vanished since opendir
                inode = self.inodes.inode(path)
                attr = self._attr(inode, entry, path)
            if not pyfuse3.readdir_reply(token, os.fsencode(name), attr, i + 1):
                return
            self.inodes.looked_up(inode)

    async def releasedir(self, fh: int) -> None:
        self._dirs.pop(fh, None)

    # -- files --------------------------------------------------------------------------------

    def _new_fh(self) -> int:
        fh = self._next_fh
        self._next_fh += 1
        return fh

    @_guard("open")
    async def open(self, inode: int, flags: int,
                   ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        path, entry = self._entry_of(inode)
        if entry.is_dir:
            raise pyfuse3.FUSEError(errno.EISDIR)
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            target = self._outbox_target(path)
            if target is None or not entry.writable:
                log.info("refused write open of %s: read-only outside the outbox",
                         "/".join(path))
                raise pyfuse3.FUSEError(errno.EROFS)
            outbox, ext_id, rel = target
            oh = await outbox.open_write(ext_id, rel, bool(flags & os.O_TRUNC))
            fh = self._new_fh()
            self._handles[fh] = _Handle(entry, inode, None, outbox=oh)
            info = pyfuse3.FileInfo(fh=fh)
            info.direct_io = True
            return info
        data = entry.data
        if path == (CONTROL_DIR, STATUS_FILE):
            data = self._status_bytes()
        learned = False
        who: Reader | None = None
        deadline = 0.0
        if entry.content is not None:
            ref = entry.content
            who = self.readers.classify(ctx.pid, ref.key)
            self.opens_by_class[who.cls.value] += 1
            deadline = trio.current_time() + self._timeout(who)
            await self.thumbnails.admit(who, ref, path, self.reader)
            if await self.reader.probe_size(ref) is None:
                await self._learn_size(inode, entry, who, path, deadline)
                learned = True
        fh = self._new_fh()
        self._handles[fh] = _Handle(entry, inode, data, reader=who, deadline=deadline)
        if entry.content is not None:
            self.reader.cache.hold(entry.content.key)
        info = pyfuse3.FileInfo(fh=fh)
        # Immutable content keeps the page cache across opens; a live file (status.json,
        # the outbox's status files, the Calls/ CSVs) needs direct I/O so reads never see
        # an older version.
        # A size learned just now may still be stale in the kernel's attribute cache (an
        # estimate), which would clamp page-cache reads: this one open uses direct I/O, so
        # reads run to the true end of file; later opens use the page cache.
        live = path[:1] == (CONTROL_DIR,) or path[1:2] == (OUTBOX,) or entry.live
        # So may one given to the kernel before another open learned the size: the page
        # cache only when the kernel's last size is the exact one (else it clamps reads to
        # an estimate: a cp got 148012 of 148128 bytes without an error, in the soak).
        stale = self._reported.get(inode) != self._size(entry) or (
            entry.content is not None and entry.content.size is None
            and entry.content.key not in self._confirmed)
        info.keep_cache = not learned and not live and not stale
        info.direct_io = learned or live or stale
        return info

    def _timeout(self, who: Reader) -> float:
        """The operation deadline: thumbnailers, which only use spare budget, may wait
        longer (a slow read is not a failure for them; an error may be recorded as one)."""
        if who.cls is ReaderClass.BACKGROUND:
            return max(self.options.read_timeout, self.thumbnails.wait_s)
        return self.options.read_timeout

    async def _waiting(self, who: Reader, path: Path, ref: ContentRef,
                       work: Callable[[], Coroutine[Any, Any, R]]) -> R:
        """Run ``work`` (which may wait for budget or bytes) as ``who``'s request: its
        requests are charged to ``who``'s class and fairness key, it ends with EINTR when
        the process is killed or interrupted, and a long wait is logged once."""
        token = TENANT.set(who.tenant)
        try:
            with self.waits.watch(who, "/".join(path),
                                  lambda: self.reader.why_waiting(ref)) as w:
                result = await work()
            if not w.interrupted:
                return result
        except RcError:
            if who.cls is ReaderClass.BACKGROUND:
                self.thumbnails.failed(ref, path)
            raise
        finally:
            TENANT.reset(token)
        self.counters["interrupted"] += 1
        raise pyfuse3.FUSEError(errno.EINTR)

    @_guard("read")
    async def read(self, fh: int, off: int, size: int) -> bytes:
        handle = self._handles.get(fh)
        if handle is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        self.counters["reads"] += 1
        if handle.data is not None:
            return handle.data[off:off + size]
        if handle.entry.local_path is not None:
            return await trio.to_thread.run_sync(_read_local, handle.entry.local_path, off, size)
        ref = handle.entry.content
        if ref is None:
            return b""
        who = handle.reader
        # One deadline per user operation: reads share the open's while it lasts (no second
        # full wait after an open that waited); a read long after gets its own.
        now = trio.current_time()
        deadline = handle.deadline if handle.deadline > now else now + (
            self._timeout(who) if who is not None else self.options.read_timeout)
        if who is None:
            data = await self.reader.read(ref, off, size, deadline=deadline)
        else:
            path = self.inodes.path(handle.inode) or (handle.entry.name,)
            data = await self._waiting(who, path, ref, functools.partial(
                self.reader.read, ref, off, size, deadline=deadline, priority=who.priority))
        self.counters["read_bytes"] += len(data)
        if len(data) < size and off + len(data) == self._size(handle.entry):
            self._confirmed.add(ref.key)  # read to the real end: the size is no guess
        shown = self._reported.get(handle.inode)  # by getattr, lookup or a listing
        if len(data) < size and shown is not None and off + len(data) < shown:
            # Reads end only at the real end: the size shown came from a response that lied
            # (a Content-Length larger than the body). ls -l and the kernel (which would pad
            # the last page with zeros) get the size the reader knows now.
            self._attrs.pop(handle.inode, None)
            self._invalidate_attr(handle.inode)
        return data

    async def _learn_size(self, inode: int, entry: Entry, who: Reader, path: Path,
                          deadline: float) -> None:
        """An open must not return before the exact size is known: ``fstat`` of the open
        file is what ``cp``, ``rsync`` and ``tar`` copy, and readers such as ``pdfinfo`` seek
        to the end first. The first response of the download that the open starts anyway
        tells it (no extra request, no HEAD); if it cannot be known by the operation's
        deadline the open fails with that error (EAGAIN when throttled)."""
        assert entry.content is not None
        ref = entry.content
        size = await self._waiting(who, path, ref, functools.partial(
            self.reader.size, ref, deadline=deadline, priority=who.priority))
        self.counters["sizes_learned_at_open"] += 1
        if ref.size is None:
            self.index.record_size(ref.key, size)  # listings after a remount show it
        duration, pages = _duration_pages(entry)
        self.sizes.observe(ref.content_type, size, duration, pages)
        self._attrs.pop(inode, None)
        # Attributes only (no page locks): safe to wait for from open, in a thread.
        with trio.move_on_after(2):
            await self._invalidate_inode(inode)

    def _invalidate_attr(self, inode: int) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(self._invalidate_inode, inode)

    @staticmethod
    async def _invalidate_inode(inode: int) -> None:
        try:
            await trio.to_thread.run_sync(pyfuse3.invalidate_inode, inode, True,
                                          abandon_on_cancel=True)
        except OSError as exc:
            log.debug("invalidate_inode(%d): %s", inode, exc)

    @_guard("flush")
    async def flush(self, fh: int) -> None:
        handle = self._handles.get(fh)
        if handle is not None and handle.outbox is not None and self.outbox is not None:
            await self.outbox.flush(handle.outbox)

    @_guard("fsync")
    async def fsync(self, fh: int, datasync: bool) -> None:
        await self.flush(fh)

    @_guard("release")
    async def release(self, fh: int) -> None:
        handle = self._handles.pop(fh, None)
        if handle is None:
            return
        if handle.outbox is not None and self.outbox is not None:
            await self.outbox.release(handle.outbox)
        elif handle.entry.content is not None:
            self.reader.cache.release(handle.entry.content.key)
            ref = handle.entry.content
            if self.thumbnails.waiting_for(ref.key) and self._nursery is not None:
                self._nursery.start_soon(self._thumbnail_retry, ref)

    # -- extended attributes ------------------------------------------------------------------

    @_guard("getxattr")
    async def getxattr(self, inode: int, name: bytes,
                       ctx: pyfuse3.RequestContext) -> bytes:
        self.counters["getxattrs"] += 1
        if not name.startswith(b"user."):
            # security.*, system.* (POSIX ACLs), trusted.*: namespaces rcfs does not support.
            # EOPNOTSUPP rather than ENODATA because tools cache it per file system: `ls -l`
            # (coreutils) then stops asking for the SELinux label and the ACL of every file,
            # two FUSE round trips per entry that the kernel never caches.
            raise pyfuse3.FUSEError(errno.EOPNOTSUPP)
        text = os.fsdecode(name)
        path, entry = self._entry_of(inode)
        for plugin in self.plugins:
            found = await plugin.getxattr(path, entry, text)
            if found is not None:
                return found.encode()
        value = entry.xattrs.get(text)
        if value is None:
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
        return value.encode()

    @_guard("listxattr")
    async def listxattr(self, inode: int,
                        ctx: pyfuse3.RequestContext) -> list[bytes]:
        self.counters["listxattrs"] += 1
        path, entry = self._entry_of(inode)
        names = set(entry.xattrs)
        for plugin in self.plugins:
            names.update(plugin.xattr_names(path, entry))
        return [k.encode() for k in sorted(names)]

    @_guard("setxattr")
    async def setxattr(self, inode: int, name: bytes, value: bytes,
                       ctx: pyfuse3.RequestContext) -> None:
        if not name.startswith(b"user."):
            raise pyfuse3.FUSEError(errno.EOPNOTSUPP)  # as getxattr: one answer per namespace
        path, entry = self._entry_of(inode)
        text = os.fsdecode(name)
        target = self._outbox_target(path)
        if target is not None:
            outbox, ext_id, rel = target
            await outbox.setxattr(ext_id, rel, text, value)
            return
        for plugin in self.plugins:
            if await plugin.setxattr(path, entry, text, value):
                return
        if text != "user.rc.read_status" or entry.message_id is None:
            raise pyfuse3.FUSEError(errno.ENOTSUP)
        wanted = value.decode(errors="replace").strip()
        if wanted not in ("Read", "Unread"):
            log.info("setxattr user.rc.read_status on %s: %r is not Read or Unread",
                     "/".join(path), wanted)
            raise pyfuse3.FUSEError(errno.EINVAL)
        assert entry.extension_id is not None
        await self.index.set_read_status(entry.extension_id, entry.message_id, wanted)

    @_guard("removexattr")
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        if not name.startswith(b"user."):
            raise pyfuse3.FUSEError(errno.EOPNOTSUPP)
        path, entry = self._entry_of(inode)
        for plugin in self.plugins:
            if await plugin.removexattr(path, entry, os.fsdecode(name)):
                return
        raise pyfuse3.FUSEError(errno.EROFS)

    # -- writes (read-only outside the outbox) ------------------------------------------------

    @_guard("unlink")
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        path = (*self._path_of(parent_inode), os.fsdecode(name))
        target = self._outbox_target(path)
        if target is not None:
            outbox, ext_id, rel = target
            await outbox.unlink(ext_id, rel)
            return
        entry = self._resolve(path)
        if entry is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        if not self.options.allow_delete or entry.message_id is None:
            raise pyfuse3.FUSEError(errno.EROFS)
        assert entry.extension_id is not None
        await self.index.delete_message(entry.extension_id, entry.message_id)
        parent_ino = self.inodes.known(path[:-1])
        if parent_ino is not None:
            self._forget_entry(parent_ino, path[-1])

    def _require_outbox(self, path: Path) -> tuple[OutboxFs, str, Rel]:
        target = self._outbox_target(path)
        if target is None:
            raise pyfuse3.FUSEError(errno.EROFS)
        return target

    def _new_entry_attr(self, path: Path) -> pyfuse3.EntryAttributes:
        entry = self._resolve(path)
        if entry is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        inode = self.inodes.inode(path)
        self.inodes.looked_up(inode)
        return self._attr(inode, entry, path)

    @_guard("mkdir")
    async def mkdir(self, parent_inode: int, name: bytes, mode: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        path = (*self._path_of(parent_inode), os.fsdecode(name))
        outbox, ext_id, rel = self._require_outbox(path)
        await outbox.mkdir(ext_id, rel)
        return self._new_entry_attr(path)

    @_guard("rmdir")
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        path = (*self._path_of(parent_inode), os.fsdecode(name))
        outbox, ext_id, rel = self._require_outbox(path)
        await outbox.rmdir(ext_id, rel)

    @_guard("create")
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: pyfuse3.RequestContext
                     ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        path = (*self._path_of(parent_inode), os.fsdecode(name))
        outbox, ext_id, rel = self._require_outbox(path)
        oh = await outbox.create(ext_id, rel)
        attr = self._new_entry_attr(path)
        entry = self._resolve(path)
        assert entry is not None
        fh = self._new_fh()
        self._handles[fh] = _Handle(entry, attr.st_ino, None, outbox=oh)
        info = pyfuse3.FileInfo(fh=fh)
        info.direct_io = True
        return info, attr

    @_guard("write")
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        handle = self._handles.get(fh)
        if handle is None or handle.outbox is None or self.outbox is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        return await self.outbox.write(handle.outbox, off, buf)

    @_guard("rename")
    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int,
                     name_new: bytes, flags: int, ctx: pyfuse3.RequestContext) -> None:
        old = (*self._path_of(parent_inode_old), os.fsdecode(name_old))
        new = (*self._path_of(parent_inode_new), os.fsdecode(name_new))
        outbox, ext_id, rel_old = self._require_outbox(old)
        target = self._require_outbox(new)  # out of Outbox/: read-only there, EROFS
        if target[1] != ext_id:
            raise pyfuse3.FUSEError(errno.EXDEV)  # another mailbox's outbox
        await outbox.rename(ext_id, rel_old, target[2])
        self.inodes.rename(old, new)

    @_guard("setattr")
    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes,
                      fields: pyfuse3.SetattrFields, fh: int | None,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        path, entry = self._entry_of(inode)
        target = self._outbox_target(path)
        if target is None or not entry.writable:
            raise pyfuse3.FUSEError(errno.EROFS)
        if fields.update_size:
            outbox, ext_id, rel = target
            handle = self._handles.get(fh) if fh is not None else None
            await outbox.truncate(handle.outbox if handle else None, ext_id, rel, attr.st_size)
        # mode/owner/times of outbox files are accepted and ignored (cp -p, rsync -a).
        _, entry = self._entry_of(inode)
        return self._attr(inode, entry, path)

    async def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise pyfuse3.FUSEError(errno.EROFS)

    symlink = link = mknod = _refuse

    # -- filesystem ---------------------------------------------------------------------------

    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        st = pyfuse3.StatvfsData()
        st.f_bsize = st.f_frsize = 4096
        used = self.reader.cache.used
        st.f_blocks = max(1, used // 4096)
        st.f_bfree = st.f_bavail = 0
        st.f_files = len(self.inodes)
        st.f_ffree = st.f_favail = 0
        st.f_namemax = 255
        return st

    # -- freshness ----------------------------------------------------------------------------

    def tree_changed(self, ext_id: str, removed: list[Path], folders: list[Path]) -> None:
        """Index callback: files that left the tree leave the kernel's cache; folders whose
        listing changed get fresh attributes (mtime, link count) at once."""
        if ext_id not in self.index.states:
            return
        top = self.index.folder_name(ext_id)
        for rel in removed:
            parent_ino = self.inodes.known((top, *rel[:-1]))
            if parent_ino is not None:
                self._forget_entry(parent_ino, rel[-1])
        for rel in folders:
            for depth in range(len(rel) + 1):
                ino = self.inodes.known((top, *rel[:depth]))
                if ino is not None:
                    self._invalidate_attr(ino)

    def outbox_changed(self, ext_id: str | None) -> None:
        """The outbox changed behind the kernel's back (a job's state, a status file, a
        move to Sent/): drop the attributes the kernel holds for that Outbox's entries."""
        folders = self._folders()
        names = list(self._outbox_inodes) if ext_id is None else [
            name for name, ext in folders.items() if ext == ext_id]
        for name in names:
            inodes = self._outbox_inodes.get(name, set())
            for inode in list(inodes):
                if self.inodes.path(inode) is None:
                    inodes.discard(inode)  # dropped after the kernel forgot it
                else:
                    self._invalidate_attr(inode)

    def forget_path(self, path: Path) -> None:
        """A path that vanished outside a FUSE request (an outbox job moved to Sent/)."""
        parent_ino = self.inodes.known(path[:-1])
        if parent_ino is not None:
            self._forget_entry(parent_ino, path[-1])

    def _forget_entry(self, parent_ino: int, name: str) -> None:
        try:
            pyfuse3.invalidate_entry_async(parent_ino, os.fsencode(name), ignore_enoent=True)
        except (OSError, RuntimeError) as exc:  # not mounted (fs-API tests)
            log.debug("invalidate_entry(%d, %s): %s", parent_ino, name, exc)


def _duration_pages(entry: Entry) -> tuple[float | None, int | None]:
    """Duration (s) and page count from the entry's attributes, for size estimates."""
    def number(key: str) -> float | None:
        try:
            return float(entry.xattrs.get(key) or "")
        except ValueError:
            return None

    pages = number("user.rc.pages")
    return number("user.rc.duration"), int(pages) if pages is not None else None


def _read_local(path: str, off: int, size: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(off)
        return fh.read(size)


__all__ = ["ROOT", "MountOptions", "RcfsOperations"]
