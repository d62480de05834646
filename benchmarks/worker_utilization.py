"""Worker utilisation of a parallel BOHB sweep: busy time / (N workers x sweep wall time).

The sweep runs the cheap app (tests/cheap_app: each epoch sleeps `--epoch-s`, its learning curve gives
Hyperband realistic pruning) through the real command with `hydra/launcher=joblib` and N trials in
flight. Busy time per trial is read from the Optuna study (ask -> tell). The batch-mode figure replays
the same trials the way Hydra's other sweepers schedule them - N at a time, the next batch only when the
slowest of the batch has ended - so the two numbers compare scheduling on identical work.

    python benchmarks/worker_utilization.py --workers 4 --trials 48
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "tests" / "cheap_app" / "cheap_task.py"


def run(sweep_dir: Path, workers: int, trials: int, epoch_s: float) -> optuna.Study:
    command = [
        sys.executable, str(APP), "-m", f"hydra.sweep.dir={sweep_dir}", "hydra/launcher=joblib",
        f"hydra.launcher.n_jobs={workers}", f"hydra.sweeper.n_jobs={workers}",
        f"hydra.sweeper.n_trials={trials}", f"sleep_s={epoch_s}", "hydra.sweeper.max_failure_rate=1.0",
    ]  # fmt: skip
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return optuna.load_study(study_name="cheap", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")


def utilisation(study: optuna.Study, workers: int) -> dict[str, float]:
    trials = [t for t in study.get_trials() if t.datetime_start and t.datetime_complete]
    durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials]  # type: ignore[operator]
    start = min(t.datetime_start for t in trials)  # type: ignore[type-var]
    end = max(t.datetime_complete for t in trials)  # type: ignore[type-var]
    wall = (end - start).total_seconds()
    busy = sum(durations)
    # Batch mode: trials in launch order, N per batch, each batch as long as its slowest trial.
    ordered = [d for _, d in sorted(zip((t.number for t in trials), durations, strict=True))]
    batch_wall = sum(max(ordered[i : i + workers]) for i in range(0, len(ordered), workers))
    return {
        "trials": len(trials),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in trials),
        "busy_s": busy,
        "wall_s": wall,
        "utilisation": busy / (workers * wall),
        "batch_mode_wall_s": batch_wall,
        "batch_mode_utilisation": busy / (workers * batch_wall),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials", type=int, default=48)
    parser.add_argument("--epoch-s", type=float, default=0.25, help="seconds per simulated epoch")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "worker_utilization.json"
    )
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        study = run(Path(tmp) / "sweep", args.workers, args.trials, args.epoch_s)
        result = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "workers": args.workers,
            "epoch_s": args.epoch_s,
            **utilisation(study, args.workers),
        }
    result["speedup_over_batch_mode"] = result["batch_mode_wall_s"] / result["wall_s"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
