"""The search-quality task that every strategy trains: a small MLP on real Fashion-MNIST, epoch by epoch.

The 28x28 images are average-pooled to 14x14 and flattened; a stratified subset of the training images
is trained on, and a stratified holdout of the *training* images is the validation set that every
strategy searches on. The official test images are seen only to record the test accuracy of a run's
incumbent; no strategy ever reads them. The search space mirrors the project's joint space: depth
{1, 2, 3} with one log-int width per layer that exists only when its layer does (like the project's
conditional `n_filters_2/3`), log-scale learning rate and weight decay, batch size, optimizer and
dropout as choices.

One unit of budget is one epoch trained, whatever the configuration and whoever asked for it. A run's
`Ledger` counts them, keeps its incumbent (the configuration and epoch with the best validation accuracy
seen so far) and says when the run's budget is spent. The sweeper's jobs (app.py) keep it in a file in
the sweep directory; the external optimizers (external.py) keep it in memory.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jahs_bohb.fashion_mnist import load_fashion_mnist
from jahs_bohb.splits import limit, train_val_split

SPLIT_SEED = 0  # the data split is the same for every strategy and seed
# The search space; conf/config.yaml writes it in the sweeper's grammar and external.py as a ConfigSpace.
DEPTHS = (1, 2, 3)
WIDTH_RANGE = (16, 512)  # log-int, width_k exists when depth >= k
LR_RANGE = (1e-4, 1.0)  # log
WEIGHT_DECAY_RANGE = (1e-6, 1e-2)  # log
BATCH_SIZES = (32, 64, 128, 256, 512)
OPTIMIZERS = ("adam", "sgd")  # sgd with momentum 0.9
DROPOUTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
PARAMS = (
    "depth",
    "width_1",
    "width_2",
    "width_3",
    "lr",
    "weight_decay",
    "batch_size",
    "optimizer",
    "dropout",
)


@dataclass(frozen=True)
class Data:
    """Pre-pooled, standardised, flattened images (float32) and int64 labels, as tensors."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def _pool_flatten(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 196): 2x2 average pooling to 14x14."""
    x = torch.from_numpy(images).float().div_(255.0).unsqueeze(1)
    return F.avg_pool2d(x, 2).flatten(1)


@functools.lru_cache(maxsize=2)
def load_data(train_images: int, val_images: int, test_images: int | None) -> Data:
    """Stratified training subset and validation holdout of the training images; a stratified subset of
    the test images (all 10k when None). Cached: a process running trial after trial loads it once."""
    fm = load_fashion_mnist(download=False)
    train_idx, val_idx = train_val_split(fm.train_labels, val_images, SPLIT_SEED)
    train_idx = limit(train_idx, fm.train_labels, train_images, SPLIT_SEED)
    test_idx = limit(np.arange(len(fm.test_labels)), fm.test_labels, test_images, SPLIT_SEED)
    x_train = _pool_flatten(fm.train_images[train_idx])
    mean, std = float(x_train.mean()), float(x_train.std())

    def norm(images: np.ndarray) -> torch.Tensor:
        return (_pool_flatten(images) - mean) / std

    def labels(values: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(values, dtype=np.int64))

    return Data(
        x_train=(x_train - mean) / std,
        y_train=labels(fm.train_labels[train_idx]),
        x_val=norm(fm.train_images[val_idx]),
        y_val=labels(fm.train_labels[val_idx]),
        x_test=norm(fm.test_images[test_idx]),
        y_test=labels(fm.test_labels[test_idx]),
    )


def active_params(values: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration as the training reads it: widths only for the layers that exist, plain types."""
    depth = int(values["depth"])
    out: dict[str, Any] = {"depth": depth}
    for k in range(1, depth + 1):
        out[f"width_{k}"] = int(values[f"width_{k}"])
    out["lr"] = float(values["lr"])
    out["weight_decay"] = float(values["weight_decay"])
    out["batch_size"] = int(values["batch_size"])
    out["optimizer"] = str(values["optimizer"])
    out["dropout"] = float(values["dropout"])
    return out


def build_model(params: Mapping[str, Any], n_in: int, n_classes: int = 10) -> nn.Module:
    layers: list[nn.Module] = []
    width_in = n_in
    for k in range(1, params["depth"] + 1):
        width = params[f"width_{k}"]
        layers += [nn.Linear(width_in, width), nn.ReLU(), nn.Dropout(params["dropout"])]
        width_in = width
    layers.append(nn.Linear(width_in, n_classes))
    return nn.Sequential(*layers)


def build_optimizer(params: Mapping[str, Any], model: nn.Module) -> torch.optim.Optimizer:
    if params["optimizer"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"])
    return torch.optim.SGD(
        model.parameters(), lr=params["lr"], momentum=0.9, weight_decay=params["weight_decay"]
    )


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return int((model(x).argmax(1) == y).sum()) / len(y)


class Training:
    """One configuration's model, optimizer and batch order, trained one epoch at a time.

    A diverging configuration is not an error here: its accuracy is what its NaN weights predict.
    Every strategy meets the same training, so none is helped by a special case.
    """

    def __init__(self, params: Mapping[str, Any], data: Data, torch_seed: int) -> None:
        self.params = dict(params)
        self.data = data
        torch.manual_seed(torch_seed)
        self.generator = torch.Generator().manual_seed(torch_seed)
        self.model = build_model(self.params, data.x_train.shape[1])
        self.optimizer = build_optimizer(self.params, self.model)
        self.val_history: list[float] = []  # validation accuracy after each epoch
        self.last_cpu_s = 0.0  # CPU seconds of the last epoch (training and validation)

    @property
    def epochs(self) -> int:
        return len(self.val_history)

    def train_epoch(self) -> float:
        """One shuffled pass over the training images; returns the validation accuracy after it."""
        started = time.process_time()
        x, y, batch_size = self.data.x_train, self.data.y_train, self.params["batch_size"]
        self.model.train()
        order = torch.randperm(len(x), generator=self.generator)
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            self.optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(self.model(x[idx]), y[idx]).backward()
            self.optimizer.step()
        self.val_history.append(accuracy(self.model, self.data.x_val, self.data.y_val))
        self.last_cpu_s = time.process_time() - started
        return self.val_history[-1]

    def test_accuracy(self) -> float:
        return accuracy(self.model, self.data.x_test, self.data.y_test)

    def state(self) -> dict[str, Any]:
        """Everything the next epoch depends on (a paused trial's checkpoint): weights, optimizer, batch
        order and the dropout masks' random numbers, so that training on after `load_state` draws the
        same epochs as training on without the pause."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "val_history": list(self.val_history),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.val_history = list(state["val_history"])


def torch_seed(run_seed: int, index: int) -> int:
    """Weight init and batch order of the `index`-th configuration of a run: the same for every strategy
    (common random numbers), so their comparison's noise is mostly their own."""
    return run_seed * 1_000_003 + index


class BudgetSpent(KeyboardInterrupt):
    """The run's budget of epochs is spent: stop the search.

    A KeyboardInterrupt, so that the sweeper handles it as it handles Ctrl-C: it stops launching trials,
    records the trial in flight as failed (`interrupted`), writes its results and exits (code 2).
    """


@dataclass
class Ledger:
    """Every epoch trained in one run, in order, and the incumbent (the best validation accuracy seen).

    With a `path`, each epoch is also appended to that JSONL file, so jobs of one sweep (one after
    another, in any process) share the count. `budget=None`: no limit.
    """

    budget: int | None = None
    path: Path | None = None
    epochs: int = 0
    best_val: float = -math.inf
    rows: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def open(cls, path: Path, budget: int | None) -> Ledger:
        ledger = cls(budget=budget, path=path)
        if path.exists():
            for line in path.read_text().splitlines():
                ledger._add(json.loads(line))
        return ledger

    def _add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.epochs += 1
        self.best_val = max(self.best_val, row["val_acc"])

    @property
    def spent(self) -> bool:
        return self.budget is not None and self.epochs >= self.budget

    @property
    def left(self) -> float:
        return math.inf if self.budget is None else self.budget - self.epochs

    def record(self, config: int, training: Training) -> None:
        """The epoch that `training` (configuration number `config`) has just trained; its test accuracy
        is measured only when this epoch becomes the incumbent."""
        val_acc = training.val_history[-1]
        row: dict[str, Any] = {
            "config": config,
            "epoch": training.epochs,
            "val_acc": val_acc,
            "cpu_s": round(training.last_cpu_s, 4),
        }
        if val_acc > self.best_val:
            row["test_acc"] = training.test_accuracy()
        self._add(row)
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")


def anytime_curves(rows: list[dict[str, Any]]) -> tuple[list[float], list[float], dict[str, Any]]:
    """From a run's ledger rows: best validation accuracy and the incumbent's test accuracy after each
    epoch trained, and the final incumbent (config number, its epoch, accuracies, at which epoch)."""
    best_val: list[float] = []
    incumbent_test: list[float] = []
    incumbent: dict[str, Any] = {"val_acc": -math.inf}
    for at, row in enumerate(rows, start=1):
        if row["val_acc"] > incumbent["val_acc"]:
            incumbent = {**row, "at_cumulative_epoch": at}
        best_val.append(incumbent["val_acc"])
        incumbent_test.append(incumbent["test_acc"])
    return best_val, incumbent_test, incumbent
