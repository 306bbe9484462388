"""The emulator's clock: wall time plus an offset that tests advance through the admin API.

Every time-dependent behaviour (token lifetimes, rate-limit windows, the fax state machine, the
Deleted -> Purged lifecycle) reads this clock, so a test can jump minutes ahead without sleeping.
"""

from __future__ import annotations

import time


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        """Seconds since the epoch, as the emulated service sees them."""
        return time.time() + self.offset

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.offset += seconds
        return self.now()
