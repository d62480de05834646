"""A Lightning callback that reports each epoch to an Optuna trial and stops training when pruned.

optuna-integration's callback targets the `lightning` package; this one is for `pytorch_lightning`.
It stops the trainer instead of raising inside the fit loop, so loggers and teardown finish cleanly;
the caller raises `optuna.TrialPruned` after `fit` returns.
"""

from __future__ import annotations

import optuna
import pytorch_lightning as pl


class OptunaPruning(pl.Callback):
    def __init__(self, trial: optuna.Trial, monitor: str = "val/acc_best") -> None:
        self.trial = trial
        self.monitor = monitor
        self.pruned_at_epoch: int | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            raise KeyError(f"pruning metric {self.monitor!r} was not logged in validation")
        epoch = trainer.current_epoch + 1  # the budget spent so far, in epochs
        self.trial.report(float(value), step=epoch)
        # A trial that has trained its full budget is complete, whatever its rank.
        final_epoch = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        if not final_epoch and self.trial.should_prune():
            self.pruned_at_epoch = epoch
            trainer.should_stop = True
