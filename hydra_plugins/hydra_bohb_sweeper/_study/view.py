"""The study as every decision sees it: one read of its trials, turned into configurations.

A *configuration* is one point of the search space that a sweep trains, possibly in several
*segments* (trials): its first trial trains from scratch up to a rung and pauses there with a
checkpoint; a later trial continues it from that checkpoint once it is promoted. A trial that a fault
ended (its sweeper stopped beating, Ctrl-C, a dead worker process) is taken over by a retry that
starts where it started. Every later segment *follows* the trial it takes over from, and only the
lowest-numbered trial that follows a given trial counts: sweepers that claim one step at once each
create a follower, and all of them see the same winner (see _running/claims.py).

`StudyView.read` is the one read a decision needs: the sweeper's next step, a job's decision at a
rung, the quota, the end of a sweep. Decisions are pure functions of a view, so every process that
reads the same study decides alike, and the fault simulation (tests/simulation) can drive them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from hydra_plugins.hydra_bohb_sweeper import names

States = optuna.trial.TrialState
# What a configuration is doing now, as results and the console call it. INTERRUPTED: a fault ended its
# last trial; a retry continues it from where that trial started.
RUNNING, PAUSED, COMPLETE, STOPPED, FAILED, INTERRUPTED = (
    "running", "paused", "complete", "stopped", "failed", "interrupted",
)  # fmt: skip
Value = tuple[float, ...]  # one number per objective
# How often a configuration is retried after its worker process died: it may be what kills its worker
# (out of memory), but a joblib pool that breaks takes down every trial in flight, so one death proves
# nothing. Other faults (a stopped sweeper, Ctrl-C) are never the configuration's doing: no limit.
MAX_WORKER_RETRIES = 2
RETRY_HISTORY = "retry_history"  # what optuna.storages.RetryFailedTrialCallback.retry_history reads


@dataclass
class Configuration:
    """One configuration and the segments (trials) that trained it, in order."""

    number: int  # its first trial's number: the configuration's name in results, the console and W&B
    bracket: int
    trials: list[optuna.trial.FrozenTrial]
    values: dict[int, Value] = field(default_factory=dict)  # epoch -> the objective(s) reported then
    state: str = RUNNING
    # Where its next segment starts: a paused configuration's {"epoch", "path"}; for an interrupted one
    # the checkpoint its interrupted trial had started from (None: from scratch).
    checkpoint: dict[str, Any] | None = None
    discarded: bool = False  # paused when a sweep finished, which deleted its checkpoint (now STOPPED)

    @property
    def epochs(self) -> int:
        return max(self.values, default=0)

    @property
    def last(self) -> optuna.trial.FrozenTrial:
        return self.trials[-1]

    @property
    def paused_at(self) -> int | None:
        return int(self.checkpoint["epoch"]) if self.state == PAUSED and self.checkpoint else None

    @property
    def resume_epoch(self) -> int:
        """Epochs its next segment does not train again."""
        return int(self.checkpoint["epoch"]) if self.checkpoint else 0


def reported_values(trial: optuna.trial.FrozenTrial) -> dict[int, Value]:
    """epoch -> objective(s) the trial reported (multi-objective vectors live in a user attribute:
    Optuna refuses `trial.report` in multi-objective studies)."""
    vectors = trial.user_attrs.get(names.VALUES_BY_EPOCH_ATTR)
    if vectors:
        return {int(step): tuple(float(v) for v in values) for step, values in vectors.items()}
    return {int(step): (float(value),) for step, value in trial.intermediate_values.items()}


def config_number(trial: optuna.trial.FrozenTrial) -> int:
    return int(trial.user_attrs.get(names.CONFIG_ATTR, trial.number))


def follows(trial: optuna.trial.FrozenTrial) -> int | None:
    """The trial this one takes over from (None: a configuration's first trial). Continuations made
    before `follows` existed name the paused trial they resume."""
    if names.FOLLOWS_ATTR in trial.user_attrs:
        return int(trial.user_attrs[names.FOLLOWS_ATTR])
    resume = trial.user_attrs.get(names.RESUME_ATTR)
    return int(resume["trial"]) if resume and "trial" in resume else None


def retried(trials: Sequence[optuna.trial.FrozenTrial]) -> set[int]:
    """Trials that Optuna's retry callback re-queued in studies of earlier versions (the retry stands
    in for them): the system attribute its `retry_history` reads, read directly (that function warns
    as experimental on every call, and views are built at every decision)."""
    return {int(n) for t in trials for n in t.system_attrs.get(RETRY_HISTORY, ())}


def _fault_ended(trial: optuna.trial.FrozenTrial) -> bool:
    return trial.state == States.FAIL and bool(trial.user_attrs.get(names.FAULT_ATTR))


def _sees(path: str) -> bool:
    return Path(path).exists()


@dataclass
class StudyView:
    trials: list[optuna.trial.FrozenTrial]  # all of them, by number
    directions: list[str]
    configurations: dict[int, Configuration]  # by number, those that count towards n_trials
    surplus: set[int]  # trials that never run or never count (lost claims, unstarted beyond the quota)
    discarded: set[int]  # paused trials whose checkpoint a finished sweep discarded
    n_trials: int | None = None  # the quota of the sweeper that reads (None: a job's view)
    sees: Callable[[str], bool] = _sees  # whether this reader sees a checkpoint (its filesystem)
    study: optuna.Study | None = None  # for Optuna's own pruners, which read the study themselves
    _seen: dict[str, bool] = field(default_factory=dict, repr=False)

    @classmethod
    def read(
        cls, storage: optuna.storages.BaseStorage, study_id: int, n_trials: int | None = None,
        sees: Callable[[str], bool] = _sees, directions: Sequence[str] | None = None,
    ) -> StudyView:  # fmt: skip
        """The view of the study from one read of its trials (and of its attributes)."""
        trials = storage.get_all_trials(study_id, deepcopy=False)
        attrs = storage.get_study_system_attrs(study_id)
        if directions is None:
            directions = [d.name.lower() for d in storage.get_study_directions(study_id)]
        return cls.of(trials, directions, attrs, n_trials, sees)

    @classmethod
    def of(
        cls, trials: Iterable[optuna.trial.FrozenTrial], directions: Sequence[str],
        study_system_attrs: dict[str, Any] | None = None, n_trials: int | None = None,
        sees: Callable[[str], bool] = _sees,
    ) -> StudyView:  # fmt: skip
        trials = sorted(trials, key=lambda t: t.number)
        discarded = {
            int(key.removeprefix(names.DISCARDED_PREFIX))
            for key in study_system_attrs or {}
            if key.startswith(names.DISCARDED_PREFIX)
        }
        configs, surplus = _configurations(trials, discarded, n_trials)
        return cls(trials, list(directions), configs, surplus, discarded, n_trials, sees)

    # ------------------------------------------------------------------ what decisions ask
    def sees_checkpoint(self, path: str) -> bool:
        if path not in self._seen:
            self._seen[path] = self.sees(path)
        return self._seen[path]

    def resumable(self, config: Configuration) -> bool:
        """Whether this reader can start `config`'s next segment: from scratch, or from a checkpoint it
        sees (several machines without a shared filesystem each resume their own)."""
        if config.state not in (PAUSED, INTERRUPTED):
            return False
        return config.checkpoint is None or self.sees_checkpoint(str(config.checkpoint["path"]))

    @property
    def running(self) -> list[optuna.trial.FrozenTrial]:
        """Trials in flight (or queued), surplus ones included: they end too, one way or another."""
        return [t for t in self.trials if t.state in (States.RUNNING, States.WAITING)]

    def config_of(self, trial_number: int) -> Configuration | None:
        for config in self.configurations.values():
            if any(t.number == trial_number for t in config.trials):
                return config
        return None

    def index_of(self, trial_number: int) -> int:
        """How many configurations the study started before the one whose first trial is
        `trial_number`: trial numbers (unique, in creation order) decide, the same way in every
        sweeper."""
        return sum(number < trial_number for number in self.configurations)

    def followers(self, trial_number: int) -> list[int]:
        """Trials that follow `trial_number`, explicit surplus ones excluded, lowest first."""
        return sorted(
            t.number
            for t in self.trials
            if follows(t) == trial_number and not t.user_attrs.get(names.SURPLUS_ATTR)
        )

    def retrained_epochs(self) -> int:
        """Epochs that faults made a retry train again: every epoch a fault-ended trial reported."""
        return sum(
            len(reported_values(t)) for c in self.configurations.values() for t in c.trials if _fault_ended(t)
        )


def _configurations(
    trials: list[optuna.trial.FrozenTrial], discarded: set[int], n_trials: int | None
) -> tuple[dict[int, Configuration], set[int]]:
    surplus = {t.number for t in trials if t.user_attrs.get(names.SURPLUS_ATTR)} | retried(trials)
    # A trial is taken over by its lowest-numbered follower; later followers lost the claim.
    successor: dict[int, int] = {}
    for t in trials:
        if t.number in surplus or (before := follows(t)) is None:
            continue
        if before in successor:
            surplus.add(t.number)
        else:
            successor[before] = t.number
    configs: dict[int, Configuration] = {}
    config_of: dict[int, Configuration] = {}  # trial number -> its configuration
    for t in trials:
        if t.number in surplus:
            continue
        before = follows(t)
        if before is not None:
            config = config_of.get(before)
            if config is None:  # it follows a trial that does not count (a legacy study's oddity)
                surplus.add(t.number)
                continue
        else:
            # A first trial that a fault ended before it reported anything, beyond the quota and taken
            # over by nobody: a sweeper killed between asking for it and finding the quota spent.
            if (
                n_trials is not None
                and len(configs) >= n_trials
                and _fault_ended(t)
                and not reported_values(t)
                and t.number not in successor
            ):
                surplus.add(t.number)
                continue
            number = config_number(t)
            bracket = t.user_attrs.get(names.BRACKET_ATTR)
            config = configs.get(number) or Configuration(number, int(bracket or 0), [])
            configs[number] = config
        config.trials.append(t)
        config.values.update(reported_values(t))
        config_of[t.number] = config
    for config in configs.values():
        config.state, config.checkpoint = _state_of(config, discarded)
        config.discarded = config.last.number in discarded and config.state == STOPPED
    return configs, surplus


def _state_of(config: Configuration, discarded: set[int]) -> tuple[str, dict[str, Any] | None]:
    trial = config.last
    if trial.state in (States.RUNNING, States.WAITING):
        return RUNNING, None
    if trial.state == States.COMPLETE:
        return COMPLETE, None
    if trial.state == States.PRUNED:
        paused = trial.user_attrs.get(names.PAUSED_ATTR)
        if paused and trial.number not in discarded:
            return PAUSED, {"epoch": int(paused["epoch"]), "path": str(paused["path"])}
        return STOPPED, None
    if _fault_ended(trial):
        worker_faults = sum(t.user_attrs.get(names.FAULT_ATTR) == names.FAULT_WORKER for t in config.trials)
        if worker_faults <= MAX_WORKER_RETRIES:
            resume = trial.user_attrs.get(names.RESUME_ATTR)
            return INTERRUPTED, (
                {"epoch": int(resume["epoch"]), "path": str(resume["path"])} if resume else None
            )
    return FAILED, None


def configurations(trials: Iterable[optuna.trial.FrozenTrial]) -> dict[int, Configuration]:
    """The configurations of a study's trials, by number (no quota; paused ones whose checkpoint a
    finished sweep discarded look paused: use `view_of` where the study is at hand)."""
    return _configurations(sorted(trials, key=lambda t: t.number), set(), None)[0]


def view_of(study: optuna.Study) -> StudyView:
    """The view of an open study (no quota: for outputs and reports)."""
    storage = study._storage
    return StudyView.read(storage, storage.get_study_id_from_name(study.study_name))
