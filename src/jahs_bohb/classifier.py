"""LightningModule: cross-entropy training of any image classifier with on-device metric accumulation.

Metrics are summed into device tensors each step and read once per epoch, so training never waits on a
per-step `.item()` host sync.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from jahs_bohb.config_checks import LR_SCHEDULES
from jahs_bohb.model import count_parameters

OptimizerFactory = Callable[..., torch.optim.Optimizer]


class NonFiniteLossError(FloatingPointError):
    """The training loss diverged (NaN or inf): the trial is a failure, not a result."""


class _Totals:
    """Running sums of loss, correct predictions and samples, kept on the device."""

    def __init__(self) -> None:
        self.loss: torch.Tensor | None = None
        self.correct: torch.Tensor | None = None
        self.count = 0

    def add(self, logits: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor) -> None:
        n = targets.shape[0]
        batch_loss = loss.detach() * n
        batch_correct = (logits.argmax(1) == targets).sum()
        self.loss = batch_loss if self.loss is None else self.loss + batch_loss
        self.correct = batch_correct if self.correct is None else self.correct + batch_correct
        self.count += n


class ImageClassifier(pl.LightningModule):
    """lr_schedule "cosine" anneals the learning rate to 0 at every step over trainer.max_epochs: in a
    sweep that is the budget of a full trial for every trial, so a configuration paused at a rung
    resumes on the schedule it would have followed without the pause (the scheduler's state is in the
    checkpoint), as JAHS-Bench-201's epochs follow one fixed 200-epoch schedule."""

    def __init__(self, net: nn.Module, optimizer: OptimizerFactory, lr_schedule: str = "constant") -> None:
        super().__init__()
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr_schedule {lr_schedule!r}; allowed: {', '.join(LR_SCHEDULES)}")
        self.net = net
        self.optimizer_factory = optimizer
        self.lr_schedule = lr_schedule
        self.n_parameters = count_parameters(net)
        self._totals = {"train": _Totals(), "val": _Totals(), "test": _Totals()}
        self.best_val_acc = -math.inf
        self.history: list[dict[str, float]] = []
        self._fit_started = time.perf_counter()

    def on_fit_start(self) -> None:
        self._fit_started = time.perf_counter()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, stage: str, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self._totals[stage].add(logits, y, loss)
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step("train", batch)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step("val", batch)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step("test", batch)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self._totals["val"] = _Totals()
            return
        loss, acc = self._compute("val")
        self.best_val_acc = max(self.best_val_acc, acc)
        self.log_dict({"val/loss": loss, "val/acc": acc, "val/acc_best": self.best_val_acc})

    def on_train_epoch_end(self) -> None:
        # Runs after this epoch's validation, so the epoch's record is complete here.
        loss, acc = self._compute("train")
        if not math.isfinite(loss):
            raise NonFiniteLossError(f"training loss became {loss} in epoch {self.current_epoch + 1}")
        lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        elapsed = time.perf_counter() - self._fit_started
        self.log_dict({"train/loss": loss, "train/acc": acc, "lr": lr, "time/elapsed_s": elapsed})
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items()}
        self.history.append({"epoch": self.current_epoch + 1, **metrics})

    def on_test_epoch_end(self) -> None:
        loss, acc = self._compute("test")
        self.log_dict({"test/loss": loss, "test/acc": acc})

    def _compute(self, stage: str) -> tuple[float, float]:
        totals = self._totals[stage]
        count = totals.count
        if totals.loss is None or totals.correct is None or count == 0:
            return math.nan, math.nan
        loss_sum, correct = torch.stack([totals.loss.float(), totals.correct.float()]).tolist()
        self._totals[stage] = _Totals()
        return loss_sum / count, correct / count

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # A paused trial resumes with its best accuracy so far (the metric it reports) and its history.
        checkpoint["jahs_bohb"] = {"best_val_acc": self.best_val_acc, "history": self.history}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("jahs_bohb") or {}
        self.best_val_acc = float(state.get("best_val_acc", -math.inf))
        self.history = list(state.get("history", []))

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.lr_schedule == "constant":
            return optimizer
        steps = int(self.trainer.estimated_stepping_batches)  # max_epochs x batches per epoch
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": cosine, "interval": "step"}}
