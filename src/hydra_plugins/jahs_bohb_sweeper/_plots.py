"""Figures of a study as files in the sweep directory: best-so-far curves (the seed's Figure 2),
parallel coordinates and parameter importances (its Figure 3). Matplotlib for PNG, Plotly for HTML."""

from __future__ import annotations

import logging
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna

from jahs_bohb.report import param_importances

log = logging.getLogger(__name__)
States = optuna.trial.TrialState


def best_so_far(study: optuna.Study) -> list[dict[str, Any]]:
    """Per finished trial, in order of completion: elapsed seconds, value and the best value so far."""
    trials = [
        t for t in study.get_trials(deepcopy=False) if t.state == States.COMPLETE and t.datetime_complete
    ]
    trials.sort(key=lambda t: t.datetime_complete or datetime.min)
    if not trials:
        return []
    start = min(t.datetime_start for t in study.get_trials(deepcopy=False) if t.datetime_start)
    sign = 1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1
    rows, best = [], None
    for t in trials:
        assert t.value is not None and t.datetime_complete is not None
        best = t.value if best is None or sign * t.value > sign * best else best
        elapsed = (t.datetime_complete - start).total_seconds()
        rows.append({"trial": t.number, "elapsed_s": elapsed, "value": t.value, "best_value": best})
    return rows


def write_figures(study: optuna.Study, sweep_dir: Path) -> dict[str, Path]:
    """Write what can be drawn from the study so far; returns {figure name: path}."""
    out: dict[str, Path] = {}
    rows = best_so_far(study)
    if not rows:
        return out
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    for ax, key, label in ((axes[0], "elapsed_s", "wall time (s)"), (axes[1], "trial", "trial number")):
        ax.scatter(
            [r[key] for r in rows], [r["value"] for r in rows], s=12, alpha=0.5, label="complete trials"
        )
        ax.step(
            [r[key] for r in rows],
            [r["best_value"] for r in rows],
            where="post",
            color="C3",
            label="best so far",
        )
        ax.set_xlabel(label)
        ax.set_ylabel("objective (validation accuracy)")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    fig.suptitle(f"{study.study_name}: best so far")
    out["best_so_far"] = sweep_dir / "best_so_far.png"
    fig.savefig(out["best_so_far"], dpi=120)
    plt.close(fig)

    scores = param_importances(study)
    if scores:
        fig, ax = plt.subplots(figsize=(6, 0.35 * len(scores) + 1), constrained_layout=True)
        names = list(scores)[::-1]
        ax.barh(names, [scores[n] for n in names], color="C0")
        ax.set_xlabel("PED-ANOVA importance")
        out["importances"] = sweep_dir / "param_importances.png"
        fig.savefig(out["importances"], dpi=120)
        plt.close(fig)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params = list(scores) or None
            figure = optuna.visualization.plot_parallel_coordinate(study, params=params)
        out["parallel_coordinates"] = sweep_dir / "parallel_coordinates.html"
        figure.write_html(out["parallel_coordinates"], include_plotlyjs="cdn")
    except Exception as exc:  # plotly missing, or nothing to draw yet
        log.info("parallel coordinates not written: %s", exc)
    return out
