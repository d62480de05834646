"""W&B's cost per trial: the same small BOHB sweep with W&B (offline) and with `logger=none`.

Both sweeps run the same seeded trials (same sampler seed, subsets, budget) through the real command,
`python train.py -m sweeper=bohb`, alternating the order over repeats; per-trial time is read from the
Optuna study (start -> complete). The difference of the medians is W&B's overhead per trial (run start,
per-epoch logging, finish); the difference of the sweeps' wall times adds the sweep's own W&B run.

    python benchmarks/wandb_overhead.py --trials 6 --repeats 2
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import common

LOGGERS = ("wandb", "none")


def run_once(sweep_dir: Path, logger: str, trials: int) -> tuple[float, list[float]]:
    command = [
        "train.py", "-m", "sweeper=bohb", f"logger={logger}", f"hydra.sweeper.n_trials={trials}",
        "hydra.sweeper.final_evaluation.enabled=false", "hydra.sweeper.budget=2",
        "data.limit_train=500", "data.limit_val=500", "model.n_conv_layers=1", "model.n_fc_layers=1",
        "model.n_filters_1=tag(log, int(interval(8, 32)))",
    ]  # fmt: skip
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    wall, study = common.run_sweep(command, sweep_dir, "jahs-bohb", env=env)
    return wall, list(common.trial_seconds(study).values())


def main() -> None:
    parser = common.parser(__doc__, "wandb_overhead")
    parser.add_argument("--trials", type=int, default=6, help="trials per sweep")
    parser.add_argument("--repeats", type=int, default=2, help="sweeps per logger, alternating the order")
    args = parser.parse_args()

    samples: dict[str, list[float]] = {name: [] for name in LOGGERS}
    walls: dict[str, list[float]] = {name: [] for name in LOGGERS}
    report = common.new_report("seconds per trial and per sweep, W&B offline vs logger=none")
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for logger in LOGGERS if repeat % 2 == 0 else LOGGERS[::-1]:
                wall, per_trial = run_once(Path(tmp) / f"{logger}-{repeat}", logger, args.trials)
                samples[logger] += per_trial
                walls[logger].append(wall)
                trial_s = statistics.median(per_trial)
                print(f"repeat {repeat} logger={logger}: sweep {wall:.1f} s, median trial {trial_s:.2f} s")

    median = {name: statistics.median(v) for name, v in samples.items()}
    sweep = {name: statistics.median(v) for name, v in walls.items()}
    report.update(
        trials_per_sweep=args.trials,
        repeats=args.repeats,
        median_trial_s=median,
        trial_s=samples,
        sweep_wall_s=walls,
        overhead_per_trial_s=median["wandb"] - median["none"],
        ratio_wandb_over_none=median["wandb"] / median["none"],
        overhead_per_sweep_s=sweep["wandb"] - sweep["none"],
    )
    common.write_result(report, args.out)
    print(
        f"W&B: {report['overhead_per_trial_s']:+.2f} s per trial (median {median['wandb']:.2f} s vs "
        f"{median['none']:.2f} s), {report['overhead_per_sweep_s']:+.1f} s per sweep "
        f"on {report['machine']['device_name']}; written to {args.out}"
    )


if __name__ == "__main__":
    main()
