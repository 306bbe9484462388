"""RequestScheduler under trio's MockClock (autojump): minutes of rate limiting in milliseconds."""

from __future__ import annotations

import json
import math
import random

import pytest
import trio
import trio.testing
from trio.testing import MockClock

from rcfs.api import BudgetExhaustedError, Priority, RequestScheduler
from rcfs.api.scheduler import DEFAULT_LIMITS, ON_SLOT

MARGIN = 0.1  # RequestScheduler's default window_margin


def make(**kw: object) -> RequestScheduler:
    return RequestScheduler(**kw)  # type: ignore[arg-type]


async def take(s: RequestScheduler, group: str, prio: Priority = Priority.METADATA,
               deadline: float | None = None) -> float:
    async with s.slot(group, prio, deadline):
        return trio.current_time()


async def test_defaults_are_the_documented_limits(autojump_clock: MockClock) -> None:
    assert dict(DEFAULT_LIMITS) == {"Light": 50, "Medium": 40, "Heavy": 10, "Auth": 5}
    s = make()
    assert [s.remaining(g) for g in ("Light", "Medium", "Heavy", "Auth")] == [50, 40, 10, 5]
    s = make(limits={"heavy": 3, "Glip": 7})
    assert [s.remaining(g) for g in ("Light", "Heavy", "glip", "Other")] == [50, 3, 7, 40]
    assert set(s.stats()) == {"Light", "Heavy", "Glip", "Other"}


async def test_window_full_waits_for_oldest_send_to_expire(autojump_clock: MockClock) -> None:
    s = make()
    t0 = trio.current_time()
    times = [await take(s, "Heavy") for _ in range(10)]
    assert times == [t0] * 10
    assert s.remaining("Heavy") == 0
    t11 = await take(s, "Heavy")
    assert t11 == pytest.approx(t0 + 60 + MARGIN)
    assert s.stats()["Heavy"]["waits"] == 1


async def test_on_slot_is_called_when_the_slot_is_granted_not_while_it_waits(
        autojump_clock: MockClock) -> None:
    """The content reader keeps a download whose request holds a slot (its budget is
    spent) and drops one still waiting: the hook must fire at the grant, in the task that
    asked, and only there."""
    s = make(limits={"Heavy": 1}, window=10.0)
    granted: list[tuple[str, float]] = []
    await take(s, "Heavy")  # the window's only slot: the next request waits 10 s
    t0 = trio.current_time()

    async def ask(name: str, group: str) -> None:
        ON_SLOT.set(lambda group: granted.append((f"{name}:{group}", trio.current_time())))
        await take(s, group)

    async with trio.open_nursery() as n:
        n.start_soon(ask, "heavy", "Heavy")
        n.start_soon(ask, "unthrottled", "NoThrottling")
        await trio.testing.wait_all_tasks_blocked()
        assert granted == [("unthrottled:nothrottling", t0)]  # Heavy waits for its slot
    name, when = granted[1]
    assert name == "heavy:heavy" and when == pytest.approx(t0 + 10 + MARGIN)
    assert ON_SLOT.get() is None  # set inside the tasks only
    await take(s, "Light")
    assert len(granted) == 2


async def test_sliding_not_fixed_window(autojump_clock: MockClock) -> None:
    s = make()
    t0 = trio.current_time()
    for _ in range(5):
        await take(s, "Heavy")
    await trio.sleep(30)
    for _ in range(5):
        await take(s, "Heavy")
    # The 11th and 15th free when the t0 sends expire; the 16th only when the t0+30 ones do.
    got = [await take(s, "Heavy") for _ in range(6)]
    assert got[:5] == [pytest.approx(t0 + 60 + MARGIN)] * 5
    assert got[5] == pytest.approx(t0 + 90 + MARGIN)


async def test_never_more_than_limit_in_any_window_under_load(autojump_clock: MockClock) -> None:
    s = make(limits={"Heavy": 7}, window=10.0)
    grants: list[float] = []
    rng = random.Random(7)

    async def worker(prio: Priority) -> None:
        for _ in range(6):
            await trio.sleep(rng.uniform(0, 3))
            async with s.slot("Heavy", prio):
                grants.append(trio.current_time())
                await trio.sleep(rng.uniform(0, 0.5))

    async with trio.open_nursery() as n:
        for i in range(8):
            n.start_soon(worker, Priority(i % 3))
    assert len(grants) == 48
    grants.sort()
    for t in grants:
        in_window = [g for g in grants if t - 10.0 < g <= t]
        assert len(in_window) <= 7


async def test_groups_are_case_insensitive_and_independent(autojump_clock: MockClock) -> None:
    s = make()
    for _ in range(5):
        await take(s, "auth")
    assert s.remaining("Auth") == 0
    assert s.remaining("AUTH") == 0
    assert s.remaining("Light") == 50
    assert set(s.stats()) == {"Auth", "Light"}


async def test_server_lower_remaining_adds_phantom_sends(autojump_clock: MockClock) -> None:
    s = make()
    await take(s, "Light")
    assert s.remaining("Light") == 49
    # Another process of the same user spent 46: trust the server.
    s.observe("light", limit=50, remaining=3, window=60)
    assert s.remaining("Light") == 3
    t0 = trio.current_time()
    for _ in range(3):
        assert await take(s, "Light") == t0
    t = await take(s, "Light")
    assert t == pytest.approx(t0 + 60 + MARGIN)
    assert s.stats()["Light"]["phantoms"] == 46


async def test_server_higher_remaining_is_ignored_and_limit_window_updated(
    autojump_clock: MockClock,
) -> None:
    s = make()
    for _ in range(10):
        await take(s, "Medium")
    s.observe("Medium", limit=40, remaining=39)  # in-flight ones not counted yet
    assert s.remaining("Medium") == 30
    s.observe("Medium", limit=100, remaining=None, window=5)
    st = s.stats()["Medium"]
    assert (st["limit"], st["window"], st["remaining"]) == (100, 5.0, 90)
    await trio.sleep(5 + MARGIN)
    assert s.remaining("Medium") == 100


async def test_priority_order_when_slot_frees(autojump_clock: MockClock) -> None:
    s = make(limits={"Heavy": 1}, window=10.0, reserve_min=0, reserve_fraction=0)
    await take(s, "Heavy")
    order: list[str] = []

    async def want(name: str, prio: Priority, delay: float) -> None:
        await trio.sleep(delay)
        async with s.slot("Heavy", prio):
            order.append(name)

    async with trio.open_nursery() as n:
        n.start_soon(want, "bg1", Priority.BACKGROUND, 1)
        n.start_soon(want, "bg2", Priority.BACKGROUND, 2)
        n.start_soon(want, "pre", Priority.PREFETCH, 3)
        n.start_soon(want, "meta", Priority.METADATA, 4)
        n.start_soon(want, "int1", Priority.INTERACTIVE, 5)
        n.start_soon(want, "int2", Priority.INTERACTIVE, 6)
        n.start_soon(want, "list", Priority.LISTING, 7)
    assert order == ["int1", "int2", "list", "meta", "pre", "bg1", "bg2"]


async def test_background_only_uses_spare_budget(autojump_clock: MockClock) -> None:
    s = make()  # Heavy 10: reserve max(1, ceil(2.0)) = 2
    assert s.reserve("Heavy") == 2
    assert s.spare("Heavy") == 8
    t0 = trio.current_time()
    for _ in range(8):
        assert await take(s, "Heavy", Priority.BACKGROUND) == t0
    assert s.spare("Heavy") == 0
    assert s.remaining("Heavy") == 2
    # Background must now wait a window, while interactive work still gets the reserve at once.
    async with trio.open_nursery() as n:
        bg_time: list[float] = []

        async def bg() -> None:
            bg_time.append(await take(s, "Heavy", Priority.BACKGROUND))

        n.start_soon(bg)
        await trio.sleep(1)
        assert await take(s, "Heavy", Priority.INTERACTIVE) == t0 + 1
        assert await take(s, "Heavy", Priority.LISTING) == t0 + 1
    assert bg_time == [pytest.approx(t0 + 60 + MARGIN)]


async def test_background_never_starves_interactive_under_steady_load(
    autojump_clock: MockClock,
) -> None:
    s = make(limits={"Light": 10}, window=10.0)
    waits: list[float] = []

    async def background() -> None:
        while True:
            async with s.slot("Light", Priority.BACKGROUND):
                pass

    async with trio.open_nursery() as n:
        for _ in range(5):
            n.start_soon(background)
        await trio.sleep(25)
        for _ in range(2):  # the reserve (2 of 10) is there for interactive work
            t = trio.current_time()
            await take(s, "Light", Priority.INTERACTIVE)
            waits.append(trio.current_time() - t)
        n.cancel_scope.cancel()
    assert waits == [0, 0]


async def test_reserve_never_blocks_a_one_slot_group_forever(autojump_clock: MockClock) -> None:
    s = make(limits={"Tiny": 1})
    assert s.reserve("Tiny") == 0
    await take(s, "Tiny", Priority.BACKGROUND)


async def test_budget_exhausted_raises_immediately_when_deadline_too_close(
    autojump_clock: MockClock,
) -> None:
    s = make()
    for _ in range(10):
        await take(s, "Heavy")
    t0 = trio.current_time()
    with pytest.raises(BudgetExhaustedError) as ei:
        await take(s, "Heavy", Priority.INTERACTIVE, deadline=t0 + 5)
    assert trio.current_time() == t0  # did not wait uselessly
    assert ei.value.group == "Heavy"
    assert ei.value.wait_s == pytest.approx(60 + MARGIN)
    assert str(ei.value) == "Heavy budget empty for 60.1 s"
    assert s.stats()["Heavy"]["queued"] == 0
    # A deadline past the free time waits and succeeds.
    assert await take(s, "Heavy", deadline=t0 + 61) == pytest.approx(t0 + 60 + MARGIN)


async def test_budget_exhausted_counts_waiters_ahead(autojump_clock: MockClock) -> None:
    s = make(limits={"Heavy": 1}, window=10.0)
    await take(s, "Heavy")
    t0 = trio.current_time()
    async with trio.open_nursery() as n:
        n.start_soon(take, s, "Heavy", Priority.INTERACTIVE)
        await trio.testing.wait_all_tasks_blocked()
        # One interactive waiter ahead: the next free slot after its is at t0 + 2 windows.
        with pytest.raises(BudgetExhaustedError) as ei:
            await take(s, "Heavy", Priority.LISTING, deadline=t0 + 15)
        assert ei.value.wait_s == pytest.approx(2 * (10 + MARGIN))


async def test_budget_exhausted_when_higher_priority_overtakes_while_waiting(
    autojump_clock: MockClock,
) -> None:
    s = make(limits={"Heavy": 1}, window=10.0, reserve_min=0, reserve_fraction=0)
    await take(s, "Heavy")
    t0 = trio.current_time()
    raised_at: list[float] = []

    async def low() -> None:
        with pytest.raises(BudgetExhaustedError):
            await take(s, "Heavy", Priority.BACKGROUND, deadline=t0 + 15)
        raised_at.append(trio.current_time())

    async with trio.open_nursery() as n:
        n.start_soon(low)
        await trio.sleep(1)
        n.start_soon(take, s, "Heavy", Priority.INTERACTIVE)
    assert raised_at and raised_at[0] <= t0 + 15


async def test_penalty_means_silence_then_resume(autojump_clock: MockClock) -> None:
    s = make(penalty_margin=1.0)
    t0 = trio.current_time()
    resume = s.penalize("Medium", 60)
    assert resume == pytest.approx(t0 + 61)
    assert s.spare("Medium") == 0
    with pytest.raises(BudgetExhaustedError) as ei:
        await take(s, "Medium", Priority.INTERACTIVE, deadline=t0 + 30)
    assert ei.value.wait_s == pytest.approx(61)
    t = await take(s, "Medium", Priority.INTERACTIVE)
    assert t == pytest.approx(t0 + 61)
    st = s.stats()["Medium"]
    assert st["throttled_429"] == 1
    assert st["penalty_remaining_s"] == 0


async def test_penalty_default_and_overlapping_429s_extend(autojump_clock: MockClock) -> None:
    s = make()
    t0 = trio.current_time()
    s.penalize("Light")  # no Retry-After → 60 s
    await trio.sleep(30)
    s.penalize("Light", 60)  # a late in-flight 429 restarts the server's penalty
    assert s.resume_at("Light") == pytest.approx(t0 + 91)
    s.penalize("Light", 5)  # a shorter one never shortens it
    assert s.resume_at("Light") == pytest.approx(t0 + 91)
    assert await take(s, "Light") == pytest.approx(t0 + 91)


async def test_small_penalty_scales_the_margin(autojump_clock: MockClock) -> None:
    s = make()
    t0 = trio.current_time()
    s.penalize("Heavy", 2)
    assert await take(s, "Heavy") == pytest.approx(t0 + 2.2)


async def test_cancelled_waiter_leaves_the_queue(autojump_clock: MockClock) -> None:
    s = make(limits={"Heavy": 1}, window=10.0)
    await take(s, "Heavy")
    with trio.move_on_after(3):
        await take(s, "Heavy", Priority.INTERACTIVE)
    assert s.stats()["Heavy"]["queued"] == 0
    t0 = trio.current_time()
    assert await take(s, "Heavy", Priority.BACKGROUND) == pytest.approx(t0 + 7 + MARGIN)


async def test_limit_raised_by_headers_wakes_waiters(autojump_clock: MockClock) -> None:
    s = make(limits={"Heavy": 1}, window=10.0, reserve_min=0, reserve_fraction=0)
    await take(s, "Heavy")
    t0 = trio.current_time()
    got: list[float] = []

    async def waiter() -> None:
        got.append(await take(s, "Heavy"))

    async with trio.open_nursery() as n:
        n.start_soon(waiter)
        await trio.sleep(1)
        s.observe("Heavy", limit=5, remaining=3)
    assert got == [t0 + 1]


async def test_rekey_moves_the_send(autojump_clock: MockClock) -> None:
    s = make()
    async with s.slot("Medium") as slot:
        pass
    s.rekey(slot, "light")
    assert s.remaining("Medium") == 40
    assert s.remaining("Light") == 49
    st = s.stats()
    assert st["Medium"]["sent"] == 0 and st["Light"]["sent"] == 1


async def test_unthrottled_group_never_waits(autojump_clock: MockClock) -> None:
    s = make()
    t0 = trio.current_time()
    for _ in range(100):
        assert await take(s, "NoThrottling") == t0


async def test_slot_is_restamped_when_the_response_arrives(autojump_clock: MockClock) -> None:
    s = make(limits={"Heavy": 1}, window=10.0)
    t0 = trio.current_time()
    async with s.slot("Heavy"):
        await trio.sleep(4)  # slow response: the server counted it up to 4 s late
    assert await take(s, "Heavy") == pytest.approx(t0 + 14 + MARGIN)


async def test_stats_are_json(autojump_clock: MockClock) -> None:
    s = make()
    await take(s, "Light")
    s.penalize("Heavy", 10)
    doc = json.loads(json.dumps(s.stats()))
    assert doc["Light"]["sent"] == 1 and doc["Light"]["remaining"] == 49
    assert doc["Heavy"]["penalty_remaining_s"] == pytest.approx(11)
    assert doc["Heavy"]["penalty_until"] is not None
    assert not math.isinf(doc["Light"]["total_wait_s"])


async def test_bulk_tenants_take_turns_and_interactive_goes_first(
        autojump_clock: MockClock) -> None:
    """Tenant "a" queues six bulk requests before "b" asks for two and an interactive
    reader for one: the interactive one is next, then a and b alternate."""
    s = make(limits={"Heavy": 1}, window=10.0, reserve_min=0, reserve_fraction=0)
    await take(s, "Heavy")
    order: list[str] = []

    async def want(name: str, prio: Priority, tenant: str | None, delay: float) -> None:
        await trio.sleep(delay)
        async with s.slot("Heavy", prio, tenant=tenant):
            order.append(name)

    async with trio.open_nursery() as n:
        for i in range(6):
            n.start_soon(want, f"a{i}", Priority.BULK, "a", 0.1 * (i + 1))
        n.start_soon(want, "b0", Priority.BULK, "b", 1)
        n.start_soon(want, "b1", Priority.BULK, "b", 1.1)
        n.start_soon(want, "mpv", Priority.INTERACTIVE, "c", 2)
        await trio.sleep(3)
        q = s.queue("Heavy")
        assert q["bulk"]["waiting"] == 8 and q["bulk"]["tenants"] == 2
        assert q["interactive"]["waiting"] == 1
        assert 0 < s.next_free("Heavy") <= 10 + MARGIN
    assert order == ["mpv", "a0", "b0", "a1", "b1", "a2", "a3", "a4", "a5"]


async def test_tenant_from_context_variable(autojump_clock: MockClock) -> None:
    from rcfs.api.scheduler import TENANT

    s = make(limits={"Heavy": 1}, window=10.0, reserve_min=0, reserve_fraction=0)
    await take(s, "Heavy")
    order: list[str] = []

    async def want(name: str, tenant: str, delay: float) -> None:
        TENANT.set(tenant)
        await trio.sleep(delay)
        async with s.slot("Heavy", Priority.BULK):
            order.append(name)

    async with trio.open_nursery() as n:
        for i in range(3):
            n.start_soon(want, f"x{i}", "x", 0.1 * (i + 1))
        n.start_soon(want, "y0", "y", 1)
    assert order == ["x0", "y0", "x1", "x2"]


async def test_a_sequential_copy_keeps_its_share_against_a_threaded_one(
        autojump_clock: MockClock) -> None:
    """Eight workers of one copy keep eight requests queued; a sequential copy asks again
    0.5 s after each grant (its download). When a whole window's slots free at once, the
    threaded copy may not take them all: each copy gets half of the bulk budget."""
    s = make(limits={"Heavy": 10}, window=10.0)
    assert s.bulk_reserve("Heavy") == 1
    order: list[str] = []
    work = list(range(40))

    async def greedy() -> None:
        while work:
            work.pop()
            async with s.slot("Heavy", Priority.BULK, tenant="greedy"):
                order.append("g")

    async def sequential() -> None:
        for _ in range(12):
            async with s.slot("Heavy", Priority.BULK, tenant="seq"):
                order.append("s")
            await trio.sleep(0.5)

    async with trio.open_nursery() as n:
        for _ in range(8):
            n.start_soon(greedy)
        await trio.sleep(0.1)
        n.start_soon(sequential)
    # From the sequential copy's first grant to its last: about half the slots are its.
    last_s = len(order) - 1 - order[::-1].index("s")
    while_both = order[order.index("s"):last_s + 1]
    share = while_both.count("s") / len(while_both)
    assert 0.35 <= share <= 0.65, "".join(order)
    assert order.count("g") == 40 and order.count("s") == 12


async def test_refund_returns_the_slot_and_the_copys_share(autojump_clock: MockClock) -> None:
    """A send that never reached the server is refunded: the window's count and the BULK
    tenant's share both get the slot back, so the copy's next request goes out at once."""
    s = make()  # Heavy 10, one slot kept from BULK: two copies share 9, 5 each
    t0 = trio.current_time()

    async def bulk(tenant: str) -> float:
        async with s.slot("Heavy", Priority.BULK, tenant=tenant):
            return trio.current_time()

    assert await bulk("rsync") == t0
    assert [await bulk("cp") for _ in range(4)] == [t0] * 4
    async with s.slot("Heavy", Priority.BULK, tenant="cp") as slot:  # cp's 5th: refused
        assert s.remaining("Heavy") == 4
        s.refund(slot)
        assert s.remaining("Heavy") == 5
    assert s.remaining("Heavy") == 5  # leaving the block does not charge it again
    assert s.stats()["Heavy"]["sent"] == 5
    assert await bulk("cp") == t0  # still within cp's share of 5
    assert await bulk("cp") > t0 + 60  # the 6th is past it: wait for the window
