"""Search-space grammar -> Optuna distributions, plus YAML-declared conditions between parameters.

The grammar is Hydra's sweep syntax as the official Optuna sweeper reads it, so configs carry over:
`choice(a, b)` or `a,b` -> categorical; `range(lo, hi[, step])` -> stepped int/float (hi excluded, as in
Hydra); `interval(lo, hi)` -> float, `int(interval(lo, hi))` -> int; `tag(log, ...)` -> log scale.
A condition `child: "parent OP value"` (OP one of == != >= <= > < in) makes `child` exist only when it
holds; an inactive parameter is neither sampled nor passed to the job.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.errors import HydraException
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

SUPPORTED_TAGS = {"log"}
OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "in": lambda value, options: value in options,
}
_CONDITION = re.compile(r"^\s*(?P<parent>[\w./@+-]+)\s*(?P<op>==|!=|>=|<=|>|<|\bin\b)\s*(?P<value>.+?)\s*$")
_PLAIN = re.compile(r"^[\w./-]+$", re.ASCII)


class SearchSpaceError(ValueError):
    """A search-space expression or condition that cannot be turned into a distribution."""


def parse_overrides(lines: Sequence[str]) -> list[Override]:
    try:
        return OverridesParser.create().parse_overrides(list(lines))
    except HydraException as exc:
        first = str(exc).strip().splitlines()[0]
        raise SearchSpaceError(f"cannot parse {' '.join(lines)!r}: {first}") from None


def distribution_from_override(override: Override) -> BaseDistribution:
    """The Optuna distribution that a sweep override describes."""
    name = override.key_or_group
    value = override.value()
    tags: set[str] = set(getattr(value, "tags", None) or ())
    if unknown := set(tags) - SUPPORTED_TAGS:
        raise SearchSpaceError(f"{name}: unknown tag {sorted(unknown)}; supported: tag(log, ...)")
    if tags and not isinstance(value, IntervalSweep):
        raise SearchSpaceError(
            f"{name}: tag(log, ...) applies to interval(...) only, not {override.input_line!r}"
        )
    if isinstance(value, ChoiceSweep) or override.is_choice_sweep():
        choices = list(override.sweep_iterator())
        return _categorical(name, choices)
    if isinstance(value, RangeSweep):
        if value.shuffle:
            return _categorical(name, list(value.range()))
        return _range(name, value)
    if isinstance(value, IntervalSweep):
        return _interval(name, value, log="log" in tags)
    raise SearchSpaceError(f"{name}: {override.input_line!r} is not a sweep; use choice/range/interval")


def _categorical(name: str, choices: list[Any]) -> CategoricalDistribution:
    if not choices:
        raise SearchSpaceError(f"{name}: choice() needs at least one value")
    for choice in choices:
        if choice is not None and not isinstance(choice, (bool, int, float, str)):
            raise SearchSpaceError(f"{name}: choice values must be scalars, got {choice!r}")
    if len(set(map(repr, choices))) != len(choices):
        raise SearchSpaceError(f"{name}: choice() lists a value twice: {choices}")
    return CategoricalDistribution(choices)


def _range(name: str, sweep: RangeSweep) -> BaseDistribution:
    start, stop, step = sweep.start, sweep.stop, sweep.step
    assert start is not None and stop is not None
    if step <= 0:
        raise SearchSpaceError(f"{name}: range() needs a positive step, got {step}")
    if not start < stop:
        raise SearchSpaceError(
            f"{name}: range({start}, {stop}, step={step}) is empty; start must be below stop"
        )
    if all(isinstance(v, int) for v in (start, stop, step)):
        last = start + (stop - start - 1) // step * step  # Hydra's range excludes stop
        return IntDistribution(int(start), int(last), step=int(step))
    # Decimal arithmetic: 0 + 3 * 0.3 must be 0.9, not 0.8999999999999999 (which Optuna would shrink).
    d_start, d_stop, d_step = (Decimal(str(v)) for v in (start, stop, step))
    count = math.ceil((d_stop - d_start) / d_step)
    return FloatDistribution(float(d_start), float(d_start + (count - 1) * d_step), step=float(d_step))


def _interval(name: str, sweep: IntervalSweep, log: bool) -> BaseDistribution:
    low, high = sweep.start, sweep.end
    assert low is not None and high is not None
    if not low < high:
        raise SearchSpaceError(f"{name}: interval({low}, {high}) is empty; the lower bound must come first")
    if log and low <= 0:
        raise SearchSpaceError(f"{name}: tag(log, interval({low}, {high})) needs a lower bound > 0")
    if isinstance(low, int) and isinstance(high, int):
        return IntDistribution(low, high, log=log)
    return FloatDistribution(float(low), float(high), log=log)


@dataclass(frozen=True)
class Condition:
    parent: str
    op: str
    value: Any
    text: str

    def holds(self, parent_value: Any) -> bool:
        try:
            return bool(OPERATORS[self.op](parent_value, self.value))
        except TypeError:
            return False


def parse_condition(child: str, text: str) -> Condition:
    match = _CONDITION.match(str(text))
    if match is None:
        raise SearchSpaceError(
            f"condition of {child}: {text!r} is not 'PARENT OP VALUE' with OP one of " + " ".join(OPERATORS)
        )
    value = _condition_value(child, match["value"])
    if match["op"] == "in" and not isinstance(value, list):
        raise SearchSpaceError(f"condition of {child}: 'in' needs a list, e.g. {match['parent']} in [1, 2]")
    return Condition(match["parent"], match["op"], value, str(text).strip())


def _condition_value(child: str, text: str) -> Any:
    """The value as Hydra reads it on the command line (1e-3 is a float, [1, 2] a list, adam a string)."""
    try:
        (override,) = OverridesParser.create().parse_overrides([f"value={text}"])
    except HydraException:
        raise SearchSpaceError(f"condition of {child}: cannot read the value {text!r}") from None
    if override.is_sweep_override():
        raise SearchSpaceError(f"condition of {child}: the value {text!r} must be a plain value or a list")
    return override.value()


@dataclass
class SearchSpace:
    """The parameters to sample (in dependency order), their conditions, and the fixed overrides."""

    distributions: dict[str, BaseDistribution]
    override_keys: dict[str, str]  # parameter name -> key element for the override (keeps + / ++)
    conditions: dict[str, Condition] = field(default_factory=dict)
    fixed: dict[str, str] = field(default_factory=dict)  # key -> the original "key=value" override
    fixed_values: dict[str, Any] = field(default_factory=dict)

    def sample(self, suggest: Callable[[str, BaseDistribution], Any]) -> dict[str, Any]:
        """Active parameters only: a parameter whose condition fails is skipped (and so are its children)."""
        values: dict[str, Any] = {}
        for name, distribution in self.distributions.items():
            condition = self.conditions.get(name)
            if condition is not None:
                if condition.parent in values:
                    parent_value = values[condition.parent]
                elif condition.parent in self.fixed_values:
                    parent_value = self.fixed_values[condition.parent]
                else:
                    continue  # the parent is itself inactive
                if not condition.holds(parent_value):
                    continue
            values[name] = suggest(name, distribution)
        return values

    def overrides(self, values: Mapping[str, Any]) -> list[str]:
        return list(self.fixed.values()) + [
            f"{self.override_keys[name]}={format_value(value)}" for name, value in values.items()
        ]


def format_value(value: Any) -> str:
    """A sampled value written for Hydra's override parser, so that it parses back to itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if _PLAIN.match(text) and _parses_to(text, text):
        return text
    # Quoted: escape the quotes, and the backslashes that would otherwise escape a quote.
    escaped = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, text).replace("'", "\\'")
    return f"'{escaped}'"


def _parses_to(text: str, expected: Any) -> bool:
    try:
        (override,) = OverridesParser.create().parse_overrides([f"key={text}"])
    except HydraException:
        return False
    value = override.value()
    return value == expected and type(value) is type(expected)


def build_search_space(
    params: Mapping[str, Any],
    conditions: Mapping[str, str],
    arguments: Sequence[str],
    base_values: Mapping[str, Any] | None = None,
) -> SearchSpace:
    """Merge the config's `params` with command-line overrides (which win) into a SearchSpace.

    A command-line sweep (`key=choice(...)`) adds or replaces a parameter; any other command-line
    override fixes its key for every trial and removes it from the space. `base_values` holds the job
    config's values, for conditions on a parameter that is neither searched nor overridden.
    """
    sweeps: dict[str, Override] = {}
    fixed: dict[str, str] = {}
    fixed_values: dict[str, Any] = {}
    for key, expression in params.items():
        (override,) = parse_overrides([f"{key}={_expression(expression)}"])
        if override.is_sweep_override():
            sweeps[override.key_or_group] = override
        else:
            fixed[override.key_or_group] = (
                f"{override.get_key_element()}={override.get_value_element_as_str()}"
            )
            fixed_values[override.key_or_group] = override.value()
    for override in parse_overrides(arguments):
        key = override.key_or_group
        if override.is_sweep_override():
            sweeps[key] = override
            fixed.pop(key, None)
            fixed_values.pop(key, None)
        else:
            sweeps.pop(key, None)
            fixed[key] = (
                override.input_line or f"{override.get_key_element()}={override.get_value_element_as_str()}"
            )
            fixed_values[key] = override.value()

    distributions = {key: distribution_from_override(o) for key, o in sweeps.items()}
    override_keys = {key: o.get_key_element() for key, o in sweeps.items()}
    parsed = _parse_conditions(conditions, distributions, fixed_values, base_values or {})
    order = _dependency_order(list(distributions), parsed)
    return SearchSpace(
        distributions={k: distributions[k] for k in order},
        override_keys=override_keys,
        conditions={k: c for k, c in parsed.items() if k in distributions},
        fixed=fixed,
        fixed_values=fixed_values,
    )


def _expression(expression: Any) -> str:
    if isinstance(expression, bool):
        return "true" if expression else "false"
    return "null" if expression is None else str(expression)


def _parse_conditions(
    conditions: Mapping[str, str],
    distributions: Mapping[str, BaseDistribution],
    fixed_values: dict[str, Any],
    base_values: Mapping[str, Any],
) -> dict[str, Condition]:
    parsed: dict[str, Condition] = {}
    for child, text in conditions.items():
        condition = parse_condition(child, text)
        if child in fixed_values:
            continue  # fixed on the command line: present in every trial, no condition needed
        if child not in distributions:
            raise SearchSpaceError(
                f"condition on {child}, which is not a search-space parameter; "
                f"parameters: {', '.join(distributions) or 'none'}"
            )
        if condition.parent not in distributions and condition.parent not in fixed_values:
            if condition.parent not in base_values:
                raise SearchSpaceError(
                    f"condition of {child} names unknown parameter {condition.parent!r}; "
                    "use a search-space parameter or a config key"
                )
            fixed_values[condition.parent] = base_values[condition.parent]
        parsed[child] = condition
    return parsed


def _dependency_order(names: list[str], conditions: Mapping[str, Condition]) -> list[str]:
    """Parents before children, otherwise the declared order; a cycle is an error."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise SearchSpaceError(f"conditions form a cycle through {name}")
        visiting.add(name)
        condition = conditions.get(name)
        if condition is not None and condition.parent in names:
            visit(condition.parent)
        visiting.discard(name)
        order.append(name)

    for name in names:
        visit(name)
    return order


def suggest(trial: Any, name: str, distribution: BaseDistribution) -> Any:
    """A value of `distribution` for `trial` (an optuna.Trial) through its public API; a trial that
    already has the parameter (a continuation, a retry) gets its own value back."""
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    assert isinstance(distribution, FloatDistribution)
    return trial.suggest_float(
        name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
    )
