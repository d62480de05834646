"""The seed study over several sampler seeds, then one report: `python -m jahs_bohb.multiseed`.

For each seed it runs the real command, `python train.py -m <overrides>` (search, then final evaluation
of the incumbent; the baseline once), and - with `--random` - random search without pruning at the same
budget in epochs that BOHB spent for that seed. Then it writes report.md with the seed's Table 2 and
Figures 2 and 3 (see `jahs_bohb.report`) and logs it to a W&B run of job type "report".

    python -m jahs_bohb.multiseed --seeds 0 1 2 --random -- experiment=quick
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import yaml

from hydra_plugins.hydra_bohb_sweeper.names import RESULTS_FILE
from jahs_bohb import report, tracking

ROOT = Path(__file__).resolve().parents[2]


def run_sweep(out_dir: Path, overrides: list[str], log_path: Path) -> None:
    command = [sys.executable, str(ROOT / "train.py"), "-m", *overrides, f"hydra.sweep.dir={out_dir}"]
    print("$ " + " ".join(command[1:]), flush=True)
    with log_path.open("w") as log:
        # `cwd=ROOT` so relative paths in the configs mean what they mean for `python train.py`.
        subprocess.run(command, cwd=ROOT, check=True, stdout=log, stderr=subprocess.STDOUT)


def budget_of(sweep_dir: Path) -> tuple[int, int]:
    """(epochs trained by the sweep, epochs of one full trial)."""
    results = yaml.safe_load((sweep_dir / RESULTS_FILE).read_text())
    return int(results["epochs_trained"]), int(results["budget_epochs"])


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], usage="%(prog)s [options] -- [overrides]"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--random", action="store_true", help="also random search at equal budget per seed")
    parser.add_argument("--out", type=Path, default=None, help="default: outputs/multiseed/<time>")
    parser.add_argument("--wandb-mode", default="auto", help="auto, online, offline or disabled")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every sweep, e.g. experiment=quick")
    args = parser.parse_args(argv)
    out = args.out or ROOT / "outputs" / "multiseed" / f"{datetime.now():%Y-%m-%d_%H-%M-%S}"
    out.mkdir(parents=True, exist_ok=True)
    overrides = args.overrides or ["sweeper=bohb"]

    started = time.monotonic()
    bohb_dirs, random_dirs = [], []
    for i, seed in enumerate(args.seeds):
        sweep_dir = out / f"bohb-seed{seed}"
        run_sweep(
            sweep_dir,
            [
                *overrides,
                f"hydra.sweeper.sampler.seed={seed}",
                f"hydra.sweeper.study_name=bohb-seed{seed}",
                f"hydra.sweeper.final_evaluation.baseline={str(i == 0).lower()}",  # the baseline once
                "hydra.sweeper.report=null",
            ],
            out / f"bohb-seed{seed}.log",
        )
        bohb_dirs.append(sweep_dir)
        if args.random:
            spent, full = budget_of(sweep_dir)  # random search gets the epochs BOHB spent
            random_dir = out / f"random-seed{seed}"
            run_sweep(
                random_dir,
                [
                    *overrides,
                    "hydra/sweeper/sampler=random",
                    "hydra/sweeper/pruner=none",  # keeps pruner.max_resource: trials train it all
                    f"hydra.sweeper.n_trials={max(1, spent // full)}",
                    f"hydra.sweeper.sampler.seed={seed}",
                    f"hydra.sweeper.study_name=random-seed{seed}",
                    "hydra.sweeper.final_evaluation.enabled=false",
                    "hydra.sweeper.report=null",
                ],
                out / f"random-seed{seed}.log",
            )
            random_dirs.append(random_dir)

    bohb = [report.Sweep.load(d) for d in bohb_dirs]
    random = [report.Sweep.load(d) for d in random_dirs]
    files = report.write_report(out, bohb, random)
    total = time.monotonic() - started
    with files["report"].open("a") as f:
        f.write(
            f"\nTotal wall time of this multi-seed study: {total / 60:.1f} min ({len(args.seeds)} seeds"
            f"{', with random search' if random else ''}).\n"
        )
    log_to_wandb(out, files, args.wandb_mode)
    print(files["report"])
    return files["report"]


def log_to_wandb(out: Path, files: dict[str, Path], mode: str) -> None:
    mode = tracking.resolve_mode(mode)
    if mode == "disabled":
        return
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    run = wandb.init(
        project="jahs-bohb", name=f"report-{out.name}", job_type="report", dir=str(out), mode=cast(Any, mode)
    )
    try:
        run.log({name: wandb.Image(str(path)) for name, path in files.items() if path.suffix == ".png"})
        run.save(str(files["report"]), base_path=str(out), policy="now")
    finally:
        run.finish()


if __name__ == "__main__":
    main(sys.argv[1:])
