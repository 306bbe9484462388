"""Child-process hygiene shared by the commands that start helper processes."""

from __future__ import annotations

import ctypes
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` for children that must not outlive us (an orphaned emulator would keep
    its ports and confuse the next run). Linux only; harmless elsewhere."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def release_memory() -> None:
    """Give freed heap back to the system after a burst of big temporary objects (a first
    sync parses pages of thousands of messages): glibc keeps freed memory in its arenas
    otherwise, and the mount's RSS would stay at the burst's peak. Linux/glibc only."""
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
