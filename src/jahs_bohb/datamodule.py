"""Fashion-MNIST as device-resident tensors, sliced into batches by a per-epoch permutation.

The whole training set (47 MB as uint8) is moved to the training device once; a batch is an index
slice plus batched augmentation, so an epoch costs no host-to-device copies and no worker processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from jahs_bohb import splits
from jahs_bohb.augment import random_crop, random_hflip, random_rotation, trivial_augment
from jahs_bohb.fashion_mnist import load_fashion_mnist

# Training-set statistics of Fashion-MNIST pixels in [0, 1].
MEAN, STD = 0.2860, 0.3530

Batch = tuple[torch.Tensor, torch.Tensor]


class DeviceBatches:
    """An iterable of (normalised float images, labels) batches over uint8 tensors on one device."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        shuffle: bool,
        hflip: bool = False,
        rotation_degrees: float = 0.0,
        seed: int = 0,
        trivial_augment: bool = False,
        crop_padding: int = 0,
    ) -> None:
        self.images, self.labels = images, labels
        self.batch_size = batch_size
        self.shuffle, self.hflip, self.rotation_degrees = shuffle, hflip, rotation_degrees
        self.trivial_augment, self.crop_padding = trivial_augment, crop_padding
        self.generator = torch.Generator(device=images.device)
        self.generator.manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        n = len(self.labels)
        order = (
            torch.randperm(n, device=self.images.device, generator=self.generator) if self.shuffle else None
        )
        for start in range(0, n, self.batch_size):
            if order is None:
                x, y = (
                    self.images[start : start + self.batch_size],
                    self.labels[start : start + self.batch_size],
                )
            else:
                idx = order[start : start + self.batch_size]
                x, y = self.images[idx], self.labels[idx]
            yield self._prepare(x), y

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        # JAHS-Bench-201's order: TrivialAugment (on the 8-bit pixels, as on its images), flip, crop.
        x = x.unsqueeze(1)
        if self.trivial_augment:
            x = trivial_augment(x, self.generator)
        x = x.float().div_(255.0)
        if self.hflip:
            x = random_hflip(x, self.generator)
        if self.crop_padding > 0:
            x = random_crop(x, self.crop_padding, self.generator)
        if self.rotation_degrees > 0:
            x = random_rotation(x, self.rotation_degrees, self.generator)
        return x.sub_(MEAN).div_(STD)


class FashionMNISTDataModule(pl.LightningDataModule):
    """Train / validation (a stratified holdout of the 60k training images) / test (the 10k test set)."""

    def __init__(
        self,
        root: str | None = None,
        download: bool = True,
        download_dir: str | None = None,
        val_size: int = 10_000,
        limit_train: int | None = None,
        limit_val: int | None = None,
        split_seed: int = 0,
        batch_size: int = 100,
        eval_batch_size: int = 1000,
        hflip: bool = False,
        rotation: bool = False,
        rotation_degrees: float = 10.0,
        trivial_augment: bool = False,
        crop_padding: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.root, self.download, self.download_dir = root, download, download_dir
        self.val_size, self.limit_train, self.limit_val = val_size, limit_train, limit_val
        self.split_seed, self.seed = split_seed, seed
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.hflip, self.rotation, self.rotation_degrees = hflip, rotation, rotation_degrees
        self.trivial_augment, self.crop_padding = trivial_augment, crop_padding
        self.source = ""
        self._tensors: dict[str, Batch] = {}
        self._train_batches: DeviceBatches | None = None
        self._resumed_generator: torch.Tensor | None = None  # from a checkpoint (a paused trial's)

    def _device(self) -> torch.device:
        trainer = self.trainer
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def setup(self, stage: str | None = None) -> None:
        device = self._device()
        if self._tensors:  # set up before (e.g. without a trainer): follow the trainer's device
            self._tensors = {k: (x.to(device), y.to(device)) for k, (x, y) in self._tensors.items()}
            return
        data = load_fashion_mnist(self.root, self.download, self.download_dir)
        self.source = data.source
        train_idx, val_idx = splits.train_val_split(data.train_labels, self.val_size, self.split_seed)
        train_idx = splits.limit(train_idx, data.train_labels, self.limit_train, self.split_seed)
        val_idx = splits.limit(val_idx, data.train_labels, self.limit_val, self.split_seed)

        def to_device(images: np.ndarray, labels: np.ndarray) -> Batch:
            # A copy: the loaded arrays are read-only and shared with later trials of this process.
            return (
                torch.from_numpy(np.array(images, order="C")).to(device),
                torch.from_numpy(np.array(labels, order="C")).to(device),
            )

        self._tensors = {
            "train": to_device(data.train_images[train_idx], data.train_labels[train_idx]),
            "val": to_device(data.train_images[val_idx], data.train_labels[val_idx]),
            "test": to_device(data.test_images, data.test_labels),
        }

    def split_sizes(self) -> dict[str, int]:
        return {name: len(labels) for name, (_, labels) in self._tensors.items()}

    def train_dataloader(self) -> DeviceBatches:
        images, labels = self._tensors["train"]
        self._train_batches = DeviceBatches(
            images,
            labels,
            self.batch_size,
            shuffle=True,
            hflip=self.hflip,
            rotation_degrees=self.rotation_degrees if self.rotation else 0.0,
            seed=self.seed,
            trivial_augment=self.trivial_augment,
            crop_padding=self.crop_padding,
        )
        if self._resumed_generator is not None:
            self._train_batches.generator.set_state(self._resumed_generator)
        return self._train_batches

    def state_dict(self) -> dict[str, Any]:
        """Saved in a checkpoint: where the batch order and augmentations stand, so that a paused trial
        resumes with the epochs it would have trained without the pause."""
        if self._train_batches is None:
            return {}
        return {"train_generator": self._train_batches.generator.get_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resumed_generator = state_dict.get("train_generator")

    def val_dataloader(self) -> DeviceBatches:
        return DeviceBatches(*self._tensors["val"], self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DeviceBatches:
        return DeviceBatches(*self._tensors["test"], self.eval_batch_size, shuffle=False)
