"""The BOHB sweep as Hydra runs it: settings and preflight, the study, the workers (threads, each
running `SweepLoop.work`), jobs launched through Hydra's launcher, and the end of the sweep.

The job finds its trial through the shared storage (`client.current_trial`), reports every epoch and
goes on, pauses or stops as the study's scheduler decides (_study/scheduling.py). Settings, preflight,
the study, the loop and its heartbeats live in their own modules.
"""

from __future__ import annotations

import logging
import sys
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
from hydra_plugins.hydra_bohb_sweeper._outputs.pareto import objective_names
from hydra_plugins.hydra_bohb_sweeper._running import console as _console
from hydra_plugins.hydra_bohb_sweeper._running.heartbeats import Heartbeats
from hydra_plugins.hydra_bohb_sweeper._running.jobs import identity_overrides
from hydra_plugins.hydra_bohb_sweeper._running.loop import INTERRUPTED, SweepLoop
from hydra_plugins.hydra_bohb_sweeper._running.outcome import Outcome, one_line, outcome_of
from hydra_plugins.hydra_bohb_sweeper._running.progress import Progress
from hydra_plugins.hydra_bohb_sweeper._running.workers import run_on_workers
from hydra_plugins.hydra_bohb_sweeper._setup.custom_search_space import custom_overrides
from hydra_plugins.hydra_bohb_sweeper._setup.preflight import budget_override, prepare
from hydra_plugins.hydra_bohb_sweeper._setup.search_space import SearchSpaceError, suggest
from hydra_plugins.hydra_bohb_sweeper._setup.settings import SweepConfigError
from hydra_plugins.hydra_bohb_sweeper._study.open import (
    keep_password_out_of_files,
    open_study,
    storage_url,
    with_study_directions,
)
from hydra_plugins.hydra_bohb_sweeper._study.storage import redact
from hydra_plugins.hydra_bohb_sweeper._study.view import INTERRUPTED as CONFIG_INTERRUPTED
from hydra_plugins.hydra_bohb_sweeper._study.view import RUNNING, StudyView

log = logging.getLogger("hydra_plugins.hydra_bohb_sweeper._running.loop")  # the sweep's own log lines


class BOHBSweep:
    def __init__(self, **raw_settings: Any) -> None:
        self.raw_settings = raw_settings

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
                study = open_study(settings, self.storage_url)
            settings = with_study_directions(settings, study)
        except (SweepConfigError, SearchSpaceError) as exc:
            exit_with(str(exc))
        self.settings, self.space, self.scheduler = settings, space, settings.scheduler
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        # Paused configurations' checkpoints, in the sweep directory (the shared filesystem under SLURM).
        self.checkpoints = self.sweep_dir.resolve() / names.CHECKPOINTS_DIR if self.scheduler.pauses else None
        # Added to every job's overrides: its log goes to its own file rather than the console.
        self.logging_overrides = _console.quiet(self.config, self.sweep_dir) if quiet else []
        study.set_user_attr(names.SEARCH_SPACE_ATTR, {k: repr(d) for k, d in space.distributions.items()})
        if settings.objectives:
            objective = settings.objectives if settings.multi_objective else settings.objectives[0]
            study.set_user_attr(names.OBJECTIVE_ATTR, objective)
        assert settings.heartbeat_interval is not None
        self.progress = Progress(settings.n_trials, settings.budget)
        self.loop = SweepLoop(
            study, self.scheduler, settings.n_trials, Heartbeats(study._storage, settings.heartbeat_interval),
            self._run_trial, self.checkpoints, self._told, settings.max_failure_rate,
            settings.min_trials_for_failure_rate,
        )  # fmt: skip
        view = self.loop.read()
        running = len(view.running)
        log.info(
            "BOHB: study %r in %s: %s; %d worker(s); %d parameters; %s",
            settings.study_name, redact(self.storage_url), self._started(view, running),
            self._n_workers(), len(space.distributions), self._schedule(view),
        )  # fmt: skip
        wandb_settings = (
            OmegaConf.select(self.config, settings.tracking_key) if settings.tracking_key else None
        )
        record = sweep_record(settings, space, self._shown_storage)
        self.sweep_run = SweepRun.start(wandb_settings, self.sweep_dir, settings.study_name, record)
        self.objective_names = objective_names(study)
        end = _ending.SweepEnd(
            study=study, settings=settings, space=space, sweep_dir=self.sweep_dir, launcher=self.launcher,
            storage_url=self.storage_url, shown_storage=self._shown_storage,
            logging_overrides=self.logging_overrides, sweep_run=self.sweep_run, checkpoints=self.checkpoints,
            n_workers=self._n_workers(),
        )  # fmt: skip
        self.loop.heartbeats.start()
        try:
            self._run_workers()
        except BaseException as exc:
            self.loop.stop_reason = self.loop.stop_reason or f"the sweep stopped: {one_line(exc)}"
            raise
        finally:
            self.loop.heartbeats.stop()
            end.stop_reason = self.loop.stop_reason
            _ending.run(end)
        if self.loop.stop_reason == INTERRUPTED:
            configs = StudyView.read(study._storage, self.loop.study_id).configurations.values()
            resume = sum(c.state == CONFIG_INTERRUPTED for c in configs)
            ended = sum(c.state not in (RUNNING, CONFIG_INTERRUPTED) for c in configs)
            exit_with(
                f"interrupted: {ended + resume} configurations kept ({ended} ended or paused, {resume} to "
                f"resume from where its trial started); {self._resume_hint()}"
            )
        if self.loop.stop_reason:
            exit_with(self.loop.stop_reason)
        if end.interrupted:
            exit_with(
                f"interrupted in the {end.interrupted}: what it finished is kept and not run again; "
                f"{self._resume_hint()}"
            )

    def _started(self, view: StudyView, running: int) -> str:
        started = len(view.configurations)
        if started >= self.settings.n_trials and not running:
            more = 2 * self.settings.n_trials
            return (
                f"{started} of {self.settings.n_trials} configurations already, nothing to run (n_trials "
                f"counts the study's configurations; hydra.sweeper.n_trials={more} adds {more - started})"
            )
        elsewhere = f", {running} trial(s) running elsewhere" if running else ""
        return f"{started} of {self.settings.n_trials} configurations started{elsewhere}"

    def _schedule(self, view: StudyView) -> str:
        """The budget and the scheduler, for jobs that report epochs. An app that gets no budget
        (budget_key unset) and whose trials reported no epoch so far runs each job to its end: it
        is not told about rungs it never had."""
        reported = any(c.values for c in view.configurations.values())
        if self.settings.budget_key is None and not reported:
            return (
                "each job runs to its end (it reports no epochs; Hyperband compares jobs that report them "
                "through hydra_plugins.hydra_bohb_sweeper.client)"
            )
        schedule = self.scheduler.describe(len(self.settings.directions))
        return f"budget {self.settings.budget} epochs; {schedule}"

    def _resume_hint(self) -> str:
        if self.settings.storage is None:
            return f"to resume, run the same command with hydra.sweep.dir={self.sweep_dir}"
        return (
            f"to resume, run the same command (study {self.settings.study_name!r} in {self._shown_storage})"
        )

    @property
    def _shown_storage(self) -> str:
        return str(redact(self.storage_url))

    def _told(self, trial: optuna.trial.FrozenTrial, view: StudyView) -> None:
        self.progress.trial_finished(trial, view)
        self.sweep_run.trial_finished(trial, view, self.objective_names, self.progress.elapsed())

    # ---------------------------------------------------------------- workers
    def _n_workers(self) -> int:
        # The basic launcher runs jobs inside this process: one at a time is the only safe way.
        return 1 if type(self.launcher).__name__ == "BasicLauncher" else self.settings.n_jobs

    def _run_workers(self) -> None:
        n_workers = self._n_workers()
        if self.settings.n_jobs > 1 and n_workers == 1:
            log.warning(
                "BOHB: n_jobs=%d needs a process launcher (hydra/launcher=joblib); running 1",
                self.settings.n_jobs,
            )
        if n_workers == 1:
            self.loop.work()  # main thread: Ctrl-C reaches the job
            return
        errors: list[BaseException] = []

        def guarded() -> None:
            try:
                self.loop.work()
            except BaseException as exc:
                errors.append(exc)
                self.loop.stop_reason = self.loop.stop_reason or f"a sweep worker crashed: {one_line(exc)}"

        def interrupted() -> None:
            self.loop.stop_reason = INTERRUPTED
            log.warning("BOHB: interrupted; waiting for the trials in flight to finish")

        run_on_workers(guarded, n_workers, "bohb-worker", interrupted)
        if errors and self.loop.stop_reason != INTERRUPTED:
            raise errors[0]

    # ---------------------------------------------------------------- one trial's job
    def _run_trial(self, trial: optuna.Trial) -> tuple[Outcome, str | None]:
        """Launch the trial's job through Hydra's launcher (a launcher's failure raises)."""
        try:
            overrides = self._overrides(trial)
        except Exception as exc:  # the app's custom_search_space, say: this configuration's own failure
            return Outcome(optuna.trial.TrialState.FAIL, reason=one_line(exc)), None
        ret = self.launcher.launch([overrides], initial_job_idx=trial.number)[0]
        outcome = outcome_of(ret, self.settings.objectives, len(self.settings.directions))
        return outcome, (ret.hydra_cfg.hydra.runtime.output_dir if ret.hydra_cfg else None)

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


def exit_with(message: str) -> None:
    log.error("%s", message)
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)
