"""Scheduling decisions without any training: hand-made studies in memory, asserted decisions.

Who goes on, pauses or stops at a rung; which paused configuration a free worker resumes; how
configurations are dealt to brackets; how segments (trials) add up to configurations; and that the
scheduler a study recorded (by public name, or by an earlier version's `_target_`) is rebuilt alike.
"""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from hydra_plugins.hydra_bohb_sweeper import names
from hydra_plugins.hydra_bohb_sweeper._study import scheduling
from hydra_plugins.hydra_bohb_sweeper._study.view import (
    COMPLETE,
    RUNNING,
    STOPPED,
    Configuration,
    StudyView,
    configurations,
)

States = optuna.trial.TrialState
optuna.logging.set_verbosity(optuna.logging.WARNING)
X = optuna.distributions.FloatDistribution(0.0, 1.0)


def add(
    study: optuna.Study,
    values: dict[int, float | tuple[float, ...]],
    state: Any = States.PRUNED,
    config: int | None = None,
    bracket: int = 0,
    paused: bool = False,
    resume_epoch: int | None = None,
    **extra: Any,
) -> optuna.trial.FrozenTrial:
    """A trial that reported `values` (epoch -> value) as configuration `config` (default: itself)."""
    number = len(study.trials)
    attrs: dict[str, Any] = {
        names.CONFIG_ATTR: number if config is None else config,
        names.BRACKET_ATTR: bracket,
    }
    attrs.update(extra)
    multi = len(study.directions) > 1
    if multi:
        attrs[names.VALUES_BY_EPOCH_ATTR] = {str(e): list(v) for e, v in values.items()}  # type: ignore[arg-type]
    if paused:
        attrs[names.PAUSED_ATTR] = {"epoch": max(values), "path": f"/ckpt/{number}"}
    if resume_epoch is not None:  # it continues its configuration's last trial
        before = max(t.number for t in study.trials if t.user_attrs.get(names.CONFIG_ATTR) == config)
        attrs[names.RESUME_ATTR] = {"trial": before, "epoch": resume_epoch, "path": "/ckpt"}
    last = values[max(values)] if values else 0.0
    study.add_trial(
        optuna.trial.create_trial(
            state=state,
            params={"x": 0.5},
            distributions={"x": X},
            intermediate_values={} if multi else {e: float(v) for e, v in values.items()},  # type: ignore[arg-type]
            values=(list(last) if multi else [float(last)]) if state == States.COMPLETE else None,  # type: ignore[arg-type]
            user_attrs=attrs,
        )
    )
    return study.trials[-1]


def hyperband(mode: str = "promotion", brackets: int | None = None) -> scheduling.Hyperband:
    return scheduling.Hyperband(budget=27, min_resource=1, reduction_factor=3, brackets=brackets, mode=mode)


def view_of(study: optuna.Study, n_trials: int | None = None, sees: Any = lambda path: True) -> StudyView:
    """The study as a sweeper reads it (`sees`: which checkpoints its filesystem holds; all, here)."""
    storage = study._storage
    return StudyView.read(storage, storage.get_study_id_from_name(study.study_name), n_trials, sees)


def decide(
    scheduler: scheduling.Scheduler, study: optuna.Study, trial: optuna.trial.FrozenTrial, epoch: int,
    can_pause: bool = True,
) -> str:  # fmt: skip
    view = view_of(study)
    return scheduler.on_report(
        view, next(t for t in view.trials if t.number == trial.number), epoch, can_pause
    )


def promoted(
    scheduler: scheduling.Scheduler, study: optuna.Study, sees: Any = lambda path: True
) -> Configuration | None:
    return scheduler.promotion(view_of(study, sees=sees))


# --- brackets and rungs ----------------------------------------------------------------------------


def test_brackets_and_rungs_follow_hyperband() -> None:
    scheduler = hyperband()
    assert scheduler.max_brackets == 4 and scheduler.brackets == 3  # the never-pruning bracket is left out
    assert [scheduler.rungs(b) for b in range(4)] == [[1, 3, 9], [3, 9], [9], []]
    assert scheduler.allocation == [
        27,
        12,
        6,
    ]  # Hyperband's configurations per bracket, most aggressive first
    dealt = [scheduler.bracket_of(i) for i in range(45 + 3)]
    assert dealt[:27] == [0] * 27 and dealt[27:39] == [1] * 12 and dealt[39:45] == [2] * 6
    assert dealt[45:] == [0, 0, 0]  # the next iteration starts again with the most aggressive bracket
    assert hyperband(brackets=1).allocation == [27]  # successive halving alone
    assert hyperband(brackets=4).rungs(3) == []  # asked for: the bracket that trains the whole budget


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reduction_factor": 1}, "reduction_factor >= 2"),
        ({"min_resource": 0}, "min_resource"),
        ({"brackets": 5}, "1 to 4 brackets"),
        ({"mode": "pausing"}, "mode must be"),
    ],
)
def test_bad_hyperband_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        scheduling.Hyperband(budget=27, **kwargs)


# --- decisions at a rung (one objective) -------------------------------------------------------------


def test_promotion_pauses_below_the_top_third_and_goes_on_in_it() -> None:
    study = optuna.create_study(direction="maximize")
    for value in (0.5, 0.6, 0.7, 0.8, 0.3):  # five configurations paused at rung 1
        add(study, {1: value}, paused=True)
    mine = add(study, {1: 0.75}, state=States.RUNNING)  # six reached the rung: the top two go on
    assert decide(hyperband(), study, mine, 1, can_pause=True) == scheduling.CONTINUE
    weak = add(study, {1: 0.55}, state=States.RUNNING)  # seven: top two are 0.8 and 0.75
    assert decide(hyperband(), study, weak, 1, can_pause=True) == scheduling.PAUSE
    assert decide(hyperband(), study, weak, 2, can_pause=True) == scheduling.CONTINUE  # not a rung
    # An app that cannot pause is stopped where a pausing one would pause.
    assert decide(hyperband(), study, weak, 1, can_pause=False) == scheduling.STOP


def test_the_first_trials_at_a_rung_pause_and_are_promoted_once_others_arrive() -> None:
    study = optuna.create_study(direction="maximize")
    first = add(study, {1: 0.9}, state=States.RUNNING)
    scheduler = hyperband()
    assert decide(scheduler, study, first, 1, can_pause=True) == scheduling.PAUSE  # nothing to compare with
    study = optuna.create_study(direction="maximize")
    add(study, {1: 0.9}, paused=True)
    add(study, {1: 0.4}, paused=True)
    assert promoted(scheduler, study) is None  # two at the rung: nobody is in the top third yet
    add(study, {1: 0.5}, paused=True)
    chosen = promoted(scheduler, study)
    assert chosen is not None and chosen.number == 0 and chosen.paused_at == 1
    assert promoted(scheduler, study, sees=lambda path: False) is None  # its checkpoint is elsewhere


def test_stopping_mode_stops_for_good_and_lets_the_best_of_a_young_rung_go_on() -> None:
    study = optuna.create_study(direction="minimize")  # a loss: lower is better
    best = add(study, {1: 0.2}, state=States.RUNNING)
    assert decide(hyperband("stopping"), study, best, 1, can_pause=True) == scheduling.CONTINUE
    worse = add(study, {1: 0.5}, state=States.RUNNING)
    assert decide(hyperband("stopping"), study, worse, 1, can_pause=True) == scheduling.STOP
    assert not hyperband("stopping").pauses and promoted(hyperband("stopping"), study) is None


def test_trials_are_compared_within_their_bracket_only() -> None:
    study = optuna.create_study(direction="maximize")
    for value in (0.9, 0.8, 0.7):
        add(study, {3: value}, bracket=0, paused=True)
    mine = add(study, {3: 0.6}, bracket=1, state=States.RUNNING)  # bracket 1 starts at epoch 3
    assert decide(hyperband(), study, mine, 3, can_pause=True) == scheduling.PAUSE  # alone there
    for value in (0.5, 0.4):
        add(study, {3: value}, bracket=1, paused=True)
    chosen = promoted(hyperband(), study)
    assert chosen is not None and chosen.number == 0  # bracket 0's best first (rung 3, bracket 0)


def test_a_free_worker_resumes_the_highest_rung_first() -> None:
    study = optuna.create_study(direction="maximize")
    for value in (0.5, 0.4, 0.3):
        add(study, {1: value}, paused=True)  # rung 1: #0 is promotable
    for value in (0.8, 0.7, 0.6):
        add(study, {1: 0.9, 3: value}, paused=True)  # rung 3: #3 is promotable
    chosen = promoted(hyperband(), study)
    assert chosen is not None and chosen.number == 3 and chosen.paused_at == 3


# --- several objectives ------------------------------------------------------------------------------

UP_DOWN = ["maximize", "minimize"]
# (accuracy at the rung, parameters) of the configurations already there.
RUNG = [(0.90, 50_000), (0.85, 20_000), (0.80, 8_000), (0.70, 3_000), (0.60, 60_000), (0.50, 40_000)]


def pareto_study(mine: tuple[float, float], others: list[tuple[float, float]]) -> tuple[optuna.Study, Any]:
    study = optuna.create_study(directions=UP_DOWN)
    for vector in others:
        add(study, {1: vector}, paused=True)
    return study, add(study, {1: mine}, state=States.RUNNING)


@pytest.mark.parametrize(
    ("mine", "others", "decision"),
    [
        ((0.55, 45_000), RUNG, scheduling.PAUSE),  # dominated by most: far below the top third
        ((0.40, 1_000), RUNG, scheduling.CONTINUE),  # the smallest: an end of the front
        ((0.95, 90_000), RUNG, scheduling.CONTINUE),  # the most accurate: the other end
        ((0.8, 10_000), [(0.9, 20_000)], scheduling.PAUSE),  # fewer than eta there: nobody goes on yet
    ],
)
def test_several_objectives_rank_by_front_then_crowding(
    mine: tuple[float, float], others: list[tuple[float, float]], decision: str
) -> None:
    study, trial = pareto_study(mine, others)
    assert decide(hyperband(), study, trial, 1, can_pause=True) == decision


def test_fronts_and_crowding() -> None:
    points = [(1.0, 5.0), (2.0, 3.0), (3.0, 1.0), (3.0, 4.0), (4.0, 4.0)]  # both minimised
    assert scheduling.nondominated_fronts(points) == [[0, 1, 2], [3], [4]]
    distance = scheduling.crowding(points, [0, 1, 2])
    assert distance[0] == distance[2] == float("inf") and distance[1] == pytest.approx(2.0)


# --- configurations from segments ---------------------------------------------------------------------


def test_a_configuration_adds_up_its_segments() -> None:
    study = optuna.create_study(direction="maximize")
    add(study, {1: 0.5}, paused=True)  # 0: the first segment, paused at rung 1
    add(study, {1: 0.2}, state=States.PRUNED)  # 1: another configuration, stopped
    add(study, {2: 0.6, 3: 0.7}, config=0, paused=True, resume_epoch=1)  # 2: #0 resumed, paused at 3
    add(study, {4: 0.8, 27: 0.9}, state=States.COMPLETE, config=0, resume_epoch=3)  # 3: #0 to the end
    configs = configurations(study.trials)
    assert sorted(configs) == [0, 1]
    zero = configs[0]
    assert [t.number for t in zero.trials] == [0, 2, 3] and zero.state == COMPLETE
    assert zero.values == {1: (0.5,), 2: (0.6,), 3: (0.7,), 4: (0.8,), 27: (0.9,)} and zero.epochs == 27
    assert configs[1].state == STOPPED and configs[1].paused_at is None


def test_surplus_and_retried_trials_are_no_segment() -> None:
    study = optuna.create_study(direction="maximize")
    add(study, {1: 0.5}, state=States.FAIL)
    study.add_trial(
        optuna.trial.create_trial(
            state=States.WAITING,
            params={"x": 0.5},
            distributions={"x": X},
            user_attrs={names.CONFIG_ATTR: 0},
            system_attrs={"failed_trial": 0, "retry_history": [0]},
        )
    )
    add(study, {}, state=States.FAIL, surplus=True)  # asked for after the quota was spent elsewhere
    configs = configurations(study.get_trials())
    assert list(configs) == [0] and [t.number for t in configs[0].trials] == [1]
    assert configs[0].state == RUNNING  # its retry waits


# --- the record on the study ---------------------------------------------------------------------------


def test_schedulers_are_rebuilt_from_their_public_name() -> None:
    for scheduler in (hyperband(brackets=2), hyperband("stopping"), scheduling.NoPruning()):
        rebuilt = scheduling.from_record(scheduler.record())
        assert type(rebuilt) is type(scheduler) and rebuilt.record() == scheduler.record()
    optuna_pruner = scheduling.OptunaPruner(
        {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 2}
    )
    assert scheduling.from_record(optuna_pruner.record()).record() == optuna_pruner.record()
    with pytest.raises(ValueError, match="unknown to this sweeper"):
        scheduling.from_record({"name": "moonshot"})


def test_the_pruners_earlier_versions_recorded_map_to_their_successors() -> None:
    pareto = {
        "_target_": "hydra_plugins.hydra_bohb_sweeper._pruners.ParetoHyperbandPruner",
        "min_resource": 1, "max_resource": 9, "reduction_factor": 3, "bootstrap_count": 0,
    }  # fmt: skip
    rebuilt = scheduling.from_legacy_pruner(pareto, budget=9)
    assert isinstance(rebuilt, scheduling.Hyperband) and rebuilt.mode == "stopping" and rebuilt.budget == 9
    none = {"_target_": "hydra_plugins.hydra_bohb_sweeper._pruners.no_pruning", "max_resource": 9}
    assert isinstance(scheduling.from_legacy_pruner(none, budget=9), scheduling.NoPruning)
    optuna_hyperband = {"_target_": "optuna.pruners.HyperbandPruner", "min_resource": 1, "max_resource": 9}
    assert isinstance(scheduling.from_legacy_pruner(optuna_hyperband, 9), scheduling.OptunaPruner)
