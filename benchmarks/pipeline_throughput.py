"""Seconds per training epoch: the app's own input pipeline versus a seed-style torchvision one.

Two configurations of the app, conf/train.yaml composed with overrides (common.CONFIGURATIONS): the
seed's baseline (the config's defaults) and a strong configuration of the seed's best region
(jahs_bohb.model.REFERENCE_CONFIG, Adam lr 1e-3, batch 128, random flip and rotation). For each, three
flavours train the model that `jahs_bohb.pipeline.build(cfg)` returns (freshly seeded, so all three start
from the same weights) with the configured optimiser and batch size, on the same stratified subset of
training images, on the same device:

  seed_plain      the reference, as the seed did it: torchvision.datasets.FashionMNIST + PIL transforms
                  (RandomHorizontalFlip, RandomRotation, ToTensor, Normalize, as configured) + a shuffling
                  DataLoader with worker processes, in a plain PyTorch training loop;
  ours_plain      the built data module's batches (jahs_bohb.datamodule.DeviceBatches: uint8 tensors on
                  the device, slices of a per-epoch permutation, batched on-device augmentation) in the
                  same plain loop;
  ours_lightning  a job's own path: the Trainer of conf/trainer fitting the built module on the built data
                  module (no validation, so that all three do the same work).

Each flavour trains one warm-up epoch plus --epochs timed epochs; the table and the JSON give the median
seconds per timed epoch, images per second and the speed-ups seed_plain / ours_plain and seed_plain /
ours_lightning. CUDA is synchronised around every timing. The seed-style loader gets pinned memory (on
CUDA) and persistent workers, which can only make it faster, so the ratios are conservative. On a CPU,
other processes skew the numbers (the JSON records the load average before each flavour); on a shared
CPU pass --threads 1.

    python benchmarks/pipeline_throughput.py                        # CUDA: 50k images, 3 epochs
    python benchmarks/pipeline_throughput.py --device cpu --threads 1 --train-images 2000 --epochs 2
"""

from __future__ import annotations

import argparse
import gc
import gzip
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

from jahs_bohb import pipeline, splits
from jahs_bohb.classifier import ImageClassifier
from jahs_bohb.datamodule import MEAN, STD, DeviceBatches, FashionMNISTDataModule
from jahs_bohb.fashion_mnist import FILES, find_idx_files, load_fashion_mnist

FLAVOURS = ("seed_plain", "ours_plain", "ours_lightning")
Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Run:
    """The epoch times (warm-up first) and per-epoch mean training losses of one flavour."""

    epoch_seconds: list[float]
    train_losses: list[float] = field(default_factory=list)

    def summary(self, n_images: int) -> dict[str, Any]:
        timed = self.epoch_seconds[1:]
        median = statistics.median(timed)
        return {
            "warmup_seconds": self.epoch_seconds[0],
            "epoch_seconds": timed,
            "median_seconds_per_epoch": median,
            "images_per_second": n_images / median,
            "train_losses": self.train_losses,
        }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = common.parser(__doc__, "pipeline_throughput")
    common.add_trial_args(parser)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs, after one warm-up epoch")
    parser.add_argument("--num-workers", type=int, default=2, help="seed-style DataLoader workers")
    args = parser.parse_args(argv)
    common.resolve_trial_args(parser, args)
    if args.train_images is None:
        args.train_images = 50_000 if args.device.startswith("cuda") else 5_000
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    return args


def config(name: str, args: argparse.Namespace) -> DictConfig:
    """The configuration under test, as a job of `python train.py` would get it (validation off)."""
    return common.compose_config(
        [
            *common.CONFIGURATIONS[name],
            *common.trial_overrides(args),
            f"trainer.max_epochs={args.epochs + 1}",
            "+trainer.limit_val_batches=0",
        ]
    )


def training_indices(labels: np.ndarray, data: DictConfig) -> np.ndarray:
    """The stratified subset the built data module trains on (FashionMNISTDataModule.setup)."""
    train_idx, _ = splits.train_val_split(labels, data.val_size, data.split_seed)
    return splits.limit(train_idx, labels, data.limit_train, data.split_seed)


def torchvision_root(data_root: Path, tmp: Path) -> Path:
    """Lay out <tmp>/FashionMNIST/raw/ for torchvision with download=False.

    torchvision's `_check_exists` looks for the *decompressed* IDX files (it only extracts .gz files
    as part of a download), so gzipped files are decompressed here and plain ones are symlinked.
    """
    files = find_idx_files(data_root)
    if files is None:
        raise FileNotFoundError(f"no Fashion-MNIST IDX files in {data_root}")
    raw = tmp / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for key, path in files.items():
        target = raw / FILES[key]
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            target.symlink_to(path.resolve())
    return tmp


def seed_loader(
    root: Path, indices: np.ndarray, data: DictConfig, num_workers: int, device: torch.device
) -> DataLoader:
    """The seed-style input pipeline: torchvision dataset, per-image PIL transforms, DataLoader."""
    augment: list[Any] = []
    if data.hflip:
        augment.append(transforms.RandomHorizontalFlip())
    if data.rotation:
        augment.append(transforms.RandomRotation(data.rotation_degrees))
    transform = transforms.Compose([*augment, transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))])
    dataset = datasets.FashionMNIST(str(root), train=True, download=False, transform=transform)
    return DataLoader(
        Subset(dataset, indices.tolist()),
        batch_size=data.batch_size,
        shuffle=True,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=num_workers > 0,
    )


def device_batches(datamodule: FashionMNISTDataModule, device: torch.device) -> DeviceBatches:
    """The built data module's training batches, on `device` (outside a Trainer it sets up on the CPU)."""
    datamodule.setup("fit")
    batches = datamodule.train_dataloader()
    return DeviceBatches(
        batches.images.to(device),
        batches.labels.to(device),
        batches.batch_size,
        shuffle=True,
        hflip=batches.hflip,
        rotation_degrees=batches.rotation_degrees,
        seed=datamodule.seed,
    )


def train_plain(module: ImageClassifier, batches: Batches, epochs: int, device: torch.device) -> Run:
    """A plain PyTorch training loop; the loss is summed on the device and read once per epoch."""
    module.to(device).train()
    optimizer = module.configure_optimizers()
    run = Run([])
    for _ in range(epochs):
        common.sync(device)
        start = time.perf_counter()
        loss_sum, count = torch.zeros((), device=device), 0
        for x, y in batches:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(module(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * y.shape[0]
            count += y.shape[0]
        mean_loss = (loss_sum / count).item()
        common.sync(device)
        run.epoch_seconds.append(time.perf_counter() - start)
        run.train_losses.append(mean_loss)
    return run


def time_seed_plain(cfg: DictConfig, args: argparse.Namespace, tv_root: Path, indices: np.ndarray) -> Run:
    _, module = pipeline.build(cfg)
    device = torch.device(args.device)
    loader = seed_loader(tv_root, indices, cfg.data, args.num_workers, device)
    # The loader (and its persistent workers) goes away when this returns.
    return train_plain(module, loader, cfg.trainer.max_epochs, device)


def time_ours_plain(cfg: DictConfig, args: argparse.Namespace) -> Run:
    datamodule, module = pipeline.build(cfg)
    device = torch.device(args.device)
    return train_plain(module, device_batches(datamodule, device), cfg.trainer.max_epochs, device)


def time_ours_lightning(cfg: DictConfig, args: argparse.Namespace) -> Run:
    datamodule, module = pipeline.build(cfg)
    timer = common.EpochTimer(torch.device(args.device))
    common.trainer(cfg, [timer]).fit(module, datamodule=datamodule)
    return Run(timer.epoch_seconds, [record["train/loss"] for record in module.history])


def run_config(
    name: str, args: argparse.Namespace, tv_root: Path, train_labels: np.ndarray
) -> dict[str, Any]:
    cfg = config(name, args)
    indices = training_indices(train_labels, cfg.data)
    timers: dict[str, Callable[[], Run]] = {
        "seed_plain": lambda: time_seed_plain(cfg, args, tv_root, indices),
        "ours_plain": lambda: time_ours_plain(cfg, args),
        "ours_lightning": lambda: time_ours_lightning(cfg, args),
    }
    runs, load = {}, {}
    for flavour, timer in timers.items():
        load[flavour] = common.load_average()
        runs[flavour] = timer()
        gc.collect()
    result: dict[str, Any] = {
        "overrides": common.CONFIGURATIONS[name],
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "optimizer": OmegaConf.to_container(cfg.optimizer, resolve=True),
        "n_parameters": pipeline.build(cfg)[1].n_parameters,
        "batch_size": cfg.data.batch_size,
        "lr": cfg.optimizer.lr,
        "hflip": cfg.data.hflip,
        "rotation": cfg.data.rotation,
        "rotation_degrees": cfg.data.rotation_degrees,
        "train_images": len(indices),
        "flavours": {
            flavour: {**run.summary(len(indices)), "load_average_before": load[flavour]}
            for flavour, run in runs.items()
        },
    }
    seed_median = result["flavours"]["seed_plain"]["median_seconds_per_epoch"]
    result["ratios"] = {
        f"seed_plain/{flavour}": seed_median / result["flavours"][flavour]["median_seconds_per_epoch"]
        for flavour in FLAVOURS[1:]
    }
    return result


def print_table(results: dict[str, Any], machine: str) -> None:
    header = f"{'config':<14} {'flavour':<15} {'s/epoch':>9} {'images/s':>10} {'seed/this':>10} {'loss':>7}"
    print(f"\non {machine}\n{header}\n{'-' * len(header)}")
    for config_name, result in results.items():
        seed_median = result["flavours"]["seed_plain"]["median_seconds_per_epoch"]
        for name, flavour in result["flavours"].items():
            median = flavour["median_seconds_per_epoch"]
            loss = flavour["train_losses"][-1] if flavour["train_losses"] else float("nan")
            print(
                f"{config_name:<14} {name:<15} {median:>9.3f} "
                f"{flavour['images_per_second']:>10.0f} {seed_median / median:>9.2f}x {loss:>7.3f}"
            )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    common.quiet()
    report = common.new_report(
        "seconds per training epoch, median over timed epochs after one warm-up epoch", args.device
    )
    report["settings"] = {
        "device": args.device,
        "train_images": args.train_images,
        "timed_epochs": args.epochs,
        "warmup_epochs": 1,
        "num_workers": args.num_workers,
        "torch_threads": args.threads,
        "seed_loader": {
            "pin_memory": args.device.startswith("cuda"),
            "persistent_workers": args.num_workers > 0,
        },
        "data_root": str(args.data_root),
        "seed": args.seed,
        "extra_overrides": args.override,
    }
    report["results"] = results = {}
    train_labels = load_fashion_mnist(args.data_root, download=False).train_labels
    with tempfile.TemporaryDirectory(prefix="fashion_mnist_tv_") as tmp:
        tv_root = torchvision_root(args.data_root, Path(tmp))
        for name in common.CONFIGURATIONS:
            print(f"[{name}] timing {', '.join(FLAVOURS)} ...", flush=True)
            results[name] = run_config(name, args, tv_root, train_labels)
            common.write_result(report, args.out)
    report["settings"]["cudnn_benchmark"] = torch.backends.cudnn.benchmark  # as build() configured it
    common.write_result(report, args.out)
    print_table(results, report["machine"]["device_name"])
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
