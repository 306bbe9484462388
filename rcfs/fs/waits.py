"""Waits of FUSE requests that a user can end, and that say why they wait.

A process blocked in ``read()`` on a FUSE file cannot be stopped by Ctrl-C: the kernel
passes the signal on as a FUSE interrupt (which pyfuse3 does not deliver to handlers) and a
SIGKILLed reader stays in D state until the file system answers. So every request that may
wait for the network is registered here, and one watcher task looks at the requesting
thread's ``/proc/<pid>/status`` every ``interval`` seconds: a pending, unblocked signal that
ends or interrupts a process (SIGINT, SIGTERM, SIGKILL, SIGHUP, SIGQUIT...) or the process
being gone cancels the wait, and the request answers EINTR (within a second).

A wait longer than ``slow_after`` seconds is logged once, naming the file, the process and
the reason (e.g. waiting for a Heavy request slot).
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import trio

from rcfs.fs.readers import Reader

log = logging.getLogger(__name__)

__all__ = ["Wait", "WaitWatch"]

# Signals that end a wait: their default action terminates the process (or the user asked
# it to stop); a handled SIGINT still has to reach its handler (Python's KeyboardInterrupt).
# Not SIGUSR1/SIGALRM/SIGPROF...: programs use those while they work (dd prints progress on
# SIGUSR1) and would see a read fail with EINTR.
ENDING = frozenset({signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGKILL,
                    signal.SIGTERM, signal.SIGABRT, signal.SIGXCPU})
_ENDING_MASK = sum(1 << (int(s) - 1) for s in ENDING)


@dataclass(eq=False)
class Wait:
    reader: Reader
    what: str  # the file, as the user sees it
    why: Callable[[], str]
    since: float
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    interrupted: str | None = None
    logged: bool = False


def pending_end(pid: int, proc_root: str = "/proc") -> str | None:
    """Why a wait for ``pid`` should end now (a pending ending signal, the process gone),
    or None."""
    try:
        with open(f"{proc_root}/{pid}/status", encoding="ascii", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return "the process exited"
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    if fields.get("State", "").startswith(("Z", "X")):
        return "the process exited"
    try:
        pending = int(fields.get("SigPnd", "0"), 16) | int(fields.get("ShdPnd", "0"), 16)
        blocked = int(fields.get("SigBlk", "0"), 16) & ~(1 << (signal.SIGKILL - 1))
    except ValueError:
        return None
    hit = pending & ~blocked & _ENDING_MASK
    if not hit:
        return None
    num = (hit & -hit).bit_length()
    return f"{signal.Signals(num).name} pending"


class WaitWatch:
    """The registry of waiting requests and the task that watches them."""

    def __init__(self, *, interval: float = 0.25, slow_after: float = 5.0,
                 proc_root: str = "/proc") -> None:
        self.interval = interval
        self.slow_after = slow_after
        self.proc_root = proc_root
        self._waits: set[Wait] = set()
        self._added = trio.Event()
        self.counters = {"interrupted": 0, "slow_logged": 0}

    @contextmanager
    def watch(self, reader: Reader, what: str, why: Callable[[], str]) -> Iterator[Wait]:
        """Run the body inside ``wait.scope``; afterwards ``wait.interrupted`` says whether
        the watcher cancelled it (the caller then answers EINTR)."""
        w = Wait(reader, what, why, time.monotonic())
        self._waits.add(w)
        self._added.set()
        try:
            with w.scope:
                yield w
        finally:
            self._waits.discard(w)

    def waiting(self) -> list[dict[str, object]]:
        """The requests waiting now (status.json)."""
        now = time.monotonic()
        return [{"file": w.what, "pid": w.reader.pid, "comm": w.reader.comm,
                 "class": w.reader.cls.value, "waiting_s": round(now - w.since, 1)}
                for w in sorted(self._waits, key=lambda w: w.since)]

    async def run(self) -> None:
        """Forever: every ``interval`` seconds while anything waits, check each wait."""
        while True:
            if not self._waits:
                self._added = trio.Event()
                await self._added.wait()
            await trio.sleep(self.interval)
            self.check()

    def check(self) -> None:
        now = time.monotonic()
        for w in list(self._waits):
            if now - w.since < self.interval or w.interrupted:
                continue
            why = pending_end(w.reader.pid, self.proc_root)
            if why is not None:
                w.interrupted = why
                self.counters["interrupted"] += 1
                log.info("%s: wait of %s ended after %.1f s: %s (EINTR)", w.what, w.reader,
                         now - w.since, why)
                w.scope.cancel()
            elif not w.logged and now - w.since >= self.slow_after:
                w.logged = True
                self.counters["slow_logged"] += 1
                log.info("%s: %s has waited %.0f s: %s", w.what, w.reader, now - w.since,
                         w.why())
