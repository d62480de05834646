"""`optimization_results.yaml` and `best_config.yaml` in the sweep directory, rewritten atomically.

The first keys are the official Optuna sweeper's (`name`, `best_params`, `best_value`); the rest say what
the study spent and where the best trial is.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import optuna
import yaml

from hydra_plugins.hydra_bohb_sweeper import names
from hydra_plugins.hydra_bohb_sweeper._quota import retried, uncounted
from hydra_plugins.hydra_bohb_sweeper._storage import redact

States = optuna.trial.TrialState


def epochs_trained(trial: optuna.trial.FrozenTrial) -> int:
    """Epochs the trial's job reported (per objective vector, with several objectives)."""
    return max(len(trial.intermediate_values), len(trial.user_attrs.get(names.VALUES_BY_EPOCH_ATTR, {})))


def run_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that ran (or run): all but the surplus ones, which were never launched."""
    return [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(names.SURPLUS_ATTR)]


def counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that count towards n_trials: a trial that was retried (its sweeper or its worker
    died) is replaced by its retry."""
    trials = study.get_trials(deepcopy=False)
    left_out = uncounted(trials)
    return [t for t in trials if t.number not in left_out]


def summarize(study: optuna.Study, budget: int) -> dict[str, Any]:
    trials, ran = counted(study), run_trials(study)
    count = {state: sum(t.state == state for t in trials) for state in States}
    # Every epoch a job trained counts, a retried trial's included; an unpruned sweep would have
    # trained every pruned trial to the full budget.
    trained = sum(epochs_trained(t) for t in ran)
    unpruned = sum(budget if t.state == States.PRUNED else epochs_trained(t) for t in ran)
    summary = {
        "n_trials": len(trials),
        "n_complete": count[States.COMPLETE],
        "n_pruned": count[States.PRUNED],
        "n_failed": count[States.FAIL],
        "n_running": count[States.RUNNING],
        "n_retried": len(ran) - len(trials),
        "n_surplus": len(study.get_trials(deepcopy=False)) - len(ran),
    }
    if not trained:  # the jobs report no per-epoch values: nothing to count in epochs
        return summary
    return {
        **summary,
        "budget_epochs": budget,
        "epochs_trained": trained,
        "epochs_unpruned": unpruned,
        "epochs_saved_by_pruning": f"{1 - trained / unpruned:.1%}",
    }


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    if len(study.directions) > 1:
        return None
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


def fail_reasons(study: optuna.Study) -> dict[int, str]:
    """Why each failed trial failed, the retried ones included (their retry counts instead)."""
    replaced = retried(study.get_trials(deepcopy=False))
    reasons = {}
    for t in run_trials(study):
        if t.state == States.FAIL:
            reason = t.user_attrs.get(names.FAIL_REASON_ATTR) or (
                "stale: its sweeper stopped" if t.number in replaced else "no reason recorded"
            )
            reasons[t.number] = f"{reason} (retried)" if t.number in replaced else reason
    return reasons


def write(
    study: optuna.Study,
    sweep_dir: Path,
    storage_url: str,
    budget: int,
    stop_reason: str | None = None,
    final: dict[str, Any] | None = None,
) -> dict[str, Any]:
    best = best_trial(study)
    results: dict[str, Any] = {"name": "optuna"}
    if len(study.directions) > 1:  # the official sweeper's keys for several objectives
        results["solutions"] = solutions(study)
    else:
        results["best_params"] = dict(best.params) if best else {}
        results["best_value"] = best.value if best else None
        results["best_trial"] = best.number if best else None
    results |= {
        "study_name": study.study_name,
        "storage": redact(storage_url),
        "direction": [d.name.lower() for d in study.directions]
        if len(study.directions) > 1
        else study.direction.name.lower(),
        **summarize(study, budget),
    }
    if stop_reason:
        results["stopped"] = stop_reason
    if best is not None:
        if metrics := best.user_attrs.get(names.METRICS_ATTR):
            results["best_metrics"] = metrics
        overrides = best.user_attrs.get(names.OVERRIDES_ATTR, [])
        results["best_overrides"] = overrides
        script = Path(sys.argv[0]).name or "app.py"
        results["retrain_command"] = f"python {script} " + " ".join(shlex.quote(o) for o in overrides)
        if (best_config := _write_best_config(best, sweep_dir, script)) is not None:
            results["best_config"] = str(best_config)
    if failures := fail_reasons(study):
        results["fail_reasons"] = failures
    if final is not None:
        results["final_evaluation"] = {
            role: {k: v for k, v in record.items() if k != "overrides"} for role, record in final.items()
        }
    _atomic_write(sweep_dir / names.RESULTS_FILE, yaml.safe_dump(results, sort_keys=False))
    return results


def solutions(study: optuna.Study) -> list[dict[str, Any]]:
    """The Pareto front: params and values (the official sweeper's keys), the trial and its metrics,
    ordered by the first objective, best first."""
    sign = -1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1
    front = sorted(study.best_trials, key=lambda t: sign * t.values[0])
    return [
        {
            "params": dict(t.params),
            "values": list(t.values),
            "trial": t.number,
            "metrics": t.user_attrs.get(names.METRICS_ATTR, {}),
        }
        for t in front
    ]


def one_line_summary(results: dict[str, Any]) -> str:
    """What the sweep found, for its last console line."""
    counts = f"{results['n_trials']} trials ({results['n_complete']} complete, {results['n_pruned']} pruned, "
    counts += f"{results['n_failed']} failed)"
    if "solutions" in results:
        return f"{counts}; Pareto front of {len(results['solutions'])}"
    if results.get("best_trial") is None:
        return f"{counts}; no complete trial"
    return f"{counts}; best {results['best_value']:.4g} (trial {results['best_trial']})"


def _write_best_config(best: optuna.trial.FrozenTrial, sweep_dir: Path, script: str) -> Path | None:
    """The best trial's full job config (Hydra's saved copy), for `--config-name best_config`."""
    output_dir = best.user_attrs.get(names.OUTPUT_DIR_ATTR)
    source = Path(output_dir) / ".hydra" / "config.yaml" if output_dir else None
    if source is None or not source.is_file():
        return None
    path = sweep_dir / names.BEST_CONFIG_FILE
    header = (
        f"# The best trial's job config: python {script} --config-dir {sweep_dir} --config-name best_config\n"
    )
    _atomic_write(path, header + source.read_text())
    return path


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
