"""The study-wide trial budget, shared by every sweeper pointed at the same storage and study.

`n_trials` counts the trials that are finished or running in the study, whoever started them, so
several sweepers (shells, SLURM array jobs) cooperate on one global budget, and a resumed sweeper runs
only what is left. A sweeper records a heartbeat for each trial it has in flight; a trial whose sweeper
died stops beating, is failed as stale by the next sweeper that looks, and its configuration is
re-enqueued once (Optuna's RetryFailedTrialCallback), so killed work is neither lost nor counted twice.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from dataclasses import dataclass

import optuna

States = optuna.trial.TrialState
FINISHED = (States.COMPLETE, States.PRUNED, States.FAIL)
RETRY = optuna.storages.RetryHeartbeatStaleTrialCallback
SURPLUS_ATTR = "surplus"  # a trial asked for when another sweeper had just taken the last slot; never run


@dataclass(frozen=True)
class Tally:
    finished: int  # finished trials that count towards n_trials
    running: int
    waiting: int  # queued retries of stale trials


class StudyBudget:
    def __init__(self, study: optuna.Study, storage: optuna.storages.BaseStorage, n_trials: int) -> None:
        self.study, self.storage, self.n_trials = study, storage, n_trials
        self.heartbeats = getattr(storage, "get_heartbeat_interval", lambda: None)()
        self._study_id = storage.get_study_id_from_name(study.study_name)
        self._in_flight: dict[int, int] = {}  # trial number -> trial id, trials this sweeper runs
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ accounting
    def tally(self) -> Tally:
        if self.heartbeats:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)
        trials = self.study.get_trials(deepcopy=False)
        uncounted = _uncounted(trials)
        return Tally(
            finished=sum(t.state in FINISHED and t.number not in uncounted for t in trials),
            running=sum(t.state == States.RUNNING for t in trials),
            waiting=sum(t.state == States.WAITING for t in trials),
        )

    def claim(self) -> str:
        """What a worker does next: "run" a trial, "wait" for other sweepers' trials, or "stop".

        Call with the sweeper's lock held: "run" means the caller asks for a trial right away.
        """
        tally = self.tally()
        if tally.waiting or tally.finished + tally.running < self.n_trials:
            return "run"  # a queued retry first: it stands in for a trial already counted
        foreign = tally.running - len(self._in_flight)
        # Others' trials may still die and be retried here: wait only when stale trials can be detected.
        if tally.finished < self.n_trials and foreign > 0 and self.heartbeats:
            return "wait"
        return "stop"

    def is_surplus(self, trial: optuna.Trial) -> bool:
        """Whether `trial` lies beyond n_trials: several sweepers may claim the last slot at once; the
        trial numbers (unique, in creation order) decide who keeps it, the same way in every sweeper."""
        trials = self.study.get_trials(deepcopy=False)
        uncounted = _uncounted(trials)
        claimed = (*FINISHED, States.RUNNING, States.WAITING)
        earlier = [
            t for t in trials if t.number < trial.number and t.number not in uncounted and t.state in claimed
        ]
        return len(earlier) >= self.n_trials

    def started(self, trial: optuna.Trial) -> None:
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self._study_id, trial.number)
        self._in_flight[trial.number] = trial_id
        self._beat(trial_id)

    def ended(self, trial: optuna.Trial) -> None:
        self._in_flight.pop(trial.number, None)

    # ------------------------------------------------------------ heartbeats
    def _beat(self, trial_id: int) -> None:
        if self.heartbeats:
            self.storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]

    def start_heartbeats(self) -> None:
        if not self.heartbeats:
            return

        def loop() -> None:
            while not self._stopped.wait(self.heartbeats):
                for trial_id in list(self._in_flight.values()):
                    # A trial that just finished, or a storage hiccup: the next beat retries.
                    with contextlib.suppress(Exception):
                        self._beat(trial_id)

        self._thread = threading.Thread(target=loop, name="bohb-heartbeat", daemon=True)
        self._thread.start()

    def stop_heartbeats(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()


def _uncounted(trials: list[optuna.trial.FrozenTrial]) -> set[int]:
    """Trials that do not count towards n_trials: stale trials replaced by their retry (the retry
    counts instead), and surplus trials that were never run."""
    replaced = {n for t in trials for n in RETRY.retry_history(t)}
    return replaced | {t.number for t in trials if t.user_attrs.get(SURPLUS_ATTR)}
