"""Many message attachments at once through a message-store-report instead of one GET each.

An attachment costs one Medium request (40 per minute): 10,000 of them are over four hours
of a user's budget. One export task carries the same binaries in a handful of Heavy
requests (create, a few polls, the archive list, one GET per archive of up to 1 GB). This
module decides per batch which path is cheaper (``choose``), and runs the export path
(``BulkExport``): it streams each attachment archive, matches every member to an attachment
the index knows, checks it, and stores it into the block cache under the key a normal read
uses, so the file is then simply cached. Whatever is not stored (missing, ambiguous,
unexpected, corrupt) is returned for the per-file path.

Archive layout assumed (RingCentral's export docs; the emulator follows them): the first
archive of a task holds the ``message-store.json`` files and is not downloaded (the index
already has the metadata); the others hold
``[/]account/<acc>/extension/<ext>/message-store/content/<messageId>/<leaf>`` where
``<leaf>`` is the attachment's ``fileName`` (``/`` and ``\\`` as ``_``), or
``<attachmentId>_<fileName>`` for a repeated name, or ``<attachmentId>.<ext>`` without a
name. A member whose name does not resolve to exactly one wanted attachment, whose size
differs from the metadata, whose bytes do not look like its content type, or whose CRC
fails is never stored.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rcfs.api.errors import RcError
from rcfs.api.scheduler import Priority
from rcfs.content.blockcache import BlockCache
from rcfs.content.reports import EXPORT_TYPES, ReportRunner
from rcfs.content.source import ContentRef, ContentSource
from rcfs.content.zipstream import Member, ZipStreamError, members

log = logging.getLogger(__name__)

__all__ = ["BulkExport", "BulkItem", "Choice", "choose", "looks_like"]

MIN_BATCH = 20
"""Below this an export cannot win: its fixed cost is ~4 Heavy requests and a task's wait."""
ARCHIVE_BYTES = 1 << 30
ASSUMED_EXPORT_S = 60.0
"""How long RingCentral takes to build an export (undocumented; "minutes" for large ones)."""
ASSUMED_RATE = 2 << 20
"""Bytes per second assumed for downloading archives when estimating time."""
UNKNOWN_SIZE = 256 << 10
WRITE_BATCH = 16

_MEMBER = re.compile(r"(?:^|/)account/[^/]+/extension/([^/]+)/message-store/content/"
                     r"([^/]+)/([^/]+)$")


@dataclass(frozen=True)
class BulkItem:
    """One wanted attachment, with what the index knows of its message."""

    ref: ContentRef
    ext_id: str
    message_id: str
    attachment_id: str
    created: datetime
    msg_type: str
    siblings: tuple[tuple[str, str | None], ...] = ()
    """(attachment id, fileName) of every attachment of the message, this one included."""


@dataclass(frozen=True)
class Choice:
    export: bool
    reason: str
    per_file_requests: int
    export_requests: int
    per_file_s: float
    export_s: float


def choose(items: Sequence[BulkItem], export_bytes: int, rate_of: Callable[[str], float],
           *, can_export: bool) -> Choice:
    """Per-file GETs or one export for this batch: the one costing less of the budget
    (requests weighted by how scarce their group is), unless it is also much slower."""
    per_file = len(items)
    by_group: dict[str, int] = {}
    for it in items:
        by_group[it.ref.group] = by_group.get(it.ref.group, 0) + 1
    per_file_s = sum(n / max(rate_of(g), 1e-9) for g, n in by_group.items())
    archives = max(1, math.ceil(export_bytes / ARCHIVE_BYTES))
    export_requests = 4 + archives  # create, ~2 polls, the list, the archives
    export_s = ASSUMED_EXPORT_S + export_bytes / ASSUMED_RATE
    per_file_cost = sum(n / max(rate_of(g), 1e-9) for g, n in by_group.items())
    export_cost = export_requests / max(rate_of("Heavy"), 1e-9)
    if not can_export:
        return Choice(False, "credentials cannot create reports", per_file, 0, per_file_s, 0.0)
    if per_file < MIN_BATCH:
        return Choice(False, f"{per_file} files (< {MIN_BATCH})", per_file, export_requests,
                      per_file_s, export_s)
    if export_cost >= per_file_cost:
        return Choice(False, "per-file GETs cost less budget", per_file, export_requests,
                      per_file_s, export_s)
    if export_s > 3 * per_file_s + 60:
        return Choice(False, "an export would take much longer", per_file, export_requests,
                      per_file_s, export_s)
    return Choice(True, "an export costs less budget", per_file, export_requests, per_file_s,
                  export_s)


# -- checking what an archive holds --------------------------------------------------------

_SIGNATURES: dict[str, Callable[[bytes], bool]] = {
    "application/pdf": lambda b: b.startswith(b"%PDF"),
    "image/tiff": lambda b: b[:4] in (b"II*\0", b"MM\0*"),
    "audio/mpeg": lambda b: b.startswith(b"ID3") or (len(b) > 1 and b[0] == 0xFF
                                                     and b[1] & 0xE0 == 0xE0),
    "audio/wav": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WAVE",
    "audio/x-wav": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WAVE",
    "image/jpeg": lambda b: b.startswith(b"\xff\xd8\xff"),
    "image/png": lambda b: b.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/gif": lambda b: b[:6] in (b"GIF87a", b"GIF89a"),
}


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def looks_like(data: bytes, content_type: str | None, size: int | None) -> str | None:
    """None when ``data`` fits the metadata; else why not. A type with no known signature
    is accepted only when the metadata's size confirms it."""
    if size is not None and len(data) != size:
        return f"{len(data)} bytes, metadata says {size}"
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime.startswith("text/"):
        return None if _utf8(data) else "not UTF-8 text"
    check = _SIGNATURES.get(mime)
    if check is not None:
        return None if check(data) else f"bytes are not {mime}"
    if size is None:
        return f"type {mime or 'unknown'} cannot be checked and the size is unknown"
    return None


def _leaf(name: str | None) -> str | None:
    return None if not name else name.replace("/", "_").replace("\\", "_")


def match(item_of: Mapping[tuple[str, str], BulkItem],
          siblings: Mapping[tuple[str, str], tuple[tuple[str, str | None], ...]],
          name: str) -> BulkItem | None:
    """The wanted attachment an archive member is, or None when that is not certain."""
    m = _MEMBER.search(name)
    if m is None:
        return None
    ext_id, mid, leaf = m.groups()
    atts = siblings.get((ext_id, mid))
    if not atts:
        return None
    named = [aid for aid, fname in atts if _leaf(fname) == leaf]
    prefixed = [aid for aid, fname in atts
                if (fname and leaf == f"{aid}_{_leaf(fname)}")
                or (not fname and leaf.split(".", 1)[0] == aid)]
    hits = set(named) | set(prefixed)
    if len(hits) != 1:
        return None
    return item_of.get((mid, hits.pop()))


# -- the export path -----------------------------------------------------------------------


@dataclass
class BulkResult:
    stored: set[str] = field(default_factory=set)
    rejected: dict[str, str] = field(default_factory=dict)  # key -> why
    unmatched: int = 0
    requests: int = 0


class BulkExport:
    """Fetch a batch through one export task (module docstring)."""

    def __init__(self, runner: ReportRunner, source: ContentSource, cache: BlockCache,
                 forget: Callable[[str], None] | None = None) -> None:
        self.runner = runner
        self.source = source
        self.cache = cache
        self.forget = forget or (lambda key: None)

    async def run(self, items: Sequence[BulkItem]) -> BulkResult:
        """Store what the export delivers; the caller fetches the rest per file."""
        result = BulkResult()
        if not items:
            return result
        start = min(i.created for i in items) - timedelta(seconds=1)
        end = max(i.created for i in items) + timedelta(seconds=1)
        types = sorted({i.msg_type for i in items if i.msg_type in EXPORT_TYPES})
        before = self.runner.requests
        try:
            task = await self.runner.create(start, end, types, priority=Priority.BACKGROUND)
            task = await self.runner.wait(task.id)
            if task.status != "Completed":
                log.warning("bulk export %s ended %s: fetching per file", task.id, task.status)
                return result
            archives = await self.runner.archives(task.id)
            # The first archive holds the messages' JSON (the index has it already).
            for n, arch in enumerate(archives[1:], start=1):
                ref = ContentRef("export", (task.id, str(n)), arch.uri, "Heavy", arch.size,
                                 "application/zip")
                await self._unpack(ref, items, result)
        except (RcError, TimeoutError, ZipStreamError) as exc:
            log.warning("bulk export stopped (%s): the rest is fetched per file", exc)
        finally:
            result.requests += self.runner.requests - before
        return result

    async def _unpack(self, ref: ContentRef, items: Iterable[BulkItem],
                      result: BulkResult) -> None:
        item_of = {(i.message_id, i.attachment_id): i for i in items}
        siblings = {(i.ext_id, i.message_id): i.siblings for i in item_of.values()}
        async with self.source.open(ref, 0, priority=Priority.BACKGROUND,
                                    deadline=None) as body:
            try:
                async with contextlib.aclosing(members(_Chunks(body))) as walk:
                    async for member in walk:
                        await self._member(member, item_of, siblings, result)
            except ZipStreamError as exc:
                log.warning("archive %s: %s (the rest of it is fetched per file)", ref.key, exc)
            finally:
                result.requests += body.requests

    async def _member(self, member: Member, item_of: dict[tuple[str, str], BulkItem],
                      siblings: dict[tuple[str, str], tuple[tuple[str, str | None], ...]],
                      result: BulkResult) -> None:
        item = match(item_of, siblings, member.name)
        if item is None:
            result.unmatched += 1
            return
        key = item.ref.key
        if not member.ok:
            result.rejected[key] = member.why
            return
        why = looks_like(member.data, item.ref.content_type, item.ref.size)
        if why is not None:
            result.rejected[key] = why
            return
        if await self._store(item.ref, member.data):
            result.stored.add(key)
            self.forget(key)
        else:
            result.rejected[key] = "no room in the cache"

    async def _store(self, ref: ContentRef, data: bytes) -> bool:
        info = await self.cache.info(ref.key)
        bs = info.block_size if info is not None else self.cache.block_size
        nblocks = max(1, -(-len(data) // bs))
        if not data:
            await self.cache.set_meta(ref.key, block_size=bs, size=0,
                                      content_type=ref.content_type)
            return True
        for first in range(0, nblocks, WRITE_BATCH):
            last = min(nblocks, first + WRITE_BATCH)
            blocks = {i: data[i * bs:(i + 1) * bs] for i in range(first, last)}
            if not await self.cache.put_blocks(ref.key, blocks, block_size=bs, size=len(data),
                                               content_type=ref.content_type):
                return False
        return True


class _Chunks:
    """The bytes of a download's ``(offset, piece)`` stream (a class, not an async
    generator: one left unfinished would be finalised by the garbage collector)."""

    def __init__(self, body: AsyncIterable[tuple[int, bytes]]) -> None:
        self._it = body.__aiter__()

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        _offset, piece = await self._it.__anext__()
        return piece
