"""A finished Hydra job as an Optuna trial state: complete with a value, pruned, or failed with a reason."""

from __future__ import annotations

import math
from dataclasses import dataclass

import optuna
from hydra.core.utils import JobReturn, JobStatus


@dataclass
class Outcome:
    state: optuna.trial.TrialState
    value: float | None = None
    reason: str | None = None


def outcome_of(ret: JobReturn) -> Outcome:
    """Map a finished Hydra job to an Optuna trial state; pruning arrives as `optuna.TrialPruned`."""
    # `_return_value`, not `return_value`: the property prints "Error executing job" for every pruned trial.
    value = ret._return_value
    if ret.status != JobStatus.COMPLETED:
        if isinstance(value, optuna.TrialPruned):
            return Outcome(optuna.trial.TrialState.PRUNED)
        return Outcome(optuna.trial.TrialState.FAIL, reason=one_line(value))
    try:
        value = float(value)
    except (TypeError, ValueError):
        return Outcome(optuna.trial.TrialState.FAIL, reason=f"job returned {value!r}, not a number")
    if not math.isfinite(value):
        return Outcome(optuna.trial.TrialState.FAIL, reason=f"job returned {value}")
    return Outcome(optuna.trial.TrialState.COMPLETE, value=value)


def one_line(exc: BaseException, limit: int = 500) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text}"[:limit]
