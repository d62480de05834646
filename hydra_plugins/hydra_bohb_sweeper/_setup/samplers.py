"""The sampler a sweep runs: its config made ready before the study is opened.

- A `_target_` that replaced the group's (`hydra.sweeper.sampler={_target_: ..., seed: 1}`) merges into
  the group's config; the group's keys the new sampler does not take, left at their defaults, are
  dropped (they were never the user's).
- Keys a sampler does not take are refused in one line, naming the key and what it takes.
- Samplers that need a package the sweeper does not install (cmaes, scipy, torch) name the sweeper's
  extra to install.
- The grid sampler gets its grid from the search space (`choice` and `range` values), and n_trials is
  capped at the grid's size, as in the official sweeper.
- `motpe` (removed from Optuna) is TPE, with a notice.
Optuna's grid and brute-force samplers call `study.stop()` once the space is exhausted, which raises
outside `study.optimize`; the sweeper runs them through subclasses that leave stopping to n_trials.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import optuna
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.hydra_bohb_sweeper._setup.search_space import SearchSpace, parse_overrides
from hydra_plugins.hydra_bohb_sweeper._setup.settings import Settings, SweepConfigError
from hydra_plugins.hydra_bohb_sweeper.sampler_configs import SAMPLER_GROUPS, SamplerConf

log = logging.getLogger(__name__)

# The sweeper's own distribution (sweeper/pyproject.toml), whose extras install these packages.
DISTRIBUTION = "hydra-bohb-sweeper"
# Samplers whose packages are not the sweeper's dependencies: the extra that installs them.
EXTRAS: dict[type, tuple[str, tuple[str, ...]]] = {
    optuna.samplers.CmaEsSampler: ("cmaes", ("cmaes",)),
    optuna.samplers.QMCSampler: ("qmc", ("scipy",)),
    optuna.samplers.GPSampler: ("gp", ("torch", "scipy")),
}
GRID_TARGET = "hydra_plugins.hydra_bohb_sweeper._setup.samplers.GridSampler"
BRUTE_FORCE_TARGET = "hydra_plugins.hydra_bohb_sweeper._setup.samplers.BruteForceSampler"


def prepare_sampler(
    settings: Settings, space: SearchSpace, arguments: Sequence[str], group: str | None
) -> Settings:
    """`settings` with the sampler ready to instantiate (and n_trials capped for a grid); `group` is
    the chosen `hydra/sweeper/sampler` (None: none chosen). Raises SweepConfigError."""
    if "_target_" not in settings.sampler:
        raise SweepConfigError("hydra.sweeper.sampler has no _target_: use e.g. hydra/sweeper/sampler=tpe")
    sampler = drop_inherited(settings.sampler, group)
    check_arguments("sampler", sampler)
    target = get_method(sampler["_target_"])
    check_extra(target)
    n_trials = settings.n_trials
    if isinstance(target, type) and issubclass(target, optuna.samplers.GridSampler):
        sampler, n_trials = _grid(sampler, target, space, settings.params, arguments, n_trials)
    elif target is optuna.samplers.BruteForceSampler:
        sampler = {**sampler, "_target_": BRUTE_FORCE_TARGET}
    elif (
        target is optuna.samplers.TPESampler and sampler.get("multivariate") is False and sampler.get("group")
    ):
        # `group` is this group's default, and Optuna refuses it without multivariate densities: the
        # official sweeper's configs say `multivariate: false`, which then means independent TPE.
        sampler = {**sampler, "group": False}
    return dataclasses.replace(settings, sampler=sampler, n_trials=n_trials)


def sampler_group(config: DictConfig) -> str | None:
    """The `hydra/sweeper/sampler` group the sweep's config was composed with (None: none)."""
    choices = OmegaConf.select(config, "hydra.runtime.choices")
    return choices.get("hydra/sweeper/sampler") if choices is not None else None


def drop_inherited(node: Mapping[str, Any], group: str | None) -> dict[str, Any]:
    """The sampler config without what a replacing `_target_` inherited from `group`: the group's own
    keys, left at their defaults, that the new sampler does not take or that are null (the sampler's
    default). The seed is every sampler's, and stays."""
    conf = SAMPLER_GROUPS.get(group or "")
    node = dict(node)
    if conf is None:
        return node
    defaults = dataclasses.asdict(conf())
    if node["_target_"] == defaults["_target_"]:
        return node
    accepted = _parameters(get_method(node["_target_"]))
    shared = {f.name for f in dataclasses.fields(SamplerConf)}
    inherited = [
        key
        for key, value in node.items()
        if key in defaults
        and key not in shared
        and value == defaults[key]
        and (value is None or (accepted is not None and key not in accepted))
    ]
    if inherited:
        log.debug("sampler %s: leaving out %s of %s", node["_target_"], ", ".join(inherited), group)
    return {k: v for k, v in node.items() if k not in inherited}


def check_arguments(key: str, node: Mapping[str, Any]) -> None:
    """Refuse keys the target does not take, before any study exists."""
    target = get_method(node["_target_"])
    accepted = _parameters(target)
    if accepted is None:
        return
    unknown = [k for k in node if not _is_hydra_key(k) and k not in accepted]
    if unknown:
        raise SweepConfigError(
            f"hydra.sweeper.{key}: {node['_target_']} got an unexpected keyword argument {unknown[0]!r}; "
            f"it takes {', '.join(sorted(accepted)) or 'no arguments'}"
        )


def _parameters(target: Callable[..., Any]) -> set[str] | None:
    """The keyword arguments `target` takes; None when it takes any (**kwargs) or cannot be told."""
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.kind is not inspect.Parameter.VAR_POSITIONAL}


def _is_hydra_key(key: str) -> bool:
    return key.startswith("_") and key.endswith("_")  # _target_, _partial_, _convert_, ...


def check_extra(target: Callable[..., Any]) -> None:
    """A sampler whose packages are missing names the sweeper's extra that installs them."""
    for sampler, (extra, modules) in EXTRAS.items():
        if not (isinstance(target, type) and issubclass(target, sampler)):
            continue
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing:
            raise SweepConfigError(
                f"hydra.sweeper.sampler: {sampler.__name__} needs {' and '.join(missing)}, which is not "
                f"installed: install the sweeper's extra {extra!r} (pip install '{DISTRIBUTION}[{extra}]')"
            )


# ---------------------------------------------------------------------------- grid
def _grid(
    sampler: dict[str, Any],
    target: type,
    space: SearchSpace,
    params: Mapping[str, Any],
    arguments: Sequence[str],
    n_trials: int,
) -> tuple[dict[str, Any], int]:
    sampler = {k: v for k, v in sampler.items() if k != "_partial_"}  # the official config's
    if sampler.get("search_space") is None:
        for name, expression in _interval_sweeps(params, arguments).items():
            raise SweepConfigError(
                f"{name}={expression}: the grid sampler takes choice(...) or range(...), not an "
                "interval (it has no grid); e.g. range(low, high, step)"
            )
        sampler["search_space"] = {name: grid_values(d) for name, d in space.distributions.items()}
    size = math.prod(len(values) for values in sampler["search_space"].values())
    if size < n_trials:
        log.info("BOHB: a grid of %d points: n_trials=%d", size, size)
        n_trials = size
    if target is optuna.samplers.GridSampler:
        # A stable seed: Optuna maps trial numbers to points through it, so the seed offset that a
        # resumed study gets (see _study.open_study) would revisit points and skip others.
        seed = sampler.pop("seed", None)
        sampler = {**sampler, "_target_": GRID_TARGET, "order_seed": seed}
    return sampler, n_trials


def _interval_sweeps(params: Mapping[str, Any], arguments: Sequence[str]) -> dict[str, str]:
    """The parameters whose sweep is an interval, with their expressions (the command line wins)."""
    from hydra.core.override_parser.types import IntervalSweep

    lines = [f"{k}={v}" for k, v in params.items() if isinstance(v, str)] + list(arguments)
    found: dict[str, str] = {}
    for override in parse_overrides(lines):
        key = override.key_or_group
        found.pop(key, None)
        if override.is_sweep_override() and isinstance(override.value(), IntervalSweep):
            found[key] = (override.input_line or "").partition("=")[2]
    return found


def grid_values(distribution: optuna.distributions.BaseDistribution) -> list[Any]:
    """Every value of a choice or a stepped range (both ends included: the space's ranges already
    leave out Hydra's excluded stop)."""
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return list(distribution.choices)
    if isinstance(distribution, optuna.distributions.IntDistribution) and not distribution.log:
        return list(range(distribution.low, distribution.high + 1, distribution.step))
    if isinstance(distribution, optuna.distributions.FloatDistribution) and distribution.step is not None:
        # Decimal: 0.1 + 2 * 0.1 is 0.3 in the job's override, not 0.30000000000000004.
        low, step = Decimal(str(distribution.low)), Decimal(str(distribution.step))
        count = int((Decimal(str(distribution.high)) - low) / step) + 1
        return [float(low + i * step) for i in range(count)]
    raise SweepConfigError(f"the grid sampler cannot enumerate {distribution}")


class GridSampler(optuna.samplers.GridSampler):
    """Optuna's GridSampler, whose end of the grid is the sweeper's n_trials (not `study.stop()`)."""

    def __init__(self, search_space: Mapping[str, Sequence[Any]], order_seed: int | None = None) -> None:
        super().__init__(search_space, seed=order_seed)

    def after_trial(self, study: optuna.Study, trial: Any, state: Any, values: Any) -> None:
        _without_stop(super().after_trial, study, trial, state, values)


class BruteForceSampler(optuna.samplers.BruteForceSampler):
    """Optuna's BruteForceSampler, whose end of the space is the sweeper's n_trials."""

    def after_trial(self, study: optuna.Study, trial: Any, state: Any, values: Any) -> None:
        _without_stop(super().after_trial, study, trial, state, values)


def _without_stop(after_trial: Callable[..., None], *args: Any) -> None:
    try:
        after_trial(*args)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):  # stop() outside optimize(): the sweep ends at n_trials
            raise


# ---------------------------------------------------------------------------- motpe
def motpe(
    *,
    seed: int | None = None,
    n_startup_trials: int = 10,
    n_ehvi_candidates: int = 24,
    consider_prior: bool | None = None,
    prior_weight: float | None = None,
    consider_magic_clip: bool | None = None,
    consider_endpoints: bool | None = None,
) -> optuna.samplers.TPESampler:
    """`hydra/sweeper/sampler=motpe`: Optuna 4 removed MOTPESampler, whose job TPESampler now does."""
    log.warning(
        "hydra/sweeper/sampler=motpe is deprecated: Optuna removed MOTPESampler (4.0) and TPE handles "
        "several objectives; running TPESampler (use hydra/sweeper/sampler=tpe)"
    )
    return optuna.samplers.TPESampler(
        seed=seed,
        n_startup_trials=n_startup_trials,
        n_ei_candidates=n_ehvi_candidates,
        consider_prior=consider_prior,
        prior_weight=prior_weight,
        consider_magic_clip=consider_magic_clip,
        consider_endpoints=consider_endpoints,
    )
