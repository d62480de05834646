"""One vertical axis of Figure 3's parallel coordinates: its scale (linear, log, categories), its ticks
in the axis' own values, its label, and a place for what lies outside the search space (the baseline's
values, 0 on a log axis) and for a parameter a configuration does not use (`INACTIVE`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna

from hydra_plugins.hydra_bohb_sweeper.analysis import INACTIVE

BASELINE_COLOR = "tab:red"
INACTIVE_Y = -0.17  # where an inactive parameter sits on its axis, below the axis' range [0, 1]
ZERO = -0.085  # where 0 sits on a log axis (the baseline's weight decay), between the two
Y_RANGE = (-0.24, 1.04)  # the vertical extent of every axis, in the same normalised units


def _same(a: Any, b: Any) -> bool:
    """Equal, but True is not 1 (a choice of true/false against a choice of 0/1)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()  # as written in Hydra overrides
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass
class PCAxis:
    """One vertical axis of the parallel-coordinates plot. Lines are drawn in normalised units (the axis'
    range is [0, 1], an inactive parameter sits at INACTIVE_Y below it, 0 on a log axis at ZERO); `data` turns
    those units into the axis' own values, so each axis carries real ticks: numbers, a log scale, category
    names."""

    name: str
    label: str
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    integer: bool = False
    categories: list[Any] | None = None
    extra: list[Any] = field(default_factory=list)  # values outside the search space (the baseline's)
    inactive: bool = False  # some line has no value here
    zero: bool = False  # some line has 0 on this log axis

    @classmethod
    def for_parameter(cls, name: str, label: str, distribution: Any, values: Sequence[Any]) -> PCAxis:
        present = [v for v in values if v is not None]
        inactive = len(present) < len(values)
        if isinstance(distribution, optuna.distributions.CategoricalDistribution):
            choices = list(distribution.choices)
            shown = {_text(c) for c in choices}
            extra_values = list({_text(v): v for v in present if _text(v) not in shown}.values())
            numeric = all(
                isinstance(c, int | float) and not isinstance(c, bool) for c in choices + extra_values
            )
            categories = sorted(choices + extra_values) if numeric else choices + extra_values
            return cls(name, label, categories=categories, extra=extra_values, inactive=inactive)
        log = bool(distribution.log)
        numbers = [float(v) for v in present if not (log and float(v) <= 0)]
        low = min([float(distribution.low), *numbers])
        high = max([float(distribution.high), *numbers])
        outside = sorted({v for v in numbers if not distribution.low <= v <= distribution.high})
        integer = isinstance(distribution, optuna.distributions.IntDistribution)
        zero = len(numbers) < len(present)
        return cls(name, label, low, high, log, integer, extra=outside, inactive=inactive, zero=zero)

    def position(self, value: Any) -> float:
        """Where `value` sits, in normalised units."""
        if value is None:
            return INACTIVE_Y
        if self.categories is not None:
            index = next(i for i, c in enumerate(self.categories) if _same(c, value))
            return 0.5 if len(self.categories) == 1 else index / (len(self.categories) - 1)
        if self.high == self.low:
            return 0.5
        if self.log and float(value) <= 0:
            return ZERO
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (float(value) - self.low) / (self.high - self.low)

    def data(self, y: float) -> float:
        """The axis' own value at normalised height `y` (the inverse of `position`)."""
        if self.categories is not None:
            n = len(self.categories)
            return y - 0.5 if n == 1 else y * (n - 1)
        if self.high == self.low:
            return self.low + (y - 0.5)
        if self.log:
            return math.exp(math.log(self.low) + y * (math.log(self.high) - math.log(self.low)))
        return self.low + y * (self.high - self.low)

    def ticks(self) -> tuple[list[float], list[str]]:
        """Tick positions (in the axis' own values) and their labels, INACTIVE included."""
        if self.categories is not None:
            positions = [float(i) for i in range(len(self.categories))]
            labels = [_text(c) for c in self.categories]
        else:
            positions = numeric_ticks(self.low, self.high, self.log, self.integer)
            positions = sorted({*positions, *self.extra})
            labels = [_text(int(v)) if self.integer or float(v).is_integer() else _text(v) for v in positions]
        if self.zero:
            positions, labels = [self.data(ZERO), *positions], ["0", *labels]
        if self.inactive:
            positions, labels = [self.data(INACTIVE_Y), *positions], [INACTIVE, *labels]
        return positions, labels

    def draw(self, ax: Any, x: float) -> None:
        """Give the twin Axes `ax` this axis' scale, limits, spine at `x` and ticks."""
        ax.set_label(self.name)
        if self.log and self.categories is None and self.high > self.low:
            ax.set_yscale("log")
        ax.set_ylim(self.data(Y_RANGE[0]), self.data(Y_RANGE[1]))
        for side in ("top", "bottom", "right"):
            ax.spines[side].set_visible(False)
        ax.spines["left"].set_position(("data", x))
        ax.spines["left"].set_bounds(self.data(0), self.data(1))  # the inactive slot stands apart
        ax.yaxis.tick_left()
        ax.yaxis.set_minor_locator(_matplotlib_ticker().NullLocator())
        positions, labels = self.ticks()
        ax.set_yticks(positions, labels, fontsize=7)
        for text, value in zip(ax.get_yticklabels(), labels, strict=True):
            text.set_bbox({"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 0.3})
            if value == INACTIVE:
                text.set_color("0.35")
                text.set_fontstyle("italic")
            elif value in {_text(int(e) if self.integer else e) for e in self.extra} or (
                value == "0" and self.zero
            ):
                text.set_color(BASELINE_COLOR)  # outside the search space: only the baseline is there


def _matplotlib_ticker() -> Any:
    import matplotlib.ticker

    return matplotlib.ticker


def numeric_ticks(low: float, high: float, log: bool, integer: bool) -> list[float]:
    """A few round values within [low, high]: powers of two (integers) or of ten on a log scale, else
    matplotlib's round steps; the range's ends when nothing round falls inside."""
    if high <= low:
        return [low]
    if log:
        twos = [2.0**k for k in range(64) if low <= 2.0**k <= high]
        if integer and 2 <= len(twos) <= 7:
            return twos
        exponents = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
        for mantissas in ((1,), (1, 3), (1, 2, 5)):
            ticks = [
                m * 10.0**e for e in exponents for m in mantissas if low <= m * 10.0**e <= high * (1 + 1e-9)
            ]
            if len(ticks) >= 2:
                return ticks[:: max(1, math.ceil(len(ticks) / 7))]
        return [low, high]
    locator = _matplotlib_ticker().MaxNLocator(nbins=5, integer=integer)
    span = high - low
    ticks = [float(v) for v in locator.tick_values(low, high) if low - 1e-9 * span <= v <= high + 1e-9 * span]
    return ticks if len(ticks) >= 2 else [low, high]


def axis_label(name: str, importance: float | None) -> str:
    """`model.\nn_filters_2\n(0.32)`: short lines (importance last), so neighbouring labels do not collide."""
    group, _, key = name.rpartition(".")
    if len(key) > 13 and "_" in key:  # global_avg_pooling -> global_avg_ / pooling
        cut = min((i for i, c in enumerate(key) if c == "_"), key=lambda i: abs(i - len(key) / 2))
        key = f"{key[: cut + 1]}\n{key[cut + 1 :]}"
    label = f"{group}.\n{key}" if group else key
    return label + (f"\n({importance:.2f})" if importance is not None else "")
