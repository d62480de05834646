"""Reading a study back: best-so-far curves, every configuration compared at one epoch, parameter
importances and the sweep's conditions, for the sweep's figures and for reports written by apps. Optuna
is imported when a function is called (Hydra's plugin scan imports this module at every start).
"""

from __future__ import annotations

import math
import warnings
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import optuna

INACTIVE = "inactive"  # how figures and reports mark a parameter that a configuration does not use


def best_so_far(study: optuna.Study) -> list[dict[str, Any]]:
    """Per complete trial, in order of completion: seconds since the study's first trial started, its
    value and the best value so far."""
    import optuna

    states = optuna.trial.TrialState
    trials = [
        t for t in study.get_trials(deepcopy=False) if t.state == states.COMPLETE and t.datetime_complete
    ]
    trials.sort(key=lambda t: t.datetime_complete or datetime.min)
    if not trials:
        return []
    start = min(t.datetime_start for t in study.get_trials(deepcopy=False) if t.datetime_start)
    sign = 1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1
    rows, best = [], None
    for t in trials:
        assert t.value is not None and t.datetime_complete is not None
        best = t.value if best is None or sign * t.value > sign * best else best
        elapsed = (t.datetime_complete - start).total_seconds()
        rows.append({"trial": t.number, "elapsed_s": elapsed, "value": t.value, "best_value": best})
    return rows


def best_so_far_by_epochs(study: optuna.Study, objective: int = 0) -> list[dict[str, Any]]:
    """Per finished trial (complete, pruned or failed), in order of completion: `elapsed_s` since the
    study's first trial started, `epochs` trained by the finished trials so far (each counts the epochs it
    reported: a segment that continues a configuration only its own) and `best_value`, the best value of
    objective number `objective` among the complete trials so far (None before the first)."""
    import optuna

    from hydra_plugins.hydra_bohb_sweeper._study import view as _view

    states = optuna.trial.TrialState
    everything = study.get_trials(deepcopy=False)
    start = min((t.datetime_start for t in everything if t.datetime_start), default=None)
    ended = (states.COMPLETE, states.PRUNED, states.FAIL)
    finished = [t for t in everything if t.state in ended and t.datetime_start and t.datetime_complete]
    finished.sort(key=lambda t: t.datetime_complete or datetime.min)
    sign = 1 if study.directions[objective] == optuna.study.StudyDirection.MAXIMIZE else -1
    rows, spent, best = [], 0, None
    for t in finished:
        assert start is not None and t.datetime_complete is not None
        spent += len(_view.reported_values(t))
        value = t.values[objective] if t.state == states.COMPLETE and t.values else None
        if value is not None and math.isfinite(value) and (best is None or sign * value > sign * best):
            best = value
        elapsed = (t.datetime_complete - start).total_seconds()
        rows.append({"trial": t.number, "elapsed_s": elapsed, "epochs": spent, "best_value": best})
    return rows


MIN_CONFIGURATIONS = 8  # compared at one epoch for importances: fewer give no meaningful ranking


class Comparison(NamedTuple):  # no dataclass: Hydra's plugin scan runs this module outside sys.modules
    """Every configuration that reached `epoch`, as one complete trial valued at that epoch."""

    study: optuna.Study  # in memory
    epoch: int
    configurations: int


def compared_at_one_epoch(study: optuna.Study, epoch: int | None = None) -> Comparison | None:
    """The configurations at the deepest epoch that at least MIN_CONFIGURATIONS of them reported (or at
    `epoch`, one that several studies share), or None (too few, or several objectives). Hyperband trains
    few configurations to the budget; an early rung compares nearly every configuration of the study, for
    importances and parallel coordinates."""
    import optuna

    from hydra_plugins.hydra_bohb_sweeper._study import view as _view

    if len(study.directions) > 1:
        return None
    configs = [
        c for c in _view.view_of(study).configurations.values() if c.values and c.state != _view.FAILED
    ]
    reached = sorted((c.epochs for c in configs), reverse=True)
    if len(reached) < MIN_CONFIGURATIONS:
        return None
    deepest = reached[MIN_CONFIGURATIONS - 1]
    if epoch is None:
        epoch = deepest
    elif epoch > deepest:  # fewer than MIN_CONFIGURATIONS reached it
        return None
    view = optuna.create_study(study_name=study.study_name, direction=study.direction)
    for config in configs:
        if epoch in config.values:
            first = config.trials[0]
            view.add_trial(
                optuna.trial.create_trial(
                    params=first.params,
                    distributions=first.distributions,
                    value=config.values[epoch][0],
                    user_attrs={"configuration": config.number},
                )
            )
    return Comparison(view, epoch, len(view.trials))


def param_importances(study: optuna.Study) -> dict[str, float]:
    """PED-ANOVA importances of the parameters, from every configuration's value at one epoch (see
    `compared_at_one_epoch`); {} with too few configurations."""
    import optuna

    if (comparison := compared_at_one_epoch(study)) is None:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluator = optuna.importance.PedAnovaImportanceEvaluator()
            return dict(optuna.importance.get_param_importances(comparison.study, evaluator=evaluator))
    except Exception:  # too few distinct values, constant objective, ...
        return {}


def condition_holds(child: str, text: str, values: dict[str, Any]) -> bool:
    """Whether the sweep condition `text` (hydra.sweeper.conditions' `PARENT OP VALUE`) of parameter
    `child` holds for a configuration's `values` by dotted key; one that cannot be read, or whose parent
    is unknown, counts as holding, so that a reader hides nothing by mistake."""
    from hydra_plugins.hydra_bohb_sweeper._setup.search_space import SearchSpaceError, parse_condition

    try:
        condition = parse_condition(child, text)
    except SearchSpaceError:
        return True
    if condition.parent not in values or values[condition.parent] is None:
        return condition.parent not in values
    return condition.holds(values[condition.parent])
