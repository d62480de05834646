"""Study reports in the seed's format: its Table 2 (baseline vs BOHB incumbents on the test set), its
Figures 2 (best validation accuracy so far) and 3 (parallel coordinates), and BOHB against random search
at equal budget. Markdown + PNG; no torch needed. The numbers come from the sweeper's public `analysis`
module, as the sweeper's own figures do.

    sweeps.py          reading one finished sweep back (its files, its study, the baseline)
    tables.py          Table 2, the search of each seed, BOHB against random search
    figures.py         Figures 2 and 3 and their captions
    parallel_axes.py   one axis of Figure 3: its scale, ticks, label, and the `inactive` slot
    markdown.py        report.md, and the sweeper's report hook (`hydra.sweeper.report`)
    __main__.py        python -m jahs_bohb.report outputs/multiseed/bohb-seed*   # existing sweep dirs
"""

from jahs_bohb.report.figures import (
    build_best_over_time,
    build_parallel_coordinates,
    parallel_coordinates,
)
from jahs_bohb.report.markdown import write_report, write_sweep_report
from jahs_bohb.report.sweeps import Baseline, Sweep, baseline_of

__all__ = [
    "Baseline",
    "Sweep",
    "baseline_of",
    "build_best_over_time",
    "build_parallel_coordinates",
    "parallel_coordinates",
    "write_report",
    "write_sweep_report",
]
