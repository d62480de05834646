"""A deterministic simulation of the pause/resume protocol, with faults injected between any two storage
writes, in the manner of FoundationDB's and TigerBeetle's simulation testing.

S sweepers, each with W workers, run the sweeper's real loop (`SweepLoop`), its real heartbeats, claims
and scheduler, and jobs that use the real client (`SweepTrial`: report, should_pause, save_checkpoint)
on one real Optuna storage (in memory, SQLite or a journal file; PostgreSQL in the slow test). Jobs
train synthetic learning curves and write real checkpoint files. Every actor (a sweeper's worker, its
heartbeat, the jobs it runs) is a thread, but only one runs at a time: an actor gives up its turn before
each storage write and whenever it sleeps, and a seeded random generator picks who goes next, so a seed
replays the same interleaving, the same faults and the same outcome (`simulate(seed)` reruns a failing
schedule). The clock is the simulation's own; time passes only while everybody sleeps.

Faults, injected at a turn (between two storage writes):
  kill         a sweeper dies with everything it runs (SIGKILL): no further write of any of its actors
  worker       a job's process dies (the launcher raises, as joblib does for a dead worker)
  interrupt    Ctrl-C: KeyboardInterrupt where the sweeper is, in every job it runs
  suspend      a sweeper (jobs included) stops for longer than the heartbeat grace, then goes on
  checkpoint   a paused configuration's checkpoint is deleted or truncated on disk
  extend       once the sweep has finished, a new sweeper raises n_trials
  settings     a sweeper opens the study with other scheduler settings (it must be refused)
Jobs also report NaN or inf now and then (a diverged configuration), which is not a fault.

A sweeper killed, interrupted or suspended is started again later (a user reruns the command); the
schedule ends when every sweeper has finished. Then `check` asserts the invariants of docs/parallel.md:
  I1 exactly n_trials configurations
  I2 no configuration trained by two jobs whose trials are both running
  I3 none lost: each complete, stopped by the scheduler, or failed by its own doing
  I4 an epoch trained twice only where a fault hit the job that trained it first (counted)
  I5 nothing RUNNING once the sweep has finished
  I6 without faults (one objective), every decision is the one a reference asynchronous Hyperband makes
     from the same reports (`reference_on_report`, `reference_promotion`)
  I7 checkpoints exist exactly for the configurations that may still resume
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import shutil
import tempfile
import threading
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus

from hydra_plugins.hydra_bohb_sweeper import client, names
from hydra_plugins.hydra_bohb_sweeper._running import checkpoints as _checkpoints
from hydra_plugins.hydra_bohb_sweeper._running.heartbeats import Heartbeats
from hydra_plugins.hydra_bohb_sweeper._running.loop import SweepLoop
from hydra_plugins.hydra_bohb_sweeper._running.outcome import Outcome, outcome_of
from hydra_plugins.hydra_bohb_sweeper._setup.settings import SweepConfigError
from hydra_plugins.hydra_bohb_sweeper._study import scheduling as _scheduling
from hydra_plugins.hydra_bohb_sweeper._study import view as _view
from hydra_plugins.hydra_bohb_sweeper._study.open import keep_scheduler

States = optuna.trial.TrialState
optuna.logging.set_verbosity(optuna.logging.ERROR)
FAULT_KINDS = ("kill", "worker", "interrupt", "suspend", "checkpoint", "extend", "settings")
HEARTBEAT_S = 2


class Killed(BaseException):
    """The actor's process died: nothing it does afterwards reaches the storage."""


class WorkerDied(Exception):
    """What the launcher raises for a job whose process died."""


# --------------------------------------------------------------------------------------------------
# The deterministic scheduler of actors
# --------------------------------------------------------------------------------------------------
READY, RUNNING, SLEEPING, BLOCKED, DONE = "ready", "running", "sleeping", "blocked", "done"


@dataclass(eq=False)
class Actor:
    name: str
    group: Sweeper
    state: str = READY
    wake_at: float = 0.0
    pending: BaseException | None = None  # raised in the actor when it next gets its turn
    in_job: int | None = None  # the trial whose job it runs now
    go: threading.Lock = field(default_factory=lambda: _signal())  # released: its turn
    error: BaseException | None = None
    trace: str = ""


def _signal() -> threading.Lock:
    """A one-shot signal between two threads: `release()` sends it, `acquire()` waits for it (a plain
    lock held from the start: cheaper than a semaphore, and a lock may be released by another thread)."""
    lock = threading.Lock()
    lock.acquire()
    return lock


class Sim:
    """Runs actors one at a time. The actor whose turn ends picks who goes next (with the seeded
    generator) and hands the turn straight over; when it picks itself it just goes on, so a schedule
    costs a thread switch only where two actors interleave."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.now = 0.0
        self.actors: list[Actor] = []
        self._local = threading.local()
        self._between: Callable[[Actor], None] = lambda actor: None
        self._over = _signal()  # released: no actor is left (or the schedule failed)
        self.failure: str | None = None
        self.max_steps = 200_000
        self.steps = 0
        self.steps_of: Counter[Actor] = Counter()

    def clock(self) -> float:
        return self.now

    @property
    def current(self) -> Actor | None:
        return getattr(self._local, "actor", None)

    def spawn(self, name: str, group: Sweeper, body: Callable[[], None]) -> Actor:
        actor = Actor(name, group)

        def run() -> None:
            self._local.actor = actor
            actor.go.acquire()
            try:
                self._raise_pending(actor)
                body()
            except Killed:
                pass
            except BaseException as exc:  # a crash of the sweeper itself: a violation
                actor.error = exc
                actor.trace = traceback.format_exc()
            finally:
                actor.state = DONE
                self._hand_over(None)

        self.actors.append(actor)
        threading.Thread(target=run, name=name, daemon=True).start()
        return actor

    def _raise_pending(self, actor: Actor) -> None:
        if actor.group.dead:
            raise Killed()
        if actor.pending is not None:
            pending, actor.pending = actor.pending, None
            raise pending

    def turn(self, state: str = READY) -> None:
        """The running actor ends its turn (before a storage write, to sleep, or to wait)."""
        actor = self.current
        if actor is None:
            return
        actor.state = state
        self._hand_over(actor)
        self._raise_pending(actor)

    def sleep(self, seconds: float) -> None:
        actor = self.current
        assert actor is not None
        actor.wake_at = self.now + seconds
        self.turn(SLEEPING)

    def runnable(self) -> list[Actor]:
        return [
            a
            for a in self.actors
            if a.state in (READY, SLEEPING) and a.wake_at <= self.now and a.group.suspended_until <= self.now
        ]

    def _next(self) -> Actor | None:
        """Who goes next, the clock moved on to when someone can; None when no actor is left."""
        while True:
            alive = [a for a in self.actors if a.state != DONE]
            if not alive:
                return None
            ready = self.runnable()
            if ready:
                break
            waits = [max(a.wake_at, a.group.suspended_until) for a in alive if a.state != BLOCKED]
            if not waits:
                self.failure = f"deadlock: {[a.name for a in alive]} all blocked"
                return None
            self.now = max(self.now, min(waits))
        actor = self.rng.choice(ready)
        self._between(actor)  # a fault may strike it now, or a sweeper start
        actor.state = RUNNING
        self.steps += 1
        self.steps_of[actor] += 1
        if self.steps > self.max_steps:
            self.failure = "the schedule did not end (a livelock?)"
            return None
        return actor

    def _hand_over(self, me: Actor | None) -> None:
        """Give the turn to the next actor; `me` (None once it has ended) waits for its next one."""
        # Picking (faults, sweepers started) is the simulation's doing, not the actor's: its storage
        # calls take no turn, and a dead actor's are not refused.
        self._local.actor = None
        try:
            following = self._next()
        finally:
            self._local.actor = me
        if following is None:
            self._over.release()
        elif following is not me:
            following.go.release()
        else:
            return
        if me is not None:
            me.go.acquire()

    def run(self, between: Callable[[Actor], None]) -> None:
        """Give turns until no actor is left; `between(actor)` may inject a fault before its turn."""
        self._between, self._over = between, _signal()
        first = self._next()
        if first is not None:
            first.go.release()
            self._over.acquire()
        if self.failure:
            raise RuntimeError(self.failure)


class SimCondition:
    """`threading.Condition` for the workers of one sweeper, under the simulation's turns."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.owner: Actor | None = None
        self.blocked: list[Actor] = []
        self.waiting: set[Actor] = set()

    def acquire(self) -> None:
        actor = self.sim.current
        assert actor is not None
        while self.owner is not None and self.owner is not actor:
            self.blocked.append(actor)
            self.sim.turn(BLOCKED)
        self.owner = actor

    def release(self) -> None:
        self.owner = None
        for actor in self.blocked:
            if actor.state == BLOCKED:
                actor.state = READY
        self.blocked.clear()

    def wait(self, timeout: float) -> None:
        actor = self.sim.current
        assert actor is not None
        self.release()
        self.waiting.add(actor)
        try:
            self.sim.sleep(timeout)
        finally:
            self.waiting.discard(actor)
        self.acquire()

    def notify_all(self) -> None:
        for actor in self.waiting:  # the sweeper's waiting workers look again at once
            actor.wake_at = min(actor.wake_at, self.sim.now)


# --------------------------------------------------------------------------------------------------
# The storage every actor writes through
# --------------------------------------------------------------------------------------------------
WRITES = {
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr", "create_new_trial",
    "set_trial_param", "set_trial_state_values", "set_trial_intermediate_value", "set_trial_user_attr",
    "set_trial_system_attr", "record_heartbeat",
}  # fmt: skip


def sim_storage(inner: optuna.storages.BaseStorage, sim: Sim, world: World) -> optuna.storages.BaseStorage:
    """`inner` with a turn before every write, where faults strike; a dead actor's calls never land."""

    class SimStorage(optuna.storages.BaseStorage):
        pass

    def forward(name: str) -> Callable[..., Any]:
        method = getattr(inner, name)

        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            actor = sim.current
            if actor is not None and name in WRITES:
                sim.turn()
                world.writes += 1
            if actor is not None and actor.group.dead:
                raise Killed()
            return method(*args, **kwargs)

        return call

    for name in dir(optuna.storages.BaseStorage):
        if not name.startswith("_") and callable(getattr(optuna.storages.BaseStorage, name)):
            setattr(SimStorage, name, forward(name))
    SimStorage.__abstractmethods__ = frozenset()
    return SimStorage()


# --------------------------------------------------------------------------------------------------
# Sweepers and jobs
# --------------------------------------------------------------------------------------------------
@dataclass
class Plan:
    """What one schedule runs: drawn from its seed."""

    seed: int
    storage: str  # memory, sqlite, journal (or a PostgreSQL URL)
    sweepers: int
    workers: int
    n_trials: int
    brackets: int
    objectives: int
    faults: int  # how many faults to inject (0: a fault-free schedule, where I6 holds)
    fault_rate: float  # chance of a fault at a turn, while faults are left
    diverge: float  # chance that a configuration's curve goes NaN or inf
    budget: int = 9
    eta: int = 3

    @classmethod
    def draw(cls, seed: int, storages: tuple[str, ...] = ("memory",)) -> Plan:
        rng = random.Random(seed * 7919 + 1)
        faults = 0 if rng.random() < 0.3 else rng.randint(1, 4)
        return cls(
            seed=seed, storage=rng.choice(storages), sweepers=rng.choice((1, 1, 2, 3)),
            workers=rng.choice((1, 2)), n_trials=rng.randint(3, 12), brackets=rng.choice((1, 2, 3)),
            objectives=1 if rng.random() < 0.85 else 2, faults=faults,
            fault_rate=rng.choice((0.01, 0.03, 0.1)), diverge=rng.choice((0.0, 0.0, 0.15)),
        )  # fmt: skip

    def scheduler(self) -> _scheduling.Hyperband:
        return _scheduling.Hyperband(budget=self.budget, reduction_factor=self.eta, brackets=self.brackets)


@dataclass(eq=False)
class Sweeper:
    name: str
    n_trials: int
    loop: SweepLoop | None = None
    dead: bool = False
    suspended_until: float = 0.0
    finished: bool = False  # its loop ran out of steps (not killed, not interrupted)
    ended: bool = False  # its actors are gone, one way or another


class World:
    """One schedule: the storage, the sweepers, their jobs, the faults, and what they left."""

    def __init__(self, plan: Plan, root: Path) -> None:
        self.plan, self.root = plan, root
        self.sim = Sim(plan.seed)
        self.rng = random.Random(plan.seed * 104729 + 3)
        self.checkpoints = root / "checkpoints"
        self.writes = 0
        self.faults: Counter[str] = Counter()
        self.faults_left = plan.faults
        self.sweepers: list[Sweeper] = []
        self.restarts_due: list[tuple[float, int]] = []  # (when, n_trials) of sweepers to start again
        self.extended = False
        self.epochs: list[tuple[int, int, int]] = []  # (configuration, epoch, trial) per epoch trained
        self.training: dict[int, set[int]] = defaultdict(set)  # configuration -> trials training it
        self.overlaps_by_fault = 0  # epochs trained beside a retry by a job whose trial was failed stale
        self.violations: list[str] = []
        self.hit: set[int] = set()  # configurations whose checkpoint a fault destroyed
        self.decisions = 0  # decisions at a rung or an epoch's end
        self.compared = 0  # decisions compared with the reference (fault-free, one objective)
        self.engines: list[optuna.storages.BaseStorage] = []
        directions = ["maximize"] * plan.objectives if plan.objectives == 1 else ["maximize", "minimize"]
        self.inner = self._storage()
        self.study_name = f"sim-{plan.seed}"  # one database may hold many schedules' studies
        study = optuna.create_study(study_name=self.study_name, storage=self.inner, directions=directions)
        study.set_user_attr(names.SCHEDULER_ATTR, plan.scheduler().record())
        self.study_id = self.inner.get_study_id_from_name(self.study_name)

    def _storage(self) -> optuna.storages.BaseStorage:
        kind = self.plan.storage
        if kind == "memory":
            return optuna.storages.InMemoryStorage()
        return self._open(kind)

    def _open(self, kind: str) -> optuna.storages.BaseStorage:
        """The storage as one more process opens it (in memory: the one there is)."""
        if kind == "memory":
            return self.inner
        if kind == "journal":
            backend = optuna.storages.journal.JournalFileBackend(str(self.root / "optuna.journal"))
            return optuna.storages.JournalStorage(backend)
        url = f"sqlite:///{self.root / 'optuna.db'}" if kind == "sqlite" else kind  # or PostgreSQL's
        storage = optuna.storages.get_storage(url)
        self.engines.append(storage)
        return storage

    def close(self) -> None:
        """Every database connection this schedule opened goes back."""
        for storage in self.engines:
            backend = getattr(storage, "_backend", storage)
            with contextlib.suppress(Exception):
                backend.engine.dispose()

    # ------------------------------------------------------------------ sweepers
    def start_sweeper(self, n_trials: int) -> None:
        sweeper = Sweeper(f"s{len(self.sweepers)}", n_trials)
        self.sweepers.append(sweeper)
        storage = sim_storage(self._open(self.plan.storage), self.sim, self)
        sampler = optuna.samplers.RandomSampler(seed=self.rng.randrange(2**31))
        study = optuna.load_study(study_name=self.study_name, storage=storage, sampler=sampler)
        condition = SimCondition(self.sim)
        scheduler = Checked(self, self.plan.budget, self.plan.eta, self.plan.brackets)
        heartbeats = Heartbeats(storage, HEARTBEAT_S, clock=self.sim.clock, wall_clock=self.sim.clock)
        sweeper.loop = SweepLoop(
            study, scheduler, n_trials, heartbeats, lambda trial: self.run_job(sweeper, storage, trial),
            self.checkpoints, condition=condition,
        )  # fmt: skip
        left = [self.plan.workers]  # workers still at work
        crashed: list[str] = []

        def work() -> None:
            assert sweeper.loop is not None
            try:
                sweeper.loop.work()
            except Killed:
                raise
            except BaseException:
                crashed.append(traceback.format_exc())
                raise
            finally:
                left[0] -= 1
            if left[0] == 0:
                end()

        def end() -> None:  # the sweeper's end, as `BOHBSweep.sweep` ends it, once its workers are done
            assert sweeper.loop is not None
            self.violations += [f"{sweeper.name} crashed: {trace}" for trace in crashed]
            try:
                if sweeper.loop.stop_reason is None and not crashed:
                    _checkpoints.discard_unresumed(storage, self.study_id, self.checkpoints)
                    sweeper.finished = True
            except KeyboardInterrupt:  # Ctrl-C while the sweep ends: it did not finish
                pass
            if not sweeper.finished:
                self._restart_later(n_trials)
            sweeper.ended = True

        def heart() -> None:
            while left[0] > 0:
                self.sim.sleep(HEARTBEAT_S)
                heartbeats.beat_all()

        for i in range(self.plan.workers):
            self.sim.spawn(f"{sweeper.name}/worker{i}", sweeper, work)
        self.sim.spawn(f"{sweeper.name}/heart", sweeper, heart)

    def _restart_later(self, n_trials: int) -> None:
        self.restarts_due.append((self.sim.now + self.rng.uniform(0, 3 * HEARTBEAT_S), n_trials))

    # ------------------------------------------------------------------ a job
    def run_job(
        self, sweeper: Sweeper, storage: optuna.storages.BaseStorage, trial: optuna.Trial
    ) -> tuple[Outcome, str | None]:
        """What a launcher does: run the trial's job and return its outcome (raise if its process died)."""
        actor = self.sim.current
        assert actor is not None
        actor.in_job = trial.number
        try:
            returned, status = self._job(storage, trial), JobStatus.COMPLETED
        except WorkerDied:
            raise
        except client.TrialTakenOver as exc:
            returned, status = exc, JobStatus.FAILED
        except (optuna.TrialPruned, ValueError, OSError) as exc:
            returned, status = exc, JobStatus.FAILED
        finally:
            actor.in_job = None
        ret = JobReturn()
        ret.status, ret._return_value = status, returned
        return outcome_of(ret, None, self.plan.objectives), None

    def _job(self, storage: optuna.storages.BaseStorage, trial: optuna.Trial) -> float | list[float]:
        x = trial.suggest_float("x", 0.0, 1.0)  # a continuation or a retry gets its own value back
        job = client.SweepJob(
            self.study_name, "sim", names.TRIAL, trial.number, self.plan.budget,
            config_number=int(trial.user_attrs.get(names.CONFIG_ATTR, trial.number)),
            checkpoints=self.checkpoints,
        )  # fmt: skip
        attached = client.SweepTrial(job, storage=storage)
        assert attached.scheduler.record() == self.plan.scheduler().record()  # rebuilt from the study
        attached.scheduler = Checked(self, self.plan.budget, self.plan.eta, self.plan.brackets)
        first = 1
        if attached.resume_from is not None:
            saved = attached.resume_from.read_text()
            if saved != f"{job.config_number}:{attached.resume_epoch}":
                raise ValueError(f"checkpoint {attached.resume_from} is corrupt: {saved!r}")
            first = attached.resume_epoch + 1
        value: Any = None
        for epoch in range(first, self.plan.budget + 1):
            self._train(job.config_number, epoch, trial)
            value = self.curve(x, epoch)
            attached.report(value, epoch)
            if attached.should_pause():
                attached.save_checkpoint(
                    lambda path, e=epoch, c=job.config_number: path.write_text(f"{c}:{e}")
                )
                raise client.TrialPaused(f"paused after epoch {epoch}")
            if attached.should_prune():
                raise client.TrialPruned(f"stopped after epoch {epoch}")
        return value  # type: ignore[no-any-return]

    def _train(self, config: int, epoch: int, trial: optuna.Trial) -> None:
        """One epoch (sim time), checking that nobody else trains the configuration meanwhile (I2)."""
        others = [n for n in self.training[config] if n != trial.number]
        states = {n: self.inner.get_trial(self._trial_id(n)).state for n in others}
        mine = self.inner.get_trial(trial._trial_id).state
        for number, state in states.items():
            if state == States.RUNNING and mine == States.RUNNING:
                self.violations.append(
                    f"I2: configuration {config} trained by trials {number} and {trial.number} at once"
                )
            else:
                self.overlaps_by_fault += 1
        self.training[config].add(trial.number)
        try:
            self.sim.sleep(self.rng.uniform(0.5, 1.5))
        finally:
            self.training[config].discard(trial.number)
        self.epochs.append((config, epoch, trial.number))

    def _trial_id(self, number: int) -> int:
        return self.inner.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def curve(self, x: float, epoch: int) -> float | list[float]:
        quality = 0.9 - (x - 0.7) ** 2
        if self.plan.diverge and (x * 1000) % 1 < self.plan.diverge and epoch >= 2:
            value = math.nan if (x * 10000) % 2 < 1 else math.inf
        else:
            value = quality * (1 - math.exp(-epoch / 2))
        return value if self.plan.objectives == 1 else [value, 1000 * x]

    # ------------------------------------------------------------------ faults
    def between(self, actor: Actor) -> None:
        """Before `actor`'s turn: maybe strike it with a fault; start sweepers that are due."""
        for due in [d for d in self.restarts_due if d[0] <= self.sim.now]:
            self.restarts_due.remove(due)
            self.start_sweeper(due[1])
        if self.faults_left <= 0 or self.rng.random() >= self.plan.fault_rate or actor.group.dead:
            return
        kind = self.rng.choice(FAULT_KINDS)
        sweeper = actor.group
        if kind == "kill":
            sweeper.dead = True
            sweeper.ended = True
            self._restart_later(sweeper.n_trials)
        elif kind == "worker" and actor.in_job is not None:
            actor.pending = WorkerDied(f"simulated TerminatedWorkerError in trial {actor.in_job}")
        elif kind == "interrupt" and sweeper.loop is not None and not sweeper.loop.stop_reason:
            self._interrupt(sweeper)
        elif kind == "suspend":
            sweeper.suspended_until = self.sim.now + 6 * HEARTBEAT_S  # longer than the grace (4 beats)
        elif kind == "checkpoint":
            if not self._destroy_a_checkpoint():
                return
        elif kind == "settings":
            self._open_with_other_settings()
        else:
            return  # not applicable here ("extend" is applied once the sweep has finished)
        self.faults[kind] += 1
        self.faults_left -= 1

    def _interrupt(self, sweeper: Sweeper) -> None:
        actors = [a for a in self.sim.actors if a.group is sweeper and a.state != DONE]
        workers = [a for a in actors if "/worker" in a.name]
        if len(workers) == 1:  # one worker runs in the main thread: Ctrl-C lands wherever it is
            if self.sim.steps_of[workers[0]]:  # (before its first turn it lands in the sweep's set-up)
                workers[0].pending = KeyboardInterrupt()
            return
        assert sweeper.loop is not None
        sweeper.loop.stop_reason = "interrupted"  # the main thread's join() takes it (_run_workers)
        for worker in workers:
            if worker.in_job is not None:  # SIGINT reaches every job's process
                worker.pending = KeyboardInterrupt()

    def _destroy_a_checkpoint(self) -> bool:
        files = sorted(p for p in self.checkpoints.glob("config-*/*.ckpt") if p.is_file())
        if not files:
            return False
        path = self.rng.choice(files)
        self.hit.add(int(path.parent.name.removeprefix("config-")))
        if self.rng.random() < 0.5:
            path.unlink()
        else:
            path.write_text(path.read_text()[:1])
        return True

    def _open_with_other_settings(self) -> None:
        other = _scheduling.Hyperband(budget=self.plan.budget, reduction_factor=self.plan.eta + 1)
        study = optuna.load_study(study_name=self.study_name, storage=self.inner)
        try:
            keep_scheduler(study, other, "sim")
        except SweepConfigError:
            return
        self.violations.append("a sweeper with other scheduler settings was let in")

    # ------------------------------------------------------------------ a schedule
    def run(self) -> None:
        for _ in range(self.plan.sweepers):
            self.start_sweeper(self.plan.n_trials)
        self.sim.run(self.between)
        while self.restarts_due:  # sweepers killed at the very end are started again
            self.sim.now = max(self.sim.now, min(d[0] for d in self.restarts_due))
            self.between_restarts_only()
            self.sim.run(self.between)
        if self.faults_left > 0 and self.rng.random() < 0.3:  # extend the finished sweep
            self.faults["extend"] += 1
            self.extended = True
            self.start_sweeper(self.plan.n_trials + self.rng.randint(1, 4))
            self.sim.run(self.between)
            while self.restarts_due:
                self.sim.now = max(self.sim.now, min(d[0] for d in self.restarts_due))
                self.between_restarts_only()
                self.sim.run(self.between)

    def between_restarts_only(self) -> None:
        for due in [d for d in self.restarts_due if d[0] <= self.sim.now]:
            self.restarts_due.remove(due)
            self.start_sweeper(due[1])

    @property
    def n_trials(self) -> int:
        return max(s.n_trials for s in self.sweepers)


class Checked(_scheduling.Hyperband):
    """The real scheduler, each decision compared with the reference in fault-free schedules (I6)."""

    def __init__(self, world: World, budget: int, eta: int, brackets: int) -> None:
        super().__init__(budget=budget, reduction_factor=eta, brackets=brackets)
        self.world = world

    def _compared(self) -> bool:
        world = self.world
        return not world.faults and world.plan.objectives == 1

    def on_report(
        self, view: _view.StudyView, trial: optuna.trial.FrozenTrial, epoch: int, can_pause: bool
    ) -> str:
        decision = super().on_report(view, trial, epoch, can_pause)
        self.world.decisions += 1
        if self._compared():
            self.world.compared += 1
            expected = reference_on_report(view, trial.number, epoch, can_pause, self)
            if decision != expected:
                self.world.violations.append(
                    f"I6: trial {trial.number} at epoch {epoch}: {decision}, the reference says {expected}"
                )
        return decision

    def promotion(self, view: _view.StudyView) -> _view.Configuration | None:
        chosen = super().promotion(view)
        if self._compared():
            self.world.compared += 1
            expected = reference_promotion(view, self)
            if (chosen.number if chosen else None) != expected:
                self.world.violations.append(
                    f"I6: promotion of {chosen.number if chosen else None}, the reference promotes {expected}"
                )
        return chosen


# --------------------------------------------------------------------------------------------------
# The reference: asynchronous Hyperband's promotion rule, from the raw trials of a view
# --------------------------------------------------------------------------------------------------
def _raw(view: _view.StudyView) -> tuple[dict[int, dict[int, float]], dict[int, int], dict[int, int | None]]:
    """values[configuration][epoch], bracket[configuration], paused_at[configuration] from the trials
    alone: a trial's configuration is its `config` attribute; a claim that lost (not the lowest of the
    trials that follow one trial) or a surplus trial never counts."""
    claims: dict[int, int] = {}
    for t in view.trials:
        before = t.user_attrs.get(names.FOLLOWS_ATTR)
        if before is not None and not t.user_attrs.get(names.SURPLUS_ATTR):
            claims[before] = min(claims.get(before, t.number), t.number)
    values: dict[int, dict[int, float]] = defaultdict(dict)
    bracket: dict[int, int] = {}
    last: dict[int, optuna.trial.FrozenTrial] = {}
    for t in view.trials:
        before = t.user_attrs.get(names.FOLLOWS_ATTR)
        if t.user_attrs.get(names.SURPLUS_ATTR) or (before is not None and claims[before] != t.number):
            continue
        config = int(t.user_attrs.get(names.CONFIG_ATTR, t.number))
        bracket.setdefault(config, int(t.user_attrs.get(names.BRACKET_ATTR, 0)))
        values[config].update({int(e): float(v) for e, v in t.intermediate_values.items()})
        last[config] = t
    paused = {
        c: int(t.user_attrs[names.PAUSED_ATTR]["epoch"])
        if t.state == States.PRUNED and t.user_attrs.get(names.PAUSED_ATTR)
        else None
        for c, t in last.items()
    }
    return values, bracket, paused


def _reference_top(values: dict[int, dict[int, float]], bracket: dict[int, int], b: int, rung: int, eta: int,
                   maximize: bool) -> list[int]:  # fmt: skip
    there = {c: v[rung] for c, v in values.items() if bracket[c] == b and rung in v}
    finite = sorted(
        (c for c in there if math.isfinite(there[c])), key=lambda c: (-there[c] if maximize else there[c], c)
    )
    return finite[: len(there) // eta]


def reference_promotion(view: _view.StudyView, hb: _scheduling.Hyperband) -> int | None:
    values, bracket, paused = _raw(view)
    maximize = view.directions[0] == "maximize"
    for rung in sorted({r for r in paused.values() if r is not None}, reverse=True):
        for b in sorted({bracket[c] for c, r in paused.items() if r == rung}):
            for c in _reference_top(values, bracket, b, rung, hb.eta, maximize):
                if paused[c] == rung and view.sees_checkpoint(
                    str(view.configurations[c].checkpoint["path"])  # type: ignore[index]
                ):
                    return c
    return None


def reference_on_report(
    view: _view.StudyView, number: int, epoch: int, can_pause: bool, hb: _scheduling.Hyperband
) -> str:
    trial = next(t for t in view.trials if t.number == number)
    values, bracket, _ = _raw(view)
    config = int(trial.user_attrs.get(names.CONFIG_ATTR, number))
    if (trial.user_attrs.get(names.RESUME_ATTR) or {}).get("to_budget"):
        return "stop" if not math.isfinite(values[config][epoch]) and epoch < hb.budget else "continue"
    b = bracket[config]
    rungs = [hb.min_resource * hb.eta**b * hb.eta**k for k in range(10)]
    if epoch >= hb.budget or epoch not in rungs:
        return "continue"
    if not math.isfinite(values[config][epoch]):
        return "stop"
    maximize = view.directions[0] == "maximize"
    if config in _reference_top(values, bracket, b, epoch, hb.eta, maximize):
        promoted = reference_promotion(view, hb)
        paused_at = _raw(view)[2].get(promoted) if promoted is not None else None
        return "pause" if can_pause and paused_at is not None and paused_at > epoch else "continue"
    return "pause" if can_pause else "stop"


# --------------------------------------------------------------------------------------------------
# The invariants
# --------------------------------------------------------------------------------------------------
def check(world: World) -> list[str]:
    violations = list(world.violations)
    view = _view.StudyView.read(world.inner, world.study_id, world.n_trials)
    configs = view.configurations
    # I1
    if len(configs) != world.n_trials:
        violations.append(f"I1: {len(configs)} configurations, n_trials {world.n_trials}")
    # I5
    if view.running:
        violations.append(f"I5: trials {[t.number for t in view.running]} left running or waiting")
    # I3: none lost
    for config in configs.values():
        if config.state in (_view.COMPLETE, _view.STOPPED):
            continue
        if config.state == _view.FAILED and _failed_by_its_own_doing(config, world):
            continue
        if config.number in world.hit:
            continue  # a fault destroyed its checkpoint
        violations.append(f"I3: configuration {config.number} ended {config.state}")
    # I4: an epoch trained twice only where a fault ended (or took over) the job that trained it
    trained: dict[tuple[int, int], list[int]] = defaultdict(list)
    for config, epoch, trial in world.epochs:
        trained[(config, epoch)].append(trial)
    ended_by_fault = {t.number for t in view.trials if t.state == States.FAIL}
    duplicates = 0
    for (config, epoch), trials in trained.items():
        duplicates += len(trials) - 1
        normal = [t for t in trials if t not in ended_by_fault]
        if len(normal) > 1 and config not in world.hit:
            violations.append(f"I4: epoch {epoch} of configuration {config} trained by trials {trials}")
    # The results count what fault-ended trials reported; each fault adds at most the epoch in progress.
    if duplicates > view.retrained_epochs() + len(ended_by_fault) + world.overlaps_by_fault:
        violations.append(f"I4: {duplicates} epochs trained twice, {view.retrained_epochs()} reported")
    # I7: checkpoints exactly for the configurations that may still resume (none, once finished)
    files = {p for p in world.checkpoints.glob("config-*/*.ckpt")} if world.checkpoints.exists() else set()
    if files:
        violations.append(f"I7: checkpoints left after the sweep finished: {sorted(p.name for p in files)}")
    return violations


def _failed_by_its_own_doing(config: _view.Configuration, world: World) -> bool:
    """Its job failed (it returned NaN, its checkpoint was corrupt), or its worker died more often than
    a configuration is retried."""
    worker_faults = sum(t.user_attrs.get(names.FAULT_ATTR) == names.FAULT_WORKER for t in config.trials)
    return not config.last.user_attrs.get(names.FAULT_ATTR) or worker_faults > _view.MAX_WORKER_RETRIES


# --------------------------------------------------------------------------------------------------
@dataclass
class Schedule:
    seed: int
    plan: Plan
    violations: list[str]
    faults: Counter[str]
    writes: int
    steps: int
    decisions: int
    compared: int
    retrained_epochs: int
    overlaps_by_fault: int


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="bohb-sim-", dir=shm if shm.is_dir() else None))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def simulate(seed: int, storages: tuple[str, ...] = ("memory",), plan: Plan | None = None) -> Schedule:
    """One schedule, drawn from `seed`; the same seed replays it."""
    plan = plan or Plan.draw(seed, storages)
    with scratch() as root:
        world = World(plan, root)
        try:
            world.run()
            violations = check(world)
        except RuntimeError as exc:
            violations = [f"the schedule failed: {exc}"]
        view = _view.StudyView.read(world.inner, world.study_id)
        world.close()
        return Schedule(
            seed, plan, violations, world.faults, world.writes, world.sim.steps, world.decisions,
            world.compared, view.retrained_epochs(), world.overlaps_by_fault,
        )  # fmt: skip


if __name__ == "__main__":  # python tests/simulation.py SEED: replay one schedule
    import sys

    result = simulate(int(sys.argv[1]), tuple(sys.argv[2:]) or ("memory",))
    print(result.plan)
    print(dict(result.faults), result.writes, "writes", result.steps, "turns")
    print("\n".join(result.violations) or "no violation")
    os._exit(0)
