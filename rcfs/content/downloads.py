"""The content reader's downloads (``_Downloads``): one open-ended GET per stream, pumped
into consecutive blocks that go to RAM at once and to the block cache through a writer
task; a stream stops when the rest of the file is covered. Also the background prefetch.

A layer of ``ContentReader`` (see ``reader_state``): it uses the state below it and
nothing of the read path above.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator

import trio

from rcfs.api.content import ContentChangedError
from rcfs.api.errors import ApiError, RcError
from rcfs.api.scheduler import ON_SLOT, Priority
from rcfs.content.reader_state import _File, _ReaderState, _Stream
from rcfs.content.source import ContentBody, ContentRef
from rcfs.content.writequeue import _WriteQueue

log = logging.getLogger(__name__)


class _Downloads(_ReaderState):
    """Starting, running and ending downloads, and the writers behind them."""

    # -- downloads ------------------------------------------------------------------------

    def _start_stream(self, f: _File, start: int, priority: Priority,
                      deadline: float | None, *, optional: bool = False,
                      wanted: bool = True) -> _Stream:
        s = _Stream(next(self._ids), start, priority, f.block_size, optional=optional,
                    wanted=wanted)
        s._mark_t = s.last_byte_at = trio.current_time()
        f.streams.append(s)
        f.streams_opened += 1
        self.counters["streams_opened"] += 1
        self.cache.hold(f.key)
        log.debug("%s: download from byte %d (stream %d, %s)", f.key, start, s.id,
                  priority.name)
        self._nursery.start_soon(self._run_stream, f, s, deadline)
        return s

    async def _run_stream(self, f: _File, s: _Stream, deadline: float | None) -> None:
        # Completed blocks go to a writer task through a small queue, so the download keeps
        # reading while the previous blocks are checksummed and written.
        q = _WriteQueue()
        self._writes.append(q.written)
        self._queues.add(q)
        self._nursery.start_soon(self._writer, f, q)
        try:
            try:
                with s.scope:
                    await self._download(f, s, deadline, q)
            finally:
                q.close()  # the writer finishes what was queued, even after a cancel
            await q.written.wait()
            await self._save_meta(f)
        except Exception as exc:
            s.error = f.last_error = exc
            self.counters["streams_failed"] += 1
            if not s.opened and isinstance(exc, ApiError):
                self.counters["requests"] += 1  # the server answered the first request
            if isinstance(exc, ApiError) and exc.status in (404, 410):
                f.gone_until = trio.current_time() + self.config.gone_ttl_s
                f.gone_error = exc
            if s.optional:
                f.no_extra_until = trio.current_time() + self.config.extra_backoff_s
            if isinstance(exc, RcError):
                log.info("%s: download from byte %d failed: %s", f.key, s.start, exc)
            else:
                log.warning("%s: download from byte %d failed", f.key, s.start, exc_info=True)
        finally:
            s.done = True
            f.streams.remove(s)
            f.notify()
            with trio.move_on_after(30) as scope:  # the cache hold outlives queued writes
                scope.shield = True
                await q.written.wait()
            self.cache.release(f.key)

    async def _download(self, f: _File, s: _Stream, deadline: float | None,
                        q: _WriteQueue) -> None:
        body: ContentBody | None = None
        # From its slot on, the request has spent its budget and is not dropped.
        sent = ON_SLOT.set(lambda group: s.on_slot(group, f.ref.group))
        try:
            async with self.source.open(f.ref, s.start, priority=s.priority,
                                        deadline=deadline) as body:
                s.on_open(trio.current_time())
                self.counters["requests"] += 1
                self._learn(f, body.total_size, body.size_proven, body.content_type)
                f.notify()
                complete = await self._pump(f, s, body, q)
                self._learn(f, body.total_size, body.size_proven, body.content_type)
                if complete:
                    if not self._proven(f):
                        self._learn(f, s.pos, True, None)  # the body ended: EOF is here
                    if len(s.buf):
                        block = s.block
                        await self._queue(f, q, block, s.buf.take(len(s.buf)))
        finally:
            ON_SLOT.reset(sent)
            if body is not None:
                self.counters["requests"] += body.requests - 1  # continuations

    async def _writer(self, f: _File, q: _WriteQueue) -> None:
        """Write queued blocks into the cache; a failed write leaves the block uncached."""
        try:
            # A batch is admitted to the cache as a whole: keep it a small part of the budget.
            most = max(1, min(self.config.write_batch_blocks,
                              self.cache.capacity // (4 * f.block_size)))
            while items := await q.get(most):
                # All that is queued, in one transaction: a 1 MiB block costs ~1 ms of
                # checksum and file write, its own SQLite transaction as much again.
                blocks = {bi: data for bi, data in items if bi not in f.present}
                try:
                    meta = self._meta(f)
                    if blocks and await self.cache.put_blocks(
                            f.key, blocks, block_size=f.block_size, size=meta[0],
                            content_type=meta[1]):
                        f.present.update(blocks)
                        f.saved_meta = meta
                except Exception:
                    log.exception("%s: writing blocks %s to the cache failed", f.key,
                                  sorted(blocks))
                finally:
                    for bi, _data in items:
                        f.pending.pop(bi, None)
                    q.done(len(items))
                    f.notify()
        finally:
            for bi in q.drop():  # cancelled: what is left stays in the RAM cache only
                f.pending.pop(bi, None)
            q.written.set()
            self._writes.remove(q.written)
            self._queues.discard(q)

    async def _pump(self, f: _File, s: _Stream, body: ContentBody, q: _WriteQueue) -> bool:
        """Move pieces into blocks until EOF (True) or the stream became redundant (False)."""
        it: AsyncIterator[tuple[int, bytes]] = body.__aiter__()
        try:
            return await self._pump_pieces(f, s, it, q)
        finally:
            if isinstance(it, AsyncGenerator):  # close it now, not in the garbage collector
                with trio.CancelScope(shield=True):
                    await it.aclose()

    async def _pump_pieces(self, f: _File, s: _Stream, it: AsyncIterator[tuple[int, bytes]],
                           q: _WriteQueue) -> bool:
        bs = f.block_size
        # One cancel scope for the whole body (cheaper than one per chunk): its deadline is
        # the stall timeout while waiting for a chunk, and off while blocks are queued.
        with trio.CancelScope() as stall:
            while True:
                stall.deadline = trio.current_time() + self.config.stall_timeout_s
                try:
                    offset, chunk = await it.__anext__()
                except StopAsyncIteration:
                    return True
                stall.deadline = math.inf
                if offset != s.pos:  # pragma: no cover - the source guarantees contiguity
                    raise RuntimeError(f"non-contiguous piece at {offset}, expected {s.pos}")
                if f.size is not None and s.pos + len(chunk) > f.size and self._proven(f):
                    # A body longer than the proven size: blocks past it would be queued
                    # under the last block's index. The object changed: prove it anew.
                    del self.sizes.confirmed[f.key]
                    raise ContentChangedError(
                        f"{f.key}: the body runs past the proven size of {f.size} bytes")
                s.buf.add(chunk)
                s.pos += len(chunk)
                self.counters["bytes_network"] += len(chunk)
                s.measure(trio.current_time())
                at_eof = f.size is not None and s.pos >= f.size
                while len(s.buf) >= bs or (at_eof and len(s.buf)):
                    # Full blocks, and the short last one as soon as its last byte is here
                    # (not at the end of the body, which a shutdown might not wait for).
                    bi = (s.pos - len(s.buf)) // bs
                    await self._queue(f, q, bi, s.buf.take(bs))
                    if self._redundant(f, s):
                        s.stop = True
                        log.debug("%s: stream %d stops at block %d (rest covered)", f.key,
                                  s.id, s.block)
                        return False
                if s.pos >= f.wake_at:
                    f.notify()
        raise TimeoutError(f"no byte for {self.config.stall_timeout_s:.0f} s")

    async def _queue(self, f: _File, q: _WriteQueue, bi: int, data: bytes) -> None:
        """Block ``bi`` is complete: readers find it in ``pending`` (then in RAM) at once and
        the writer will store it; the download pauses here while the writer is more than
        ``write_queue_blocks`` behind (the block is queued before that wait, so a cancelled
        download loses nothing it received)."""
        self._mem.put((f.key, bi), data)
        if bi in f.present:
            return
        f.pending[bi] = data
        f.notify()
        q.put(bi, data)
        # Past the global bound a download waits only while its own writer has work (that
        # writer's progress is what wakes it), so the wait always ends.
        while len(q) > self.config.write_queue_blocks or (
                len(q) > 1 and self._queued_bytes() > self.config.write_queue_bytes):
            await q.progress()

    def _queued_bytes(self) -> int:
        return sum(q.bytes for q in self._queues)

    def _redundant(self, f: _File, s: _Stream) -> bool:
        """True when everything from ``s``'s next block on is cached or will be written by
        another download already at or ahead of it (whose data ``s`` would only repeat)."""
        j = s.block
        n = f.nblocks
        while True:
            if n is not None and j >= n:
                return True
            if j in f.present or j in f.pending:
                j += 1
                continue
            return any(o is not s and not o.done and not o.stop and o.block == j
                       and (j > s.block or o.id < s.id) for o in f.streams)

    def _learn(self, f: _File, total: int | None, proven: bool,
               content_type: str | None) -> None:
        """What a response told of the size: a proven total replaces any size, a claim (a
        200's Content-Length) replaces only one that is not proven."""
        if total is not None and total != f.size and (proven or not self._proven(f)):
            if f.size is not None:
                log.info("%s: size %d%s (was %d%s)", f.key, total,
                         "" if proven else " claimed", f.size,
                         " proven" if self._proven(f) else "")
            f.size = total
        if total is not None and total == f.size and proven:
            self.sizes.confirmed[f.key] = total
        if f.size is not None:
            self._sizes[f.key] = f.size
        if content_type and not f.content_type:
            f.content_type = content_type

    def _meta(self, f: _File) -> tuple[int | None, str | None]:
        """What the cache may record of ``f``: its size only once proven (a claim persisted
        would outlive its correction, and a later session would trust it)."""
        return (f.size if self._proven(f) else None, f.content_type)

    async def _save_meta(self, f: _File) -> None:
        meta = self._meta(f)
        if meta != f.saved_meta:
            await self.cache.set_meta(f.key, block_size=f.block_size, size=meta[0],
                                      content_type=meta[1])
            f.saved_meta = meta

    # -- prefetch -------------------------------------------------------------------------

    async def _prefetch(self, ref: ContentRef, done: trio.Event) -> None:
        try:
            f = await self._file(ref)
            if any(not s.done for s in f.streams):
                return
            n = f.nblocks
            first = 0
            while first in f.present and (n is None or first < n):
                first += 1
            if n is not None and first >= n:
                return
            deadline = trio.current_time() + self.config.prefetch_deadline_s
            s = self._start_stream(f, first * f.block_size, Priority.PREFETCH, deadline,
                                   wanted=False)
            while not s.done:
                await f.changed.wait()
        finally:
            self._prefetching -= 1
            done.set()
