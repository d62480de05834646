"""report.md: the report's text, in order (machine, Table 2, the search, BOHB against random search,
Figures 2 and 3 with their captions, links to the sweeper's own figures, the best configuration), and
the sweeper's report hook that writes it for one sweep."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import optuna
import yaml

from hydra_plugins.hydra_bohb_sweeper.names import FAIL_REASON_ATTR
from jahs_bohb.report import figures, tables
from jahs_bohb.report.sweeps import States, Sweep, baseline_of

# The sweeper's own figures in each sweep directory (hydra_plugins/hydra_bohb_sweeper/_outputs/plots.py).
SWEEPER_FIGURES = {
    "best_so_far.png": "the objective of every complete trial and the best so far, against time and "
    "trial number (the sweeper's generic figure)",
    "param_importances.png": "PED-ANOVA importance of each parameter for the objective",
    "parallel_coordinates.html": "interactive parallel coordinates (Plotly; open in a browser)",
}


def write_report(out_dir: Path, bohb: list[Sweep], random: list[Sweep] | None = None) -> dict[str, Path]:
    """report.md + figure2_best_over_time.png + figure3_parallel_coordinates.png in `out_dir`."""
    random = random or []
    out_dir.mkdir(parents=True, exist_ok=True)
    methods = {"BOHB": bohb, **({"Random search": random} if random else {})}
    baseline = baseline_of(bohb)
    files = {
        "figure2_best_over_time": figures.figure_best_over_time(
            methods, out_dir / "figure2_best_over_time.png", baseline
        )
    }
    parallel = figures.parallel_coordinates(bohb)
    if parallel is not None:
        path = out_dir / "figure3_parallel_coordinates.png"
        files["figure3_parallel_coordinates"] = figures.figure_parallel_coordinates(parallel, path)

    devices = sorted({s.device() for s in bohb + random})
    lines = [
        "# BOHB joint architecture and hyperparameter search: report",
        "",
        f"Produced {datetime.now():%Y-%m-%d %H:%M} on: **{', '.join(devices)}**. "
        f"Studies: {', '.join(s.study.study_name for s in bohb + random)}.",
        "",
        "## Table 2: test accuracy",
        "",
        *tables.table2(bohb),
        "",
        "Baseline and incumbents are trained with the same final budget on the same data; the test set "
        "is used only for these final evaluations, never by the search.",
        "",
        "## Search",
        "",
        *tables.search_rows(bohb),
    ]
    if pick_rows := tables.final_pick_rows(bohb):
        lines += [
            "",
            "## The final pick",
            "",
            "The best configurations of the search, retrained with the final budget; only the one with the "
            "best validation accuracy after retraining (the pick) is tested.",
            "",
            *pick_rows,
        ]
    if random:
        lines += [
            "",
            "## BOHB against random search at equal budget",
            "",
            *tables.equal_budget_rows(bohb, random),
        ]
    lines += [
        "",
        "## Figure 2: best validation accuracy so far",
        "",
        figures.best_over_time_caption(len(bohb), baseline),
        "",
        "![Figure 2: best validation accuracy so far](figure2_best_over_time.png)",
        "",
    ]
    if parallel is not None:
        lines += [
            "## Figure 3: parallel coordinates",
            "",
            parallel.caption(),
            "",
            "![Figure 3: parallel coordinates](figure3_parallel_coordinates.png)",
            "",
        ]
    more = [
        f"- [{s.directory.name}/{file}]({os.path.relpath(s.directory / file, out_dir)}): {caption}"
        if len(bohb) > 1
        else f"- [{file}]({os.path.relpath(s.directory / file, out_dir)}): {caption}"
        for s in bohb
        for file, caption in SWEEPER_FIGURES.items()
        if (s.directory / file).is_file()
    ]
    if more:
        lines += ["## The sweeper's figures", "", *more, ""]
    best = max(bohb, key=lambda s: s.results.get("best_value") or 0)
    params, which = best.results.get("best_params", {}), "the search's best"
    if (pick := (best.final.get("incumbent") or {}).get("configuration")) is not None:
        params, which = best.configuration_params(pick), f"the final pick, #{pick}"
    lines += [
        f"## Best configuration ({which})",
        "",
        "```yaml",
        yaml.safe_dump(params).strip(),
        "```",
    ]
    failures = [
        t.user_attrs[FAIL_REASON_ATTR]
        for s in bohb
        for t in s.trials(States.FAIL)
        if FAIL_REASON_ATTR in t.user_attrs
    ]
    if failures:
        lines += ["", f"{len(failures)} failed trials, e.g.: `{failures[0]}`"]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return {"report": report, **files}


def write_sweep_report(sweep_dir: Path, study: optuna.Study) -> dict[str, Path]:
    """The BOHB sweeper's report hook: a one-seed report of `study` in the sweep directory."""
    return write_report(Path(sweep_dir), [Sweep.load(Path(sweep_dir), study=study)])
