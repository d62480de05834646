"""The quick study, as a new user runs it, over several seeds: does the incumbent beat the baseline?

Each seed runs the README's first command, `./run.sh sweep`, in a checkout (a clean clone, for the
numbers the README states), with the seed as the sampler's and the training's seed:

    ./run.sh sweep hydra.sweeper.sampler.seed=S seed=S hydra.sweep.dir=<out>/seed-S

and reads back its final evaluation: the incumbent (the best of the top-k configurations retrained,
tested once) and the baseline (the seed's CNN, trained and tested the same way), both on the 10k test
images. The first seed pays the set-up (venv, pip, dataset) as a new user does; the command is
idempotent, so later seeds set up nothing. Wall seconds are the whole command's.

    python benchmarks/quick_study_seeds.py --checkout /tmp/clean-clone --seeds 0 1 2 3 4 \\
        --out benchmarks/reference/quick_study_seeds.json

Writes a JSON list, one entry per seed: seed, incumbent_test and baseline_test (fractions),
wall_seconds, the incumbent's overrides and more; plus <out>.summary.json with the machine, the
margins' median and how many seeds the incumbent won.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import common  # the machine's description, as every benchmark records it
import yaml

ROOT = Path(__file__).resolve().parents[1]


def run_sweep(checkout: Path, seed: int, sweep_dir: Path, extra: list[str], console: Path) -> float:
    """`./run.sh sweep` for one seed into sweep_dir, as a user types it; its wall seconds.

    What it printed goes to `console`; a failure ends the benchmark with the path to read."""
    command = [
        "./run.sh", "sweep", f"hydra.sweeper.sampler.seed={seed}", f"seed={seed}",
        f"hydra.sweep.dir={sweep_dir}", *extra,
    ]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=checkout, capture_output=True, text=True)
    wall = time.perf_counter() - started
    console.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(
            f"error: seed {seed}: ./run.sh sweep {' '.join(extra)} exited {proc.returncode}; see {console}"
        )
    return wall


def run_seed(checkout: Path, seed: int, out: Path, extra: list[str]) -> dict[str, Any]:
    sweep_dir = (out / f"seed-{seed}").resolve()
    wall = run_sweep(checkout, seed, sweep_dir, extra, out / f"seed-{seed}.console.txt")
    final = yaml.safe_load((sweep_dir / "final_evaluation.yaml").read_text())
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    incumbent, baseline = final["incumbent"], final["baseline"]
    return {
        "seed": seed,
        "incumbent_test": incumbent["metrics"]["test_acc"],
        "baseline_test": baseline["metrics"]["test_acc"],
        "margin_points": round(100 * (incumbent["metrics"]["test_acc"] - baseline["metrics"]["test_acc"]), 2),
        "wall_seconds": round(wall, 1),
        "incumbent_overrides": incumbent["overrides"],
        "incumbent_validation": incumbent["value"],
        "baseline_validation": baseline["value"],
        "incumbent_parameters": incumbent["metrics"].get("n_parameters"),
        "chosen_because": incumbent.get("chosen_because"),
        "candidates": [
            {
                "configuration": c["configuration"],
                "search_value": c["search_value"],
                "validation": c.get("value"),
            }
            for c in final.get("candidates", [])
        ],
        "configurations": results["n_trials"],
        "resumed": results.get("n_resumed"),
        "epochs_trained": results.get("epochs_trained"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the checkout to run ./run.sh in")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "quick_study_seeds.json"
    )
    parser.add_argument("extra", nargs="*", help="more overrides for every seed (after --)")
    args = parser.parse_args()
    runs_dir = ROOT / "benchmarks" / "results" / f"{args.out.stem}-runs"  # git-ignored: whole sweeps
    runs_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        rows.append(run_seed(args.checkout.resolve(), seed, runs_dir, args.extra))
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
        row = rows[-1]
        print(
            f"seed {seed}: incumbent {100 * row['incumbent_test']:.2f}% vs baseline "
            f"{100 * row['baseline_test']:.2f}% ({row['margin_points']:+.2f} points), "
            f"{row['wall_seconds'] / 60:.1f} min",
            flush=True,
        )
    margins = [r["margin_points"] for r in rows]
    walls = [r["wall_seconds"] for r in rows]
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=args.checkout, capture_output=True, text=True
    )

    summary = {
        "machine": common.machine_info("cpu"),
        "checkout": str(args.checkout),
        "git": head.stdout.strip(),
        "seeds": args.seeds,
        "incumbent_wins": sum(m > 0 for m in margins),
        "median_margin_points": statistics.median(margins),
        "margins_points": margins,
        "wall_seconds": {"median": statistics.median(walls), "min": min(walls), "max": max(walls)},
    }
    args.out.with_suffix(".summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(
        f"incumbent beat the baseline in {summary['incumbent_wins']} of {len(rows)} seeds; median margin "
        f"{summary['median_margin_points']:+.2f} points; wall {summary['wall_seconds']}; "
        f"written to {args.out}"
    )


if __name__ == "__main__":
    main()
