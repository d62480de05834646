"""The end of a sweep: a list of steps, each given the same `SweepEnd` context.

The steps run in order, whether the sweep finished, stopped or was interrupted; each decides from the
context whether it has anything to do (the final evaluation only after a sweep that finished, say). A
step that fails is logged and the next one still runs: a broken figure never loses the results file.
A new output is one new step in `STEPS`; no other step changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from hydra.plugins.launcher import Launcher
from hydra.utils import get_method

from hydra_plugins.hydra_bohb_sweeper import names
from hydra_plugins.hydra_bohb_sweeper._integrations.sweep_run import SweepRun
from hydra_plugins.hydra_bohb_sweeper._outputs import final as _final
from hydra_plugins.hydra_bohb_sweeper._outputs import pareto as _pareto
from hydra_plugins.hydra_bohb_sweeper._outputs import plots as _plots
from hydra_plugins.hydra_bohb_sweeper._outputs import results as _results
from hydra_plugins.hydra_bohb_sweeper._running import checkpoints as _checkpoints
from hydra_plugins.hydra_bohb_sweeper._running.outcome import one_line
from hydra_plugins.hydra_bohb_sweeper._setup.search_space import SearchSpace
from hydra_plugins.hydra_bohb_sweeper._setup.settings import Settings

log = logging.getLogger("hydra_plugins.hydra_bohb_sweeper._running.loop")  # the sweep's own log lines


@dataclass
class SweepEnd:
    """What every step of the end of a sweep receives, and what the steps leave for the next ones."""

    study: optuna.Study
    settings: Settings
    space: SearchSpace
    sweep_dir: Path
    launcher: Launcher
    storage_url: str  # with its password: for this process only
    shown_storage: str  # as jobs and files may see it (password redacted)
    logging_overrides: list[str]  # what every job of the sweep gets for its logging
    sweep_run: SweepRun
    checkpoints: Path | None  # the sweep's checkpoint folder (None: its scheduler never pauses)
    n_workers: int = 1  # jobs in flight at once: the final evaluation's too
    stop_reason: str | None = None  # None: the sweep finished
    interrupted: str | None = None  # the step that Ctrl-C stopped (the steps after it still run)
    final: dict[str, Any] | None = None  # final_evaluation.yaml, once evaluated
    results: dict[str, Any] = field(default_factory=dict)  # optimization_results.yaml, once written
    files: dict[str, Path] = field(default_factory=dict)  # figures and reports, by name

    @property
    def finished(self) -> bool:
        return self.stop_reason is None


def discard_checkpoints(end: SweepEnd) -> None:
    """Paused configurations that no trial will resume (the sweep finished) lose their checkpoints."""
    if end.finished and end.checkpoints is not None:
        storage = end.study._storage
        study_id = storage.get_study_id_from_name(end.study.study_name)
        _checkpoints.discard_unresumed(storage, study_id, end.checkpoints)


def final_evaluation(end: SweepEnd) -> None:
    if end.finished and end.settings.final_evaluation_enabled:
        end.final = _final.run(end)


def results_file(end: SweepEnd) -> None:
    end.results = _results.write(
        end.study, end.sweep_dir, end.storage_url, end.settings.budget, end.stop_reason, end.final
    )


def figures(end: SweepEnd) -> None:
    if not end.settings.figures:
        return
    if not end.settings.multi_objective:
        end.files.update(_plots.write_figures(end.study, end.sweep_dir))
        return
    final = end.final or {}
    chosen = {name: end.study.trials[record["trial"]] for name, record in final.get("front", {}).items()}
    baseline = final.get(_final.BASELINE_SEARCH, {}).get("value")
    end.files.update(_pareto.write_figure(end.study, end.sweep_dir, chosen, baseline))


def report_hook(end: SweepEnd) -> None:
    """The app's report (sweep_dir, study) -> {name: file}. It gets the open study: the results file
    names the storage without its password, so a hook could not open it from there."""
    if not end.settings.report:
        return
    written = get_method(end.settings.report)(end.sweep_dir, end.study)
    log.info("BOHB: report in %s", written.get("report", end.sweep_dir))
    end.files.update(written)


def wandb_summary(end: SweepEnd) -> None:
    end.sweep_run.finish(end.study, end.results, end.files, failed=not end.finished)


def console_summary(end: SweepEnd) -> None:
    if end.results:
        summary = _results.one_line_summary(end.results)
        log.info("BOHB: %s; results in %s", summary, end.sweep_dir / names.RESULTS_FILE)


Step = Callable[[SweepEnd], None]
STEPS: list[Step] = [
    discard_checkpoints,
    final_evaluation,
    results_file,
    figures,
    report_hook,
    wandb_summary,
    console_summary,
]


def run(end: SweepEnd, steps: list[Step] = STEPS) -> SweepEnd:
    for step in steps:
        try:
            step(end)
        except KeyboardInterrupt:  # what the step finished is kept (see _outputs/evaluations.py)
            end.interrupted = end.interrupted or step.__name__.replace("_", " ")
            log.warning("BOHB: %s interrupted", end.interrupted)
        except Exception as exc:  # one output is never a reason to lose the others
            log.warning("BOHB: %s failed: %s", step.__name__.replace("_", " "), one_line(exc))
    return end
