"""Worker utilisation of a parallel BOHB sweep: busy time / (N workers x sweep wall time).

The sweep runs the cheap app (tests/cheap_app: each epoch sleeps `--epoch-s`, its learning curve gives
Hyperband realistic pruning; it returns {acc, ...} with `hydra.sweeper.objective=acc`) through the real
command with `hydra/launcher=joblib` and N trials in flight. Busy time per trial is read from the Optuna
study (start -> complete). The batch-mode figure replays the same trials the way Hydra's other sweepers
schedule them - N at a time, the next batch only when the slowest of the batch has ended - so the two
numbers compare scheduling on identical work.

    python benchmarks/worker_utilization.py --workers 4 --trials 48
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import common

APP = Path("tests") / "cheap_app" / "cheap_task.py"


def utilisation(study: Any, workers: int) -> dict[str, Any]:
    seconds = common.trial_seconds(study)
    trials = [t for t in study.get_trials(deepcopy=False) if t.number in seconds]
    wall = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    busy = sum(seconds.values())
    # Batch mode: trials in launch order, N per batch, each batch as long as its slowest trial.
    ordered = [seconds[n] for n in sorted(seconds)]
    batch_wall = sum(max(ordered[i : i + workers]) for i in range(0, len(ordered), workers))
    return {
        "trials": len(trials),
        "pruned": sum(t.state.name == "PRUNED" for t in trials),
        "busy_s": busy,
        "wall_s": wall,
        "utilisation": busy / (workers * wall),
        "batch_mode_wall_s": batch_wall,
        "batch_mode_utilisation": busy / (workers * batch_wall),
        "speedup_over_batch_mode": batch_wall / wall,
    }


def main() -> None:
    parser = common.parser(__doc__, "worker_utilization")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--trials", type=int, default=48)
    parser.add_argument("--epoch-s", type=float, default=0.25, help="seconds per simulated epoch")
    args = parser.parse_args()
    command = [
        str(APP), "-m", "hydra/launcher=joblib", f"hydra.launcher.n_jobs={args.workers}",
        f"hydra.sweeper.n_jobs={args.workers}", f"hydra.sweeper.n_trials={args.trials}",
        f"sleep_s={args.epoch_s}", "hydra.sweeper.max_failure_rate=1.0",
    ]  # fmt: skip
    report = common.new_report("busy time / (workers x wall time) of a joblib sweep vs batch scheduling")
    with tempfile.TemporaryDirectory() as tmp:
        _, study = common.run_sweep(command, Path(tmp) / "sweep", "cheap")
        report.update(workers=args.workers, epoch_s=args.epoch_s, **utilisation(study, args.workers))
    common.write_result(report, args.out)
    print(
        f"{args.workers} workers: {report['utilisation']:.1%} vs {report['batch_mode_utilisation']:.1%} in "
        f"batches ({report['speedup_over_batch_mode']:.2f}x less time; {report['trials']} trials, "
        f"{report['pruned']} pruned) on {report['machine']['device_name']}; written to {args.out}"
    )


if __name__ == "__main__":
    main()
