"""RingCentral's user-level rate limiting (docs/ringcentral.md §3).

Per (client_id, token owner, group): a sliding window of accepted requests; when the limit is
exceeded a penalty starts, and *every* request inside the penalty is rejected and restarts it
(C5). Rejected requests are not counted in the window.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from rcfs.emulator.config import EmulatorConfig


@dataclass
class Decision:
    allowed: bool
    group: str
    limit: int
    remaining: int
    window: int
    retry_after: int = 0


@dataclass
class _Bucket:
    sent: deque[float] = field(default_factory=deque)
    penalty_until: float = 0.0


class RateLimiter:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}

    def reset(self) -> None:
        self._buckets.clear()

    def check(self, client_id: str, owner: str, group: str, now: float) -> Decision:
        limit = self.config.limits.get(group, 50)
        window = self.config.window
        bucket = self._buckets.setdefault((client_id, owner, group), _Bucket())
        while bucket.sent and bucket.sent[0] <= now - window:
            bucket.sent.popleft()
        win = max(1, round(window))
        if now < bucket.penalty_until or len(bucket.sent) >= limit:
            bucket.penalty_until = now + self.config.penalty
            return Decision(False, group, limit, 0, win, max(1, round(self.config.penalty)))
        bucket.sent.append(now)
        return Decision(True, group, limit, limit - len(bucket.sent), win)

    def peek(self, client_id: str, owner: str, group: str, now: float) -> Decision:
        """The state of a bucket without counting a request (an injected 429 fault)."""
        limit = self.config.limits.get(group, 50)
        bucket = self._buckets.get((client_id, owner, group), _Bucket())
        used = sum(1 for t in bucket.sent if t > now - self.config.window)
        return Decision(True, group, limit, max(0, limit - used),
                        max(1, round(self.config.window)))

    def headers(self, decision: Decision) -> dict[str, str]:
        lower = self.config.group_header_case == "lower"
        name = decision.group.lower() if lower else decision.group
        return {
            "X-Rate-Limit-Group": name,
            "X-Rate-Limit-Limit": str(decision.limit),
            "X-Rate-Limit-Remaining": str(decision.remaining),
            "X-Rate-Limit-Window": str(decision.window),
        }
