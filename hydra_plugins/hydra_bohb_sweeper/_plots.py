"""Figures of a study as files in the sweep directory: best-so-far curves (the seed's Figure 2),
parallel coordinates and parameter importances (its Figure 3). Matplotlib for PNG, Plotly for HTML."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import optuna

from hydra_plugins.hydra_bohb_sweeper.analysis import best_so_far, param_importances
from hydra_plugins.hydra_bohb_sweeper.names import OBJECTIVE_ATTR

log = logging.getLogger(__name__)
States = optuna.trial.TrialState


def write_figures(study: optuna.Study, sweep_dir: Path) -> dict[str, Path]:
    """Write what can be drawn from the study so far; returns {figure name: path}."""
    out: dict[str, Path] = {}
    rows = best_so_far(study)
    if not rows:
        return out
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # an optional extra: pip install hydra-bohb-sweeper[figures]
        log.info("figures not written: matplotlib is not installed")
        return out
    objective = study.user_attrs.get(OBJECTIVE_ATTR) or "objective"

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
        ax.set_ylabel(objective)
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
