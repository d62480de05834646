"""Search quality at equal epochs: our BOHB sweeper against random search, Hyperband, TPE alone, and the
seed study's own optimizer (SMAC's multi-fidelity BOHB), HpBandSter's BOHB and DEHB.

The task (search_quality_app/mlp_task.py): a small MLP on real Fashion-MNIST (14x14, 1500 training
images, a 1500-image validation holdout of the training set), nine hyperparameters with conditional
widths and log scales. One unit of budget is one epoch trained, whatever the configuration and whoever
asked for it; every run of every strategy gets the same budget of epochs (--budget-epochs), trials of at
most --max-epochs (27) epochs. The anytime curve of a run is its best validation accuracy against epochs
trained; the test accuracy of its incumbent (the configuration and epoch with the best validation
accuracy, measured on all 10k test images) is recorded but never steers anything.

The budget: 405 epochs per run (15 full trainings; one Hyperband iteration of the 1-3-9-27 schedule is
357 epochs, 49 configurations), the regime of the project's own sweeps (64 trials of Hyperband
1..27 train about 470 epochs). An epoch costs about 0.06 CPU-seconds and a run about 35, so the 70 runs
(7 strategies x 10 seeds) take about 2500 CPU-seconds: 21 minutes on 2 idle cores.

The strategies. The first four run through the real sweeper: Hydra's multirun of the app
search_quality_app/app.py (basic launcher, in this process, as `python app.py -m` would), whose jobs
report every epoch through the sweeper's client API and are pruned by the sweeper's pruner. Sampler and
pruner carry the keys that conf/sweeper/bohb.yaml sets, so `ours` is configured as `train.py -m
sweeper=bohb`:

  ours        TPE (multivariate, group, constant liar) + Hyperband (1, 27, eta 3): hydra/sweeper=bohb
  random      random search: hydra/sweeper/sampler=random hydra/sweeper/pruner=none
  hyperband   Hyperband with random sampling: hydra/sweeper/sampler=random
  tpe         TPE without pruning: hydra/sweeper/pruner=none
  smac        SMAC 2 MultiFidelityFacade (random forest, Hyperband eta 3), ask/tell
  hpbandster  HpBandSter BOHB (KDE per budget, eta 3), its Master and a Worker
  dehb        DEHB (eta 3), ask/tell

The external optimizers (search_quality_app/external.py) drive the same training function with their
own recommended multi-fidelity settings; a configuration they promote continues its training rather
than starting over, so they pay for epochs trained exactly as the sweeper's pruned trials do. Run k of
every strategy uses seed k for its optimizer, and configuration number i of every run trains with torch
seed (k, i) (common random numbers).

Statistics: anytime curves (median and quartiles over seeds), final best validation accuracy and the
incumbent's test accuracy, paired win rates and Wilcoxon signed-rank p-values of `ours` against each
strategy (seed k against seed k), and the budget fraction at which each strategy's median curve (and
each seed's) reaches random search's final median.

Setup, once (a venv beside the project's that sees its packages and adds smac, hpbandster and dehb;
dehb goes in with --no-deps, its numpy<2 pin is stale):

    .venv/bin/python benchmarks/search_quality.py --setup

Run (the full benchmark writes benchmarks/reference/search_quality.{json,png}, which are committed;
--quick writes benchmarks/results/search_quality_quick.{json,png}):

    benchmarks/.venv-search/bin/python benchmarks/search_quality.py --quick   # ~260 CPU-s: 3 min on 2 cores
    nohup nice -n 10 benchmarks/.venv-search/bin/python benchmarks/search_quality.py > sq.log 2>&1 &

Each finished run is appended to benchmarks/results/<name>.runs.jsonl (with every epoch's configuration
and validation accuracy); --resume reuses the runs there that have the same settings.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import venv
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
APP_DIR = ROOT / "benchmarks" / "search_quality_app"
sys.path.insert(0, str(APP_DIR))  # the app's modules: a folder of scripts, not a package

import mlp_task  # noqa: E402

SWEEPER = ("ours", "random", "hyperband", "tpe")
EXTERNAL = ("smac", "hpbandster", "dehb")
STRATEGIES = SWEEPER + EXTERNAL
LABELS = {
    "ours": "ours: TPE + Hyperband (sweeper=bohb)",
    "random": "random search",
    "hyperband": "Hyperband, random sampling",
    "tpe": "TPE, no pruning",
    "smac": "SMAC MultiFidelityFacade",
    "hpbandster": "HpBandSter BOHB",
    "dehb": "DEHB",
}
COLOURS = {
    "ours": "tab:blue",
    "random": "tab:gray",
    "hyperband": "tab:olive",
    "tpe": "tab:orange",
    "smac": "tab:red",
    "hpbandster": "tab:purple",
    "dehb": "tab:green",
}
BENCH_VENV = ROOT / "benchmarks" / ".venv-search"
BOHB_YAML = ROOT / "conf" / "sweeper" / "bohb.yaml"
REFERENCE_OUT = ROOT / "benchmarks" / "reference" / "search_quality.json"
RESULTS_DIR = ROOT / "benchmarks" / "results"  # git-ignored: scratch, and each run as it finishes
QUICK_OUT = RESULTS_DIR / "search_quality_quick.json"
EXTERNAL_PACKAGES = ("smac==2.4.1", "hpbandster==0.7.4")
EXTERNAL_NO_DEPS = ("dehb==0.1.2", "loguru", "pyarrow")  # dehb pins numpy<2, which it does not need
CHECKPOINTS = 20  # quantile curves at every 5% of the budget


@dataclass(frozen=True)
class Settings:
    strategies: tuple[str, ...]
    seeds: tuple[int, ...]
    budget_epochs: int
    max_epochs: int
    train_images: int
    val_images: int
    test_images: int | None
    processes: int
    ours_overrides: tuple[str, ...] = ()  # experiments with the sweeper's settings (--ours-override)


@dataclass
class RunResult:
    strategy: str
    seed: int
    best_val: list[float]  # best validation accuracy seen, after each epoch trained 1..budget
    incumbent_test: list[float]  # the test accuracy of the incumbent at that point
    incumbent: dict[str, Any]
    configurations: int  # distinct configurations trained
    epochs_per_configuration: dict[int, int]  # epochs trained -> how many configurations
    details: dict[str, Any]  # what the strategy reports besides
    seconds: float
    cpu_seconds: float  # of the whole run, in its own process
    training_cpu_seconds: float  # of the epochs alone; the rest is the optimizer's (and Hydra's) own
    config_of_epoch: list[int]  # which configuration each epoch trained (numbered in order of first epoch)
    val_of_epoch: list[float]  # the validation accuracy after it


# --- our sweeper's strategies: Hydra's multirun of the app ---------------------------------------------


def bohb_yaml_keys(group: str) -> dict[str, Any]:
    """The sampler or pruner keys that conf/sweeper/bohb.yaml sets (the project's sweep)."""
    config = yaml.safe_load(BOHB_YAML.read_text())
    return dict(config["hydra"]["sweeper"].get(group) or {})


def _format(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def sweep_overrides(strategy: str, seed: int, settings: Settings, sweep_dir: Path) -> list[str]:
    sampler = {k: v for k, v in bohb_yaml_keys("sampler").items() if k != "seed"}
    pruner = bohb_yaml_keys("pruner") if strategy in ("ours", "hyperband") else {}
    random_sampler = strategy in ("random", "hyperband")
    pruned = strategy in ("ours", "hyperband")
    out = [
        *(["hydra/sweeper/sampler=random"] if random_sampler else []),
        *([] if pruned else ["hydra/sweeper/pruner=none"]),
        f"hydra.sweeper.sampler.seed={seed}",
        *([] if random_sampler else [f"hydra.sweeper.sampler.{k}={_format(v)}" for k, v in sampler.items()]),
        *(f"hydra.sweeper.pruner.{k}={_format(v)}" for k, v in pruner.items()),
        f"hydra.sweeper.budget={settings.max_epochs}",
        f"hydra.sweeper.study_name=search-quality-{strategy}-{seed}",
        f"hydra.sweep.dir={sweep_dir}",
        "hydra.output_subdir=null",  # no .hydra/ folder per trial
        "hydra/job_logging=none",  # no log file per trial
        f"seed={seed}",
        f"ledger.budget_epochs={settings.budget_epochs}",
        f"data.train_images={settings.train_images}",
        f"data.val_images={settings.val_images}",
        f"data.test_images={'null' if settings.test_images is None else settings.test_images}",
        *(settings.ours_overrides if strategy == "ours" else ()),
    ]
    return out


def run_sweep(strategy: str, seed: int, settings: Settings, sweep_dir: Path) -> dict[str, Any]:
    """One sweep of the app in this process until its ledger's budget is spent (the job then stops the
    sweep as Ctrl-C would: the sweeper records the trial in flight as failed and exits with code 2)."""
    import app
    import optuna
    from hydra.core.global_hydra import GlobalHydra
    from hydra.test_utils.test_utils import SweepTaskFunction

    class Multirun(SweepTaskFunction):  # Hydra's in-process multirun, keeping the sweep directory
        def __exit__(self, *exc: Any) -> None:
            pass

    multirun = Multirun()
    multirun.calling_file, multirun.calling_module = str(APP_DIR / "app.py"), None
    multirun.task_function, multirun.config_path, multirun.config_name = app.run, "conf", "config"
    multirun.overrides = [
        o for o in sweep_overrides(strategy, seed, settings, sweep_dir) if "sweep.dir" not in o
    ]
    multirun.temp_dir = str(sweep_dir)
    out, err = io.StringIO(), io.StringIO()
    code: Any = 0
    GlobalHydra.instance().clear()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            with multirun:
                pass
        except SystemExit as exc:
            code = exc.code
    ledger = mlp_task.Ledger.open(sweep_dir / "epochs.jsonl", settings.budget_epochs)
    if not ledger.spent:
        raise RuntimeError(
            f"{strategy} seed {seed}: the sweep ended (exit code {code}) after {ledger.epochs} of "
            f"{settings.budget_epochs} epochs:\n{err.getvalue()[-3000:]}"
        )
    study = optuna.load_study(
        study_name=f"search-quality-{strategy}-{seed}", storage=f"sqlite:///{sweep_dir / 'optuna.db'}"
    )
    states = Counter(t.state.name for t in study.get_trials(deepcopy=False))
    return {"trials": len(study.trials), "states": dict(states), "rows": ledger.rows}


# --- one run, in a worker process ----------------------------------------------------------------------


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A fresh directory, on /dev/shm where there is one (SQLite commits there are cheap)."""
    shm = Path("/dev/shm")
    parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_one(strategy: str, seed: int, settings: Settings) -> RunResult:
    started, cpu_started = time.perf_counter(), time.process_time()
    details: dict[str, Any]
    if strategy in SWEEPER:
        with scratch_dir(f"sq-{strategy}-{seed}-") as sweep_dir:
            details = run_sweep(strategy, seed, settings, sweep_dir)
        rows = details.pop("rows")
    else:
        import external

        data = mlp_task.load_data(settings.train_images, settings.val_images, settings.test_images)
        ledger = mlp_task.Ledger(budget=settings.budget_epochs)
        details = external.run(strategy, data, ledger, seed, settings.max_epochs)
        rows = ledger.rows
    cpu, wall = time.process_time() - cpu_started, time.perf_counter() - started
    best_val, incumbent_test, incumbent = mlp_task.anytime_curves(rows)
    epochs_of = Counter(row["config"] for row in rows)
    return RunResult(
        strategy=strategy,
        seed=seed,
        best_val=best_val,
        incumbent_test=incumbent_test,
        incumbent=incumbent,
        configurations=len(epochs_of),
        epochs_per_configuration=dict(sorted(Counter(epochs_of.values()).items())),
        details=details,
        seconds=round(wall, 1),
        cpu_seconds=round(cpu, 1),
        training_cpu_seconds=round(sum(row["cpu_s"] for row in rows), 1),
        config_of_epoch=[row["config"] for row in rows],
        val_of_epoch=[row["val_acc"] for row in rows],
    )


def _init_worker() -> None:
    import optuna
    import torch

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")


def _run_job(job: tuple[str, int, Settings]) -> RunResult:
    return run_one(*job)


def _print_run(result: RunResult, done: int, total: int) -> None:
    print(
        f"  [{done}/{total}] {result.strategy:10s} seed {result.seed:2d}: best val {result.best_val[-1]:.4f}"
        f" (incumbent test {result.incumbent_test[-1]:.4f}), {result.configurations} configurations,"
        f" {result.seconds:.0f} s wall, {result.cpu_seconds:.0f} s CPU"
        f" ({result.cpu_seconds - result.training_cpu_seconds:.0f} s not training)",
        flush=True,
    )


def sweeper_defaults() -> dict[str, Any]:
    """The sampler and pruner of `ours`: the plugin's defaults with the keys conf/sweeper/bohb.yaml sets."""
    from hydra_plugins.hydra_bohb_sweeper.config import HyperbandPrunerConf, TPESamplerConf

    return {
        "sampler": dataclasses.asdict(TPESamplerConf()) | bohb_yaml_keys("sampler"),
        "pruner": dataclasses.asdict(HyperbandPrunerConf()) | bohb_yaml_keys("pruner"),
    }


def settings_key(settings: Settings, strategy: str) -> dict[str, Any]:
    """What must match for a saved run of `strategy` to be reused by --resume."""
    skip = ("strategies", "seeds", "processes", *(() if strategy == "ours" else ("ours_overrides",)))
    key = {k: v for k, v in dataclasses.asdict(settings).items() if k not in skip}
    if strategy in SWEEPER:
        key["sweeper"] = sweeper_defaults()
    return json.loads(json.dumps(key))  # as it reads back from the file


def load_runs(path: Path, settings: Settings) -> dict[tuple[str, int], RunResult]:
    runs: dict[tuple[str, int], RunResult] = {}
    if not path.exists():
        return runs
    for line in path.read_text().splitlines():
        saved = json.loads(line)
        if saved["settings"] == settings_key(settings, saved["run"]["strategy"]):
            result = RunResult(**saved["run"])
            result.epochs_per_configuration = {int(k): v for k, v in result.epochs_per_configuration.items()}
            runs[(result.strategy, result.seed)] = result
    return runs


def run_all(settings: Settings, runs_file: Path, resume: bool) -> tuple[list[RunResult], int]:
    """Every (strategy, seed) run, in `settings.processes` spawned single-threaded worker processes,
    seed by seed so that a run cut short has every strategy for the seeds it finished."""
    done = load_runs(runs_file, settings) if resume else {}
    if not resume and runs_file.exists():
        runs_file.unlink()
    runs_file.parent.mkdir(parents=True, exist_ok=True)
    jobs = [
        (strategy, seed, settings)
        for seed in settings.seeds
        for strategy in settings.strategies
        if (strategy, seed) not in done
    ]
    results = [r for (s, seed), r in done.items() if s in settings.strategies and seed in settings.seeds]
    if results:
        print(f"reusing {len(results)} runs from {runs_file}", flush=True)
    total = len(jobs) + len(results)

    def keep(result: RunResult) -> None:
        results.append(result)
        saved = {"settings": settings_key(settings, result.strategy), "run": dataclasses.asdict(result)}
        with runs_file.open("a") as f:
            f.write(json.dumps(saved) + "\n")
        _print_run(result, len(results), total)

    failed: list[str] = []
    if settings.processes == 1:
        _init_worker()
        for job in jobs:
            keep(_run_job(job))
    else:
        with ProcessPoolExecutor(settings.processes, mp.get_context("spawn"), _init_worker) as pool:
            futures = {pool.submit(_run_job, job): job for job in jobs}
            for future in as_completed(futures):
                try:
                    keep(future.result())
                except Exception as exc:  # one broken run costs that run; --resume redoes it
                    strategy, seed, _ = futures[future]
                    failed.append(f"{strategy} seed {seed}")
                    print(f"  FAILED {strategy} seed {seed}: {exc}", flush=True)
    if failed:
        sys.exit(f"error: {len(failed)} runs failed ({', '.join(failed)}); rerun with --resume")
    ordered = sorted(results, key=lambda r: (settings.strategies.index(r.strategy), r.seed))
    return ordered, len(jobs)


# --- statistics ------------------------------------------------------------------------------------------


def curves(results: Sequence[RunResult], strategy: str, key: str = "best_val") -> np.ndarray:
    """(seeds, budget) array of one strategy's anytime curves, by seed."""
    runs = sorted((r for r in results if r.strategy == strategy), key=lambda r: r.seed)
    return np.array([getattr(r, key) for r in runs])


def epochs_to_reach(curve: np.ndarray, target: float) -> int | None:
    """First epoch (1-based) at which a best-so-far curve reaches `target`; None: never."""
    hits = np.flatnonzero(curve >= target - 1e-12)
    return int(hits[0]) + 1 if len(hits) else None


def _fraction(epochs: int | None, budget: int) -> float | None:
    return None if epochs is None else round(epochs / budget, 3)


def _quartiles(values: np.ndarray) -> dict[str, float]:
    q25, q50, q75 = np.quantile(values, [0.25, 0.5, 0.75])
    return {"q25": round(float(q25), 4), "median": round(float(q50), 4), "q75": round(float(q75), 4)}


def paired(ours: np.ndarray, other: np.ndarray) -> dict[str, Any]:
    """Seed k against seed k: how often ours is ahead (ties count half), the median difference, and the
    two-sided Wilcoxon signed-rank p-value (None when every pair ties)."""
    from scipy.stats import wilcoxon

    diff = ours - other
    wins = float(np.mean(diff > 0) + 0.5 * np.mean(diff == 0))
    p = None
    if np.any(diff != 0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = round(float(wilcoxon(ours, other, zero_method="zsplit").pvalue), 4)
    return {
        "win_rate": round(wins, 3),
        "median_difference": round(float(np.median(diff)), 4),
        "wilcoxon_p": p,
    }


def full_share(run: RunResult, max_epochs: int) -> float:
    """The share of a run's epochs that went to configurations trained for max_epochs."""
    epochs_of = Counter(run.config_of_epoch)
    return sum(n for n in epochs_of.values() if n >= max_epochs) / len(run.config_of_epoch)


def summarise(results: Sequence[RunResult], settings: Settings) -> dict[str, Any]:
    budget = settings.budget_epochs
    points = sorted({max(1, round(budget * k / CHECKPOINTS)) for k in range(1, CHECKPOINTS + 1)})
    present = [s for s in settings.strategies if any(r.strategy == s for r in results)]
    target = (
        float(np.median(curves(results, "random")[:, -1])) if "random" in present else None
    )  # random search's final median best validation accuracy
    per_strategy: dict[str, Any] = {}
    for strategy in present:
        val, test = curves(results, strategy), curves(results, strategy, "incumbent_test")
        runs = sorted((r for r in results if r.strategy == strategy), key=lambda r: r.seed)
        entry: dict[str, Any] = {
            "label": LABELS[strategy],
            "seeds": len(runs),
            "final_best_val": _quartiles(val[:, -1]),
            "final_incumbent_test": _quartiles(test[:, -1]),
            "median_configurations": float(np.median([r.configurations for r in runs])),
            # Where the epochs went: the share of the budget spent on configurations trained to the top
            # rung (max_epochs), and how many configurations were tried by each checkpoint (below).
            "median_share_in_full_trainings": round(
                float(np.median([full_share(r, settings.max_epochs) for r in runs])), 3
            ),
            "median_cpu_seconds": float(np.median([r.cpu_seconds for r in runs])),
            "median_cpu_seconds_not_training": float(
                np.median([r.cpu_seconds - r.training_cpu_seconds for r in runs])
            ),
            "checkpoints": {
                "epochs": points,
                **{
                    name: [round(float(np.quantile(val[:, p - 1], q)), 4) for p in points]
                    for name, q in (("q25", 0.25), ("median", 0.5), ("q75", 0.75))
                },
                "median_incumbent_test": [round(float(np.median(test[:, p - 1])), 4) for p in points],
                "median_configurations_tried": [
                    float(np.median([len(set(r.config_of_epoch[:p])) for r in runs])) for p in points
                ],
            },
        }
        if target is not None:
            median_epochs = epochs_to_reach(np.median(val, axis=0), target)
            entry["reaches_random_final_median"] = {
                "fraction_of_budget_median_curve": _fraction(median_epochs, budget),
                "fraction_of_budget_per_seed": [_fraction(epochs_to_reach(c, target), budget) for c in val],
            }
        if strategy != "ours" and "ours" in present:
            ours_val, ours_test = curves(results, "ours"), curves(results, "ours", "incumbent_test")
            common = min(len(ours_val), len(val))  # seeds 0..n-1 on both sides
            entry["ours_against_this"] = {
                "final_best_val": paired(ours_val[:common, -1], val[:common, -1]),
                "final_incumbent_test": paired(ours_test[:common, -1], test[:common, -1]),
            }
        entry["runs"] = [
            {
                "seed": r.seed,
                "final_best_val": r.best_val[-1],
                "final_incumbent_test": r.incumbent_test[-1],
                "incumbent": r.incumbent,
                "configurations": r.configurations,
                "epochs_per_configuration": r.epochs_per_configuration,
                "details": r.details,
                "seconds": r.seconds,
                "cpu_seconds": r.cpu_seconds,
                "training_cpu_seconds": r.training_cpu_seconds,
            }
            for r in runs
        ]
        per_strategy[strategy] = entry
    return {"random_final_median_best_val": target, "strategies": per_strategy}


# --- figure ----------------------------------------------------------------------------------------------


def plot(results: Sequence[RunResult], settings: Settings, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budget = settings.budget_epochs
    epochs = np.arange(1, budget + 1)
    present = [s for s in settings.strategies if any(r.strategy == s for r in results)]
    fig, axes = plt.subplots(
        1, 3, figsize=(17, 5.2), gridspec_kw={"width_ratios": [1.15, 1.15, 0.8]}, constrained_layout=True
    )
    start = budget // 10  # the curves from 10% of the budget on: before, every strategy is near random
    half = budget // 2  # the y range fits the medians from 10% on and the bands from 50% on
    drawn = [s for s in present if s != "ours"] + (["ours"] if "ours" in present else [])  # ours on top
    for ax, key, label in (
        (axes[0], "best_val", "best validation accuracy so far"),
        (axes[1], "incumbent_test", "test accuracy of the incumbent"),
    ):
        lows, highs = [], []
        for strategy in drawn:
            curve = curves(results, strategy, key)
            q25, med, q75 = np.quantile(curve, [0.25, 0.5, 0.75], axis=0)
            width = 2.4 if strategy == "ours" else 1.4
            ax.plot(epochs, med, color=COLOURS[strategy], linewidth=width, label=LABELS[strategy])
            ax.fill_between(epochs, q25, q75, color=COLOURS[strategy], alpha=0.10, linewidth=0)
            lows.append(min(float(np.min(med[start:])), float(np.min(q25[half:]))))
            highs.append(float(np.max(q75)))
        ax.set_xlim(start, budget)
        ax.set_ylim(min(lows) - 0.003, max(highs) + 0.003)
        ax.set_xlabel("epochs trained (all trials of the run together)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: present.index(drawn[i]))
    axes[0].legend([handles[i] for i in order], [labels[i] for i in order], loc="lower right", fontsize=8)
    axes[0].set_title("median and 25-75% of seeds")
    axes[1].set_title("the incumbent's test accuracy (never used to choose)")
    finals = [curves(results, s, "incumbent_test")[:, -1] for s in present]
    axes[2].boxplot(finals, orientation="horizontal", widths=0.6, showfliers=False)
    for i, (strategy, values) in enumerate(zip(present, finals, strict=True), start=1):
        jitter = np.random.default_rng(i).uniform(-0.15, 0.15, len(values))
        axes[2].scatter(values, i + jitter, s=14, color=COLOURS[strategy], zorder=3)
    axes[2].set_yticks(range(1, len(present) + 1), present)
    axes[2].invert_yaxis()
    axes[2].set_xlabel(f"incumbent's test accuracy after {budget} epochs")
    axes[2].set_title("one dot per seed")
    axes[2].grid(alpha=0.3, axis="x")
    seeds = len(settings.seeds)
    fig.suptitle(
        f"Fashion-MNIST 14x14 MLP ({settings.train_images} training images): {budget} epochs per run, "
        f"trials of at most {settings.max_epochs} epochs, {seeds} seeds per strategy"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- report ----------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    from importlib import metadata

    info: dict[str, Any]
    try:
        import common  # benchmarks/common.py: the machine as every benchmark names it

        info = common.machine_info("cpu")
    except Exception:  # an older checkout without it
        import platform

        info = {"platform": platform.platform(), "cpu_count": os.cpu_count()}
    for package in ("optuna", "hydra-core", "smac", "hpbandster", "dehb", "ConfigSpace", "scikit-learn"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = None
    return info


def compare_ours(summary: dict[str, Any], other_path: Path) -> dict[str, Any]:
    """This run's `ours` against another result's `ours`, seed by seed (e.g. a sweeper setting against
    the defaults of the reference run)."""
    other = json.loads(other_path.read_text())
    mine = {r["seed"]: r for r in summary["strategies"]["ours"]["runs"]}
    theirs = {r["seed"]: r for r in other["strategies"]["ours"]["runs"]}
    seeds = sorted(set(mine) & set(theirs))
    out: dict[str, Any] = {
        "other": str(other_path.relative_to(ROOT) if other_path.is_relative_to(ROOT) else other_path),
        "other_ours_overrides": other["settings"].get("ours_overrides", []),
        "seeds": seeds,
    }
    for key in ("final_best_val", "final_incumbent_test"):
        a = np.array([mine[k][key] for k in seeds])
        b = np.array([theirs[k][key] for k in seeds])
        out[key] = {"this_median": float(np.median(a)), "other_median": float(np.median(b)), **paired(a, b)}
    return out


def git_state() -> dict[str, Any]:
    """The commit, and the sweeper's files that differ from it (the sweep ran on the working tree)."""

    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return proc.stdout.strip()

    changed = git("status", "--porcelain", "--", "hydra_plugins", "conf/sweeper").splitlines()
    return {"head": git("rev-parse", "HEAD"), "sweeper_files_changed": [line[3:] for line in changed]}


def print_summary(summary: dict[str, Any], budget: int) -> None:
    print(f"\n{'strategy':11s} {'best val (q25 med q75)':>24s} {'incumbent test':>24s} {'confs':>6s}"
          f" {'reaches random':>15s} {'ours wins (val/test)':>21s}")  # fmt: skip
    for strategy, s in summary["strategies"].items():
        v, t = s["final_best_val"], s["final_incumbent_test"]
        reach = s.get("reaches_random_final_median", {}).get("fraction_of_budget_median_curve")
        vs = s.get("ours_against_this")
        wins = (
            f"{vs['final_best_val']['win_rate']:.2f}/{vs['final_incumbent_test']['win_rate']:.2f}"
            if vs
            else ""
        )
        reached = "never" if reach is None else f"{reach:.0%}"
        print(
            f"{strategy:11s} {v['q25']:.4f} {v['median']:.4f} {v['q75']:.4f}  {t['q25']:.4f}"
            f" {t['median']:.4f} {t['q75']:.4f} {s['median_configurations']:6.0f} {reached:>15s} {wins:>21s}"
        )


def setup() -> None:
    """Create benchmarks/.venv-search: its own site-packages first, then the project venv's."""
    project_site = sysconfig.get_paths()["purelib"]
    if not (Path(project_site) / "optuna").exists():
        sys.exit("error: run --setup with the project's venv (.venv/bin/python)")
    venv.create(BENCH_VENV, with_pip=True, clear=True)
    python = BENCH_VENV / "bin" / "python"
    bench_site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # A .pth line that starts with `import` runs: addsitedir also reads the project's .pth files (its
    # editable install of jahs_bohb and hydra_plugins).
    (Path(bench_site) / "_jahs_bohb_project.pth").write_text(
        f"import site; site.addsitedir({project_site!r})\n"
    )
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, *EXTERNAL_PACKAGES], check=True)
    subprocess.run([*pip, "--no-deps", *EXTERNAL_NO_DEPS], check=True)
    print(f"ready: {python} benchmarks/search_quality.py --quick")


def missing_externals(strategies: Sequence[str]) -> list[str]:
    import importlib.util

    modules = {"smac": "smac", "hpbandster": "hpbandster", "dehb": "dehb"}
    return [s for s in strategies if s in modules and importlib.util.find_spec(modules[s]) is None]


def parse_args(argv: Sequence[str] | None = None) -> tuple[Settings, argparse.Namespace]:
    description, _, epilog = (__doc__ or "").partition("\n\n")
    parser = argparse.ArgumentParser(
        description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--setup", action="store_true", help=f"create {BENCH_VENV.relative_to(ROOT)} and exit"
    )
    parser.add_argument("--quick", action="store_true", help="3 seeds of 135 epochs: a 5-minute look")
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated subset")
    parser.add_argument("--seeds", type=int, default=None, help="N seeds per strategy (default 10)")
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="seeds FIRST..FIRST+N-1 (default 0): rerun on other seeds",
    )
    parser.add_argument("--budget-epochs", type=int, default=None, help="epochs per run (default 27 * 15)")
    parser.add_argument("--max-epochs", type=int, default=27, help="epochs of a full trial (top rung)")
    parser.add_argument("--train-images", type=int, default=1500)
    parser.add_argument("--val-images", type=int, default=1500)
    parser.add_argument("--test-images", type=int, default=None, help="default: all 10k")
    parser.add_argument("--processes", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=None, help="JSON path; the PNG goes next to it")
    parser.add_argument("--resume", action="store_true", help="reuse the runs saved in <name>.runs.jsonl")
    parser.add_argument(
        "--compare-ours-with",
        type=Path,
        default=None,
        metavar="JSON",
        help="another result (e.g. the reference): paired statistics of this run's `ours` against its `ours`",
    )
    parser.add_argument(
        "--ours-override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an override of `ours` only, to try other sweeper settings (repeatable), e.g. "
        "hydra.sweeper.sampler.n_startup_trials=5",
    )
    args = parser.parse_args(argv)
    strategies = tuple(s.strip() for s in args.strategies.split(",") if s.strip())
    if unknown := [s for s in strategies if s not in STRATEGIES]:
        parser.error(f"unknown strategies {unknown}; known: {', '.join(STRATEGIES)}")
    seeds = args.seeds if args.seeds is not None else (3 if args.quick else 10)
    budget = args.budget_epochs if args.budget_epochs is not None else (135 if args.quick else 27 * 15)
    if budget < args.max_epochs:
        parser.error("--budget-epochs must be at least --max-epochs")
    args.out = args.out or (QUICK_OUT if args.quick else REFERENCE_OUT)
    settings = Settings(
        strategies=strategies,
        seeds=tuple(range(args.first_seed, args.first_seed + seeds)),
        budget_epochs=budget,
        max_epochs=args.max_epochs,
        train_images=args.train_images,
        val_images=args.val_images,
        test_images=args.test_images,
        processes=max(1, args.processes),
        ours_overrides=tuple(args.ours_override),
    )
    return settings, args


def main(argv: Sequence[str] | None = None) -> None:
    settings, args = parse_args(argv)
    if args.setup:
        setup()
        return
    if missing := missing_externals(settings.strategies):
        sys.exit(
            f"error: {', '.join(missing)} not installed in {sys.prefix}; set up the benchmark's venv with "
            f"`.venv/bin/python benchmarks/search_quality.py --setup` and run it with "
            f"benchmarks/.venv-search/bin/python (or pass --strategies {','.join(SWEEPER)})"
        )
    print(f"settings: {settings}", flush=True)
    out: Path = args.out
    started, cpu_started = time.perf_counter(), time.process_time()
    load_before, git = os.getloadavg(), git_state()  # the code the runs start with
    previous = json.loads(out.read_text()) if args.resume and out.exists() else {}
    results, ran = run_all(settings, RESULTS_DIR / f"{out.stem}.runs.jsonl", args.resume)
    wall = time.perf_counter() - started
    summary = summarise(results, settings)
    report: dict[str, Any] = {
        "benchmark": "search_quality",
        "settings": {
            **dataclasses.asdict(settings),
            "task": "MLP on Fashion-MNIST 14x14 (2x2 average pooling); validation: a stratified holdout "
            "of the training images; test: the official test images, read only for incumbents",
            "split_seed": mlp_task.SPLIT_SEED,
            "sweeper": sweeper_defaults(),
        },
        "machine": machine() | {"loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "git": git,
        "wall_seconds": round(wall, 1),
        "cpu_seconds_of_runs": round(sum(r.cpu_seconds for r in results), 1),
        "cpu_seconds_of_parent": round(time.process_time() - cpu_started, 1),
        **summary,
    }
    if ran == 0 and "wall_seconds" in previous:  # summarised again: the runs' time and machine stay
        for key in ("machine", "git", "wall_seconds"):
            report[key] = previous[key]
    if args.compare_ours_with is not None and "ours" in summary["strategies"]:
        report["ours_against_other_ours"] = compare_ours(summary, args.compare_ours_with)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    plot(results, settings, out.with_suffix(".png"))
    print_summary(summary, settings.budget_epochs)
    cpu = sum(r.cpu_seconds for r in results)
    wall = report["wall_seconds"]
    print(f"wall {wall:.0f} s, {cpu:.0f} CPU-seconds in the runs; wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
