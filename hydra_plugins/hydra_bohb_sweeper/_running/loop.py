"""One sweeper's workers carrying out the scheduler's steps: read the study -> next step -> claim ->
launch -> tell, with N workers and no batch barrier.

Each worker takes its next step as soon as its trial ends, so a trial paused or stopped after one
epoch frees its worker at once. Every decision is the scheduler's (_study/scheduling.py), made from one
view of the study (_study/view.py); the loop holds none of its own. A worker's step reads the study
once (the read after a tell serves the console and the next decision alike), plus once more to confirm
a claim (_running/claims.py). Heartbeats (_running/heartbeats.py) find the trials of sweepers that
died; the view's stale and lost trials are failed before a decision is made from it.

Nothing here knows Hydra: `run_trial` launches a trial's job and returns its outcome, so the Hydra
sweeper (_running/sweep.py) and the fault simulation (tests/simulation) drive the same loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from hydra_plugins.hydra_bohb_sweeper import names
from hydra_plugins.hydra_bohb_sweeper._running import checkpoints as _checkpoints
from hydra_plugins.hydra_bohb_sweeper._running import claims as _claims
from hydra_plugins.hydra_bohb_sweeper._running.heartbeats import Heartbeats, end_with_fault
from hydra_plugins.hydra_bohb_sweeper._running.outcome import Outcome, one_line
from hydra_plugins.hydra_bohb_sweeper._study import scheduling as _scheduling
from hydra_plugins.hydra_bohb_sweeper._study.view import FAILED, RUNNING, StudyView

log = logging.getLogger(__name__)
States = optuna.trial.TrialState
INTERRUPTED = "interrupted"  # the stop reason of a sweep stopped by Ctrl-C
RunTrial = Callable[[optuna.Trial], tuple[Outcome, str | None]]  # -> its outcome, its output directory
Told = Callable[[optuna.trial.FrozenTrial, StudyView], None]


class SweepLoop:
    def __init__(
        self, study: optuna.Study, scheduler: _scheduling.Scheduler, n_trials: int,
        heartbeats: Heartbeats, run_trial: RunTrial, checkpoints: Path | None = None,
        on_told: Told = lambda trial, view: None, max_failure_rate: float = 1.0,
        min_trials_for_failure_rate: int = 5, condition: Any = None,
        sees: Callable[[str], bool] = lambda path: Path(path).exists(),
    ) -> None:  # fmt: skip
        self.study, self.scheduler, self.n_trials = study, scheduler, n_trials
        self.storage = study._storage
        self.study_id = self.storage.get_study_id_from_name(study.study_name)
        self.directions = [d.name.lower() for d in study.directions]
        self.heartbeats, self.run_trial, self.checkpoints = heartbeats, run_trial, checkpoints
        self.on_told = on_told
        self.max_failure_rate, self.min_trials_for_failure_rate = (
            max_failure_rate,
            min_trials_for_failure_rate,
        )
        # Held while deciding, claiming and telling; a worker waits on it for a trial to end.
        self.condition = condition if condition is not None else threading.Condition()
        self.sees = sees
        self.stop_reason: str | None = None

    # ---------------------------------------------------------------- the view
    def read(self) -> StudyView:
        """The study now, with the trials that will never report again failed first: those whose
        sweeper stopped beating (their configurations are retried) and claims that lost."""
        view = StudyView.read(self.storage, self.study_id, self.n_trials, self.sees, self.directions)
        failed = self.heartbeats.fail(self.heartbeats.stale(view))
        if _claims.abandon_lost_claims(self.storage, view) or failed:
            view = StudyView.read(self.storage, self.study_id, self.n_trials, self.sees, self.directions)
        for number in failed:
            if (config := view.config_of(number)) is not None:
                log.warning(
                    "BOHB: trial %d of configuration #%d stopped sending heartbeats (its sweeper died or "
                    "was suspended); it is retried from where it started", number, config.number,
                )  # fmt: skip
                self._tidy(config)
        return view

    # ---------------------------------------------------------------- a worker
    def work(self) -> None:
        """Carry out steps until the scheduler says DONE or the sweep stops."""
        condition, holding = self.condition, False
        try:
            condition.acquire()
            holding = True
            view = self.read()
            while not self.stop_reason:
                step = self.scheduler.next_step(view, self.heartbeats.own)
                if step.kind == _scheduling.DONE:
                    return
                if step.kind == _scheduling.WAIT:
                    # This sweeper's trials wake it when they end; other sweepers' are polled.
                    condition.wait(timeout=max(1.0, self.heartbeats.interval / 2))
                    view = self.read()
                    continue
                held = self._claim(step)
                if held is None:  # another sweeper (or worker) took it first
                    view = self.read()
                    continue
                condition.release()
                holding = False
                try:
                    outcome, output_dir = self._launch(held)
                finally:
                    condition.acquire()
                    holding = True
                frozen = self._tell(held, outcome, output_dir)
                self.heartbeats.ended(held.number)
                view = self.read()
                self._tidy(view.config_of(frozen.number))
                self.on_told(frozen, view)
                self._check_failure_rate(view)
                condition.notify_all()
        except KeyboardInterrupt:  # Ctrl-C outside a job: between steps, while claiming or telling
            # Only the worker in the main thread meets it (with several, the main thread waits for them
            # instead): the trials this sweeper has in flight are this worker's, claimed or not yet told.
            self.stop_reason = INTERRUPTED
            for number, trial_id in self.heartbeats.in_flight().items():
                end_with_fault(self.storage, trial_id, names.FAULT_INTERRUPTED, "interrupted by Ctrl-C")
                self.heartbeats.ended(number)
        finally:
            if holding:
                condition.notify_all()
                condition.release()

    # ---------------------------------------------------------------- carrying a step out
    def _claim(self, step: _scheduling.Step) -> optuna.Trial | None:
        """The trial that carries `step` out, or None when another sweeper or worker claimed it first.
        A new trial beats from the moment it exists, so a sweeper killed right after is seen to be."""
        created: list[int] = []
        try:
            return self._claim_or_raise(step, created)
        except optuna.exceptions.UpdateFinishedTrialError:
            # This sweeper stalled past the grace period while claiming: another one failed the new trial
            # as stale, and the retry it gets is its configuration's (or it is surplus).
            for number in created:
                self.heartbeats.ended(number)
            return None

    def _claim_or_raise(self, step: _scheduling.Step, created: list[int]) -> optuna.Trial | None:
        if step.kind == _scheduling.NEW:
            trial = self.study.ask()  # a queued trial first (a user's enqueue_trial), else the sampler's
            created.append(trial.number)
            self.heartbeats.started(trial.number, trial._trial_id)
            if names.CONFIG_ATTR in trial.user_attrs:  # a retry queued by an earlier version
                return trial
            view = self.read()
            if not _claims.new_configuration_counts(view, trial.number):
                self._abandon(trial._trial_id, trial.number)
                return None
            trial.set_user_attr(names.CONFIG_ATTR, trial.number)
            trial.set_user_attr(names.BRACKET_ATTR, self.scheduler.bracket_of(view.index_of(trial.number)))
            return trial
        assert step.config is not None
        trial_id = _claims.create_segment(self.storage, self.study_id, step)
        number = self.storage.get_trial_number_from_id(trial_id)
        created.append(number)
        self.heartbeats.started(number, trial_id)
        if not _claims.segment_won(self.read(), number, step.config.last.number):
            self._abandon(trial_id, number)
            return None
        return optuna.Trial(self.study, trial_id)

    def _abandon(self, trial_id: int, number: int) -> None:
        _claims.abandon(self.storage, trial_id)
        self.heartbeats.ended(number)

    def _launch(self, trial: optuna.Trial) -> tuple[Outcome, str | None]:
        """Run the trial's job; a failure of the launcher (a worker process that died, a cancelled job)
        or Ctrl-C is a fault, retried, never the configuration's own failure."""
        try:
            outcome, output_dir = self.run_trial(trial)
        except KeyboardInterrupt:
            self.stop_reason = INTERRUPTED
            return Outcome(States.FAIL, reason="interrupted by Ctrl-C", fault=names.FAULT_INTERRUPTED), None
        except SystemExit as exc:  # a job in this process exited; Lightning exits so on Ctrl-C
            if isinstance(exc.__context__, KeyboardInterrupt):
                self.stop_reason = INTERRUPTED
                return Outcome(
                    States.FAIL, reason="interrupted by Ctrl-C", fault=names.FAULT_INTERRUPTED
                ), None
            return Outcome(States.FAIL, reason=one_line(exc)), None
        except (HydraException, OmegaConfBaseException) as exc:  # the job's config: its own failure
            return Outcome(States.FAIL, reason=one_line(exc)), None
        except Exception as exc:
            # Ctrl-C reaches the launcher's worker processes too, which then fail like dead ones.
            fault = names.FAULT_INTERRUPTED if self.stop_reason == INTERRUPTED else names.FAULT_WORKER
            return Outcome(States.FAIL, reason=one_line(exc), fault=fault), None
        if outcome.fault == names.FAULT_INTERRUPTED:
            self.stop_reason = INTERRUPTED
        elif self.stop_reason == INTERRUPTED and outcome.state == States.FAIL and not outcome.fault:
            # Ctrl-C reaches every process of the sweep: a job that failed meanwhile was most likely
            # stopped by it (a retry costs little if it was not).
            outcome.fault = names.FAULT_INTERRUPTED
        return outcome, output_dir

    def _tell(
        self, trial: optuna.Trial, outcome: Outcome, output_dir: str | None
    ) -> optuna.trial.FrozenTrial:
        try:
            if output_dir:
                trial.set_user_attr(names.OUTPUT_DIR_ATTR, str(output_dir))
            if outcome.reason:
                reason_attr = (
                    names.STOP_REASON_ATTR if outcome.state == States.PRUNED else names.FAIL_REASON_ATTR
                )
                trial.set_user_attr(reason_attr, outcome.reason)
            if outcome.metrics:
                trial.set_user_attr(names.METRICS_ATTR, outcome.metrics)
            if outcome.fault:
                trial.set_user_attr(names.FAULT_ATTR, outcome.fault)
            if outcome.state == States.COMPLETE:
                self.study.tell(trial, outcome.values)
            else:
                if outcome.paused:
                    self._record_pause(trial)
                self.study.tell(trial, state=outcome.state)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError):
            frozen = self.storage.get_trial(trial._trial_id)
            if not frozen.state.is_finished():
                raise
            log.warning(
                "BOHB: trial %d was failed as stale by another sweeper while it ran (was this one "
                "suspended?); a retry continues its configuration, and this result is dropped",
                trial.number,
            )
        return self.storage.get_trial(trial._trial_id)

    def _record_pause(self, trial: optuna.Trial) -> None:
        checkpoint = _checkpoints.saved(self.storage.get_trial(trial._trial_id))
        if checkpoint is not None:
            trial.set_user_attr(names.PAUSED_ATTR, checkpoint)
        else:
            log.warning(
                "BOHB: trial %d paused without a checkpoint of its last epoch "
                "(client.SweepTrial.save_checkpoint); it is stopped instead",
                trial.number,
            )

    def _tidy(self, config: Any) -> None:
        if self.checkpoints is not None:
            _checkpoints.tidy(config, self.checkpoints)

    def _check_failure_rate(self, view: StudyView) -> None:
        settled = [c for c in view.configurations.values() if c.state != RUNNING]
        failed = sum(c.state == FAILED for c in settled)
        if len(settled) >= self.min_trials_for_failure_rate and failed / len(settled) > self.max_failure_rate:
            last = max((c.last for c in settled if c.state == FAILED), key=lambda t: t.number)
            reason = last.user_attrs.get(names.FAIL_REASON_ATTR, "no reason recorded")
            self.stop_reason = self.stop_reason or (
                f"stopping the sweep: {failed} of {len(settled)} configurations failed (more than "
                f"max_failure_rate={self.max_failure_rate}), the last with {reason}; see `fail_reason` "
                f"in {names.RESULTS_FILE}"
            )
