"""The pause/resume protocol's fault simulation at scale: tens of thousands of deterministic schedules
(tests/simulation.py, the same code the test suite runs 500 of), each with sweepers, workers and faults
injected between storage writes, each checked against the invariants I1-I7 of docs/parallel.md.

Writes a summary: schedules by storage, faults injected by kind, how many schedules ran without any
fault (there, I6 compares every decision with the reference asynchronous Hyperband), the decisions
checked, and the violations (with the seeds that replay them: `python tests/simulation.py SEED`).
Alongside, its speed: schedules per second, against the in-memory storage's in the same run.

    python benchmarks/fault_simulation.py --schedules 20000 --journal 1000 --sqlite 100 \
        --out benchmarks/reference/fault_simulation.json
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import common

REPO_ROOT = Path(__file__).resolve().parents[1]
FIRST_SEED = {"memory": 0, "journal": 1_000_000, "sqlite": 2_000_000}


def simulation() -> ModuleType:
    """tests/simulation.py, loaded from its file once per process (the tests import it as a plain
    module too)."""
    if "simulation" in sys.modules:
        return sys.modules["simulation"]
    spec = importlib.util.spec_from_file_location("simulation", REPO_ROOT / "tests" / "simulation.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["simulation"] = module  # its dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def run_chunk(storage: str, seeds: range) -> dict[str, Any]:
    """Schedules `seeds` on `storage`, summed up (runs in a worker process)."""
    logging.disable(logging.WARNING)
    sim = simulation()
    faults: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    violations: list[dict[str, Any]] = []
    started = time.perf_counter()
    for seed in seeds:
        schedule = sim.simulate(seed, (storage,))
        faults.update(schedule.faults)
        totals.update(
            schedules=1, fault_free=not schedule.faults, decisions=schedule.decisions,
            compared=schedule.compared, writes=schedule.writes,
            turns=schedule.steps, retrained_epochs=schedule.retrained_epochs,
            overlaps_by_fault=schedule.overlaps_by_fault, sweepers=schedule.plan.sweepers,
        )  # fmt: skip
        if schedule.violations:
            violations.append({"seed": seed, "violations": schedule.violations[:5]})
    return {
        "faults": dict(faults), "totals": dict(totals), "violations": violations,
        "seconds": time.perf_counter() - started,
    }  # fmt: skip


def run(storage: str, count: int, processes: int) -> dict[str, Any]:
    first, chunk = FIRST_SEED[storage], max(1, min(200, count // (processes * 4) or 1))
    chunks = [range(s, min(s + chunk, first + count)) for s in range(first, first + count, chunk)]
    started = time.perf_counter()
    with ProcessPoolExecutor(processes) as pool:
        parts = list(pool.map(run_chunk, [storage] * len(chunks), chunks))
    wall = time.perf_counter() - started
    faults: Counter[str] = sum((Counter(p["faults"]) for p in parts), Counter())
    totals: Counter[str] = sum((Counter(p["totals"]) for p in parts), Counter())
    violations = [v for p in parts for v in p["violations"]]
    return {
        "storage": storage, "seeds": [first, first + count - 1], "schedules": totals["schedules"],
        "fault_free_schedules": totals["fault_free"], "faults_injected": dict(sorted(faults.items())),
        "faults_total": sum(faults.values()), "decisions": totals["decisions"],
        "decisions_compared_with_the_reference": totals["compared"],
        "storage_writes": totals["writes"], "turns": totals["turns"],
        "epochs_retrained_after_faults": totals["retrained_epochs"],
        "epochs_beside_a_retry_by_a_job_taken_over": totals["overlaps_by_fault"],
        "schedules_with_violations": len(violations), "violations": violations[:20],
        "wall_s": round(wall, 1), "schedules_per_s": round(totals["schedules"] / wall, 2),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--schedules", type=int, default=20_000, help="in-memory schedules")
    parser.add_argument("--journal", type=int, default=1_000, help="schedules on a journal file")
    parser.add_argument("--sqlite", type=int, default=100, help="schedules on a SQLite file")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "fault_simulation.json"
    )
    args = parser.parse_args()
    report = common.new_report(
        "fault simulation of pause and resume: schedules, faults, invariant violations"
    )
    report["runs"] = []
    for storage, count in (("memory", args.schedules), ("journal", args.journal), ("sqlite", args.sqlite)):
        if count <= 0:
            continue
        result = run(storage, count, args.processes)
        report["runs"].append(result)
        print(
            f"{storage}: {result['schedules']} schedules, {result['faults_total']} faults "
            f"{result['faults_injected']}, {result['schedules_with_violations']} with violations, "
            f"{result['schedules_per_s']} schedules/s",
            flush=True,
        )
        common.write_result(report, args.out)
    memory = next((r for r in report["runs"] if r["storage"] == "memory"), None)
    if memory:  # speed next to the in-memory storage's, measured in the same run
        for result in report["runs"]:
            result["speed_vs_memory"] = round(result["schedules_per_s"] / memory["schedules_per_s"], 3)
    report["schedules"] = sum(r["schedules"] for r in report["runs"])
    report["violations"] = sum(r["schedules_with_violations"] for r in report["runs"])
    common.write_result(report, args.out)
    print(f"{report['schedules']} schedules, {report['violations']} with violations; {args.out}")


if __name__ == "__main__":
    main()
