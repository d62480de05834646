"""Which configurations the final evaluation retrains: the search's best first, never one far behind.

Ranking (`ranked`): complete configurations by their objective, then the others by the epochs they
reached and their value there (as TPE ranks pruned trials); failed ones and values that are not finite
are left out.

The rule (`choose`), one objective: the best configuration is always a candidate. Each next one in the
ranking, up to `top_k`, is compared with the best at the deepest epoch both reported (a rung they
share, or the full budget when both are complete). It is *far behind*, and left out, when it trails the
best there by more than `max_gap` times the *typical gap*: how far the median configuration trailed the
best one at the first epoch every configuration reports (the first rung). That unit is the study's own:
it needs no scale of the objective (accuracy, loss, seconds), and it is measured where every
configuration was compared alike. With `max_gap` 0.5 (the default), a candidate must stand at least
halfway from the typical configuration to the best: in a sweep whose best had 0.44 validation accuracy
at the first rung and the median 0.16, configurations at 0.15 and 0.17 are left out and one at 0.31 is
kept; one that trails by a point or two at the full budget, and may lead after the final budget's
epochs, is kept (benchmarks/final_pick_top_k.py measured what retraining several is worth).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from hydra_plugins.hydra_bohb_sweeper._study import view as _view

FINAL = math.inf  # the epoch key of a value returned at the end by a job that reports no epochs


@dataclass(frozen=True)
class LeftOut:
    number: int
    why: str


@dataclass(frozen=True)
class Choice:
    chosen: list[_view.Configuration]
    left_out: list[LeftOut] = field(default_factory=list)


def points(config: _view.Configuration) -> dict[float, float]:
    """epoch -> the configuration's (first) objective there; a complete one's returned value stands for
    its last epoch (it may differ from what it reported then: the best epoch's value, say)."""
    found = {float(epoch): values[0] for epoch, values in config.values.items()}
    if config.state == _view.COMPLETE and config.last.value is not None:
        found[float(config.epochs) if config.values else FINAL] = float(config.last.value)
    return {epoch: value for epoch, value in found.items() if math.isfinite(value)}


def search_value(config: _view.Configuration) -> float:
    """What the search last saw of it: its value at the deepest epoch it reached."""
    at = points(config)
    return at[max(at)]


def ranked(view: _view.StudyView, maximize: bool) -> list[_view.Configuration]:
    """The study's configurations best first (see the module's docstring)."""
    sign = -1.0 if maximize else 1.0

    def key(config: _view.Configuration) -> tuple[int, float, float, int]:
        at = points(config)
        deepest = max(at)
        if config.state == _view.COMPLETE and config.last.value is not None:
            return (0, 0.0, sign * at[deepest], config.number)
        return (1, -deepest, sign * at[deepest], config.number)

    kept = [c for c in view.configurations.values() if c.state != _view.FAILED and points(c)]
    return sorted(kept, key=key)


def choose(view: _view.StudyView, maximize: bool, top_k: int, max_gap: float | None) -> Choice:
    """At most `top_k` candidates, best first; `max_gap` None: the top_k as they rank."""
    order = ranked(view, maximize)
    if not order:
        return Choice([])
    best, sign = order[0], 1.0 if maximize else -1.0
    at = {c.number: points(c) for c in order}  # each configuration's values, read once
    unit = _typical_gap(list(at.values()), sign)
    if max_gap is None or unit is None:
        return Choice(order[:top_k])
    chosen, left_out = [best], []
    for config in order[1:top_k]:
        shared = set(at[best.number]) & set(at[config.number])
        if not shared:  # never compared with the best (it cannot happen with rungs; kept to be safe)
            chosen.append(config)
            continue
        epoch = max(shared)
        ahead, behind = at[best.number][epoch], at[config.number][epoch]
        gap = sign * (ahead - behind)
        if gap > max_gap * unit:
            where = "at the end" if epoch == FINAL else f"at epoch {int(epoch)}"
            left_out.append(
                LeftOut(
                    config.number,
                    f"{behind:.4g} {where} against {ahead:.4g} for #{best.number}: {abs(gap):.3g} behind, "
                    f"more than {max_gap:g} x {unit:.3g} (the median configuration's gap at the first rung)",
                )
            )
        else:
            chosen.append(config)
    return Choice(chosen, left_out)


def _typical_gap(all_points: list[dict[float, float]], sign: float) -> float | None:
    """How far the median configuration trailed the best at the first epoch every one reported (None:
    fewer than three configurations there, too few for a median that means anything)."""
    first = min(min(at) for at in all_points)
    values = [at[first] for at in all_points if first in at]
    if len(values) < 3:
        return None
    best = max(values) if sign > 0 else min(values)
    return sign * (best - statistics.median(values))
