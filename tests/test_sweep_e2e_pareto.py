"""The real command for two objectives, `python train.py -m sweeper=bohb_mo ...`, on real Fashion-MNIST
subsets: accuracy up, parameters down, with trials in joblib worker processes (its own file, so that the
test runs beside the single-objective end-to-end tests in test_sweep_e2e.py)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from sweeps import train_sweep_cli

from hydra_plugins.hydra_bohb_sweeper._study import view as _view


@pytest.mark.slow
def test_two_objective_sweep_prunes_and_writes_the_front(tmp_path: Path) -> None:
    """`sweeper=bohb_mo`: accuracy up, parameters down, Hyperband by Pareto rank, with the trials in two
    joblib processes that report to the sweeper's study and are pruned there."""
    train_sweep_cli(
        tmp_path, "sweeper=bohb_mo", "hydra.sweeper.n_trials=8", "hydra.sweeper.budget=3",
        "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2",
        "logger=none", "torch_threads=1",
        'hydra.sweeper.final_evaluation.overrides=["trainer.max_epochs=1","evaluate_test=true"]',
    )  # fmt: skip
    study = optuna.load_study(study_name="jahs-bohb-mo", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    trials = study.get_trials()
    configs = _view.configurations(trials)
    assert len(configs) == 8 and any(c.state == "paused" for c in configs.values())
    assert all(t.user_attrs["values_by_epoch"] for t in trials)  # reported from the joblib processes
    results = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    solutions = results["solutions"]
    assert len(solutions) >= 2
    for s in solutions:
        trial = trials[s["trial"]]
        assert s["values"] == list(trial.values)
        # The parameter count was reported from the first epoch on, with the accuracy.
        first = configs[trial.user_attrs["config"]].trials[0]
        assert first.user_attrs["values_by_epoch"]["1"][1] == s["values"][1]
    points = [tuple(s["values"]) for s in solutions]
    assert not any(a >= acc and p <= n and (a, p) != (acc, n) for acc, n in points for a, p in points)
    assert (tmp_path / "pareto_front.png").stat().st_size > 0
    final = yaml.safe_load((tmp_path / "final_evaluation.yaml").read_text())
    assert 0.1 < final["front"]["best"]["metrics"]["test_acc"] <= 1.0
    assert final["baseline"]["value"][1] == 29290  # an objective here: (val_acc_best, n_parameters)
