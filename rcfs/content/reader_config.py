"""The content reader's tuning knobs (``ReaderConfig``), apart so that the layers of the
reader (``reader_state``, ``downloads``, ``readpath``, ``reader``) and the composition root
can name them without importing the reader."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ReaderConfig:
    """Tuning knobs; the defaults are what the tests and the benchmark justify."""

    read_deadline_s: float = 30.0
    """Deadline of a read when the caller gives none: a read never hangs."""
    wait_ahead_s: float = 2.0
    """A read ahead of a running download waits for it when it should arrive within this."""
    max_streams_per_file: int = 2
    """Downloads a file may start by choice (a seek ahead) per session; a read that nothing
    else will ever serve, or one that would otherwise miss its deadline, may still open one."""
    initial_rate: float = 1 << 20
    """Bytes/s assumed for a download before its rate is measured."""
    connect_guess_s: float = 0.5
    """Added to the ETA of a download whose first response has not arrived."""
    rate_wait_s: float = 0.5
    """A seek ahead of a download that has answered but has no measured rate yet (younger
    than this) waits for the measurement instead of judging by ``initial_rate``: on a fast
    link that guess would open a second download the first makes redundant at once."""
    stall_s: float = 2.0
    """No byte for this long: the download's ETA counts as unknown (a seek may open another)."""
    stall_timeout_s: float = 60.0
    """No byte for this long: the download is abandoned (a later read reopens)."""
    memory_bytes: int = 64 << 20
    """Verified blocks kept in RAM (sequential small reads hit one block many times)."""
    write_queue_blocks: int = 32
    """Completed blocks a download may have waiting for the disk before it pauses: the
    network outruns checksum + write (~1 GB/s vs ~0.4 GB/s here), and a cold read should
    go at the network's pace while the disk catches up (the blocks are in RAM anyway)."""
    write_batch_blocks: int = 16
    """Queued blocks stored in one cache transaction."""
    disk_read_ahead_blocks: int = 8
    """Blocks loaded from disk ahead of a sequential reader (each costs a thread's file
    read and checksum, ~2-3 ms on a cold page cache: one at a time cannot keep up with a
    reader; the cache's ``READ_THREADS`` run this many at once)."""
    write_queue_bytes: int = 96 << 20
    """Bytes all downloads together may have waiting for the disk (many concurrent
    downloads on a slow disk must not each hold ``write_queue_blocks``)."""
    touch_interval_s: float = 60.0
    """How often an open file is marked recently used in the cache's LRU."""
    gone_ttl_s: float = 60.0
    """A 404/410 is remembered this long: reads fail without a request."""
    extra_backoff_s: float = 5.0
    """After an optional download failed to start (no budget), don't try another this long."""
    max_prefetch_streams: int = 1
    prefetch_deadline_s: float = 10.0
    idle_states: int = 512
    """Idle per-file states kept (their cached-block maps) before pruning."""
