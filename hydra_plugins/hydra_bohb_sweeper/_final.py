"""Final evaluation: retrain the best configuration with the final overrides, once.

Each evaluation is one more Hydra job through the same launcher: the best trial's overrides plus
`final_evaluation.overrides` (e.g. more epochs, early stopping, a test-set flag), in the sweep
directory's `final/` subfolder. With `final_evaluation.baseline`, the job's default configuration (with
the sweep's fixed overrides) is run the same way in `baseline/`. What each job returns (its objective
and metrics, e.g. `test_acc`) lands in `final_evaluation.yaml`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import optuna
import yaml
from hydra.plugins.launcher import Launcher

from hydra_plugins.hydra_bohb_sweeper import names
from hydra_plugins.hydra_bohb_sweeper._jobs import identity_overrides, merge
from hydra_plugins.hydra_bohb_sweeper._outcome import one_line, outcome_of
from hydra_plugins.hydra_bohb_sweeper._preflight import budget_override
from hydra_plugins.hydra_bohb_sweeper._search_space import SearchSpace
from hydra_plugins.hydra_bohb_sweeper._settings import Settings
from hydra_plugins.hydra_bohb_sweeper._storage import redact

log = logging.getLogger(__name__)


def previous(sweep_dir: Path, best_trial: int, want_baseline: bool) -> dict[str, Any] | None:
    """The evaluations already written for this best trial (a resumed, finished sweep)."""
    path = sweep_dir / names.FINAL_FILE
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text()) or {}
    incumbent, baseline = data.get("incumbent") or {}, data.get("baseline") or {}
    if incumbent.get("best_trial") != best_trial or incumbent.get("state") != names.COMPLETE:
        return None
    if want_baseline and baseline.get("state") != names.COMPLETE:
        return None
    return data


def evaluation_jobs(
    best: optuna.trial.FrozenTrial, settings: Settings, space: SearchSpace
) -> dict[str, list[str]]:
    """Role -> the overrides of its job (without the job's identity)."""
    extra = list(settings.final_evaluation.get("overrides") or [])
    jobs = {names.FINAL: merge(best.user_attrs.get(names.OVERRIDES_ATTR, []), extra)}
    if settings.final_evaluation.get("baseline"):
        jobs[names.BASELINE] = merge([*space.fixed.values(), *budget_override(settings)], extra)
    return jobs


def _launch(
    launcher: Launcher,
    jobs: dict[str, list[str]],
    identity: dict[str, list[str]],
    job_idx: int,
    sweep_dir: Path,
    objective: str | None,
) -> dict[str, dict[str, Any]]:
    """Launch the evaluations together (in parallel with a process launcher); one record per job."""
    started = time.monotonic()
    roles = list(jobs)
    try:
        returns = launcher.launch(
            [[*jobs[role], *identity[role], f"hydra.sweep.subdir={role}"] for role in roles],
            initial_job_idx=job_idx,
        )
    except Exception as exc:
        failed = {"state": names.FAILED, "reason": one_line(exc)}
        return {role: {"overrides": [redact(o) for o in jobs[role]], **failed} for role in roles}
    elapsed = round(time.monotonic() - started, 1)
    records = {}
    for role, ret in zip(roles, returns, strict=True):
        outcome = outcome_of(ret, objective)
        output_dir = ret.hydra_cfg.hydra.runtime.output_dir if ret.hydra_cfg else sweep_dir / role
        record: dict[str, Any] = {"overrides": [redact(o) for o in jobs[role]], "output_dir": str(output_dir)}
        if outcome.state == optuna.trial.TrialState.COMPLETE:
            record.update(state=names.COMPLETE, value=outcome.value, metrics=outcome.metrics)
        else:
            record.update(state=names.FAILED, reason=outcome.reason)
        record["wall_time_s"] = elapsed  # both jobs together, as the sweep waited for them
        numbers = {"value": outcome.value, **outcome.metrics} if outcome.value is not None else {}
        shown = "  ".join(f"{k} {v:.4g}" for k, v in numbers.items() if isinstance(v, (int, float)))
        log.info("BOHB: %s evaluation %s  %s", role, record["state"], shown or outcome.reason)
        records[role] = record
    return records


def run(
    launcher: Launcher,
    study: optuna.Study,
    sweep_dir: Path,
    settings: Settings,
    space: SearchSpace,
    storage: str,
    logging_overrides: list[str],
) -> dict[str, Any] | None:
    """`storage`: the URL as jobs may see it (password redacted); `logging_overrides`: what every job
    of the sweep gets for its logging."""
    try:
        best = study.best_trial
    except ValueError:
        log.warning("BOHB: no complete trial, so no final evaluation")
        return None
    want_baseline = bool(settings.final_evaluation.get("baseline"))
    if (done := previous(sweep_dir, best.number, want_baseline)) is not None:
        log.info("BOHB: final evaluation of trial %d already in %s", best.number, names.FINAL_FILE)
        return done
    jobs = evaluation_jobs(best, settings, space)
    log.info(
        "BOHB: final evaluation of trial %d: %s",
        best.number,
        " ".join(settings.final_evaluation.get("overrides") or []),
    )
    identity = {
        role: [*identity_overrides(study.study_name, storage, role, settings.budget), *logging_overrides]
        for role in jobs
    }
    records = _launch(
        launcher, jobs, identity, len(study.get_trials(deepcopy=False)), sweep_dir, settings.objective
    )
    record: dict[str, Any] = {
        "incumbent": {"best_trial": best.number, "search_value": best.value, **records[names.FINAL]}
    }
    if names.BASELINE in records:
        record["baseline"] = records[names.BASELINE]
    tmp = sweep_dir / f".{names.FINAL_FILE}.tmp"
    tmp.write_text(yaml.safe_dump(record, sort_keys=False))
    tmp.replace(sweep_dir / names.FINAL_FILE)
    return record
