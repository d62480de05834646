"""Final evaluation: retrain the best configuration with the full budget and test it once.

Each evaluation is one more Hydra job through the same launcher: the best trial's overrides plus
`final_evaluation.overrides` (e.g. 50 epochs, early stopping, `evaluate_test=true`), in the sweep
directory's `final/` subfolder. With `final_evaluation.baseline`, the job's default configuration (the
seed's baseline, with the sweep's fixed overrides) is trained the same way in `baseline/`, so the two
test accuracies compare at equal budget and data. Both land in `final_evaluation.yaml`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import yaml
from hydra.plugins.launcher import Launcher

from jahs_bohb.optuna_trial import OVERRIDES_ATTR, TRIAL_NODE, redact

log = logging.getLogger(__name__)
FINAL_FILE = "final_evaluation.yaml"
JOB_RESULT_FILE = "result.yaml"  # what the training job writes in its output directory


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _merge(base: Sequence[str], extra: Sequence[str]) -> list[str]:
    """`extra` wins over `base` key by key (Hydra refuses two overrides of one key)."""
    replaced = {_key(o) for o in extra}
    return [*(o for o in base if _key(o) not in replaced), *extra]


def previous(sweep_dir: Path, best_trial: int, want_baseline: bool) -> dict[str, Any] | None:
    """The evaluations already written for this best trial (a resumed, finished sweep)."""
    path = sweep_dir / FINAL_FILE
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text()) or {}
    incumbent, baseline = data.get("incumbent") or {}, data.get("baseline") or {}
    if incumbent.get("best_trial") != best_trial or incumbent.get("state") != "complete":
        return None
    if want_baseline and baseline.get("state") != "complete":
        return None
    return data


def _evaluate(
    launcher: Launcher, jobs: dict[str, list[str]], job_idx: int, sweep_dir: Path
) -> dict[str, dict[str, Any]]:
    """Launch the evaluations together (in parallel with a process launcher); one record per job."""
    started = time.monotonic()
    names = list(jobs)
    try:
        returns = launcher.launch(
            [[*jobs[name], f"hydra.sweep.subdir={name}"] for name in names], initial_job_idx=job_idx
        )
    except Exception as exc:
        failed = {"state": "failed", "reason": f"{type(exc).__name__}: {exc}"}
        return {name: {"overrides": [redact(o) for o in jobs[name]], **failed} for name in names}
    elapsed = round(time.monotonic() - started, 1)
    records = {}
    for name, ret in zip(names, returns, strict=True):
        record: dict[str, Any] = {"overrides": [redact(o) for o in jobs[name]]}
        value = ret._return_value  # not `return_value`: it prints a traceback banner on failure
        output_dir = Path(ret.hydra_cfg.hydra.runtime.output_dir) if ret.hydra_cfg else sweep_dir / name
        record["output_dir"] = str(output_dir)
        if isinstance(value, BaseException):
            record.update(state="failed", reason=f"{type(value).__name__}: {value}")
        else:
            record.update(state="complete", value=float(value))
            job_result = output_dir / JOB_RESULT_FILE
            if job_result.is_file():
                result = yaml.safe_load(job_result.read_text()) or {}
                result.pop("history", None)
                record["result"] = result
        record["wall_time_s"] = round(float(record.get("result", {}).get("wall_time_s", elapsed)), 1)
        got = record.get("result", {})
        log.info(
            "BOHB: %s evaluation %s: test_acc=%s val_acc_best=%s epochs=%s",
            name, record["state"], got.get("test_acc"), got.get("val_acc_best"), got.get("epochs"),
        )  # fmt: skip
        records[name] = record
    return records


def run(
    launcher: Launcher,
    study: optuna.Study,
    sweep_dir: Path,
    extra_overrides: Sequence[str],
    fixed_overrides: Sequence[str],
    baseline: bool,
) -> dict[str, Any] | None:
    try:
        best = study.best_trial
    except ValueError:
        log.warning("BOHB: no complete trial, so no final evaluation")
        return None
    if (done := previous(sweep_dir, best.number, baseline)) is not None:
        log.info("BOHB: final evaluation of trial %d already in %s", best.number, FINAL_FILE)
        return done
    # Grouped with the study's trials in W&B; no trial number, so nothing reports to Optuna.
    study_tag = [f"{TRIAL_NODE}.study_name={study.study_name}"]
    log.info("BOHB: final evaluation of trial %d: %s", best.number, " ".join(extra_overrides))
    jobs = {"final": _merge(best.user_attrs.get(OVERRIDES_ATTR, []), [*extra_overrides, *study_tag])}
    if baseline:
        jobs["baseline"] = _merge(list(fixed_overrides), [*extra_overrides, *study_tag])
    records = _evaluate(launcher, jobs, len(study.get_trials(deepcopy=False)), sweep_dir)
    record: dict[str, Any] = {
        "incumbent": {"best_trial": best.number, "search_value": best.value, **records["final"]}
    }
    if "baseline" in records:
        record["baseline"] = records["baseline"]
    tmp = sweep_dir / f".{FINAL_FILE}.tmp"
    tmp.write_text(yaml.safe_dump(record, sort_keys=False))
    tmp.replace(sweep_dir / FINAL_FILE)
    return record
