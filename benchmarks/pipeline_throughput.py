"""Seconds per training epoch: our device-resident pipeline versus a seed-style torchvision one.

What is measured, for two configurations (the FashionCNN() baseline without augmentation, and the
a strong configuration of the seed's best region, jahs_bohb.model.REFERENCE_CONFIG, with random flip and
rotation on), each on the same device, with the same
model, batch size, optimiser and the same stratified subset of training images:

  seed_plain      torchvision.datasets.FashionMNIST + PIL transforms (RandomHorizontalFlip,
                  RandomRotation(10), ToTensor, Normalize) + a shuffling DataLoader with worker
                  processes, in a plain PyTorch training loop;
  ours_plain      jahs_bohb.datamodule.DeviceBatches (uint8 tensors on the device, index slices of a
                  per-epoch permutation, batched on-device augmentation) in the same plain loop;
  ours_lightning  pytorch_lightning.Trainer fitting jahs_bohb.classifier.ImageClassifier on
                  jahs_bohb.datamodule.FashionMNISTDataModule (no validation, logger, checkpoints).

Each flavour trains a freshly seeded model for one warm-up epoch plus --epochs timed epochs; the
table and the JSON give the median seconds per timed epoch, images per second and the speed-up
ratios seed_plain / ours_plain and seed_plain / ours_lightning. CUDA is synchronised around every
timing. The seed-style loader gets pinned memory (on CUDA) and persistent workers, which can only
make it faster, so the ratios are conservative. On a CPU, other processes skew the numbers (the
JSON records the load average before each flavour); on a shared CPU pass --threads 1.

Run from the repository root (PYTHONPATH=src is only needed when the package is not installed):

    PYTHONPATH=src python benchmarks/pipeline_throughput.py            # CUDA: 50k images, 3 epochs
    PYTHONPATH=src python benchmarks/pipeline_throughput.py --device cpu --threads 1
"""

from __future__ import annotations

import argparse
import functools
import gc
import gzip
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

try:
    import jahs_bohb  # noqa: F401
except ImportError:  # not installed: use the checkout's src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from jahs_bohb import splits
from jahs_bohb.classifier import ImageClassifier
from jahs_bohb.datamodule import MEAN, STD, DeviceBatches, FashionMNISTDataModule
from jahs_bohb.fashion_mnist import DEBIAN_DIR, FILES, find_idx_files, load_fashion_mnist
from jahs_bohb.model import REFERENCE_CONFIG, FashionCNN, count_parameters

VAL_SIZE = 10_000  # FashionMNISTDataModule's default holdout; the training images come from the rest
ROTATION_DEGREES = 10.0
FLAVOURS = ("seed_plain", "ours_plain", "ours_lightning")
Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Config:
    name: str
    model: dict[str, Any]
    batch_size: int
    lr: float
    augment: bool


CONFIGS = (
    Config("baseline", {}, batch_size=100, lr=0.01, augment=False),
    Config(
        "reference_aug",
        REFERENCE_CONFIG,
        batch_size=128,
        lr=0.001,
        augment=True,
    ),
)


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
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda")
    parser.add_argument("--train-images", type=int, default=None, help="default: 50000 on CUDA, 5000 on CPU")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs, after one warm-up epoch")
    parser.add_argument("--num-workers", type=int, default=2, help="seed-style DataLoader workers")
    parser.add_argument("--data-dir", type=Path, default=DEBIAN_DIR, help="the four IDX(.gz) files")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads of the training process (default: torch's choice); on a "
        "shared CPU use 1, since busy cores make multi-threaded small kernels stall",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pipeline_throughput.json"))
    args = parser.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.train_images is None:
        args.train_images = 50_000 if args.device.startswith("cuda") else 5_000
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    return args


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_average() -> float | None:
    """The 1-minute load average (other processes on the machine skew CPU timings)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def machine_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "device": str(device),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load_average(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pytorch_lightning": pl.__version__,
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    else:
        info["device_name"] = f"{info['processor']} ({info['cpu_count']} CPUs)"
    return info


def training_indices(labels: np.ndarray, n_images: int, seed: int) -> np.ndarray:
    """The same stratified subset FashionMNISTDataModule(limit_train=n_images) trains on."""
    train_idx, _ = splits.train_val_split(labels, VAL_SIZE, seed)
    return splits.limit(train_idx, labels, n_images, seed)


def torchvision_root(data_dir: Path, tmp: Path) -> Path:
    """Lay out <tmp>/FashionMNIST/raw/ for torchvision with download=False.

    torchvision's `_check_exists` looks for the *decompressed* IDX files (it only extracts .gz files
    as part of a download), so gzipped files are decompressed here and plain ones are symlinked.
    """
    files = find_idx_files(data_dir)
    if files is None:
        raise FileNotFoundError(f"no Fashion-MNIST IDX files in {data_dir}")
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
    root: Path, indices: np.ndarray, config: Config, num_workers: int, device: torch.device
) -> DataLoader:
    """The seed-style input pipeline: torchvision dataset, per-image PIL transforms, DataLoader."""
    augment = (
        [transforms.RandomHorizontalFlip(), transforms.RandomRotation(ROTATION_DEGREES)]
        if config.augment
        else []
    )
    transform = transforms.Compose([*augment, transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))])
    dataset = datasets.FashionMNIST(str(root), train=True, download=False, transform=transform)
    return DataLoader(
        Subset(dataset, indices.tolist()),
        batch_size=config.batch_size,
        shuffle=True,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=num_workers > 0,
    )


def device_batches(
    images: np.ndarray, labels: np.ndarray, config: Config, device: torch.device, seed: int
) -> DeviceBatches:
    return DeviceBatches(
        torch.from_numpy(np.ascontiguousarray(images)).to(device),
        torch.from_numpy(np.ascontiguousarray(labels)).to(device),
        config.batch_size,
        shuffle=True,
        hflip=config.augment,
        rotation_degrees=ROTATION_DEGREES if config.augment else 0.0,
        seed=seed,
    )


def build_model(config: Config, device: torch.device, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return FashionCNN(**config.model).to(device)


def train_plain(model: nn.Module, batches: Batches, lr: float, epochs: int, device: torch.device) -> Run:
    """A plain PyTorch training loop; the loss is summed on the device and read once per epoch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    run = Run([])
    for _ in range(epochs):
        sync(device)
        start = time.perf_counter()
        loss_sum, count = torch.zeros((), device=device), 0
        for x, y in batches:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * y.shape[0]
            count += y.shape[0]
        mean_loss = (loss_sum / count).item()
        sync(device)
        run.epoch_seconds.append(time.perf_counter() - start)
        run.train_losses.append(mean_loss)
    return run


class EpochTimer(pl.Callback):
    """Time from one train-epoch start to the next (the last one ends at on_train_end).

    This covers everything Lightning does per epoch, including the module's end-of-epoch hooks.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stamps: list[float] = []

    def _stamp(self) -> None:
        sync(self.device)
        self.stamps.append(time.perf_counter())

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stamp()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stamp()

    def durations(self) -> list[float]:
        return [b - a for a, b in zip(self.stamps, self.stamps[1:], strict=False)]


def train_lightning(
    config: Config, data_dir: Path, n_images: int, epochs: int, device: torch.device, seed: int
) -> Run:
    datamodule = FashionMNISTDataModule(
        root=str(data_dir),
        download=False,
        val_size=VAL_SIZE,
        limit_train=n_images,
        split_seed=seed,
        batch_size=config.batch_size,
        hflip=config.augment,
        rotation=config.augment,
        rotation_degrees=ROTATION_DEGREES,
        seed=seed,
    )
    module = ImageClassifier(
        build_model(config, device, seed), functools.partial(torch.optim.Adam, lr=config.lr)
    )
    timer = EpochTimer(device)
    trainer = pl.Trainer(
        accelerator=device.type,
        devices=1,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        benchmark=torch.backends.cudnn.benchmark,
        callbacks=[timer],
    )
    trainer.fit(module, datamodule=datamodule)
    losses = [record["train/loss"] for record in module.history]
    return Run(timer.durations(), losses)


def time_seed_plain(
    config: Config,
    args: argparse.Namespace,
    device: torch.device,
    tv_root: Path,
    indices: np.ndarray,
) -> Run:
    loader = seed_loader(tv_root, indices, config, args.num_workers, device)
    # The loader (and its persistent workers) goes away when this returns.
    return train_plain(build_model(config, device, args.seed), loader, config.lr, args.epochs + 1, device)


def time_ours_plain(
    config: Config,
    args: argparse.Namespace,
    device: torch.device,
    images: np.ndarray,
    labels: np.ndarray,
) -> Run:
    batches = device_batches(images, labels, config, device, args.seed)
    return train_plain(build_model(config, device, args.seed), batches, config.lr, args.epochs + 1, device)


def run_config(
    config: Config,
    args: argparse.Namespace,
    device: torch.device,
    tv_root: Path,
    images: np.ndarray,
    labels: np.ndarray,
    indices: np.ndarray,
) -> dict[str, Any]:
    timers: dict[str, Callable[[], Run]] = {
        "seed_plain": lambda: time_seed_plain(config, args, device, tv_root, indices),
        "ours_plain": lambda: time_ours_plain(config, args, device, images[indices], labels[indices]),
        "ours_lightning": lambda: train_lightning(
            config, args.data_dir, len(indices), args.epochs + 1, device, args.seed
        ),
    }
    runs, load = {}, {}
    for name, timer in timers.items():
        load[name] = load_average()
        runs[name] = timer()
        gc.collect()
    result: dict[str, Any] = {
        "model": config.model,
        "n_parameters": count_parameters(FashionCNN(**config.model)),
        "batch_size": config.batch_size,
        "lr": config.lr,
        "augment": config.augment,
        "flavours": {
            name: {**run.summary(len(indices)), "load_average_before": load[name]}
            for name, run in runs.items()
        },
    }
    seed_median = result["flavours"]["seed_plain"]["median_seconds_per_epoch"]
    result["ratios"] = {
        f"seed_plain/{name}": seed_median / result["flavours"][name]["median_seconds_per_epoch"]
        for name in FLAVOURS[1:]
    }
    return result


def print_table(results: dict[str, Any], n_images: int, machine: str) -> None:
    print(f"\n{n_images} training images per epoch on {machine}")
    header = f"{'config':<14} {'flavour':<15} {'s/epoch':>9} {'images/s':>10} {'seed/this':>10} {'loss':>7}"
    print(header)
    print("-" * len(header))
    for config_name, result in results.items():
        seed_median = result["flavours"]["seed_plain"]["median_seconds_per_epoch"]
        for name, flavour in result["flavours"].items():
            median = flavour["median_seconds_per_epoch"]
            loss = flavour["train_losses"][-1] if flavour["train_losses"] else float("nan")
            print(
                f"{config_name:<14} {name:<15} {median:>9.3f} "
                f"{flavour['images_per_second']:>10.0f} {seed_median / median:>9.2f}x {loss:>7.3f}"
            )


def quiet_lightning() -> None:
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # the same for every flavour (Lightning gets it too)
    quiet_lightning()
    machine = machine_info(device)
    data = load_fashion_mnist(args.data_dir, download=False)
    indices = training_indices(data.train_labels, args.train_images, args.seed)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="fashion_mnist_tv_") as tmp:
        tv_root = torchvision_root(args.data_dir, Path(tmp))
        for config in CONFIGS:
            print(f"[{config.name}] timing {', '.join(FLAVOURS)} ...", flush=True)
            results[config.name] = run_config(
                config, args, device, tv_root, data.train_images, data.train_labels, indices
            )
    report = {
        "what": "seconds per training epoch, median over timed epochs after one warm-up epoch",
        "machine": machine,
        "torch": torch.__version__,
        "settings": {
            "device": str(device),
            "train_images": len(indices),
            "timed_epochs": args.epochs,
            "warmup_epochs": 1,
            "num_workers": args.num_workers,
            "torch_threads": torch.get_num_threads(),
            "seed_loader": {
                "pin_memory": device.type == "cuda",
                "persistent_workers": args.num_workers > 0,
            },
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "rotation_degrees": ROTATION_DEGREES,
            "data_dir": str(args.data_dir),
            "seed": args.seed,
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(results, len(indices), machine["device_name"])
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
