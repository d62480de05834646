"""Heartbeats of the trials a sweeper has in flight, in every storage (SQL, journal, in memory), and
failing the trials whose sweeper stopped beating.

A sweeper beats for each trial it has in flight, from its claim to its tell (a job waiting in a SLURM
queue included): the trial's system attribute `names.HEARTBEAT_ATTR` changes every `interval` seconds.
Any sweeper of the study that sees a running trial's beat unchanged for `grace` seconds of its own
clock fails it as stale (`names.FAULT_STALE`), and a retry then continues its configuration from
where that trial started. Changes are what counts, not one machine's clock against another's, so skew
between machines does not matter; a sweeper that has just started waits `grace` seconds before it
calls a trial stale, unless the last beat's own time is older than twice the grace (a sweeper rerun
long after a crash retries at once). A trial that never beat (its sweeper died right after creating
it) goes stale after the grace.

Optuna's own heartbeats (`RDBStorage(heartbeat_interval=...)`) exist for SQL storages only and beat
inside `Study.optimize`; these work wherever the study is, and the fault simulation drives their
clock.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import optuna

from hydra_plugins.hydra_bohb_sweeper import names
from hydra_plugins.hydra_bohb_sweeper._study.view import StudyView

States = optuna.trial.TrialState
GRACE_FACTOR = 4  # a trial is stale after this many heartbeats missed


class Heartbeats:
    def __init__(
        self, storage: optuna.storages.BaseStorage, interval: float,
        clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.storage, self.interval, self.clock, self.wall_clock = storage, interval, clock, wall_clock
        self.grace = GRACE_FACTOR * interval
        # Names this sweeper's beats apart from another's that happened to beat as often.
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._in_flight: dict[int, int] = {}  # trial number -> trial id: what this sweeper beats for
        self._seen: dict[int, tuple[Any, float]] = {}  # others' trials: (their beat, when it last changed)
        self._count = 0
        self._lock = threading.Lock()  # beats come from a thread of their own
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ this sweeper's trials
    @property
    def own(self) -> set[int]:
        """The trials this sweeper has in flight."""
        return set(self._in_flight)

    def in_flight(self) -> dict[int, int]:
        """trial number -> trial id of the trials this sweeper has in flight."""
        with self._lock:
            return dict(self._in_flight)

    def started(self, trial_number: int, trial_id: int) -> None:
        with self._lock:
            self._in_flight[trial_number] = trial_id
        self.beat(trial_id)

    def ended(self, trial_number: int) -> None:
        with self._lock:
            self._in_flight.pop(trial_number, None)

    def beat(self, trial_id: int) -> None:
        with self._lock:
            self._count += 1
            beat: dict[str, Any] = {"by": self.token, "n": self._count, "at": round(self.wall_clock(), 3)}
        # A trial that has just finished, or a storage hiccup: the next beat tries again.
        with contextlib.suppress(Exception):
            self.storage.set_trial_system_attr(trial_id, names.HEARTBEAT_ATTR, beat)

    def beat_all(self) -> None:
        with self._lock:
            ids = list(self._in_flight.values())
        for trial_id in ids:
            self.beat(trial_id)

    def start(self) -> None:
        def loop() -> None:
            while not self._stopped.wait(self.interval):
                self.beat_all()

        self._thread = threading.Thread(target=loop, name="bohb-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()

    # ------------------------------------------------------------ others' trials
    def stale(self, view: StudyView) -> list[optuna.trial.FrozenTrial]:
        """Running trials of other sweepers whose beat has not changed for `grace` seconds of this
        sweeper's clock, or whose last beat is older than twice that by the time it bears (a sweeper
        started long after another died need not wait: the margin covers clocks that differ)."""
        now, wall, stale = self.clock(), self.wall_clock(), []
        for trial in view.trials:
            if trial.state != States.RUNNING or trial.number in self._in_flight:
                continue
            beat = trial.system_attrs.get(names.HEARTBEAT_ATTR)
            seen = self._seen.get(trial.number)
            if isinstance(beat, dict) and wall - float(beat.get("at", wall)) > 2 * self.grace:
                stale.append(trial)
            elif seen is None or seen[0] != beat:
                self._seen[trial.number] = (beat, now)
            elif now - seen[1] > self.grace:
                stale.append(trial)
        return stale

    def fail(self, trials: Iterable[optuna.trial.FrozenTrial]) -> list[int]:
        """Fail `trials` as stale; returns the numbers of those this sweeper failed (another sweeper
        may have failed one first, or its own sweeper told it after all)."""
        failed = []
        for trial in trials:
            reason = f"stale: its sweeper stopped beating for {self.grace:g} s (retried)"
            if end_with_fault(self.storage, trial._trial_id, names.FAULT_STALE, reason):
                failed.append(trial.number)
            self._seen.pop(trial.number, None)
        return failed


def end_with_fault(storage: optuna.storages.BaseStorage, trial_id: int, fault: str, reason: str) -> bool:
    """Fail a running trial because of `fault` (not its configuration's doing): its configuration is
    retried. False if the trial had already finished."""
    try:
        storage.set_trial_user_attr(trial_id, names.FAULT_ATTR, fault)
        storage.set_trial_user_attr(trial_id, names.FAIL_REASON_ATTR, reason)
        return storage.set_trial_state_values(trial_id, States.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
