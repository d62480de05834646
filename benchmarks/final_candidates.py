"""What leaving far-behind configurations out of the final evaluation costs: the quick study's pick with
the rule (`final_evaluation.max_gap`, the default 0.5) against the top 5 however far behind (null).

The search does not depend on the rule, so each seed's finished sweep (written by
`quick_study_seeds.py`, with the rule) is the first arm. Where the rule left a configuration out, a
copy of the sweep runs its final evaluation again without it:

    ./run.sh sweep hydra.sweeper.sampler.seed=S seed=S hydra.sweep.dir=<copy> \\
        hydra.sweeper.final_evaluation.max_gap=null

Where it left nothing out, both arms retrain the same candidates, so the pick is the same by
construction and nothing runs. Paired per seed: the pick, its test accuracy, the candidates retrained.

    python benchmarks/final_candidates.py --runs-dir benchmarks/results/quick_study_seeds-runs \\
        --out benchmarks/reference/final_candidates.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import common  # the machine's description, as every benchmark records it
import quick_study_seeds  # the README's command, run per seed
import yaml
from final_pick_top_k import fresh_copy

ROOT = Path(__file__).resolve().parents[1]


def arm(sweep_dir: Path) -> dict[str, Any]:
    final = yaml.safe_load((sweep_dir / "final_evaluation.yaml").read_text())
    incumbent = final["incumbent"]
    return {
        "pick": incumbent["configuration"],
        "pick_test": incumbent["metrics"]["test_acc"],
        "candidates": [c["configuration"] for c in final["candidates"]],
        "left_out": [c["configuration"] for c in final.get("left_out") or []],
        # The candidates' retraining, one after another (with two workers, two run at once).
        "candidate_seconds": round(sum(c.get("wall_time_s") or 0.0 for c in final["candidates"]), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the checkout to run ./run.sh in")
    parser.add_argument(
        "--runs-dir", type=Path, default=ROOT / "benchmarks" / "results" / "quick_study_seeds-runs",
        help="the finished sweeps, seed-<S>/ each (quick_study_seeds.py writes them)",
    )  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "final_candidates.json")
    args = parser.parse_args()
    copies = ROOT / "benchmarks" / "results" / f"{args.out.stem}-runs"  # git-ignored: whole sweeps
    copies.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        sweep_dir = args.runs_dir / f"seed-{seed}"
        rule = arm(sweep_dir)
        if rule["left_out"]:
            copy = (copies / f"seed-{seed}").resolve()
            fresh_copy(sweep_dir, copy)
            quick_study_seeds.run_sweep(
                args.checkout.resolve(), seed, copy, ["hydra.sweeper.final_evaluation.max_gap=null"],
                copies / f"seed-{seed}.console.txt",
            )  # fmt: skip
            every = {**arm(copy), "ran": True}
        else:
            every = {**rule, "ran": False}  # the same candidates: the same pick
        rows.append(
            {
                "seed": seed,
                "rule": rule,
                "top_k": every,
                "test_points_rule_minus_top_k": round(100 * (rule["pick_test"] - every["pick_test"]), 2),
            }
        )
        print(
            f"seed {seed}: rule #{rule['pick']} {100 * rule['pick_test']:.2f}% of {rule['candidates']} "
            f"(left out {rule['left_out']}); top 5 #{every['pick']} {100 * every['pick_test']:.2f}%",
            flush=True,
        )
    summary = {
        "machine": common.machine_info("cpu"),
        "seeds": args.seeds,
        "picks_changed": sum(r["rule"]["pick"] != r["top_k"]["pick"] for r in rows),
        "test_points_rule_minus_top_k": [r["test_points_rule_minus_top_k"] for r in rows],
        "candidates_rule": [len(r["rule"]["candidates"]) for r in rows],
        "candidates_top_k": [len(r["top_k"]["candidates"]) for r in rows],
        "rows": rows,
    }
    args.out.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
