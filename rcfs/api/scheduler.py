"""Client-side rate-limit scheduler: never send a request RingCentral would reject with 429.

RingCentral counts requests per (user, app, group) in a sliding window and, once a group is
exceeded, rejects *every* request in it and restarts the penalty with each one
(docs/ringcentral.md §3). So the only safe client is one that keeps its own estimate of the
window, corrects it from the ``X-Rate-Limit-*`` headers, and goes silent for the whole penalty
after a 429.

Waiters are served strictly by priority: a process blocked in ``read()`` is never behind a
bulk copy or a prefetch. Within one priority, waiters of different *tenants* (a fairness key
the caller chooses, e.g. one per reading process) take turns (start-time fair queuing), so
two bulk copies share what is left instead of the first one taking it all; without tenants
it is arrival order. PREFETCH/BACKGROUND only use *spare* budget, leaving a reserve of each
window for interactive work. The tenant of a request comes from the ``TENANT`` context
variable (set by whoever starts the work; trio tasks inherit it), so the layers between the
caller and the scheduler need not carry it. All times come from ``trio.current_time()`` so
trio's MockClock drives minutes of rate-limit behaviour instantly in tests.
"""

from __future__ import annotations

import bisect
import contextvars
import enum
import itertools
import math
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from rcfs.api.errors import BudgetExhaustedError

DEFAULT_LIMITS: Mapping[str, int] = {"Light": 50, "Medium": 40, "Heavy": 10, "Auth": 5}
DEFAULT_WINDOW = 60.0
UNTHROTTLED_GROUPS = frozenset({"nothrottling"})


class Priority(enum.IntEnum):
    """Lower value = served first."""

    INTERACTIVE = 0  # a process is blocked in read()/open() on a file it chose
    LISTING = 1  # readdir of a directory someone is looking at
    METADATA = 2  # getattr/refresh of a single object
    BULK = 3  # a process working through many files (cp -r, rsync): fair among tenants
    PREFETCH = 4  # read-ahead; only spare budget
    BACKGROUND = 5  # sync, warm-up, thumbnailers and indexers; only spare budget


TENANT: contextvars.ContextVar[str | None] = contextvars.ContextVar("rcfs_tenant", default=None)
"""Fairness key of the work running in this context (None: one shared tenant)."""

ON_SLOT: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar(
    "rcfs_on_slot", default=None)
"""Called with the group (lower case) in the requesting task when ``slot`` grants it a
request: from then on the request has spent its budget whether or not anyone reads the
answer. The content reader drops a download nobody waits for any more only until its
group's slot is granted (a token refresh on the way takes an Auth slot first)."""


def _granted(group: str) -> None:
    hook = ON_SLOT.get()
    if hook is not None:
        hook(group)


@dataclass(eq=False)
class _Waiter:
    priority: int
    seq: int
    spare_only: bool
    deadline: float | None
    tenant: str | None = None
    tag: float = 0.0  # virtual start time among the waiters of its priority
    since: float = 0.0
    event: trio.Event = field(default_factory=trio.Event)
    granted_at: float | None = None
    eta: float = -math.inf
    scope: trio.CancelScope | None = None

    @property
    def order(self) -> tuple[int, float, int]:
        return (self.priority, self.tag, self.seq)

    def granted(self) -> bool:
        # A method, not an attribute test: it changes across awaits (mypy narrows fields).
        return self.granted_at is not None


@dataclass(eq=False)
class Slot:
    """A granted send. The scheduler re-stamps it when the ``async with`` block exits (the
    response has arrived, so the server has surely counted it by then)."""

    group: str
    sent_at: float
    tenant: str | None = None  # the fairness key a BULK grant was charged to


@dataclass(eq=False)
class _Group:
    name: str
    limit: int
    window: float
    sends: list[float] = field(default_factory=list)  # sorted send times still in the window
    waiters: list[_Waiter] = field(default_factory=list)  # sorted by (priority, seq)
    penalty_until: float = -math.inf
    resume_at: float = -math.inf  # penalty_until + safety margin
    sent: int = 0
    throttled_429: int = 0
    waits: int = 0
    total_wait_s: float = 0.0
    server_remaining: int | None = None
    phantoms: int = 0
    vtime: dict[int, float] = field(default_factory=dict)  # priority -> tag last granted
    tenant_sends: dict[str | None, list[float]] = field(default_factory=dict)  # BULK grants
    last_tag: dict[tuple[int, str | None], float] = field(default_factory=dict)

    def active(self, now: float, margin: float) -> int:
        """Sends still counted at ``now`` (dropping expired ones).

        A send at ``s`` expires when ``s + span <= now``, computed exactly this way everywhere
        so a wake-up scheduled at ``s + span`` always finds that send expired.
        """
        span = self.window + margin
        cut = bisect.bisect_right(self.sends, now, key=lambda s: s + span)
        if cut:
            del self.sends[:cut]
        return len(self.sends)


class RequestScheduler:
    """Per-group sliding-window budgets with priority queues.

    ``limits`` (merged over DEFAULT_LIMITS) and ``window`` seed the budgets, which response
    headers then correct; ``reserve_fraction``/``reserve_min`` size the part
    of each window PREFETCH/BACKGROUND may not touch; ``window_margin`` pads each send's expiry
    (latency/clock skew); ``penalty_margin`` is added after a penalty (capped at 10 % of it).
    """

    def __init__(
        self,
        limits: Mapping[str, int] | None = None,
        window: float = DEFAULT_WINDOW,
        *,
        reserve_fraction: float = 0.2,
        reserve_min: int = 1,
        bulk_reserve_fraction: float = 0.05,
        spare_from: Priority = Priority.PREFETCH,
        window_margin: float = 0.1,
        penalty_margin: float = 1.0,
        default_limit: int = DEFAULT_LIMITS["Medium"],
    ) -> None:
        # Given limits override the documented defaults per group (case-insensitively).
        self._defaults = {k.lower(): (k, v) for k, v in DEFAULT_LIMITS.items()}
        for name, limit in (limits or {}).items():
            canonical = self._defaults.get(name.lower(), (name, 0))[0]
            self._defaults[name.lower()] = (canonical, limit)
        self._window = float(window)
        self.reserve_fraction = reserve_fraction
        self.reserve_min = reserve_min
        self.bulk_reserve_fraction = bulk_reserve_fraction
        self.spare_from = spare_from
        self.window_margin = window_margin
        self.penalty_margin = penalty_margin
        self.default_limit = default_limit
        self._groups: dict[str, _Group] = {}
        self._seq = itertools.count()

    # -- group bookkeeping -------------------------------------------------------------

    def _group(self, name: str) -> _Group:
        key = name.lower()
        g = self._groups.get(key)
        if g is None:
            canonical, limit = self._defaults.get(key, (name, self.default_limit))
            g = _Group(canonical, max(1, limit), self._window)
            self._groups[key] = g
        return g

    def reserve(self, group: str) -> int:
        """Slots per window kept for INTERACTIVE..METADATA work."""
        g = self._group(group)
        want = max(self.reserve_min, math.ceil(g.limit * self.reserve_fraction))
        return max(0, min(g.limit - 1, want))

    def bulk_reserve(self, group: str) -> int:
        """Slots per window BULK work leaves to INTERACTIVE..METADATA: one Heavy request
        (5 % of a group, at least 1; Heavy is 10 per 60 s, docs/ringcentral.md §3.1), so a
        file the user clicks during a copy that wants the whole window is served at once
        instead of a window later. A pure copy pays 10 % of Heavy throughput for it."""
        g = self._group(group)
        want = max(1, math.ceil(g.limit * self.bulk_reserve_fraction))
        return max(0, min(g.limit - 1, want, self.reserve(group)))

    def _cap(self, g: _Group, w: _Waiter) -> int:
        if w.spare_only:
            return g.limit - self.reserve(g.name)
        if w.priority >= Priority.BULK:
            return g.limit - self.bulk_reserve(g.name)
        return g.limit

    def remaining(self, group: str) -> int:
        """Estimated requests left in the current window (ignores any penalty)."""
        g = self._group(group)
        return max(0, g.limit - g.active(trio.current_time(), self.window_margin))

    def spare(self, group: str) -> int:
        """Requests PREFETCH/BACKGROUND may still send right now (0 during a penalty)."""
        g = self._group(group)
        if trio.current_time() < g.resume_at:
            return 0
        return max(0, self.remaining(group) - self.reserve(group))

    # -- the slot ----------------------------------------------------------------------

    @asynccontextmanager
    async def slot(
        self, group: str, priority: Priority = Priority.METADATA, deadline: float | None = None,
        tenant: str | None = None,
    ) -> AsyncIterator[Slot]:
        """Wait for budget in ``group``, then let the caller send exactly one request.

        Raises BudgetExhaustedError at once when the slot cannot be granted before
        ``deadline`` (absolute trio time), or later if higher-priority work pushes it past.
        ``tenant`` (default: the ``TENANT`` context variable) is the fairness key.
        """
        if group.lower() in UNTHROTTLED_GROUPS:
            g = self._group(group)
            g.sent += 1
            _granted(g.name.lower())
            yield Slot(g.name.lower(), trio.current_time())
            return
        g = self._group(group)
        w = await self._acquire(g, priority, deadline, tenant if tenant else TENANT.get())
        assert w.granted_at is not None
        slot = Slot(g.name.lower(), w.granted_at, w.tenant)
        _granted(slot.group)
        try:
            yield slot
        finally:
            self._restamp(slot, trio.current_time())

    async def _acquire(self, g: _Group, priority: Priority, deadline: float | None,
                       tenant: str | None = None) -> _Waiter:
        start = now = trio.current_time()
        w = _Waiter(int(priority), next(self._seq), priority >= self.spare_from, deadline,
                    tenant, since=now)
        # Start-time fair queuing: a tenant's next waiter starts after its previous one, and
        # never before the tag last granted at this priority (an idle tenant has no credit).
        p = int(priority)
        w.tag = max(g.vtime.get(p, 0.0), g.last_tag.get((p, tenant), -math.inf) + 1.0)
        g.last_tag[(p, tenant)] = w.tag
        bisect.insort(g.waiters, w, key=lambda x: x.order)
        self._pump(g, now)
        if w.granted():
            return w
        g.waits += 1
        try:
            while not w.granted():
                if deadline is not None and w.eta > deadline:
                    raise BudgetExhaustedError(g.name, w.eta - now)
                # Other tasks move this deadline when the queue or the budget changes.
                with trio.CancelScope(deadline=self._wake(w, now)) as w.scope:
                    await w.event.wait()
                w.scope = None
                if not w.granted():
                    now = trio.current_time()
                    self._pump(g, now)
        except BaseException:
            self._abandon(g, w)
            raise
        finally:
            w.scope = None
            g.total_wait_s += trio.current_time() - start
        return w

    @staticmethod
    def _wake(w: _Waiter, now: float) -> float:
        """When a sleeping waiter should look again: at its eta, or now if it must give up."""
        if w.deadline is not None and w.eta > w.deadline:
            return now
        return max(w.eta, now + 1e-6)  # the floor only guards against a spin

    def _abandon(self, g: _Group, w: _Waiter) -> None:
        """A waiter gave up (deadline, cancel): drop it, or give back a slot it never used."""
        if w in g.waiters:
            g.waiters.remove(w)
        elif w.granted_at is not None:  # granted, then cancelled before sending
            self._take_back(g, w.granted_at, w.tenant)
        self._pump(g, trio.current_time())

    def _pump(self, g: _Group, now: float) -> None:
        """Grant slots to waiters at the head of the queue while budget allows, then
        re-time everyone still waiting.

        Head-of-line blocking is deliberate: a lower-priority waiter never overtakes.
        """
        if now >= g.resume_at:
            while g.waiters:
                head = g.waiters[0]
                if g.active(now, self.window_margin) >= self._cap(g, head):
                    break
                if head.priority == Priority.BULK:
                    shares = self._bulk_shares(g, now)
                    pick = next((w for w in g.waiters if w.priority == Priority.BULK
                                 and shares.get(w.tenant, 1) > 0), None)
                    if pick is None:
                        break  # every waiting copy has had its share: keep the rest
                    head = pick
                    g.tenant_sends.setdefault(head.tenant, []).append(now)
                g.waiters.remove(head)
                g.vtime[head.priority] = max(g.vtime.get(head.priority, 0.0), head.tag)
                g.sends.append(now)  # now >= every recorded send
                g.sent += 1
                head.granted_at = now
                head.event.set()
        self._schedule(g, now)

    def _bulk_shares(self, g: _Group, now: float) -> dict[str | None, int]:
        """Slots each BULK tenant may still take in the current window. Copies that ran in
        the window or wait now split the bulk budget evenly: a sequential ``cp`` (one request
        at a time, absent from the queue while it downloads) keeps its half against a copy
        with eight threads queued, even when a whole window's slots free at once. A copy
        alone has the whole bulk budget (a share is held for a copy that was active within
        the last window, at most one window after it finished)."""
        span = g.window + self.window_margin
        active: dict[str | None, int] = {}
        for tenant, sends in list(g.tenant_sends.items()):
            cut = bisect.bisect_right(sends, now, key=lambda s: s + span)
            del sends[:cut]
            if sends:
                active[tenant] = len(sends)
            else:
                del g.tenant_sends[tenant]
        for w in g.waiters:
            if w.priority == Priority.BULK:
                active.setdefault(w.tenant, 0)
        if len(active) <= 1:
            return {t: g.limit for t in active}
        share = math.ceil((g.limit - self.bulk_reserve(g.name)) / len(active))
        return {t: share - n for t, n in active.items()}

    def _schedule(self, g: _Group, now: float) -> None:
        """Set each waiter's eta (earliest grant if the queue stays as it is) and move its
        wake-up there, so a freed slot is taken on time and a hopeless deadline fails fast."""
        if not g.waiters:
            return
        g.active(now, self.window_margin)
        span = g.window + self.window_margin
        sends = list(g.sends)
        t = max(now, g.resume_at)
        # A copy past its share waits until its own oldest send of the window expires;
        # whoever queues behind the bulk class is not served before that either.
        shares = self._bulk_shares(g, now) if len(g.tenant_sends) > 0 else {}
        mine = {k: list(v) for k, v in g.tenant_sends.items()}
        bulk_floor = -math.inf
        for x in g.waiters:
            cap = self._cap(g, x)
            first = bisect.bisect_right(sends, t, key=lambda s: s + span)
            if len(sends) - first >= cap:
                t = max(t, sends[len(sends) - cap] + span)
            eta = t
            if x.priority == Priority.BULK and len(shares) > 1:
                own = mine.setdefault(x.tenant, [])
                allowed = len(own) + shares.get(x.tenant, 0)
                if allowed <= len(own) and own:
                    eta = max(eta, own[max(0, len(own) - allowed)] + span)
                own.append(eta)
                bulk_floor = max(bulk_floor, eta)
            elif x.priority > Priority.BULK:
                t = eta = max(t, bulk_floor)
            x.eta = eta
            if x.scope is not None:
                x.scope.deadline = self._wake(x, now)
            bisect.insort(sends, eta)

    def _take_back(self, g: _Group, at: float, tenant: str | None) -> None:
        """Uncount a grant made at ``at``: its stamp in the window (if still there), its
        charge to a copy's share, and the group's total."""
        mine = g.tenant_sends.get(tenant)
        if mine is not None and at in mine:
            mine.remove(at)
        i = bisect.bisect_left(g.sends, at)
        if i < len(g.sends) and g.sends[i] == at:
            del g.sends[i]
        g.sent -= 1

    def refund(self, slot: Slot) -> None:
        """The request never reached the server (connection refused, connect timeout): it
        cost nothing there, so it costs nothing here. Without this, a dead network would
        spend the budget (and a copy's share of it) on nothing and turn "offline" into
        "throttled"."""
        g = self._groups.get(slot.group)
        if g is None or slot.group in UNTHROTTLED_GROUPS or math.isnan(slot.sent_at):
            return  # not counted, or refunded already
        self._take_back(g, slot.sent_at, slot.tenant)
        slot.sent_at = math.nan  # the exit's re-stamp finds nothing to move
        self._pump(g, trio.current_time())

    def _restamp(self, slot: Slot, now: float) -> None:
        g = self._groups[slot.group]
        i = bisect.bisect_left(g.sends, slot.sent_at)
        if i < len(g.sends) and g.sends[i] == slot.sent_at:
            del g.sends[i]
            bisect.insort(g.sends, now)
        slot.sent_at = now

    # -- feedback from responses -------------------------------------------------------

    def rekey(self, slot: Slot, actual_group: str) -> None:
        """The server charged the request to another group than we guessed: move it."""
        if actual_group.lower() == slot.group:
            return
        old = self._groups[slot.group]
        self._take_back(old, slot.sent_at, slot.tenant)
        self._pump(old, trio.current_time())
        new = self._group(actual_group)
        bisect.insort(new.sends, slot.sent_at)
        new.sent += 1
        slot.group = actual_group.lower()

    def observe(
        self,
        group: str,
        limit: int | None = None,
        remaining: int | None = None,
        window: float | None = None,
    ) -> None:
        """Correct the estimate from ``X-Rate-Limit-Limit/-Remaining/-Window``.

        If the server has less left than we think, someone else (another process of the same
        user+app) is spending it: record phantom sends so our remaining equals the server's.
        A higher server figure is ignored (our in-flight requests may not be counted yet).
        """
        g = self._group(group)
        now = trio.current_time()
        if window is not None and window > 0:
            g.window = float(window)
        if limit is not None and limit > 0:
            g.limit = limit
        if remaining is not None:
            g.server_remaining = remaining
            ours = g.limit - g.active(now, self.window_margin)
            for _ in range(max(0, ours - max(0, remaining))):
                g.sends.append(now)
                g.phantoms += 1
        self._pump(g, now)

    def penalize(self, group: str, retry_after: float | None = None, *,
                 count: bool = True) -> float:
        """A 429 arrived: send nothing in ``group`` until the penalty has fully passed.

        Returns the absolute time sending resumes. Overlapping 429s extend, never shorten.
        ``count=False`` silences the group without counting a 429 in it (a second group
        silenced for the same answer).
        """
        g = self._group(group)
        now = trio.current_time()
        seconds = 60.0 if retry_after is None else max(0.0, retry_after)
        g.throttled_429 += count
        g.penalty_until = max(g.penalty_until, now + seconds)
        margin = min(self.penalty_margin, 0.1 * seconds)
        g.resume_at = max(g.resume_at, g.penalty_until + margin)
        self._schedule(g, now)
        return g.resume_at

    def resume_at(self, group: str) -> float:
        """Absolute time the group's penalty (plus margin) ends; -inf when none."""
        return self._group(group).resume_at

    def next_free(self, group: str) -> float:
        """Seconds until a request at the head of ``group``'s queue could be sent (0: now)."""
        g = self._group(group)
        now = trio.current_time()
        t = max(now, g.resume_at)
        if g.active(now, self.window_margin) >= g.limit:
            t = max(t, g.sends[len(g.sends) - g.limit] + g.window + self.window_margin)
        return t - now

    def queue(self, group: str) -> dict[str, dict[str, Any]]:
        """Who waits in ``group``: per priority name, how many, how many tenants, the
        longest wait so far and the earliest expected grant (seconds from now)."""
        g = self._group(group)
        now = trio.current_time()
        out: dict[str, dict[str, Any]] = {}
        for w in g.waiters:
            name = Priority(w.priority).name.lower()
            q = out.setdefault(name, {"waiting": 0, "tenants": set(), "longest_wait_s": 0.0,
                                      "next_grant_s": math.inf})
            q["waiting"] += 1
            q["tenants"].add(w.tenant)
            q["longest_wait_s"] = max(q["longest_wait_s"], round(now - w.since, 3))
            q["next_grant_s"] = min(q["next_grant_s"], max(0.0, w.eta - now))
        for q in out.values():
            q["tenants"] = len(q["tenants"])
            q["next_grant_s"] = (round(q["next_grant_s"], 3)
                                 if math.isfinite(q["next_grant_s"]) else None)
        return out

    # -- status ------------------------------------------------------------------------

    def stats(self) -> dict[str, dict[str, Any]]:
        """JSON-able counters per group for a status view."""
        now = trio.current_time()
        out: dict[str, dict[str, Any]] = {}
        for g in self._groups.values():
            penalty_left = max(0.0, g.resume_at - now) if g.resume_at > now else 0.0
            out[g.name] = {
                "sent": g.sent,
                "throttled_429": g.throttled_429,
                "waits": g.waits,
                "total_wait_s": round(g.total_wait_s, 3),
                "remaining": self.remaining(g.name),
                "spare": self.spare(g.name),
                "reserve": self.reserve(g.name),
                "bulk_reserve": self.bulk_reserve(g.name),
                "limit": g.limit,
                "window": g.window,
                "queued": len(g.waiters),
                "queue": self.queue(g.name),
                "next_free_s": round(self.next_free(g.name), 3),
                "server_remaining": g.server_remaining,
                "phantoms": g.phantoms,
                "penalty_until": g.penalty_until if math.isfinite(g.penalty_until) else None,
                "penalty_remaining_s": round(penalty_left, 3),
            }
        return out
