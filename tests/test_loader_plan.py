"""The epoch plan (torch-free): exactly once, the same order for any worker count, exact skips."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deai_data.loader.plan import EpochPlan, PlanConfig

records_strategy = st.lists(st.integers(0, 40), min_size=1, max_size=12)


def consumed(plan: EpochPlan, workers: int, skip: int = 0) -> list[tuple[int, list[tuple[int, int]]]]:
    """What a DataLoader with `workers` workers hands the loop: batches in rank-local order."""
    out = []
    for w in range(workers):
        for j, shards, rows in plan.batches(w, workers, skip):
            out.append((j, list(zip(shards.tolist(), rows.tolist(), strict=True))))
    return sorted(out)


@settings(max_examples=60, deadline=None)
@given(records_strategy, st.integers(1, 4), st.integers(1, 4), st.integers(1, 7), st.integers(1, 5),
       st.integers(1, 3), st.integers(0, 3))
def test_every_sample_exactly_once_across_ranks_and_workers(records, world, workers, batch, lanes, window, seed):
    config = PlanConfig(batch_size=batch, seed=seed, lanes=lanes, window=window)
    seen = Counter()
    for rank in range(world):
        for _, samples in consumed(EpochPlan(records, config, 0, world_size=world, rank=rank), workers):
            seen.update(samples)
    expected = {(s, r) for s, n in enumerate(records) for r in range(n)}
    assert set(seen) == expected and all(v == 1 for v in seen.values())


@settings(max_examples=40, deadline=None)
@given(records_strategy, st.integers(1, 5), st.integers(1, 6), st.integers(1, 5))
def test_same_order_for_any_number_of_workers(records, batch, lanes, epoch):
    plan = EpochPlan(records, PlanConfig(batch_size=batch, lanes=lanes, seed=3), epoch)
    reference = consumed(plan, 1)
    assert [j for j, _ in reference] == list(range(plan.num_batches))
    for workers in (2, 3, 5):
        assert consumed(plan, workers) == reference


@settings(max_examples=40, deadline=None)
@given(records_strategy, st.integers(1, 5), st.data())
def test_skipping_k_batches_gives_exactly_the_rest(records, batch, data):
    plan = EpochPlan(records, PlanConfig(batch_size=batch, seed=1), 2)
    full = consumed(plan, 1)
    k = data.draw(st.integers(0, len(full)))
    workers = data.draw(st.integers(1, 4))
    assert consumed(plan, workers, skip=k) == full[k:]


@pytest.mark.parametrize("tail", ["drop", "pad"])
def test_drop_and_pad_give_every_rank_the_same_count(tail):
    records = [10, 7, 3]  # 20 samples over 3 ranks
    sizes, seen = [], Counter()
    for rank in range(3):
        plan = EpochPlan(records, PlanConfig(batch_size=4, tail=tail), 0, world_size=3, rank=rank)
        sizes.append(plan.rank_size)
        for _, samples in consumed(plan, 2):
            seen.update(samples)
    assert len(set(sizes)) == 1
    if tail == "drop":
        assert sum(seen.values()) == 18 and max(seen.values()) == 1
    else:
        assert sum(seen.values()) == 21 and len(seen) == 20 and max(seen.values()) == 2


def test_order_depends_on_seed_and_epoch_only():
    records = [50] * 8
    def order(seed, epoch):
        return consumed(EpochPlan(records, PlanConfig(batch_size=10, seed=seed), epoch), 1)
    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(1, 1) and order(1, 0) != order(2, 0)
    flat = [s for _, b in order(1, 0) for s in b]
    assert flat != sorted(flat), "shuffled"
    unshuffled = EpochPlan(records, PlanConfig(batch_size=10, shuffle=False, lanes=1), 0)
    assert [s for _, b in consumed(unshuffled, 1) for s in b] == [(s, r) for s in range(8) for r in range(50)]


def test_workers_dividing_lanes_read_disjoint_shards():
    records = [100] * 16
    plan = EpochPlan(records, PlanConfig(batch_size=10, lanes=4, window=1), 0)
    shards_per_worker = []
    for w in range(4):
        used = set()
        for _, shards, _ in plan.batches(w, 4):
            used.update(np.unique(shards).tolist())
        shards_per_worker.append(used)
    for a in range(4):
        for b in range(a + 1, 4):
            assert not shards_per_worker[a] & shards_per_worker[b]


def test_bad_configs():
    with pytest.raises(ValueError):
        PlanConfig(batch_size=0)
    with pytest.raises(ValueError):
        PlanConfig(tail="wrap")
    with pytest.raises(ValueError):
        EpochPlan([1], PlanConfig(), 0, world_size=2, rank=2)


@settings(max_examples=80, deadline=None)
@given(records_strategy, st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.integers(1, 5),
       st.integers(1, 4), st.integers(1, 3), st.data())
def test_resuming_in_other_worlds_yields_exactly_the_rest(records, w0, w1, w2, batch, lanes, workers, data):
    """Ranks in lockstep take k0 batches in a world of w0, the job restarts with w1 ranks that take k1
    more, then with w2 ranks that finish the epoch: every sample exactly once."""
    config = PlanConfig(batch_size=batch, seed=2, lanes=lanes, window=2)
    seen = Counter()
    history: list[tuple[int, int]] = []
    for world, last in ((w0, False), (w1, False), (w2, True)):
        plans = [EpochPlan(records, config, 1, world_size=world, rank=r, resumed=history) for r in range(world)]
        k = 10**9 if last else data.draw(st.integers(0, max(p.num_batches for p in plans) + 1))
        for plan in plans:
            for _, samples in consumed(plan, workers)[:k]:
                seen.update(samples)
        history = [*history, (world, k)]
    expected = {(s, r) for s, n in enumerate(records) for r in range(n)}
    assert set(seen) == expected and all(v == 1 for v in seen.values())


@pytest.mark.parametrize("tail", ["drop", "pad"])
def test_resumed_ranks_stay_equal_with_drop_and_pad(tail):
    records = [7, 0, 13, 5, 9, 11]
    config = PlanConfig(batch_size=3, tail=tail, lanes=2)
    plans = [EpochPlan(records, config, 0, world_size=3, rank=r, resumed=[(2, 4)]) for r in range(3)]
    assert len({p.num_batches for p in plans}) == 1 and len({p.rank_size for p in plans}) == 1
    seen = Counter(s for p in plans for _, batch in consumed(p, 1) for s in batch)
    first = Counter(s for r in range(2) for _, batch in
                    consumed(EpochPlan(records, config, 0, world_size=2, rank=r), 1)[:4] for s in batch)
    if tail == "drop":  # nothing taken before comes again (pad repeats samples by design)
        assert not set(seen) & set(first)
