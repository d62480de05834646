"""A Lightning callback that reports each epoch to the sweep's trial and stops training when pruned.

Used as `client.PruningCallback` (imported from there, lazily, so the client stays free of Lightning).
It stops the trainer instead of raising inside the fit loop, so loggers and teardown finish cleanly; the
job raises `client.TrialPruned` after `fit` returns when `pruned_at_epoch` is set.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl

from hydra_plugins.hydra_bohb_sweeper.client import SweepTrial


class PruningCallback(pl.Callback):
    """Reports `monitor` (a metric logged in validation) after each epoch. For a study with several
    objectives, `known_values` are the values of the later objectives that training does not change
    (e.g. the parameter count), reported after the monitored one in the order of the directions."""

    def __init__(self, trial: SweepTrial, monitor: str, known_values: Sequence[float] = ()) -> None:
        self.trial = trial
        self.monitor = monitor
        self.known_values = list(known_values)
        self.pruned_at_epoch: int | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            raise KeyError(f"pruning metric {self.monitor!r} was not logged in validation")
        epoch = trainer.current_epoch + 1  # the budget spent so far, in epochs
        self.trial.report(
            [float(value), *self.known_values] if self.known_values else float(value), step=epoch
        )
        final_epoch = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        if not final_epoch and self.trial.should_prune():
            self.pruned_at_epoch = epoch
            trainer.should_stop = True
