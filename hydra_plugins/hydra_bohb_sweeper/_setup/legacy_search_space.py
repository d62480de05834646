"""The deprecated `hydra.sweeper.search_space` (the official sweeper's Hydra 1.1 syntax), read as `params`.

`search_space: {x: {type: float, low: -5.5, high: 5.5, step: 0.5}}` gives each parameter as the fields of
an Optuna distribution (`type`: int, float or categorical; `low`, `high`, `step`, `log`, `choices`).
As in the official sweeper it is read only when `params` is not set (here: empty, its default, so
that `+hydra.sweeper.params.x=...` works for any app), with a deprecation warning (an error when
HYDRA_DEPRECATION_WARNINGS_AS_ERRORS is set, Hydra's switch for them), and ignored with a UserWarning
when `params` is set too. Each entry becomes the `params` expression of the same
distribution, so the rest of the sweeper knows one grammar.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hydra_plugins.hydra_bohb_sweeper._setup.search_space import format_value
from hydra_plugins.hydra_bohb_sweeper._setup.settings import SweepConfigError

UPGRADE_NOTES = "https://hydra.cc/docs/upgrades/1.1_to_1.2/changes_to_sweeper_config/"


def translate(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The sweeper's settings with a deprecated `search_space` turned into `params` (warning once)."""
    search_space = raw.get("search_space")
    if search_space is None:
        return dict(raw)
    if raw.get("params"):
        warnings.warn(
            "Both hydra.sweeper.params and hydra.sweeper.search_space are configured: the sweeper "
            f"searches hydra.sweeper.params and ignores search_space (see {UPGRADE_NOTES})",
            UserWarning,
            stacklevel=2,
        )
        return dict(raw)
    entries = OmegaConf.to_container(search_space) if isinstance(search_space, DictConfig) else search_space
    if not isinstance(entries, Mapping):
        raise SweepConfigError("hydra.sweeper.search_space must be a mapping of parameter names")
    params = {str(name): expression(str(name), spec) for name, spec in entries.items()}
    written = ", ".join(f"{name}: {value}" for name, value in params.items())
    message = (
        "`hydra.sweeper.search_space` is deprecated and will be removed in the next major release: "
        f"write it as hydra.sweeper.params ({written or 'empty'}); see {UPGRADE_NOTES}"
    )
    if os.environ.get("HYDRA_DEPRECATION_WARNINGS_AS_ERRORS"):
        raise SweepConfigError(message)
    warnings.warn(message, UserWarning, stacklevel=2)
    return {**raw, "params": params}


def expression(name: str, spec: Any) -> str:
    """The `params` expression of one search_space entry."""
    if not isinstance(spec, Mapping):
        raise SweepConfigError(f"hydra.sweeper.search_space.{name} must be a mapping with a type")
    kind = str(spec.get("type", "")).rsplit(".", 1)[-1]  # a string, or the official enum's name
    if kind == "categorical":
        choices = spec.get("choices")
        if not choices:
            raise SweepConfigError(f"hydra.sweeper.search_space.{name}: categorical needs choices")
        return f"choice({', '.join(format_value(c) for c in choices)})"
    if kind not in ("int", "float"):
        raise SweepConfigError(
            f"hydra.sweeper.search_space.{name}.type={kind or 'null'} must be int, float or categorical"
        )
    low, high, step, log = (spec.get(k) for k in ("low", "high", "step", "log"))
    if low is None or high is None:
        raise SweepConfigError(f"hydra.sweeper.search_space.{name}: {kind} needs low and high")
    if kind == "int":
        low, high = int(low), int(high)
        if log:  # as the official sweeper: a log scale leaves out the step
            return f"tag(log, int(interval({low}, {high})))"
        # Hydra's range leaves out its stop; the official distribution includes `high`.
        return f"range({low}, {high + 1}, {int(step or 1)})"
    if log:
        return f"tag(log, interval({float(low)!r}, {float(high)!r}))"
    if step is None:
        return f"interval({float(low)!r}, {float(high)!r})"
    # low, low + step, ... up to high: Hydra's range stops one step past the last point.
    d_low, d_step = Decimal(str(low)), Decimal(str(step))
    n = math.floor((Decimal(str(high)) - d_low) / d_step)
    return f"range({float(low)!r}, {_plain_decimal(d_low + (n + 1) * d_step)}, {float(step)!r})"


def _plain_decimal(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if "." in text else f"{text}.0"
