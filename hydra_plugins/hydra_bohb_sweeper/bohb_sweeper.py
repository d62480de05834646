"""The Hydra Sweeper: a thin adapter; the sweep lives in `_running/sweep.py` (imported lazily, so
Hydra's start-up and `--help` never import Optuna)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

import hydra_plugins.hydra_bohb_sweeper.config  # noqa: F401  (registers `hydra/sweeper: bohb`)


class BOHBSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        from hydra_plugins.hydra_bohb_sweeper._running.sweep import BOHBSweep

        self._sweep = BOHBSweep(**settings)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self._sweep.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: Sequence[str]) -> Any:
        return self._sweep.sweep(arguments)
