"""The Pareto front of a study with several objectives: the points a person picks from it, and its plot.

The first objective is taken as what a model achieves (e.g. validation accuracy), the second as what it
costs (e.g. its parameter count). Three picks: the best first objective; the cheapest point whose first
objective is within `tolerance` of that best; the cheapest point that beats the baseline.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import optuna

from hydra_plugins.hydra_bohb_sweeper.names import OBJECTIVE_ATTR

log = logging.getLogger(__name__)
MOST_ACCURATE, WITHIN_TOLERANCE, BEATS_BASELINE = (
    "best",
    "cheapest_within_tolerance",
    "cheapest_beating_baseline",
)
PARETO_FIGURE = "pareto_front.png"


def objective_names(study: optuna.Study) -> list[str]:
    named = study.user_attrs.get(OBJECTIVE_ATTR)
    if isinstance(named, list) and len(named) == len(study.directions):
        return [str(n) for n in named]
    return [f"objective {i}" for i in range(len(study.directions))]


def _better(a: float, b: float, direction: optuna.study.StudyDirection) -> bool:
    return a > b if direction == optuna.study.StudyDirection.MAXIMIZE else a < b


def picks(
    front: Sequence[optuna.trial.FrozenTrial],
    directions: Sequence[optuna.study.StudyDirection],
    tolerance: float,
    baseline: Sequence[float] | None = None,
) -> dict[str, optuna.trial.FrozenTrial]:
    """Pick name -> front trial (a pick that nothing satisfies is left out)."""
    if not front:
        return {}
    quality, cost = directions[0], directions[1]

    def cheapest(trials: list[optuna.trial.FrozenTrial]) -> optuna.trial.FrozenTrial:
        best = trials[0]
        for t in trials[1:]:
            if _better(t.values[1], best.values[1], cost):
                best = t
        return best

    best = front[0]
    for t in front[1:]:
        if _better(t.values[0], best.values[0], quality):
            best = t
    sign = 1.0 if quality == optuna.study.StudyDirection.MAXIMIZE else -1.0
    near = [t for t in front if sign * (best.values[0] - t.values[0]) <= tolerance]
    chosen = {MOST_ACCURATE: best, WITHIN_TOLERANCE: cheapest(near)}
    if baseline is not None:
        beating = [t for t in front if _better(t.values[0], baseline[0], quality)]
        if beating:
            chosen[BEATS_BASELINE] = cheapest(beating)
    return chosen


def write_figure(
    study: optuna.Study,
    sweep_dir: Path,
    chosen: dict[str, optuna.trial.FrozenTrial] | None = None,
    baseline: Sequence[float] | None = None,
) -> dict[str, Path]:
    """Every complete trial (first objective against the second), the front as a step line, the
    baseline and the picks marked. The cost axis is logarithmic when it spans more than a decade."""
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not trials or len(study.directions) < 2:
        return {}
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("Pareto figure not written: matplotlib is not installed")
        return {}
    names = objective_names(study)
    front = sorted(study.best_trials, key=lambda t: t.values[1])
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    ax.scatter(
        [t.values[1] for t in trials], [t.values[0] for t in trials], s=14, color="0.7", label="trials"
    )
    ax.step(
        [t.values[1] for t in front], [t.values[0] for t in front], where="post", color="C0", lw=1.5,
        marker="o", markersize=5, label=f"Pareto front ({len(front)} trials)",
    )  # fmt: skip
    if baseline is not None:
        ax.scatter([baseline[1]], [baseline[0]], marker="*", s=160, color="C3", zorder=5, label="baseline")
    costs = [t.values[1] for t in trials] + ([baseline[1]] if baseline is not None else [])
    log_scale = min(costs) > 0 and max(costs) / min(costs) > 10
    if log_scale:
        ax.set_xscale("log")
    labels: dict[int, list[str]] = {}
    for name, t in (chosen or {}).items():
        labels.setdefault(t.number, []).append(name.replace("_", " "))
    scale = math.log10 if log_scale else float
    low, high = scale(min(costs)), scale(max(costs))
    for number, picked in labels.items():
        t = study.trials[number]
        # One pick per line, on a white box, on the side of the point with more room.
        on_right = high == low or (scale(t.values[1]) - low) / (high - low) < 0.6
        ax.annotate(
            "\n".join(picked) + f" (#{number})", (t.values[1], t.values[0]),
            xytext=(10 if on_right else -10, -14), textcoords="offset points", fontsize=8,
            ha="left" if on_right else "right", va="top",
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "0.6", "alpha": 0.9},
            arrowprops={"arrowstyle": "-", "color": "0.4", "lw": 0.6},
        )  # fmt: skip
    arrow = {
        optuna.study.StudyDirection.MAXIMIZE: "higher is better",
        optuna.study.StudyDirection.MINIMIZE: "lower is better",
    }
    ax.set_xlabel(f"{names[1]} ({arrow[study.directions[1]]})")
    ax.set_ylabel(f"{names[0]} ({arrow[study.directions[0]]})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="best", fontsize=8)
    ax.set_title(f"{study.study_name}: {names[0]} against {names[1]}")
    path = sweep_dir / PARETO_FIGURE
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return {"pareto_front": path}


def hypervolume(
    points: Sequence[Sequence[float]], reference: Sequence[float], directions: Sequence[str]
) -> float:
    """The area dominated by `points` (two objectives) and bounded by `reference`."""
    sign = [1.0 if d == "minimize" else -1.0 for d in directions]
    ref = [s * r for s, r in zip(sign, reference, strict=True)]
    inside = sorted(
        [s * v for s, v in zip(sign, p, strict=True)]
        for p in points
        if all(s * v < r for s, v, r in zip(sign, p, ref, strict=True))
    )
    area, best_y = 0.0, ref[1]
    for x, y in inside:
        if y < best_y:
            area += (ref[0] - x) * (best_y - y)
            best_y = y
    return area if math.isfinite(area) else 0.0
