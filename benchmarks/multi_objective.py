"""Multi-objective BOHB against multi-objective TPE without pruning and random search, at equal epochs.

Every run is the real command, `python train.py -m experiment=quick_mo ...` (accuracy up, parameters
down, over the seed's space at the quick preset's size: 3000 training and 2000 validation images,
9-epoch trials, filters capped at 64, two trials in flight), with 24 MO-BOHB trials per seed (the
preset's 30 would add a quarter to 12-16 minutes per seed here). Per seed, MO-BOHB runs first; the
two strategies without pruning then get the epochs it trained, as full 9-epoch trials. The measure is the
hypervolume dominated by each run's front of (validation accuracy, log10 parameters) against a fixed
reference point (accuracy 0.1 = chance, 10**7 parameters = more than any model of the space), after
every completed trial against the epochs trained so far (anytime curves), and at the common budget.

    python benchmarks/multi_objective.py --seeds 0 1 2 3 4     # 15 sweeps, 12-16 min per seed on 2 cores
    python benchmarks/multi_objective.py --quick               # a few minutes, tiny sizes

Writes benchmarks/reference/multi_objective.json and multi_objective.png (median and quartiles across
seeds); sweep directories go under outputs/benchmarks/multi_objective/.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import common
import numpy as np
import optuna
import yaml

from hydra_plugins.hydra_bohb_sweeper._outputs.pareto import hypervolume
from hydra_plugins.hydra_bohb_sweeper.names import RESULTS_FILE, STORAGE_FILE

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "reference"
REFERENCE = (0.1, 7.0)  # (accuracy, log10 parameters): chance accuracy, a model larger than the space's
DIRECTIONS = ["maximize", "minimize"]
STRATEGIES = {  # key: (label, overrides)
    "mo-bohb": ("MO-BOHB (TPE + Pareto Hyperband)", []),
    "mo-tpe": ("MO-TPE, no pruning", ["hydra/sweeper/pruner=none"]),
    "random": ("Random search", ["hydra/sweeper/sampler=random", "hydra/sweeper/pruner=none"]),
}
BOHB = "mo-bohb"


def run_sweep(sweep_dir: Path, overrides: list[str], log: Path) -> float:
    """The real command; returns its wall time in seconds (the sweep is resumed if it exists)."""
    command = [
        sys.executable,
        "train.py",
        "-m",
        "experiment=quick_mo",
        f"hydra.sweep.dir={sweep_dir}",
        *overrides,
    ]
    started = time.monotonic()
    with log.open("w") as out:
        subprocess.run(command, cwd=ROOT, check=True, stdout=out, stderr=subprocess.STDOUT)
    return time.monotonic() - started


def curve(sweep_dir: Path) -> tuple[list[int], list[float]]:
    """(epochs trained so far, hypervolume so far) after each finished trial, in order of completion."""
    results = yaml.safe_load((sweep_dir / RESULTS_FILE).read_text())
    study = optuna.load_study(
        study_name=results["study_name"], storage=f"sqlite:///{sweep_dir / STORAGE_FILE}"
    )
    trials = sorted(
        (t for t in study.get_trials(deepcopy=False) if t.datetime_complete),
        key=lambda t: t.datetime_complete,  # type: ignore[arg-type,return-value]
    )
    epochs, volumes, points, spent = [], [], [], 0
    for t in trials:
        spent += len(t.user_attrs.get("values_by_epoch", {}))
        if t.state.name == "COMPLETE" and t.values:
            points.append((t.values[0], math.log10(t.values[1])))
        epochs.append(spent)
        volumes.append(hypervolume(points, REFERENCE, DIRECTIONS))
    return epochs, volumes


def at_budget(epochs: list[int], volumes: list[float], budget: float) -> float:
    """The hypervolume of the trials completed once `budget` epochs had been trained."""
    reached = [v for e, v in zip(epochs, volumes, strict=True) if e <= budget]
    return reached[-1] if reached else 0.0


def mean_wall_minutes(by_seed: list[dict[str, Any]]) -> float | None:
    """Over the sweeps run whole in this invocation (resumed ones ran only in part); the machine's other
    load shows here, never in the hypervolumes."""
    walls = [run["wall_s"] for run in by_seed if not run["resumed"]]
    return statistics.mean(walls) / 60 if walls else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--trials", type=int, default=24, help="MO-BOHB's trials per seed (default 24)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: 2 seeds, 6 trials, 400 images")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--runs-dir", type=Path, help="go on in an earlier run's folder: finished sweeps are read, not rerun"
    )
    args = parser.parse_args(argv)
    extra = ["logger=none", "hydra.sweeper.final_evaluation.enabled=false", "hydra.sweeper.report=null"]
    if args.quick:
        args.seeds, args.trials = args.seeds[:2], 6
        extra += ["data.limit_train=400", "data.limit_val=300", "hydra.sweeper.budget=3"]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    runs_dir = args.runs_dir or ROOT / "outputs" / "benchmarks" / "multi_objective" / stamp
    runs_dir.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key in STRATEGIES}
    full_trial = 3 if args.quick else 9
    for seed in args.seeds:
        budget = None
        for key, (label, strategy) in STRATEGIES.items():
            sweep_dir = runs_dir / f"{key}-seed{seed}"
            n_trials = args.trials if key == BOHB else max(1, round(budget / full_trial))  # type: ignore[operator]
            overrides = [
                *extra,
                *strategy,
                f"hydra.sweeper.n_trials={n_trials}",
                f"hydra.sweeper.sampler.seed={seed}",
            ]
            resumed = (sweep_dir / STORAGE_FILE).exists()  # a study to go on with, not just a folder
            wall = run_sweep(sweep_dir, overrides, runs_dir / f"{sweep_dir.name}-{stamp}.log")
            epochs, volumes = curve(sweep_dir)
            budget = budget or epochs[-1]
            runs[key].append(
                {
                    "seed": seed,
                    "wall_s": round(wall, 1),
                    "resumed": resumed,  # wall_s then counts only this run's part
                    "n_trials": n_trials,
                    "epochs": epochs,
                    "hypervolume": volumes,
                }
            )
            print(
                f"{label:34s} seed {seed}: {n_trials} trials, {epochs[-1]} epochs, HV {volumes[-1]:.4f}",
                flush=True,
            )
    budgets = [run["epochs"][-1] for run in runs[BOHB]]
    table: dict[str, dict[str, Any]] = {}
    for key, by_seed in runs.items():
        final = [at_budget(r["epochs"], r["hypervolume"], b) for r, b in zip(by_seed, budgets, strict=True)]
        table[key] = {
            "strategy": STRATEGIES[key][0],
            "hypervolume_median": statistics.median(final),
            "hypervolume_quartiles": [float(np.percentile(final, 25)), float(np.percentile(final, 75))],
            "hypervolume_per_seed": final,
            "wins_vs_random": None,
            "wall_min_mean": mean_wall_minutes(by_seed),
        }
    random_final = table["random"]["hypervolume_per_seed"]
    for name in table:
        mine = table[name]["hypervolume_per_seed"]
        table[name]["wins_vs_random"] = sum(m > r for m, r in zip(mine, random_final, strict=True))
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "multi_objective",
        "when_utc": stamp,
        "machine": common.machine_info("cpu"),
        "quick": args.quick,
        "seeds": args.seeds,
        "reference_point": {"val_acc": REFERENCE[0], "log10_parameters": REFERENCE[1]},
        "epochs_per_seed": budgets,
        "table": table,
        "runs": runs,
    }
    name = "multi_objective_quick" if args.quick else "multi_objective"
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=1))
    figure(runs, budgets, args.out / f"{name}.png")
    for row in table.values():
        low, high = row["hypervolume_quartiles"]
        median = row["hypervolume_median"]
        print(f"{row['strategy']:34s} HV at equal epochs: median {median:.4f} [{low:.4f}, {high:.4f}]")


def figure(runs: dict[str, list[dict[str, Any]]], budgets: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), constrained_layout=True)
    grid = np.linspace(0, min(budgets), 200)
    for color, (key, by_seed) in zip(("C0", "C1", "C2"), runs.items(), strict=False):
        stacked = np.array([[at_budget(r["epochs"], r["hypervolume"], g) for g in grid] for r in by_seed])
        median = np.median(stacked, axis=0)
        ax.plot(grid, median, color=color, label=f"{STRATEGIES[key][0]} (median of {len(by_seed)} seeds)")
        ax.fill_between(
            grid,
            np.percentile(stacked, 25, axis=0),
            np.percentile(stacked, 75, axis=0),
            color=color,
            alpha=0.2,
        )
    ax.set_xlabel("epochs trained")
    ax.set_ylabel("hypervolume of (val. accuracy, log10 parameters)")
    ax.set_title("Accuracy against size at equal epochs (band: 25-75% across seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.savefig(path, dpi=130)
    plt.close(fig)


if __name__ == "__main__":
    main()
