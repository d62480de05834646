"""The report's tables as markdown rows: the seed's Table 2 (baseline vs BOHB incumbents on the test set),
the search of each seed, and BOHB against random search at equal budget."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from jahs_bohb.report.sweeps import Sweep


def mean_std(raw: Sequence[float | None]) -> str:
    """Percent, with the standard deviation across seeds when there are several; `n/a` when none."""
    values = [v for v in raw if v is not None and math.isfinite(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{100 * values[0]:.2f}"
    return f"{100 * statistics.mean(values):.2f} ± {100 * statistics.stdev(values):.2f}"


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def table2(bohb: list[Sweep]) -> list[str]:
    """Baseline vs BOHB incumbents: test accuracy (mean ± std over seeds), time and epochs spent."""
    baselines = [
        s.evaluation("baseline") for s in bohb if s.evaluation("baseline").get("test_acc") is not None
    ]
    incumbents = [s.evaluation("incumbent") for s in bohb]
    rows = [
        "| Method | Test accuracy (%) | Seeds | Search time | Epochs trained (search) | Final training |",
        "|---|---|---|---|---|---|",
    ]
    if baselines:
        rows.append(
            f"| Baseline | {mean_std([b['test_acc'] for b in baselines])} | {len(baselines)} | - | - | "
            f"{statistics.mean(b.get('epochs', 0) for b in baselines):.0f} epochs, "
            f"{minutes(statistics.mean(b.get('wall_time_s') or 0 for b in baselines))} |"
        )
    search_s = [s.search_seconds() for s in bohb]
    epochs = [s.results.get("epochs_trained", 0) for s in bohb]
    rows.append(
        f"| BOHB incumbent | {mean_std([i.get('test_acc') for i in incumbents])} | {len(bohb)} | "
        f"{minutes(statistics.mean(search_s))} per seed | {statistics.mean(epochs):.0f} per seed "
        f"(unpruned: {statistics.mean(s.results.get('epochs_unpruned', 0) for s in bohb):.0f}) | "
        f"{statistics.mean(i.get('epochs') or 0 for i in incumbents):.0f} epochs, "
        f"{minutes(statistics.mean(i.get('wall_time_s') or 0 for i in incumbents))} |"
    )
    return rows


def search_rows(bohb: list[Sweep]) -> list[str]:
    """One row per seed: its configurations by outcome, best validation accuracy, epochs and time. A
    configuration may be trained by several trials in a row (paused at a rung, then continued); `pruned`
    counts those stopped or left paused at a rung, as the sweeper's results file does."""
    rows = [
        "| Seed study | Configurations (complete / pruned / failed) | Best val acc (%) "
        "| Epochs trained / unpruned | Search time |",
        "|---|---|---|---|---|",
    ]
    for s in bohb:
        r = s.results
        rows.append(
            f"| {s.study.study_name} | {r['n_complete']} / {r['n_pruned']} / {r['n_failed']} | "
            f"{100 * (r['best_value'] or 0):.2f} | "
            f"{r.get('epochs_trained', 0)} / {r.get('epochs_unpruned', 0)} | "
            f"{minutes(s.search_seconds())} |"
        )
    return rows


def equal_budget_rows(bohb: list[Sweep], random: list[Sweep]) -> list[str]:
    """The best validation accuracy each method had found once it had spent the epochs BOHB spent."""
    budgets = [s.results.get("epochs_trained", 0) for s in bohb]
    budget = min(budgets) if budgets else 0
    rows = [
        f"Budget: {budget} epochs per seed (what the BOHB sweeps trained).",
        "",
        "| Method | Best validation accuracy (%) at equal budget | Configurations | Seeds |",
        "|---|---|---|---|",
    ]
    for name, sweeps in (("BOHB (TPE + Hyperband)", bohb), ("Random search (no pruning)", random)):
        if sweeps:
            values = [v for s in sweeps if (v := s.best_at_budget(budget)) is not None]
            configurations = statistics.mean(s.configurations() for s in sweeps)
            rows.append(f"| {name} | {mean_std(values)} | {configurations:.0f} per seed | {len(sweeps)} |")
    return rows


def final_pick_rows(bohb: list[Sweep]) -> list[str]:
    """Per sweep: the configurations the final evaluation retrained, their value in the search and after
    retraining (validation: the pick is the best of them), and why the pick won."""
    rows = [
        "| Seed study | Configuration | Search value (epochs) | Validation after retraining | |",
        "|---|---|---|---|---|",
    ]
    reasons = []
    for sweep in bohb:
        candidates = sweep.final.get("candidates") or []
        pick = (sweep.final.get("incumbent") or {}).get("configuration")
        for candidate in candidates:
            value = candidate.get("value")
            retrained = f"{100 * value:.2f}%" if isinstance(value, float) else candidate.get("state", "-")
            rows.append(
                f"| {sweep.study.study_name} | #{candidate['configuration']} | "
                f"{100 * candidate['search_value']:.2f}% ({candidate['search_epochs']}) | {retrained} | "
                f"{'**the pick**' if candidate['configuration'] == pick else ''} |"
            )
        if why := (sweep.final.get("incumbent") or {}).get("chosen_because"):
            reasons.append(f"{sweep.study.study_name}: #{pick}, {why}")
        for left in sweep.final.get("left_out") or []:  # far behind the best: not retrained
            name, number = sweep.study.study_name, left["configuration"]
            rows.append(f"| {name} | #{number} | not retrained: {left['why']} | | |")
    return [*rows, "", *(f"Picked: {reason}." for reason in reasons)] if len(rows) > 2 else []
