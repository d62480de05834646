"""What stays hand-written in the sweeper, checked against Optuna's own implementation where Optuna
has one (private there, so not imported by the sweeper): the hypervolume of a front, the ranking of
points into non-dominated fronts, and NSGA-II's crowding distance (docs/development.md says why they
stay hand-written)."""

from __future__ import annotations

import numpy as np
import pytest

from hydra_plugins.hydra_bohb_sweeper._outputs import pareto as _pareto
from hydra_plugins.hydra_bohb_sweeper._study import scheduling as _scheduling

RNG = np.random.default_rng(0)
# Two objectives to minimise, with ties and dominated points: 40 random clouds of 2 to 30 points.
CLOUDS = [np.round(RNG.random((int(RNG.integers(2, 31)), 2)), 1) for _ in range(40)]


@pytest.mark.parametrize("points", CLOUDS[:20])
def test_hypervolume_matches_optuna(points: np.ndarray) -> None:
    from optuna._hypervolume import compute_hypervolume

    reference = np.array([1.1, 1.1])
    ours = _pareto.hypervolume(points.tolist(), reference.tolist(), ["minimize", "minimize"])
    assert ours == pytest.approx(compute_hypervolume(points, reference))


@pytest.mark.parametrize("points", CLOUDS)
def test_fronts_match_optunas_non_domination_ranks(points: np.ndarray) -> None:
    from optuna.study._multi_objective import _fast_non_domination_rank

    ranks = _fast_non_domination_rank(points)
    ours = {
        i: rank for rank, front in enumerate(_scheduling.nondominated_fronts(points.tolist())) for i in front
    }
    assert [ours[i] for i in range(len(points))] == ranks.tolist()


def clouds_with_a_front(n: int) -> list[np.ndarray]:
    """Random clouds whose first front has 3 points or more (a lone point's distance is a convention:
    infinite here, as an end of the front; 0 in Optuna)."""
    clouds: list[np.ndarray] = []
    while len(clouds) < n:
        points = RNG.random((int(RNG.integers(3, 31)), 2))
        if len(_scheduling.nondominated_fronts(points.tolist())[0]) >= 3:
            clouds.append(points)
    return clouds


@pytest.mark.parametrize("points", clouds_with_a_front(20))
def test_crowding_matches_nsga2(points: np.ndarray) -> None:
    """On fronts without ties (with ties, the order of equal values decides in both, differently)."""
    import optuna
    from optuna.samplers.nsgaii._elite_population_selection_strategy import _calc_crowding_distance

    front = _scheduling.nondominated_fronts(points.tolist())[0]
    study = optuna.create_study(directions=["minimize", "minimize"])
    for i in front:
        study.add_trial(optuna.trial.create_trial(values=points[i].tolist()))
    theirs = _calc_crowding_distance(study.get_trials())  # by trial number: the order of `front`
    ours = _scheduling.crowding(points.tolist(), front)
    assert [ours[i] for i in front] == pytest.approx([theirs[n] for n in range(len(front))])
