"""Does retraining more candidates make a better final pick? The quick study's final pick at top_k 1, 3, 5.

The search is the expensive part and does not depend on top_k, so each seed's finished sweep (written
by `quick_study_seeds.py`) is copied once per k and the README's command is run again on the copy:

    ./run.sh sweep hydra.sweeper.sampler.seed=S seed=S hydra.sweep.dir=<copy> \\
        hydra.sweeper.final_evaluation.top_k=K

The study in the copy is finished, so the sweeper goes straight to its final evaluation: it retrains the
top K configurations and the baseline, picks the best by validation accuracy, and tests the pick and the
baseline once. A k that the sweep was run with is read from the sweep itself, not run again.

    python benchmarks/final_pick_top_k.py --runs-dir benchmarks/results/quick_study_seeds-runs \\
        --top-k 1 3 5 --out benchmarks/reference/final_pick_top_k.json

Writes a JSON list, one entry per seed and k (the pick, its test accuracy, the baseline's, the
candidates' search and retrained validation accuracy, the command's wall seconds), and
<out>.summary.json: per k, the seeds the pick beat the baseline in, the median margin, and per seed
the test accuracy's difference to k = 1's pick.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path
from typing import Any

import common  # the machine's description, as every benchmark records it
import quick_study_seeds  # the README's command, run per seed
import yaml

ROOT = Path(__file__).resolve().parents[1]
# What a final evaluation wrote into a sweep directory; removed from a copy so it starts afresh.
FINAL_OUTPUTS = ("candidate-*", "candidate-models", "final", "baseline", "final_evaluation.yaml")


def fresh_copy(sweep_dir: Path, copy: Path) -> None:
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(sweep_dir, copy)
    for pattern in FINAL_OUTPUTS:
        for path in copy.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def final_pick(sweep_dir: Path) -> dict[str, Any]:
    final = yaml.safe_load((sweep_dir / "final_evaluation.yaml").read_text())
    incumbent, baseline = final["incumbent"], final["baseline"]
    return {
        "pick": incumbent["configuration"],
        "pick_test": incumbent["metrics"]["test_acc"],
        "baseline_test": baseline["metrics"]["test_acc"],
        "margin_points": round(100 * (incumbent["metrics"]["test_acc"] - baseline["metrics"]["test_acc"]), 2),
        "chosen_because": incumbent.get("chosen_because"),
        "candidates": [
            {
                "configuration": c["configuration"],
                "search_value": c["search_value"],
                "validation": c.get("value"),
            }
            for c in final["candidates"]
        ],
    }


def evaluated_with(sweep_dir: Path, top_k: int) -> bool:
    """Whether the sweep's final evaluation retrained top_k candidates and tested the pick."""
    path = sweep_dir / "final_evaluation.yaml"
    if not path.is_file():
        return False
    final = yaml.safe_load(path.read_text()) or {}
    tested = "test_acc" in ((final.get("incumbent") or {}).get("metrics") or {})
    return tested and len(final.get("candidates") or []) == top_k


def evaluate(
    checkout: Path, sweep_dir: Path, seed: int, top_k: int, copies: Path, reuse: bool
) -> dict[str, Any]:
    copy = (copies / f"seed-{seed}-k{top_k}").resolve()
    done = next((d for d in (sweep_dir, *([copy] if reuse else [])) if evaluated_with(d, top_k)), None)
    wall = None
    if done is None:
        fresh_copy(sweep_dir, copy)
        wall = quick_study_seeds.run_sweep(
            checkout, seed, copy, [f"hydra.sweeper.final_evaluation.top_k={top_k}"],
            copies / f"seed-{seed}-k{top_k}.console.txt",
        )  # fmt: skip
        done = copy
    return {
        "seed": seed,
        "top_k": top_k,
        "wall_seconds": None if wall is None else round(wall, 1),  # None: read, not run
        "source": str(done),
        **final_pick(done),
    }


def summarize(rows: list[dict[str, Any]], ks: list[int]) -> dict[str, Any]:
    by = {(r["seed"], r["top_k"]): r for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    reference = min(ks)
    per_k = {}
    for k in ks:
        mine = [by[s, k] for s in seeds if (s, k) in by]
        margins = [r["margin_points"] for r in mine]
        versus = [
            round(100 * (by[s, k]["pick_test"] - by[s, reference]["pick_test"]), 2)
            for s in seeds
            if (s, k) in by and (s, reference) in by
        ]
        per_k[str(k)] = {
            "wins_over_baseline": sum(m > 0 for m in margins),
            "seeds": len(mine),
            "median_margin_points": statistics.median(margins) if margins else None,
            "median_pick_test": statistics.median(r["pick_test"] for r in mine) if mine else None,
            f"test_points_vs_top_k_{reference}": versus,
            f"picks_unlike_top_k_{reference}": sum(
                by[s, k]["pick"] != by[s, reference]["pick"]
                for s in seeds
                if (s, k) in by and (s, reference) in by
            ),
        }
    return {"machine": common.machine_info("cpu"), "seeds": seeds, "top_k": per_k}


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
    parser.add_argument("--top-k", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument(
        "--reuse", action="store_true",
        help="read a copy that was already evaluated with that k (an interrupted run) instead of running it",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "final_pick_top_k.json")
    args = parser.parse_args()
    missing = [s for s in args.seeds if not (args.runs_dir / f"seed-{s}" / "final_evaluation.yaml").is_file()]
    if missing:
        parser.error(
            f"no finished sweep for seeds {missing} in {args.runs_dir}; run quick_study_seeds.py first"
        )
    copies = ROOT / "benchmarks" / "results" / f"{args.out.stem}-runs"  # git-ignored: whole sweeps
    copies.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        for k in args.top_k:
            rows.append(
                evaluate(args.checkout.resolve(), args.runs_dir / f"seed-{seed}", seed, k, copies, args.reuse)
            )
            # Written as each row lands, so a long run shows its progress and keeps what it measured.
            args.out.write_text(json.dumps(rows, indent=1) + "\n")
            row = rows[-1]
            print(
                f"seed {seed} top_k {k}: pick #{row['pick']} tested {100 * row['pick_test']:.2f}% vs "
                f"baseline {100 * row['baseline_test']:.2f}% ({row['margin_points']:+.2f} points)",
                flush=True,
            )
    summary = summarize(rows, args.top_k)
    args.out.with_suffix(".summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    reference = min(args.top_k)
    for k, s in summary["top_k"].items():
        print(
            f"top_k {k}: beat the baseline in {s['wins_over_baseline']} of {s['seeds']}, median margin "
            f"{s['median_margin_points']:+.2f} points; test points vs top_k {reference}, per seed: "
            f"{s[f'test_points_vs_top_k_{reference}']}"
        )


if __name__ == "__main__":
    main()
