"""Two objectives (accuracy up, size down): the picks from a front, hypervolume, and a real
two-objective sweep of the cheap app through Hydra's multirun (decisions at a rung by Pareto rank are
in test_scheduling.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml
from sweeps import Sweep, cheap_task, compose_sweep, scratch_dir, sweep_in_process, sweeper_settings

from hydra_plugins.hydra_bohb_sweeper._outputs import pareto as _pareto
from hydra_plugins.hydra_bohb_sweeper._setup.preflight import prepare
from hydra_plugins.hydra_bohb_sweeper._setup.settings import SweepConfigError
from hydra_plugins.hydra_bohb_sweeper.names import FINAL_FILE, VALUES_BY_EPOCH_ATTR

States = optuna.trial.TrialState
UP_DOWN = ["maximize", "minimize"]
TWO_OBJECTIVES = (  # the default pruner, Hyperband, ranks by Pareto front with several objectives
    "hydra.sweeper.direction=[maximize,minimize]",
    "hydra.sweeper.objective=[acc,size]",
)
optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- the picks and the hypervolume ----------------------------------------------------------------


def front_study(points: list[tuple[float, float]]) -> optuna.Study:
    study = optuna.create_study(directions=UP_DOWN)
    for acc, size in points:
        trial = study.ask()
        study.tell(trial, [acc, size])
    return study


def test_picks_from_a_front() -> None:
    study = front_study([(0.910, 90_000), (0.907, 40_000), (0.880, 9_000), (0.850, 2_000), (0.70, 1_000)])
    front, directions = study.best_trials, study.directions
    chosen = _pareto.picks(front, directions, tolerance=0.005, baseline=[0.86, 29_000])
    numbers = {name: t.number for name, t in chosen.items()}
    assert numbers == {
        "best": 0,  # the most accurate
        "cheapest_within_tolerance": 1,  # 0.907 is within 0.005 of 0.910, at less than half the size
        "cheapest_beating_baseline": 2,  # the smallest front point above the baseline's 0.86
    }
    assert "cheapest_beating_baseline" not in _pareto.picks(front, directions, 0.005, baseline=[0.95, 1])


def test_hypervolume_against_a_reference_point() -> None:
    points = [(0.9, 4.0), (0.8, 2.0), (0.5, 1.0), (0.4, 9.0)]  # the last is dominated
    # Reference: accuracy 0, size 10 -> slabs 0.9*6 + 0.8*2... as rectangles from the reference.
    area = _pareto.hypervolume(points, reference=(0.0, 10.0), directions=UP_DOWN)
    assert area == pytest.approx(0.9 * 6 + 0.8 * 2 + 0.5 * 1)
    assert _pareto.hypervolume([(0.9, 11.0)], reference=(0.0, 10.0), directions=UP_DOWN) == 0.0


# --- a two-objective sweep ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_objective_sweep() -> Iterator[Sweep]:
    root = scratch_dir("bohb-mo-")
    yield sweep_in_process(
        root / "sweep", *TWO_OBJECTIVES, "hydra.sweeper.n_trials=24", "hydra.sweeper.figures=true",
        "hydra.sweeper.final_evaluation.enabled=true", "hydra.sweeper.final_evaluation.baseline=true",
        'hydra.sweeper.final_evaluation.overrides=["max_epochs=20"]',
    )  # fmt: skip
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_a_two_objective_sweep_prunes_and_writes_the_front(two_objective_sweep: Sweep) -> None:
    run = two_objective_sweep
    run.assert_ok()
    assert run.results is not None
    paused = [c for c in run.configs.values() if c.state != "complete"]
    assert paused and all(c.epochs in (1, 3) for c in paused)  # they stopped at a rung
    resumed = [c for c in run.configs.values() if len(c.trials) > 1]
    assert resumed  # promoted by Pareto rank, continued from their checkpoints
    for config in resumed:
        epochs = [int(e) for t in config.trials for e in t.user_attrs[VALUES_BY_EPOCH_ATTR]]
        assert epochs == list(range(1, config.epochs + 1))  # no epoch twice, none skipped
    solutions = run.results["solutions"]
    assert len(solutions) >= 2
    values = [tuple(s["values"]) for s in solutions]
    for acc, size in values:  # no solution dominates another
        assert not any(a >= acc and s <= size and (a, s) != (acc, size) for a, s in values)
    for solution in solutions:
        assert solution["values"][1] == cheap_task.size(solution["params"]["x"])
    assert [s["values"][0] for s in solutions] == sorted((s["values"][0] for s in solutions), reverse=True)
    assert run.results["direction"] == ["maximize", "minimize"]
    assert run.results["epochs_trained"] < run.results["epochs_unpruned"]
    assert (run.sweep_dir / "pareto_front.png").stat().st_size > 0


@pytest.mark.slow
def test_the_front_picks_are_retrained_beside_the_baseline(two_objective_sweep: Sweep) -> None:
    final = yaml.safe_load((two_objective_sweep.sweep_dir / FINAL_FILE).read_text())
    front = {s["trial"] for s in two_objective_sweep.results["solutions"]}  # type: ignore[index]
    baseline_acc = final["baseline-search"]["value"][0]
    assert final["baseline-search"]["metrics"]["epochs"] == 9 and final["baseline"]["metrics"]["epochs"] == 20
    for name, record in final["front"].items():
        assert record["trial"] in front and record["state"] == "complete", name
        assert record["metrics"]["epochs"] == 20
    best, within = final["front"]["best"], final["front"]["cheapest_within_tolerance"]
    assert best["search_values"][0] - within["search_values"][0] <= 0.005
    beating = final["front"]["cheapest_beating_baseline"]
    assert beating["search_values"][0] > baseline_acc


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (
            [
                "hydra.sweeper.direction=[maximize,minimize]",
                "hydra.sweeper.objective=[acc,size]",
                "+hydra.sweeper.pruner={_target_: optuna.pruners.MedianPruner}",
            ],
            "use hydra/sweeper/pruner=hyperband",
        ),
        (["hydra.sweeper.direction=[maximize,minimize]", "hydra.sweeper.objective=acc"], "one direction per"),
        (["hydra.sweeper.direction=[maximize,sideways]"], "sideways must be maximize or minimize"),
    ],
)
def test_bad_two_objective_settings_are_refused_in_one_line(overrides: list[str], fragment: str) -> None:
    config, compose = compose_sweep(overrides)
    with pytest.raises(SweepConfigError) as refused:
        prepare(sweeper_settings(config), "cheap_task", [], config, compose)
    assert fragment in str(refused.value) and "\n" not in str(refused.value)


def test_multiple_objective_pruning_needs_no_reports_from_optuna(tmp_path: Path) -> None:
    """Optuna refuses trial.report with several objectives: the reason the client keeps vectors."""
    study = optuna.create_study(directions=UP_DOWN, storage=f"sqlite:///{tmp_path / 'db'}")
    with pytest.raises(NotImplementedError):
        study.ask().report(0.5, 1)
