"""The pause/resume protocol under every kind of fault, in hundreds of deterministic schedules
(tests/simulation.py): sweepers and workers on one real Optuna storage, faults between any two storage
writes, and after each schedule the invariants I1-I7 of docs/parallel.md.

A failing schedule prints its seed; `python tests/simulation.py SEED [STORAGE]` replays it exactly.
benchmarks/fault_simulation.py runs the same simulation over 20,000 schedules.
"""

from __future__ import annotations

import logging
from collections import Counter

import pytest
import simulation

# (storage, first seed, schedules): in memory most of all (fast), journal and SQLite files as a user
# would share them between sweepers on one machine. The fast suite runs the first of them (every kind
# of fault, in about 5 s); the slow part the rest: 532 schedules in all.
RUNS = [
    pytest.param("memory", 0, 120, id="memory"),
    pytest.param("journal", 100_000, 8, id="journal"),
    pytest.param("sqlite", 200_000, 1, id="sqlite"),
    pytest.param("memory", 120, 380, id="memory-more", marks=pytest.mark.slow),
    pytest.param("journal", 100_008, 22, id="journal-more", marks=pytest.mark.slow),
    pytest.param("sqlite", 200_001, 1, id="sqlite-more", marks=pytest.mark.slow),
]


@pytest.fixture(autouse=True)
def quiet() -> object:
    logging.disable(logging.WARNING)  # the sweeper's warnings about stale trials, hundreds of them
    yield
    logging.disable(logging.NOTSET)


@pytest.mark.parametrize(("storage", "first", "count"), RUNS)
def test_every_schedule_keeps_the_invariants(storage: str, first: int, count: int) -> None:
    faults: Counter[str] = Counter()
    failures, fault_free, compared = [], 0, 0
    for seed in range(first, first + count):
        schedule = simulation.simulate(seed, (storage,))
        faults.update(schedule.faults)
        fault_free += not schedule.faults
        compared += schedule.compared
        if schedule.violations:
            failures.append(f"seed {seed} ({schedule.plan}): " + "; ".join(schedule.violations[:3]))
    assert not failures, "\n".join(failures[:10])
    assert compared > 0 or count < 5  # I6 compared decisions (a lone schedule may fault first)
    if storage == "memory":  # enough schedules for every kind of fault, and some without any (I6)
        assert set(faults) == set(simulation.FAULT_KINDS), faults
        assert fault_free >= count // 5


def test_a_seed_replays_its_schedule() -> None:
    """Determinism: the same seed, the same interleaving, faults and outcome."""
    seed = next(
        s for s in range(50) if simulation.Plan.draw(s).faults >= 2 and simulation.Plan.draw(s).sweepers > 1
    )
    first, again = simulation.simulate(seed), simulation.simulate(seed)
    assert (first.faults, first.writes, first.steps) == (again.faults, again.writes, again.steps)


@pytest.mark.slow
def test_schedules_on_postgres_keep_the_invariants(postgres_url: str) -> None:
    """The same on PostgreSQL (a fresh database per schedule would be slow: one study per schedule)."""
    failures = []
    for seed in range(300_000, 300_020):
        schedule = simulation.simulate(seed, plan=simulation.Plan.draw(seed, (postgres_url,)))
        if schedule.violations:
            failures.append(f"seed {seed}: " + "; ".join(schedule.violations[:3]))
    assert not failures, "\n".join(failures)
