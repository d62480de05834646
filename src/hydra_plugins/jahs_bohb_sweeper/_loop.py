"""The BOHB sweep loop: ask -> overrides -> launch -> tell -> report, with N workers and no batch barrier.

Each worker launches one trial at a time through Hydra's launcher and asks for the next trial as soon
as its trial ends, so a trial pruned after one epoch frees its worker at once. The job reaches its trial
through the shared Optuna storage (see `jahs_bohb.optuna_trial`), reports every epoch and is pruned by
the same Hyperband pruner the sweeper uses.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import optuna
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf, flag_override, open_dict

from hydra_plugins.jahs_bohb_sweeper import _final, _plots, _results
from hydra_plugins.jahs_bohb_sweeper._budget import FINISHED, SURPLUS_ATTR, StudyBudget
from hydra_plugins.jahs_bohb_sweeper._outcome import Outcome, one_line, outcome_of
from hydra_plugins.jahs_bohb_sweeper._progress import Progress
from hydra_plugins.jahs_bohb_sweeper._search_space import (
    SearchSpace,
    SearchSpaceError,
    build_search_space,
    format_value,
)
from hydra_plugins.jahs_bohb_sweeper._sweep_run import SweepRun
from jahs_bohb.optuna_trial import (
    FAIL_REASON_ATTR,
    OUTPUT_DIR_ATTR,
    OVERRIDES_ATTR,
    PRUNER_ATTR,
    STORAGE_ENV,
    TRIAL_NODE,
    has_password,
    open_storage,
    redact,
)

log = logging.getLogger(__name__)


class SweepConfigError(ValueError):
    """Bad sweeper settings or search space: reported in one line before any study is created."""


class BOHBSweep:
    def __init__(
        self,
        sampler: DictConfig,
        pruner: DictConfig,
        direction: str,
        study_name: str,
        storage: str | None,
        n_trials: int,
        n_jobs: int,
        budget: int | None,
        budget_key: str,
        max_failure_rate: float,
        min_trials_for_failure_rate: int,
        params: DictConfig | None,
        conditions: DictConfig | None,
        preflight_check: str | None = None,
        tracking_key: str | None = None,
        final_evaluation: DictConfig | None = None,
        heartbeat_interval: int | None = 30,
        report: str | None = None,
    ) -> None:
        self.sampler_config, self.pruner_config = sampler, pruner
        self.direction, self.study_name, self.storage = direction, study_name, storage
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.budget, self.budget_key = budget, budget_key
        self.max_failure_rate = max_failure_rate
        self.min_trials_for_failure_rate = min_trials_for_failure_rate
        self.params = cast(dict[str, Any], OmegaConf.to_container(params, resolve=True) if params else {})
        self.conditions = cast(
            dict[str, str], OmegaConf.to_container(conditions, resolve=True) if conditions else {}
        )
        self.preflight_check = preflight_check
        self.tracking_key = tracking_key
        self.final_evaluation = final_evaluation
        self.heartbeat_interval = heartbeat_interval
        self.report = report
        self._sweep_run = SweepRun(None)
        self._lock = threading.Lock()
        self._stop_reason: str | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.config_loader = hydra_context.config_loader
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self.sweep_dir = Path(config.hydra.sweep.dir)

    # ---------------------------------------------------------------- entry point
    def sweep(self, arguments: Sequence[str]) -> None:
        self._keep_password_out_of_files()
        try:
            space, budget = self._prepare(arguments)
            study, storage = self._open_study()
        except (SweepConfigError, SearchSpaceError) as exc:
            _exit_with(str(exc))
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        study.set_user_attr(PRUNER_ATTR, OmegaConf.to_container(self.pruner_config, resolve=True))
        study.set_user_attr("search_space", {k: repr(d) for k, d in space.distributions.items()})
        self._budget = StudyBudget(study, storage, self.n_trials)
        tally = self._budget.tally()
        done, running = tally.finished, tally.running + tally.waiting
        log.info(
            "BOHB: study %r in %s: %d of %d trials finished%s; up to %d more with %d worker(s); "
            "budget %d epochs; %d parameters",
            self.study_name, redact(self.storage_url), done, self.n_trials,
            f", {running} running elsewhere" if running else "", max(0, self.n_trials - done - running),
            self._n_workers(), budget, len(space.distributions),
        )  # fmt: skip
        self._progress = Progress(self.n_trials, done, budget)
        self._sweep_run = SweepRun.start(
            OmegaConf.select(self.config, self.tracking_key) if self.tracking_key else None,
            self.sweep_dir,
            self.study_name,
            self._settings(space, budget),
        )
        final = None
        self._budget.start_heartbeats()
        try:
            self._run_workers(study, space, budget)
            if self.final_evaluation and self.final_evaluation.enabled and not self._stop_reason:
                final = _final.run(
                    self.launcher,
                    study,
                    self.sweep_dir,
                    list(self.final_evaluation.overrides or []),
                    [*space.fixed.values(), f"{self.budget_key}={budget}"],
                    baseline=bool(self.final_evaluation.get("baseline", False)),
                )
        finally:
            self._budget.stop_heartbeats()
            results = _results.write(
                study, self.sweep_dir, self.storage_url, budget, self._stop_reason, final
            )
            figures = _plots.write_figures(study, self.sweep_dir)
            figures.update(self._write_report())
            self._sweep_run.finish(study, results, figures, failed=self._stop_reason is not None)
            log.info("BOHB: results in %s", self.sweep_dir / _results.RESULTS_FILE)
        if self._stop_reason:
            _exit_with(self._stop_reason)

    def _write_report(self) -> dict[str, Path]:
        if not self.report:
            return {}
        try:
            written = get_method(self.report)(self.sweep_dir)
        except Exception as exc:  # a report is a view of the results, never a reason to lose them
            log.warning("BOHB: report %s failed: %s", self.report, one_line(exc))
            return {}
        log.info("BOHB: report in %s", written.get("report", self.sweep_dir))
        return dict(written)

    def _settings(self, space: SearchSpace, budget: int) -> dict[str, Any]:
        """What the sweep's W&B run records as its config (the storage URL without its password)."""
        return {
            "study_name": self.study_name,
            "storage": redact(self.storage_url),
            "n_trials": self.n_trials,
            "n_jobs": self.n_jobs,
            "budget_epochs": budget,
            "sampler": OmegaConf.to_container(self.sampler_config, resolve=True),
            "pruner": OmegaConf.to_container(self.pruner_config, resolve=True),
            "search_space": {name: repr(dist) for name, dist in space.distributions.items()},
            "conditions": {name: c.text for name, c in space.conditions.items()},
            "fixed_overrides": [redact(o) for o in space.fixed.values()],
        }

    # ---------------------------------------------------------------- preparation
    def _prepare(self, arguments: Sequence[str]) -> tuple[SearchSpace, int]:
        budget = self._check_settings()
        base_values = _flat(self.config)
        space = build_search_space(self.params, self.conditions, arguments, base_values)
        if not space.distributions:
            raise SweepConfigError(
                "the search space is empty: add hydra.sweeper.params or a command-line sweep such as "
                "'model.kernel_size=choice(3,5)'"
            )
        self._preflight(space, budget)
        return space, budget

    def _check_settings(self) -> int:
        if self.n_trials <= 0:
            raise SweepConfigError(f"hydra.sweeper.n_trials={self.n_trials} must be a positive integer")
        if self.n_jobs <= 0:
            raise SweepConfigError(f"hydra.sweeper.n_jobs={self.n_jobs} must be a positive integer")
        if self.direction not in ("maximize", "minimize"):
            raise SweepConfigError(f"hydra.sweeper.direction={self.direction} must be maximize or minimize")
        if not 0.0 <= self.max_failure_rate <= 1.0:
            raise SweepConfigError(
                f"hydra.sweeper.max_failure_rate={self.max_failure_rate} must be in [0, 1]"
            )
        pruner = self.pruner_config
        low, high, eta = (pruner.get(k) for k in ("min_resource", "max_resource", "reduction_factor"))
        if high is not None:
            if not isinstance(high, int) or not isinstance(low, int) or low < 1:
                raise SweepConfigError(
                    f"hydra.sweeper.pruner: min_resource={low} and max_resource={high} "
                    "must be integers >= 1 (epochs)"
                )
            if high < low:
                raise SweepConfigError(
                    f"hydra.sweeper.pruner.max_resource={high} is below min_resource={low}; "
                    "raise max_resource"
                )
        if eta is not None and (not isinstance(eta, int) or eta < 2):
            raise SweepConfigError(f"hydra.sweeper.pruner.reduction_factor={eta} must be an integer >= 2")
        budget = self.budget if self.budget is not None else high
        if not isinstance(budget, int) or budget < 1:
            raise SweepConfigError(
                "hydra.sweeper.budget must be a positive number of epochs when the pruner has no max_resource"
            )
        for key in ("preflight_check", "report"):
            path = getattr(self, key)
            try:
                if path:
                    get_method(path)
            except Exception:
                raise SweepConfigError(
                    f"hydra.sweeper.{key}={path} cannot be imported; give a function's dotted path or null"
                ) from None
        for name, node in (("sampler", self.sampler_config), ("pruner", self.pruner_config)):
            try:
                get_method(node._target_)
            except Exception:
                raise SweepConfigError(
                    f"hydra.sweeper.{name}._target_={node._target_} cannot be imported; "
                    f"use e.g. hydra/sweeper/{name}={'tpe' if name == 'sampler' else 'hyperband'}"
                ) from None
        return budget

    def _preflight(self, space: SearchSpace, budget: int) -> None:
        """Compose the job config before any trial: with the fixed overrides, then with each end of every
        parameter's range (each choice of a categorical), so unknown keys, misspelt config-group choices
        and a space wider than the job accepts fail now, in one line, instead of in every trial."""
        if self.budget_key in space.fixed or self.budget_key in space.distributions:
            raise SweepConfigError(
                f"{self.budget_key} is set by the sweeper (the epochs of a full trial); set "
                "hydra.sweeper.pruner.max_resource (or hydra.sweeper.budget) instead"
            )
        base = [*space.fixed.values(), f"{self.budget_key}={budget}"]
        self._check_composed(base, context="")
        if not self.preflight_check:
            return
        for name, distribution in space.distributions.items():
            for value in _ends(distribution):
                override = f"{space.override_keys[name]}={format_value(value)}"
                self._check_composed([*base, override], context=f"the search space reaches {override}: ")

    def _check_composed(self, overrides: list[str], context: str) -> None:
        try:
            cfg = self.config_loader.load_sweep_config(self.config, overrides)
        except Exception as exc:
            raise SweepConfigError(f"{context}invalid override: {_first_line(exc)}") from None
        if self.preflight_check:
            with open_dict(cfg):
                del cfg["hydra"]
            try:
                get_method(self.preflight_check)(cfg)
            except ValueError as exc:
                raise SweepConfigError(f"{context}{_first_line(exc)}") from None

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{self.sweep_dir.resolve() / 'optuna.db'}"

    def _open_study(self) -> tuple[optuna.Study, optuna.storages.BaseStorage]:
        if self.storage is None:
            self.sweep_dir.mkdir(parents=True, exist_ok=True)
        url = self.storage_url
        heartbeat = self.heartbeat_interval if "://" in url and not url.startswith("journal") else None
        try:
            storage = open_storage(url, heartbeat_interval=heartbeat)
            existing = _trial_count(storage, self.study_name)
        except Exception as exc:
            raise SweepConfigError(
                f"hydra.sweeper.storage={redact(url)} cannot be opened: {redact(_first_line(exc))}"
            ) from None
        # A resumed study must not replay the proposals of its first run: offset the sampler's seed.
        sampler_args = {}
        if existing and self.sampler_config.get("seed") is not None:
            sampler_args["seed"] = int(self.sampler_config.seed) + existing
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                sampler = instantiate(self.sampler_config, **sampler_args)
                pruner = instantiate(self.pruner_config)
            except Exception as exc:
                raise SweepConfigError(f"hydra.sweeper sampler/pruner: {_first_line(exc)}") from None
            study = optuna.create_study(
                study_name=self.study_name,
                storage=storage,
                sampler=sampler,
                pruner=pruner,
                direction=cast(Any, self.direction),
                load_if_exists=True,
            )
        if study.direction.name.lower() != self.direction:
            raise SweepConfigError(
                f"study {self.study_name!r} in {redact(url)} was created to {study.direction.name.lower()}; "
                f"hydra.sweeper.direction={self.direction} cannot change that: use another study_name"
            )
        return study, storage

    def _keep_password_out_of_files(self) -> None:
        """Jobs, logs and saved configs get the storage URL with its password redacted; the real one
        travels to the jobs in the environment (see `jahs_bohb.optuna_trial.resolve_url`)."""
        if not has_password(self.storage):
            return
        assert self.storage is not None
        os.environ[STORAGE_ENV] = self.storage
        secret, shown = self.storage, redact(self.storage)
        # W&B records the command line of runs started in this process (the basic launcher's jobs).
        sys.argv[:] = [arg.replace(secret, str(shown)) for arg in sys.argv]
        hydra_cfg = self.config.hydra
        with flag_override(hydra_cfg, ["readonly", "struct"], False):
            if hydra_cfg.sweeper.get("storage") == secret:
                hydra_cfg.sweeper.storage = shown
            hydra_cfg.overrides.hydra = [o.replace(secret, str(shown)) for o in hydra_cfg.overrides.hydra]

    # ---------------------------------------------------------------- the loop
    def _n_workers(self) -> int:
        # The basic launcher runs jobs inside this process: one at a time is the only safe way.
        if type(self.launcher).__name__ == "BasicLauncher":
            return 1
        return self.n_jobs

    def _run_workers(self, study: optuna.Study, space: SearchSpace, budget: int) -> None:
        n_workers = self._n_workers()
        if self.n_jobs > 1 and n_workers == 1:
            log.warning(
                "BOHB: n_jobs=%d needs a process launcher (hydra/launcher=joblib); running 1", self.n_jobs
            )
        if n_workers == 1:
            self._worker(study, space, budget)  # main thread: Ctrl-C reaches the job
            return
        errors: list[BaseException] = []

        def guarded() -> None:
            try:
                self._worker(study, space, budget)
            except BaseException as exc:
                errors.append(exc)
                self._stop_reason = self._stop_reason or f"a sweep worker crashed: {one_line(exc)}"

        threads = [threading.Thread(target=guarded, name=f"bohb-worker-{i}") for i in range(n_workers)]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        except KeyboardInterrupt:
            self._stop_reason = "interrupted"
            log.warning("BOHB: interrupted; waiting for the trials in flight to finish")
            for thread in threads:
                thread.join()
            raise
        if errors:
            raise errors[0]

    def _worker(self, study: optuna.Study, space: SearchSpace, budget: int) -> None:
        """Run trials until the study's budget is spent: ask, launch, tell; no waiting for other workers."""
        while True:
            with self._lock:
                if self._stop_reason:
                    return
                claim = self._budget.claim()
                if claim == "stop":
                    return
                if claim == "run":
                    trial, overrides = self._ask(study, space, budget)
                    if self._budget.is_surplus(trial):  # another sweeper took the last slot first
                        trial.set_user_attr(SURPLUS_ATTR, True)
                        study.tell(trial, state=optuna.trial.TrialState.FAIL)
                        continue
                    self._budget.started(trial)
            if claim == "wait":  # other sweepers' trials may still die and be retried here
                time.sleep(max(1.0, (self._budget.heartbeats or 2) / 2))
                continue
            try:
                ret = self.launcher.launch([overrides], initial_job_idx=trial.number)[0]
                outcome = outcome_of(ret)
                output_dir = ret.hydra_cfg.hydra.runtime.output_dir if ret.hydra_cfg else None
            except KeyboardInterrupt:
                self._tell(study, trial, Outcome(optuna.trial.TrialState.FAIL, reason="interrupted"), None)
                self._stop_reason = "interrupted"
                raise
            except Exception as exc:  # a launcher failure is this trial's failure, not the sweep's
                outcome, output_dir = Outcome(optuna.trial.TrialState.FAIL, reason=one_line(exc)), None
            with self._lock:
                frozen = self._tell(study, trial, outcome, output_dir)
                self._budget.ended(trial)
                self._progress.trial_finished(study, frozen)
                self._sweep_run.trial_finished(study, frozen, self._progress.elapsed())
                self._check_failure_rate(study)

    def _ask(self, study: optuna.Study, space: SearchSpace, budget: int) -> tuple[optuna.Trial, list[str]]:
        trial = study.ask()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            params = space.sample(lambda name, dist: _suggest(trial, name, dist))
        identity = {
            "study_name": self.study_name,
            "storage": redact(self.storage_url),
            "number": trial.number,
        }
        overrides = [
            *space.overrides(params),
            f"{self.budget_key}={budget}",
            *(f"{TRIAL_NODE}.{key}={format_value(value)}" for key, value in identity.items()),
        ]
        trial.set_user_attr(OVERRIDES_ATTR, [redact(o) for o in overrides if not o.startswith(TRIAL_NODE)])
        return trial, overrides

    def _tell(
        self, study: optuna.Study, trial: optuna.Trial, outcome: Outcome, output_dir: str | None
    ) -> optuna.trial.FrozenTrial:
        if output_dir:
            trial.set_user_attr(OUTPUT_DIR_ATTR, str(output_dir))
        if outcome.reason:
            trial.set_user_attr(FAIL_REASON_ATTR, outcome.reason)
        if outcome.state == optuna.trial.TrialState.COMPLETE:
            return study.tell(trial, outcome.value)
        return study.tell(trial, state=outcome.state)

    def _check_failure_rate(self, study: optuna.Study) -> None:
        trials = [
            t for t in study.get_trials(deepcopy=False, states=FINISHED) if not t.user_attrs.get(SURPLUS_ATTR)
        ]
        failed = sum(t.state == optuna.trial.TrialState.FAIL for t in trials)
        if len(trials) >= self.min_trials_for_failure_rate and failed / len(trials) > self.max_failure_rate:
            self._stop_reason = (
                f"stopping the sweep: {failed} of {len(trials)} trials failed (more than "
                f"max_failure_rate={self.max_failure_rate}); see `fail_reason` in {_results.RESULTS_FILE}"
            )


def _suggest(trial: optuna.Trial, name: str, dist: Any) -> Any:
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, optuna.distributions.IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def _ends(distribution: Any) -> list[Any]:
    """The values that bound a distribution: every choice, or the two ends of a range."""
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return list(distribution.choices)
    return [distribution.low, distribution.high]


def _container(node: DictConfig | None) -> dict[str, Any]:
    return cast(dict[str, Any], OmegaConf.to_container(node, resolve=True)) if node else {}


def _trial_count(storage: optuna.storages.BaseStorage, study_name: str) -> int:
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False))


def _flat(config: DictConfig) -> dict[str, Any]:
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


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _exit_with(message: str) -> None:
    log.error("%s", message)
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)
