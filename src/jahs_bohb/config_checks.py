"""Reject out-of-range config values before anything trains, naming the field, the value and the fix.

The allowed values are the seed study's Table 1 (plus the baseline's own choices, such as no hidden FC
layer and no weight decay) and JAHS-Bench-201's space for model=cell, so a single run and every sweep
trial stay inside the studied spaces.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from jahs_bohb import cell_space
from jahs_bohb.errors import ConfigError
from jahs_bohb.fashion_mnist import check_root

TRAIN_IMAGES = 60_000
NUM_CLASSES = 10
LR_SCHEDULES = ("constant", "cosine")  # jahs_bohb.classifier.ImageClassifier's lr_schedule


@dataclass(frozen=True)
class OneOf:
    values: tuple[Any, ...]

    def problem(self, value: Any) -> str | None:
        ok = any(value == v and type(value) is type(v) for v in self.values)
        return None if ok else "allowed: one of " + ", ".join(_fmt(v) for v in self.values)


@dataclass(frozen=True)
class Between:
    low: float
    high: float
    integer: bool = False

    def problem(self, value: Any) -> str | None:
        kind = "an integer" if self.integer else "a number"
        types = (int,) if self.integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, types) or not self.low <= value <= self.high:
            return f"allowed: {kind} in [{_fmt(self.low)}, {_fmt(self.high)}]"
        return None


BOOL = OneOf((True, False))
FILTERS = Between(8, 256, integer=True)
NEURONS = Between(512, 2048, integer=True)

RULES: dict[str, OneOf | Between] = {
    "model.n_conv_layers": OneOf((1, 2, 3)),
    "model.n_filters_1": FILTERS,
    "model.n_filters_2": FILTERS,
    "model.n_filters_3": FILTERS,
    "model.kernel_size": OneOf((3, 5)),
    "model.batch_norm": BOOL,
    "model.global_avg_pooling": BOOL,
    "model.n_fc_layers": OneOf((0, 1, 2)),
    "model.n_neurons_1": NEURONS,
    "model.n_neurons_2": NEURONS,
    "model.dropout": Between(0.0, 0.5),
    "data.batch_size": Between(64, 2048, integer=True),
    "data.hflip": BOOL,
    "data.rotation": BOOL,
    "data.rotation_degrees": Between(0, 180),
    "data.val_size": Between(NUM_CLASSES, TRAIN_IMAGES - NUM_CLASSES, integer=True),
    "optimizer.lr": Between(1e-3, 1.0),
    "optimizer.weight_decay": Between(0.0, 1e-2),
    "trainer.max_epochs": Between(1, 10_000, integer=True),
    "lr_schedule": OneOf(LR_SCHEDULES),
    "data.trivial_augment": BOOL,
    "data.crop_padding": Between(0, 14, integer=True),
    # model=cell: JAHS-Bench-201's space
    "model.depth": OneOf(cell_space.DEPTHS),
    "model.width": OneOf(cell_space.WIDTHS),
    "model.activation": OneOf(cell_space.ACTIVATIONS),
    "model.resolution": OneOf(cell_space.RESOLUTIONS),
    **{f"model.cell.{edge}": OneOf(cell_space.OPS) for edge in cell_space.EDGES},
}


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _get(cfg: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first field outside its allowed values."""
    values = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))
    for key, rule in RULES.items():
        present, value = _get(values, key)
        if present and (problem := rule.problem(value)) is not None:
            raise ConfigError(f"{key}={_fmt(value)} is out of range; {problem}")
    _check_subset_sizes(values)
    root = values.get("data", {}).get("root")
    if root is not None:
        check_root(root)  # a typo in data.root fails before anything is written


def dead_cell(cfg: DictConfig) -> str | None:
    """Why model=cell's cell computes nothing (no path of non-zero edges joins its input and output),
    or None. Not a range check: a sweep stops such a trial before training it (the sampler learns from
    a stopped trial, not from a failed one), a single run ends with the reason."""
    cell = cfg.get("model", {}).get("cell")
    if cell is None or any(cell.get(edge) not in cell_space.OPS for edge in cell_space.EDGES):
        return None
    return cell_space.dead_cell_reason(cell)


def check_sweep_config(cfg: DictConfig) -> None:
    """The sweeper's preflight check (hydra.sweeper.preflight_check): the ranges, and a cell that the
    sweep's fixed overrides leave without a path, which would stop every trial."""
    check_config(cfg)
    if (dead := dead_cell(cfg)) is not None:
        raise ConfigError(dead)


def _check_subset_sizes(values: dict[str, Any]) -> None:
    data = values.get("data", {})
    val_size = data.get("val_size", 10_000)
    sizes = {"data.limit_train": TRAIN_IMAGES - val_size, "data.limit_val": val_size}
    for key, available in sizes.items():
        present, value = _get(values, key)
        if not present or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not NUM_CLASSES <= value <= available:
            raise ConfigError(
                f"{key}={_fmt(value)} is out of range; allowed: null (all) or an integer in "
                f"[{NUM_CLASSES}, {available}] (at least one image per class, at most the split's size)"
            )
