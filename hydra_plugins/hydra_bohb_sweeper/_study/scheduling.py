"""Every scheduling decision, as pure functions of one view of the study (_study/view.py): what a job
does at the end of an epoch, and what a free worker does next.

    on_report(view, trial, epoch, can_pause) -> CONTINUE | PAUSE | STOP
    next_step(view, own)                     -> RETRY c | PROMOTE c | NEW | CLOSE c | WAIT | DONE

The sweeper's loop only carries steps out (claims, launches, tells); the quota is `view.n_trials`;
jobs and the Lightning callback only ask `on_report` through the client. The shape is Syne Tune's
`TrialScheduler` (`on_trial_result`, `suggest`) with Hyperband's rungs as its strategy. Because
every process that reads the same study decides alike, the sweeper's workers, other sweepers on the
same storage and the jobs themselves agree, and a killed sweep resumes where it stopped. Schedulers
are recorded on the study under a public name (see `REGISTRY`), never an import path, so modules can
move without breaking the resume of a study.

Schedulers:
  Hyperband(mode="promotion")  pause at each rung, continue when promoted (BOHB / ASHA promotion)
  Hyperband(mode="stopping")   at each rung go on or stop for good (for apps that cannot checkpoint)
  NoPruning                    every trial trains the whole budget
  OptunaPruner                 any Optuna pruner, stopping only (single objective)
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from hydra_plugins.hydra_bohb_sweeper import names
from hydra_plugins.hydra_bohb_sweeper._study.view import (
    COMPLETE,
    INTERRUPTED,
    RUNNING,
    Configuration,
    StudyView,
    Value,
)

# What a job does after reporting an epoch.
CONTINUE, PAUSE, STOP = "continue", "pause", "stop"
# What a free worker does next.
RETRY = "retry"  # continue an interrupted configuration from where its interrupted trial started
PROMOTE = "promote"  # continue a paused configuration promoted at its rung
NEW = "new"  # start a new configuration (the quota is not spent)
CLOSE = "close"  # train a bracket's best paused configuration to the budget (nobody finished it)
WAIT = "wait"  # nothing to do until a trial in flight ends
DONE = "done"  # nothing left to do


@dataclass(frozen=True)
class Step:
    kind: str
    config: Configuration | None = None  # RETRY, PROMOTE, CLOSE: the configuration to continue
    bracket: int | None = None  # NEW, CLOSE: its bracket

    @property
    def to_budget(self) -> bool:
        """The segment trains to the budget, pausing nowhere: a bracket's closing (or its retry)."""
        if self.kind == CLOSE:
            return True
        resume = self.config.last.user_attrs.get(names.RESUME_ATTR) if self.config else None
        return self.kind == RETRY and bool(resume and resume.get("to_budget"))


# ----------------------------------------------------------------------------------------------------
# Ranking at a rung
# ----------------------------------------------------------------------------------------------------
def best_first(
    entries: Sequence[tuple[int, Value]], directions: Sequence[str]
) -> list[int]:  # fmt: skip
    """Configuration numbers ordered best first by their values at one rung. One objective: by value
    (ties: the earlier configuration first). Several: by non-dominated front, then by NSGA-II's
    crowding distance within a front (the ends of a front first), the selection of MO-ASHA. A value
    that is not finite (NaN, an infinity: a diverged configuration) ranks after every finite one, in
    either direction."""
    sign = [1.0 if d == "minimize" else -1.0 for d in directions]
    finite = [i for i, (_, value) in enumerate(entries) if all(map(math.isfinite, value))]
    diverged = [i for i in range(len(entries)) if i not in set(finite)]
    points = {i: [s * v for s, v in zip(sign, entries[i][1], strict=True)] for i in finite}
    if len(directions) == 1:
        ranked = sorted(finite, key=lambda i: (points[i][0], entries[i][0]))
    else:
        ranked = []
        local = [points[i] for i in finite]
        for front in nondominated_fronts(local):
            distance = crowding(local, front)
            ranked += [finite[j] for j in sorted(front, key=lambda j: (-distance[j], entries[finite[j]][0]))]
    ranked += sorted(diverged, key=lambda i: entries[i][0])
    return [entries[i][0] for i in ranked]


def is_finite(value: Value) -> bool:
    return all(math.isfinite(v) for v in value)


def nondominated_fronts(points: Sequence[Sequence[float]]) -> list[list[int]]:
    """Indices of `points` (to minimise in every coordinate) by front: the first front is dominated by
    no point, the second only by points of the first, and so on."""
    remaining = list(range(len(points)))
    fronts = []
    while remaining:
        front = [i for i in remaining if not any(_dominates(points[j], points[i]) for j in remaining)]
        fronts.append(front)
        remaining = [i for i in remaining if i not in front]
    return fronts


def crowding(points: Sequence[Sequence[float]], front: Sequence[int]) -> dict[int, float]:
    """NSGA-II's crowding distance of each point of `front`: its ends are infinitely far."""
    distance = dict.fromkeys(front, 0.0)
    for axis in range(len(points[front[0]])):
        ordered = sorted(front, key=lambda i: points[i][axis])
        low, high = points[ordered[0]][axis], points[ordered[-1]][axis]
        distance[ordered[0]] = distance[ordered[-1]] = math.inf
        if high == low:
            continue
        for before, here, after in zip(ordered, ordered[1:], ordered[2:], strict=False):
            distance[here] += (points[after][axis] - points[before][axis]) / (high - low)
    return distance


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


# ----------------------------------------------------------------------------------------------------
# Schedulers
# ----------------------------------------------------------------------------------------------------
class Scheduler:
    """What every scheduler answers, from a view of the study alone. `name` is its public name
    (REGISTRY)."""

    name = ""
    pauses = False  # whether trials pause at rungs (and need checkpoints)

    def record(self) -> dict[str, Any]:
        """What the study stores so that every process rebuilds this scheduler (`from_record`)."""
        return {"name": self.name}

    def describe(self, n_objectives: int = 1) -> str:
        """One phrase for the sweep's first console line."""
        return "no pruning"

    def bracket_of(self, index: int) -> int:
        """The bracket of the `index`-th configuration of the study (0 = the first)."""
        return 0

    def on_report(self, view: StudyView, trial: optuna.trial.FrozenTrial, epoch: int, can_pause: bool) -> str:
        """CONTINUE, PAUSE or STOP for `trial`, which has just reported `epoch` (`view` was read after
        the report). `can_pause`: the job saves a checkpoint when told to pause (otherwise it is only
        ever told to go on or stop)."""
        return CONTINUE

    def promotion(self, view: StudyView) -> Configuration | None:
        """The paused configuration a free worker resumes now, if any."""
        return None

    def closing(self, view: StudyView) -> Configuration | None:
        """A paused configuration to train to the budget because its bracket will otherwise end with
        nothing complete (None: no bracket needs it)."""
        return None

    def next_step(self, view: StudyView, own: Collection[int] = ()) -> Step:
        """What a free worker of a sweeper does next; `own`: the numbers of that sweeper's trials in
        flight, `view.n_trials` its quota.

        A retry comes first (it stands in for a configuration already counted), then a promotion (a
        worker that falls free resumes a promoted configuration before it samples a new one), then a
        new configuration while the quota lasts (or a queued one: `study.enqueue_trial`, counted in
        the quota), then the closing of a bracket that nobody finished.
        With nothing to do, a worker waits while trials are in flight that may still make a paused
        configuration promotable, or die and need a retry; otherwise it is done.
        """
        for config in view.configurations.values():
            if config.state == INTERRUPTED and view.resumable(config):
                return Step(RETRY, config, config.bracket)
        if (promoted := self.promotion(view)) is not None:
            return Step(PROMOTE, promoted, promoted.bracket)
        started = len(view.configurations)
        queued = any(t.state == optuna.trial.TrialState.WAITING for t in view.trials)  # enqueue_trial
        if queued or (view.n_trials is not None and started < view.n_trials):
            return Step(NEW, bracket=self.bracket_of(started))
        if (closed := self.closing(view)) is not None:
            return Step(CLOSE, closed, closed.bracket)
        running = [t.number for t in view.running]
        if any(number not in own for number in running) or (self.pauses and running):
            return Step(WAIT)
        return Step(DONE)


class NoPruning(Scheduler):
    """Every trial trains the whole budget (TPE or random search alone)."""

    name = "none"


class Hyperband(Scheduler):
    """Hyperband over epochs with rungs at min_resource * reduction_factor**k below the budget.

    Configurations are dealt to brackets in the order of a Hyperband iteration, the most aggressive
    bracket first (bracket b starts at min_resource * reduction_factor**b epochs), in Hyperband's
    proportions; `brackets` limits how many are used (1: asynchronous successive halving alone). By
    default the last bracket, whose trials start at the full budget and are never compared, is left
    out. Trials are compared with the trials of their own bracket at each rung.

    mode="promotion": a trial that reaches a rung goes on only if it ranks in the top 1/eta of all
    configurations of its bracket that reached the rung (itself included); otherwise it pauses with a
    checkpoint, and a free worker resumes it once it ranks so (ASHA's promotion rule, BOHB's rungs).
    A job that cannot pause is stopped instead, by the stopping rule.
    mode="stopping": the same rule stops the trial for good; while fewer than eta configurations
    reached a rung, a trial goes on only if none of them is better.
    A configuration whose value at a rung is not finite (it diverged) is stopped there, and never
    takes a place in the top 1/eta.
    """

    name = "hyperband"

    def __init__(
        self, budget: int, min_resource: int = 1, reduction_factor: int = 3,
        brackets: int | None = None, mode: str = "promotion",
    ) -> None:  # fmt: skip
        if mode not in ("promotion", "stopping"):
            raise ValueError(f"Hyperband(mode={mode!r}): mode must be 'promotion' or 'stopping'")
        if min_resource < 1 or budget < min_resource or reduction_factor < 2:
            raise ValueError(
                f"Hyperband(budget={budget}, min_resource={min_resource}, reduction_factor="
                f"{reduction_factor}): need 1 <= min_resource <= budget and reduction_factor >= 2"
            )
        self.budget, self.min_resource, self.eta, self.mode = budget, min_resource, reduction_factor, mode
        self.pauses = mode == "promotion"
        # Brackets whose first rung lies below the budget; one more starts at the budget itself.
        self.max_brackets = len(self._rungs_from(min_resource)) + 1
        if brackets is not None and not 1 <= brackets <= self.max_brackets:
            raise ValueError(
                f"Hyperband(brackets={brackets}): with budget {budget}, min_resource {min_resource} "
                f"and reduction_factor {reduction_factor} there are 1 to {self.max_brackets} brackets"
            )
        self.brackets = brackets if brackets is not None else max(1, self.max_brackets - 1)
        s_max = self.max_brackets - 1
        # Hyperband's configurations per bracket in one iteration: ceil((s_max+1)/(s+1) * eta**s).
        self.allocation = [
            math.ceil((s_max + 1) / (s_max - b + 1) * reduction_factor ** (s_max - b))
            for b in range(self.brackets)
        ]

    def _rungs_from(self, epoch: int) -> list[int]:
        rungs = []
        while epoch < self.budget:
            rungs.append(epoch)
            epoch *= self.eta
        return rungs

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name, "budget": self.budget, "min_resource": self.min_resource,
            "reduction_factor": self.eta, "brackets": self.brackets, "mode": self.mode,
        }  # fmt: skip

    def describe(self, n_objectives: int = 1) -> str:
        rungs = ", ".join(map(str, self.rungs(0)))
        how = "trials pause at a rung and resume when promoted" if self.pauses else "trials stop at a rung"
        rank = "; ranked by Pareto front, then crowding" if n_objectives > 1 else ""
        brackets = "1 bracket" if self.brackets == 1 else f"{self.brackets} brackets"
        return f"Hyperband at epochs {rungs} of {self.budget}, {brackets}, eta {self.eta}: {how}{rank}"

    def rungs(self, bracket: int) -> list[int]:
        """The epochs at which the trials of `bracket` are compared (below a full trial's budget)."""
        return self._rungs_from(self.min_resource * self.eta**bracket)

    def bracket_of(self, index: int) -> int:
        position = index % sum(self.allocation)
        for bracket, size in enumerate(self.allocation):
            if position < size:
                return bracket
            position -= size
        raise AssertionError("unreachable")

    def ranking(self, view: StudyView, bracket: int, rung: int) -> list[int]:
        """The configurations of `bracket` that reached `rung`, best first."""
        entries = [
            (c.number, c.values[rung])
            for c in view.configurations.values()
            if c.bracket == bracket and rung in c.values
        ]
        return best_first(entries, view.directions)

    def top(self, view: StudyView, bracket: int, rung: int) -> list[int]:
        """The configurations that hold the places of the top 1/eta of `bracket` at `rung` (there are
        as many places as 1/eta of those that reached it). A diverged configuration takes no place, nor
        does one whose checkpoint a finished sweep discarded: the next one takes it."""
        ranking = self.ranking(view, bracket, rung)
        configs = view.configurations
        eligible = [n for n in ranking if is_finite(configs[n].values[rung]) and not configs[n].discarded]
        return eligible[: len(ranking) // self.eta]

    def on_report(self, view: StudyView, trial: optuna.trial.FrozenTrial, epoch: int, can_pause: bool) -> str:
        config = view.config_of(trial.number)
        if config is None:
            return STOP  # a trial that does not count (a claim it lost): it must not train
        diverged = not is_finite(config.values.get(epoch, (math.nan,)))
        if (trial.user_attrs.get(names.RESUME_ATTR) or {}).get("to_budget"):
            # Trains to the budget to close its bracket, unless it diverged on the way.
            return STOP if diverged and epoch < self.budget else CONTINUE
        if epoch >= self.budget or epoch not in self.rungs(config.bracket):
            return CONTINUE
        if diverged:
            return STOP  # not worth a checkpoint, and never promoted
        if config.number in self.top(view, config.bracket, epoch):
            if self.pauses and can_pause and self._promotion_above(view, epoch):
                # ASHA promotes from the highest rung first: this worker resumes that configuration,
                # and this one, promotable here, waits paused for the next free worker.
                return PAUSE
            return CONTINUE
        if self.pauses and can_pause:
            return PAUSE
        # Stopping's grace: while fewer than eta configurations reached the rung, the best goes on.
        ranking = self.ranking(view, config.bracket, epoch)
        return CONTINUE if len(ranking) < self.eta and ranking[:1] == [config.number] else STOP

    def _promotion_above(self, view: StudyView, epoch: int) -> bool:
        """Whether a paused configuration is promotable at a rung above `epoch`."""
        config = self.promotion(view)
        return config is not None and (config.paused_at or 0) > epoch

    def promotion(self, view: StudyView) -> Configuration | None:
        """ASHA's choice: the highest rung first, and at a rung the best paused configuration that
        holds a place in its top 1/eta, among those this reader can resume."""
        if not self.pauses:
            return None
        paused = [c for c in view.configurations.values() if c.paused_at is not None]
        for rung in sorted({c.paused_at for c in paused if c.paused_at is not None}, reverse=True):
            for bracket in sorted({c.bracket for c in paused if c.paused_at == rung}):
                for number in self.top(view, bracket, rung):
                    config = view.configurations[number]
                    if config.paused_at == rung and view.resumable(config):
                        return config
        return None

    def closing(self, view: StudyView) -> Configuration | None:
        """A bracket that no configuration finished ends as synchronous successive halving ends, which
        promotes at least one configuration from every rung: its best paused configuration at its
        highest rung trains to the budget. Few configurations (a short sweep) would otherwise all stay
        paused below the budget, with nothing complete to pick or to evaluate. A bracket closes once
        the quota is spent and none of its configurations is in flight or due a retry (so its rankings
        are final); brackets close in parallel."""
        if not self.pauses:
            return None
        configs = view.configurations.values()
        for bracket in sorted({c.bracket for c in configs}):
            members = [c for c in configs if c.bracket == bracket]
            if any(c.state in (COMPLETE, RUNNING, INTERRUPTED) or c.epochs >= self.budget for c in members):
                continue
            paused = [c for c in members if c.paused_at is not None and view.resumable(c)]
            if not paused:
                continue
            highest = max(c.paused_at for c in paused if c.paused_at is not None)
            for number in self.ranking(view, bracket, highest):
                config = view.configurations[number]
                if (
                    config.paused_at == highest
                    and view.resumable(config)
                    and is_finite(config.values[highest])
                ):
                    return config
        return None


class OptunaPruner(Scheduler):
    """Any Optuna pruner (its `_target_` config), deciding as `trial.should_prune()` would: stopping
    only, one objective."""

    name = "optuna"

    def __init__(self, pruner: Mapping[str, Any]) -> None:
        from hydra.utils import instantiate

        self.config = dict(pruner)
        self.pruner: optuna.pruners.BasePruner = instantiate(self.config)

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "pruner": self.config}

    def describe(self, n_objectives: int = 1) -> str:
        return f"{self.config.get('_target_')} stops trials"

    def on_report(self, view: StudyView, trial: optuna.trial.FrozenTrial, epoch: int, can_pause: bool) -> str:
        if view.study is None:
            raise ValueError("an Optuna pruner decides from the study: StudyView.study must be set")
        return STOP if self.pruner.prune(view.study, trial) else CONTINUE


# The public names a study records (study user attribute names.SCHEDULER_ATTR), and the `_target_`s
# that earlier versions recorded (names.PRUNER_ATTR), so that their studies still resume.
REGISTRY: dict[str, type[Scheduler]] = {
    Hyperband.name: Hyperband,
    NoPruning.name: NoPruning,
    OptunaPruner.name: OptunaPruner,
}
LEGACY_TARGETS = {
    "hydra_plugins.hydra_bohb_sweeper._pruners.ParetoHyperbandPruner": Hyperband.name,
    "hydra_plugins.hydra_bohb_sweeper._pruners.no_pruning": NoPruning.name,
    "optuna.pruners.NopPruner": NoPruning.name,
}


def recorded(study_user_attrs: Mapping[str, Any], budget: int | None = None) -> Scheduler:
    """The scheduler a study was made with, as every process that reads the study rebuilds it: by its
    public name (`Scheduler.record`), or from the pruner `_target_` an earlier version stored."""
    if names.SCHEDULER_ATTR in study_user_attrs:
        return from_record(study_user_attrs[names.SCHEDULER_ATTR])
    legacy = study_user_attrs.get(names.PRUNER_ATTR) or {"_target_": "optuna.pruners.NopPruner"}
    return from_legacy_pruner(legacy, budget)


def from_record(record: Mapping[str, Any]) -> Scheduler:
    """The scheduler a study recorded (`Scheduler.record`)."""
    kwargs = dict(record)
    name = kwargs.pop("name")
    if name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise ValueError(f"the study's scheduler {name!r} is unknown to this sweeper (it knows {known})")
    return REGISTRY[name](**kwargs)


def from_legacy_pruner(config: Mapping[str, Any], budget: int | None) -> Scheduler:
    """The scheduler of a study recorded by a version that stored its pruner's `_target_` config: our
    own pruners map to their successors (stopping mode: those studies' trials never paused), any other
    Optuna pruner is used as it is."""
    target = str(config.get("_target_", ""))
    name = LEGACY_TARGETS.get(target)
    if name == Hyperband.name:
        max_resource = int(config.get("max_resource", budget or 27))
        return Hyperband(
            budget=budget or max_resource,
            min_resource=int(config.get("min_resource", 1)),
            reduction_factor=int(config.get("reduction_factor", 3)),
            mode="stopping",
        )
    if name == NoPruning.name:
        return NoPruning()
    return OptunaPruner(config)
