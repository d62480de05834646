"""Pruners for configs (private module: Hydra's plugin scan does not import it): no pruning, and
Hyperband for several objectives."""

from __future__ import annotations

import binascii
import math
from collections.abc import Sequence

import optuna

from hydra_plugins.hydra_bohb_sweeper.names import VALUES_BY_EPOCH_ATTR


def no_pruning(
    min_resource: int = 1, max_resource: int = 27, reduction_factor: int = 3, bootstrap_count: int = 0
) -> optuna.pruners.BasePruner:
    """Optuna's NopPruner; it takes Hyperband's fields (and ignores them) so a preset that sizes the
    budget with `pruner.max_resource` runs unchanged with `hydra/sweeper/pruner=none`."""
    del min_resource, reduction_factor, bootstrap_count  # max_resource is the sweeper's trial budget
    return optuna.pruners.NopPruner()


class ParetoHyperbandPruner(optuna.pruners.BasePruner):
    """Hyperband for a study with several objectives, deciding by Pareto rank.

    Optuna refuses `trial.report` in multi-objective studies, so it never asks this pruner; jobs
    report their objective vectors through the client (the trial's `values_by_epoch` attribute) and
    the client asks `prunes`. Brackets and rungs are Hyperband's, as Optuna assigns them: bracket `b`
    compares its trials at min_resource * reduction_factor**(b + k) epochs. At a rung a trial goes on
    only if it is among the best 1/reduction_factor of the trials of its bracket that reached the rung
    (itself included), ranked by non-dominated sorting and, within a front, by crowding distance: the
    selection of MO-ASHA (Schmucker et al., 2021) with NSGA-II's tie-break. The promotion rate, and so
    the share of epochs saved, is the single-objective one; the crowding distance keeps the ends of a
    front (the most accurate and the smallest models) and spreads the rest.
    """

    def __init__(
        self,
        min_resource: int = 1,
        max_resource: int = 27,
        reduction_factor: int = 3,
        bootstrap_count: int = 0,
    ) -> None:
        if min_resource < 1 or max_resource < min_resource or reduction_factor < 2:
            raise ValueError(
                f"ParetoHyperbandPruner(min_resource={min_resource}, max_resource={max_resource}, "
                f"reduction_factor={reduction_factor}): need 1 <= min_resource <= max_resource and "
                "reduction_factor >= 2"
            )
        self.min_resource, self.max_resource, self.eta = min_resource, max_resource, reduction_factor
        self.bootstrap_count = bootstrap_count  # the first trials at a rung stop there, as in Optuna's
        self.n_brackets = math.floor(math.log(max_resource / min_resource, reduction_factor)) + 1
        # Trials per bracket in the ratio of Hyperband's bracket sizes (as Optuna's HyperbandPruner).
        self._allocation = []
        for bracket in range(self.n_brackets):
            s = self.n_brackets - 1 - bracket
            self._allocation.append(math.ceil(self.n_brackets * reduction_factor**s / (s + 1)))

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return False  # never called for a multi-objective study; see `prunes`

    def bracket(self, study_name: str, trial_number: int) -> int:
        n = binascii.crc32(f"{study_name}_{trial_number}".encode()) % sum(self._allocation)
        for bracket, size in enumerate(self._allocation):
            n -= size
            if n < 0:
                return bracket
        raise AssertionError("unreachable")

    def rungs(self, bracket: int) -> list[int]:
        """The epochs at which the trials of `bracket` are compared (below a full trial's budget)."""
        rungs, k = [], 0
        while (epoch := self.min_resource * self.eta ** (bracket + k)) < self.max_resource:
            rungs.append(epoch)
            k += 1
        return rungs

    def prunes(self, study: optuna.Study, trial_number: int, epoch: int) -> bool:
        """Whether trial `trial_number`, having reported `epoch`, stops here."""
        bracket = self.bracket(study.study_name, trial_number)
        if epoch not in self.rungs(bracket):
            return False
        mine, others = None, []
        for trial in study.get_trials(deepcopy=False):
            vector = trial.user_attrs.get(VALUES_BY_EPOCH_ATTR, {}).get(str(epoch))
            if vector is None:
                continue
            if trial.number == trial_number:
                mine = vector
            elif self.bracket(study.study_name, trial.number) == bracket:
                others.append(vector)
        if mine is None:
            return False
        if len(others) < self.bootstrap_count:
            return True
        return not promotable(mine, others, [d.name.lower() for d in study.directions], self.eta)


def promotable(
    vector: Sequence[float], others: Sequence[Sequence[float]], directions: Sequence[str], eta: int
) -> bool:
    """ASHA's rule with Pareto ranks: of the n trials at a rung (`vector` and `others`), the first
    max(1, n // eta) by (front, -crowding distance) go on; while fewer than eta trials reached the rung,
    a trial goes on only if no other dominates it."""
    sign = [1.0 if d == "minimize" else -1.0 for d in directions]
    points = [[s * v for s, v in zip(sign, p, strict=True)] for p in (vector, *others)]
    fronts = nondominated_fronts(points)
    if len(points) // eta == 0:
        return 0 in fronts[0]
    order = []
    for front in fronts:
        distance = crowding(points, front)
        order += sorted(front, key=lambda i: -distance[i])
    return order.index(0) < len(points) // eta


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
