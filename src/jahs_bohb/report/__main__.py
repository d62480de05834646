"""`python -m jahs_bohb.report SWEEP_DIR [SWEEP_DIR ...] [--random DIR ...] [--out DIR]`: report.md and its
figures for finished sweep directories (one per seed), without retraining."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jahs_bohb.report.markdown import write_report
from jahs_bohb.report.sweeps import Sweep


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write report.md for finished BOHB sweep directories.")
    parser.add_argument("sweeps", nargs="+", type=Path, help="BOHB sweep directories (one per seed)")
    parser.add_argument("--random", nargs="*", type=Path, default=[], help="random-search sweep directories")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: the first sweep's)")
    args = parser.parse_args(argv)
    paths = write_report(
        args.out or args.sweeps[0], [Sweep.load(d) for d in args.sweeps], [Sweep.load(d) for d in args.random]
    )
    print(paths["report"])


if __name__ == "__main__":
    main(sys.argv[1:])
