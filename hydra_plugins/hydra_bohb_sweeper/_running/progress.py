"""One concise line per finished trial: progress of the sweep, the trial's outcome, the best so far."""

from __future__ import annotations

import logging
import time

import optuna

from hydra_plugins.hydra_bohb_sweeper._study import view as _view
from hydra_plugins.hydra_bohb_sweeper._study.scheduling import nondominated_fronts
from hydra_plugins.hydra_bohb_sweeper.names import (
    FAIL_REASON_ATTR,
    FAULT_ATTR,
    PAUSED_ATTR,
    RESUME_ATTR,
    STOP_REASON_ATTR,
)

log = logging.getLogger("hydra_plugins.hydra_bohb_sweeper._running.loop")  # the sweep's own log lines


class Progress:
    """One line per finished trial: configurations started of n_trials, what the trial did (with the
    epochs its configuration has trained), and the best value so far."""

    def __init__(self, n_trials: int, budget: int) -> None:
        self.n_trials, self.budget = n_trials, budget
        self.started = time.monotonic()
        self.jobs_report = False  # whether the jobs report per-epoch values (the epochs column)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def trial_finished(self, trial: optuna.trial.FrozenTrial, view: _view.StudyView) -> None:
        """`view`: the study read after `trial` was told."""
        configs = view.configurations
        best, front = best_so_far(view)
        if len(view.directions) > 1:
            best_text = f"front {front}"
            value_text = ", ".join(f"{v:.4g}" for v in trial.values) if trial.values else "-"
        else:
            best_text = f"best {best.value:.4f} (#{_view.config_number(best)})" if best else "best -"
            value_text = f"{trial.value:.4f}" if trial.value is not None else _last_value(trial)
        state = "PAUSED" if trial.user_attrs.get(PAUSED_ATTR) else trial.state.name
        if trial.user_attrs.get(FAULT_ATTR) and trial.state.name == "FAIL":
            state = "INTERRUPTED"  # not the configuration's doing: a retry continues it
        number = _view.config_number(trial)
        name = f"#{number}" if number == trial.number else f"#{number} (trial {trial.number})"
        reached = max(_view.reported_values(trial), default=0)
        self.jobs_report = self.jobs_report or reached > 0
        epochs = ""
        if self.jobs_report:
            resume = trial.user_attrs.get(RESUME_ATTR)
            first = f"{int(resume['epoch']) + 1}-" if resume and reached else ""
            epochs = f"epochs {first}{reached or '-'}/{self.budget}  "
        started = len(configs)
        line = (
            f"[{started:>{len(str(self.n_trials))}}/{self.n_trials}] {name:<5s} {state:<8s} {epochs}"
            f"value {value_text}  {best_text}  elapsed {hms(self.elapsed())}"
        )
        reason = trial.user_attrs.get(FAIL_REASON_ATTR) if trial.state.name == "FAIL" else None
        if reason and state == "INTERRUPTED":
            reason = f"{reason}; it resumes from where it started"
        if trial.state.name == "PRUNED" and not reached:  # the job stopped it before any epoch: say why
            reason = trial.user_attrs.get(STOP_REASON_ATTR)
        log.info("%s%s", line, f"  ({reason})" if reason else "")


def best_so_far(view: _view.StudyView) -> tuple[optuna.trial.FrozenTrial | None, int]:
    """The best complete trial (one objective; the first of equals), and the size of the Pareto front
    of the complete trials (several), from the view as Optuna's `best_trial(s)` would give them."""
    complete = [t for t in view.trials if t.state == optuna.trial.TrialState.COMPLETE and t.values]
    if not complete:
        return None, 0
    if len(view.directions) == 1:
        sign = 1.0 if view.directions[0] == "minimize" else -1.0
        return min(complete, key=lambda t: (sign * t.values[0], t.number)), 1
    signs = [1.0 if d == "minimize" else -1.0 for d in view.directions]
    points = [[s * v for s, v in zip(signs, t.values, strict=True)] for t in complete]
    return None, len(nondominated_fronts(points)[0])


def _last_value(trial: optuna.trial.FrozenTrial) -> str:
    """A paused or pruned trial's value at its last epoch (the first objective)."""
    values = _view.reported_values(trial)
    return f"{values[max(values)][0]:.4f}" if values else "-"


def hms(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
