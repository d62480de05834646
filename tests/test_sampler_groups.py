"""Every sampler group (`hydra/sweeper/sampler=<name>`), swapping the sampler by `_target_`, and errors
that keep their reason.

One short sweep per group of the cheap app (tests/cheap_app), which reports every epoch and pauses or
resumes as Hyperband decides: each group runs its own Optuna sampler, and Hyperband keeps some
configurations below the budget. The rest are the
sweeper's checks before any study exists: keys a sampler does not take, missing extras, the grid.
"""

from __future__ import annotations

import inspect
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from hydra.utils import get_method
from omegaconf import OmegaConf
from sweeps import compose_sweep, error_lines, refusal, scratch_dir, sweep_in_process, sweeper_settings

from hydra_plugins.hydra_bohb_sweeper._setup import samplers as _samplers
from hydra_plugins.hydra_bohb_sweeper._setup.preflight import prepare
from hydra_plugins.hydra_bohb_sweeper._study import open as _study
from hydra_plugins.hydra_bohb_sweeper.sampler_configs import SAMPLER_GROUPS

States = optuna.trial.TrialState
N_TRIALS, BUDGET = 12, 9  # the cheap app's hydra.sweeper.n_trials and budget
optuna.logging.set_verbosity(optuna.logging.WARNING)

# Choices and ranges only: the grid and brute-force samplers need a finite space.
FINITE = [
    "hydra.sweeper.params.x='choice(0.1, 0.4, 0.7, 1.0)'",
    "hydra.sweeper.params.z='range(0, 1.5, 0.5)'",
]
TWO_OBJECTIVES = [
    "hydra.sweeper.objective=[acc,size]",
    "hydra.sweeper.direction=[maximize,minimize]",
    "hydra/sweeper/pruner=pareto_hyperband",
]
# group -> (its Optuna sampler, overrides for the cheap app's sweep)
GROUPS: dict[str, tuple[str, list[str]]] = {
    "tpe": ("TPESampler", []),
    "random": ("RandomSampler", []),
    # CMA-ES samples the continuous parameters jointly: x and z in every trial (z unconditional).
    "cmaes": ("CmaEsSampler", ["~hydra.sweeper.conditions.z"]),
    "nsgaii": ("NSGAIISampler", []),
    "nsgaiii": ("NSGAIIISampler", []),
    "qmc": ("QMCSampler", []),
    # The grid enumerates z in trials where it is inactive too: no condition, so that no two trials
    # have the same parameters.
    "grid": ("GridSampler", [*FINITE, "~hydra.sweeper.conditions.z"]),
    "gp": ("GPSampler", []),
    "bruteforce": ("BruteForceSampler", FINITE),
    "motpe": ("TPESampler", TWO_OBJECTIVES),
}


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    path = scratch_dir("bohb-samplers-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def samplers(monkeypatch: pytest.MonkeyPatch) -> list[optuna.samplers.BaseSampler]:
    """The samplers that studies are created with, in this process."""
    created: list[optuna.samplers.BaseSampler] = []
    create_study = optuna.create_study

    def spy(*args: Any, **kwargs: Any) -> optuna.Study:
        created.append(kwargs["sampler"])
        return create_study(*args, **kwargs)

    monkeypatch.setattr(optuna, "create_study", spy)
    return created


def test_every_group_is_tested() -> None:
    assert set(GROUPS) == set(SAMPLER_GROUPS)


@pytest.mark.slow
@pytest.mark.parametrize("group", list(GROUPS))
def test_sampler_group_sweeps_with_pruning(
    group: str, root: Path, samplers: list[optuna.samplers.BaseSampler], caplog: pytest.LogCaptureFixture
) -> None:
    sampler_class, overrides = GROUPS[group]
    if group == "cmaes":
        pytest.importorskip("cmaes", reason="the sweeper's extra `cmaes` is not installed")
    run = sweep_in_process(root / group, f"hydra/sweeper/sampler={group}", *overrides)
    run.assert_ok()
    assert type(samplers[-1]).__name__ == sampler_class
    assert len(run.configs) == N_TRIALS
    assert {t.state for t in run.trials} <= {States.COMPLETE, States.PRUNED}
    assert [c for c in run.configs.values() if c.epochs < BUDGET], "Hyperband stopped no configuration"
    if group in ("grid", "bruteforce"):  # every configuration a new point of the finite space
        points = [tuple(sorted(c.trials[0].params.items())) for c in run.configs.values()]
        assert len(set(points)) == len(points)
    if group == "cmaes":  # CMA-ES itself proposed trials, not only its independent sampler
        assert any(k.startswith("cma:") for t in run.trials for k in t.system_attrs)
    if group == "motpe":
        assert "Optuna removed MOTPESampler" in caplog.text


@pytest.mark.slow
def test_sampler_swapped_by_target_keeps_no_tpe_key(
    root: Path, samplers: list[optuna.samplers.BaseSampler]
) -> None:
    run = sweep_in_process(
        root / "by-target", "hydra.sweeper.sampler={_target_: optuna.samplers.QMCSampler, seed: 1}"
    )
    run.assert_ok()
    sampler = samplers[-1]
    assert isinstance(sampler, optuna.samplers.QMCSampler)
    assert sampler._seed == 1
    assert len(run.configs) == N_TRIALS


# --- before any study: one line that keeps the reason ---------------------------------------------


def test_swapped_target_drops_only_the_groups_untouched_keys() -> None:
    config, compose = compose_sweep(["hydra.sweeper.sampler={_target_: optuna.samplers.QMCSampler, seed: 1}"])
    settings, _ = prepare(sweeper_settings(config), "cheap_task", [], config, compose)
    assert settings.sampler == {"_target_": "optuna.samplers.QMCSampler", "seed": 1}


def test_a_key_the_sampler_does_not_take_is_refused_with_the_reason() -> None:
    message = refusal("+hydra.sweeper.sampler.no_such_arg=1")
    assert "unexpected keyword argument 'no_such_arg'" in message
    assert "n_startup_trials" in message  # what it takes


def test_a_changed_tpe_key_is_not_dropped_when_the_target_changes() -> None:
    message = refusal("hydra.sweeper.sampler={_target_: optuna.samplers.QMCSampler, n_startup_trials: 3}")
    assert "QMCSampler got an unexpected keyword argument 'n_startup_trials'" in message


def test_bad_sampler_input_on_the_command_line_exits_2_with_no_study(root: Path) -> None:
    run = sweep_in_process(root / "bad-key", "+hydra.sweeper.sampler.no_such_arg=1")
    assert run.returncode == 2
    (line,) = error_lines(run.stderr)
    assert "no_such_arg" in line
    assert not run.has_db


@pytest.mark.parametrize(
    ("group", "module", "extra"),
    [("cmaes", "cmaes", "cmaes"), ("qmc", "scipy", "qmc"), ("gp", "torch", "gp")],
)
def test_a_sampler_whose_package_is_missing_names_the_extra(
    group: str, module: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # `import <module>` fails, find_spec says None
    message = refusal(f"hydra/sweeper/sampler={group}")
    assert f"needs {module}" in message and f"[{extra}]" in message


# --- the grid ------------------------------------------------------------------------------------


def test_grid_is_built_from_choices_and_ranges_and_caps_n_trials() -> None:
    config, compose = compose_sweep(["hydra/sweeper/sampler=grid", *FINITE])
    settings, _ = prepare(sweeper_settings(config), "cheap_task", [], config, compose)
    assert settings.sampler["search_space"] == {
        "x": [0.1, 0.4, 0.7, 1.0],
        "y": ["a", "b", "c"],
        "z": [0.0, 0.5, 1.0],
    }
    assert settings.n_trials == 12  # the app's n_trials; the grid has 36 points
    config, compose = compose_sweep(["hydra/sweeper/sampler=grid", *FINITE, "hydra.sweeper.n_trials=50"])
    settings, _ = prepare(sweeper_settings(config), "cheap_task", [], config, compose)
    assert settings.n_trials == 36


def test_grid_refuses_an_interval_in_one_line() -> None:
    message = refusal("hydra/sweeper/sampler=grid", *FINITE, arguments=("x=int(interval(0, 4))",))
    assert message.startswith("x=") and "choice(...) or range(...)" in message


@pytest.mark.parametrize(
    ("distribution", "values"),
    [
        (optuna.distributions.CategoricalDistribution(["a", 1, None]), ["a", 1, None]),
        (optuna.distributions.IntDistribution(1, 7, step=3), [1, 4, 7]),
        (optuna.distributions.FloatDistribution(0.0, 0.9, step=0.3), [0.0, 0.3, 0.6, 0.9]),
        (optuna.distributions.FloatDistribution(-1.0, 0.0, step=1.0), [-1.0, 0.0]),
    ],
)
def test_grid_values(distribution: optuna.distributions.BaseDistribution, values: list[Any]) -> None:
    assert _samplers.grid_values(distribution) == values


def test_resumed_grid_keeps_its_order(tmp_path: Path) -> None:
    """A resumed study's seed is offset by its trials (so TPE and others propose new points); the
    grid's seed orders the points that trial numbers map to, so it must not move."""
    config, compose = compose_sweep(["hydra/sweeper/sampler=grid", *FINITE])
    settings, _ = prepare(sweeper_settings(config), "cheap_task", [], config, compose)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = _study.open_study(settings, url)
    first.tell(first.ask(), 0.5)
    resumed = _study.open_study(settings, url)
    assert isinstance(resumed.sampler, optuna.samplers.GridSampler)
    assert first.sampler._all_grids == resumed.sampler._all_grids  # type: ignore[attr-defined]


def test_group_defaults_are_optunas_except_the_seed() -> None:
    """Every group's keys are arguments of its sampler, with Optuna's defaults (seed 0; TPE's joint
    densities and n_startup_trials=5 are the project's choice)."""
    for name, conf in SAMPLER_GROUPS.items():
        node = OmegaConf.to_container(OmegaConf.structured(conf))
        assert isinstance(node, dict)
        target = get_method(str(node.pop("_target_")))
        node.pop("_partial_", None)  # the official grid config's; the sweeper builds the grid itself
        parameters = inspect.signature(target).parameters
        assert node.pop("seed") == 0
        for key, value in node.items():
            assert key in parameters, f"{name}: {key}"
            if name != "tpe" or key not in ("multivariate", "group", "n_startup_trials"):
                assert value == parameters[key].default, f"{name}: {key}={value}"
