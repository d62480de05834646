"""The report's figures as PNG files: the seed's Figure 2 (the best validation accuracy so far against
minutes and against epochs trained: one seed's curve, or the median and 25-75% band across seeds; the
baseline as a reference line) and its Figure 3 (parallel coordinates ordered by parameter importance,
every axis with its values, lines coloured by accuracy, the baseline's configuration drawn), each with
the caption that says what it shows.

The numbers come from the sweeper's `analysis` module, as its own figures do: best-so-far rows, every
configuration compared at one epoch, importances, and the name of an inactive parameter. The drawing is
matplotlib's (static PNG for markdown: Optuna's parallel coordinates are Plotly only).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from hydra_plugins.hydra_bohb_sweeper.analysis import INACTIVE, compared_at_one_epoch, param_importances
from jahs_bohb.report.parallel_axes import BASELINE_COLOR, Y_RANGE, PCAxis, axis_label
from jahs_bohb.report.sweeps import Baseline, States, Sweep, accuracy_of, baseline_of, epochs_text

ACCURACY_CMAP = "viridis_r"  # better trials darker, so they stand out on white


# ------------------------------------------------------------------------------ Figure 2
def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _seeds(n: int) -> str:
    return "1 seed" if n == 1 else f"{n} seeds"


def build_best_over_time(methods: dict[str, list[Sweep]], baseline: Baseline | None) -> Any:
    """The seed's Figure 2 as a matplotlib Figure: the best validation accuracy (%) found so far against
    search time (left) and against epochs trained by all trials (right). One seed: its curve; several:
    the median and the 25-75% band across seeds. The baseline is a horizontal reference line."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True, layout="constrained")
    curves_by_method = {
        name: [c for c in map(Sweep.best_curve, sweeps) if len(c["best"])] for name, sweeps in methods.items()
    }
    panels = (
        ("seconds", 1 / 60, "search time (minutes)"),
        ("epochs", 1, "epochs trained, all trials together"),
    )
    for ax, (key, scale, xlabel) in zip(axes, panels, strict=True):
        for color, (name, curves) in zip(("C0", "C1", "C2"), curves_by_method.items(), strict=False):
            if not curves:
                continue
            if len(curves) == 1:
                (curve,) = curves
                label = f"{name} ({_seeds(1)})"
                ax.step(
                    curve[key] * scale,
                    100 * curve["best"],
                    where="post",
                    color=color,
                    lw=2,
                    label=label,
                    zorder=3,
                )
                continue
            # A step function per seed: the best holds until the next complete trial improves it. The
            # median and band start once every seed has a complete trial (before, a seed has no best).
            start = max(c[key][0] for c in curves)
            grid = np.unique(np.concatenate([[start], *(c[key][c[key] >= start] for c in curves)]))
            stacked = np.array([_step(grid, c[key], c["best"]) for c in curves])
            low, median, high = np.percentile(stacked, (25, 50, 75), axis=0)
            ax.plot(
                grid * scale, 100 * median, color=color, lw=2, drawstyle="steps-post", zorder=3,
                label=f"{name}: median of {_seeds(len(curves))}",
            )  # fmt: skip
            ax.fill_between(
                grid * scale, 100 * low, 100 * high, color=color, alpha=0.2, step="post",
                label=f"{name}: 25-75% across seeds",
            )  # fmt: skip
        if baseline is not None:
            ax.axhline(
                100 * baseline.value, color=BASELINE_COLOR, ls="--", lw=1.5, label=baseline.label, zorder=1.5
            )
        ax.set_xlabel(xlabel)
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("best validation accuracy so far (%)")
    axes[0].set_title("against time", fontsize=10)
    axes[1].set_title("against epochs trained", fontsize=10)
    axes[1].yaxis.set_tick_params(labelleft=True)
    if axes[0].get_legend_handles_labels()[0]:  # nothing to draw before a trial completes
        axes[0].legend(loc="best", fontsize=8)
    return fig


def figure_best_over_time(
    methods: dict[str, list[Sweep]], path: Path, baseline: Baseline | None = None
) -> Path:
    """Figure 2 as a PNG (see `build_best_over_time`)."""
    return _save(build_best_over_time(methods, baseline), path)


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=130)
    _plt().close(fig)
    return path


def _step(grid: np.ndarray, xs: np.ndarray, values: np.ndarray) -> np.ndarray:
    index = np.searchsorted(xs, grid, side="right") - 1
    return np.where(index >= 0, values[np.clip(index, 0, None)], np.nan)


def best_over_time_caption(seeds: int, baseline: Baseline | None) -> str:
    """What Figure 2 shows, in one line."""
    spread = "median and 25-75% band across seeds" if seeds > 1 else "one seed"
    reference = "; dashed red: the baseline" if baseline is not None else ""
    return (
        "Best validation accuracy (%) found so far against minutes and against epochs trained by all "
        f"trials together, stopped and paused ones included ({spread}){reference}."
    )


# ------------------------------------------------------------------------------ Figure 3


@dataclass
class ParallelCoordinates:
    """What Figure 3 draws, decided before it is drawn so that its title and caption say what it shows.

    Few configurations train the whole budget, so when every sweep has enough of them the lines are every
    configuration that reached one epoch, valued there: the sweeper's `compared_at_one_epoch`, as in its
    own figures, at the shallowest of the sweeps' epochs so that all seeds share it. Otherwise the lines
    are the complete trials."""

    sweeps: list[Sweep]
    trials: list[optuna.trial.FrozenTrial]  # one line each
    epoch: int | None  # the epoch they are compared at; None: the complete trials
    names: list[str]  # the parameters, most important first
    importance: dict[str, float]  # PED-ANOVA, the mean over the sweeps
    distributions: dict[str, Any]
    baseline: Baseline | None

    @property
    def baseline_accuracy_shown(self) -> bool:
        """The baseline's accuracy sits on the accuracy axis (and the lines that beat it are thick) only
        where it compares: with the complete trials, as in the seed's figure, or at the epoch it trained."""
        return self.baseline is not None and self.epoch in (None, self.baseline.epochs)

    @property
    def baseline_configuration_shown(self) -> bool:
        return self.baseline is not None and self.baseline.params is not None

    @property
    def configurations(self) -> int:
        """In all the sweeps, whatever became of them."""
        return sum(s.configurations() for s in self.sweeps)

    def accuracy_label(self, separator: str = " ") -> str:
        after = f"{separator}after {epochs_text(self.epoch)}" if self.epoch is not None else ""
        return f"validation{separator}accuracy (%){after}"

    def title(self) -> str:
        seeds = _seeds(len(self.sweeps))
        if self.epoch is not None:
            others = self.configurations - len(self.trials)
            rest = f"; {others} that stopped earlier or failed not shown" if others > 0 else ""
            first = f"{len(self.trials)} configurations after {epochs_text(self.epoch)} ({seeds}{rest})"
        else:
            budgets = sorted({int(b) for s in self.sweeps if (b := s.results.get("budget_epochs"))})
            budget = f", {'/'.join(map(str, budgets))} epochs each" if budgets else ""
            pruned = sum(int(s.results.get("n_pruned") or 0) for s in self.sweeps)
            rest = f"; {pruned} pruned configurations not shown" if pruned else ""
            first = f"{len(self.trials)} complete trials{budget} ({seeds}{rest})"
        order = (
            "axes ordered by importance (in brackets), most important left"
            if self.importance
            else "too few configurations to rank the parameters"
        )
        return f"{first}\ncoloured by {self.accuracy_label()}; {order}"

    def caption(self) -> str:
        """What Figure 3 shows, in one paragraph of report.md."""
        order = " (most important left)" if self.importance else ""
        if self.epoch is not None:
            lines = (
                f"Every configuration that reached epoch {self.epoch} ({len(self.trials)} of "
                f"{self.configurations}), through its parameters{order}, coloured by its validation accuracy "
                f"after {epochs_text(self.epoch)}: few configurations train the whole budget, so all are "
                "compared at one epoch, as in the sweeper's own figures"
            )
        else:
            lines = f"Every complete trial's parameters{order}, coloured by validation accuracy"
        base = self.baseline
        if base is not None and self.baseline_accuracy_shown:
            drawn = "the baseline" if self.baseline_configuration_shown else "the baseline's accuracy"
            lines += f"; dashed red: {drawn}, thick: better than it"
        elif base is not None and self.baseline_configuration_shown:
            lines += f"; dashed red: the baseline's configuration ({_not_compared(base)})"
        return f"{lines}; `{INACTIVE}`: a parameter the configuration does not use."


def _not_compared(baseline: Baseline) -> str:
    epochs = f" after {epochs_text(baseline.epochs)}" if baseline.epochs else ""
    return f"its {100 * baseline.value:.1f}%{epochs} in the final evaluation is not on the accuracy axis"


def parallel_coordinates(sweeps: list[Sweep], baseline: Baseline | None = None) -> ParallelCoordinates | None:
    """What Figure 3 draws for `sweeps` (see `ParallelCoordinates`); None with fewer than two lines.
    Without `baseline`, the sweeps' own (its configuration read from its job)."""
    trials, epoch = _compared(sweeps)
    if epoch is None:
        trials = [t for s in sweeps for t in s.trials(States.COMPLETE) if accuracy_of(t) is not None]
    if len(trials) < 2:
        return None
    distributions: dict[str, Any] = {}
    for t in trials:
        distributions.update(t.distributions)
    scores = [param_importances(s.study) for s in sweeps]
    importance = {
        n: statistics.mean(s[n] for s in scores if n in s)
        for n in distributions
        if any(n in s for s in scores)
    }
    names = sorted(distributions, key=lambda n: -importance.get(n, -1.0))
    base = baseline_of(sweeps, names) if baseline is None else baseline
    return ParallelCoordinates(sweeps, trials, epoch, names, importance, distributions, base)


def _compared(sweeps: list[Sweep]) -> tuple[list[optuna.trial.FrozenTrial], int | None]:
    """Every configuration of every sweep at the shallowest epoch of the sweeps' comparisons, and that
    epoch; ([], None) when a sweep has too few configurations to compare (or several objectives)."""
    comparisons = [compared_at_one_epoch(s.study) for s in sweeps]
    if not comparisons or any(c is None for c in comparisons):
        return [], None
    epoch = min(c.epoch for c in comparisons if c is not None)
    shared = [
        c if c is not None and c.epoch == epoch else compared_at_one_epoch(s.study, epoch)
        for s, c in zip(sweeps, comparisons, strict=True)
    ]
    if any(c is None for c in shared):  # cannot happen: a deeper epoch's configurations reached this one
        return [], None
    trials = [t for c in shared if c is not None for t in c.study.trials if accuracy_of(t) is not None]
    return trials, epoch


def build_parallel_coordinates(sweeps: list[Sweep], baseline: Baseline | None = None) -> Any | None:
    """The seed's Figure 3 as a matplotlib Figure (see `parallel_coordinates` for what it draws); None
    with fewer than two lines."""
    plan = parallel_coordinates(sweeps, baseline)
    return draw_parallel_coordinates(plan) if plan is not None else None


def draw_parallel_coordinates(plan: ParallelCoordinates) -> Any:
    """One line per trial of `plan` through one axis per parameter (most important left) and the
    validation accuracy (%) on the right, coloured by that accuracy; the baseline's configuration as a
    dashed red line, with its accuracy where that compares."""
    trials, base = plan.trials, plan.baseline
    base_params = base.params if base is not None else None
    on_axis = plan.baseline_accuracy_shown
    axes_info: list[PCAxis] = []
    for name in plan.names:
        values = [t.params.get(name) for t in trials]
        if base_params is not None:
            values.append(base_params.get(name))
        label = axis_label(name, plan.importance.get(name))
        axes_info.append(PCAxis.for_parameter(name, label, plan.distributions[name], values))
    accuracies = [100 * (accuracy_of(t) or 0.0) for t in trials]
    lows_highs = [*accuracies, *([100 * base.value] if base is not None and on_axis else [])]
    objective = PCAxis("objective", plan.accuracy_label("\n"), min(lows_highs), max(lows_highs))
    axes_info.append(objective)

    plt = _plt()
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    n = len(axes_info)
    fig, host = plt.subplots(figsize=(max(8.0, 0.82 * n + 1.4), 5.4), layout="constrained")
    xs = np.arange(n, dtype=float)
    norm = Normalize(min(accuracies), max(accuracies))
    cmap = plt.get_cmap(ACCURACY_CMAP)
    threshold = 100 * base.value if base is not None and on_axis else None
    order = sorted(range(len(trials)), key=lambda i: accuracies[i])  # the best drawn last, on top
    segments, colors, widths = [], [], []
    for i in order:
        t, accuracy = trials[i], accuracies[i]
        ys = [a.position(t.params.get(a.name)) for a in axes_info[:-1]] + [objective.position(accuracy)]
        segments.append(np.column_stack([xs, ys]))
        colors.append(cmap(norm(accuracy)))
        widths.append(2.0 if threshold is not None and accuracy > threshold else 1.0)
    host.add_collection(LineCollection(segments, colors=colors, linewidths=widths, alpha=0.85, zorder=2))
    handles = _draw_baseline(host, plan, axes_info, xs)
    host.set_xlim(-0.6, n - 0.6)
    host.set_ylim(*Y_RANGE)
    host.set_xticks(xs, [a.label for a in axes_info], fontsize=7.5)
    host.tick_params(axis="x", length=0)
    host.yaxis.set_visible(False)
    for spine in host.spines.values():
        spine.set_visible(False)
    for x, axis in zip(xs, axes_info, strict=True):
        axis.draw(host.twinx(), float(x))

    colorbar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=host, pad=0.01, fraction=0.025)
    colorbar.set_label(plan.accuracy_label())
    if threshold is not None and min(accuracies) <= threshold <= max(accuracies):
        colorbar.ax.axhline(threshold, color=BASELINE_COLOR, ls="--", lw=2)
    fig.suptitle(plan.title(), fontsize=10)
    if handles:
        fig.legend(handles=handles, loc="outside lower left", fontsize=8, frameon=False, ncols=2)
    return fig


def _draw_baseline(host: Any, plan: ParallelCoordinates, axes: list[PCAxis], xs: np.ndarray) -> list[Any]:
    """The baseline as a dashed red line through its configuration, ending on the accuracy axis where its
    accuracy compares (see `ParallelCoordinates.baseline_accuracy_shown`); returns its legend entries."""
    from matplotlib.lines import Line2D

    base = plan.baseline
    if base is None:
        return []
    points = []
    if base.params is not None:
        points += [(x, a.position(base.params.get(a.name))) for x, a in zip(xs[:-1], axes[:-1], strict=True)]
    if plan.baseline_accuracy_shown:
        points.append((xs[-1], axes[-1].position(100 * base.value)))
    if not points:
        return []
    style: dict[str, Any] = {"color": BASELINE_COLOR, "ls": "--", "lw": 1.8, "marker": "D", "ms": 4}
    host.plot([x for x, _ in points], [y for _, y in points], zorder=3, label="baseline", **style)
    if not plan.baseline_accuracy_shown:
        return [Line2D([], [], label=f"the baseline's configuration ({_not_compared(base)})", **style)]
    configuration = "; its configuration" if base.params is not None else ""
    return [
        Line2D([], [], label=base.label + configuration, **style),
        Line2D([], [], color="0.3", lw=2.0, label="thick: trials better than the baseline"),
    ]


def figure_parallel_coordinates(plan: ParallelCoordinates, path: Path) -> Path:
    """Figure 3 as a PNG (see `draw_parallel_coordinates`)."""
    return _save(draw_parallel_coordinates(plan), path)
