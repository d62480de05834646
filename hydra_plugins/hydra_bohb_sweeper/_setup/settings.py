"""The sweeper's settings (`hydra.sweeper.*`), checked once before anything runs.

Every bad value is refused with one line that names the key and how to fix it (`SweepConfigError`),
before a study exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from hydra.utils import get_method
from omegaconf import DictConfig, ListConfig, OmegaConf

from hydra_plugins.hydra_bohb_sweeper._study import scheduling as _scheduling

DEFAULT_BUDGET = 27  # epochs of a full trial when neither hydra.sweeper.budget nor max_resource is set
# `_target_`s of hydra/sweeper/pruner that name one of _scheduling.REGISTRY's schedulers (earlier
# versions' included), by the scheduler's public name.
SCHEDULER_TARGETS = {
    "hydra_plugins.hydra_bohb_sweeper._study.scheduling.Hyperband": _scheduling.Hyperband.name,
    "hydra_plugins.hydra_bohb_sweeper._study.scheduling.NoPruning": _scheduling.NoPruning.name,
    **_scheduling.LEGACY_TARGETS,
}


class SweepConfigError(ValueError):
    """Bad sweeper settings or search space: reported in one line before any study is created."""


@dataclass(frozen=True)
class Settings:
    sampler: dict[str, Any]  # `_target_` config, instantiated when the study is opened
    pruner: dict[str, Any]  # as given (hydra/sweeper/pruner)
    scheduler: _scheduling.Scheduler  # what it means: who goes on, pauses or stops
    directions: list[str]  # one per objective
    objectives: list[str] | None  # keys of the objectives in the mapping a job returns; None: a number
    study_name: str
    storage: str | None
    n_trials: int
    n_jobs: int
    heartbeat_interval: int  # seconds between heartbeats of the trials in flight
    budget: int  # epochs of a full trial
    budget_key: str | None
    max_failure_rate: float
    min_trials_for_failure_rate: int
    preflight_check: str | None
    report: str | None
    figures: bool
    tracking_key: str | None
    console: str = "trials"
    final_evaluation: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    conditions: dict[str, str] = field(default_factory=dict)
    custom_search_space: str | None = None  # fn(cfg, trial) that suggests more parameters
    # False: `direction` was unset, so a new study minimizes (as the official sweeper's) and a resumed
    # one keeps its own directions (see _study/open.py).
    direction_given: bool = True

    @property
    def final_evaluation_enabled(self) -> bool:
        return bool(self.final_evaluation.get("enabled"))

    @property
    def multi_objective(self) -> bool:
        return len(self.directions) > 1

    @property
    def direction(self) -> str:
        """The direction of a single-objective study (the official sweeper's `direction`)."""
        return self.directions[0]


def _plain(node: Any) -> Any:
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node if node is not None else {}


def _listed(node: Any) -> Any:
    """A list from a ListConfig; anything else as it is."""
    return list(node) if isinstance(node, ListConfig) else node


def check_settings(raw: Mapping[str, Any], job_name: str) -> Settings:
    """The sweeper's settings as given to its constructor, checked; `job_name` names the study when
    `study_name` is null."""
    get = raw.get
    n_trials, n_jobs = get("n_trials", 20), get("n_jobs", 1)
    if not isinstance(n_trials, int) or n_trials <= 0:
        raise SweepConfigError(f"hydra.sweeper.n_trials={n_trials} must be a positive integer")
    if not isinstance(n_jobs, int) or n_jobs <= 0:
        raise SweepConfigError(f"hydra.sweeper.n_jobs={n_jobs} must be a positive integer")
    direction = _listed(get("direction"))
    directions, objectives = _check_objectives(direction, _listed(get("objective")))
    max_failure_rate = get("max_failure_rate", 0.5)
    if not 0.0 <= max_failure_rate <= 1.0:
        raise SweepConfigError(f"hydra.sweeper.max_failure_rate={max_failure_rate} must be in [0, 1]")
    heartbeat = get("heartbeat_interval", 30)
    if heartbeat is None:
        raise SweepConfigError(
            "hydra.sweeper.heartbeat_interval=null: without heartbeats a killed sweeper's trials stay "
            "RUNNING for ever and its configurations are never resumed; set it in seconds (default 30)"
        )
    if not isinstance(heartbeat, int) or heartbeat < 1:
        raise SweepConfigError(
            f"hydra.sweeper.heartbeat_interval={heartbeat} must be a whole number of seconds >= 1"
        )
    console = get("console", "trials")
    if console not in ("trials", "full"):
        raise SweepConfigError(f"hydra.sweeper.console={console} must be trials or full")
    sampler, pruner = (
        cast(dict[str, Any], _plain(get("sampler"))),
        cast(dict[str, Any], _plain(get("pruner"))),
    )
    for key in ("preflight_check", "report", "custom_search_space"):
        _check_importable(key, get(key), "give a function's dotted path or null")
    for name, node, example in (("sampler", sampler, "tpe"), ("pruner", pruner, "hyperband")):
        _check_importable(
            f"{name}._target_", node.get("_target_"), f"use e.g. hydra/sweeper/{name}={example}"
        )
    final_evaluation = cast(dict[str, Any], _plain(get("final_evaluation")))
    _check_final_evaluation(final_evaluation)
    budget = _check_budget(get("budget"), pruner)
    scheduler = _check_scheduler(pruner, budget, len(directions))
    return Settings(
        sampler=sampler,
        pruner=pruner,
        scheduler=scheduler,
        directions=directions,
        objectives=objectives,
        study_name=get("study_name") or job_name,
        storage=get("storage"),
        n_trials=n_trials,
        n_jobs=n_jobs,
        heartbeat_interval=heartbeat,
        budget=budget,
        budget_key=get("budget_key"),
        max_failure_rate=float(max_failure_rate),
        min_trials_for_failure_rate=int(get("min_trials_for_failure_rate", 5)),
        preflight_check=get("preflight_check"),
        report=get("report"),
        figures=bool(get("figures", True)),
        tracking_key=get("tracking_key"),
        console=console,
        final_evaluation=final_evaluation,
        params=cast(dict[str, Any], _plain(get("params"))),
        conditions=cast(dict[str, str], _plain(get("conditions"))),
        custom_search_space=get("custom_search_space"),
        direction_given=direction is not None,
    )


def _check_objectives(direction: Any, objective: Any) -> tuple[list[str], list[str] | None]:
    """One direction per objective; with several objectives the job returns a mapping that names them
    (`objective: [acc, n_parameters]`) or a list in the order of `direction`. No direction: minimize
    each objective, as the official sweeper does."""
    if direction is None:
        direction = ["minimize"] * (len(objective) if isinstance(objective, list) else 1)
    directions = [direction] if isinstance(direction, str) else list(direction)
    for value in directions:
        if value not in ("maximize", "minimize"):
            raise SweepConfigError(
                f"hydra.sweeper.direction={value} must be maximize or minimize (or a list of them)"
            )
    if not directions:
        raise SweepConfigError("hydra.sweeper.direction is empty: give maximize, minimize or a list of them")
    objectives = None if objective is None else [objective] if isinstance(objective, str) else list(objective)
    if objectives is not None and len(objectives) != len(directions):
        raise SweepConfigError(
            f"hydra.sweeper.objective names {len(objectives)} objective(s) ({', '.join(objectives)}) but "
            f"hydra.sweeper.direction gives {len(directions)}: give one direction per objective"
        )
    return directions, objectives


def _check_final_evaluation(final: Mapping[str, Any]) -> None:
    top_k, max_gap = final.get("top_k", 1), final.get("max_gap")
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise SweepConfigError(
            f"hydra.sweeper.final_evaluation.top_k={top_k} must be a whole number >= 1 (candidates retrained)"
        )
    if max_gap is not None and (
        isinstance(max_gap, bool) or not isinstance(max_gap, (int, float)) or not max_gap >= 0
    ):
        raise SweepConfigError(
            f"hydra.sweeper.final_evaluation.max_gap={max_gap} must be a number >= 0 (or null: the top_k "
            "however far behind)"
        )


def _check_budget(budget: Any, pruner: Mapping[str, Any]) -> int:
    """`hydra.sweeper.budget`, the epochs of a full trial; `pruner.max_resource` is its earlier name."""
    legacy = pruner.get("max_resource")
    for key, value in (("budget", budget), ("pruner.max_resource", legacy)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise SweepConfigError(f"hydra.sweeper.{key}={value} must be a positive whole number of epochs")
    if budget is not None and legacy is not None and budget != legacy:
        raise SweepConfigError(
            f"hydra.sweeper.pruner.max_resource={legacy} and hydra.sweeper.budget={budget} disagree: the "
            "epochs of a full trial are hydra.sweeper.budget now; remove pruner.max_resource"
        )
    return int(budget if budget is not None else legacy if legacy is not None else DEFAULT_BUDGET)


def _check_scheduler(pruner: Mapping[str, Any], budget: int, n_objectives: int) -> _scheduling.Scheduler:
    """The scheduler that hydra/sweeper/pruner names: one of ours, or any Optuna pruner (stopping only)."""
    target = str(pruner.get("_target_", ""))
    name = SCHEDULER_TARGETS.get(target)
    kwargs = {k: v for k, v in pruner.items() if k not in ("_target_", "max_resource")}
    try:
        if name == _scheduling.Hyperband.name:
            if "bootstrap_count" in kwargs:
                raise ValueError(
                    "bootstrap_count is gone: a rung's first trials pause until enough others reach it "
                    "(remove hydra.sweeper.pruner.bootstrap_count)"
                )
            return _scheduling.Hyperband(budget=budget, **kwargs)
        if name == _scheduling.NoPruning.name:
            return _scheduling.NoPruning()
    except (TypeError, ValueError) as exc:
        raise SweepConfigError(f"hydra.sweeper.pruner: {exc}") from None
    if n_objectives > 1:
        raise SweepConfigError(
            f"hydra.sweeper.pruner._target_={target} cannot prune a study with several objectives (Optuna "
            "refuses trial.report there): use hydra/sweeper/pruner=hyperband, which ranks by Pareto front"
        )
    optuna_pruner = dict(pruner)
    if "max_resource" in pruner or target == "optuna.pruners.HyperbandPruner":
        optuna_pruner["max_resource"] = budget  # Optuna's Hyperband sizes its brackets by it
    try:
        return _scheduling.OptunaPruner(optuna_pruner)
    except Exception as exc:
        raise SweepConfigError(f"hydra.sweeper.pruner: {first_cause(exc)}") from None


def first_cause(exc: BaseException) -> str:
    """The innermost reason of an exception, in one line (Hydra's instantiation errors nest it)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _check_importable(key: str, path: str | None, hint: str) -> None:
    if not path:
        return
    try:
        get_method(path)
    except Exception as exc:
        raise SweepConfigError(
            f"hydra.sweeper.{key}={path} cannot be imported ({first_cause(exc)}); {hint}"
        ) from None
