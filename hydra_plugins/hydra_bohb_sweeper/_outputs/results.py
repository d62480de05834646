"""`optimization_results.yaml` and `best_config.yaml` in the sweep directory, rewritten atomically.

The first keys are the official Optuna sweeper's (`name`, `best_params`, `best_value`); the rest say what
the study spent and where the best trial is.
"""

from __future__ import annotations

import shlex
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import optuna

from hydra_plugins.hydra_bohb_sweeper import names
from hydra_plugins.hydra_bohb_sweeper._outputs.files import write_text, write_yaml
from hydra_plugins.hydra_bohb_sweeper._study import view as _view
from hydra_plugins.hydra_bohb_sweeper._study.storage import redact

States = optuna.trial.TrialState


def epochs_trained(trial: optuna.trial.FrozenTrial) -> int:
    """Epochs the trial's job trained: the epochs it reported (a continuation reports only its own)."""
    return len(_view.reported_values(trial))


def run_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that ran (or run): all but the surplus ones, which were never launched."""
    view = _view.view_of(study)
    return [t for t in view.trials if t.number not in view.surplus]


def _fault_ended(trial: optuna.trial.FrozenTrial) -> bool:
    return trial.state == States.FAIL and bool(trial.user_attrs.get(names.FAULT_ATTR))


def summarize(study: optuna.Study, budget: int) -> dict[str, Any]:
    """Configurations by state (n_trials counts configurations, as the quota does; `paused` ones
    stopped at a rung and kept a checkpoint to resume from; `interrupted` ones were ended by a fault
    and resume from where their last trial started), the trials that trained them, and the epochs
    spent, those that faults made a retry train again included."""
    view = _view.view_of(study)
    ran = [t for t in view.trials if t.number not in view.surplus]
    configs = view.configurations.values()
    count = Counter(c.state for c in configs)
    retried = [t for t in ran if _fault_ended(t)] + [
        t for t in view.trials if t.number in _view.retried(view.trials)
    ]
    # Every epoch a job trained counts, a retried trial's included; without pruning every configuration
    # stopped or paused at a rung would have trained the whole budget.
    trained = sum(epochs_trained(t) for t in ran)
    unpruned = sum(budget if c.state in (_view.STOPPED, _view.PAUSED) else c.epochs for c in configs) + sum(
        epochs_trained(t) for t in retried
    )
    # A segment after a configuration's first continues a paused trial (resumed) or a retried one.
    resumed = sum(
        1
        for c in configs
        for before, t in zip(c.trials, c.trials[1:], strict=False)
        if not _fault_ended(before)
    )
    summary = {
        "n_trials": len(configs),
        "n_complete": count[_view.COMPLETE],
        "n_pruned": count[_view.STOPPED] + count[_view.PAUSED],
        "n_paused": count[_view.PAUSED],
        "n_failed": count[_view.FAILED],
        "n_running": count[_view.RUNNING],
        "n_interrupted": count[_view.INTERRUPTED],
        "n_resumed": resumed,
        "n_retried": len(retried),
        "n_surplus": len(view.trials) - len(ran),
    }
    if not trained:  # the jobs report no per-epoch values: nothing to count in epochs
        return summary
    return {
        **summary,
        "budget_epochs": budget,
        "epochs_trained": trained,
        "epochs_retrained_after_faults": sum(epochs_trained(t) for t in retried),
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
    replaced = _view.retried(study.get_trials(deepcopy=False))
    reasons = {}
    for t in run_trials(study):
        if t.state == States.FAIL:
            retried = t.number in replaced or _fault_ended(t)
            reason = t.user_attrs.get(names.FAIL_REASON_ATTR) or (
                "stale: its sweeper stopped" if retried else "no reason recorded"
            )
            reasons[t.number] = f"{reason} (retried)" if retried and "(retried)" not in reason else reason
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
        results["best_configuration"] = _view.config_number(best) if best else None
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
        results["final_evaluation"] = {role: _without_overrides(record) for role, record in final.items()}
    write_yaml(sweep_dir / names.RESULTS_FILE, results)
    return results


def _without_overrides(record: Any) -> Any:
    if isinstance(record, list):  # the candidates of the final pick
        return [_without_overrides(r) for r in record]
    return {k: v for k, v in record.items() if k != "overrides"}


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
    counts = f"{results['n_trials']} configurations ({results['n_complete']} complete, "
    counts += f"{results['n_pruned']} pruned, {results['n_failed']} failed"
    if results.get("n_interrupted"):
        counts += f", {results['n_interrupted']} interrupted"
    counts += f"; {results['n_resumed']} resumed from a pause)" if results.get("n_resumed") else ")"
    if "solutions" in results:
        return f"{counts}; Pareto front of {len(results['solutions'])}"
    if results.get("best_trial") is None:
        return f"{counts}; no complete trial"
    return f"{counts}; best {results['best_value']:.4g} (#{results['best_configuration']})"


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
    write_text(path, header + source.read_text())
    return path
