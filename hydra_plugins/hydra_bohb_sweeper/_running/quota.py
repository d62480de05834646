"""The study-wide quota (`n_trials` configurations), shared by every sweeper pointed at the same storage
and study, and what a free worker does next.

`n_trials` counts configurations, whoever started them, so several sweepers (shells, SLURM array jobs)
cooperate on one global quota and a resumed sweeper runs only what is left. A paused configuration's
later segments are the same configuration: resuming it never spends quota. A sweeper records a
heartbeat for each trial it has in flight; a trial whose sweeper died stops beating, is failed as stale
by the next sweeper that looks, and is re-enqueued once (Optuna's RetryFailedTrialCallback, which keeps
its configuration and the checkpoint it continues from), so killed work is neither lost nor counted
twice. The same holds for a trial whose worker process died under it (see `WORKER_DIED`).
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import optuna

from hydra_plugins.hydra_bohb_sweeper import names
from hydra_plugins.hydra_bohb_sweeper._study import scheduling as _scheduling

States = optuna.trial.TrialState
FINISHED = (States.COMPLETE, States.PRUNED, States.FAIL)
RETRY = optuna.storages.RetryHeartbeatStaleTrialCallback
# A joblib (loky) worker killed by a signal (the OOM killer, SIGKILL) breaks the whole worker pool: every
# trial in flight in it fails with TerminatedWorkerError, not just the one whose process died, and which
# one that was cannot be told. So each is re-queued once, as a stale trial is: the innocent one runs
# again, and so does the culprit, once.
WORKER_DIED = ("TerminatedWorkerError:",)

# What a free worker does next (`TrialQuota.next_step`).
RUN_WAITING, PROMOTE, NEW, WAIT, STOP = "run-waiting", "promote", "new", "wait", "stop"


@dataclass(frozen=True)
class Tally:
    configurations: int  # configurations started, which count towards n_trials
    settled: int  # of them: not running now (complete, stopped, failed, or paused)
    running: int  # trials in flight
    waiting: int  # queued trials: retries of stale trials, a user's enqueued ones


@dataclass(frozen=True)
class Step:
    kind: str  # RUN_WAITING, PROMOTE, NEW, WAIT or STOP
    promote: _scheduling.Configuration | None = None
    to_budget: bool = False  # a promotion that closes its bracket: it trains to the budget


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
        self.study_id = self.storage.get_study_id_from_name(study.study_name)
        self._in_flight: dict[int, int] = {}  # trial number -> trial id, trials this sweeper runs
        self._adopted: set[int] = set()  # others' running trials this sweeper gave a first heartbeat
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ accounting
    def trials(self) -> list[optuna.trial.FrozenTrial]:
        """The study's trials, after failing (and re-queueing) the stale ones."""
        if self._beating is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self._beating)
        trials = self.study.get_trials(deepcopy=False)
        if self._beating is not None:
            self._start_the_clock_of_others_trials(trials)  # after: a trial already stale failed above
        return trials

    def tally(self, trials: list[optuna.trial.FrozenTrial] | None = None) -> Tally:
        trials = self.trials() if trials is None else trials
        configs = _scheduling.configurations(trials).values()
        return Tally(
            configurations=len(configs),
            settled=sum(c.state != _scheduling.RUNNING for c in configs),
            running=sum(t.state == States.RUNNING for t in trials),
            waiting=sum(t.state == States.WAITING for t in trials),
        )

    def next_step(
        self, scheduler: _scheduling.Scheduler, resumable: Callable[[_scheduling.Configuration], bool]
    ) -> Step:
        """What a worker does next: run a queued trial, resume a promoted configuration, start a new
        one, wait for trials in flight, or stop. Call with the sweeper's lock held: the caller acts on
        the answer right away.

        A queued retry comes first (it stands in for a trial already counted), then a promotion (a
        worker that falls free resumes a promoted configuration before it samples a new one), then a
        new configuration while the quota lasts. With nothing to do, a worker waits while trials are in
        flight that may still make a paused configuration promotable or die and be retried here. When
        none is left, a bracket that no configuration finished closes: its best paused one goes on to
        the budget (`Scheduler.closing_promotion`).
        """
        trials = self.trials()
        tally = self.tally(trials)
        if tally.waiting:
            return Step(RUN_WAITING)
        if (config := scheduler.next_promotion(self.study, resumable)) is not None:
            return Step(PROMOTE, config)
        if tally.configurations < self.n_trials:
            return Step(NEW)
        if not tally.running and (config := scheduler.closing_promotion(self.study, resumable)) is not None:
            return Step(PROMOTE, config, to_budget=True)
        own = len(self._in_flight)
        foreign = tally.running - own
        if scheduler.pauses and own:  # this sweeper's trials in flight may promote a paused one
            return Step(WAIT)
        # Others' trials may still die and be retried here: wait only when stale trials can be detected.
        if foreign > 0 and self.heartbeats:
            return Step(WAIT)
        return Step(STOP)

    def index_of(self, trial: optuna.trial.FrozenTrial | optuna.Trial) -> int:
        """How many configurations the study started before `trial` (a configuration's first trial).
        Several sweepers may start one at once: trial numbers (unique, in creation order) decide the
        order, the same way in every sweeper."""
        configs = _scheduling.configurations(self.study.get_trials(deepcopy=False))
        return sum(number < trial.number for number in configs)

    def started(self, trial: optuna.Trial) -> None:
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, trial.number)
        self._in_flight[trial.number] = trial_id
        self._beat(trial_id)

    def ended(self, trial: optuna.Trial) -> None:
        """After the trial was told: it is no longer in flight, and it is retried once if its worker died."""
        trial_id = self._in_flight.pop(trial.number, None)
        if trial_id is not None:
            self._retry_if_worker_died(self.storage.get_trial(trial_id))

    def _retry_if_worker_died(self, trial: optuna.trial.FrozenTrial) -> None:
        reason = str(trial.user_attrs.get(names.FAIL_REASON_ATTR, ""))
        if trial.state != States.FAIL or not reason.startswith(WORKER_DIED):
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            history = [*RETRY.retry_history(trial), trial.number]
        if len(history) > 1:  # a retry that died too: once is enough
            return
        # The retry as RetryHeartbeatStaleTrialCallback(max_retry=1) records it, so that `retried` counts
        # it in the failed trial's place: its configuration and the checkpoint it continues from, not
        # the failed run's outcome (reason, output directory, reported epochs), which the retry earns again.
        kept = (names.CONFIG_ATTR, names.BRACKET_ATTR, names.RESUME_ATTR)
        self.study.add_trial(
            optuna.trial.create_trial(
                state=States.WAITING,
                params=trial.params,
                distributions=trial.distributions,
                user_attrs={k: v for k, v in trial.user_attrs.items() if k in kept},
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
                self._beat(self.storage.get_trial_id_from_study_id_trial_number(self.study_id, t.number))

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
