"""The two search spaces under the same sweeper on the CPU: the seed's Table 1 (`experiment=quick`)
against JAHS-Bench-201's cell space (`experiment=cell_quick`), per seed, one right after the other.

Each seed runs both presets as a new user does (`./run.sh sweep experiment=... seed=S
hydra.sweeper.sampler.seed=S`, quick_study_seeds.run_seed) in one checkout, the Table 1 study first,
then the cell study, so that load on the machine falls on both alike. Both presets train on the same
3000-image subset and validate on the same 2000 images, and both final evaluations train and test the
seed's CNN (the study's baseline) the same way, so each seed yields three test accuracies on the 10k
test images: Table 1's incumbent, the cell space's incumbent and the baseline. cell_quick's n_trials is
sized so that its wall time matches quick's (the medians are in the summary; equal wall time is a
sizing, not a stopping rule).

    python benchmarks/search_spaces.py --checkout /tmp/clean-clone --seeds 0 1 2 3 4 \\
        --out benchmarks/reference/search_spaces.json

Writes a JSON list, one entry per seed with both studies' rows, and <out>.summary.json with the
machine, the medians and quartiles of each accuracy and wall time, and the paired differences (cell
minus Table 1, cell minus baseline) with how many seeds the cell space won and a sign-flip test.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
from pathlib import Path
from typing import Any

import common  # the machine's description, as every benchmark records it
from quick_study_seeds import run_seed

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {"table1": "experiment=quick", "cell": "experiment=cell_quick"}


def quartiles(values: list[float]) -> dict[str, float]:
    q1, median, q3 = (
        statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    )
    return {"q1": round(q1, 4), "median": round(median, 4), "q3": round(q3, 4)}


def sign_flip_p(differences: list[float]) -> float:
    """Two-sided exact sign-flip (paired permutation) test of a zero mean difference."""
    observed = abs(sum(differences))
    flips = list(itertools.product((1, -1), repeat=len(differences)))
    extreme = sum(
        abs(sum(s * d for s, d in zip(signs, differences, strict=True))) >= observed - 1e-12
        for signs in flips
    )
    return extreme / len(flips)


def paired(a: list[float], b: list[float]) -> dict[str, Any]:
    differences = [round(100 * (x - y), 2) for x, y in zip(a, b, strict=True)]
    return {
        "differences_points": differences,
        "median_points": statistics.median(differences),
        "wins": sum(d > 0 for d in differences),
        "sign_flip_p": round(sign_flip_p(differences), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the checkout to run ./run.sh in")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "search_spaces.json")
    parser.add_argument("--spaces", nargs="+", choices=list(PRESETS), default=list(PRESETS))
    args = parser.parse_args()
    runs_dir = ROOT / "benchmarks" / "results" / f"{args.out.stem}-runs"  # git-ignored: whole sweeps
    rows: list[dict[str, Any]] = []
    for seed in args.seeds:
        row: dict[str, Any] = {"seed": seed}
        for space in args.spaces:
            out = runs_dir / space
            out.mkdir(parents=True, exist_ok=True)
            row[space] = run_seed(args.checkout.resolve(), seed, out, [PRESETS[space]])
            print(
                f"seed {seed} {space}: incumbent {100 * row[space]['incumbent_test']:.2f}% vs baseline "
                f"{100 * row[space]['baseline_test']:.2f}%, {row[space]['wall_seconds'] / 60:.1f} min",
                flush=True,
            )
        rows.append(row)
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=args.checkout, capture_output=True, text=True
    )
    summary: dict[str, Any] = {
        "machine": common.machine_info("cpu"),
        "checkout": str(args.checkout),
        "git": head.stdout.strip(),
        "seeds": args.seeds,
    }
    for space in args.spaces:
        summary[space] = {
            "incumbent_test": quartiles([r[space]["incumbent_test"] for r in rows]),
            "baseline_test": quartiles([r[space]["baseline_test"] for r in rows]),
            "wall_seconds": quartiles([r[space]["wall_seconds"] for r in rows]),
            "incumbent_parameters": [r[space]["incumbent_parameters"] for r in rows],
        }
    if set(PRESETS) <= set(args.spaces):
        cell = [r["cell"]["incumbent_test"] for r in rows]
        summary["cell_minus_table1"] = paired(cell, [r["table1"]["incumbent_test"] for r in rows])
        summary["cell_minus_baseline"] = paired(cell, [r["cell"]["baseline_test"] for r in rows])
        summary["table1_minus_baseline"] = paired(
            [r["table1"]["incumbent_test"] for r in rows], [r["table1"]["baseline_test"] for r in rows]
        )
    args.out.with_suffix(".summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "machine"}, indent=1))


if __name__ == "__main__":
    main()
