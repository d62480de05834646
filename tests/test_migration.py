"""Coming from hydra-optuna-sweeper: what its users meet here, one test per row of docs/samplers.md's
table of differences (the rows tested elsewhere name their test there).

Each test runs what the command line runs: the sweeper's preflight on the composed config, or a
sweep of the cheap app in this process.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from hydra.utils import instantiate
from sweeps import Sweep, compose_sweep, scratch_dir, sweep_in_process, sweeper_settings

from hydra_plugins.hydra_bohb_sweeper._setup.preflight import prepare

# Every key of the official sweeper's sampler configs (hydra-optuna-sweeper's config.py, main branch and
# 1.2), with its official default: a config written for it composes here unchanged.
OFFICIAL_SAMPLER_KEYS: dict[str, dict[str, Any]] = {
    "tpe": {
        "seed": None, "consider_prior": True, "prior_weight": 1.0, "consider_magic_clip": True,
        "consider_endpoints": False, "n_startup_trials": 10, "n_ei_candidates": 24, "multivariate": False,
        "warn_independent_sampling": True,
    },
    "random": {"seed": None},
    "cmaes": {
        "seed": None, "x0": None, "sigma0": None, "independent_sampler": None,
        "warn_independent_sampling": True, "consider_pruned_trials": False, "restart_strategy": None,
        "inc_popsize": 2, "use_separable_cma": False, "source_trials": None,
    },
    "nsgaii": {
        "seed": None, "population_size": 50, "mutation_prob": None, "crossover_prob": 0.9,
        "swapping_prob": 0.5, "constraints_func": None,
    },
    "motpe": {
        "seed": None, "consider_prior": True, "prior_weight": 1.0, "consider_magic_clip": True,
        "consider_endpoints": False, "n_startup_trials": 10, "n_ehvi_candidates": 24,
    },
    "qmc": {
        "seed": None, "qmc_type": "sobol", "scramble": False, "independent_sampler": None,
        "warn_asynchronous_seeding": True, "warn_independent_sampling": True,
    },
    "gp": {
        "seed": None, "independent_sampler": None, "n_startup_trials": 10, "deterministic_objective": False,
        "constraints_func": None, "warn_independent_sampling": True,
    },
    "grid": {"_partial_": True},
}  # fmt: skip
TWO_OBJECTIVES = ["hydra.sweeper.direction=[maximize,minimize]", "hydra.sweeper.objective=[acc,size]"]
FINITE = ["hydra.sweeper.params.x='choice(0.1, 0.4)'", "hydra.sweeper.params.z='range(0, 1.5, 0.5)'"]


def _value(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    path = scratch_dir("bohb-migration-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("group", list(OFFICIAL_SAMPLER_KEYS))
def test_every_key_of_the_official_sampler_configs_is_accepted(group: str) -> None:
    """`hydra.sweeper.sampler.<key>=<official default>` for every key: composed, checked and the
    sampler built, where the official sweeper's users would otherwise meet "unknown key"."""
    overrides = [
        f"hydra/sweeper/sampler={group}",
        *(f"hydra.sweeper.sampler.{k}={_value(v)}" for k, v in OFFICIAL_SAMPLER_KEYS[group].items()),
        *(FINITE if group == "grid" else []),
        *(TWO_OBJECTIVES if group == "motpe" else []),
    ]  # fmt: skip
    config, compose = compose_sweep(overrides)
    settings, _ = prepare(sweeper_settings(config), "cheap_task", [], config, compose)
    sampler = instantiate(settings.sampler)
    assert isinstance(sampler, optuna.samplers.BaseSampler)


@pytest.mark.slow  # three sweeps, one resumed
def test_an_unset_direction_minimizes_a_new_study_and_keeps_a_resumed_ones(root: Path) -> None:
    """As the official sweeper: `direction` unset minimizes. A study created to maximize (this app's
    presets say so) and rerun without a direction goes on maximizing: a rerun never flips it."""
    new = sweep_in_process(root / "minimize", "hydra.sweeper.direction=null", "hydra.sweeper.n_trials=3")
    new.assert_ok()
    assert new.results is not None and new.results["direction"] == "minimize"
    complete = [t.value for t in new.of_state(optuna.trial.TrialState.COMPLETE)]
    assert new.results["best_value"] == min(complete)

    first = sweep_in_process(root / "kept", "hydra.sweeper.n_trials=2")  # the app's maximize
    first.assert_ok()
    more = sweep_in_process(root / "kept", "hydra.sweeper.direction=null", "hydra.sweeper.n_trials=3")
    more.assert_ok()
    assert more.results is not None and more.results["direction"] == "maximize"
    assert len(more.view.configurations if more.view else {}) == 3


@pytest.fixture(scope="module")
def finished(root: Path) -> Sweep:
    """A finished sweep of the cheap app with the sweeper's defaults: n_trials 3."""
    run = sweep_in_process(root / "finished", "hydra.sweeper.n_trials=3")
    run.assert_ok()
    return run


@pytest.mark.slow  # a sweep, then its rerun
def test_a_rerun_of_a_finished_study_says_so_in_one_line_and_how_to_add_more(finished: Sweep) -> None:
    """n_trials counts the study's configurations (the official sweeper runs n_trials more each time)."""
    rerun = sweep_in_process(finished.sweep_dir, "hydra.sweeper.n_trials=3")
    rerun.assert_ok()
    (line,) = [line for line in rerun.stdout.splitlines() if "3 of 3 configurations" in line]
    assert "nothing to run" in line and "hydra.sweeper.n_trials=6 adds 3)" in line


def test_an_app_that_reports_no_epochs_is_not_told_about_rungs(root: Path) -> None:
    """The official sweeper's apps return a number and report nothing per epoch: the sweep's first line
    says each job runs to its end, not that Hyperband compares them at epochs 1 and 3."""
    run = sweep_in_process(
        root / "no-epochs", "hydra.sweeper.budget_key=null", "hydra.sweeper.n_trials=3", task=lambda cfg: 0.5
    )
    run.assert_ok()
    (first,) = [line for line in run.stdout.splitlines() if "configurations started" in line]
    assert "each job runs to its end" in first
    assert "Hyperband at epochs" not in run.stdout and "budget 9 epochs" not in run.stdout
    # An app that reports epochs is told, on its first run and on its rerun.
    reporting = sweep_in_process(root / "epochs", "hydra.sweeper.budget_key=null", "hydra.sweeper.n_trials=3")
    reporting.assert_ok()
    rerun = sweep_in_process(root / "epochs", "hydra.sweeper.budget_key=null", "hydra.sweeper.n_trials=3")
    assert "Hyperband at epochs 1, 3 of 9" in rerun.stdout


def test_the_default_failure_rate_lets_a_failed_trial_pass(root: Path) -> None:
    """max_failure_rate 0.5 by default (the official 0.0 stops the sweep at the first failed trial)."""
    run = sweep_in_process(
        root / "fails", "hydra.sweeper.n_trials=4", "+hydra.sweeper.params.fail='choice(true, false)'"
    )
    run.assert_ok()
    assert run.results is not None and run.results["n_failed"] >= 1 and run.results["n_complete"] >= 1


def test_by_default_one_trial_runs_at_a_time_under_hyperband(finished: Sweep) -> None:
    """n_jobs 1 (official: 2) and the Hyperband pruner (official: none) when the config sets neither."""
    (first,) = [line for line in finished.stdout.splitlines() if "configurations started" in line]
    assert "1 worker(s)" in first and "Hyperband at epochs 1, 3 of 9" in first


def test_every_difference_in_the_docs_names_a_test_that_exists(repo_root: Path) -> None:
    text = (repo_root / "docs" / "samplers.md").read_text()
    table = text[text.index("What `bohb` does differently") :].split("\n\n")[1]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "`test_" in line]
    assert len(rows) >= 9
    for row in rows:
        for name in re.findall(r"`(test_\w+\.py)::(test_\w+)`", row):
            source = (repo_root / "tests" / name[0]).read_text()
            assert f"def {name[1]}(" in source, name
