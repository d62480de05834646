"""A diverging run fails loudly: a NaN training loss raises NonFiniteLossError at the end of its epoch,
which a sweep records as a failed trial with that reason."""

from __future__ import annotations

import functools

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.environments import LightningEnvironment
from torch import nn

from jahs_bohb.classifier import ImageClassifier, NonFiniteLossError
from jahs_bohb.datamodule import DeviceBatches


class NaNNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(28 * 28, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1)) * float("nan")


def test_nan_loss_stops_training_with_a_clear_error() -> None:
    images = torch.randint(0, 255, (64, 28, 28), dtype=torch.uint8)
    labels = torch.randint(0, 10, (64,))
    batches = DeviceBatches(images, labels, batch_size=32, shuffle=True)
    module = ImageClassifier(NaNNet(), optimizer=functools.partial(torch.optim.SGD, lr=0.1))
    trainer = pl.Trainer(
        max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", plugins=[LightningEnvironment()],
    )  # fmt: skip
    with pytest.raises(NonFiniteLossError, match="epoch 1"):
        trainer.fit(
            module, train_dataloaders=batches, val_dataloaders=DeviceBatches(images, labels, 64, False)
        )
