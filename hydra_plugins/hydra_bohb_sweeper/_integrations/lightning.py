"""A Lightning callback that reports each epoch to the sweep's trial and pauses (with a checkpoint) or
stops training when the scheduler says so.

Used as `client.PruningCallback` (imported from there, lazily, so the client stays free of Lightning).
It stops the trainer instead of raising inside the fit loop, so loggers and teardown finish cleanly;
after `fit` returns, the job raises `client.TrialPaused` when `paused_at_epoch` is set and
`client.TrialPruned` when `pruned_at_epoch` is. A paused configuration resumes with
`trainer.fit(..., ckpt_path=trial.resume_from)`: Lightning restores the weights, the optimizer, the
learning-rate schedulers, the loops and every callback's state (early stopping's included); this
callback adds the random number generators, so a configuration trains the same epochs whether it was
paused or not.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytorch_lightning as pl
import torch

from hydra_plugins.hydra_bohb_sweeper.client import SweepTrial


class PruningCallback(pl.Callback):
    """Reports `monitor` (a metric logged in validation) after each epoch. For a study with several
    objectives, `known_values` are the values of the later objectives that training does not change
    (e.g. the parameter count), reported after the monitored one in the order of the directions.
    `can_pause=False` for a trainer whose state cannot be checkpointed: its trials are stopped where
    others would pause."""

    def __init__(
        self, trial: SweepTrial, monitor: str, known_values: Sequence[float] = (), can_pause: bool = True
    ) -> None:
        self.trial = trial
        self.monitor = monitor
        self.known_values = list(known_values)
        self.can_pause = can_pause
        self.pruned_at_epoch: int | None = None
        self.paused_at_epoch: int | None = None
        self.checkpoint: Path | None = None

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
        if trainer.max_epochs is not None and epoch >= trainer.max_epochs:
            return
        if self.can_pause and self.trial.should_pause():
            self.paused_at_epoch = epoch  # the checkpoint is saved once the epoch has ended (on_fit_end)
            trainer.should_stop = True
        elif self.trial.should_prune():
            self.pruned_at_epoch = epoch
            trainer.should_stop = True

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Saved here, not at validation: Lightning counts the epoch as done only after its end hooks,
        # and a checkpoint saved earlier would resume by replaying the end of that epoch.
        if self.paused_at_epoch is not None:
            self.checkpoint = self.trial.save_checkpoint(
                lambda path: trainer.save_checkpoint(path, weights_only=False)  # the whole state
            )

    def state_dict(self) -> dict[str, Any]:
        """Saved in the checkpoint: the random number generators, so that the batches, augmentations
        and dropout masks after a resume are those the trial would have drawn without the pause."""
        # Tensors and plain Python values only: Lightning loads checkpoints with `weights_only`.
        kind, keys, position, has_gauss, cached = cast(tuple, np.random.get_state())
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy": [kind, torch.from_numpy(keys.copy()), position, has_gauss, cached],
            "python": random.getstate(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["torch"])
        kind, keys, position, has_gauss, cached = state_dict["numpy"]
        np.random.set_state((kind, keys.numpy(), position, has_gauss, cached))
        random.setstate(state_dict["python"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
