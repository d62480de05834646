"""A finished Hydra job as an Optuna trial state: complete with a value (and metrics), paused or pruned,
or failed with a reason.

A job returns a number (the objective) or, when `hydra.sweeper.objective` names a key, a mapping holding
the objective under that key; the mapping's other scalar entries are the trial's metrics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus

from hydra_plugins.hydra_bohb_sweeper import names
from hydra_plugins.hydra_bohb_sweeper._running.signals import TrialPaused

States = optuna.trial.TrialState


@dataclass
class Outcome:
    state: optuna.trial.TrialState
    values: list[float] | None = None  # one per objective, for a complete trial
    metrics: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    paused: bool = False  # PRUNED by a pause at a rung (the job saved a checkpoint to resume from)
    # FAIL not by the job's own doing (names.FAULT_*): its configuration is retried.
    fault: str | None = None

    @property
    def value(self) -> float | None:
        return self.values[0] if self.values else None


def outcome_of(ret: JobReturn, objectives: list[str] | None, n_objectives: int = 1) -> Outcome:
    """Map a finished Hydra job to an Optuna trial state; pruning arrives as `optuna.TrialPruned`."""
    # `_return_value`, not `return_value`: the property prints "Error executing job" for every pruned trial.
    returned = ret._return_value
    if ret.status != JobStatus.COMPLETED:
        if isinstance(returned, TrialPaused):
            return Outcome(States.PRUNED, paused=True)
        if isinstance(returned, optuna.TrialPruned):  # the job's own words, if it said why
            words = str(returned).strip()
            return Outcome(States.PRUNED, reason=words.splitlines()[0] if words else None)
        if _interrupted(returned):
            return Outcome(States.FAIL, reason="interrupted by Ctrl-C", fault=names.FAULT_INTERRUPTED)
        return Outcome(States.FAIL, reason=one_line(returned))
    return outcome_of_value(returned, objectives, n_objectives)


def _interrupted(error: Any) -> bool:
    """Ctrl-C in the job: KeyboardInterrupt, or the SystemExit that Lightning turns it into."""
    return isinstance(error, KeyboardInterrupt) or (
        isinstance(error, SystemExit) and isinstance(error.__context__, KeyboardInterrupt)
    )


def outcome_of_value(returned: Any, objectives: list[str] | None, n_objectives: int = 1) -> Outcome:
    """The outcome of a job that returned `returned`: a number, a list of `n_objectives` numbers, or a
    mapping holding the `objectives` under their keys (its other entries are the trial's metrics)."""
    metrics: dict[str, Any] = {}
    if isinstance(returned, Mapping):
        if objectives is None:
            return Outcome(
                States.FAIL,
                reason=f"job returned a mapping ({', '.join(map(str, returned))}); set "
                "hydra.sweeper.objective to the key to optimise",
            )
        if missing := [key for key in objectives if key not in returned]:
            return Outcome(
                States.FAIL,
                reason=f"job returned no {missing[0]!r} (hydra.sweeper.objective); "
                f"it returned {', '.join(map(str, returned)) or 'an empty mapping'}",
            )
        metrics = scalar_metrics({k: v for k, v in returned.items() if k not in objectives})
        returned = [returned[key] for key in objectives]
    elif n_objectives == 1 or isinstance(returned, (str, bytes)) or not isinstance(returned, Sequence):
        returned = [returned]
    if len(returned) != n_objectives:
        reason = f"job returned {len(returned)} values; the study has {n_objectives} objectives"
        return Outcome(States.FAIL, metrics=metrics, reason=reason)
    values = []
    for item in returned:
        try:
            value = float(item)
        except (TypeError, ValueError):
            return Outcome(States.FAIL, metrics=metrics, reason=f"job returned {item!r}, not a number")
        if not math.isfinite(value):
            return Outcome(States.FAIL, metrics=metrics, reason=f"job returned {value}")
        values.append(value)
    return Outcome(States.COMPLETE, values=values, metrics=metrics)


def scalar_metrics(mapping: Mapping[Any, Any]) -> dict[str, Any]:
    """Entries that a study, a YAML file and W&B all store as they are: numbers, strings, booleans.
    Numpy and torch scalars become Python numbers; other values (lists, tensors) are left out."""
    kept: dict[str, Any] = {}
    for key, value in mapping.items():
        if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
            value = value.item()
        if value is None or isinstance(value, (bool, int, float, str)):
            kept[str(key)] = value
    return kept


def one_line(exc: BaseException | Any, limit: int = 500) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text}"[:limit]
