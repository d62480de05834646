"""Study reports in the seed's format: its Table 2 (baseline vs BOHB incumbents on the test set), its
Figure 2 (best validation accuracy so far against minutes and against epochs trained: one seed's curve,
or the median and 25-75% band across seeds; the baseline as a reference line) and its Figure 3 (parallel
coordinates ordered by parameter importance, every axis with its values, lines coloured by accuracy, the
baseline's configuration drawn), plus BOHB against random search at equal budget. Markdown + PNG; no
torch needed.

    python -m jahs_bohb.report outputs/multiseed/bohb-seed*   # a report over existing sweep dirs
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from omegaconf import OmegaConf

from hydra_plugins.hydra_bohb_sweeper.analysis import condition_holds, param_importances
from hydra_plugins.hydra_bohb_sweeper.names import (
    FAIL_REASON_ATTR,
    FINAL_FILE,
    METRICS_ATTR,
    RESULTS_FILE,
    STORAGE_FILE,
)

States = optuna.trial.TrialState


def accuracy_of(trial: optuna.trial.FrozenTrial) -> float | None:
    """The trial's validation accuracy: its objective, or its first one in a study with several."""
    values = trial.values
    return float(values[0]) if values and math.isfinite(values[0]) else None


@dataclass
class Sweep:
    """One finished sweep directory, read back from its files and its Optuna study."""

    directory: Path
    study: optuna.Study
    results: dict[str, Any]
    final: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path, storage: str | None = None, study: optuna.Study | None = None) -> Sweep:
        """The sweep in `directory`; its study from `study`, else from `storage`, else from the SQLite
        file the sweeper writes by default."""
        results = yaml.safe_load((directory / RESULTS_FILE).read_text())
        final_path = directory / FINAL_FILE
        final = yaml.safe_load(final_path.read_text()) if final_path.is_file() else {}
        if study is None:
            url = storage or f"sqlite:///{directory.resolve() / STORAGE_FILE}"
            study = optuna.load_study(study_name=results["study_name"], storage=url)
        return cls(directory, study, results, final or {})

    def evaluation(self, role: str) -> dict[str, Any]:
        """`incumbent` or `baseline`: what the final evaluation's job returned (test_acc, epochs, ...)."""
        record = self.final.get(role) or {}
        metrics = record.get("metrics") or {}
        return {
            "wall_time_s": record.get("wall_time_s"),
            **metrics,
            "val_acc_best": record.get("value"),
            "state": record.get("state"),
        }

    def trials(self, *states: optuna.trial.TrialState) -> list[optuna.trial.FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=states or None)

    def search_seconds(self) -> float:
        times = [(t.datetime_start, t.datetime_complete) for t in self.trials() if t.datetime_start]
        if not times:
            return 0.0
        start = min(s for s, _ in times)
        end = max(c or s for s, c in times)
        return (end - start).total_seconds()

    def best_curve(self) -> dict[str, np.ndarray]:
        """At each finished trial, from the first complete one on: `seconds` since the first trial started,
        `epochs` trained so far by all finished trials (pruned and failed ones included) and `best`, the
        best validation accuracy of the complete trials so far."""
        finished = [t for t in self.trials(*FINISHED) if t.datetime_start and t.datetime_complete]
        finished.sort(key=lambda t: t.datetime_complete or datetime.min)
        start = min((t.datetime_start for t in self.trials() if t.datetime_start), default=None)
        seconds, epochs, accuracy = [], [], []
        spent, best = 0, -math.inf
        for t in finished:
            spent += len(t.intermediate_values)
            if t.state == States.COMPLETE and (value := accuracy_of(t)) is not None:
                best = max(best, value)
            if start is not None and t.datetime_complete is not None and best > -math.inf:
                seconds.append((t.datetime_complete - start).total_seconds())
                epochs.append(spent)
                accuracy.append(best)
        return {
            "seconds": np.array(seconds, float),
            "epochs": np.array(epochs, float),
            "best": np.array(accuracy),
        }

    def baseline_params(self, params: Sequence[str]) -> dict[str, Any] | None:
        """The baseline job's value of each parameter (None where the sweep's conditions make it inactive),
        read from the config Hydra saved for it; None when this sweep trained no baseline."""
        record = self.final.get("baseline") or {}
        folders = [Path(record["output_dir"])] if record.get("output_dir") else []
        for folder in [*folders, self.directory / "baseline"]:
            if (folder / ".hydra" / "config.yaml").is_file():
                break
        else:
            return None
        config = OmegaConf.load(folder / ".hydra" / "config.yaml")
        hydra_file = folder / ".hydra" / "hydra.yaml"
        hydra = (
            (yaml.safe_load(hydra_file.read_text()) or {}).get("hydra", {}) if hydra_file.is_file() else {}
        )
        choices = hydra.get("runtime", {}).get("choices") or {}  # config groups: optimizer=sgd
        conditions = hydra.get("sweeper", {}).get("conditions") or {}
        values: dict[str, Any] = {}
        for name in params:
            try:
                values[name] = choices[name] if name in choices else OmegaConf.select(config, name)
            except Exception:  # an interpolation that resolves only inside the job
                values[name] = None
        for _ in conditions:  # conditions may chain: repeat until every parent is settled
            for child, text in conditions.items():
                if child in values and not condition_holds(str(child), str(text), values):
                    values[child] = None
        return values

    def device(self) -> str:
        for role in ("incumbent", "baseline"):
            if device := self.evaluation(role).get("device"):
                return str(device)
        for trial in self.trials():
            if device := trial.user_attrs.get(METRICS_ATTR, {}).get("device"):
                return str(device)
        return "unknown"


# ------------------------------------------------------------------------------ numbers
def mean_std(raw: Sequence[float | None]) -> str:
    values = [v for v in raw if v is not None and math.isfinite(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{100 * values[0]:.2f}"
    return f"{100 * statistics.mean(values):.2f} ± {100 * statistics.stdev(values):.2f}"


def _minutes(seconds: float) -> str:
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
            f"{_minutes(statistics.mean(b.get('wall_time_s') or 0 for b in baselines))} |"
        )
    search_s = [s.search_seconds() for s in bohb]
    epochs = [s.results.get("epochs_trained", 0) for s in bohb]
    rows.append(
        f"| BOHB incumbent | {mean_std([i.get('test_acc') for i in incumbents])} | {len(bohb)} | "
        f"{_minutes(statistics.mean(search_s))} per seed | {statistics.mean(epochs):.0f} per seed "
        f"(unpruned: {statistics.mean(s.results.get('epochs_unpruned', 0) for s in bohb):.0f}) | "
        f"{statistics.mean(i.get('epochs') or 0 for i in incumbents):.0f} epochs, "
        f"{_minutes(statistics.mean(i.get('wall_time_s') or 0 for i in incumbents))} |"
    )
    return rows


def best_at_budget(sweep: Sweep, epochs: float) -> float | None:
    """Best validation accuracy among trials completed once `epochs` epochs had been spent in total."""
    spent, best = 0, None
    for trial in sorted(sweep.trials(), key=lambda t: t.datetime_complete or datetime.max):
        spent += len(trial.intermediate_values)
        if spent > epochs:
            break
        if trial.state == States.COMPLETE and trial.value is not None:
            best = trial.value if best is None else max(best, trial.value)
    return best


def equal_budget_rows(bohb: list[Sweep], random: list[Sweep]) -> list[str]:
    budgets = [s.results.get("epochs_trained", 0) for s in bohb]
    budget = min(budgets) if budgets else 0
    rows = [
        f"Budget: {budget} epochs per seed (what the BOHB sweeps trained).",
        "",
        "| Method | Best validation accuracy (%) at equal budget | Trials | Seeds |",
        "|---|---|---|---|",
    ]
    for name, sweeps in (("BOHB (TPE + Hyperband)", bohb), ("Random search (no pruning)", random)):
        if sweeps:
            values = [v for s in sweeps if (v := best_at_budget(s, budget)) is not None]
            trials = statistics.mean(len(s.trials(*FINISHED)) for s in sweeps)
            rows.append(f"| {name} | {mean_std(values)} | {trials:.0f} per seed | {len(sweeps)} |")
    return rows


FINISHED = (States.COMPLETE, States.PRUNED, States.FAIL)


# ------------------------------------------------------------------------------ figures
BASELINE_COLOR = "tab:red"
ACCURACY_CMAP = "viridis_r"  # better trials darker, so they stand out on white
INACTIVE = -0.17  # where an inactive parameter sits on its axis, below the axis' range [0, 1]
ZERO = -0.085  # where 0 sits on a log axis (the baseline's weight decay), between the two
Y_RANGE = (-0.24, 1.04)  # the vertical extent of every axis, in the same normalised units


@dataclass
class Baseline:
    """The baseline (the job's default configuration) as the final evaluation trained it."""

    value: float  # validation accuracy, 0..1
    epochs: int | None
    params: dict[str, Any] | None  # its value of each searched parameter, None where inactive

    @property
    def label(self) -> str:
        epochs = f", {self.epochs} epochs" if self.epochs else ""
        return f"baseline: {100 * self.value:.1f}% (final evaluation{epochs})"


def baseline_of(sweeps: Sequence[Sweep], params: Sequence[str] = ()) -> Baseline | None:
    """The baseline's validation accuracy (mean over the sweeps that trained it) and configuration."""
    evaluations = [s.evaluation("baseline") for s in sweeps]
    values = [e["val_acc_best"] for e in evaluations if e.get("val_acc_best") is not None]
    if not values:
        return None
    epochs = next((int(e["epochs"]) for e in evaluations if e.get("epochs")), None)
    config = (
        next((p for s in sweeps if (p := s.baseline_params(params)) is not None), None) if params else None
    )
    return Baseline(statistics.mean(values), epochs, config)


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
        axes[0].legend(loc="lower right", fontsize=8)
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


def _same(a: Any, b: Any) -> bool:
    """Equal, but True is not 1 (a choice of true/false against a choice of 0/1)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()  # as written in Hydra overrides
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass
class PCAxis:
    """One vertical axis of the parallel-coordinates plot. Lines are drawn in normalised units (the axis'
    range is [0, 1], an inactive parameter sits at INACTIVE below it, 0 on a log axis at ZERO); `data` turns
    those units into the axis' own values, so each axis carries real ticks: numbers, a log scale, category
    names."""

    name: str
    label: str
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    integer: bool = False
    categories: list[Any] | None = None
    extra: list[Any] = field(default_factory=list)  # values outside the search space (the baseline's)
    inactive: bool = False  # some line has no value here
    zero: bool = False  # some line has 0 on this log axis

    @classmethod
    def for_parameter(cls, name: str, label: str, distribution: Any, values: Sequence[Any]) -> PCAxis:
        present = [v for v in values if v is not None]
        inactive = len(present) < len(values)
        if isinstance(distribution, optuna.distributions.CategoricalDistribution):
            choices = list(distribution.choices)
            shown = {_text(c) for c in choices}
            extra_values = list({_text(v): v for v in present if _text(v) not in shown}.values())
            numeric = all(
                isinstance(c, int | float) and not isinstance(c, bool) for c in choices + extra_values
            )
            categories = sorted(choices + extra_values) if numeric else choices + extra_values
            return cls(name, label, categories=categories, extra=extra_values, inactive=inactive)
        log = bool(distribution.log)
        numbers = [float(v) for v in present if not (log and float(v) <= 0)]
        low = min([float(distribution.low), *numbers])
        high = max([float(distribution.high), *numbers])
        outside = sorted({v for v in numbers if not distribution.low <= v <= distribution.high})
        integer = isinstance(distribution, optuna.distributions.IntDistribution)
        zero = len(numbers) < len(present)
        return cls(name, label, low, high, log, integer, extra=outside, inactive=inactive, zero=zero)

    def position(self, value: Any) -> float:
        """Where `value` sits, in normalised units."""
        if value is None:
            return INACTIVE
        if self.categories is not None:
            index = next(i for i, c in enumerate(self.categories) if _same(c, value))
            return 0.5 if len(self.categories) == 1 else index / (len(self.categories) - 1)
        if self.high == self.low:
            return 0.5
        if self.log and float(value) <= 0:
            return ZERO
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (float(value) - self.low) / (self.high - self.low)

    def data(self, y: float) -> float:
        """The axis' own value at normalised height `y` (the inverse of `position`)."""
        if self.categories is not None:
            n = len(self.categories)
            return y - 0.5 if n == 1 else y * (n - 1)
        if self.high == self.low:
            return self.low + (y - 0.5)
        if self.log:
            return math.exp(math.log(self.low) + y * (math.log(self.high) - math.log(self.low)))
        return self.low + y * (self.high - self.low)

    def ticks(self) -> tuple[list[float], list[str]]:
        """Tick positions (in the axis' own values) and their labels, `inactive` included."""
        if self.categories is not None:
            positions = [float(i) for i in range(len(self.categories))]
            labels = [_text(c) for c in self.categories]
        else:
            positions = _numeric_ticks(self.low, self.high, self.log, self.integer)
            positions = sorted({*positions, *self.extra})
            labels = [_text(int(v)) if self.integer or float(v).is_integer() else _text(v) for v in positions]
        if self.zero:
            positions, labels = [self.data(ZERO), *positions], ["0", *labels]
        if self.inactive:
            positions, labels = [self.data(INACTIVE), *positions], ["inactive", *labels]
        return positions, labels

    def draw(self, ax: Any, x: float) -> None:
        """Give the twin Axes `ax` this axis' scale, limits, spine at `x` and ticks."""
        ax.set_label(self.name)
        if self.log and self.categories is None and self.high > self.low:
            ax.set_yscale("log")
        ax.set_ylim(self.data(Y_RANGE[0]), self.data(Y_RANGE[1]))
        for side in ("top", "bottom", "right"):
            ax.spines[side].set_visible(False)
        ax.spines["left"].set_position(("data", x))
        ax.spines["left"].set_bounds(self.data(0), self.data(1))  # the inactive slot stands apart
        ax.yaxis.tick_left()
        ax.yaxis.set_minor_locator(_matplotlib_ticker().NullLocator())
        positions, labels = self.ticks()
        ax.set_yticks(positions, labels, fontsize=7)
        for text, value in zip(ax.get_yticklabels(), labels, strict=True):
            text.set_bbox({"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 0.3})
            if value == "inactive":
                text.set_color("0.35")
                text.set_fontstyle("italic")
            elif value in {_text(int(e) if self.integer else e) for e in self.extra} or (
                value == "0" and self.zero
            ):
                text.set_color(BASELINE_COLOR)  # outside the search space: only the baseline is there


def _matplotlib_ticker() -> Any:
    import matplotlib.ticker

    return matplotlib.ticker


def _numeric_ticks(low: float, high: float, log: bool, integer: bool) -> list[float]:
    """A few round values within [low, high]: powers of two (integers) or of ten on a log scale, else
    matplotlib's round steps; the range's ends when nothing round falls inside."""
    if high <= low:
        return [low]
    if log:
        twos = [2.0**k for k in range(64) if low <= 2.0**k <= high]
        if integer and 2 <= len(twos) <= 7:
            return twos
        exponents = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
        for mantissas in ((1,), (1, 3), (1, 2, 5)):
            ticks = [
                m * 10.0**e for e in exponents for m in mantissas if low <= m * 10.0**e <= high * (1 + 1e-9)
            ]
            if len(ticks) >= 2:
                return ticks[:: max(1, math.ceil(len(ticks) / 7))]
        return [low, high]
    locator = _matplotlib_ticker().MaxNLocator(nbins=5, integer=integer)
    span = high - low
    ticks = [float(v) for v in locator.tick_values(low, high) if low - 1e-9 * span <= v <= high + 1e-9 * span]
    return ticks if len(ticks) >= 2 else [low, high]


def _axis_label(name: str, importance: float | None) -> str:
    """`model.\nn_filters_2\n(0.32)`: short lines (importance last), so neighbouring labels do not collide."""
    group, _, key = name.rpartition(".")
    if len(key) > 13 and "_" in key:  # global_avg_pooling -> global_avg_ / pooling
        cut = min((i for i, c in enumerate(key) if c == "_"), key=lambda i: abs(i - len(key) / 2))
        key = f"{key[: cut + 1]}\n{key[cut + 1 :]}"
    label = f"{group}.\n{key}" if group else key
    return label + (f"\n({importance:.2f})" if importance is not None else "")


def build_parallel_coordinates(sweeps: list[Sweep], baseline: Baseline | None = None) -> Any | None:
    """The seed's Figure 3 as a matplotlib Figure: one line per complete trial through one axis per
    parameter (ordered by PED-ANOVA importance, most important left) and the validation accuracy (%) on
    the right, coloured by that accuracy; the baseline's configuration as a dashed red line. None with
    fewer than two complete trials."""
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
    base_params = base.params if base is not None else None

    axes_info: list[PCAxis] = []
    for name in names:
        values = [t.params.get(name) for t in trials]
        if base_params is not None:
            values.append(base_params.get(name))
        axes_info.append(
            PCAxis.for_parameter(name, _axis_label(name, importance.get(name)), distributions[name], values)
        )
    accuracies = [100 * (accuracy_of(t) or 0.0) for t in trials]
    lows_highs = [*accuracies, *([100 * base.value] if base is not None else [])]
    objective = PCAxis("objective", "validation\naccuracy (%)", min(lows_highs), max(lows_highs))
    axes_info.append(objective)

    plt = _plt()
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D

    n = len(axes_info)
    fig, host = plt.subplots(figsize=(max(8.0, 0.82 * n + 1.4), 5.4), layout="constrained")
    xs = np.arange(n, dtype=float)
    norm = Normalize(min(accuracies), max(accuracies))
    cmap = plt.get_cmap(ACCURACY_CMAP)
    threshold = 100 * base.value if base is not None else None
    order = sorted(range(len(trials)), key=lambda i: accuracies[i])  # the best drawn last, on top
    segments, colors, widths = [], [], []
    for i in order:
        t, accuracy = trials[i], accuracies[i]
        ys = [a.position(t.params.get(a.name)) for a in axes_info[:-1]] + [objective.position(accuracy)]
        segments.append(np.column_stack([xs, ys]))
        colors.append(cmap(norm(accuracy)))
        widths.append(2.0 if threshold is not None and accuracy > threshold else 1.0)
    host.add_collection(LineCollection(segments, colors=colors, linewidths=widths, alpha=0.85, zorder=2))
    handles = []
    if base is not None:  # its configuration as a dashed line, or only its accuracy on the last axis
        style = {"color": BASELINE_COLOR, "ls": "--", "lw": 1.8, "marker": "D", "ms": 4}
        xs_base = xs if base_params is not None else xs[-1:]
        ys_base = (
            [a.position(base_params.get(a.name)) for a in axes_info[:-1]] if base_params is not None else []
        )
        host.plot(
            xs_base, [*ys_base, objective.position(100 * base.value)], zorder=3, label="baseline", **style
        )
        configuration = "; its configuration" if base_params is not None else ""
        handles.append(Line2D([], [], label=base.label + configuration, **style))  # type: ignore[arg-type]
        handles.append(Line2D([], [], color="0.3", lw=2.0, label="thick: trials better than the baseline"))
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
    colorbar.set_label("validation accuracy (%)")
    if threshold is not None and min(accuracies) <= threshold <= max(accuracies):
        colorbar.ax.axhline(threshold, color=BASELINE_COLOR, ls="--", lw=2)
    budgets = sorted({int(s.results["budget_epochs"]) for s in sweeps if s.results.get("budget_epochs")})
    budget = f", {'/'.join(map(str, budgets))} epochs each" if budgets else ""
    pruned = sum(len(s.trials(States.PRUNED)) for s in sweeps)
    fig.suptitle(
        f"{len(trials)} complete trials{budget} ({_seeds(len(sweeps))}; {pruned} pruned trials not shown)\n"
        "coloured by validation accuracy; axes ordered by importance (in brackets), most important left",
        fontsize=10,
    )
    if handles:
        fig.legend(handles=handles, loc="outside lower left", fontsize=8, frameon=False, ncols=2)
    return fig


def figure_parallel_coordinates(
    sweeps: list[Sweep], path: Path, baseline: Baseline | None = None
) -> Path | None:
    """Figure 3 as a PNG (see `build_parallel_coordinates`); None with fewer than two complete trials."""
    fig = build_parallel_coordinates(sweeps, baseline)
    return _save(fig, path) if fig is not None else None


# ------------------------------------------------------------------------------ report
# The sweeper's own figures in each sweep directory (hydra_plugins/hydra_bohb_sweeper/_outputs/plots.py).
SWEEPER_FIGURES = {
    "best_so_far.png": "the objective of every complete trial and the best so far, against time and "
    "trial number (the sweeper's generic figure)",
    "param_importances.png": "PED-ANOVA importance of each parameter for the objective",
    "parallel_coordinates.html": "interactive parallel coordinates (Plotly; open in a browser)",
}


def write_report(out_dir: Path, bohb: list[Sweep], random: list[Sweep] | None = None) -> dict[str, Path]:
    """report.md + figure2_best_over_time.png + figure3_parallel_coordinates.png in `out_dir`."""
    random = random or []
    out_dir.mkdir(parents=True, exist_ok=True)
    methods = {"BOHB": bohb, **({"Random search": random} if random else {})}
    baseline = baseline_of(bohb)
    figures = {
        "figure2_best_over_time": figure_best_over_time(
            methods, out_dir / "figure2_best_over_time.png", baseline
        )
    }
    if fig3 := figure_parallel_coordinates(bohb, out_dir / "figure3_parallel_coordinates.png"):
        figures["figure3_parallel_coordinates"] = fig3

    devices = sorted({s.device() for s in bohb + random})
    counts = [s.results for s in bohb]
    lines = [
        "# BOHB joint architecture and hyperparameter search: report",
        "",
        f"Produced {datetime.now():%Y-%m-%d %H:%M} on: **{', '.join(devices)}**. "
        f"Studies: {', '.join(s.study.study_name for s in bohb + random)}.",
        "",
        "## Table 2: test accuracy",
        "",
        *table2(bohb),
        "",
        "Baseline and incumbents are trained with the same final budget on the same data; the test set "
        "is used only for these final evaluations, never by the search.",
        "",
        "## Search",
        "",
        "| Seed study | Trials (complete / pruned / failed) | Best val acc (%) | Epochs trained / unpruned "
        "| Search time |",
        "|---|---|---|---|---|",
    ]
    for s, r in zip(bohb, counts, strict=True):
        lines.append(
            f"| {s.study.study_name} | {r['n_complete']} / {r['n_pruned']} / {r['n_failed']} | "
            f"{100 * (r['best_value'] or 0):.2f} | "
            f"{r.get('epochs_trained', 0)} / {r.get('epochs_unpruned', 0)} | "
            f"{_minutes(s.search_seconds())} |"
        )
    if random:
        lines += ["", "## BOHB against random search at equal budget", "", *equal_budget_rows(bohb, random)]
    spread = "median and 25-75% band across seeds" if len(bohb) > 1 else "one seed"
    reference = "; dashed red: the baseline" if baseline is not None else ""
    lines += [
        "",
        "## Figure 2: best validation accuracy so far",
        "",
        f"Best validation accuracy (%) found so far against minutes and against epochs trained "
        f"({spread}){reference}.",
        "",
        "![Figure 2: best validation accuracy so far](figure2_best_over_time.png)",
        "",
    ]
    if "figure3_parallel_coordinates" in figures:
        lines += [
            "## Figure 3: parallel coordinates",
            "",
            "Every complete trial's parameters (most important left), coloured by validation accuracy"
            f"{'; dashed red: the baseline, thick: better than it' if baseline is not None else ''}; "
            "`inactive`: a parameter the trial does not use.",
            "",
            "![Figure 3: parallel coordinates](figure3_parallel_coordinates.png)",
            "",
        ]
    more = [
        f"- [{s.directory.name}/{file}]({os.path.relpath(s.directory / file, out_dir)}): {caption}"
        if len(bohb) > 1
        else f"- [{file}]({os.path.relpath(s.directory / file, out_dir)}): {caption}"
        for s in bohb
        for file, caption in SWEEPER_FIGURES.items()
        if (s.directory / file).is_file()
    ]
    if more:
        lines += ["## The sweeper's figures", "", *more, ""]
    best = max(bohb, key=lambda s: s.results.get("best_value") or 0)
    lines += [
        "## Best configuration",
        "",
        "```yaml",
        yaml.safe_dump(best.results.get("best_params", {})).strip(),
        "```",
    ]
    failures = [
        t.user_attrs[FAIL_REASON_ATTR]
        for s in bohb
        for t in s.trials(States.FAIL)
        if FAIL_REASON_ATTR in t.user_attrs
    ]
    if failures:
        lines += ["", f"{len(failures)} failed trials, e.g.: `{failures[0]}`"]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return {"report": report, **figures}


def write_sweep_report(sweep_dir: Path, study: optuna.Study) -> dict[str, Path]:
    """The BOHB sweeper's report hook: a one-seed report of `study` in the sweep directory."""
    return write_report(Path(sweep_dir), [Sweep.load(Path(sweep_dir), study=study)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write report.md for finished BOHB sweep directories.")
    parser.add_argument("sweeps", nargs="+", type=Path, help="BOHB sweep directories (one per seed)")
    parser.add_argument("--random", nargs="*", type=Path, default=[], help="random-search sweep directories")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: the first sweep's)")
    args = parser.parse_args(argv)
    paths = write_report(
        args.out or args.sweeps[0], [Sweep.load(d) for d in args.sweeps], [Sweep.load(d) for d in args.random]
    )
    print(paths["report"])


if __name__ == "__main__":
    main(sys.argv[1:])
