"""Final evaluation: retrain the best configuration with the full budget and test it once.

It is one more Hydra job through the same launcher: the best trial's overrides plus
`final_evaluation.overrides` (e.g. 50 epochs, early stopping, `evaluate_test=true`), in the sweep
directory's `final/` subfolder. Its result lands in `final_evaluation.yaml` beside the search's results.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import optuna
import yaml
from hydra.plugins.launcher import Launcher

from jahs_bohb.optuna_trial import OVERRIDES_ATTR, TRIAL_NODE, redact

log = logging.getLogger(__name__)
FINAL_FILE = "final_evaluation.yaml"
FINAL_SUBDIR = "final"
JOB_RESULT_FILE = "result.yaml"  # what the training job writes in its output directory


def previous(sweep_dir: Path, best_trial: int) -> dict[str, Any] | None:
    """The final evaluation already written for this best trial (a resumed, finished sweep)."""
    path = sweep_dir / FINAL_FILE
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text()) or {}
    return data if data.get("best_trial") == best_trial and data.get("state") == "complete" else None


def run(
    launcher: Launcher, study: optuna.Study, sweep_dir: Path, extra_overrides: list[str], job_idx: int
) -> dict[str, Any] | None:
    try:
        best = study.best_trial
    except ValueError:
        log.warning("BOHB: no complete trial, so no final evaluation")
        return None
    if (done := previous(sweep_dir, best.number)) is not None:
        log.info("BOHB: final evaluation of trial %d already in %s", best.number, FINAL_FILE)
        return done
    replaced = {o.split("=", 1)[0].lstrip("+~") for o in extra_overrides}
    overrides = [
        *(
            o
            for o in best.user_attrs.get(OVERRIDES_ATTR, [])
            if o.split("=", 1)[0].lstrip("+~") not in replaced
        ),
        *extra_overrides,
        f"{TRIAL_NODE}.study_name={study.study_name}",  # groups the run with the study, no pruning
        f"hydra.sweep.subdir={FINAL_SUBDIR}",
    ]
    log.info("BOHB: final evaluation of trial %d: %s", best.number, " ".join(extra_overrides))
    started = time.monotonic()
    record: dict[str, Any] = {
        "best_trial": best.number,
        "search_value": best.value,
        "overrides": [redact(o) for o in overrides if not o.startswith("hydra.")],
    }
    try:
        ret = launcher.launch([overrides], initial_job_idx=job_idx)[0]
        value = ret._return_value  # not `return_value`: it prints a traceback banner on failure
        output_dir = (
            Path(ret.hydra_cfg.hydra.runtime.output_dir) if ret.hydra_cfg else sweep_dir / FINAL_SUBDIR
        )
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
    except Exception as exc:
        record.update(state="failed", reason=f"{type(exc).__name__}: {exc}")
    record["wall_time_s"] = round(time.monotonic() - started, 1)
    tmp = sweep_dir / f".{FINAL_FILE}.tmp"
    tmp.write_text(yaml.safe_dump(record, sort_keys=False))
    tmp.replace(sweep_dir / FINAL_FILE)
    summary = record.get("result", {})
    log.info(
        "BOHB: final evaluation %s: test_acc=%s val_acc_best=%s epochs=%s (%s)",
        record["state"], summary.get("test_acc"), summary.get("val_acc_best"), summary.get("epochs"),
        sweep_dir / FINAL_FILE,
    )  # fmt: skip
    return record
