"""What the benchmark scripts share: the app's config, timing, the machine, the result file.

Each script writes one JSON file under benchmarks/results/ with what it measured, when (UTC) and on which
machine (CPU and GPU names, load average, versions), and compares against a reference measured in the
same run. The throughput benchmarks time the trials the app itself builds: `compose_config` composes
conf/train.yaml with overrides as `python train.py` does, `jahs_bohb.pipeline.build` turns it into the
job's data module and model, and `trainer` instantiates conf/trainer as a job does.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from hydra_plugins.hydra_bohb_sweeper import client
from jahs_bohb.config_checks import check_config
from jahs_bohb.fashion_mnist import DEBIAN_DIR, find_idx_files
from jahs_bohb.model import REFERENCE_CONFIG
from jahs_bohb.pipeline import make_trainer

if TYPE_CHECKING:
    import optuna

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
CARRIED_DATA = ROOT / ".device" / "fashion-mnist"  # what `scripts/device_check.sh --prepare` copies
VERSIONS_OF = ("pytorch-lightning", "torchvision", "numpy", "hydra-core", "optuna", "wandb")


def _overrides(prefix: str, values: Mapping[str, Any]) -> list[str]:
    return [f"{prefix}.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in values.items()]


# The configurations the throughput benchmarks time, as overrides of conf/train.yaml: the seed's baseline
# (the config's defaults) and a strong configuration of the seed's best region with its optimiser, batch
# size and augmentation (jahs_bohb.model.REFERENCE_CONFIG).
CONFIGURATIONS: dict[str, list[str]] = {
    "baseline": [],
    "reference_aug": [
        *_overrides("model", REFERENCE_CONFIG),
        "optimizer.lr=0.001",
        "data.batch_size=128",
        "data.hflip=true",
        "data.rotation=true",
    ],
}


# ------------------------------------------------------------------------------------------------------
# The app's config and trials
# ------------------------------------------------------------------------------------------------------


def compose_config(overrides: Iterable[str]) -> DictConfig:
    """conf/train.yaml with W&B off and these overrides, checked as `python train.py` checks it."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["logger=none", *overrides])
    check_config(cfg)
    return cfg


def trial_overrides(
    args: argparse.Namespace, seed: int | None = None, threads: int | None = None
) -> list[str]:
    """The overrides that `add_trial_args` stands for (device, data, subset, threads, seed, extras);
    `seed` and `threads` replace --seed and --threads."""
    threads = threads if threads is not None else args.threads
    out = [
        f"trainer.accelerator={torch.device(args.device).type}",
        "trainer.enable_progress_bar=false",
        f"data.root={args.data_root}",
        "data.download=false",
        f"data.limit_train={args.train_images}",
        f"seed={args.seed if seed is None else seed}",
        *([f"torch_threads={threads}"] if threads is not None else []),
    ]
    return [*out, *args.override]


def trainer(cfg: DictConfig, callbacks: Sequence[pl.Callback]) -> pl.Trainer:
    """conf/trainer as a job instantiates it (`jahs_bohb.pipeline.make_trainer`), without a logger."""
    return make_trainer(cfg, list(callbacks), logger=False)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class EpochTimer(pl.Callback):
    """Seconds of every training epoch, from its start to the next epoch's start (the last one ends at
    `on_train_end`), so all a job does per epoch counts: steps, validation, the module's epoch-end hooks.

    After `warmup_epochs` it calls `before_window()` once (e.g. a barrier shared by processes) outside
    any epoch; with `window`, training stops at the first epoch end `window` seconds after that.
    """

    def __init__(
        self,
        device: torch.device,
        warmup_epochs: int = 1,
        window: float | None = None,
        before_window: Callable[[], None] | None = None,
    ) -> None:
        self.device, self.warmup_epochs, self.window = device, warmup_epochs, window
        self.before_window = before_window
        self.epoch_seconds: list[float] = []
        self.window_start = self.window_end = 0.0  # perf_counter
        self.window_start_wall = self.window_end_wall = 0.0  # time.time, comparable across processes
        self._epoch_start: float | None = None

    def _now(self) -> float:
        sync(self.device)
        return time.perf_counter()

    def _end_epoch(self, now: float) -> None:
        if self._epoch_start is not None:
            self.epoch_seconds.append(now - self._epoch_start)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        now = self._now()
        self._end_epoch(now)
        if trainer.current_epoch == self.warmup_epochs:
            if self.before_window is not None:
                self.before_window()
                now = self._now()
            self.window_start, self.window_start_wall = now, time.time()
        self._epoch_start = now

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        timed = trainer.current_epoch >= self.warmup_epochs
        if timed and self.window is not None and self._now() - self.window_start >= self.window:
            trainer.should_stop = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        now = self._now()
        self._end_epoch(now)
        self.window_end, self.window_end_wall = now, time.time()

    @property
    def timed_seconds(self) -> list[float]:
        return self.epoch_seconds[self.warmup_epochs :]


# ------------------------------------------------------------------------------------------------------
# Sweeps of the real command
# ------------------------------------------------------------------------------------------------------


def run_sweep(
    command: Sequence[str], sweep_dir: Path, study_name: str, env: Mapping[str, str] | None = None
) -> tuple[float, optuna.Study]:
    """Run `python COMMAND hydra.sweep.dir=SWEEP_DIR` from the repository root; its wall time and study."""
    import optuna  # not in the training processes of the throughput benchmarks

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, *command, f"hydra.sweep.dir={sweep_dir}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"sweep failed (exit code {proc.returncode}):\n{proc.stderr[-3000:]}")
    storage = f"sqlite:///{sweep_dir / 'optuna.db'}"
    return wall, optuna.load_study(study_name=study_name, storage=storage)


def trial_seconds(study: optuna.Study) -> dict[int, float]:
    """Seconds from start to end of every finished trial (complete, pruned or failed), by trial number."""
    return {
        t.number: (t.datetime_complete - t.datetime_start).total_seconds()
        for t in study.get_trials(deepcopy=False)
        if t.datetime_start is not None and t.datetime_complete is not None
    }


# ------------------------------------------------------------------------------------------------------
# Command line, machine, result file
# ------------------------------------------------------------------------------------------------------


def parser(doc: str | None, name: str) -> argparse.ArgumentParser:
    """A parser described by the script's docstring, with `--out` (default benchmarks/results/NAME.json)."""
    description, _, epilog = (doc or "").partition("\n\n")
    out = argparse.ArgumentParser(
        description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    out.add_argument("--out", type=Path, default=RESULTS_DIR / f"{name}.json", help="the result JSON")
    return out


def add_trial_args(parser: argparse.ArgumentParser) -> None:
    """The options that turn into `trial_overrides`; call `resolve_trial_args` after parsing."""
    parser.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, cuda")
    parser.add_argument(
        "--data-root",
        "--data-dir",
        dest="data_root",
        default="auto",
        help=f"the four Fashion-MNIST IDX(.gz) files; auto: {DEBIAN_DIR}, else {CARRIED_DATA}",
    )
    parser.add_argument("--train-images", type=int, default=None, help="stratified subset (data.limit_train)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of a training process (torch_threads); on a shared CPU use 1",
    )
    parser.add_argument("--seed", type=int, default=0, help="weight init and batch order (seed)")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another override of the app's config for every trial (repeatable)",
    )


def resolve_trial_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device} but torch.cuda.is_available() is False")
    candidates = [Path(args.data_root)] if args.data_root != "auto" else [DEBIAN_DIR, CARRIED_DATA]
    found = next((c for c in candidates if find_idx_files(c) is not None), None)
    if found is None:
        parser.error(f"no Fashion-MNIST IDX files in {' or '.join(map(str, candidates))}; pass --data-root")
    args.data_root = found.resolve()


def quiet() -> None:
    """Benchmarks print their own tables: no Lightning banners or W&B chatter."""
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric", "wandb"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("WANDB_SILENT", "true")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message="The `srun` command is available")


def load_average() -> float | None:
    """The 1-minute load average: other processes on the machine skew CPU timings."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str | None = None) -> dict[str, Any]:
    """The machine a result belongs to; `device_name` is the GPU's name on CUDA, else the CPU's."""
    on_cuda = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
    cpu = f"CPU {cpu_name()} x{os.cpu_count()}"
    info: dict[str, Any] = {
        "device": device or ("cuda" if on_cuda else "cpu"),
        "device_name": torch.cuda.get_device_name() if on_cuda else cpu,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load_average(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu_memory_mib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**20)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
    for package in VERSIONS_OF:
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = None
    return info


def new_report(what: str, device: str | None = None) -> dict[str, Any]:
    """The head of a result file: what was measured, when, on which machine."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return {"what": what, "timestamp": now, "machine": machine_info(device)}


def write_result(report: Mapping[str, Any], path: Path) -> Path:
    """Write the JSON atomically (scripts rewrite it as they go, so a run cut short leaves what it had)."""
    text = json.dumps(report, indent=2, default=str) + "\n"
    return client.atomic_save(path, lambda tmp: tmp.write_text(text))
