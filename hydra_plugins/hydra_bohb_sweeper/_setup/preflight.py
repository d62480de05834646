"""Before the first trial: compose the job config the way each trial will, so a bad search space fails now.

The job config is composed with the fixed overrides, then with each end of every parameter's range and
each choice of a categorical (checked by the app's `preflight_check`, if set), so unknown keys, misspelt
config-group choices and a space wider than the job accepts fail in one line instead of in every trial.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf, open_dict

from hydra_plugins.hydra_bohb_sweeper._setup import legacy_search_space
from hydra_plugins.hydra_bohb_sweeper._setup.custom_search_space import dry_run
from hydra_plugins.hydra_bohb_sweeper._setup.samplers import prepare_sampler, sampler_group
from hydra_plugins.hydra_bohb_sweeper._setup.search_space import SearchSpace, build_search_space, format_value
from hydra_plugins.hydra_bohb_sweeper._setup.settings import Settings, SweepConfigError, check_settings

Compose = Callable[[Sequence[str]], DictConfig]  # overrides -> the job config, hydra node included
Check = Callable[[DictConfig], Any]  # the app's preflight_check: raises ValueError


def preflight(compose: Compose, settings: Settings, space: SearchSpace) -> None:
    if settings.budget_key and (
        settings.budget_key in space.fixed or settings.budget_key in space.distributions
    ):
        raise SweepConfigError(
            f"{settings.budget_key} is set by the sweeper (hydra.sweeper.budget_key, the epochs of a full "
            "trial); set hydra.sweeper.budget instead"
        )
    base = [*space.fixed.values(), *budget_override(settings)]
    check = get_method(settings.preflight_check) if settings.preflight_check else None
    # The values to try, per parameter. Without a check a composition can only reveal unknown keys
    # and config-group choices (strings), so one end of a range tells as much as both.
    values = {
        name: list(dict.fromkeys(_ends(d) if check else _ends(d)[:1] + _strings(d)))
        for name, d in space.distributions.items()
    }
    # Each composition costs about what a trial's start-up does, so they go in rounds: round k sets
    # every parameter to its k-th value at once. Only a round that fails is taken apart, to name the
    # override at fault; one whose overrides all pass alone fails by their combination, which trials
    # may never sample, so it is let through.
    for k in range(max((len(v) for v in values.values()), default=1)):
        round_k = [
            f"{space.override_keys[name]}={format_value(vs[k])}" for name, vs in values.items() if k < len(vs)
        ]
        try:
            _check_composed(compose, check, [*base, *round_k], context="")
        except SweepConfigError:
            _check_composed(compose, check, base, context="")
            _find_fault(compose, check, base, round_k)


def _find_fault(compose: Compose, check: Check | None, base: list[str], overrides: list[str]) -> None:
    """Raise for the override that fails alone, halving the list (a few compositions, not one each)."""
    if len(overrides) == 1:
        _check_composed(compose, check, [*base, *overrides], f"the search space reaches {overrides[0]}: ")
        return
    for half in (overrides[: len(overrides) // 2], overrides[len(overrides) // 2 :]):
        try:
            _check_composed(compose, check, [*base, *half], context="")
        except SweepConfigError:
            _find_fault(compose, check, base, half)


def budget_override(settings: Settings) -> list[str]:
    return [f"{settings.budget_key}={settings.budget}"] if settings.budget_key else []


def _check_composed(compose: Compose, check: Check | None, overrides: list[str], context: str) -> None:
    try:
        cfg = compose(overrides)
    except Exception as exc:
        raise SweepConfigError(f"{context}invalid override: {first_line(exc)}") from None
    if check is None:
        return
    with open_dict(cfg):
        del cfg["hydra"]
    try:
        check(cfg)
    except ValueError as exc:
        raise SweepConfigError(f"{context}{first_line(exc)}") from None


def _ends(distribution: optuna.distributions.BaseDistribution) -> list[Any]:
    """The values that bound a distribution: every choice, or the two ends of a range."""
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return list(distribution.choices)
    return [distribution.low, distribution.high]  # type: ignore[attr-defined]


def _strings(distribution: optuna.distributions.BaseDistribution) -> list[Any]:
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return [c for c in distribution.choices if isinstance(c, str)]
    return []


def first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def prepare(
    raw_settings: Mapping[str, Any],
    job_name: str,
    arguments: Sequence[str],
    config: DictConfig,
    compose: Compose,
) -> tuple[Settings, SearchSpace]:
    """The checked settings and the search space of a sweep, composed once like its trials will be;
    raises SweepConfigError or SearchSpaceError with one line."""
    settings = check_settings(legacy_search_space.translate(raw_settings), job_name)
    space = build_search_space(settings.params, settings.conditions, arguments, job_values(config))
    if not space.distributions and not settings.custom_search_space:
        raise SweepConfigError(
            "the search space is empty: add hydra.sweeper.params or a command-line sweep such as "
            "'x=interval(0, 1)'"
        )
    settings = prepare_sampler(settings, space, arguments, sampler_group(config))
    preflight(compose, settings, space)
    if settings.custom_search_space:  # the hook's parameters exist only in trials: compose one's
        added = dry_run(settings, space, config)
        check = get_method(settings.preflight_check) if settings.preflight_check else None
        base = [*space.fixed.values(), *budget_override(settings)]
        _check_composed(compose, check, [*base, *added], f"custom_search_space adds {' '.join(added)}: ")
    return settings, space


def job_values(config: DictConfig) -> dict[str, Any]:
    """The job config's values by dotted key (for conditions on parameters that are not searched)."""
    container = OmegaConf.to_container(config, resolve=False)
    assert isinstance(container, dict)
    container.pop("hydra", None)
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = node

    walk(container, "")
    return flat
