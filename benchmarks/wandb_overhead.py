"""W&B's cost per trial: the same small BOHB sweep with W&B (offline) and with `logger=none`.

Both sweeps run the same seeded trials (same sampler seed, subsets, budget) through the real command,
alternating the order over repeats; per-trial time is read from the Optuna study (start -> complete).
The difference of the medians is W&B's overhead per trial (run start, per-epoch logging, finish).

    python benchmarks/wandb_overhead.py --trials 8 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]


def run_sweep(sweep_dir: Path, logger: str, trials: int) -> tuple[float, list[float]]:
    command = [
        sys.executable, "train.py", "-m", "sweeper=bohb", f"logger={logger}",
        f"hydra.sweep.dir={sweep_dir}", f"hydra.sweeper.n_trials={trials}",
        "hydra.sweeper.final_evaluation.enabled=false", "hydra.sweeper.pruner.max_resource=2",
        "data.limit_train=500", "data.limit_val=500", "model.n_conv_layers=1", "model.n_fc_layers=1",
        "model.n_filters_1=tag(log, int(interval(8, 32)))",
    ]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - started
    study = optuna.load_study(study_name="jahs-bohb", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    per_trial = [
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in study.get_trials()
        if t.datetime_complete and t.datetime_start
    ]
    return wall, per_trial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "wandb_overhead.json")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    samples: dict[str, list[float]] = {"wandb": [], "none": []}
    walls: dict[str, list[float]] = {"wandb": [], "none": []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            order = ["wandb", "none"] if repeat % 2 == 0 else ["none", "wandb"]
            for logger in order:
                wall, per_trial = run_sweep(Path(tmp) / f"{logger}-{repeat}", logger, args.trials)
                samples[logger] += per_trial
                walls[logger].append(wall)
                trial_s = statistics.median(per_trial)
                print(f"repeat {repeat} logger={logger}: sweep {wall:.1f} s, median trial {trial_s:.2f} s")

    median = {k: statistics.median(v) for k, v in samples.items()}
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "trials_per_sweep": args.trials,
        "repeats": args.repeats,
        "median_trial_s": median,
        "sweep_wall_s": walls,
        "overhead_per_trial_s": median["wandb"] - median["none"],
        "ratio_wandb_over_none": median["wandb"] / median["none"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
