"""Aggregate training epochs per minute on ONE device shared by several training processes.

Question: when a BOHB study keeps N trials in flight on one GPU (`hydra/launcher=joblib
hydra.sweeper.n_jobs=N`), how many training epochs per minute does the device deliver in total, and how
much does each trial slow down? Small CNNs on Fashion-MNIST leave a big GPU mostly idle (kernel launch
and Python overhead dominate), so several processes can overlap their work.

Workload: a strong configuration of the seed's best region (jahs_bohb.model.REFERENCE_CONFIG: 2 convs
32/64, kernel 5, batch norm, no global pooling, one FC layer of 1024, dropout 0.3; Adam lr 1e-3, batch
128, random flip and rotation on), trained through the real path of a trial:
FashionMNISTDataModule + ImageClassifier + pytorch_lightning.Trainer (logger, checkpointing, progress
bar and model summary off; validation on the holdout after every epoch, as in a trial; TF32 and cuDNN
autotuning as `jahs_bohb.backends.configure` sets them).

Variants (each child process is spawned fresh, trains one warm-up epoch, waits on a barrier shared by
all children of the variant, then is timed for --window seconds or --epochs epochs; a child stops at
the first epoch end after the window, so every timed epoch is complete):

  single_fp32            (a) one process, fp32 (the baseline of every ratio)
  procs_N                (b) N concurrent processes, fp32, for N in --procs
  bf16_procs_N           (c) precision="bf16-mixed" with the best N of (b)
  channels_last_procs_N  (d) + channels_last weights, with the best N and the better precision
  compile_procs_N        (d) + torch.compile(net, mode=--compile-mode) on top of channels_last

Aggregate epochs/min = the sum over children of (timed epochs / timed seconds) * 60; the JSON also
gives the conservative wall-clock form (all timed epochs / (last end - first start)). Each child
reports torch.cuda.max_memory_allocated / max_memory_reserved (its tensors, excluding the ~0.5 GB CUDA
context of every process) and the device memory in use when its window started (all processes).
A variant that fails (bf16 unsupported, compile without a compiler, out of memory, timeout) is
recorded as {"error": "..."} and the rest still run. The JSON is rewritten after every variant, so a
run cut short still leaves what it measured.

Run from the repository root; needs only torch, pytorch_lightning, numpy and src/jahs_bohb (no Hydra):

    PYTHONPATH=src python benchmarks/gpu_throughput.py                       # CUDA: 50k images, 20 s
    PYTHONPATH=src python benchmarks/gpu_throughput.py --device cpu --train-images 500 \\
        --val-images 200 --procs 1,2 --epochs 1                               # a CPU smoke test
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import multiprocessing as mp
import os
import platform
import queue
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

try:
    import jahs_bohb  # noqa: F401
except ImportError:  # not installed: use the checkout's src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from jahs_bohb import backends
from jahs_bohb.classifier import ImageClassifier
from jahs_bohb.datamodule import FashionMNISTDataModule
from jahs_bohb.fashion_mnist import DEBIAN_DIR, find_idx_files
from jahs_bohb.model import REFERENCE_CONFIG, FashionCNN, count_parameters

SEED_BEST_MODEL = REFERENCE_CONFIG
LR, BATCH_SIZE, EVAL_BATCH_SIZE, ROTATION_DEGREES = 1e-3, 128, 1000, 10.0
VAL_SIZE = 10_000  # the datamodule's holdout; training images come from the other 50k
FALLBACK_DATA_DIR = Path(".device/fashion-mnist")
OPTIONAL_VARIANTS = ("bf16", "channels_last", "compile")


# ----------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cuda, cpu")
    parser.add_argument(
        "--procs", default=None, help='concurrent processes to try (default "1,2,4,6" on CUDA, "1,2" on CPU)'
    )
    parser.add_argument(
        "--train-images", type=int, default=None, help="default: all 50000 on CUDA, 1000 on CPU"
    )
    parser.add_argument(
        "--val-images",
        type=int,
        default=None,
        help="validated each epoch; default: all 10000 on CUDA, 500 on CPU",
    )
    parser.add_argument(
        "--window",
        type=float,
        default=None,
        help="timed seconds per child after warm-up (default 20 on CUDA)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="timed epochs per child instead of a window (default 1 on CPU)",
    )
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument(
        "--variants",
        default=",".join(OPTIONAL_VARIANTS),
        help=f"optional variants after (a) and (b), from {','.join(OPTIONAL_VARIANTS)}; '' for none",
    )
    parser.add_argument(
        "--compile-mode", default="default", help='torch.compile mode, e.g. "max-autotune-no-cudagraphs"'
    )
    parser.add_argument(
        "--variant-timeout",
        type=float,
        default=None,
        help="seconds before a variant's children are killed (default: warm-up allowance + window)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads per child (default: CPU cores // N)"
    )
    parser.add_argument(
        "--data-root",
        default="auto",
        help=f"the four IDX(.gz) files; auto: {DEBIAN_DIR} if present, else ./{FALLBACK_DATA_DIR}",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_throughput.json"))
    args = parser.parse_args(argv)

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    on_cuda = args.device.startswith("cuda")
    if on_cuda and not torch.cuda.is_available():
        parser.error("--device cuda but torch.cuda.is_available() is False")
    if args.procs is None:
        args.procs = "1,2,4,6" if on_cuda else "1,2"
    try:
        args.procs = sorted({int(n) for n in args.procs.split(",") if n.strip()})
    except ValueError:
        parser.error(f"--procs must be comma-separated integers, got {args.procs!r}")
    if not args.procs or min(args.procs) < 1:
        parser.error("--procs needs positive integers")
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(args.variants) - set(OPTIONAL_VARIANTS)
    if unknown:
        parser.error(f"unknown --variants {sorted(unknown)}; choose from {OPTIONAL_VARIANTS}")
    if args.window is not None and args.epochs is not None:
        parser.error("give --window or --epochs, not both")
    if args.window is None and args.epochs is None:
        if on_cuda:
            args.window = 20.0
        else:
            args.epochs = 1
    if args.train_images is None:
        args.train_images = 60_000 - VAL_SIZE if on_cuda else 1000
    if args.val_images is None:
        args.val_images = VAL_SIZE if on_cuda else 500
    if args.variant_timeout is None:
        # Start-up (imports, data to the device), the warm-up epoch(s), compilation, then the window;
        # a fixed-epoch run gets a generous allowance per epoch instead.
        timed = args.window if args.window is not None else 120.0 * args.epochs
        args.variant_timeout = 240.0 + timed
    args.data_root = resolve_data_root(args.data_root, parser)
    return args


def resolve_data_root(value: str, parser: argparse.ArgumentParser) -> str:
    if value != "auto":
        if find_idx_files(Path(value)) is None:
            parser.error(f"--data-root {value} holds no Fashion-MNIST IDX files")
        return value
    for candidate in (DEBIAN_DIR, FALLBACK_DATA_DIR):
        if find_idx_files(candidate) is not None:
            return str(candidate)
    parser.error(f"no Fashion-MNIST IDX files in {DEBIAN_DIR} or ./{FALLBACK_DATA_DIR}; pass --data-root")
    raise AssertionError  # parser.error exits


# ----------------------------------------------------------------------------------------------------
# One child process: one training run, timed between a shared barrier and the end of its window
# ----------------------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class WindowTimer(pl.Callback):
    """Warm-up epochs, then the barrier shared by all children, then a timed window of whole epochs.

    The epoch hooks bracket everything a trial does per epoch (training steps, the module's metric
    hooks and the validation pass: Lightning runs validation before `on_train_epoch_end`).
    """

    def __init__(
        self,
        device: torch.device,
        warmup_epochs: int,
        window: float | None,
        epochs: int | None,
        barrier: Any,
        barrier_timeout: float,
    ) -> None:
        self.device = device
        self.warmup_epochs, self.window, self.epochs = warmup_epochs, window, epochs
        self.barrier, self.barrier_timeout = barrier, barrier_timeout
        self.fit_started = self.start = self.end = 0.0
        self.start_wall = self.end_wall = 0.0
        self.timed_epochs = 0
        self.epoch_seconds: list[float] = []
        self._epoch_started = self.warmup_seconds = 0.0
        self.device_used_at_start: int | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.fit_started = time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == self.warmup_epochs:
            sync(self.device)
            self.warmup_seconds = time.perf_counter() - self.fit_started
            self.barrier.wait(timeout=self.barrier_timeout)  # every child starts its window together
            if self.device.type == "cuda":
                free, total = torch.cuda.mem_get_info(self.device)
                self.device_used_at_start = total - free
            self.start_wall, self.start = time.time(), time.perf_counter()
        self._epoch_started = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch < self.warmup_epochs:
            return
        sync(self.device)
        now = time.perf_counter()
        self.epoch_seconds.append(now - self._epoch_started)
        self.timed_epochs += 1
        self.end, self.end_wall = now, time.time()
        done = (
            self.timed_epochs >= self.epochs if self.epochs is not None else now - self.start >= self.window
        )
        if done:
            trainer.should_stop = True


def child_main(rank: int, spec: dict[str, Any], barrier: Any, results: Any) -> None:
    """Train one model as a trial would; put a dict (or {"error": ...}) on `results`."""
    try:
        results.put({"rank": rank, **train_once(spec, barrier)})
    except BaseException as exc:
        barrier.abort()  # the other children must not wait for this one
        message = f"{type(exc).__name__}: {exc}".strip()
        results.put({"rank": rank, "error": message[:2000], "traceback": traceback.format_exc()[-4000:]})


def train_once(spec: dict[str, Any], barrier: Any) -> dict[str, Any]:
    quiet()
    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    if device.type == "cuda":
        torch.cuda.set_device(device)
    pl.seed_everything(spec["seed"] + spec["rank"], verbose=False)
    backends.configure(tf32=True)  # as pipeline.train does (cfg.tf32 defaults to true)

    datamodule = FashionMNISTDataModule(
        root=spec["data_root"],
        download=False,
        val_size=VAL_SIZE,
        limit_train=spec["train_images"],
        limit_val=spec["val_images"],
        batch_size=BATCH_SIZE,
        eval_batch_size=EVAL_BATCH_SIZE,
        hflip=True,
        rotation=True,
        rotation_degrees=ROTATION_DEGREES,
        seed=spec["seed"] + spec["rank"],
    )
    net: torch.nn.Module = FashionCNN(**SEED_BEST_MODEL)
    if spec["channels_last"]:
        net = net.to(memory_format=torch.channels_last)  # Lightning's .to(device) keeps the format
    if spec["compile"]:
        net = torch.compile(net, mode=spec["compile_mode"])  # type: ignore[assignment]
    module = ImageClassifier(net=net, optimizer=functools.partial(torch.optim.Adam, lr=LR))

    timer = WindowTimer(
        device, spec["warmup_epochs"], spec["window"], spec["epochs"], barrier, spec["barrier_timeout"]
    )
    trainer = pl.Trainer(
        accelerator=device.type,
        devices=1,
        precision=spec["precision"],
        max_epochs=spec["warmup_epochs"] + (spec["epochs"] if spec["epochs"] is not None else 100_000),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        benchmark=None,  # keep what backends.configure set (conf/trainer/default.yaml: benchmark null)
        callbacks=[timer],
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    fit_called = time.time()
    trainer.fit(module, datamodule=datamodule)
    if timer.timed_epochs == 0:
        raise RuntimeError("training ended before a timed epoch")
    seconds = timer.end - timer.start
    last = module.history[-1] if module.history else {}
    out: dict[str, Any] = {
        "pid": os.getpid(),
        "torch_threads": torch.get_num_threads(),
        "startup_seconds": fit_called - spec["spawned_wall"],  # spawn, imports, model; not data
        "warmup_seconds": timer.warmup_seconds,
        "timed_epochs": timer.timed_epochs,
        "timed_seconds": seconds,
        "epochs_per_min": 60.0 * timer.timed_epochs / seconds,
        "epoch_seconds": timer.epoch_seconds,
        "start_wall": timer.start_wall,
        "end_wall": timer.end_wall,
        "train_images": datamodule.split_sizes()["train"],
        "val_images": datamodule.split_sizes()["val"],
        "last_epoch": {k: last[k] for k in ("train/loss", "train/acc", "val/acc") if k in last},
    }
    if device.type == "cuda":
        out["max_memory_allocated_bytes"] = torch.cuda.max_memory_allocated(device)
        out["max_memory_reserved_bytes"] = torch.cuda.max_memory_reserved(device)
        out["device_used_bytes_at_window_start"] = timer.device_used_at_start
    return out


def quiet() -> None:
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")


# ----------------------------------------------------------------------------------------------------
# The parent: spawn N children per variant, collect, aggregate
# ----------------------------------------------------------------------------------------------------


def run_variant(
    args: argparse.Namespace, n_procs: int, precision: str, channels_last: bool, compile_net: bool
) -> dict[str, Any]:
    """N concurrent training processes; their aggregate epochs/min, or {"error": ...}."""
    ctx = mp.get_context("spawn")  # CUDA cannot be used in forked children
    barrier, results = ctx.Barrier(n_procs), ctx.Queue()
    threads = args.threads or max(1, (os.cpu_count() or 1) // n_procs)
    settings = {
        "procs": n_procs,
        "precision": precision,
        "channels_last": channels_last,
        "compile": args.compile_mode if compile_net else False,
        "torch_threads_per_process": threads,
    }
    spec_base = {
        "device": args.device,
        "data_root": args.data_root,
        "train_images": args.train_images,
        "val_images": args.val_images,
        "warmup_epochs": args.warmup_epochs,
        "window": args.window,
        "epochs": args.epochs,
        "seed": args.seed,
        "threads": threads,
        "precision": precision,
        "channels_last": channels_last,
        "compile": compile_net,
        "compile_mode": args.compile_mode,
        "barrier_timeout": args.variant_timeout,
        "spawned_wall": time.time(),
    }
    if compile_net:
        # Inductor's compile workers per child: N children must not each start a pool of all cores.
        os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = str(threads)
    procs = [
        ctx.Process(target=child_main, args=(r, {**spec_base, "rank": r}, barrier, results))
        for r in range(n_procs)
    ]
    started = time.perf_counter()
    for p in procs:
        p.start()
    children: list[dict[str, Any]] = []
    deadline = started + args.variant_timeout
    while len(children) < n_procs:
        try:
            children.append(results.get(timeout=max(0.1, min(5.0, deadline - time.perf_counter()))))
            continue
        except queue.Empty:
            pass
        if time.perf_counter() >= deadline:
            break
        if any(p.exitcode not in (None, 0) for p in procs):
            barrier.abort()  # a child died without reporting (killed for memory, segfault): free the rest
        if all(not p.is_alive() for p in procs) and results.empty():
            break
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.terminate()
            p.join(timeout=5)
    os.environ.pop("TORCHINDUCTOR_COMPILE_THREADS", None)
    elapsed = time.perf_counter() - started
    children.sort(key=lambda c: c["rank"])
    errors = [c for c in children if "error" in c]
    if errors or len(children) < n_procs:
        if errors:
            # Children aborted by another one's failure only report a BrokenBarrierError: show the cause.
            cause = next((c for c in errors if "BrokenBarrierError" not in c["error"]), errors[0])
            message = cause["error"]
        else:
            codes = [p.exitcode for p in procs]
            message = (
                f"{n_procs - len(children)} of {n_procs} children reported nothing within "
                f"{args.variant_timeout:.0f} s (exit codes {codes})"
            )
        return {"settings": settings, "error": message, "children": children, "variant_seconds": elapsed}
    return {"settings": settings, **aggregate(children), "children": children, "variant_seconds": elapsed}


def aggregate(children: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [c["epochs_per_min"] for c in children]
    total_epochs = sum(c["timed_epochs"] for c in children)
    span = max(c["end_wall"] for c in children) - min(c["start_wall"] for c in children)
    out: dict[str, Any] = {
        "aggregate_epochs_per_min": sum(rates),
        "aggregate_epochs_per_min_wall": 60.0 * total_epochs / span if span > 0 else None,
        "per_process_epochs_per_min": rates,
        "mean_process_epochs_per_min": sum(rates) / len(rates),
        "total_timed_epochs": total_epochs,
    }
    memory = [c["max_memory_allocated_bytes"] for c in children if "max_memory_allocated_bytes" in c]
    if memory:
        out["max_memory_allocated_mib_per_process"] = [round(m / 2**20, 1) for m in memory]
        out["max_memory_reserved_mib_per_process"] = [
            round(c["max_memory_reserved_bytes"] / 2**20, 1) for c in children
        ]
        used = [c["device_used_bytes_at_window_start"] for c in children]
        out["device_used_mib_at_window_start"] = round(max(u for u in used if u is not None) / 2**20, 1)
    return out


# ----------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------


def machine_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "device": str(device),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pytorch_lightning": pl.__version__,
        "numpy": np.__version__,
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["device_memory_mib"] = round(torch.cuda.get_device_properties(device).total_memory / 2**20)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
    else:
        info["device_name"] = f"CPU {platform.processor() or platform.machine()} x{os.cpu_count()}"
    return info


def add_ratios(variants: dict[str, Any]) -> None:
    base = variants.get("single_fp32", {})
    base_rate = base.get("aggregate_epochs_per_min")
    for result in variants.values():
        rate = result.get("aggregate_epochs_per_min")
        if base_rate and rate is not None:
            result["ratio_vs_single_fp32"] = rate / base_rate
            result["per_process_slowdown_vs_single"] = base_rate / result["mean_process_epochs_per_min"]


def best_of(variants: dict[str, Any], names: list[str]) -> str | None:
    ok = [n for n in names if "aggregate_epochs_per_min" in variants.get(n, {})]
    return max(ok, key=lambda n: variants[n]["aggregate_epochs_per_min"]) if ok else None


def print_table(report: dict[str, Any]) -> None:
    print(f"\n{report['machine']['device_name']}: {report['settings']['timing']}")
    header = (
        f"{'variant':<28} {'procs':>5} {'epochs/min':>11} {'x single':>9} {'per proc':>9} {'MiB/proc':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, r in report["variants"].items():
        procs = r.get("settings", {}).get("procs", "")
        if "error" in r:
            print(f"{name:<28} {procs:>5} error: {r['error'][:80]}")
            continue
        if "aggregate_epochs_per_min" not in r:
            continue
        mem = r.get("max_memory_allocated_mib_per_process")
        print(
            f"{name:<28} {procs:>5} {r['aggregate_epochs_per_min']:>11.2f} "
            f"{r.get('ratio_vs_single_fp32', float('nan')):>8.2f}x {r['mean_process_epochs_per_min']:>9.2f} "
            f"{max(mem) if mem else '-':>9}"
        )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    timing = (
        f"{args.warmup_epochs} warm-up epoch(s), then a {args.window:g} s window of whole epochs per process"
        if args.window is not None
        else f"{args.warmup_epochs} warm-up epoch(s), then {args.epochs} timed epoch(s) per process"
    )
    report: dict[str, Any] = {
        "what": "aggregate training epochs per minute of N concurrent processes on one device",
        "complete": False,
        "machine": machine_info(device),
        "torch": torch.__version__,
        "pytorch_lightning": pl.__version__,
        "settings": {
            "device": str(device),
            "timing": timing,
            "window_seconds": args.window,
            "timed_epochs": args.epochs,
            "warmup_epochs": args.warmup_epochs,
            "procs": args.procs,
            "optional_variants": args.variants,
            "compile_mode": args.compile_mode,
            "variant_timeout_seconds": args.variant_timeout,
            "train_images": args.train_images,
            "val_images": args.val_images,
            "validation_every_epoch": True,
            "model": SEED_BEST_MODEL,
            "n_parameters": count_parameters(FashionCNN(**SEED_BEST_MODEL)),
            "optimizer": {"name": "Adam", "lr": LR},
            "batch_size": BATCH_SIZE,
            "eval_batch_size": EVAL_BATCH_SIZE,
            "hflip": True,
            "rotation_degrees": ROTATION_DEGREES,
            "tf32": True,
            "data_root": args.data_root,
            "seed": args.seed,
        },
        "variants": {},
    }
    variants: dict[str, Any] = report["variants"]

    def record(name: str, result: dict[str, Any]) -> None:
        variants[name] = result
        add_ratios(variants)
        write(report, args.out)
        status = result.get("error") or f"{result['aggregate_epochs_per_min']:.2f} epochs/min"
        print(f"[{name}] {status} ({result.get('variant_seconds', 0):.0f} s)", flush=True)

    print(f"device {report['machine']['device_name']}; {timing}; results -> {args.out}", flush=True)
    record("single_fp32", run_variant(args, 1, "32-true", False, False))
    for n in args.procs:
        if n == 1:
            variants["procs_1"] = {"same_as": "single_fp32"}
            continue
        record(f"procs_{n}", run_variant(args, n, "32-true", False, False))
    best_name = best_of(variants, ["single_fp32", *[f"procs_{n}" for n in args.procs if n > 1]])
    best_n = variants[best_name]["settings"]["procs"] if best_name else 1
    report["best_procs_fp32"] = best_n

    precision = "32-true"
    if "bf16" in args.variants:
        name = f"bf16_procs_{best_n}"
        record(name, run_variant(args, best_n, "bf16-mixed", False, False))
        if best_of(variants, [best_name or "single_fp32", name]) == name:
            precision = "bf16-mixed"  # the optional variants below build on the faster precision
    channels_last = False
    if "channels_last" in args.variants:
        name = f"channels_last_procs_{best_n}"
        record(name, run_variant(args, best_n, precision, True, False))
        channels_last = "aggregate_epochs_per_min" in variants[name]
    if "compile" in args.variants:
        record(f"compile_procs_{best_n}", run_variant(args, best_n, precision, channels_last, True))

    report["best_variant"] = best_of(variants, list(variants))
    report["complete"] = True
    write(report, args.out)
    print_table(report)
    print(f"\nwritten to {args.out}")


def write(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    main()
