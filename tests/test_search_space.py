"""The sweeper's search-space grammar: Hydra sweep expressions -> Optuna distributions, conditions
between parameters, command-line overrides of the config's space, and values written back for Hydra."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from hydra_plugins.hydra_bohb_sweeper._setup.search_space import (
    OPERATORS,
    Condition,
    SearchSpace,
    SearchSpaceError,
    build_search_space,
    distribution_from_override,
    format_value,
    parse_condition,
    parse_overrides,
    suggest,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SEED_SPACE = REPO_ROOT / "conf" / "sweeper" / "space" / "table1.yaml"  # @package hydra.sweeper

optuna.logging.set_verbosity(optuna.logging.WARNING)


def distribution(expression: str, name: str = "p") -> BaseDistribution:
    (override,) = parse_overrides([f"{name}={expression}"])
    return distribution_from_override(override)


@pytest.fixture(scope="module")
def seed_space() -> tuple[dict[str, Any], dict[str, str]]:
    """`hydra.sweeper.params` and `.conditions` of the seed's search space (sweeper=bohb's)."""
    sweeper = OmegaConf.load(SEED_SPACE)
    params = OmegaConf.to_container(sweeper.params)
    conditions = OmegaConf.to_container(sweeper.conditions)
    assert isinstance(params, dict) and isinstance(conditions, dict)
    return params, conditions


def random_samples(space: SearchSpace, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """`n` configurations drawn the way the loop draws them: `suggest` on live trials of a real study."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    samples = []
    for _ in range(n):
        trial = study.ask()
        samples.append(space.sample(lambda name, dist, trial=trial: suggest(trial, name, dist)))
        study.tell(trial, 0.0)
    return samples


# --- expressions -> distributions ------------------------------------------------------------------

VALID = [
    ("choice(1, 2, 3)", CategoricalDistribution([1, 2, 3])),
    ("a,b", CategoricalDistribution(["a", "b"])),
    ("1,2,3", CategoricalDistribution([1, 2, 3])),
    ("choice(adam, sgd)", CategoricalDistribution(["adam", "sgd"])),
    ("choice(true, false)", CategoricalDistribution([True, False])),
    ("choice(0.1, 0.2, 0.5)", CategoricalDistribution([0.1, 0.2, 0.5])),
    ("choice(a, 'b c')", CategoricalDistribution(["a", "b c"])),
    ("choice(3)", CategoricalDistribution([3])),
    ("range(1, 4)", IntDistribution(1, 3)),  # Hydra: stop excluded
    ("range(0, 10, 2)", IntDistribution(0, 8, step=2)),
    ("range(0, 9, 3)", IntDistribution(0, 6, step=3)),
    ("range(1, 2)", IntDistribution(1, 1)),
    ("range(0.0, 1.0, 0.25)", FloatDistribution(0.0, 0.75, step=0.25)),
    ("range(0, 1, 0.1)", FloatDistribution(0.0, 0.9, step=0.1)),
    ("interval(0.1, 0.5)", FloatDistribution(0.1, 0.5)),
    ("interval(1, 5)", FloatDistribution(1.0, 5.0)),  # Hydra's interval() is a float interval
    ("int(interval(8, 256))", IntDistribution(8, 256)),
    ("tag(log, interval(0.001, 1.0))", FloatDistribution(0.001, 1.0, log=True)),
    ("tag(log, int(interval(8, 256)))", IntDistribution(8, 256, log=True)),
    ("shuffle(range(1,4))", CategoricalDistribution([1, 2, 3])),
]


@pytest.mark.parametrize(("expression", "expected"), VALID, ids=[e for e, _ in VALID])
def test_expression_to_distribution(expression: str, expected: BaseDistribution) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. Optuna's "range is not divisible by step" rewrite
        got = distribution(expression)
    assert got == expected
    assert type(got) is type(expected)
    if isinstance(expected, CategoricalDistribution):
        assert isinstance(got, CategoricalDistribution)
        # True == 1 in Python: the choices' types must match too, not only their values.
        assert [type(c) for c in got.choices] == [type(c) for c in expected.choices]
    if isinstance(expected, IntDistribution):
        assert isinstance(got, IntDistribution)
        assert all(isinstance(v, int) for v in (got.low, got.high, got.step))


def test_float_range_keeps_its_last_value() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert distribution("range(0, 1, 0.3)") == FloatDistribution(0.0, 0.9, step=0.3)


INVALID = [
    ("interval(5, 1)", "lower bound"),
    ("int(interval(256, 8))", "lower bound"),
    ("interval(1, 1)", "empty"),
    ("tag(log, interval(0, 1))", "> 0"),
    ("tag(log, interval(-1, 1))", "> 0"),
    ("tag(log, int(interval(0, 8)))", "> 0"),
    ("range(5, 1)", "empty"),
    ("range(0, 10, -1)", "positive step"),
    ("tag(logg, interval(1, 2))", "logg"),
    ("choice()", "cannot parse"),  # Hydra's own grammar refuses an empty choice
    ("choice(1, 2", "cannot parse"),
    ("interval(1)", "cannot parse"),
    ("interval(1, 2, 3)", "cannot parse"),
    ("choice(1, 1)", "twice"),
    ("choice([1, 2], [3])", "scalars"),
    ("5", "not a sweep"),
    ("adam", "not a sweep"),
]


@pytest.mark.parametrize(("expression", "fragment"), INVALID, ids=[e for e, _ in INVALID])
def test_invalid_expression_raises_one_line_error_naming_the_parameter(
    expression: str, fragment: str
) -> None:
    with pytest.raises(SearchSpaceError) as info:
        distribution(expression, name="model.some_param")
    message = str(info.value)
    assert "\n" not in message
    assert "model.some_param" in message
    assert fragment in message


@pytest.mark.parametrize(("expression", "fragment"), INVALID[:9], ids=[e for e, _ in INVALID[:9]])
def test_invalid_expression_in_config_params_fails_build(expression: str, fragment: str) -> None:
    with pytest.raises(SearchSpaceError, match=r"model\.some_param"):
        build_search_space({"model.some_param": expression}, {}, [])


# --- conditions -----------------------------------------------------------------------------------

CONDITIONS = [
    # text, parent, op, value, a parent value that satisfies it, one that does not
    ("model.n_fc_layers == 2", "model.n_fc_layers", "==", 2, 2, 1),
    ("optimizer != sgd", "optimizer", "!=", "sgd", "adam", "sgd"),
    ("model.n_conv_layers >= 2", "model.n_conv_layers", ">=", 2, 3, 1),
    ("model.n_conv_layers <= 2", "model.n_conv_layers", "<=", 2, 2, 3),
    ("optimizer.lr > 0.5", "optimizer.lr", ">", 0.5, 0.7, 0.5),
    ("optimizer.lr < 0.5", "optimizer.lr", "<", 0.5, 0.1, 0.5),
    ("data.batch_size in [64, 128]", "data.batch_size", "in", [64, 128], 128, 256),
    ("optimizer in [adam, sgd]", "optimizer", "in", ["adam", "sgd"], "sgd", "rmsprop"),
    ("model.batch_norm == true", "model.batch_norm", "==", True, True, False),
    ("a==2", "a", "==", 2, 2, 3),
    ("x in[1,2]", "x", "in", [1, 2], 1, 3),
]


@pytest.mark.parametrize(
    ("text", "parent", "op", "value", "good", "bad"), CONDITIONS, ids=[c[0] for c in CONDITIONS]
)
def test_parse_condition(text: str, parent: str, op: str, value: Any, good: Any, bad: Any) -> None:
    condition = parse_condition("child", text)
    assert condition == Condition(parent, op, value, text)
    assert condition.holds(good)
    assert not condition.holds(bad)


def test_every_operator_is_covered() -> None:
    assert {c[2] for c in CONDITIONS} == set(OPERATORS)


def test_condition_on_an_incomparable_value_does_not_hold() -> None:
    assert not parse_condition("child", "a >= 2").holds("three")


def test_condition_value_in_exponent_notation_is_a_number() -> None:
    condition = parse_condition("child", "optimizer.lr >= 1e-3")
    assert condition.value == pytest.approx(0.001)
    assert condition.holds(0.01)


BAD_CONDITIONS = [
    "a ~= 2",
    "a = 2",
    "a => 2",
    "a",
    "== 2",
    "a ==",
    "xin [1]",
    "a in 3",
    "a in adam",
    "",
]


@pytest.mark.parametrize("text", BAD_CONDITIONS, ids=[repr(t) for t in BAD_CONDITIONS])
def test_bad_condition_raises(text: str) -> None:
    with pytest.raises(SearchSpaceError) as info:
        parse_condition("model.child", text)
    assert "model.child" in str(info.value)
    assert "\n" not in str(info.value)


# --- the seed's space -----------------------------------------------------------------------------

BATCH_SIZES = {64, 128, 256, 512, 1024, 2048}
DROPOUTS = {0.1, 0.2, 0.3, 0.4, 0.5}


def test_seed_space_distributions(seed_space: tuple[dict[str, Any], dict[str, str]]) -> None:
    params, conditions = seed_space
    space = build_search_space(params, conditions, [])
    assert space.fixed == {}
    assert list(space.distributions) == list(params)  # already in dependency order
    d = space.distributions
    for name in ("model.n_filters_1", "model.n_filters_2", "model.n_filters_3"):
        assert d[name] == IntDistribution(8, 256, log=True)
    for name in ("model.n_neurons_1", "model.n_neurons_2"):
        assert d[name] == IntDistribution(512, 2048, log=True)
    assert d["optimizer.lr"] == FloatDistribution(0.001, 1.0, log=True)
    assert d["optimizer.weight_decay"] == FloatDistribution(1e-5, 1e-2, log=True)
    assert d["model.n_conv_layers"] == CategoricalDistribution([1, 2, 3])
    assert d["optimizer"] == CategoricalDistribution(["adam", "sgd"])
    assert set(space.conditions) == {"model.n_filters_2", "model.n_filters_3", "model.n_neurons_2"}


def test_seed_space_sampling_respects_conditions_and_table_1(
    seed_space: tuple[dict[str, Any], dict[str, str]],
) -> None:
    params, conditions = seed_space
    space = build_search_space(params, conditions, [])
    samples = random_samples(space, 300)
    seen_layers = set()
    for v in samples:
        conv, fc = v["model.n_conv_layers"], v["model.n_fc_layers"]
        seen_layers.add((conv, fc))
        assert ("model.n_filters_2" in v) == (conv >= 2), v
        assert ("model.n_filters_3" in v) == (conv >= 3), v
        assert ("model.n_neurons_2" in v) == (fc == 2), v
        for i in range(1, conv + 1):
            value = v[f"model.n_filters_{i}"]
            assert isinstance(value, int) and 8 <= value <= 256
        for i in range(1, fc + 1):
            value = v[f"model.n_neurons_{i}"]
            assert isinstance(value, int) and 512 <= value <= 2048
        assert 1e-3 <= v["optimizer.lr"] <= 1.0
        assert 1e-5 <= v["optimizer.weight_decay"] <= 1e-2
        assert v["data.batch_size"] in BATCH_SIZES
        assert v["model.dropout"] in DROPOUTS
        assert v["optimizer"] in ("adam", "sgd")
        assert v["model.kernel_size"] in (3, 5)
        for flag in ("model.batch_norm", "model.global_avg_pooling", "data.hflip", "data.rotation"):
            assert isinstance(v[flag], bool)
        unconditional = set(params) - set(conditions)
        assert unconditional <= set(v)
    assert seen_layers == {(c, f) for c in (1, 2, 3) for f in (1, 2)}  # every branch was taken


def test_sampled_values_become_overrides_hydra_reads_back(
    seed_space: tuple[dict[str, Any], dict[str, str]],
) -> None:
    params, conditions = seed_space
    space = build_search_space(params, conditions, ["model.kernel_size=5"])
    parser = OverridesParser.create()
    for values in random_samples(space, 30, seed=1):
        overrides = space.overrides(values)
        assert overrides[0] == "model.kernel_size=5"
        parsed = {o.key_or_group: o.value() for o in parser.parse_overrides(overrides)}
        assert parsed == {"model.kernel_size": 5, **values}


def test_dependency_order_puts_parents_first() -> None:
    space = build_search_space(
        {"c": "choice(1, 2)", "b": "choice(1, 2)", "a": "choice(1, 2)", "d": "choice(1, 2)"},
        {"c": "b == 1", "b": "a == 1"},
        [],
    )
    assert list(space.distributions) == ["a", "b", "c", "d"]
    for values in random_samples(space, 40):
        assert ("b" in values) == (values["a"] == 1)
        assert ("c" in values) == (values.get("b") == 1)  # inactive parent: inactive child


def test_seed_space_declared_backwards_still_samples_parents_first(
    seed_space: tuple[dict[str, Any], dict[str, str]],
) -> None:
    params, conditions = seed_space
    space = build_search_space(dict(reversed(params.items())), conditions, [])
    order = list(space.distributions)
    assert order.index("model.n_conv_layers") < order.index("model.n_filters_2")
    assert order.index("model.n_conv_layers") < order.index("model.n_filters_3")
    assert order.index("model.n_fc_layers") < order.index("model.n_neurons_2")
    for v in random_samples(space, 60):
        assert ("model.n_filters_3" in v) == (v["model.n_conv_layers"] >= 3)


# --- command-line overrides -----------------------------------------------------------------------


def test_fixed_command_line_value_removes_the_parameter(
    seed_space: tuple[dict[str, Any], dict[str, str]],
) -> None:
    params, conditions = seed_space
    space = build_search_space(params, conditions, ["model.kernel_size=5"])
    assert "model.kernel_size" not in space.distributions
    assert space.fixed == {"model.kernel_size": "model.kernel_size=5"}
    assert space.fixed_values == {"model.kernel_size": 5}
    assert all(s.get("model.kernel_size") is None for s in random_samples(space, 5))
    assert space.overrides({})[0] == "model.kernel_size=5"


def test_command_line_sweep_replaces_the_config_entry(
    seed_space: tuple[dict[str, Any], dict[str, str]],
) -> None:
    params, conditions = seed_space
    space = build_search_space(params, conditions, ["model.kernel_size=choice(3)", "+model.new=range(1,3)"])
    assert space.distributions["model.kernel_size"] == CategoricalDistribution([3])
    assert space.distributions["model.new"] == IntDistribution(1, 2)
    assert space.override_keys["model.new"] == "+model.new"  # the + survives into the trial's override
    assert "model.kernel_size" not in space.fixed
    assert {s["model.kernel_size"] for s in random_samples(space, 10)} == {3}


def test_fixed_parent_deactivates_its_children(seed_space: tuple[dict[str, Any], dict[str, str]]) -> None:
    params, conditions = seed_space
    space = build_search_space(params, conditions, ["model.n_conv_layers=1", "model.n_fc_layers=2"])
    assert "model.n_conv_layers" not in space.distributions
    for v in random_samples(space, 50):
        assert "model.n_filters_2" not in v
        assert "model.n_filters_3" not in v
        assert "model.n_neurons_2" in v
        assert "model.n_filters_1" in v


def test_fixed_child_is_passed_to_every_trial(seed_space: tuple[dict[str, Any], dict[str, str]]) -> None:
    params, conditions = seed_space
    space = build_search_space(params, conditions, ["model.n_filters_3=16"])
    assert "model.n_filters_3" not in space.distributions
    assert "model.n_filters_3" not in space.conditions
    assert "model.n_filters_3=16" in space.overrides({})


def test_config_params_may_hold_fixed_values() -> None:
    space = build_search_space({"a": "choice(1, 2)", "b": 7, "c": True}, {}, [])
    assert list(space.distributions) == ["a"]
    assert space.fixed_values == {"b": 7, "c": True}
    assert set(space.fixed) == {"b", "c"}


def test_condition_on_a_plain_config_key_uses_the_job_config() -> None:
    params = {"child": "choice(1, 2)"}
    on = build_search_space(params, {"child": "model.depth >= 2"}, [], base_values={"model.depth": 3})
    off = build_search_space(params, {"child": "model.depth >= 2"}, [], base_values={"model.depth": 1})
    assert all("child" in s for s in random_samples(on, 5))
    assert all("child" not in s for s in random_samples(off, 5))
    fixed = build_search_space(
        params, {"child": "model.depth >= 2"}, ["model.depth=1"], base_values={"model.depth": 3}
    )
    assert all("child" not in s for s in random_samples(fixed, 5))  # the command line wins


BAD_SPACES = [
    ({"nope": "model.n_conv_layers >= 2"}, [], "nope"),  # unknown child
    ({"model.n_filters_2": "model.nope >= 2"}, [], "model.nope"),  # unknown parent
    ({"model.n_filters_2": "model.n_conv_layers ~ 2"}, [], "model.n_filters_2"),  # bad operator
    ({}, ["model.kernel_size=interval(5, 1)"], "model.kernel_size"),
    ({}, ["model.kernel_size=interval(1)"], "model.kernel_size"),
    ({}, ["optimizer.lr=tag(log, interval(0, 1))"], "optimizer.lr"),
]


@pytest.mark.parametrize(("conditions", "arguments", "fragment"), BAD_SPACES)
def test_bad_space_raises(
    seed_space: tuple[dict[str, Any], dict[str, str]],
    conditions: dict[str, str],
    arguments: list[str],
    fragment: str,
) -> None:
    params, _ = seed_space
    with pytest.raises(SearchSpaceError) as info:
        build_search_space(params, conditions, arguments)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_condition_cycle_raises() -> None:
    params = {"a": "choice(1, 2)", "b": "choice(1, 2)", "c": "choice(1, 2)"}
    with pytest.raises(SearchSpaceError, match="cycle"):
        build_search_space(params, {"a": "c == 1", "b": "a == 1", "c": "b == 1"}, [])
    with pytest.raises(SearchSpaceError, match="cycle"):
        build_search_space(params, {"a": "a == 1"}, [])


# --- values written back for Hydra ----------------------------------------------------------------

ROUND_TRIP = [
    True,
    False,
    None,
    0,
    -3,
    123456789012345678901234567890,
    0.1,
    0.30000000000000004,
    1e-05,
    1e20,
    1.0,
    -0.0,
    float("inf"),
    "adam",
    "resnet-18",
    "a.b",
    "/abs/path",
    "a b",
    "it's",
    'say "hi"',
    "true",
    "False",
    "null",
    "x,y",
    "a=b",
    "[1]",
    "",
    "a\\",
]


@pytest.mark.parametrize("value", ROUND_TRIP, ids=[repr(v) for v in ROUND_TRIP])
def test_format_value_round_trips_through_hydra(value: Any) -> None:
    text = format_value(value)
    got = OverridesParser.create().parse_override(f"key={text}").value()
    assert got == value
    assert type(got) is type(value)


def test_format_value_spelling() -> None:
    assert format_value(True) == "true"
    assert format_value(False) == "false"
    assert format_value(None) == "null"
    assert format_value(0.1) == "0.1"
    assert format_value("adam") == "adam"
    assert format_value("a b") == "'a b'"


@pytest.mark.parametrize("value", ["1", "1.5", "-5", "1e-3", "nan", "1_000", "a\\b", "é"])
def test_format_value_round_trips_awkward_strings(value: str) -> None:
    got = OverridesParser.create().parse_override(f"key={format_value(value)}").value()
    assert got == value and type(got) is str


def _identity(name: str, dist: BaseDistribution) -> Any:
    assert isinstance(dist, CategoricalDistribution)
    return dist.choices[0]


def test_sample_skips_children_of_an_inactive_parent() -> None:
    space = build_search_space(
        {"a": "choice(1, 2)", "b": "choice(5, 6)", "c": "choice(7, 8)"},
        {"b": "a == 2", "c": "b == 5"},
        [],
    )
    suggest: Callable[[str, BaseDistribution], Any] = _identity
    assert space.sample(suggest) == {"a": 1}
