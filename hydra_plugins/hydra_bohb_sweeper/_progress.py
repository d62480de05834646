"""One concise line per finished trial: progress of the sweep, the trial's outcome, the best so far."""

from __future__ import annotations

import logging
import time

import optuna

from hydra_plugins.hydra_bohb_sweeper._results import epochs_trained
from hydra_plugins.hydra_bohb_sweeper.names import FAIL_REASON_ATTR

log = logging.getLogger("hydra_plugins.hydra_bohb_sweeper._loop")  # the sweep's own log lines


class Progress:
    """One line per finished trial, with the sweep's progress and the best value so far."""

    def __init__(self, n_trials: int, done: int, budget: int) -> None:
        self.n_trials, self.done, self.budget = n_trials, done, budget
        self.started = time.monotonic()
        self.jobs_report = False  # whether the jobs report per-epoch values (the epochs column)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def trial_finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, finished: int) -> None:
        """`finished`: the trials that count towards n_trials now (a retried one does not)."""
        self.done = finished
        if len(study.directions) > 1:
            best_text = f"front {len(study.best_trials)}"
            value_text = ", ".join(f"{v:.4g}" for v in trial.values) if trial.values else "-"
        else:
            try:
                best = study.best_trial
                best_text = f"best {best.value:.4f} (#{best.number})"
            except ValueError:
                best_text = "best -"
            value_text = f"{trial.value:.4f}" if trial.value is not None else "-"
        elapsed = self.elapsed()
        percent = 100 * self.done / self.n_trials
        trained = epochs_trained(trial)
        self.jobs_report = self.jobs_report or trained > 0
        epochs = f"{trained:>3d}/{self.budget} epochs  " if self.jobs_report else ""
        line = (
            f"[{self.done:>{len(str(self.n_trials))}}/{self.n_trials} {percent:3.0f}%] "
            f"trial {trial.number:<3d} {trial.state.name:<8s} {epochs}"
            f"value {value_text}  {best_text}  elapsed {_clock(elapsed)}"
        )
        reason = trial.user_attrs.get(FAIL_REASON_ATTR)
        log.info("%s%s", line, f"  ({reason})" if reason and trial.state.name == "FAIL" else "")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
