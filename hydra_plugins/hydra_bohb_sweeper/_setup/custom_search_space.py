"""`hydra.sweeper.custom_search_space`: the app's define-by-run hook, with the official sweeper's meaning.

The setting is a dotted path to `fn(cfg, trial)`. After the sweeper has sampled `params` for a trial it
calls fn with the sweep's config (the app's config, hydra node and fixed command-line overrides
included) and the Optuna trial, on which fn may suggest more parameters: a range that depends on a
sampled value, say. Each parameter fn adds reaches the job as `name=value` (a key the job config does
not have is named `+name`, as on the command line) and is one of the trial's params, so
optimization_results.yaml lists it under best_params as the official sweeper does.

Before any study exists the hook runs once on a trial of a throwaway in-memory study, so a hook that
raises, adds a key that clashes with a fixed override, or (with the grid sampler) adds a parameter
outside the grid fails in one line; the preflight composes the job config with what it added.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping
from typing import Any, cast

import optuna
from hydra.utils import get_method
from omegaconf import DictConfig

from hydra_plugins.hydra_bohb_sweeper import names
from hydra_plugins.hydra_bohb_sweeper._setup.search_space import SearchSpace, format_value, suggest
from hydra_plugins.hydra_bohb_sweeper._setup.settings import Settings, SweepConfigError, first_cause


def custom_overrides(
    settings: Settings,
    space: SearchSpace,
    config: DictConfig,
    trial: optuna.Trial,
    sampled: Mapping[str, Any],
) -> list[str]:
    """Call the hook on `trial`, whose `sampled` params are set, and return the overrides of the
    parameters it added (none without a hook). A hook that raises, or adds a key the sweep fixes,
    fails the trial with that reason and raises SweepConfigError."""
    path = settings.custom_search_space
    if not path:
        return []
    try:
        get_method(path)(config, trial)
    except Exception as exc:
        raise _failed(trial, f"hydra.sweeper.custom_search_space={path}: {first_cause(exc)}") from exc
    added = {name: value for name, value in trial.params.items() if name not in sampled}
    fixed = {*space.fixed, *([settings.budget_key] if settings.budget_key else [])}
    for name in added:
        if name.lstrip("+~") in fixed:
            raise _failed(
                trial,
                f"hydra.sweeper.custom_search_space={path} suggests {name}, which the sweep fixes "
                f"({name.lstrip('+~')} is set for every trial); remove one of them",
            )
    return [f"{name}={format_value(value)}" for name, value in added.items()]


def _failed(trial: optuna.Trial, message: str) -> SweepConfigError:
    trial.set_user_attr(names.FAIL_REASON_ATTR, message)
    trial.study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return SweepConfigError(message)


def dry_run(settings: Settings, space: SearchSpace, config: DictConfig) -> list[str]:
    """The overrides the hook adds to one trial of a throwaway in-memory study (random values)."""
    with _quiet_optuna():
        study = optuna.create_study(
            directions=cast(Any, settings.directions), sampler=optuna.samplers.RandomSampler(seed=0)
        )
        trial = study.ask()
        sampled = space.sample(lambda name, distribution: suggest(trial, name, distribution))
        added = custom_overrides(settings, space, config, trial, sampled)
    grid = settings.sampler.get("search_space")  # the grid sampler's points (see _samplers)
    outside = [name for name in trial.params if name not in sampled and grid is not None and name not in grid]
    if outside:
        raise SweepConfigError(
            f"hydra.sweeper.custom_search_space={settings.custom_search_space} suggests {outside[0]}, "
            "which the grid sampler cannot sample (its grid is built from params)"
        )
    return added


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """No "A new study created in memory" line for the throwaway study."""
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(before)
