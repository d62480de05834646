"""What a sweep leaves behind when it ends or stops: the results file, the figures, the app's report,
the W&B sweep run's summary, and one line on the console that says what was found and where."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna
from hydra.utils import get_method

from hydra_plugins.hydra_bohb_sweeper import _final, _pareto, _plots, _results, names
from hydra_plugins.hydra_bohb_sweeper._outcome import one_line
from hydra_plugins.hydra_bohb_sweeper._settings import Settings
from hydra_plugins.hydra_bohb_sweeper._sweep_run import SweepRun

log = logging.getLogger(__name__)


def write(
    study: optuna.Study,
    sweep_dir: Path,
    settings: Settings,
    storage_url: str,
    stop_reason: str | None,
    final: dict[str, Any] | None,
    sweep_run: SweepRun,
) -> dict[str, Any]:
    results = _results.write(study, sweep_dir, storage_url, settings.budget, stop_reason, final)
    figures = _figures(study, sweep_dir, settings, final) if settings.figures else {}
    figures.update(_report(settings.report, sweep_dir, study))
    sweep_run.finish(study, results, figures, failed=stop_reason is not None)
    log.info("BOHB: %s; results in %s", _results.one_line_summary(results), sweep_dir / names.RESULTS_FILE)
    return results


def _figures(
    study: optuna.Study, sweep_dir: Path, settings: Settings, final: dict[str, Any] | None
) -> dict[str, Path]:
    if not settings.multi_objective:
        return _plots.write_figures(study, sweep_dir)
    final = final or {}
    chosen = {name: study.trials[record["trial"]] for name, record in final.get("front", {}).items()}
    baseline = final.get(_final.BASELINE_SEARCH, {}).get("value")
    return _pareto.write_figure(study, sweep_dir, chosen, baseline)


def _report(report: str | None, sweep_dir: Path, study: optuna.Study) -> dict[str, Path]:
    """The app's report hook (sweep_dir, study) -> {name: file}. It gets the open study: the results
    file names the storage without its password, so a hook could not open it from there."""
    if not report:
        return {}
    try:
        written = get_method(report)(sweep_dir, study)
    except Exception as exc:  # a report is a view of the results, never a reason to lose them
        log.warning("BOHB: report %s failed: %s", report, one_line(exc))
        return {}
    log.info("BOHB: report in %s", written.get("report", sweep_dir))
    return dict(written)
