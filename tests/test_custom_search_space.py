"""`hydra.sweeper.custom_search_space` (the app's define-by-run hook) and the deprecated `search_space` key.

The hooks below are the app's: the sweeper imports them by dotted path (this module is on the path as
`test_custom_search_space`, as the test helpers are).
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from omegaconf import DictConfig, OmegaConf
from sweeps import (
    cheap_task,
    compose_sweep,
    error_lines,
    refusal,
    scratch_dir,
    sweep_in_process,
    sweeper_settings,
)

from hydra_plugins.hydra_bohb_sweeper import names
from hydra_plugins.hydra_bohb_sweeper._setup.custom_search_space import custom_overrides
from hydra_plugins.hydra_bohb_sweeper._setup.legacy_search_space import expression, translate
from hydra_plugins.hydra_bohb_sweeper._setup.preflight import prepare
from hydra_plugins.hydra_bohb_sweeper._setup.search_space import (
    SearchSpace,
    distribution_from_override,
    parse_overrides,
)
from hydra_plugins.hydra_bohb_sweeper._setup.settings import SweepConfigError, check_settings

States = optuna.trial.TrialState
optuna.logging.set_verbosity(optuna.logging.WARNING)
HOOK = "hydra.sweeper.custom_search_space=test_custom_search_space"
# The cheap app's z, searched by a hook instead of `params`: its range depends on the sampled x.
Z_BY_HOOK = [f"{HOOK}.z_below_x", "~hydra.sweeper.params.z", "~hydra.sweeper.conditions.z"]
NO_PARAMS = [*(f"~hydra.sweeper.params.{k}" for k in "xyz"), "~hydra.sweeper.conditions.z"]


# --- the app's hooks -----------------------------------------------------------------------------


def z_below_x(cfg: DictConfig, trial: optuna.Trial) -> None:
    trial.suggest_float("z", 0.0, max(trial.params["x"], 1e-3))


def adds_a_new_key(cfg: DictConfig, trial: optuna.Trial) -> None:
    trial.suggest_int("+new_key", 1, 3)


def adds_a_new_key_without_plus(cfg: DictConfig, trial: optuna.Trial) -> None:
    trial.suggest_int("new_key", 1, 3)


def raises(cfg: DictConfig, trial: optuna.Trial) -> None:
    raise KeyError("no_such_param")


def suggests_y(cfg: DictConfig, trial: optuna.Trial) -> None:
    trial.suggest_categorical("y", ["a", "b"])


def whole_space(cfg: DictConfig, trial: optuna.Trial) -> None:
    trial.suggest_float("x", 0.0, 1.0)
    trial.suggest_categorical("y", ["a", "b", "c"])


# --- sweeps --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    path = scratch_dir("bohb-custom-space-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_hook_parameters_reach_the_job_and_the_results(root: Path) -> None:
    run = sweep_in_process(root / "z-by-hook", *Z_BY_HOOK)
    run.assert_ok()
    assert run.of_state(States.PRUNED)  # the cheap app still reports and is pruned
    for trial in run.trials:
        assert 0.0 <= trial.params["z"] <= max(trial.params["x"], 1e-3)
        assert f"z={trial.params['z']!r}" in trial.user_attrs[names.OVERRIDES_ATTR]
    for trial in run.of_state(States.COMPLETE):  # the job computed with the hook's z
        quality = cheap_task.quality(trial.params["x"], trial.params["y"], trial.params["z"])
        assert math.isclose(trial.user_attrs[names.METRICS_ATTR]["quality"], quality)
    assert run.results is not None
    assert set(run.results["best_params"]) == {"x", "y", "z"}


def test_a_key_new_to_the_job_config_is_added_with_plus() -> None:
    config, compose = compose_sweep([f"{HOOK}.adds_a_new_key"])
    settings, _ = prepare(sweeper_settings(config), "cheap_task", [], config, compose)
    assert settings.custom_search_space == "test_custom_search_space.adds_a_new_key"


def test_a_new_key_without_plus_is_refused_before_any_trial() -> None:
    message = refusal(f"{HOOK}.adds_a_new_key_without_plus")
    assert message.startswith("custom_search_space adds new_key=")
    assert "new_key" in message.partition(": ")[2]  # Hydra's reason names the key


def test_a_hook_that_raises_is_refused_with_its_reason() -> None:
    message = refusal(f"{HOOK}.raises")
    assert message == (
        "hydra.sweeper.custom_search_space=test_custom_search_space.raises: KeyError: 'no_such_param'"
    )


def test_bad_hook_on_the_command_line_exits_2_with_no_study(root: Path) -> None:
    run = sweep_in_process(root / "bad-hook", f"{HOOK}.raises")
    assert run.returncode == 2
    (line,) = error_lines(run.stderr)
    assert "no_such_param" in line
    assert not run.has_db


def test_a_hook_may_not_suggest_a_fixed_key() -> None:
    message = refusal(f"{HOOK}.suggests_y", arguments=("y=c",))
    assert "suggests y, which the sweep fixes" in message


def test_the_grid_sampler_refuses_a_hooks_parameters() -> None:
    message = refusal(
        f"{HOOK}.adds_a_new_key",
        "hydra/sweeper/sampler=grid",
        "hydra.sweeper.params.x='choice(0.5, 0.7)'",
        "hydra.sweeper.params.z='choice(0.0, 1.0)'",
    )
    assert "suggests +new_key, which the grid sampler cannot sample" in message


def test_a_hook_may_define_the_whole_space() -> None:
    config, compose = compose_sweep([f"{HOOK}.whole_space", *NO_PARAMS])
    _, space = prepare(sweeper_settings(config), "cheap_task", [], config, compose)
    assert not space.distributions


def test_an_empty_space_without_a_hook_is_still_refused() -> None:
    message = refusal(*NO_PARAMS)
    assert "the search space is empty" in message


def test_a_hook_that_fails_in_a_trial_fails_that_trial() -> None:
    settings = check_settings(
        {
            "sampler": {"_target_": "optuna.samplers.RandomSampler"},
            "pruner": {"_target_": "optuna.pruners.NopPruner"},
            "budget": 1,
            "custom_search_space": "test_custom_search_space.raises",
        },
        job_name="toy",
    )
    study = optuna.create_study()
    trial = study.ask()
    with pytest.raises(SweepConfigError, match="no_such_param"):
        custom_overrides(settings, SearchSpace({}, {}), OmegaConf.create(), trial, {})
    (failed,) = study.get_trials()
    assert failed.state == States.FAIL
    assert "no_such_param" in failed.user_attrs[names.FAIL_REASON_ATTR]


# --- the deprecated search_space key -------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "written", "distribution"),
    [
        (
            {"type": "categorical", "choices": [1, 2, 3]},
            "choice(1, 2, 3)",
            optuna.distributions.CategoricalDistribution([1, 2, 3]),
        ),
        (
            {"type": "int", "low": 0, "high": 10},
            "range(0, 11, 1)",
            optuna.distributions.IntDistribution(0, 10),
        ),
        (
            {"type": "int", "low": 0, "high": 10, "step": 2},
            "range(0, 11, 2)",
            optuna.distributions.IntDistribution(0, 10, step=2),
        ),
        (
            {"type": "int", "low": 1, "high": 100, "log": True},
            "tag(log, int(interval(1, 100)))",
            optuna.distributions.IntDistribution(1, 100, log=True),
        ),
        (
            {"type": "float", "low": 0, "high": 1},
            "interval(0.0, 1.0)",
            optuna.distributions.FloatDistribution(0.0, 1.0),
        ),
        (
            {"type": "float", "low": 0, "high": 10, "step": 2},
            "range(0.0, 12.0, 2.0)",
            optuna.distributions.FloatDistribution(0.0, 10.0, step=2.0),
        ),
        (
            {"type": "float", "low": -5.5, "high": 5.5, "step": 0.5},
            "range(-5.5, 6.0, 0.5)",
            optuna.distributions.FloatDistribution(-5.5, 5.5, step=0.5),
        ),
        (
            {"type": "float", "low": 1, "high": 100, "log": True},
            "tag(log, interval(1.0, 100.0))",
            optuna.distributions.FloatDistribution(1.0, 100.0, log=True),
        ),
    ],
)
def test_deprecated_search_space_entry_is_the_same_distribution(
    spec: dict[str, Any], written: str, distribution: optuna.distributions.BaseDistribution
) -> None:
    """The official sweeper's distribution for each entry (its 1.2 table, in today's Optuna classes)."""
    assert expression("x", spec) == written
    (override,) = parse_overrides([f"x={written}"])
    assert distribution_from_override(override) == distribution


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"type": "normal", "low": 0, "high": 1}, "type=normal must be int, float or categorical"),
        ({"type": "float", "low": 0}, "needs low and high"),
        ({"type": "categorical"}, "needs choices"),
        ("interval(0, 1)", "must be a mapping"),
    ],
)
def test_bad_deprecated_search_space_entry_is_refused_in_one_line(spec: Any, fragment: str) -> None:
    with pytest.raises(SweepConfigError) as refused:
        expression("x", spec)
    assert "hydra.sweeper.search_space.x" in str(refused.value) and fragment in str(refused.value)


def test_deprecated_search_space_becomes_params() -> None:
    raw = {"search_space": OmegaConf.create({"x": {"type": "float", "low": 0, "high": 1}}), "params": None}
    with pytest.warns(UserWarning, match="x: interval"):  # the warning shows what to write instead
        assert translate(raw)["params"] == {"x": "interval(0.0, 1.0)"}


def test_deprecation_warnings_as_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hydra's switch for its deprecation warnings turns this one into a one-line error too."""
    monkeypatch.setenv("HYDRA_DEPRECATION_WARNINGS_AS_ERRORS", "1")
    with pytest.raises(SweepConfigError, match="is deprecated"):
        translate({"search_space": {"x": {"type": "float", "low": 0, "high": 1}}, "params": None})
