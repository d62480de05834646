"""`optimization_results.yaml` and `best_config.yaml` in the sweep directory, rewritten atomically."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import optuna
import yaml
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.jahs_bohb_sweeper._budget import SURPLUS_ATTR
from jahs_bohb.optuna_trial import OUTPUT_DIR_ATTR, OVERRIDES_ATTR, TRIAL_NODE, redact

RESULTS_FILE = "optimization_results.yaml"
BEST_CONFIG_FILE = "best_config.yaml"
States = optuna.trial.TrialState
RETRY = optuna.storages.RetryHeartbeatStaleTrialCallback


def epochs_trained(trial: optuna.trial.FrozenTrial) -> int:
    return len(trial.intermediate_values)


def summarize(study: optuna.Study, budget: int) -> dict[str, Any]:
    all_trials = study.get_trials(deepcopy=False)
    surplus = [t for t in all_trials if t.user_attrs.get(SURPLUS_ATTR)]  # never run: not part of the study
    trials = [t for t in all_trials if not t.user_attrs.get(SURPLUS_ATTR)]
    count = {state: sum(t.state == state for t in trials) for state in States}
    trained = sum(epochs_trained(t) for t in trials)
    # An unpruned sweep would have trained every pruned trial to the full budget.
    unpruned = sum(budget if t.state == States.PRUNED else epochs_trained(t) for t in trials)
    return {
        "n_trials": len(trials),
        "n_complete": count[States.COMPLETE],
        "n_pruned": count[States.PRUNED],
        "n_failed": count[States.FAIL],
        "n_running": count[States.RUNNING],
        "n_surplus": len(surplus),
        "budget_epochs": budget,
        "epochs_trained": trained,
        "epochs_unpruned": unpruned,
        "epochs_saved_by_pruning": f"{1 - trained / unpruned:.1%}" if unpruned else "0.0%",
    }


def _best(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


def write(
    study: optuna.Study,
    sweep_dir: Path,
    storage_url: str,
    budget: int,
    stop_reason: str | None = None,
    final: dict[str, Any] | None = None,
) -> dict[str, Any]:
    best = _best(study)
    results: dict[str, Any] = {
        "name": "optuna",
        "best_params": dict(best.params) if best else {},
        "best_value": best.value if best else None,
        "best_trial": best.number if best else None,
        "study_name": study.study_name,
        "storage": redact(storage_url),
        "direction": study.direction.name.lower(),
        **summarize(study, budget),
    }
    if stop_reason:
        results["stopped"] = stop_reason
    if best is not None:
        overrides = [o for o in best.user_attrs.get(OVERRIDES_ATTR, []) if not o.startswith("sweeper=")]
        results["best_overrides"] = overrides
        script = Path(sys.argv[0]).name or "train.py"
        results["retrain_command"] = f"python {script} " + " ".join(shlex.quote(o) for o in overrides)
        best_config = _write_best_config(best, sweep_dir)
        if best_config is not None:
            results["best_config"] = str(best_config)
    retried = {n for t in study.get_trials(deepcopy=False) for n in RETRY.retry_history(t)}
    failures = {
        t.number: t.user_attrs.get("fail_reason")
        or ("stale: its sweeper stopped (retried)" if t.number in retried else "no reason recorded")
        for t in study.get_trials(deepcopy=False, states=(States.FAIL,))
        if not t.user_attrs.get(SURPLUS_ATTR)
    }
    if failures:
        results["fail_reasons"] = failures
    if final is not None:
        results["final_evaluation"] = {
            role: {k: v for k, v in record.items() if k != "overrides"} for role, record in final.items()
        }
    path = sweep_dir / RESULTS_FILE
    _atomic_write(path, yaml.safe_dump(results, sort_keys=False))
    return results


def _write_best_config(best: optuna.trial.FrozenTrial, sweep_dir: Path) -> Path | None:
    """The best trial's full job config, detached from its trial, for `--config-name best_config`."""
    output_dir = best.user_attrs.get(OUTPUT_DIR_ATTR)
    source = Path(output_dir) / ".hydra" / "config.yaml" if output_dir else None
    if source is None or not source.is_file():
        return None
    cfg = OmegaConf.load(source)
    assert isinstance(cfg, DictConfig)
    cfg[TRIAL_NODE] = {"study_name": None, "storage": None, "number": None}
    path = sweep_dir / BEST_CONFIG_FILE
    _atomic_write(
        path,
        "# The best trial's job config: python train.py --config-dir "
        f"{sweep_dir} --config-name best_config\n" + OmegaConf.to_yaml(cfg),
    )
    return path


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
