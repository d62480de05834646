"""The study-wide trial quota (`n_trials`), shared by every sweeper pointed at the same storage and study.

`n_trials` counts the trials that are finished or running in the study, whoever started them, so
several sweepers (shells, SLURM array jobs) cooperate on one global quota, and a resumed sweeper runs
only what is left. A sweeper records a heartbeat for each trial it has in flight; a trial whose sweeper
died stops beating, is failed as stale by the next sweeper that looks, and its configuration is
re-enqueued once (Optuna's RetryFailedTrialCallback), so killed work is neither lost nor counted twice.
The same holds for a trial whose worker process died under it (see `WORKER_DIED`).
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from dataclasses import dataclass

import optuna

from hydra_plugins.hydra_bohb_sweeper.names import FAIL_REASON_ATTR, SURPLUS_ATTR

States = optuna.trial.TrialState
FINISHED = (States.COMPLETE, States.PRUNED, States.FAIL)
RETRY = optuna.storages.RetryHeartbeatStaleTrialCallback
# A joblib (loky) worker killed by a signal (the OOM killer, SIGKILL) breaks the whole worker pool: every
# trial in flight in it fails with TerminatedWorkerError, not just the one whose process died, and which
# one that was cannot be told. So each is re-queued once, as a stale trial is: the innocent one runs
# again, and so does the culprit, once.
WORKER_DIED = ("TerminatedWorkerError:",)


@dataclass(frozen=True)
class Tally:
    finished: int  # finished trials that count towards n_trials
    running: int
    waiting: int  # queued retries of stale trials


class TrialQuota:
    """`heartbeat_storage`: the study's storage opened with heartbeats on (None: no heartbeats). The
    sweeper asks and tells through a storage without them: Optuna warns on every `ask` otherwise,
    as its heartbeats are meant for `Study.optimize`, and here the sweeper beats for its jobs itself."""

    def __init__(
        self, study: optuna.Study, heartbeat_storage: optuna.storages.BaseStorage | None, n_trials: int
    ) -> None:
        self.study, self.n_trials = study, n_trials
        self.storage = heartbeat_storage or study._storage
        self.heartbeats = getattr(heartbeat_storage, "get_heartbeat_interval", lambda: None)()
        # The same study seen through the heartbeat storage, for failing stale trials.
        self._beating = (
            optuna.load_study(study_name=study.study_name, storage=heartbeat_storage)
            if heartbeat_storage is not None
            else None
        )
        self._study_id = self.storage.get_study_id_from_name(study.study_name)
        self._in_flight: dict[int, int] = {}  # trial number -> trial id, trials this sweeper runs
        self._adopted: set[int] = set()  # others' running trials this sweeper gave a first heartbeat
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ accounting
    def tally(self) -> Tally:
        if self._beating is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self._beating)
        trials = self.study.get_trials(deepcopy=False)
        if self._beating is not None:
            self._start_the_clock_of_others_trials(trials)  # after: a trial already stale failed above
        left_out = uncounted(trials)
        return Tally(
            finished=sum(t.state in FINISHED and t.number not in left_out for t in trials),
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
        left_out = uncounted(trials)
        claimed = (*FINISHED, States.RUNNING, States.WAITING)
        earlier = [
            t for t in trials if t.number < trial.number and t.number not in left_out and t.state in claimed
        ]
        return len(earlier) >= self.n_trials

    def started(self, trial: optuna.Trial) -> None:
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self._study_id, trial.number)
        self._in_flight[trial.number] = trial_id
        self._beat(trial_id)

    def ended(self, trial: optuna.Trial) -> None:
        """After the trial was told: it is no longer in flight, and it is retried once if its worker died."""
        trial_id = self._in_flight.pop(trial.number, None)
        if trial_id is not None:
            self._retry_if_worker_died(self.storage.get_trial(trial_id))

    def _retry_if_worker_died(self, trial: optuna.trial.FrozenTrial) -> None:
        reason = str(trial.user_attrs.get(FAIL_REASON_ATTR, ""))
        if trial.state != States.FAIL or not reason.startswith(WORKER_DIED):
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            history = [*RETRY.retry_history(trial), trial.number]
        if len(history) > 1:  # a retry that died too: once is enough
            return
        # The retry as RetryHeartbeatStaleTrialCallback(max_retry=1) records it, so that `retried` counts
        # it in the failed trial's place; without the failed run's outcome (reason, output directory) or
        # its pruner bookkeeping (the rungs it completed), which the retry earns again.
        self.study.add_trial(
            optuna.trial.create_trial(
                state=States.WAITING,
                params=trial.params,
                distributions=trial.distributions,
                system_attrs={"failed_trial": history[0], "retry_history": history},
            )
        )

    # ------------------------------------------------------------ heartbeats
    def _start_the_clock_of_others_trials(self, trials: list[optuna.trial.FrozenTrial]) -> None:
        """One heartbeat for each running trial of another sweeper, the first time this one sees it.

        A sweeper killed between creating a trial and its first heartbeat leaves a RUNNING trial that
        Optuna never fails as stale (it has no heartbeat to go stale), and every later sweeper would
        wait for it forever. One beat starts its clock; a sweeper that is alive beats on anyway (so
        sweepers that share a study should all have heartbeats on, as they do with one config).
        """
        for t in trials:
            if t.state != States.RUNNING or t.number in self._in_flight or t.number in self._adopted:
                continue
            self._adopted.add(t.number)
            with contextlib.suppress(Exception):  # finished meanwhile, or a storage hiccup
                self._beat(self.storage.get_trial_id_from_study_id_trial_number(self._study_id, t.number))

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


def retried(trials: list[optuna.trial.FrozenTrial]) -> set[int]:
    """Numbers of the stale trials that were retried (their retry stands in for them)."""
    with warnings.catch_warnings():  # `retry_history` is "experimental" since Optuna 3.0
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return {n for t in trials for n in RETRY.retry_history(t)}


def uncounted(trials: list[optuna.trial.FrozenTrial]) -> set[int]:
    """Trials that do not count towards n_trials: stale trials replaced by their retry (the retry
    counts instead), and surplus trials that were never run."""
    return retried(trials) | {t.number for t in trials if t.user_attrs.get(SURPLUS_ATTR)}
