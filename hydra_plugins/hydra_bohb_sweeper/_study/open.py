"""Opening (or resuming) the sweep's study, and keeping its storage password out of every file.

A resumed study keeps its trials; the sampler's seed is offset by the trials it already has, so the
first run's proposals are not replayed, and a study may not change its direction (an unset direction
is the study's own when it exists, minimize when it is new).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import warnings
from pathlib import Path
from typing import Any, cast

import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig, flag_override

from hydra_plugins.hydra_bohb_sweeper._setup.preflight import first_line
from hydra_plugins.hydra_bohb_sweeper._setup.settings import Settings, SweepConfigError, first_cause
from hydra_plugins.hydra_bohb_sweeper._study.scheduling import Scheduler
from hydra_plugins.hydra_bohb_sweeper._study.storage import count_trials, has_password, open_storage, redact
from hydra_plugins.hydra_bohb_sweeper.names import ENV_STORAGE_SECRET, SCHEDULER_ATTR, STORAGE_FILE


def storage_url(settings: Settings, sweep_dir: Path) -> str:
    return settings.storage or f"sqlite:///{sweep_dir.resolve() / STORAGE_FILE}"


def open_study(settings: Settings, url: str) -> optuna.Study:
    """The study, created or resumed. A resumed study keeps its scheduler: other settings would meet
    configurations paused at other rungs, so they are refused."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        storage = open_storage(url)
        existing = count_trials(storage, settings.study_name)
    except Exception as exc:
        raise SweepConfigError(
            f"hydra.sweeper.storage={redact(url)} cannot be opened: {redact(first_line(exc))}"
        ) from None
    sampler_args = {}
    if existing and settings.sampler.get("seed") is not None:
        sampler_args["seed"] = int(settings.sampler["seed"]) + existing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            sampler = instantiate(settings.sampler, **sampler_args)
        except Exception as exc:
            raise SweepConfigError(f"hydra.sweeper.sampler: {first_cause(exc)}") from None
        study = optuna.create_study(
            study_name=settings.study_name,
            storage=storage,
            sampler=sampler,
            # Trials are never asked `should_prune` through the study: the scheduler decides (below).
            pruner=optuna.pruners.NopPruner(),
            directions=cast(Any, settings.directions),
            load_if_exists=True,
        )
    created = [d.name.lower() for d in study.directions]
    if settings.direction_given and created != settings.directions:
        raise SweepConfigError(
            f"study {settings.study_name!r} in {redact(url)} was created to {', '.join(created)}; "
            f"hydra.sweeper.direction={', '.join(settings.directions)} cannot change that: "
            "use another study_name"
        )
    keep_scheduler(study, settings.scheduler, str(redact(url)))
    with warnings.catch_warnings():  # "experimental" since Optuna 3.2
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # What optuna-dashboard and Optuna's plots call the objective.
        study.set_metric_names(settings.objectives or metric_names(len(study.directions)))
    return study


def with_study_directions(settings: Settings, study: optuna.Study) -> Settings:
    """Settings whose unset `direction` is the opened study's own: minimize for a study this sweep
    created, what it was created with for one it resumes (a rerun never flips a study's direction)."""
    if settings.direction_given:
        return settings
    directions = [d.name.lower() for d in study.directions]
    if settings.objectives is not None and len(settings.objectives) != len(directions):
        raise SweepConfigError(
            f"study {settings.study_name!r} has {len(directions)} objective(s) ({', '.join(directions)}) but "
            f"hydra.sweeper.objective names {len(settings.objectives)}: name one per objective"
        )
    return dataclasses.replace(settings, directions=directions)


def keep_scheduler(study: optuna.Study, scheduler: Scheduler, shown_url: str) -> None:
    """Record `scheduler` on the study, so that its jobs rebuild it and decide as the sweeper would.
    A study that has one keeps it: other settings (another budget, eta, brackets, mode) would meet
    configurations paused at other rungs, and sweepers that share the study would disagree."""
    recorded = study.user_attrs.get(SCHEDULER_ATTR)
    wanted = scheduler.record()
    if recorded is not None and recorded != wanted:
        raise SweepConfigError(
            f"study {study.study_name!r} in {shown_url} is scheduled by {_settings_text(recorded)}; this "
            f"sweep asks for {_settings_text(wanted, recorded)}: run it with the study's settings, or use "
            "another study_name"
        )
    study.set_user_attr(SCHEDULER_ATTR, wanted)


def _settings_text(record: dict[str, Any], other: dict[str, Any] | None = None) -> str:
    """A scheduler's record in words: its name and settings (only those that differ from `other`)."""
    shown = {k: v for k, v in record.items() if k != "name" and (other is None or other.get(k) != v)}
    settings = ", ".join(f"{k}={v}" for k, v in shown.items())
    return f"{record.get('name')}({settings})"


def metric_names(n_objectives: int) -> list[str]:
    return ["objective"] if n_objectives == 1 else [f"objective_{i}" for i in range(n_objectives)]


def keep_password_out_of_files(config: DictConfig, storage: str | None) -> None:
    """Jobs, logs and saved configs get the storage URL with its password redacted; the real one
    travels to the jobs in the environment (see `_storage.resolve_url`)."""
    if not has_password(storage):
        return
    assert storage is not None
    os.environ[ENV_STORAGE_SECRET] = storage
    shown = str(redact(storage))
    # W&B records the command line of runs started in this process (the basic launcher's jobs).
    sys.argv[:] = [arg.replace(storage, shown) for arg in sys.argv]
    hydra_cfg = config.hydra
    with flag_override(hydra_cfg, ["readonly", "struct"], False):
        if hydra_cfg.sweeper.get("storage") == storage:
            hydra_cfg.sweeper.storage = shown
        hydra_cfg.overrides.hydra = [o.replace(storage, shown) for o in hydra_cfg.overrides.hydra]
