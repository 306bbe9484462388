"""IdSet: set semantics for message ids, compact for numeric ones."""

from __future__ import annotations

import random
import tracemalloc

from rcfs.namespace.idset import MERGE_AT, IdSet


def test_behaves_like_a_set_of_strings() -> None:
    rng = random.Random(7)
    pool = [str(rng.randrange(1, 10**12)) for _ in range(3 * MERGE_AT)]
    pool += ["0", "007", "abc", "12x", str(2**64), "", "٣"]  # not plain numbers: kept as str
    ref: set[str] = set()
    ids = IdSet(pool[:100])
    ref.update(pool[:100])
    for chunk in range(100, len(pool), 997):
        batch = pool[chunk:chunk + 997]
        ids.update(batch)
        ref.update(batch)
        probe = rng.sample(pool, 200) + [str(rng.randrange(1, 10**12)) for _ in range(50)]
        assert [p in ids for p in probe] == [p in ref for p in probe]
    assert len(ids) == len(ref)
    assert "7" not in ids and "007" in ids and 7 not in ids  # "007" is not the number 7


def test_a_hundred_thousand_ids_take_under_2_mb() -> None:
    ids = [str(5_200_000_000 + 7 * i) for i in range(100_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        compact = IdSet(ids)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert all(i in compact for i in ids[::1000])
    assert after - before < 2_000_000, after - before
