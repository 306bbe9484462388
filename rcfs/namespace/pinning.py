""""Keep offline": pinned folders and files downloaded in the background and never evicted.

``setfattr -n user.rc.pin -v 1 PATH`` (or ``rcfs pin PATH``) pins any folder or file;
``-v 0`` or removing the attribute unpins. Pins are paths, kept in ``<state>/pins.json``,
so they survive remounts and cover whatever a pinned folder holds later: every change of
the tree wakes the pinning loop, which pins the new files' cache keys (exempt from
eviction) and fetches what is missing on spare budget only (PREFETCH priority: interactive
reads always go first).

Before a pin is accepted the cache budget must hold everything pinned (sizes the API or the
cache knows, else the mean of the known ones of that type, else 256 KiB; plus a fixed
overhead per file): otherwise ``setfattr`` fails with ENOSPC and the log says why.

Many uncached message attachments are fetched through an export (``rcfs.content.bulk``)
when the credentials may create reports and ``choose`` says it costs less budget; what the
export does not deliver is fetched per file.

``user.rc.cached`` (none / partial / full) is on every file: a script sees what is offline.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

import trio

from rcfs.content.bulk import BulkExport, BulkItem, choose
from rcfs.content.reader import ContentReader
from rcfs.content.reports import EXPORT_TYPES
from rcfs.content.source import ContentRef
from rcfs.namespace.entries import Entry
from rcfs.namespace.index import MetadataIndex
from rcfs.namespace.plugins import Path, PluginError
from rcfs.refusal import Refusal

log = logging.getLogger(__name__)

__all__ = ["PIN_XATTR", "PinManager"]

PIN_XATTR = "user.rc.pin"
CACHED_XATTR = "user.rc.cached"
UNKNOWN_SIZE = 256 << 10
FILE_OVERHEAD = 8 << 10
"""Cache charge of a small file beyond its bytes (4 KiB pages, rows, its record)."""
IDLE_RECHECK_S = 30.0
SETTLE_S = 1.0
SETTLE_MAX_S = 30.0
"""After a wake-up, wait this long for more pins: ``rcfs pin a b c`` pins one path at a
time, and one batch of all of them may go through one export instead of three."""
RETRY_S = 5.0
PREFETCH_RETRY_S = 0.25


@dataclass
class _Target:
    path: Path
    entry: Entry
    ref: ContentRef


class PinManager:
    """The pinning plugin and its background loop (module docstring)."""

    def __init__(self, reader: ContentReader, index: MetadataIndex, state_file: FsPath, *,
                 rate_of: Callable[[str], float], bulk: BulkExport | None = None,
                 can_export: Callable[[], bool] = lambda: False) -> None:
        self.reader = reader
        self.index = index
        self.state_file = state_file
        self.rate_of = rate_of
        self.bulk = bulk
        self.can_export = can_export
        self.resolve: Callable[[Path], Entry | None] = lambda path: None
        """The entry at a path, and below, a folder's entries: the mount's ``NamespaceView``
        (set once the view, which lists this plugin among its own, is built)."""
        self.children: Callable[[Path, Entry], dict[str, Entry]] = (
            lambda path, entry: entry.children or {})
        """A folder's entries: index folders hold none in memory (``children is None``)."""
        self.pins: set[Path] = set()
        self._cache_pinned: set[str] = set()
        self._done: set[str] = set()
        self._wake = trio.Event()
        self.progress: dict[str, Any] = {"state": "idle"}
        self.requests = 0
        self.last_choice: str | None = None
        self._planned: list[str] = []  # the pins the current round works for

    # -- persistence ---------------------------------------------------------------------

    def load(self) -> None:
        try:
            self.pins = {tuple(p) for p in json.loads(self.state_file.read_text())}
        except FileNotFoundError:
            self.pins = set()
        except (ValueError, TypeError) as exc:
            log.warning("ignoring unreadable %s: %s", self.state_file, exc)

    def _save(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted(list(p) for p in self.pins)))
        os.replace(tmp, self.state_file)

    # -- plugin --------------------------------------------------------------------------

    def roots(self) -> dict[str, Entry]:
        return {}

    def pinned(self, path: Path) -> bool:
        return any(path[:len(p)] == p for p in self.pins)

    async def getxattr(self, path: Path, entry: Entry, name: str) -> str | None:
        if name == PIN_XATTR:
            return "1" if self.pinned(path) else "0"
        if name == CACHED_XATTR and not entry.is_dir:
            return await self.cached_state(entry)
        return None

    def xattr_names(self, path: Path, entry: Entry) -> list[str]:
        # user.rc.pin is listed where set (getxattr answers "0" elsewhere): an unpinned
        # folder lists no attribute, as before pinning existed.
        pin = [PIN_XATTR] if self.pinned(path) else []
        return pin if entry.is_dir else [*pin, CACHED_XATTR]

    async def setxattr(self, path: Path, entry: Entry, name: str, value: bytes) -> bool:
        if name != PIN_XATTR:
            return False
        wanted = value.decode(errors="replace").strip().lower()
        if wanted in ("1", "true", "yes", "on"):
            await self.pin(path)
        elif wanted in ("0", "false", "no", "off", ""):
            self.unpin(path)
        else:
            raise PluginError(Refusal.INVALID, f"{PIN_XATTR} is 1 or 0, not {wanted!r}")
        return True

    async def removexattr(self, path: Path, entry: Entry, name: str) -> bool:
        if name != PIN_XATTR:
            return False
        self.unpin(path)
        return True

    async def cached_state(self, entry: Entry) -> str:
        if entry.content is None:
            return "full"  # inline (texts) or local: no download needed
        info = await self.reader.cached_info(entry.content)
        if info is None or not info.present:
            return "full" if info is not None and info.size == 0 else "none"
        return "full" if info.complete else "partial"

    # -- pin / unpin ---------------------------------------------------------------------

    async def pin(self, path: Path) -> None:
        if self.pinned(path):
            return
        if self.resolve(path) is None:
            raise PluginError(Refusal.NOT_FOUND, f"cannot pin {'/'.join(path)}: not found")
        wanted = {*self.pins, path}
        need = await self._estimate(self._targets(wanted))
        room = self.reader.cache.capacity
        if need > room:
            raise PluginError(Refusal.NO_SPACE, f"cannot pin {'/'.join(path)}: what would be "
                              f"pinned needs about {need / 2**20:.1f} MiB, the cache budget "
                              f"holds {room / 2**20:.1f} MiB (raise cache_size or pin less)")
        self.pins = {p for p in wanted if not any(p != q and p[:len(q)] == q for q in wanted)}
        self._save()
        log.info("pinned %s", "/".join(path))
        self.changed()

    def unpin(self, path: Path) -> None:
        above = [p for p in self.pins if path[:len(p)] == p and p != path]
        if above:
            raise PluginError(Refusal.INVALID, f"{'/'.join(path)} is pinned through "
                              f"{'/'.join(above[0])}: unpin that")
        before = len(self.pins)
        self.pins = {p for p in self.pins if p[:len(path)] != path}
        if len(self.pins) != before:
            self._save()
            log.info("unpinned %s", "/".join(path))
        self.changed()

    def changed(self, *_: object) -> None:
        """The tree or the pins changed: the loop looks again."""
        self._wake.set()

    # -- what is pinned ------------------------------------------------------------------

    def _targets(self, pins: set[Path] | None = None) -> dict[str, _Target]:
        out: dict[str, _Target] = {}
        for pin in sorted(pins if pins is not None else self.pins):
            entry = self.resolve(pin)
            if entry is None:
                continue
            stack: list[tuple[Path, Entry]] = [(pin, entry)]
            while stack:
                path, node = stack.pop()
                if node.is_dir:
                    stack.extend(((*path, name), child)
                                 for name, child in self.children(path, node).items())
                elif node.content is not None and node.local_path is None:
                    out.setdefault(node.content.key, _Target(path, node, node.content))
        return out

    async def _sizes(self, targets: dict[str, _Target]) -> dict[str, int | None]:
        sizes: dict[str, int | None] = {}
        for key, t in targets.items():
            size = self.reader.known_size(t.ref)  # metadata, or learned by a download
            if size is None:
                info = await self.reader.cached_info(t.ref)
                size = info.size if info is not None else None
            sizes[key] = size
        return sizes

    async def _estimate(self, targets: dict[str, _Target]) -> int:
        sizes = await self._sizes(targets)
        by_type: dict[str, list[int]] = {}
        for key, size in sizes.items():
            if size is not None:
                by_type.setdefault(targets[key].ref.content_type or "", []).append(size)
        total = 0
        for key, size in sizes.items():
            if size is None:
                known = by_type.get(targets[key].ref.content_type or "")
                size = sum(known) // len(known) if known else UNKNOWN_SIZE
            total += size + FILE_OVERHEAD
        return total

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        # Keys pinned in the cache by an earlier session: unpinned by the first round when
        # no pin covers them any more (an unpin just before an unmount).
        self._cache_pinned = set(await self.reader.cache.pinned_keys())
        while True:
            self._wake = trio.Event()
            incomplete = True
            try:
                incomplete = await self._round()
            except Exception:
                log.exception("pinning round failed; retrying")
            with trio.move_on_after(RETRY_S if incomplete else IDLE_RECHECK_S):
                await self._wake.wait()
            await self._settle()

    async def _settle(self) -> None:
        """Wait until no pin arrived for ``SETTLE_S`` (at most ``SETTLE_MAX_S``): pins that
        come one by one (``rcfs pin`` of twelve month folders) are planned as one batch,
        so they share one export instead of starting several."""
        with trio.move_on_after(SETTLE_MAX_S):
            while True:
                self._wake = trio.Event()
                with trio.move_on_after(SETTLE_S):
                    await self._wake.wait()
                    continue
                return

    async def _round(self) -> bool:
        """One pass; True when something pinned is still not cached."""
        self._planned = sorted("/".join(p) for p in self.pins)
        targets = self._targets()
        keys = set(targets)
        cache = self.reader.cache
        for key in keys - self._cache_pinned:
            await self.reader.pin(targets[key].ref, True)
        for key in self._cache_pinned - keys:
            await cache.pin(key, False)  # no longer in the tree: no ref, the key will do
            self._done.discard(key)
        self._cache_pinned = keys
        missing = [t for k, t in targets.items() if not await self._complete(k, t)]
        sizes = await self._sizes(targets)
        self._report(targets, sizes, missing, "downloading" if missing else "idle")
        if not missing:
            return False
        missing = await self._bulk(missing, targets, sizes)
        for t in missing:
            if self._wake.is_set() or not await self._fetch(t):
                return True  # pins or the tree changed: plan again
            if await self._complete(t.ref.key, t):
                missing = [m for m in missing if m is not t]
            self._report(targets, await self._sizes(targets), [
                m for m in missing if m.ref.key not in self._done], "downloading")
        left = [m for m in missing if m.ref.key not in self._done]
        self._report(targets, await self._sizes(targets), left, "waiting" if left else "idle")
        return bool(left)

    async def _complete(self, key: str, t: _Target) -> bool:
        if key in self._done:
            return True
        info = await self.reader.cached_info(t.ref)
        if info is not None and (info.complete or info.size == 0):
            self._done.add(key)
            return True
        return False

    async def _fetch(self, t: _Target) -> bool:
        """One file through the reader's prefetch (spare budget only, never while an
        interactive read waits); False when the pins or the tree changed meanwhile."""
        while True:
            done = self.reader.prefetch(t.ref)
            if done is not None:
                await done.wait()
                return True
            if self._wake.is_set():
                return False
            await trio.sleep(PREFETCH_RETRY_S)

    # -- the bulk path -------------------------------------------------------------------

    def _bulk_item(self, t: _Target) -> BulkItem | None:
        e = t.entry
        if t.ref.kind != "msg" or e.extension_id is None or e.message_id is None:
            return None
        info = self.index.message_info(e.extension_id, e.message_id)
        if info is None or info.type not in EXPORT_TYPES:
            return None
        return BulkItem(t.ref, e.extension_id, e.message_id, t.ref.ids[1], info.created,
                        info.type, info.attachments)

    def _export_bytes(self, items: list[BulkItem]) -> int:
        """Bytes an export of the items' range would carry: every mailbox's attachments of
        those types in the range (the export is account-wide)."""
        return self.index.message_bytes({i.msg_type for i in items},
                                        min(i.created for i in items),
                                        max(i.created for i in items), UNKNOWN_SIZE)

    async def _bulk(self, missing: list[_Target], targets: dict[str, _Target],
                    sizes: dict[str, int | None]) -> list[_Target]:
        if self.bulk is None:
            return missing
        items = [i for i in map(self._bulk_item, missing) if i is not None]
        if not items:
            return missing
        choice = choose(items, self._export_bytes(items), self.rate_of,
                        can_export=self.can_export())
        self.last_choice = (f"{'export' if choice.export else 'per-file'}: {choice.reason} "
                            f"({choice.per_file_requests} GETs ~{choice.per_file_s:.0f} s vs "
                            f"~{choice.export_requests} export requests ~{choice.export_s:.0f} s)")
        log.info("pinning %d uncached attachments: %s", len(items), self.last_choice)
        if not choice.export:
            return missing
        self._report(targets, sizes, missing, "exporting")
        result = await self.bulk.run(items)
        self.requests += result.requests
        for key in result.stored:
            self._done.add(key)
        log.info("bulk export stored %d of %d attachments with %d requests (%d rejected, "
                 "%d other members); the rest is fetched per file", len(result.stored),
                 len(items), result.requests, len(result.rejected), result.unmatched)
        for key, why in sorted(result.rejected.items())[:20]:
            log.info("archive member for %s not used: %s", key, why)
        return [t for t in missing if t.ref.key not in result.stored]

    # -- progress ------------------------------------------------------------------------

    def _report(self, targets: dict[str, _Target], sizes: dict[str, int | None],
                missing: list[_Target], state: str) -> None:
        left = {m.ref.key for m in missing}
        done = [k for k in targets if k not in left]
        by_group: dict[str, int] = {}
        for m in missing:
            by_group[m.ref.group] = by_group.get(m.ref.group, 0) + 1
        eta = sum(n / max(self.rate_of(g), 1e-9) for g, n in by_group.items())
        self.progress = {
            "state": state, "pins": sorted("/".join(p) for p in self.pins),
            "planned": self._planned,
            "files_total": len(targets), "files_done": len(done),
            "bytes_total": sum(s or 0 for s in sizes.values()),
            "bytes_done": sum(sizes.get(k) or 0 for k in done),
            "requests_left": by_group, "eta_s": round(eta, 1),
            "choice": self.last_choice, "updated": time.time(),
        }

    def status(self) -> dict[str, Any]:
        return self.progress
