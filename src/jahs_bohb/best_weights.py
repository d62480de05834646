"""Keep the weights of the best validation epoch in memory, to test them (early stopping's model)."""

from __future__ import annotations

import copy

import pytorch_lightning as pl
import torch


class BestWeights(pl.Callback):
    def __init__(self, monitor: str = "val/acc") -> None:
        self.monitor = monitor
        self.best = -float("inf")
        self.epoch = 0
        self.state: dict[str, torch.Tensor] | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None or float(value) <= self.best:
            return
        self.best, self.epoch = float(value), trainer.current_epoch + 1
        self.state = copy.deepcopy(pl_module.state_dict())

    def restore(self, pl_module: pl.LightningModule) -> None:
        if self.state is not None:
            pl_module.load_state_dict(self.state)
