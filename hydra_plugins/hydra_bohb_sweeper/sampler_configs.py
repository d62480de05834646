"""The sampler groups (`hydra/sweeper/sampler=<name>`): one config per Optuna sampler, with its own keys.

Each group holds only the keys its sampler takes, so that swapping the sampler (a group or a `_target_`)
never passes one sampler's keys to another. Defaults are Optuna's, except `seed: 0` (sweeps are
reproducible) and TPE's joint densities and constant liar (see TPESamplerConf). Keys whose Optuna
default is "unset" (`None`) stay `null` here, so Optuna's own default applies and its deprecated
arguments warn only when set. The grid's points are built from `hydra.sweeper.params` by the sweeper.

Hydra's plugin scan imports this module: hydra and omegaconf only, no Optuna.
"""

# No `from __future__ import annotations`, and typing's Optional: OmegaConf reads these annotations at
# run time (as in config.py).
# ruff: noqa: UP045
from dataclasses import dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class SamplerConf:
    """What every sampler group has: the target and the seed (all of Optuna's samplers take one)."""

    _target_: str = MISSING
    seed: Optional[int] = 0


@dataclass
class TPESamplerConf(SamplerConf):
    """TPE for a conditional space with trials in flight: joint (multivariate, grouped) densities and a
    constant liar, so parallel workers do not all propose the same point."""

    _target_: str = "optuna.samplers.TPESampler"
    # 5, not Optuna's 10: with Hyperband a random startup configuration costs only its first rung, and
    # the model starts learning from paused ones sooner (benchmarks/search_quality.py: the median curve
    # reached random search's final result at 16% of the budget with 5, 21% with 10).
    n_startup_trials: int = 5
    n_ei_candidates: int = 24
    multivariate: bool = True
    group: bool = True
    constant_liar: bool = True
    warn_independent_sampling: Optional[bool] = None
    # Deprecated by Optuna (kept so that configs written for the official sweeper still compose).
    consider_prior: Optional[bool] = None
    prior_weight: Optional[float] = None
    consider_magic_clip: Optional[bool] = None
    consider_endpoints: Optional[bool] = None


@dataclass
class MOTPESamplerConf(SamplerConf):
    """The official sweeper's `motpe`: Optuna removed MOTPESampler (TPE handles several objectives), so
    this runs TPESampler with these keys and says so once."""

    _target_: str = "hydra_plugins.hydra_bohb_sweeper._setup.samplers.motpe"
    n_startup_trials: int = 10
    n_ehvi_candidates: int = 24  # TPE's n_ei_candidates
    consider_prior: Optional[bool] = None
    prior_weight: Optional[float] = None
    consider_magic_clip: Optional[bool] = None
    consider_endpoints: Optional[bool] = None


@dataclass
class RandomSamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.RandomSampler"


@dataclass
class CmaEsSamplerConf(SamplerConf):
    """CMA-ES (needs the `cmaes` package). Categorical parameters are sampled by `independent_sampler`
    (random by default); `consider_pruned_trials` lets it learn from pruned trials too."""

    _target_: str = "optuna.samplers.CmaEsSampler"
    x0: Optional[dict[str, Any]] = None
    sigma0: Optional[float] = None
    n_startup_trials: int = 1
    independent_sampler: Optional[Any] = None  # a `_target_` node, e.g. optuna.samplers.RandomSampler
    warn_independent_sampling: bool = True
    consider_pruned_trials: bool = False
    restart_strategy: Optional[str] = None
    popsize: Optional[int] = None
    inc_popsize: int = -1
    use_separable_cma: bool = False
    with_margin: bool = False
    lr_adapt: bool = False
    # Warm start from another study's finished trials (a list of FrozenTrial, e.g. a `_target_` node
    # of a function that loads them); the official sweeper's config has it too.
    source_trials: Optional[Any] = None


@dataclass
class NSGAIISamplerConf(SamplerConf):
    _target_: str = "optuna.samplers.NSGAIISampler"
    population_size: int = 50
    mutation_prob: Optional[float] = None
    crossover: Optional[Any] = None  # a `_target_` node, e.g. optuna.samplers.nsgaii.SBXCrossover
    crossover_prob: float = 0.9
    swapping_prob: float = 0.5
    constraints_func: Optional[Any] = None  # a `_target_` node with `_partial_: true`


@dataclass
class NSGAIIISamplerConf(NSGAIISamplerConf):
    _target_: str = "optuna.samplers.NSGAIIISampler"
    reference_points: Optional[Any] = None  # null: Das and Dennis points with dividing_parameter
    dividing_parameter: int = 3


@dataclass
class QMCSamplerConf(SamplerConf):
    """Quasi-Monte Carlo (needs scipy)."""

    _target_: str = "optuna.samplers.QMCSampler"
    qmc_type: str = "sobol"
    scramble: bool = False
    independent_sampler: Optional[Any] = None
    warn_asynchronous_seeding: bool = True
    warn_independent_sampling: bool = True


@dataclass
class GridSamplerConf(SamplerConf):
    """Every combination of the `choice(...)` and `range(...)` values in `hydra.sweeper.params` (the
    sweeper builds the grid, and caps n_trials at its size); the seed fixes the order of the points."""

    _target_: str = "optuna.samplers.GridSampler"
    # The official sweeper's config instantiates the grid as a partial and fills in search_space; this
    # sweeper builds it from `params` itself, so the key is accepted and changes nothing.
    _partial_: bool = True


@dataclass
class GPSamplerConf(SamplerConf):
    """Gaussian-process Bayesian optimisation (needs torch and scipy, in the sweeper's process)."""

    _target_: str = "optuna.samplers.GPSampler"
    n_startup_trials: int = 10
    deterministic_objective: bool = False
    independent_sampler: Optional[Any] = None
    constraints_func: Optional[Any] = None
    warn_independent_sampling: bool = True


@dataclass
class BruteForceSamplerConf(SamplerConf):
    """Every configuration of a finite space (choices and ranges; conditions are followed), in random
    order; once all were tried it repeats random ones, so set n_trials to the size of the space."""

    _target_: str = "optuna.samplers.BruteForceSampler"
    avoid_premature_stop: bool = False


SAMPLER_GROUPS: dict[str, type[SamplerConf]] = {
    "tpe": TPESamplerConf,
    "random": RandomSamplerConf,
    "cmaes": CmaEsSamplerConf,
    "nsgaii": NSGAIISamplerConf,
    "nsgaiii": NSGAIIISamplerConf,
    "qmc": QMCSamplerConf,
    "grid": GridSamplerConf,
    "gp": GPSamplerConf,
    "bruteforce": BruteForceSamplerConf,
    "motpe": MOTPESamplerConf,
}


def register(cs: ConfigStore, provider: str) -> None:
    for name, node in SAMPLER_GROUPS.items():
        cs.store(group="hydra/sweeper/sampler", name=name, node=node, provider=provider)
