"""The BOHB sweep: (resume a promoted configuration | ask for a new one) -> launch -> tell, with N
workers and no batch barrier.

Each worker launches one trial at a time through Hydra's launcher and takes its next work as soon as
its trial ends, so a trial paused or pruned after one epoch frees its worker at once. The job finds its
trial through the shared storage (`client.current_trial`), reports every epoch and goes on, pauses or
stops as the study's scheduler decides (_study/scheduling.py). Settings, preflight, the study and the quota
live in their own modules.
"""

from __future__ import annotations

import logging
import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.hydra_bohb_sweeper import names
from hydra_plugins.hydra_bohb_sweeper._integrations.sweep_run import SweepRun, sweep_record
from hydra_plugins.hydra_bohb_sweeper._outputs import ending as _ending
from hydra_plugins.hydra_bohb_sweeper._running import checkpoints as _checkpoints
from hydra_plugins.hydra_bohb_sweeper._running import console as _console
from hydra_plugins.hydra_bohb_sweeper._running.jobs import identity_overrides
from hydra_plugins.hydra_bohb_sweeper._running.outcome import Outcome, one_line, outcome_of
from hydra_plugins.hydra_bohb_sweeper._running.progress import Progress
from hydra_plugins.hydra_bohb_sweeper._running.quota import NEW, PROMOTE, STOP, WAIT, Step, TrialQuota
from hydra_plugins.hydra_bohb_sweeper._setup.custom_search_space import custom_overrides
from hydra_plugins.hydra_bohb_sweeper._setup.preflight import budget_override, prepare
from hydra_plugins.hydra_bohb_sweeper._setup.search_space import SearchSpaceError, suggest
from hydra_plugins.hydra_bohb_sweeper._setup.settings import SweepConfigError
from hydra_plugins.hydra_bohb_sweeper._study import scheduling as _scheduling
from hydra_plugins.hydra_bohb_sweeper._study.open import keep_password_out_of_files, open_study, storage_url
from hydra_plugins.hydra_bohb_sweeper._study.storage import redact

log = logging.getLogger(__name__)
States = optuna.trial.TrialState
INTERRUPTED = "interrupted"


class BOHBSweep:
    def __init__(self, **raw_settings: Any) -> None:
        self.raw_settings = raw_settings
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a trial ended: waiting workers look again
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
        self.settings, self.space, self.scheduler = settings, space, settings.scheduler
        self.storage = study._storage
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        # Paused configurations' checkpoints, in the sweep directory (the shared filesystem under SLURM).
        self.checkpoints = self.sweep_dir.resolve() / names.CHECKPOINTS_DIR if self.scheduler.pauses else None
        # Added to every job's overrides: its log goes to its own file rather than the console.
        self.logging_overrides = _console.quiet(self.config, self.sweep_dir) if quiet else []
        study.set_user_attr(names.SEARCH_SPACE_ATTR, {k: repr(d) for k, d in space.distributions.items()})
        if settings.objectives:
            objective = settings.objectives if settings.multi_objective else settings.objectives[0]
            study.set_user_attr(names.OBJECTIVE_ATTR, objective)
        self.quota = TrialQuota(study, heartbeat_storage, settings.n_trials)
        tally = self.quota.tally()
        log.info(
            "BOHB: study %r in %s: %d of %d configurations started%s; %d worker(s); budget %d epochs; "
            "%d parameters; %s",
            settings.study_name, redact(self.storage_url), tally.configurations, settings.n_trials,
            f", {tally.running} trial(s) running elsewhere" if tally.running else "", self._n_workers(),
            settings.budget, len(space.distributions), self.scheduler.describe(len(settings.directions)),
        )  # fmt: skip
        self.progress = Progress(settings.n_trials, settings.budget)
        wandb_settings = (
            OmegaConf.select(self.config, settings.tracking_key) if settings.tracking_key else None
        )
        record = sweep_record(settings, space, self._shown_storage)
        self.sweep_run = SweepRun.start(wandb_settings, self.sweep_dir, settings.study_name, record)
        end = _ending.SweepEnd(
            study=study, settings=settings, space=space, sweep_dir=self.sweep_dir, launcher=self.launcher,
            storage_url=self.storage_url, shown_storage=self._shown_storage,
            logging_overrides=self.logging_overrides, sweep_run=self.sweep_run, checkpoints=self.checkpoints,
        )  # fmt: skip
        self.quota.start_heartbeats()
        try:
            self._run_workers(study)
        except BaseException as exc:
            self._stop_reason = self._stop_reason or f"the sweep stopped: {one_line(exc)}"
            raise
        finally:
            self.quota.stop_heartbeats()
            end.stop_reason = self._stop_reason
            _ending.run(end)
        if self._stop_reason == INTERRUPTED:
            kept = self.quota.tally().settled
            configs = "1 configuration is" if kept == 1 else f"{kept} configurations are"
            exit_with(
                f"interrupted: {configs} kept (paused ones stay resumable; the trial interrupted is "
                f"failed); {self._resume_hint()}"
            )
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
        """Run trials until the quota is spent and nothing is left to resume: no waiting for other
        workers, except when there is nothing to do until a trial in flight ends."""
        while True:
            with self._lock:
                if self._stop_reason:
                    return
                step = self.quota.next_step(self.scheduler, self._resumable)
                if step.kind == STOP:
                    return
                if step.kind == WAIT:
                    # This sweeper's trials wake it when they end; other sweepers' are polled.
                    self._changed.wait(timeout=max(1.0, (self.quota.heartbeats or 2) / 2))
                    continue
                started = self._start(study, step)
                if started is None:
                    continue
                trial, overrides = started
                self.quota.started(trial)
            outcome, output_dir = self._launch(trial, overrides)
            with self._lock:
                frozen = self._tell(study, trial, outcome, output_dir)
                self.quota.ended(trial)
                trials = study.get_trials(deepcopy=False)
                configs = _scheduling.configurations(trials)
                if self.checkpoints is not None:
                    _checkpoints.tidy(configs.get(_scheduling.config_number(frozen)))
                self.progress.trial_finished(study, frozen, configs)
                self.sweep_run.trial_finished(study, frozen, self.progress.elapsed())
                self._check_failure_rate(configs)
                self._changed.notify_all()

    def _resumable(self, config: _scheduling.Configuration) -> bool:
        """A paused configuration this sweeper can resume: its checkpoint is on this filesystem (several
        machines sharing a study each resume their own without a shared filesystem)."""
        return config.checkpoint is not None and Path(config.checkpoint["path"]).exists()

    def _start(self, study: optuna.Study, step: Step) -> tuple[optuna.Trial, list[str]] | None:
        """The trial to launch for `step` and its overrides; None when another sweeper took it first."""
        if step.kind == PROMOTE:
            assert step.promote is not None
            trial = self._continuation(study, step.promote, step.to_budget)
            if trial is None:
                return None
        else:
            trial = study.ask()  # a queued trial first (a retry), else a new one from the sampler
            if names.CONFIG_ATTR not in trial.user_attrs:  # a new configuration
                index = self.quota.index_of(trial)
                if step.kind == NEW and index >= self.settings.n_trials:
                    # Another sweeper took the last slot first.
                    trial.set_user_attr(names.SURPLUS_ATTR, True)
                    study.tell(trial, state=States.FAIL)
                    return None
                trial.set_user_attr(names.CONFIG_ATTR, trial.number)
                trial.set_user_attr(names.BRACKET_ATTR, self.scheduler.bracket_of(index))
        return trial, self._overrides(trial)

    def _continuation(
        self, study: optuna.Study, config: _scheduling.Configuration, to_budget: bool = False
    ) -> optuna.Trial | None:
        """A new trial that continues `config` from its checkpoint (the same parameters), or None when
        another sweeper resumed it first. Sweepers that decide at once both create one; the lower trial
        number wins, the same way in every sweeper, and the other is never run."""
        paused, checkpoint = config.last, dict(config.checkpoint or {})
        template = optuna.trial.create_trial(
            state=States.RUNNING,
            params=paused.params,
            distributions=paused.distributions,
            user_attrs={
                names.CONFIG_ATTR: config.number,
                names.BRACKET_ATTR: config.bracket,
                names.RESUME_ATTR: {"trial": paused.number, **checkpoint, "to_budget": to_budget},
            },
        )
        trial_id = self.storage.create_new_trial(self.quota.study_id, template)
        trial = optuna.Trial(study, trial_id)
        rivals = [
            t.number
            for t in study.get_trials(deepcopy=False)
            if (t.user_attrs.get(names.RESUME_ATTR) or {}).get("trial") == paused.number
            and not t.user_attrs.get(names.SURPLUS_ATTR)
        ]
        if min(rivals) != trial.number:
            trial.set_user_attr(names.SURPLUS_ATTR, True)
            study.tell(trial, state=States.FAIL)
            return None
        return trial

    def _overrides(self, trial: optuna.Trial) -> list[str]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # A continuation or a retry has its parameters already: suggest() returns them.
            params = self.space.sample(lambda name, dist: suggest(trial, name, dist))
        # The parameters that the app's hydra.sweeper.custom_search_space adds (define-by-run).
        custom = custom_overrides(self.settings, self.space, self.config, trial, params)
        overrides = [*self.space.overrides(params), *custom, *budget_override(self.settings)]
        trial.set_user_attr(names.OVERRIDES_ATTR, [redact(o) for o in overrides])
        extra = {names.ENV_CONFIG: str(trial.user_attrs.get(names.CONFIG_ATTR, trial.number))}
        if self.checkpoints is not None:
            extra[names.ENV_CHECKPOINTS] = str(self.checkpoints)
        identity = identity_overrides(
            self.settings.study_name, self._shown_storage, names.TRIAL, self.settings.budget, trial.number,
            extra,
        )  # fmt: skip
        return [*overrides, *identity, *self.logging_overrides]

    def _launch(self, trial: optuna.Trial, overrides: list[str]) -> tuple[Outcome, str | None]:
        try:
            ret = self.launcher.launch([overrides], initial_job_idx=trial.number)[0]
            outcome = outcome_of(ret, self.settings.objectives, len(self.settings.directions))
            return outcome, (ret.hydra_cfg.hydra.runtime.output_dir if ret.hydra_cfg else None)
        except KeyboardInterrupt:
            self._stop_reason = INTERRUPTED
            return Outcome(States.FAIL, reason=INTERRUPTED), None
        except SystemExit as exc:  # a job in this process exited; Lightning exits so on Ctrl-C
            if isinstance(exc.__context__, KeyboardInterrupt):
                self._stop_reason = INTERRUPTED
                return Outcome(States.FAIL, reason=INTERRUPTED), None
            return Outcome(States.FAIL, reason=one_line(exc)), None
        except Exception as exc:  # a launcher failure is this trial's failure, not the sweep's
            return Outcome(States.FAIL, reason=one_line(exc)), None

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
        if outcome.paused:
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.quota.study_id, trial.number)
            checkpoint = _checkpoints.saved(self.storage.get_trial(trial_id))
            if checkpoint is not None:
                trial.set_user_attr(names.PAUSED_ATTR, checkpoint)
            else:
                log.warning(
                    "BOHB: trial %d paused without a checkpoint of its last epoch "
                    "(client.SweepTrial.save_checkpoint); it is stopped instead",
                    trial.number,
                )
        return study.tell(trial, state=outcome.state)

    def _check_failure_rate(self, configs: dict[int, _scheduling.Configuration]) -> None:
        settled = [c for c in configs.values() if c.state != _scheduling.RUNNING]
        failed = sum(c.state == _scheduling.FAILED for c in settled)
        settings = self.settings
        if (
            len(settled) >= settings.min_trials_for_failure_rate
            and failed / len(settled) > settings.max_failure_rate
        ):
            last = max((c.last for c in settled if c.state == _scheduling.FAILED), key=lambda t: t.number)
            reason = last.user_attrs.get(names.FAIL_REASON_ATTR, "no reason recorded")
            self._stop_reason = self._stop_reason or (
                f"stopping the sweep: {failed} of {len(settled)} configurations failed (more than "
                f"max_failure_rate={settings.max_failure_rate}), the last with {reason}; see `fail_reason` "
                f"in {names.RESULTS_FILE}"
            )


def exit_with(message: str) -> None:
    log.error("%s", message)
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)
