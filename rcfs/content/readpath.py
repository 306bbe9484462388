"""The content reader's read path (``_ReadPath``): a read walks its blocks, taking each
from memory, then disk, then the partial block of a download that is filling it, and
otherwise decides (``_plan``) between waiting for a download that will get there and
opening a new one. Also how a failed download is worded for the caller.

A layer of ``ContentReader`` (see ``reader_state``), above the downloads it starts.
"""

from __future__ import annotations

import enum
import logging
import math

import trio

from rcfs.api.errors import ApiError, BudgetExhaustedError, NotSentError, RateLimitedError
from rcfs.api.scheduler import Priority
from rcfs.content.downloads import _Downloads
from rcfs.content.errors import (
    ContentNotFoundError,
    ContentOfflineError,
    ContentThrottledError,
    ContentUnavailableError,
)
from rcfs.content.reader_state import _File, _Stream

log = logging.getLogger(__name__)


class _Action(enum.Enum):
    WAIT = 1
    OPEN = 2


class _ReadPath(_Downloads):
    """Serving one read from memory, disk or a download, and planning the wait."""

    # -- the read loop --------------------------------------------------------------------

    def _from_memory(self, f: _File, offset: int, size: int) -> bytes | None:
        """The read served without a checkpoint when every block it needs is in RAM (the
        common case of a FUSE read: 128 KiB of a 1 MiB block a sequential reader is in);
        None sends it down the general path. Needs the size: EOF must be exact."""
        if f.size is None:
            return None
        end = min(offset + size, f.size)
        if offset >= end:
            return b""
        bs = f.block_size
        first, last = offset // bs, (end - 1) // bs
        blocks = []
        for bi in range(first, last + 1):
            data = self._in_ram(f, bi)
            if data is None or len(data) < min(bs, f.size - bi * bs):
                return None
            blocks.append(data)
        self.counters["memory_hits"] += len(blocks)
        self._load_ahead(f, last + 1)
        lo = offset - first * bs
        if len(blocks) == 1:
            data = blocks[0]
            if lo == 0 and end - offset == len(data):
                return data
            with memoryview(data) as view:
                return bytes(view[lo:lo + end - offset])
        joined = b"".join(blocks)
        with memoryview(joined) as view:
            return bytes(view[lo:lo + end - offset])

    async def _read(self, f: _File, offset: int, size: int, deadline: float,
                    priority: Priority) -> bytes:
        # Pieces are views of cached blocks (or copies of a download's buffer): the result
        # is copied once, and not at all when one piece is a whole block.
        pieces: list[bytes | memoryview] = []
        pos, stop = offset, offset + size
        mine: list[_Stream] = []
        while True:
            # The size as known now: a response may prove it larger than it was believed
            # when the read began (a read that kept the old end would stop short).
            end = stop if f.size is None else min(stop, f.size)
            if pos >= end:
                break
            piece = await self._piece(f, pos, end - pos, deadline, priority, mine)
            if not piece:
                break
            pieces.append(piece)
            pos += len(piece)
        if len(pieces) == 1:
            return pieces[0] if isinstance(pieces[0], bytes) else bytes(pieces[0])
        return b"".join(pieces)

    async def _piece(self, f: _File, pos: int, n: int, deadline: float, priority: Priority,
                     mine: list[_Stream]) -> bytes | memoryview:
        """Bytes from ``pos`` (at most ``n``, within one block); b"" at EOF."""
        bs = f.block_size
        bi, within = divmod(pos, bs)
        while True:
            data = await self._cached_block(f, bi)
            if data is not None:
                if within >= len(data):
                    return b""  # only the last block is short: pos is past EOF
                if within == 0 and n >= len(data):
                    return data
                return memoryview(data)[within:within + n]
            # What this piece needs of the block being filled: served (copied early, HTTPDirFS's
            # trick) once a download has all of it, not chunk by chunk.
            need = min(pos + n, (bi + 1) * bs)
            if f.size is not None:
                need = min(need, f.size)
            for s in f.streams:
                if not s.done and s.buf_start <= pos < s.pos and s.pos >= need:
                    at = pos - s.buf_start
                    return s.buf.copy(at, at + need - pos)
            if f.size is not None and pos >= f.size:
                return b""
            for s in mine:
                if s.done and s.error is not None and not s.optional:
                    raise self._unavailable(f, pos, s.error)
            if trio.current_time() < f.gone_until and f.gone_error is not None:
                raise self._unavailable(f, pos, f.gone_error)
            if self._closing:
                raise ContentUnavailableError(f.key, pos, "rcfs is shutting down")
            action, optional = self._plan(f, pos, deadline)
            if action is _Action.OPEN:
                mine.append(self._start_stream(f, bi * bs, priority, deadline,
                                               optional=optional))
                continue
            f.wake_at = min(f.wake_at, need)
            await self._wait(f, priority)

    async def _cached_block(self, f: _File, bi: int) -> bytes | None:
        """Block ``bi`` from memory, the pending writes or disk (single-flight per block).
        A block read from disk starts loading the next ones, so a sequential reader finds
        them in RAM (the disk reads overlap the reads of this block)."""
        while True:
            data = self._in_ram(f, bi)
            if data is not None:
                self.counters["memory_hits"] += 1
                self._load_ahead(f, bi + 1)
                return data
            if bi not in f.present:
                return None
            ev = f.loads.get(bi)
            if ev is not None:
                await ev.wait()
                continue
            # The next block starts loading beside this one (the kernel asks for both at
            # once), and the rest of the window once this one has arrived: loads started
            # together share the disk, and with the whole window in flight the block the
            # reader waits for came in last (after a remount with the page cache dropped,
            # 6.9-11.2 ms from the open to its first byte, against 4.5-8.1 ms this way).
            self._load_ahead(f, bi + 1, 1)
            data = await self._load(f, bi)
            self._load_ahead(f, bi + 1)
            return data

    def _in_ram(self, f: _File, bi: int) -> bytes | None:
        """Block ``bi`` if it is in RAM: the verified-block LRU or a download's pending
        writes."""
        return self._mem.get((f.key, bi)) or f.pending.get(bi)

    def _load_ahead(self, f: _File, bi: int, count: int | None = None) -> None:
        """Start loading blocks ``bi``.. (``count``, by default ``disk_read_ahead_blocks``
        of them) from disk if they are there and not in RAM, so a sequential reader finds
        every next block in RAM (the disk reads, in threads, overlap the reads of the
        current block)."""
        count = self.config.disk_read_ahead_blocks if count is None else count
        want = [j for j in range(bi, bi + count)
                if j in f.present and j not in f.loads and not self._mem.has((f.key, j))
                and j not in f.pending]
        if not want:
            return
        # Blocks loaded ahead wait in the RAM cache until they are read: with many readers
        # loading at once, a deep window would evict them before use, so each gets a share.
        loading = 1 + sum(1 for g in self._files.values() if g.loads and g is not f)
        share = max(2, self._mem.max_bytes // (2 * loading * f.block_size))
        for j in want:
            if j < bi + share:
                f.loads[j] = trio.Event()  # claimed now: a read arriving first waits
                self._nursery.start_soon(self._load, f, j, True)

    async def _load(self, f: _File, bi: int, claimed: bool = False) -> bytes | None:
        """Read block ``bi`` from disk into RAM; None (and the bit cleared) if it is gone."""
        ev = f.loads[bi] if claimed else f.loads.setdefault(bi, trio.Event())
        try:
            data = await self.cache.get_block(f.key, bi, f.block_size)
        except Exception:
            if not claimed:
                raise
            log.exception("%s: reading block %d ahead failed", f.key, bi)
            return None
        finally:
            del f.loads[bi]
            ev.set()
        if data is None:
            f.present.discard(bi)  # evicted meanwhile, or corrupt (dropped by the cache)
            f.notify()
            return None
        self.counters["disk_loads"] += 1
        self._mem.put((f.key, bi), data)
        return data

    async def _wait(self, f: _File, priority: Priority) -> None:
        """Wait for any change to the file's state, re-planning at least every 0.25 s so a
        stalled or slowed download is noticed."""
        self.counters["waits"] += 1
        interactive = priority <= Priority.METADATA
        self._interactive_waiting += interactive
        try:
            with trio.move_on_after(0.25):
                await f.changed.wait()
        finally:
            self._interactive_waiting -= interactive

    def _eta(self, s: _Stream, pos: int, now: float) -> float:
        """Seconds until stream ``s`` delivers byte ``pos``."""
        remaining = pos + 1 - s.pos
        if remaining <= 0:
            return 0.0
        if not s.opened:
            return self.config.connect_guess_s + remaining / self.config.initial_rate
        if now - s.last_byte_at > self.config.stall_s:
            return math.inf
        return remaining / (s.current_rate(now) or self.config.initial_rate)

    def _plan(self, f: _File, pos: int, deadline: float) -> tuple[_Action, bool]:
        """Wait for a download that will reach ``pos``, or open one at its block; the flag
        says whether that download is optional (another one would get there eventually)."""
        cfg = self.config
        bi = pos // f.block_size
        now = trio.current_time()
        coming = [s for s in f.streams if not s.done and not s.stop and s.block <= bi]
        if not coming:
            return _Action.OPEN, False  # nothing else will ever serve this read
        best = min(coming, key=lambda s: self._eta(s, pos, now))
        if (best.opened and best.current_rate(now) is None
                and now - best.opened_at < cfg.rate_wait_s):
            return _Action.WAIT, False  # its rate is unknown, not slow: measure it first
        eta = self._eta(best, pos, now)
        # What a new download from this block would take: connect, then the bytes before
        # ``pos`` at the rate the running one achieves.
        rate = best.current_rate(now) or cfg.initial_rate
        eta_new = cfg.connect_guess_s + (pos % f.block_size + 1) / rate
        gain = eta - eta_new
        if eta <= cfg.wait_ahead_s or gain <= cfg.wait_ahead_s or now < f.no_extra_until:
            return _Action.WAIT, False
        if f.streams_opened < cfg.max_streams_per_file and self.source.spare(f.ref.group) > 0:
            return _Action.OPEN, True  # a seek far ahead, and the budget has room to spare
        if eta > deadline - now:
            return _Action.OPEN, True  # waiting would miss the deadline: better a request
        return _Action.WAIT, False

    def _unavailable(self, f: _File, pos: int, exc: BaseException) -> ContentUnavailableError:
        if isinstance(exc, ContentUnavailableError):
            return exc
        err: ContentUnavailableError
        if isinstance(exc, ApiError) and exc.status in (404, 410):
            err = ContentNotFoundError(f.key, pos, f"not found upstream ({exc})")
        elif isinstance(exc, BudgetExhaustedError):
            err = ContentThrottledError(
                f.key, pos, f"not cached and the {exc.group} request budget is empty for "
                            f"{exc.wait_s:.0f} s")
        elif isinstance(exc, RateLimitedError):
            err = ContentThrottledError(f.key, pos, f"throttled by RingCentral ({exc})")
        elif _caused_by(exc, NotSentError):
            err = ContentOfflineError(f.key, pos, f"RingCentral unreachable ({exc})")
        else:
            err = ContentUnavailableError(f.key, pos, f"download failed: {exc}")
        err.__cause__ = exc
        return err

    def _why_slow(self, f: _File) -> str:
        s = f.live
        if f.last_error is not None:
            return f"timed out; last download error: {f.last_error}"
        if s is None:
            return "timed out with no download running"
        if not s.opened and s.sent:
            return f"timed out waiting for the answer to the {f.ref.group} request"
        if not s.opened:
            return (f"timed out waiting for a {f.ref.group} request slot "
                    f"({self.source.describe(f.ref.group)})")
        return f"timed out; download at byte {s.pos} ({(s.rate or 0) / 1e6:.2f} MB/s)"


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """``exc`` or an exception it was raised from is a ``kind`` (a download that gave up
    after its connection attempts failed wraps the connection error)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
