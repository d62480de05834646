"""The BOHB sweep: ask -> launch -> tell, with N workers and no batch barrier.

Each worker launches one trial at a time through Hydra's launcher and asks for the next trial as soon
as its trial ends, so a trial pruned after one epoch frees its worker at once. The job finds its trial
through the shared storage (`client.current_trial`), reports every epoch and is pruned by the same
pruner the sweeper uses. Settings, preflight, the study and the trial quota live in their own modules.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.hydra_bohb_sweeper import _console, _final, _outputs, _results, names
from hydra_plugins.hydra_bohb_sweeper._jobs import identity_overrides
from hydra_plugins.hydra_bohb_sweeper._outcome import Outcome, one_line, outcome_of
from hydra_plugins.hydra_bohb_sweeper._preflight import budget_override, prepare
from hydra_plugins.hydra_bohb_sweeper._progress import Progress
from hydra_plugins.hydra_bohb_sweeper._quota import FINISHED, TrialQuota
from hydra_plugins.hydra_bohb_sweeper._search_space import SearchSpaceError
from hydra_plugins.hydra_bohb_sweeper._settings import SweepConfigError
from hydra_plugins.hydra_bohb_sweeper._storage import redact
from hydra_plugins.hydra_bohb_sweeper._study import keep_password_out_of_files, open_study, storage_url
from hydra_plugins.hydra_bohb_sweeper._sweep_run import SweepRun, sweep_record

log = logging.getLogger(__name__)
States = optuna.trial.TrialState
INTERRUPTED = "interrupted"


class BOHBSweep:
    def __init__(self, **raw_settings: Any) -> None:
        self.raw_settings = raw_settings
        self._lock = threading.Lock()
        self._stop_reason: str | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.config_loader = hydra_context.config_loader
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self.sweep_dir = Path(config.hydra.sweep.dir)

    def _compose(self, overrides: Sequence[str]) -> DictConfig:
        return self.config_loader.load_sweep_config(self.config, list(overrides))

    # ---------------------------------------------------------------- entry point
    def sweep(self, arguments: Sequence[str]) -> None:
        keep_password_out_of_files(self.config, self.raw_settings.get("storage"))
        try:
            settings, space = prepare(
                self.raw_settings, str(self.config.hydra.job.name), arguments, self.config, self._compose
            )
            self.storage_url = storage_url(settings, self.sweep_dir)
            quiet = _console.wants_quiet(settings.console, self.config.hydra.verbose)
            with _console.optuna_warnings_only(quiet):
                study, heartbeat_storage = open_study(settings, self.storage_url)
        except (SweepConfigError, SearchSpaceError) as exc:
            exit_with(str(exc))
        self.settings, self.space = settings, space
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        # Added to every job's overrides: its log goes to its own file rather than the console.
        self.logging_overrides = _console.quiet(self.config, self.sweep_dir) if quiet else []
        study.set_user_attr(names.SEARCH_SPACE_ATTR, {k: repr(d) for k, d in space.distributions.items()})
        if settings.objectives:
            objective = settings.objectives if settings.multi_objective else settings.objectives[0]
            study.set_user_attr(names.OBJECTIVE_ATTR, objective)
        self.quota = TrialQuota(study, heartbeat_storage, settings.n_trials)
        tally = self.quota.tally()
        running = tally.running + tally.waiting
        log.info(
            "BOHB: study %r in %s: %d of %d trials finished%s; up to %d more with %d worker(s); "
            "budget %d epochs; %d parameters",
            settings.study_name, redact(self.storage_url), tally.finished, settings.n_trials,
            f", {running} running elsewhere" if running else "",
            max(0, settings.n_trials - tally.finished - running), self._n_workers(), settings.budget,
            len(space.distributions),
        )  # fmt: skip
        self.progress = Progress(settings.n_trials, tally.finished, settings.budget)
        wandb_settings = (
            OmegaConf.select(self.config, settings.tracking_key) if settings.tracking_key else None
        )
        record = sweep_record(settings, space, self._shown_storage)
        self.sweep_run = SweepRun.start(wandb_settings, self.sweep_dir, settings.study_name, record)
        final = None
        self.quota.start_heartbeats()
        try:
            self._run_workers(study)
            if settings.final_evaluation_enabled and not self._stop_reason:
                final = _final.run(
                    self.launcher,
                    study,
                    self.sweep_dir,
                    settings,
                    space,
                    self._shown_storage,
                    self.logging_overrides,
                )
        finally:
            self.quota.stop_heartbeats()
            _outputs.write(
                study, self.sweep_dir, settings, self.storage_url, self._stop_reason, final, self.sweep_run
            )
        if self._stop_reason == INTERRUPTED:
            kept = self.quota.tally().finished
            trials = "1 trial is" if kept == 1 else f"{kept} trials are"
            exit_with(f"interrupted: {trials} kept (the one interrupted as failed); {self._resume_hint()}")
        if self._stop_reason:
            exit_with(self._stop_reason)

    def _resume_hint(self) -> str:
        if self.settings.storage is None:
            return f"to resume, run the same command with hydra.sweep.dir={self.sweep_dir}"
        return (
            f"to resume, run the same command (study {self.settings.study_name!r} in {self._shown_storage})"
        )

    @property
    def _shown_storage(self) -> str:
        return str(redact(self.storage_url))

    # ---------------------------------------------------------------- workers
    def _n_workers(self) -> int:
        # The basic launcher runs jobs inside this process: one at a time is the only safe way.
        return 1 if type(self.launcher).__name__ == "BasicLauncher" else self.settings.n_jobs

    def _run_workers(self, study: optuna.Study) -> None:
        n_workers = self._n_workers()
        if self.settings.n_jobs > 1 and n_workers == 1:
            log.warning(
                "BOHB: n_jobs=%d needs a process launcher (hydra/launcher=joblib); running 1",
                self.settings.n_jobs,
            )
        if n_workers == 1:
            self._worker(study)  # main thread: Ctrl-C reaches the job
            return
        errors: list[BaseException] = []

        def guarded() -> None:
            try:
                self._worker(study)
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
            self._stop_reason = INTERRUPTED
            log.warning("BOHB: interrupted; waiting for the trials in flight to finish")
            for thread in threads:
                thread.join()
        if errors and self._stop_reason != INTERRUPTED:
            raise errors[0]

    def _worker(self, study: optuna.Study) -> None:
        """Run trials until the study's quota is spent: ask, launch, tell; no waiting for other workers."""
        while True:
            with self._lock:
                if self._stop_reason:
                    return
                claim = self.quota.claim()
                if claim == "stop":
                    return
                if claim == "run":
                    trial, overrides = self._ask(study)
                    if self.quota.is_surplus(trial):  # another sweeper took the last slot first
                        trial.set_user_attr(names.SURPLUS_ATTR, True)
                        study.tell(trial, state=States.FAIL)
                        continue
                    self.quota.started(trial)
            if claim == "wait":  # other sweepers' trials may still die and be retried here
                time.sleep(max(1.0, (self.quota.heartbeats or 2) / 2))
                continue
            output_dir = None
            try:
                ret = self.launcher.launch([overrides], initial_job_idx=trial.number)[0]
                outcome = outcome_of(ret, self.settings.objectives, len(self.settings.directions))
                output_dir = ret.hydra_cfg.hydra.runtime.output_dir if ret.hydra_cfg else None
            except KeyboardInterrupt:
                outcome = Outcome(States.FAIL, reason=INTERRUPTED)
                self._stop_reason = INTERRUPTED
            except SystemExit as exc:  # a job in this process exited; Lightning exits so on Ctrl-C
                if isinstance(exc.__context__, KeyboardInterrupt):
                    outcome, self._stop_reason = Outcome(States.FAIL, reason=INTERRUPTED), INTERRUPTED
                else:
                    outcome = Outcome(States.FAIL, reason=one_line(exc))
            except Exception as exc:  # a launcher failure is this trial's failure, not the sweep's
                outcome = Outcome(States.FAIL, reason=one_line(exc))
            with self._lock:
                frozen = self._tell(study, trial, outcome, output_dir)
                self.quota.ended(trial)
                self.progress.trial_finished(study, frozen, self.quota.tally().finished)
                self.sweep_run.trial_finished(study, frozen, self.progress.elapsed())
                self._check_failure_rate(study)

    def _ask(self, study: optuna.Study) -> tuple[optuna.Trial, list[str]]:
        trial = study.ask()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            params = self.space.sample(lambda name, dist: suggest(trial, name, dist))
        overrides = [*self.space.overrides(params), *budget_override(self.settings)]
        trial.set_user_attr(names.OVERRIDES_ATTR, [redact(o) for o in overrides])
        identity = identity_overrides(
            self.settings.study_name, self._shown_storage, names.TRIAL, self.settings.budget, trial.number
        )
        return trial, [*overrides, *identity, *self.logging_overrides]

    def _tell(
        self, study: optuna.Study, trial: optuna.Trial, outcome: Outcome, output_dir: str | None
    ) -> optuna.trial.FrozenTrial:
        if output_dir:
            trial.set_user_attr(names.OUTPUT_DIR_ATTR, str(output_dir))
        if outcome.reason:
            trial.set_user_attr(names.FAIL_REASON_ATTR, outcome.reason)
        if outcome.metrics:
            trial.set_user_attr(names.METRICS_ATTR, outcome.metrics)
        if outcome.state == States.COMPLETE:
            return study.tell(trial, outcome.values)
        return study.tell(trial, state=outcome.state)

    def _check_failure_rate(self, study: optuna.Study) -> None:
        trials = [t for t in _results.counted(study) if t.state in FINISHED]
        failed = sum(t.state == States.FAIL for t in trials)
        settings = self.settings
        if (
            len(trials) >= settings.min_trials_for_failure_rate
            and failed / len(trials) > settings.max_failure_rate
        ):
            self._stop_reason = self._stop_reason or (
                f"stopping the sweep: {failed} of {len(trials)} trials failed (more than "
                f"max_failure_rate={settings.max_failure_rate}); see `fail_reason` in {names.RESULTS_FILE}"
            )


def suggest(trial: optuna.Trial, name: str, dist: Any) -> Any:
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, optuna.distributions.IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def exit_with(message: str) -> None:
    log.error("%s", message)
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)
