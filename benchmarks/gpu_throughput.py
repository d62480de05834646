"""Aggregate training epochs per minute on ONE device shared by several training processes.

Question: when a BOHB study keeps N trials in flight on one GPU (`hydra/launcher=joblib
hydra.sweeper.n_jobs=N`), how many training epochs per minute does the device deliver in total, and how
much does each trial slow down? Small CNNs on Fashion-MNIST leave a big GPU mostly idle (kernel launch
and Python overhead dominate), so several processes can overlap their work.

Workload: the strong configuration of common.CONFIGURATIONS (jahs_bohb.model.REFERENCE_CONFIG: 2 convs
32/64, kernel 5, batch norm, one FC layer of 1024, dropout 0.3; Adam lr 1e-3, batch 128, random flip and
rotation), composed from conf/train.yaml and trained as a trial trains: `jahs_bohb.pipeline.build(cfg)`
(the data module and model, seeded, TF32 and cuDNN autotuning as the job sets them) fitted by the Trainer
of conf/trainer (logger and progress bar off; validation on the holdout after every epoch).

Variants (each child process is spawned fresh, trains one warm-up epoch, waits on a barrier shared by
all children of the variant, then is timed for --window seconds or --epochs epochs; a child stops at
the first epoch end after the window, so every timed epoch is complete):

  single_fp32            (a) one process, fp32 (the baseline of every ratio)
  procs_N                (b) N concurrent processes, fp32, for N in --procs
  bf16_procs_N           (c) trainer.precision=bf16-mixed with the best N of (b)
  channels_last_procs_N  (d) + channels_last weights, with the best N and the better precision
  compile_procs_N        (d) + torch.compile(net, mode=--compile-mode) on top of channels_last

Aggregate epochs/min = the sum over children of (timed epochs / timed seconds) * 60; the JSON also
gives the conservative wall-clock form (all timed epochs / (last end - first start)). Each child
reports torch.cuda.max_memory_allocated / max_memory_reserved (its tensors, excluding the ~0.5 GB CUDA
context of every process) and the device memory in use when its window started (all processes).
A variant that fails (bf16 unsupported, compile without a compiler, out of memory, timeout) is
recorded as {"error": "..."} and the rest still run. The JSON is rewritten after every variant, so a
run cut short still leaves what it measured.

    python benchmarks/gpu_throughput.py                       # CUDA: 50k images, 20 s windows
    python benchmarks/gpu_throughput.py --device cpu --train-images 500 \\
        --val-images 200 --procs 1,2 --epochs 1               # a CPU smoke test
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import time
import traceback
from typing import Any, cast

import common
import torch
from omegaconf import OmegaConf

from jahs_bohb import pipeline

CONFIGURATION = "reference_aug"
OPTIONAL_VARIANTS = ("bf16", "channels_last", "compile")
MAX_EPOCHS = 10_000  # a timed window ends training long before (the config check allows at most this)

# ----------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = common.parser(__doc__, "gpu_throughput")
    common.add_trial_args(parser)
    parser.add_argument(
        "--procs", default=None, help='concurrent processes to try (default "1,2,4,6" on CUDA, "1,2" on CPU)'
    )
    parser.add_argument(
        "--val-images",
        type=int,
        default=None,
        help="validated each epoch (data.limit_val); default: all 10000 on CUDA, 500 on CPU",
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
    args = parser.parse_args(argv)
    common.resolve_trial_args(parser, args)

    on_cuda = args.device.startswith("cuda")
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
        args.train_images = 50_000 if on_cuda else 1000
    if args.val_images is None:
        args.val_images = 10_000 if on_cuda else 500
    if args.variant_timeout is None:
        # Start-up (imports, data to the device), the warm-up epoch(s), compilation, then the window;
        # a fixed-epoch run gets a generous allowance per epoch instead.
        timed = args.window if args.window is not None else 120.0 * args.epochs
        args.variant_timeout = 240.0 + timed
    return args


def overrides(
    args: argparse.Namespace, precision: str = "32-true", seed: int | None = None, threads: int | None = None
) -> list[str]:
    """The trial's configuration: the strong one, this run's data, device and timing, a precision."""
    max_epochs = args.warmup_epochs + args.epochs if args.epochs is not None else MAX_EPOCHS
    return [
        *common.CONFIGURATIONS[CONFIGURATION],
        *common.trial_overrides(args, seed=seed, threads=threads),
        f"data.limit_val={args.val_images}",
        f"trainer.precision={precision}",
        f"trainer.max_epochs={max_epochs}",
    ]


# ----------------------------------------------------------------------------------------------------
# One child process: one training run, timed between a shared barrier and the end of its window
# ----------------------------------------------------------------------------------------------------


def child_main(rank: int, spec: dict[str, Any], barrier: Any, results: Any) -> None:
    """Train one model as a trial would; put a dict (or {"error": ...}) on `results`."""
    try:
        results.put({"rank": rank, **train_once(spec, barrier)})
    except BaseException as exc:
        barrier.abort()  # the other children must not wait for this one
        message = f"{type(exc).__name__}: {exc}".strip()
        results.put({"rank": rank, "error": message[:2000], "traceback": traceback.format_exc()[-4000:]})


def train_once(spec: dict[str, Any], barrier: Any) -> dict[str, Any]:
    common.quiet()
    device = torch.device(spec["device"])
    if device.type == "cuda":
        # "cuda" has no index; set_device and the memory queries need one (the current device's).
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
    cfg = common.compose_config(spec["overrides"])
    datamodule, module = pipeline.build(cfg)
    if spec["channels_last"]:
        module.net = module.net.to(memory_format=torch.channels_last)  # Lightning's .to() keeps the format
    if spec["compile"]:
        module.net = cast(torch.nn.Module, torch.compile(module.net, mode=spec["compile_mode"]))

    used_at_start: list[int] = []

    def start_window() -> None:
        barrier.wait(timeout=spec["barrier_timeout"])  # every child starts its window together
        if device.type == "cuda":
            free, total = torch.cuda.mem_get_info(device)
            used_at_start.append(total - free)

    timer = common.EpochTimer(device, spec["warmup_epochs"], spec["window"], start_window)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    fit_called = time.time()
    common.trainer(cfg, [timer]).fit(module, datamodule=datamodule)
    timed = timer.timed_seconds
    if not timed:
        raise RuntimeError("training ended before a timed epoch")
    seconds = timer.window_end - timer.window_start
    last = module.history[-1] if module.history else {}
    out: dict[str, Any] = {
        "pid": os.getpid(),
        "torch_threads": torch.get_num_threads(),
        "startup_seconds": fit_called - spec["spawned_wall"],  # spawn, imports, config, model; not data
        "warmup_seconds": sum(timer.epoch_seconds[: spec["warmup_epochs"]]),
        "timed_epochs": len(timed),
        "timed_seconds": seconds,
        "epochs_per_min": 60.0 * len(timed) / seconds,
        "epoch_seconds": timed,
        "start_wall": timer.window_start_wall,
        "end_wall": timer.window_end_wall,
        "train_images": datamodule.split_sizes()["train"],
        "val_images": datamodule.split_sizes()["val"],
        "last_epoch": {k: last[k] for k in ("train/loss", "train/acc", "val/acc") if k in last},
    }
    if device.type == "cuda":
        out["max_memory_allocated_bytes"] = torch.cuda.max_memory_allocated(device)
        out["max_memory_reserved_bytes"] = torch.cuda.max_memory_reserved(device)
        out["device_used_bytes_at_window_start"] = used_at_start[0] if used_at_start else None
    return out


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
        "warmup_epochs": args.warmup_epochs,
        "window": args.window,
        "channels_last": channels_last,
        "compile": compile_net,
        "compile_mode": args.compile_mode,
        "barrier_timeout": args.variant_timeout,
        "spawned_wall": time.time(),
    }
    if compile_net:
        # Inductor's compile workers per child: N children must not each start a pool of all cores.
        os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = str(threads)
    procs = []
    for rank in range(n_procs):
        spec = {**spec_base, "overrides": overrides(args, precision, seed=args.seed + rank, threads=threads)}
        procs.append(ctx.Process(target=child_main, args=(rank, spec, barrier, results)))
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
            when = "before exiting" if elapsed < args.variant_timeout else f"in {args.variant_timeout:.0f} s"
            message = (
                f"{n_procs - len(children)} of {n_procs} children reported nothing {when} "
                f"(exit codes {codes}; their tracebacks are in this script's output)"
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
        used = [u for c in children if (u := c["device_used_bytes_at_window_start"]) is not None]
        out["device_used_mib_at_window_start"] = round(max(used) / 2**20, 1) if used else None
    return out


# ----------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------


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
    common.quiet()
    timing = (
        f"{args.warmup_epochs} warm-up epoch(s), then a {args.window:g} s window of whole epochs per process"
        if args.window is not None
        else f"{args.warmup_epochs} warm-up epoch(s), then {args.epochs} timed epoch(s) per process"
    )
    cfg = common.compose_config(overrides(args))  # what every child composes (its own seed and threads)
    report = common.new_report(
        "aggregate training epochs per minute of N concurrent processes on one device", args.device
    )
    report["complete"] = False
    report["settings"] = {
        "device": args.device,
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
        "overrides": overrides(args),
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "n_parameters": pipeline.build(cfg)[1].n_parameters,
        "optimizer": OmegaConf.to_container(cfg.optimizer, resolve=True),
        "data": OmegaConf.to_container(cfg.data, resolve=True),
        "trainer": OmegaConf.to_container(cfg.trainer, resolve=True),
        "tf32": cfg.tf32,
        "data_root": str(args.data_root),
        "seed": args.seed,
    }
    variants: dict[str, Any] = {}
    report["variants"] = variants

    def record(name: str, result: dict[str, Any]) -> None:
        variants[name] = result
        add_ratios(variants)
        common.write_result(report, args.out)
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
    common.write_result(report, args.out)
    print_table(report)
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
