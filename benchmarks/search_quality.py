"""Search quality at equal budget: BOHB versus random search versus TPE without pruning.

The task. A small PyTorch MLP is trained on real Fashion-MNIST on the CPU: the 28x28 images are
average-pooled to 14x14 and flattened, a stratified subset of the training images (--train-images) is
trained on, and a stratified 2000-image holdout of the *training* set is the validation set (the
official test set is never searched on). The search space mirrors the project's joint space: depth
{1, 2, 3} with one log-int width in [16, 512] per layer, each width sampled only when its layer exists
(like the project's conditional `n_filters_2/3`), learning rate log [1e-4, 1], weight decay
log [1e-6, 1e-2], batch size {32, ..., 512}, optimizer {adam, sgd with momentum 0.9} and dropout
{0, ..., 0.5}. Tensors are pre-loaded; each epoch is one shuffled pass of minibatches (no DataLoader).

Why it is an honest multi-fidelity benchmark. The fidelity is the number of epochs actually trained,
as in the project: nothing is tabulated, surrogated or extrapolated. A low-budget observation (the
validation accuracy after 1, 3 or 9 epochs) is a genuinely noisy and biased estimate of the 27-epoch
result (a small learning rate or batch-size-512 SGD starts slowly, an aggressive one may start fast and
then stall or diverge), so Hyperband can be fooled just as it can in the real sweep. The cost the
budget counts is the same unit for every strategy: one epoch of training on the same images, whatever
the configuration.

The strategies, each run with ask/tell until a total of --budget-epochs epochs has been trained:

  bohb    TPESampler as the sweeper configures it (multivariate, group, constant liar,
          n_startup_trials=10, seed) + HyperbandPruner(min_resource=1, max_resource=--max-epochs,
          reduction_factor=3); both built from the plugin's own config dataclasses;
  tpe     the same TPESampler + NopPruner (every trial trains --max-epochs epochs);
  random  RandomSampler(seed) + NopPruner.

Runs with the same seed share common random numbers: TPE's 10 start-up trials draw the same
configurations as random search's first 10, and trial k of every strategy trains with the same torch
seed, so the comparison's noise is mostly the strategies' own.

A trial's objective is its best validation accuracy so far, reported after every epoch with
trial.report(value, epoch); the trial stops when trial.should_prune() says so (never at its last
epoch), and is told as PRUNED (Optuna's TPE then ranks it by the epoch it reached and that value, as
in the sweeper). The trial that would overrun the budget is cut at the budget. The anytime curve of
a run is the best validation accuracy observed vs cumulative epochs trained. Because the best of many
noisy validation scores is optimistically biased (more so for a strategy that looks at more
configurations), each run also records the accuracy, on a stratified subset of the official test
set, of its incumbent (the trial and epoch with the best validation accuracy): that number is never
used for any decision.

Run from the repository root (the default, 3000 training images so that it takes about 5-10 minutes
on 2 otherwise idle CPU cores, spends about 1000 CPU-seconds):

    .venv/bin/python benchmarks/search_quality.py
    .venv/bin/python benchmarks/search_quality.py --budget-epochs 270 --seeds 2   # a quick look

Output: a JSON (--out) with the settings, the machine, per-strategy per-seed results, the median and
25%/75% curves at every 10% of the budget and the headline ratios, and a PNG next to it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing as mp
import os
import platform
import sys
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
try:
    import jahs_bohb  # noqa: F401
except ImportError:  # not installed: use the checkout's src/
    sys.path.insert(0, str(ROOT / "src"))

from hydra_plugins.hydra_bohb_sweeper.config import HyperbandPrunerConf, TPESamplerConf  # noqa: E402
from jahs_bohb.fashion_mnist import load_fashion_mnist  # noqa: E402
from jahs_bohb.splits import limit, train_val_split  # noqa: E402

STRATEGIES = ("bohb", "tpe", "random")
COLOURS = {"bohb": "tab:blue", "tpe": "tab:orange", "random": "tab:green"}
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "search_quality.json"
SPLIT_SEED = 0  # the data split is the same for every strategy and seed
WIDTH_RANGE = (16, 512)
BATCH_SIZES = (32, 64, 128, 256, 512)
DROPOUTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
CHECKPOINTS = 10  # quantile curves at every 10% of the budget


@dataclass(frozen=True)
class Settings:
    budget_epochs: int
    seeds: int
    max_epochs: int
    train_images: int
    val_images: int
    test_images: int
    processes: int
    # Read from the plugin's config dataclasses once, in the parent (seed and max_resource overridden).
    tpe_kwargs: dict[str, Any]
    hyperband_kwargs: dict[str, Any]


@dataclass(frozen=True)
class Data:
    """Pre-pooled, standardised, flattened images (float32) and int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass
class RunResult:
    strategy: str
    seed: int
    best_val: list[float]  # best validation accuracy seen, after each cumulative epoch 1..budget
    incumbent_test: list[float]  # test accuracy of the incumbent at that point
    n_trials: int = 0
    n_full: int = 0  # trials that trained max_epochs
    n_pruned: int = 0
    n_cut: int = 0  # the trial stopped by the end of the budget
    epochs_per_trial: dict[int, int] = dataclasses.field(default_factory=dict)
    incumbent: dict[str, Any] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process's CPU time: wall time depends on what else the machine runs


# --- data --------------------------------------------------------------------------------------------


def _pool_flatten(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 196): 2x2 average pooling to 14x14."""
    x = torch.from_numpy(images).float().div_(255.0).unsqueeze(1)
    return F.avg_pool2d(x, 2).flatten(1).numpy()


def prepare_data(train_images: int, val_images: int, test_images: int) -> Data:
    """Stratified train subset + holdout of the training images, and a stratified test subset."""
    fm = load_fashion_mnist(download=False)
    train_idx, val_idx = train_val_split(fm.train_labels, val_images, SPLIT_SEED)
    train_idx = limit(train_idx, fm.train_labels, train_images, SPLIT_SEED)
    test_idx = limit(np.arange(len(fm.test_labels)), fm.test_labels, test_images, SPLIT_SEED)
    x_train = _pool_flatten(fm.train_images[train_idx])
    mean, std = float(x_train.mean()), float(x_train.std())

    def norm(images: np.ndarray) -> np.ndarray:
        return (_pool_flatten(images) - mean) / std

    return Data(
        x_train=norm(fm.train_images[train_idx]),
        y_train=fm.train_labels[train_idx],
        x_val=norm(fm.train_images[val_idx]),
        y_val=fm.train_labels[val_idx],
        x_test=norm(fm.test_images[test_idx]),
        y_test=fm.test_labels[test_idx],
    )


# --- search space, model, training -------------------------------------------------------------------


def suggest(trial: optuna.Trial) -> dict[str, Any]:
    """The joint space; width_k exists only when depth >= k (the project's conditional filters)."""
    params: dict[str, Any] = {"depth": trial.suggest_categorical("depth", [1, 2, 3])}
    for k in range(1, params["depth"] + 1):
        params[f"width_{k}"] = trial.suggest_int(f"width_{k}", *WIDTH_RANGE, log=True)
    params["lr"] = trial.suggest_float("lr", 1e-4, 1.0, log=True)
    params["weight_decay"] = trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
    params["batch_size"] = trial.suggest_categorical("batch_size", list(BATCH_SIZES))
    params["optimizer"] = trial.suggest_categorical("optimizer", ["adam", "sgd"])
    params["dropout"] = trial.suggest_categorical("dropout", list(DROPOUTS))
    return params


def build_model(params: dict[str, Any], n_in: int, n_classes: int = 10) -> nn.Module:
    layers: list[nn.Module] = []
    width_in = n_in
    for k in range(1, params["depth"] + 1):
        width = params[f"width_{k}"]
        layers += [nn.Linear(width_in, width), nn.ReLU(), nn.Dropout(params["dropout"])]
        width_in = width
    layers.append(nn.Linear(width_in, n_classes))
    return nn.Sequential(*layers)


def build_optimizer(params: dict[str, Any], model: nn.Module) -> torch.optim.Optimizer:
    if params["optimizer"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"])
    return torch.optim.SGD(
        model.parameters(), lr=params["lr"], momentum=0.9, weight_decay=params["weight_decay"]
    )


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
) -> None:
    model.train()
    order = torch.randperm(len(x), generator=generator)
    for start in range(0, len(x), batch_size):
        idx = order[start : start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        optimizer.step()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return int((model(x).argmax(1) == y).sum()) / len(y)


# --- one strategy, one seed --------------------------------------------------------------------------


def _conf_kwargs(conf: Any) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(conf).items() if not k.startswith("_")}


def make_sampler(strategy: str, seed: int, settings: Settings) -> optuna.samplers.BaseSampler:
    if strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():  # multivariate, group and constant_liar are experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(**{**settings.tpe_kwargs, "seed": seed})


def make_pruner(strategy: str, settings: Settings) -> optuna.pruners.BasePruner:
    if strategy == "bohb":
        return optuna.pruners.HyperbandPruner(**settings.hyperband_kwargs)
    return optuna.pruners.NopPruner()


class Tracker:
    """Cumulative epochs trained and the incumbent, i.e. the best (trial, epoch) by validation accuracy."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.epochs = 0
        self.best_val: list[float] = []
        self.incumbent_test: list[float] = []
        self.incumbent: dict[str, Any] = {"val_acc": -math.inf}

    @property
    def left(self) -> int:
        return self.budget - self.epochs

    def observe(self, trial: optuna.Trial, epoch: int, val_acc: float, test_acc: float) -> None:
        self.epochs += 1
        if val_acc > self.incumbent["val_acc"]:
            self.incumbent = {
                "val_acc": val_acc,
                "test_acc": test_acc,
                "trial": trial.number,
                "epoch": epoch,
                "at_cumulative_epoch": self.epochs,
                "params": dict(trial.params),
            }
        self.best_val.append(self.incumbent["val_acc"])
        self.incumbent_test.append(self.incumbent["test_acc"])


def run_trial(
    trial: optuna.Trial, tensors: dict[str, torch.Tensor], max_epochs: int, tracker: Tracker, torch_seed: int
) -> tuple[optuna.trial.TrialState, float, int]:
    """Train one configuration epoch by epoch; returns (state, objective, epochs trained)."""
    params = suggest(trial)
    torch.manual_seed(torch_seed)
    generator = torch.Generator().manual_seed(torch_seed)
    model = build_model(params, tensors["x_train"].shape[1])
    optimizer = build_optimizer(params, model)
    best = 0.0
    for epoch in range(1, max_epochs + 1):
        train_epoch(model, optimizer, tensors["x_train"], tensors["y_train"], params["batch_size"], generator)
        val_acc = accuracy(model, tensors["x_val"], tensors["y_val"])
        tracker.observe(trial, epoch, val_acc, accuracy(model, tensors["x_test"], tensors["y_test"]))
        best = max(best, val_acc)
        trial.report(best, epoch)
        if epoch < max_epochs and trial.should_prune():
            return optuna.trial.TrialState.PRUNED, best, epoch
        if tracker.left == 0 and epoch < max_epochs:  # cut by the end of the budget
            return optuna.trial.TrialState.FAIL, best, epoch
    return optuna.trial.TrialState.COMPLETE, best, max_epochs


def run_strategy(strategy: str, seed: int, settings: Settings, data: Data) -> RunResult:
    """Ask/tell until the epoch budget is spent; the anytime curve has one point per epoch trained."""
    start, cpu_start = time.perf_counter(), time.process_time()
    tensors = {f.name: torch.from_numpy(getattr(data, f.name)) for f in dataclasses.fields(data)}
    study = optuna.create_study(
        study_name=f"search-quality-{strategy}-{seed}",
        direction="maximize",
        sampler=make_sampler(strategy, seed, settings),
        pruner=make_pruner(strategy, settings),
    )
    tracker = Tracker(settings.budget_epochs)
    states: Counter[optuna.trial.TrialState] = Counter()
    epochs_per_trial: Counter[int] = Counter()
    while tracker.left > 0:
        trial = study.ask()
        torch_seed = seed * 1_000_003 + trial.number
        state, value, epochs = run_trial(trial, tensors, settings.max_epochs, tracker, torch_seed)
        study.tell(trial, value if state == optuna.trial.TrialState.COMPLETE else None, state=state)
        states[state] += 1
        epochs_per_trial[epochs] += 1
    return RunResult(
        strategy=strategy,
        seed=seed,
        best_val=tracker.best_val,
        incumbent_test=tracker.incumbent_test,
        n_trials=len(study.trials),
        n_full=states[optuna.trial.TrialState.COMPLETE],
        n_pruned=states[optuna.trial.TrialState.PRUNED],
        n_cut=states[optuna.trial.TrialState.FAIL],
        epochs_per_trial=dict(sorted(epochs_per_trial.items())),
        incumbent=tracker.incumbent,
        seconds=time.perf_counter() - start,
        cpu_seconds=time.process_time() - cpu_start,
    )


# --- worker processes --------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(settings: Settings, data: Data) -> None:
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    _WORKER.update(settings=settings, data=data)


def _run_job(job: tuple[str, int]) -> RunResult:
    return run_strategy(job[0], job[1], _WORKER["settings"], _WORKER["data"])


def _report(result: RunResult, done: int, total: int) -> None:
    print(
        f"  {result.strategy:6s} seed {result.seed}: best val {result.best_val[-1]:.4f} "
        f"(test {result.incumbent_test[-1]:.4f}), {result.n_trials} trials, {result.seconds:.0f} s "
        f"({result.cpu_seconds:.0f} s CPU) [{done}/{total}]",
        flush=True,
    )


def run_all(settings: Settings, data: Data) -> list[RunResult]:
    """Every (strategy, seed) run, in `settings.processes` spawned single-threaded worker processes.

    A worker that dies (e.g. an import error) raises BrokenProcessPool here instead of hanging.
    """
    # BOHB first: its many short trials cost the most sampler time, so it should not be the straggler.
    jobs = [(strategy, seed) for strategy in STRATEGIES for seed in range(settings.seeds)]
    results: list[RunResult] = []
    if settings.processes == 1:
        _init_worker(settings, data)
        for job in jobs:
            results.append(_run_job(job))
            _report(results[-1], len(results), len(jobs))
    else:
        with ProcessPoolExecutor(
            settings.processes, mp.get_context("spawn"), _init_worker, (settings, data)
        ) as pool:
            for future in as_completed([pool.submit(_run_job, job) for job in jobs]):
                results.append(future.result())
                _report(results[-1], len(results), len(jobs))
    return sorted(results, key=lambda r: (STRATEGIES.index(r.strategy), r.seed))


# --- summary -----------------------------------------------------------------------------------------


def curves(results: Sequence[RunResult], strategy: str, key: str = "best_val") -> np.ndarray:
    """(seeds, budget) array of one strategy's anytime curves."""
    return np.array([getattr(r, key) for r in results if r.strategy == strategy])


def quantile_curve(curve: np.ndarray, q: float) -> np.ndarray:
    return np.quantile(curve, q, axis=0)


def epochs_to_reach(curve: np.ndarray, target: float) -> int | None:
    """First cumulative epoch (1-based) at which a best-so-far curve reaches `target`; None: never."""
    hits = np.flatnonzero(curve >= target)
    return int(hits[0]) + 1 if len(hits) else None


def _fraction(epochs: int | None, budget: int) -> float | None:
    return None if epochs is None else round(epochs / budget, 4)


def summarise(results: Sequence[RunResult], settings: Settings) -> dict[str, Any]:
    budget = settings.budget_epochs
    points = [round(budget * k / CHECKPOINTS) for k in range(1, CHECKPOINTS + 1)]
    per_strategy: dict[str, Any] = {}
    for strategy in STRATEGIES:
        val, test = curves(results, strategy), curves(results, strategy, "incumbent_test")
        runs = [r for r in results if r.strategy == strategy]
        per_strategy[strategy] = {
            "median_final_best_val": float(np.median(val[:, -1])),
            "median_final_incumbent_test": float(np.median(test[:, -1])),
            "median_trials": float(np.median([r.n_trials for r in runs])),
            "checkpoints": {
                "epochs": points,
                **{
                    name: [round(float(quantile_curve(val, q)[p - 1]), 4) for p in points]
                    for name, q in (("q25", 0.25), ("median", 0.5), ("q75", 0.75))
                },
                "median_incumbent_test": [round(float(np.median(test[:, p - 1])), 4) for p in points],
            },
            "seeds": [
                {
                    "seed": r.seed,
                    "final_best_val": r.best_val[-1],
                    "final_incumbent_test": r.incumbent_test[-1],
                    "n_trials": r.n_trials,
                    "n_full": r.n_full,
                    "n_pruned": r.n_pruned,
                    "n_cut_by_budget": r.n_cut,
                    "epochs_per_trial": r.epochs_per_trial,
                    "incumbent": r.incumbent,
                    "seconds": round(r.seconds, 1),
                    "cpu_seconds": round(r.cpu_seconds, 1),
                }
                for r in runs
            ],
        }
    return {"strategies": per_strategy, "headline": headline(results, per_strategy, budget)}


def headline(results: Sequence[RunResult], per_strategy: dict[str, Any], budget: int) -> dict[str, Any]:
    """Epochs each strategy needs to reach random search's final median best, and the final gaps."""
    target = per_strategy["random"]["median_final_best_val"]
    out: dict[str, Any] = {"random_median_final_best_val": target}
    for strategy in ("bohb", "tpe"):
        val = curves(results, strategy)
        median_epochs = epochs_to_reach(quantile_curve(val, 0.5), target)
        per_seed = [epochs_to_reach(curve, target) for curve in val]
        out[strategy] = {
            "epochs_to_reach_random_final_median": median_epochs,
            "fraction_of_budget": _fraction(median_epochs, budget),
            "per_seed_fraction_of_budget": [_fraction(e, budget) for e in per_seed],
            "final_best_val_minus_random": round(per_strategy[strategy]["median_final_best_val"] - target, 4),
        }
    out["bohb_minus_tpe_final_best_val"] = round(
        per_strategy["bohb"]["median_final_best_val"] - per_strategy["tpe"]["median_final_best_val"], 4
    )
    return out


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "optuna": optuna.__version__,
        "numpy": np.__version__,
    }


# --- plot --------------------------------------------------------------------------------------------


def plot(results: Sequence[RunResult], settings: Settings, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, settings.budget_epochs + 1)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
    panels = (
        ("best_val", "best validation accuracy so far"),
        ("incumbent_test", "incumbent's test accuracy"),
    )
    lows: list[float] = []
    highs: list[float] = []
    for ax, (key, label) in zip(axes, panels, strict=True):
        for strategy in STRATEGIES:
            curve = curves(results, strategy, key)
            q25, med, q75 = (quantile_curve(curve, q) for q in (0.25, 0.5, 0.75))
            ax.plot(epochs, med, color=COLOURS[strategy], label=f"{strategy} (median of {len(curve)})")
            ax.fill_between(epochs, q25, q75, color=COLOURS[strategy], alpha=0.2, linewidth=0)
            lows.append(q25[settings.budget_epochs // 10 - 1])
            highs.append(q75.max())
        ax.set_xlabel("cumulative epochs trained")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    for ax in axes:
        ax.set_ylim(min(lows) - 0.01, max(highs) + 0.005)  # from 10% of the budget on
    axes[0].legend(loc="lower right")
    fig.suptitle(
        f"Fashion-MNIST 14x14 MLP, {settings.train_images} training images: "
        f"equal budget of {settings.budget_epochs} epochs (max {settings.max_epochs} per trial), 25-75% band"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- command line ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> tuple[Settings, Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget-epochs", type=int, default=27 * 40, help="epochs per strategy and seed")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--max-epochs", type=int, default=27, help="epochs of a full trial")
    parser.add_argument("--train-images", type=int, default=3000)
    parser.add_argument("--val-images", type=int, default=2000)
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON path; the PNG goes next to it")
    args = parser.parse_args(argv)
    if args.budget_epochs < args.max_epochs:
        parser.error("--budget-epochs must be at least --max-epochs")
    settings = Settings(
        budget_epochs=args.budget_epochs,
        seeds=args.seeds,
        max_epochs=args.max_epochs,
        train_images=args.train_images,
        val_images=args.val_images,
        test_images=args.test_images,
        processes=max(1, args.processes),
        tpe_kwargs=_conf_kwargs(TPESamplerConf()) | {"seed": None},  # each run sets its seed
        hyperband_kwargs=_conf_kwargs(HyperbandPrunerConf()) | {"max_resource": args.max_epochs},
    )
    return settings, args.out


def print_summary(summary: dict[str, Any], budget: int) -> None:
    for strategy, s in summary["strategies"].items():
        print(
            f"{strategy:6s} median final best val {s['median_final_best_val']:.4f}, incumbent test "
            f"{s['median_final_incumbent_test']:.4f}, trials (median) {s['median_trials']:.0f}, "
            f"per seed {[seed['n_trials'] for seed in s['seeds']]}"
        )
    head = summary["headline"]
    for strategy in ("bohb", "tpe"):
        h = head[strategy]
        reached = (
            f"{h['epochs_to_reach_random_final_median']} of {budget} epochs ({h['fraction_of_budget']:.0%})"
            if h["fraction_of_budget"] is not None
            else "not within the budget"
        )
        print(
            f"{strategy}: reaches random's final median best ({head['random_median_final_best_val']:.4f}) "
            f"at {reached} (median curve); per seed {h['per_seed_fraction_of_budget']}"
        )


def main(argv: Sequence[str] | None = None) -> None:
    settings, out = parse_args(argv)
    print(f"settings: {settings}", flush=True)
    started, load_before = time.perf_counter(), os.getloadavg()
    data = prepare_data(settings.train_images, settings.val_images, settings.test_images)
    results = run_all(settings, data)
    wall = time.perf_counter() - started
    summary = summarise(results, settings)
    report = {
        "benchmark": "search_quality",
        "settings": {
            **dataclasses.asdict(settings),
            "image_size": "14x14 (2x2 average pooling)",
            "split_seed": SPLIT_SEED,
        },
        "machine": machine() | {"loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "wall_seconds": round(wall, 1),
        "cpu_seconds_of_runs": round(sum(r.cpu_seconds for r in results), 1),
        "epochs_trained_per_second": round(len(results) * settings.budget_epochs / wall, 2),
        **summary,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    plot(results, settings, out.with_suffix(".png"))
    print_summary(summary, settings.budget_epochs)
    cpu = sum(r.cpu_seconds for r in results)
    print(f"wall {wall:.0f} s ({cpu:.0f} CPU-seconds in the runs); wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
