"""The figures a person reads, built from real studies: a small sweep of the cheap app (in this process)
with a log-scale parameter, a categorical one, a conditional one and a baseline trained in the final
evaluation, and a second seed. The tests inspect the matplotlib Figures, not pixels: every axis
carries tick labels, categories are named, log axes are log, the baseline is drawn."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import optuna
import pytest
from sweeps import cheap_task, scratch_dir, sweep_in_process

from hydra_plugins.hydra_bohb_sweeper._outputs import plots as _plots
from hydra_plugins.hydra_bohb_sweeper.analysis import (
    INACTIVE,
    best_so_far,
    best_so_far_by_epochs,
    compared_at_one_epoch,
    param_importances,
)
from jahs_bohb import report
from jahs_bohb.report import figures, parallel_axes
from jahs_bohb.report.sweeps import FINISHED

matplotlib.use("Agg")
import matplotlib.pyplot as plt

SPACE = (
    "hydra.sweeper.n_trials=12",
    "x=tag(log, interval(0.01, 1))",  # a log-scale float; y: choice(a, b, c); z: only when y == c
    "hydra.sweeper.final_evaluation.enabled=true",
    "hydra.sweeper.final_evaluation.baseline=true",  # the job's defaults: x=0.5, y=a, z inactive
    "hydra.sweeper.figures=true",
)


@pytest.fixture(scope="module")
def sweeps() -> list[report.Sweep]:
    """Seed 0: a real sweep of the cheap app, with the baseline trained after it. Seed 1: the same
    learning curves in an Optuna study of this process (real trials, reported and pruned per epoch), so a
    second seed costs no second sweep."""
    root = scratch_dir("report-")
    # The study outside the sweep directory, as on a database server: the report hook gets it from the
    # sweeper, not from the default SQLite file.
    storage = f"sqlite:///{root / 'elsewhere.db'}"
    run = sweep_in_process(
        root / "seed0", *SPACE, f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.report=jahs_bohb.report.write_sweep_report",
    )  # fmt: skip
    run.assert_ok()
    return [report.Sweep.load(run.sweep_dir, storage), optuna_seed(root / "seed1", seed=1)]


def optuna_seed(directory: Path, seed: int, n_trials: int = 12) -> report.Sweep:
    study = optuna.create_study(
        study_name=f"seed{seed}",
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=9, reduction_factor=3),
    )

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.01, 1.0, log=True)
        y = trial.suggest_categorical("y", ["a", "b", "c"])
        z = trial.suggest_float("z", 0.0, 1.0) if y == "c" else 0.0
        for epoch in range(1, 10):
            value = cheap_task.learning_curve(x, y, z, epoch)
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned
        return value

    study.optimize(objective, n_trials=n_trials)
    trials = study.get_trials()
    results = {
        "study_name": study.study_name,
        "best_value": study.best_value,
        "budget_epochs": 9,
        "epochs_trained": sum(len(t.intermediate_values) for t in trials),
        "epochs_unpruned": 9 * len(trials),
        **{f"n_{s}": sum(t.state.name.lower() == s for t in trials) for s in ("complete", "pruned")},
        "n_failed": 0,
    }
    directory.mkdir(parents=True)
    return report.Sweep(directory, study, results)


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def value_axes(fig: matplotlib.figure.Figure) -> dict[str, matplotlib.axes.Axes]:
    """The parallel-coordinates axes, by the parameter they show (`objective`: the accuracy)."""
    return {ax.get_label(): ax for ax in fig.axes if ax.get_label() in {"x", "y", "z", "objective"}}


def tick_texts(ax: matplotlib.axes.Axes) -> list[str]:
    return [t.get_text() for t in ax.get_yticklabels()]


# --------------------------------------------------------------------------- Figure 3
def test_parallel_coordinates_label_every_axis(sweeps: list[report.Sweep]) -> None:
    fig = report.build_parallel_coordinates(sweeps[:1])
    axes = value_axes(fig)
    assert set(axes) == {"x", "y", "z", "objective"}
    for name, ax in axes.items():
        labels = tick_texts(ax)
        assert len(labels) >= 2 and all(labels), (name, labels)
    # Log-scale parameter: a real log axis, with round values across the searched range.
    assert axes["x"].get_yscale() == "log"
    assert {"0.01", "0.1", "1"} <= set(tick_texts(axes["x"]))
    # Categorical: the category names; conditional: an `inactive` slot below the axis' range.
    assert [t for t in tick_texts(axes["y"]) if t != INACTIVE] == ["a", "b", "c"]
    assert INACTIVE in tick_texts(axes["z"])
    assert axes["z"].get_yscale() == "linear"
    # The objective axis is labelled, in percent, at the epoch every configuration is compared at.
    comparison = compared_at_one_epoch(sweeps[0].study)
    assert comparison is not None
    after = f"after {comparison.epoch} epoch{'s' if comparison.epoch > 1 else ''}"
    host = fig.axes[0]
    assert f"validation\naccuracy (%)\n{after}" in [t.get_text() for t in host.get_xticklabels()]
    low, high = axes["objective"].get_ylim()
    values = [100 * t.value for t in comparison.study.trials]
    assert low <= min(values) and max(values) <= high


def test_parallel_coordinates_compare_every_configuration_at_one_epoch(sweeps: list[report.Sweep]) -> None:
    """Few configurations train the whole budget: Figure 3 draws every one that reached the sweeper's
    comparison epoch (as its own parallel coordinates do), not only the complete trials, and says so."""
    comparison = compared_at_one_epoch(sweeps[0].study)
    assert comparison is not None
    complete = sweeps[0].trials(optuna.trial.TrialState.COMPLETE)
    assert comparison.configurations > len(complete)
    fig = report.build_parallel_coordinates(sweeps[:1])
    host = fig.axes[0]
    (lines,) = host.collections
    segments = lines.get_segments()
    assert len(segments) == comparison.configurations
    assert all(len(s) == 4 and all(math.isfinite(y) for _, y in s) for s in segments)  # x, y, z, objective
    plan = report.parallel_coordinates(sweeps[:1])
    assert plan is not None and plan.epoch == comparison.epoch
    assert f"{comparison.configurations} configurations after" in fig.texts[0].get_text()
    assert f"reached epoch {comparison.epoch}" in plan.caption()
    # The baseline trained the whole budget in the final evaluation, more epochs than the comparison:
    # its configuration is drawn, its accuracy is not put beside accuracies after fewer epochs.
    evaluation = sweeps[0].evaluation("baseline")
    assert plan.baseline is not None and plan.baseline.epochs == evaluation["epochs"] > comparison.epoch
    (baseline,) = [line for line in host.lines if line.get_label() == "baseline"]
    xs, ys = baseline.get_data()
    assert len(xs) == 3  # x, y and z, no accuracy
    names = [ax.get_label() for ax in fig.axes[1:5]]
    assert ys[names.index("z")] == parallel_axes.INACTIVE_Y  # the baseline has y=a: z is inactive for it
    assert set(lines.get_linewidths()) == {1.0}  # nothing is "better than the baseline"
    (legend,) = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend.startswith("the baseline's configuration") and "not on the accuracy axis" in legend
    assert "the baseline's configuration" in plan.caption() and "thick" not in plan.caption()
    # Several seeds share one epoch: the shallowest of their comparisons.
    both = report.parallel_coordinates(sweeps)
    epochs = [c.epoch for s in sweeps if (c := compared_at_one_epoch(s.study)) is not None]
    assert both is not None and len(epochs) == 2 and both.epoch == min(epochs)
    shared = [compared_at_one_epoch(s.study, both.epoch) for s in sweeps]
    assert len(both.trials) == sum(c.configurations for c in shared if c is not None)
    assert compared_at_one_epoch(sweeps[0].study, epoch=10**6) is None  # no configuration got there


def check_baseline_on_the_accuracy_axis(fig: matplotlib.figure.Figure, baseline: report.Baseline) -> None:
    host = fig.axes[0]
    (line,) = [line for line in host.lines if line.get_label() == "baseline"]
    xs, ys = line.get_data()
    assert len(xs) == 4  # its configuration, then its accuracy
    names = [ax.get_label() for ax in fig.axes[1:5]]
    assert ys[names.index("z")] == parallel_axes.INACTIVE_Y
    objective = value_axes(fig)["objective"]
    (bottom, top), (y0, y1) = objective.get_ylim(), parallel_axes.Y_RANGE
    on_axis = bottom + (ys[-1] - y0) / (y1 - y0) * (top - bottom)  # the line's height in percent
    assert on_axis == pytest.approx(100 * baseline.value)
    assert any(ax.get_ylabel().startswith("validation accuracy (%)") for ax in fig.axes)  # the colour bar
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(t.startswith("baseline: ") for t in legend)
    assert "thick: trials better than the baseline" in legend


def test_parallel_coordinates_put_the_baseline_on_the_accuracy_axis_where_it_compares(
    sweeps: list[report.Sweep], tmp_path: Path
) -> None:
    baseline = report.baseline_of(sweeps[:1], ["x", "y", "z"])
    assert baseline is not None and baseline.params is not None
    comparison = compared_at_one_epoch(sweeps[0].study)
    assert comparison is not None
    # A baseline trained for the comparison's epochs compares with the configurations there.
    at_epoch = dataclasses.replace(baseline, epochs=comparison.epoch)
    check_baseline_on_the_accuracy_axis(report.build_parallel_coordinates(sweeps[:1], at_epoch), at_epoch)
    # Too few configurations to compare at one epoch: the complete trials, as in the seed's Figure 3.
    few = optuna_seed(tmp_path / "few", seed=2, n_trials=5)
    assert compared_at_one_epoch(few.study) is None
    plan = report.parallel_coordinates([few], baseline)
    assert plan is not None and plan.epoch is None
    complete = few.trials(optuna.trial.TrialState.COMPLETE)
    assert len(plan.trials) == len(complete) >= 2
    fig = figures.draw_parallel_coordinates(plan)
    assert len(fig.axes[0].collections[0].get_segments()) == len(complete)
    assert f"{len(complete)} complete trials, 9 epochs each" in fig.texts[0].get_text()
    check_baseline_on_the_accuracy_axis(fig, baseline)
    assert "Every complete trial" in plan.caption() and "thick: better than it" in plan.caption()


def test_baseline_configuration_is_read_from_its_job(sweeps: list[report.Sweep]) -> None:
    assert sweeps[0].baseline_params(["x", "y", "z"]) == {"x": 0.5, "y": "a", "z": None}
    assert sweeps[1].baseline_params(["x"]) is None  # no final evaluation: no baseline


@pytest.mark.parametrize(
    ("low", "high", "log", "integer", "expected"),
    [
        (1e-5, 1e-2, True, False, [1e-5, 1e-4, 1e-3, 1e-2]),
        (8, 256, True, True, [8, 16, 32, 64, 128, 256]),
        (0.001, 1.0, True, False, [0.001, 0.01, 0.1, 1.0]),
        (0.0, 1.0, False, False, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    ],
)
def test_numeric_ticks_are_round_values_in_range(
    low: float, high: float, log: bool, integer: bool, expected: list[float]
) -> None:
    assert parallel_axes.numeric_ticks(low, high, log, integer) == pytest.approx(expected)


def test_values_outside_the_space_get_their_own_place() -> None:
    """The baseline may sit outside the space: batch 100 among choices 64..2048, weight decay 0 on a log
    axis, 64 filters where the search went to 32."""
    batch = parallel_axes.PCAxis.for_parameter(
        "b", "b", optuna.distributions.CategoricalDistribution([64, 128, 256]), [64, 100, 256]
    )
    assert batch.categories == [64, 100, 128, 256] and batch.extra == [100]
    decay = parallel_axes.PCAxis.for_parameter(
        "wd", "wd", optuna.distributions.FloatDistribution(1e-5, 1e-2, log=True), [1e-4, 0.0, None]
    )
    assert decay.zero and decay.inactive and decay.position(0.0) == parallel_axes.ZERO
    assert decay.ticks()[1][:2] == [INACTIVE, "0"]
    filters = parallel_axes.PCAxis.for_parameter(
        "f", "f", optuna.distributions.IntDistribution(8, 32, log=True), [8, 16, 64]
    )
    assert filters.high == 64 and "64" in filters.ticks()[1]


# --------------------------------------------------------------------------- Figure 2
def test_best_over_time_one_seed(sweeps: list[report.Sweep]) -> None:
    baseline = report.baseline_of(sweeps[:1])
    assert baseline is not None
    fig = report.build_best_over_time({"BOHB": sweeps[:1]}, baseline)
    time_ax, epoch_ax = fig.axes
    assert time_ax.get_xlabel() == "search time (minutes)"
    assert epoch_ax.get_xlabel().startswith("epochs trained")
    assert time_ax.get_ylabel() == "best validation accuracy so far (%)"
    for ax in (time_ax, epoch_ax):
        assert ax.get_yscale() == "linear" and ax.get_xscale() == "linear"
        assert all(t.get_text() for t in ax.get_yticklabels())
        (reference,) = [line for line in ax.lines if line.get_label() == baseline.label]
        assert reference.get_ydata()[0] == pytest.approx(100 * baseline.value)
        (curve,) = [line for line in ax.lines if line.get_label() == "BOHB (1 seed)"]
        assert max(curve.get_ydata()) == pytest.approx(100 * sweeps[0].results["best_value"])
    legend = [t.get_text() for t in time_ax.get_legend().get_texts()]
    assert not any("median" in t for t in legend)


def test_best_over_time_several_seeds_shows_median_and_band(sweeps: list[report.Sweep]) -> None:
    fig = report.build_best_over_time({"BOHB": sweeps}, report.baseline_of(sweeps))
    time_ax = fig.axes[0]
    legend = [t.get_text() for t in time_ax.get_legend().get_texts()]
    assert "BOHB: median of 2 seeds" in legend and "BOHB: 25-75% across seeds" in legend
    assert time_ax.collections  # the band
    curve = sweeps[0].best_curve()
    assert list(curve["epochs"]) == sorted(curve["epochs"])  # epochs spent only grow
    assert curve["epochs"][-1] == sweeps[0].results["epochs_trained"]  # segments count their own epochs


def test_best_so_far_by_epochs_is_the_sweepers_best_so_far_with_every_epoch_spent(
    sweeps: list[report.Sweep],
) -> None:
    for sweep in sweeps:
        rows = best_so_far_by_epochs(sweep.study)
        assert len(rows) == len(sweep.trials(*FINISHED))  # every finished trial, paused ones too
        assert rows[-1]["epochs"] == sweep.results["epochs_trained"]
        assert (
            rows[-1]["best_value"]
            == best_so_far(sweep.study)[-1]["best_value"]
            == sweep.results["best_value"]
        )
        assert sweep.best_at_budget(rows[-1]["epochs"]) == sweep.results["best_value"]
        assert sweep.best_at_budget(0) is None


# --------------------------------------------------------------------------- report.md
def test_report_shows_every_figure_with_a_caption(sweeps: list[report.Sweep], tmp_path: Path) -> None:
    paths = report.write_report(tmp_path, sweeps)
    text = paths["report"].read_text()
    for name in ("figure2_best_over_time", "figure3_parallel_coordinates"):
        assert paths[name].stat().st_size > 0
        line = next(i for i, line in enumerate(text.splitlines()) if f"]({name}.png)" in line)
        assert text.splitlines()[line - 2].strip(), f"{name} has no caption"
    plan = report.parallel_coordinates(sweeps)
    assert plan is not None and plan.caption() in text  # what the figure draws: configurations at an epoch
    assert "| Seed study | Configurations (complete / pruned / failed) |" in text
    for figure in ("best_so_far.png", "param_importances.png", "parallel_coordinates.html"):
        assert f"seed0/{figure}" in text  # the sweeper's own figures, linked with a caption
    assert "median of 1" not in text


# --------------------------------------------------------------------------- the sweeper's figures
def test_sweeper_figures_name_the_objective(sweeps: list[report.Sweep], tmp_path: Path) -> None:
    for name in ("best_so_far.png", "param_importances.png", "parallel_coordinates.html"):
        assert (sweeps[0].directory / name).stat().st_size > 0  # written by the sweep (figures=true)
    study = sweeps[0].study
    assert _plots.objective_name(study) == "acc"  # hydra.sweeper.objective of the cheap app
    written = _plots.write_figures(study, tmp_path)
    assert {p.name for p in written.values()} == {
        "best_so_far.png", "param_importances.png", "parallel_coordinates.html",
    }  # fmt: skip
    fig = _plots.build_best_so_far(study, best_so_far(study), baseline=0.5)
    time_ax, trial_ax = fig.axes
    assert time_ax.get_ylabel() == "acc\n(higher is better)"
    assert time_ax.get_xlabel().startswith("time since the first trial started (")
    assert trial_ax.get_xlabel() == "trial number"
    assert any(line.get_label().startswith("baseline") for line in time_ax.lines)
    scores = param_importances(study)
    importances = _plots.build_importances(scores, "acc")
    assert "acc" in importances.axes[0].get_title()
    assert [t.get_text() for t in importances.axes[0].get_yticklabels()] == list(scores)[::-1]
    comparison = compared_at_one_epoch(study)
    assert comparison is not None and comparison.configurations >= 8  # not only the complete ones
    parallel = _plots.build_parallel_coordinates(study, None, comparison)
    assert f"{comparison.configurations} configurations after {comparison.epoch} epochs" in (
        parallel.layout.title.text
    )
    assert list(parallel.layout.xaxis.ticktext) == ["acc", "x", "y", "z"]
    assert "inactive" in [a.text for a in parallel.layout.annotations]  # z without y == c
    assert "None" not in [a.text for a in parallel.layout.annotations]


def test_the_sweep_report_reads_the_study_wherever_it_is_stored(sweeps: list[report.Sweep]) -> None:
    sweep_dir = sweeps[0].directory
    text = (sweep_dir / "report.md").read_text()
    assert "## Table 2" in text and "| BOHB incumbent |" in text
    assert not (sweep_dir / "optuna.db").exists()  # no empty SQLite file from a wrong guess


def test_sweeper_figures_skip_a_study_with_several_objectives(tmp_path: Path) -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_float("y", 0, 1)), n_trials=5)
    assert _plots.write_figures(study, tmp_path) == {}  # and does not raise: the sweep still finishes


def test_the_report_shows_the_final_picks_candidates_and_its_configuration(
    sweeps: list[report.Sweep], tmp_path: Path
) -> None:
    text = report.write_report(tmp_path, sweeps[:1])["report"].read_text()
    final = sweeps[0].final
    pick = final["incumbent"]["configuration"]
    assert "## The final pick" in text and text.count("**the pick**") == 1
    for candidate in final["candidates"]:
        assert f"| #{candidate['configuration']} |" in text
    assert f"Picked: {sweeps[0].study.study_name}: #{pick}, {final['incumbent']['chosen_because']}." in text
    assert f"## Best configuration (the final pick, #{pick})" in text


def test_the_report_names_the_configurations_left_out_of_the_final_evaluation(
    sweeps: list[report.Sweep], tmp_path: Path
) -> None:
    why = "0.166 at epoch 1 against 0.439 for #1: 0.273 behind, more than 0.5 x 0.28"
    final = {**sweeps[0].final, "left_out": [{"configuration": 5, "why": why}]}
    text = report.write_report(tmp_path, [dataclasses.replace(sweeps[0], final=final)])["report"].read_text()
    assert f"| #5 | not retrained: {why} |" in text
