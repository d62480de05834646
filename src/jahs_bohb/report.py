"""Study reports in the seed's format: its Table 2 (baseline vs BOHB incumbents on the test set), its
Figure 2 (best validation error over wall time: median and 25-75% band across seeds) and its Figure 3
(parallel coordinates ordered by parameter importance, configurations better than the baseline
highlighted), plus BOHB against random search at equal budget. Markdown + PNG; no torch needed.

    python -m jahs_bohb.report outputs/multiseed/bohb-seed*   # a report over existing sweep dirs
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml

from hydra_plugins.hydra_bohb_sweeper.analysis import param_importances
from hydra_plugins.hydra_bohb_sweeper.names import (
    FAIL_REASON_ATTR,
    FINAL_FILE,
    METRICS_ATTR,
    RESULTS_FILE,
    STORAGE_FILE,
)

States = optuna.trial.TrialState


@dataclass
class Sweep:
    """One finished sweep directory, read back from its files and its Optuna study."""

    directory: Path
    study: optuna.Study
    results: dict[str, Any]
    final: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path, storage: str | None = None) -> Sweep:
        results = yaml.safe_load((directory / RESULTS_FILE).read_text())
        final_path = directory / FINAL_FILE
        final = yaml.safe_load(final_path.read_text()) if final_path.is_file() else {}
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

    def best_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """(seconds since the first trial started, best validation error so far) at each completion."""
        trials = [t for t in self.trials(States.COMPLETE) if t.datetime_complete and t.value is not None]
        if not trials:
            return np.array([]), np.array([])
        start = min(t.datetime_start for t in self.trials() if t.datetime_start)
        trials.sort(key=lambda t: t.datetime_complete or datetime.min)
        seconds = np.array([(t.datetime_complete - start).total_seconds() for t in trials])  # type: ignore[operator]
        best_error = 1.0 - np.maximum.accumulate(np.array([t.value for t in trials], dtype=float))
        return seconds, best_error

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
def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_best_over_time(methods: dict[str, list[Sweep]], path: Path) -> Path:
    """The seed's Figure 2: best validation error over wall time, median and 25-75% band over seeds."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4), constrained_layout=True)
    curves_by_method = {
        name: [c for c in map(Sweep.best_curve, sweeps) if len(c[0])] for name, sweeps in methods.items()
    }
    horizon = max((c[0][-1] for curves in curves_by_method.values() for c in curves), default=1.0)
    grid = np.linspace(0, horizon, 400)
    for color, (name, curves) in zip(("C0", "C1", "C2"), curves_by_method.items(), strict=False):
        if not curves:
            continue
        # A step function per seed: the best error holds until the next completed trial improves it;
        # before a seed's first completed trial it is undefined (NaN), not 100%.
        stacked = np.array([_step(grid, seconds, errors) for seconds, errors in curves])
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(stacked, axis=0)
            low, high = np.nanpercentile(stacked, 25, axis=0), np.nanpercentile(stacked, 75, axis=0)
        ax.plot(
            grid / 60, median, color=color, label=f"{name} (median of {len(curves)})", drawstyle="steps-post"
        )
        ax.fill_between(grid / 60, low, high, color=color, alpha=0.2, step="post")
    ax.set_xlabel("wall time (min)")
    ax.set_ylabel("best validation error so far")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def _step(grid: np.ndarray, seconds: np.ndarray, errors: np.ndarray) -> np.ndarray:
    index = np.searchsorted(seconds, grid, side="right") - 1
    return np.where(index >= 0, errors[np.clip(index, 0, None)], np.nan)


def _normalise(values: list[Any], distribution: Any) -> list[float]:
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        choices = list(distribution.choices)
        span = max(len(choices) - 1, 1)
        return [choices.index(v) / span if v in choices else math.nan for v in values]
    low, high = float(distribution.low), float(distribution.high)
    if distribution.log:
        low, high = math.log(low), math.log(high)
        values = [math.log(v) if v is not None else None for v in values]
    return [(v - low) / (high - low) if v is not None else math.nan for v in values]


def figure_parallel_coordinates(sweeps: list[Sweep], threshold: float | None, path: Path) -> Path | None:
    """The seed's Figure 3: every complete trial, axes ordered by PED-ANOVA importance, trials with a
    validation accuracy above the baseline's (`threshold`) in blue; inactive parameters leave gaps."""
    trials = [t for s in sweeps for t in s.trials(States.COMPLETE) if t.value is not None]
    if len(trials) < 2:
        return None
    distributions: dict[str, Any] = {}
    for t in trials:
        distributions.update(t.distributions)
    importance = param_importances(sweeps[0].study)
    names = sorted(distributions, key=lambda n: -importance.get(n, -1.0))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(8, 0.75 * len(names) + 2), 4.5), constrained_layout=True)
    values = [float(t.value) for t in trials if t.value is not None]
    lo, hi = min(values), max(values)
    for t in sorted(trials, key=lambda t: t.value or 0.0):
        ys = [_normalise([t.params.get(n)], distributions[n])[0] for n in names]
        ys.append((t.value - lo) / (hi - lo) if hi > lo else 0.5)  # type: ignore[operator]
        better = threshold is not None and t.value is not None and t.value > threshold
        ax.plot(
            range(len(ys)),
            ys,
            color="C0" if better else "0.75",
            alpha=0.9 if better else 0.5,
            lw=1.2 if better else 0.8,
        )
    labels = [f"{n}\n({importance[n]:.2f})" if n in importance else n for n in names] + ["val acc"]
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks([])
    for x in range(len(labels)):
        ax.axvline(x, color="k", lw=0.5, alpha=0.4)
    title = "complete trials; blue: better than the baseline" if threshold is not None else "complete trials"
    ax.set_title(f"{title} (importance in brackets)", fontsize=9)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------ report
def write_report(out_dir: Path, bohb: list[Sweep], random: list[Sweep] | None = None) -> dict[str, Path]:
    """report.md + figure2_best_over_time.png + figure3_parallel_coordinates.png in `out_dir`."""
    random = random or []
    out_dir.mkdir(parents=True, exist_ok=True)
    methods = {"BOHB": bohb, **({"Random search": random} if random else {})}
    figures = {
        "figure2_best_over_time": figure_best_over_time(methods, out_dir / "figure2_best_over_time.png")
    }
    baseline_val = [b["val_acc_best"] for s in bohb if (b := s.evaluation("baseline")).get("val_acc_best")]
    threshold = statistics.mean(baseline_val) if baseline_val else None
    if fig3 := figure_parallel_coordinates(bohb, threshold, out_dir / "figure3_parallel_coordinates.png"):
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
            f"{100 * (r['best_value'] or 0):.2f} | {r['epochs_trained']} / {r['epochs_unpruned']} | "
            f"{_minutes(s.search_seconds())} |"
        )
    if random:
        lines += ["", "## BOHB against random search at equal budget", "", *equal_budget_rows(bohb, random)]
    lines += [
        "",
        "## Figure 2: best validation error over wall time",
        "",
        "![](figure2_best_over_time.png)",
        "",
    ]
    if "figure3_parallel_coordinates" in figures:
        lines += ["## Figure 3: parallel coordinates", "", "![](figure3_parallel_coordinates.png)", ""]
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


def write_sweep_report(sweep_dir: Path) -> dict[str, Path]:
    """The BOHB sweeper's report hook: a one-seed report in the sweep directory."""
    return write_report(Path(sweep_dir), [Sweep.load(Path(sweep_dir))])


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
