"""Figures of a study as files in the sweep directory, for any app: best-so-far curves (the seed's Figure 2),
parameter importances and parallel coordinates (its Figure 3). Matplotlib for PNG, Plotly for HTML.

The objective is named as the study names it (`study.metric_names`, set from `hydra.sweeper.objective`)
and shown in the units the job returned it in; the sweeper knows nothing else about the app.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import optuna
import yaml

from hydra_plugins.hydra_bohb_sweeper.analysis import (
    INACTIVE,
    Comparison,
    best_so_far,
    compared_at_one_epoch,
    param_importances,
)
from hydra_plugins.hydra_bohb_sweeper.names import FINAL_FILE, OBJECTIVE_ATTR

log = logging.getLogger(__name__)
States = optuna.trial.TrialState
BASELINE_COLOR = "tab:red"


def objective_name(study: optuna.Study) -> str:
    """The study's name for its objective: its metric name, else the sweeper's `objective` key."""
    with warnings.catch_warnings():  # metric_names is "experimental" in some Optuna versions
        warnings.simplefilter("ignore")
        names = study.metric_names
    named = study.user_attrs.get(OBJECTIVE_ATTR)
    if isinstance(named, list):
        named = named[0] if named else None
    return str((names[0] if names else None) or named or "objective")


def _better(study: optuna.Study) -> str:
    return (
        "higher is better" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "lower is better"
    )


def _baseline_value(sweep_dir: Path) -> float | None:
    """The objective of the baseline (the job's defaults) in the final evaluation, when there was one."""
    path = sweep_dir / FINAL_FILE
    try:
        record = (yaml.safe_load(path.read_text()) or {}).get("baseline") or {}
    except (OSError, yaml.YAMLError):
        return None
    value = record.get("value")
    return float(value) if isinstance(value, int | float) else None


def _time_axis(seconds: list[float]) -> tuple[float, str]:
    """A unit that gives readable ticks: seconds for short studies, minutes, hours for long ones."""
    horizon = max(seconds, default=0.0)
    if horizon > 3 * 3600:
        return 3600.0, "hours"
    return (60.0, "minutes") if horizon > 180 else (1.0, "seconds")


def write_figures(study: optuna.Study, sweep_dir: Path) -> dict[str, Path]:
    """Write what can be drawn from the study so far; returns {figure name: path}."""
    out: dict[str, Path] = {}
    if len(study.directions) > 1:  # best-so-far and importances need one objective
        log.info("figures not written: the study has %d objectives", len(study.directions))
        return out
    rows = best_so_far(study)
    if not rows:
        return out
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # an optional extra
        log.info(
            "figures not written: matplotlib is not installed (pip install 'hydra-bohb-sweeper[figures]')"
        )
        return out
    objective = objective_name(study)
    baseline = _baseline_value(sweep_dir)

    fig = build_best_so_far(study, rows, baseline)
    out["best_so_far"] = sweep_dir / "best_so_far.png"
    fig.savefig(out["best_so_far"], dpi=120)
    plt.close(fig)

    scores = param_importances(study)
    comparison = compared_at_one_epoch(study)
    if scores and comparison is not None:
        after = f"after {comparison.epoch} epochs ({comparison.configurations} configurations)"
        fig = build_importances(scores, f"{objective} {after}")
        out["importances"] = sweep_dir / "param_importances.png"
        fig.savefig(out["importances"], dpi=120)
        plt.close(fig)
    try:
        figure = build_parallel_coordinates(study, list(scores) or None, comparison)
        out["parallel_coordinates"] = sweep_dir / "parallel_coordinates.html"
        figure.write_html(out["parallel_coordinates"], include_plotlyjs="cdn")
    except Exception as exc:  # plotly missing, or nothing to draw yet
        log.info("parallel coordinates not written: %s", exc)
    return out


def build_best_so_far(study: optuna.Study, rows: list[dict[str, Any]], baseline: float | None = None) -> Any:
    """Every complete trial's objective and the best so far, against time and against trial number; the
    baseline's objective in the final evaluation, if any, as a dashed line."""
    import matplotlib.pyplot as plt

    objective = objective_name(study)
    scale, unit = _time_axis([r["elapsed_s"] for r in rows])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True, layout="constrained")
    panels = (
        (axes[0], [r["elapsed_s"] / scale for r in rows], f"time since the first trial started ({unit})"),
        (axes[1], [r["trial"] for r in rows], "trial number"),
    )
    for ax, xs, label in panels:
        ax.scatter(xs, [r["value"] for r in rows], s=14, alpha=0.5, color="C0", label="a complete trial")
        ax.step(
            xs, [r["best_value"] for r in rows], where="post", color="C0", lw=2, label="best so far", zorder=3
        )
        if baseline is not None:
            reference = f"baseline in the final evaluation: {baseline:.4g}"
            ax.axhline(baseline, color=BASELINE_COLOR, ls="--", lw=1.5, label=reference, zorder=2)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{objective}\n({_better(study)})")
    axes[1].yaxis.set_tick_params(labelleft=True)
    axes[0].legend(loc="best", fontsize=8)
    fig.suptitle(f"Study {study.study_name}: {objective} of {len(rows)} complete trials and the best so far")
    return fig


def build_importances(scores: dict[str, float], objective: str) -> Any:
    """One bar per parameter, most important on top, its share written next to it."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 0.32 * len(scores) + 1.4), layout="constrained")
    names = list(scores)[::-1]
    bars = ax.barh(names, [scores[n] for n in names], color="C0")
    ax.bar_label(bars, labels=[f"{scores[n]:.2f}" for n in names], padding=3, fontsize=8)
    ax.set_xlim(0, max(max(scores.values()) * 1.15, 0.05))
    ax.set_xlabel("importance (PED-ANOVA; the shares add up to 1)")
    ax.set_title(f"How much each parameter mattered for {objective}", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig


def build_parallel_coordinates(
    study: optuna.Study, params: list[str] | None = None, comparison: Comparison | None = None
) -> Any:
    """Optuna's Plotly parallel coordinates, with the objective named, full parameter names and
    `inactive` where a trial does not have a parameter (Optuna writes `None`). With a `comparison`,
    every configuration at that epoch is drawn (not only the few that trained the whole budget)."""
    objective = objective_name(study)
    shown_study = comparison.study if comparison is not None else study
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        figure = optuna.visualization.plot_parallel_coordinate(
            shown_study, params=params, target_name=objective
        )
    shown = params or sorted(
        {p for t in shown_study.get_trials(deepcopy=False, states=(States.COMPLETE,)) for p in t.params}
    )
    for annotation in figure.layout.annotations or ():
        if annotation.text == "None":
            annotation.text = INACTIVE
    if figure.layout.xaxis.ticktext and len(figure.layout.xaxis.ticktext) == len(shown) + 1:
        figure.layout.xaxis.ticktext = [objective, *sorted(shown)]
    if comparison is not None:
        which = f"{comparison.configurations} configurations after {comparison.epoch} epochs"
    else:
        which = f"{len(study.get_trials(deepcopy=False, states=(States.COMPLETE,)))} complete trials"
    figure.update_layout(
        title_text=f"Study {study.study_name}: {which}, coloured by {objective} "
        f"({_better(study)}); {INACTIVE}: the configuration does not use that parameter",
        xaxis_automargin=True,  # full parameter names, however long
    )
    return figure
