"""Final evaluation: retrain the best configuration with the final overrides, once.

Each evaluation is one more Hydra job through the same launcher: the best trial's overrides plus
`final_evaluation.overrides` (e.g. more epochs, early stopping, a test-set flag), in the sweep
directory's `final/` subfolder. With `final_evaluation.baseline`, the job's default configuration (with
the sweep's fixed overrides) is run the same way in `baseline/`. With several objectives, the picks
from the Pareto front (see `_pareto.picks`) are retrained in `final-<trial>/`, beside the baseline.
What each job returns (its objectives and metrics, e.g. `test_acc`) lands in `final_evaluation.yaml`.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

import optuna
import yaml
from hydra.plugins.launcher import Launcher

from hydra_plugins.hydra_bohb_sweeper import _pareto, names
from hydra_plugins.hydra_bohb_sweeper._jobs import identity_overrides, merge
from hydra_plugins.hydra_bohb_sweeper._outcome import one_line, outcome_of
from hydra_plugins.hydra_bohb_sweeper._preflight import budget_override
from hydra_plugins.hydra_bohb_sweeper._search_space import SearchSpace
from hydra_plugins.hydra_bohb_sweeper._settings import Settings
from hydra_plugins.hydra_bohb_sweeper._storage import redact

log = logging.getLogger(__name__)
BASELINE_SEARCH = "baseline-search"  # the baseline at the search budget, as the trials were trained


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


class Evaluations:
    """Launches evaluation jobs through the sweep's launcher; one record per job, by role."""

    def __init__(
        self, launcher: Launcher, study: optuna.Study, sweep_dir: Path, settings: Settings, storage: str,
        logging_overrides: list[str],
    ) -> None:  # fmt: skip
        self.launcher, self.study, self.sweep_dir, self.settings = launcher, study, sweep_dir, settings
        self.storage, self.logging_overrides = storage, logging_overrides
        self.job_idx = len(study.get_trials(deepcopy=False))

    def launch(self, jobs: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
        """Role -> overrides; the jobs run together (in parallel with a process launcher)."""
        roles = list(jobs)
        batch = [
            [
                *jobs[role],
                *identity_overrides(self.study.study_name, self.storage, role, self.settings.budget),
                *self.logging_overrides,
                f"hydra.sweep.subdir={role}",
            ]
            for role in roles
        ]
        started = time.monotonic()
        try:
            returns = self.launcher.launch(batch, initial_job_idx=self.job_idx)
        except Exception as exc:
            failed = {"state": names.FAILED, "reason": one_line(exc)}
            return {role: {"overrides": [redact(o) for o in jobs[role]], **failed} for role in roles}
        finally:
            self.job_idx += len(batch)
        elapsed = round(time.monotonic() - started, 1)
        records = {}
        for role, ret in zip(roles, returns, strict=True):
            outcome = outcome_of(ret, self.settings.objectives, len(self.settings.directions))
            output_dir = ret.hydra_cfg.hydra.runtime.output_dir if ret.hydra_cfg else self.sweep_dir / role
            record: dict[str, Any] = {
                "overrides": [redact(o) for o in jobs[role]],
                "output_dir": str(output_dir),
            }
            if outcome.state == optuna.trial.TrialState.COMPLETE:
                value = outcome.values if self.settings.multi_objective else outcome.value
                record.update(state=names.COMPLETE, value=value, metrics=outcome.metrics)
            else:
                record.update(state=names.FAILED, reason=outcome.reason)
            record["wall_time_s"] = elapsed  # the jobs together, as the sweep waited for them
            numbers = dict(zip(self._value_names(), outcome.values or [], strict=False)) | outcome.metrics
            shown = "  ".join(f"{k} {_number(v)}" for k, v in numbers.items() if isinstance(v, (int, float)))
            log.info("BOHB: %s evaluation %s  %s", role, record["state"], shown or outcome.reason)
            records[role] = record
        return records

    def _value_names(self) -> list[str]:
        return self.settings.objectives or ["value"] * len(self.settings.directions)


def _number(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) and not value.is_integer() else f"{int(value)}"


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
    evaluations = Evaluations(launcher, study, sweep_dir, settings, storage, logging_overrides)
    record = _front(evaluations, space) if settings.multi_objective else _incumbent(evaluations, space)
    if record is not None:
        tmp = sweep_dir / f".{names.FINAL_FILE}.tmp"
        tmp.write_text(yaml.safe_dump(record, sort_keys=False))
        tmp.replace(sweep_dir / names.FINAL_FILE)
    return record


def _final_overrides(settings: Settings) -> list[str]:
    return list(settings.final_evaluation.get("overrides") or [])


def _baseline_overrides(settings: Settings, space: SearchSpace) -> list[str]:
    """The job's default configuration with the sweep's fixed overrides, at the search budget."""
    return [*space.fixed.values(), *budget_override(settings)]


def _incumbent(evaluations: Evaluations, space: SearchSpace) -> dict[str, Any] | None:
    study, settings = evaluations.study, evaluations.settings
    try:
        best = study.best_trial
    except ValueError:
        log.warning("BOHB: no complete trial, so no final evaluation")
        return None
    want_baseline = bool(settings.final_evaluation.get("baseline"))
    if (done := previous(evaluations.sweep_dir, best.number, want_baseline)) is not None:
        log.info("BOHB: final evaluation of trial %d already in %s", best.number, names.FINAL_FILE)
        return done
    extra = _final_overrides(settings)
    log.info("BOHB: final evaluation of trial %d: %s", best.number, " ".join(extra))
    jobs = {names.FINAL: merge(best.user_attrs.get(names.OVERRIDES_ATTR, []), extra)}
    if want_baseline:
        jobs[names.BASELINE] = merge(_baseline_overrides(settings, space), extra)
    records = evaluations.launch(jobs)
    record: dict[str, Any] = {
        "incumbent": {"best_trial": best.number, "search_value": best.value, **records[names.FINAL]}
    }
    if names.BASELINE in records:
        record["baseline"] = records[names.BASELINE]
    return record


def _front(evaluations: Evaluations, space: SearchSpace) -> dict[str, Any] | None:
    """Several objectives: retrain the front's picks (see _pareto.picks) and the baseline. The baseline
    also runs once at the search budget, so that "beats the baseline" compares like with like."""
    study, settings = evaluations.study, evaluations.settings
    front = study.best_trials
    if not front:
        log.warning("BOHB: no complete trial, so no final evaluation")
        return None
    extra = _final_overrides(settings)
    tolerance = float(settings.final_evaluation.get("tolerance", 0.005))
    chosen = _pareto.picks(front, study.directions, tolerance)
    jobs = {
        f"{names.FINAL}-{t.number}": merge(t.user_attrs.get(names.OVERRIDES_ATTR, []), extra)
        for t in chosen.values()
    }
    jobs[BASELINE_SEARCH] = _baseline_overrides(settings, space)
    jobs[names.BASELINE] = merge(_baseline_overrides(settings, space), extra)
    numbers = ", ".join(dict.fromkeys(str(t.number) for t in chosen.values()))
    log.info("BOHB: final evaluation of trials %s (front of %d): %s", numbers, len(front), " ".join(extra))
    records = evaluations.launch(jobs)
    baseline = records[BASELINE_SEARCH].get("value")
    chosen = _pareto.picks(front, study.directions, tolerance, baseline)
    if (
        pick := chosen.get(_pareto.BEATS_BASELINE)
    ) is not None and f"{names.FINAL}-{pick.number}" not in records:
        role = f"{names.FINAL}-{pick.number}"
        records.update(
            evaluations.launch({role: merge(pick.user_attrs.get(names.OVERRIDES_ATTR, []), extra)})
        )
    return {
        "front": {
            name: {
                "trial": t.number,
                "search_values": list(t.values),
                **copy.deepcopy(records[f"{names.FINAL}-{t.number}"]),
            }
            for name, t in chosen.items()
        },
        "baseline": records[names.BASELINE],
        BASELINE_SEARCH: records[BASELINE_SEARCH],
    }
