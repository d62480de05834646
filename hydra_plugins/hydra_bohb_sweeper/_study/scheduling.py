"""Which trial goes on, pauses or stops at the end of an epoch, and which paused configuration a free
worker resumes: Hyperband's brackets and rungs over epochs, decided from the study alone.

A *configuration* is one point of the search space that a sweep trains, possibly in several
*segments*: its first trial trains from scratch up to a rung and pauses there with a checkpoint; when
it ranks in the top 1/eta of every configuration of its bracket that reached the rung, a later trial
(a segment of the same configuration) continues from that checkpoint. Each segment is an Optuna trial,
so the sampler sees every rung's values as it sees pruned trials: a paused segment ends PRUNED with
its epochs reported, and a continuation reports the epochs it trains. Nothing trains an epoch twice.

Every decision is derived from the study's trials, never from one process's memory, so the sweeper's
workers, other sweepers on the same storage and the jobs themselves all decide alike, and a killed
sweep resumes where it stopped. The schedulers are recorded on the study under a public name (see
`REGISTRY`), never an import path, so modules can move without breaking the resume of a study.

Schedulers:
  Hyperband(mode="promotion")  pause at each rung, continue when promoted (BOHB / ASHA promotion)
  Hyperband(mode="stopping")   at each rung go on or stop for good (for apps that cannot checkpoint)
  NoPruning                    every trial trains the whole budget
  OptunaPruner                 any Optuna pruner, stopping only (single objective)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from hydra_plugins.hydra_bohb_sweeper import names

States = optuna.trial.TrialState
CONTINUE, PAUSE, STOP = "continue", "pause", "stop"
# What a configuration is doing now, as results and the console call it.
RUNNING, PAUSED, COMPLETE, STOPPED, FAILED = "running", "paused", "complete", "stopped", "failed"
Value = tuple[float, ...]  # one number per objective


@dataclass
class Configuration:
    """One configuration and the segments (trials) that trained it, in order."""

    number: int  # its first trial's number: the configuration's name in results, the console and W&B
    bracket: int
    trials: list[optuna.trial.FrozenTrial]
    values: dict[int, Value] = field(default_factory=dict)  # epoch -> the objective(s) reported then
    state: str = RUNNING
    checkpoint: dict[str, Any] | None = None  # a paused configuration's {"epoch": e, "path": p}

    @property
    def epochs(self) -> int:
        return max(self.values, default=0)

    @property
    def last(self) -> optuna.trial.FrozenTrial:
        return self.trials[-1]

    @property
    def paused_at(self) -> int | None:
        return int(self.checkpoint["epoch"]) if self.state == PAUSED and self.checkpoint else None


def configurations(trials: Iterable[optuna.trial.FrozenTrial]) -> dict[int, Configuration]:
    """The study's configurations by number. Surplus trials (never run) and trials replaced by their
    retry are left out; a trial that names no configuration is its own (studies made before segments,
    and trials the sampler has just created)."""
    trials = list(trials)
    replaced = retried(trials)
    configs: dict[int, Configuration] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        if trial.user_attrs.get(names.SURPLUS_ATTR) or trial.number in replaced:
            continue
        number = int(trial.user_attrs.get(names.CONFIG_ATTR, trial.number))
        config = configs.get(number)
        if config is None:
            bracket = int(trial.user_attrs.get(names.BRACKET_ATTR, 0))
            config = configs[number] = Configuration(number, bracket, [])
        config.trials.append(trial)
        config.values.update(reported_values(trial))
    for config in configs.values():
        config.state, config.checkpoint = _state_of(config.last)
    return configs


def _state_of(trial: optuna.trial.FrozenTrial) -> tuple[str, dict[str, Any] | None]:
    if trial.state in (States.RUNNING, States.WAITING):
        return RUNNING, None
    if trial.state == States.COMPLETE:
        return COMPLETE, None
    if trial.state == States.PRUNED:
        paused = trial.user_attrs.get(names.PAUSED_ATTR)
        return (PAUSED, dict(paused)) if paused else (STOPPED, None)
    return FAILED, None


def reported_values(trial: optuna.trial.FrozenTrial) -> dict[int, Value]:
    """epoch -> objective(s) the trial reported (multi-objective vectors live in a user attribute:
    Optuna refuses `trial.report` in multi-objective studies)."""
    vectors = trial.user_attrs.get(names.VALUES_BY_EPOCH_ATTR)
    if vectors:
        return {int(step): tuple(float(v) for v in values) for step, values in vectors.items()}
    return {int(step): (float(value),) for step, value in trial.intermediate_values.items()}


def retried(trials: Sequence[optuna.trial.FrozenTrial]) -> set[int]:
    """Numbers of the trials that were retried (their retry stands in for them)."""
    import warnings

    with warnings.catch_warnings():  # `retry_history` is "experimental" since Optuna 3.0
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        history = optuna.storages.RetryFailedTrialCallback.retry_history
        return {n for t in trials for n in history(t)}


# ----------------------------------------------------------------------------------------------------
# Ranking at a rung
# ----------------------------------------------------------------------------------------------------
def best_first(
    entries: Sequence[tuple[int, Value]], directions: Sequence[str]
) -> list[int]:  # fmt: skip
    """Configuration numbers ordered best first by their values at one rung. One objective: by value
    (ties: the earlier configuration first). Several: by non-dominated front, then by NSGA-II's
    crowding distance within a front (the ends of a front first), the selection of MO-ASHA."""
    sign = [1.0 if d == "minimize" else -1.0 for d in directions]
    points = [[s * _finite(v) for s, v in zip(sign, value, strict=True)] for _, value in entries]
    if len(directions) == 1:
        order = sorted(range(len(entries)), key=lambda i: (points[i][0], entries[i][0]))
        return [entries[i][0] for i in order]
    ranked: list[int] = []
    for front in nondominated_fronts(points):
        distance = crowding(points, front)
        ranked += sorted(front, key=lambda i: (-distance[i], entries[i][0]))
    return [entries[i][0] for i in ranked]


def _finite(value: float) -> float:
    return value if math.isfinite(value) else math.inf  # NaN (a diverged trial) ranks last


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
def directions_of(study: optuna.Study) -> list[str]:
    return [d.name.lower() for d in study.directions]


def config_number(trial: optuna.trial.FrozenTrial) -> int:
    return int(trial.user_attrs.get(names.CONFIG_ATTR, trial.number))


class Scheduler:
    """What every scheduler answers, from the study alone. `name` is its public name (REGISTRY)."""

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

    def decide(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, epoch: int, can_pause: bool
    ) -> str:
        """CONTINUE, PAUSE or STOP for `trial`, which has just reported `epoch`. `can_pause`: the job
        saves a checkpoint when told to pause (otherwise it is only ever told to go on or stop)."""
        return CONTINUE

    def next_promotion(
        self, study: optuna.Study, resumable: Callable[[Configuration], bool] = lambda c: True
    ) -> Configuration | None:
        """The paused configuration a free worker resumes now, if any."""
        return None

    def closing_promotion(
        self, study: optuna.Study, resumable: Callable[[Configuration], bool] = lambda c: True
    ) -> Configuration | None:
        """Once no configuration will start any more and no trial runs: a paused configuration to train
        to the budget, so that the sweep ends with a complete one (None: nothing left to do)."""
        return None


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

    def ranking(
        self, configs: Mapping[int, Configuration], bracket: int, rung: int, directions: Sequence[str]
    ) -> list[int]:
        """The configurations of `bracket` that reached `rung`, best first."""
        entries = [
            (c.number, c.values[rung]) for c in configs.values() if c.bracket == bracket and rung in c.values
        ]
        return best_first(entries, directions)

    def decide(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, epoch: int, can_pause: bool
    ) -> str:
        if (trial.user_attrs.get(names.RESUME_ATTR) or {}).get("to_budget"):
            return CONTINUE  # promoted to finish its bracket (closing_promotion)
        configs = configurations(study.get_trials(deepcopy=False))
        config = configs[config_number(trial)]
        if epoch >= self.budget or epoch not in self.rungs(config.bracket):
            return CONTINUE
        directions = directions_of(study)
        ranking = self.ranking(configs, config.bracket, epoch, directions)
        if config.number in ranking[: len(ranking) // self.eta]:
            if self.pauses and can_pause and self._promotion_above(configs, epoch, directions):
                # ASHA promotes from the highest rung first: this worker resumes that configuration,
                # and this one, promotable here, waits paused for the next free worker.
                return PAUSE
            return CONTINUE
        if self.pauses and can_pause:
            return PAUSE
        # Stopping's grace: while fewer than eta configurations reached the rung, the best goes on.
        return CONTINUE if len(ranking) < self.eta and ranking[:1] == [config.number] else STOP

    def _promotion_above(
        self, configs: Mapping[int, Configuration], epoch: int, directions: Sequence[str]
    ) -> bool:
        """Whether a paused configuration is promotable at a rung above `epoch` (its checkpoint here)."""
        config = self._next_promotion(
            configs, directions, lambda c: c.checkpoint is not None and Path(c.checkpoint["path"]).exists()
        )
        return config is not None and (config.paused_at or 0) > epoch

    def next_promotion(
        self, study: optuna.Study, resumable: Callable[[Configuration], bool] = lambda c: True
    ) -> Configuration | None:
        """ASHA's choice: the highest rung first, and at a rung the best paused configuration that
        ranks in its top 1/eta."""
        if not self.pauses:
            return None
        configs = configurations(study.get_trials(deepcopy=False))
        return self._next_promotion(configs, directions_of(study), resumable)

    def _next_promotion(
        self, configs: Mapping[int, Configuration], directions: Sequence[str],
        resumable: Callable[[Configuration], bool],
    ) -> Configuration | None:  # fmt: skip
        paused = [c for c in configs.values() if c.paused_at is not None]
        for rung in sorted({c.paused_at for c in paused if c.paused_at is not None}, reverse=True):
            for bracket in sorted({c.bracket for c in paused if c.paused_at == rung}):
                ranking = self.ranking(configs, bracket, rung, directions)
                for number in ranking[: len(ranking) // self.eta]:
                    config = configs[number]
                    if config.paused_at == rung and resumable(config):
                        return config
        return None

    def closing_promotion(
        self, study: optuna.Study, resumable: Callable[[Configuration], bool] = lambda c: True
    ) -> Configuration | None:
        """A bracket that no configuration finished ends as synchronous successive halving ends, which
        promotes at least one configuration from every rung: its best paused configuration at its
        highest rung trains to the budget. Few configurations (a short sweep) would otherwise all stay
        paused below the budget, with nothing complete to pick or to evaluate."""
        if not self.pauses:
            return None
        configs = configurations(study.get_trials(deepcopy=False))
        directions = directions_of(study)
        for bracket in sorted({c.bracket for c in configs.values()}):
            members = [c for c in configs.values() if c.bracket == bracket]
            if any(c.state in (COMPLETE, RUNNING) or c.epochs >= self.budget for c in members):
                continue
            paused = [c for c in members if c.paused_at is not None and resumable(c)]
            if not paused:
                continue
            top = max(c.paused_at for c in paused if c.paused_at is not None)
            for number in self.ranking(configs, bracket, top, directions):
                if configs[number].paused_at == top and resumable(configs[number]):
                    return configs[number]
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

    def decide(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, epoch: int, can_pause: bool
    ) -> str:
        return STOP if self.pruner.prune(study, trial) else CONTINUE


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
