"""Final evaluation: retrain the best configurations, pick one by validation, test the pick once.

Each evaluation is one more Hydra job through the same launcher, on the sweep's workers, and each keeps
its result in its folder the moment it ends (see _outputs/evaluations.py: a killed final evaluation
resumes where it stopped). One objective: up to `top_k` configurations of the search, never one far
behind the best (see _outputs/candidates.py), are retrained with `final_evaluation.overrides` (e.g. more
epochs, early stopping) in `candidate-<n>/`, side by side; the one whose retraining scores best on the
objective (the validation metric; never the test set) is the pick. Only the pick is then tested, with
`test_overrides` added, in `final/`: a candidate that kept its model (`client.SweepJob.save_model`) is
tested without training again. With `final_evaluation.baseline`, the job's default configuration (with
the sweep's fixed overrides) is trained and tested the same way in `baseline/`. Several objectives: the
picks from the Pareto front (see `_pareto.picks`) are retrained in `final-<trial>/`, beside the
baseline. What each job returns (its objectives and metrics, e.g. `test_acc`) lands in
`final_evaluation.yaml`, with the candidates, those left out, and why the pick won.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import yaml

from hydra_plugins.hydra_bohb_sweeper import names
from hydra_plugins.hydra_bohb_sweeper._outputs import candidates as _candidates
from hydra_plugins.hydra_bohb_sweeper._outputs import pareto as _pareto
from hydra_plugins.hydra_bohb_sweeper._outputs.evaluations import Evaluations, number
from hydra_plugins.hydra_bohb_sweeper._outputs.files import write_yaml
from hydra_plugins.hydra_bohb_sweeper._running.jobs import key_of, merge
from hydra_plugins.hydra_bohb_sweeper._setup.preflight import budget_override
from hydra_plugins.hydra_bohb_sweeper._setup.search_space import SearchSpace
from hydra_plugins.hydra_bohb_sweeper._setup.settings import Settings
from hydra_plugins.hydra_bohb_sweeper._study import view as _view

if TYPE_CHECKING:
    from hydra_plugins.hydra_bohb_sweeper._outputs.ending import SweepEnd

log = logging.getLogger(__name__)
BASELINE_SEARCH = "baseline-search"  # the baseline at the search budget, as the trials were trained


def previous(sweep_dir: Path, chosen: list[int], want_baseline: bool) -> dict[str, Any] | None:
    """The evaluations already written for these candidates (a resumed, finished sweep)."""
    path = sweep_dir / names.FINAL_FILE
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text()) or {}
    incumbent, baseline = data.get("incumbent") or {}, data.get("baseline") or {}
    if [c.get("configuration") for c in data.get("candidates") or []] != chosen:
        return None
    if incumbent.get("state") != names.COMPLETE:
        return None
    if want_baseline and baseline.get("state") != names.COMPLETE:
        return None
    return data


def run(end: SweepEnd) -> dict[str, Any] | None:
    """The final evaluation of a finished sweep, written to final_evaluation.yaml."""
    evaluations = Evaluations(
        end.launcher,
        end.study,
        end.sweep_dir,
        end.settings,
        end.shown_storage,
        end.logging_overrides,
        end.n_workers,
    )
    settings, space = end.settings, end.space
    record = _front(evaluations, space) if settings.multi_objective else _incumbent(evaluations, space)
    if record is not None:
        write_yaml(end.sweep_dir / names.FINAL_FILE, record)
    return record


def _final_overrides(settings: Settings) -> list[str]:
    return list(settings.final_evaluation.get("overrides") or [])


def _baseline_overrides(settings: Settings, space: SearchSpace, extra: Sequence[str] = ()) -> list[str]:
    """The job's default configuration with the sweep's fixed overrides at the search budget, then
    `extra` (the final evaluation's), then the baseline's own overrides, which win over both."""
    own = list(settings.final_evaluation.get("baseline_overrides") or [])
    # A config group the baseline chooses (model=cnn) starts from that choice's defaults: the sweep's
    # fixed overrides inside the group set the searched choice's fields (model.width=8), not its own.
    chosen = tuple(f"{key_of(o)}." for o in own if "." not in key_of(o))
    fixed = [o for o in space.fixed.values() if not key_of(o).startswith(chosen)]
    return merge(merge([*fixed, *budget_override(settings)], extra), own)


def _overrides_of(config: _view.Configuration) -> list[str]:
    return list(config.trials[0].user_attrs.get(names.OVERRIDES_ATTR, []))


def _incumbent(evaluations: Evaluations, space: SearchSpace) -> dict[str, Any] | None:
    study, settings = evaluations.study, evaluations.settings
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    view = _view.view_of(study)
    if not any(c.state == _view.COMPLETE for c in view.configurations.values()):
        log.warning("BOHB: no complete trial, so no final evaluation")
        return None
    top_k = max(1, int(settings.final_evaluation.get("top_k", 1)))
    max_gap = settings.final_evaluation.get("max_gap")
    choice = _candidates.choose(view, maximize, top_k, None if max_gap is None else float(max_gap))
    chosen = choice.chosen
    for left in choice.left_out:
        log.info("BOHB: final evaluation leaves #%d out: %s", left.number, left.why)
    want_baseline = bool(settings.final_evaluation.get("baseline"))
    if (done := previous(evaluations.sweep_dir, [c.number for c in chosen], want_baseline)) is not None:
        log.info("BOHB: final evaluation of #%s already in %s", chosen[0].number, names.FINAL_FILE)
        return done
    extra, test_extra = (
        _final_overrides(settings),
        list(settings.final_evaluation.get("test_overrides") or []),
    )
    log.info(
        "BOHB: final evaluation: %s retrained (%s)%s",
        ", ".join(f"#{c.number}" for c in chosen), " ".join(extra) or "as searched",
        ("; the best of them by the objective is tested" if len(chosen) > 1 else "; then tested")
        if test_extra
        else "",
    )  # fmt: skip
    models = evaluations.sweep_dir.resolve() / "candidate-models"
    jobs = {f"{names.CANDIDATE}-{c.number}": merge(_overrides_of(c), extra) for c in chosen}
    env = {
        f"{names.CANDIDATE}-{c.number}": {
            names.ENV_ROLE: names.CANDIDATE,
            names.ENV_CONFIG: str(c.number),
            **({names.ENV_SAVE_MODEL: str(models / f"{names.CANDIDATE}-{c.number}")} if test_extra else {}),
        }
        for c in chosen
    }
    if want_baseline:
        jobs[names.BASELINE] = merge(_baseline_overrides(settings, space, extra), test_extra)
    records = evaluations.launch(jobs, env)
    scored = [
        (c, records[f"{names.CANDIDATE}-{c.number}"])
        for c in chosen
        if records[f"{names.CANDIDATE}-{c.number}"].get("state") == names.COMPLETE
    ]
    table = [
        {
            "configuration": c.number,
            "search_value": _candidates.search_value(c),
            "search_epochs": c.epochs,
            **records[f"{names.CANDIDATE}-{c.number}"],
        }
        for c in chosen
    ]
    record: dict[str, Any] = {"candidates": table}
    if choice.left_out:
        record["left_out"] = [{"configuration": left.number, "why": left.why} for left in choice.left_out]
    if not scored:
        record["incumbent"] = {"state": names.FAILED, "reason": "every candidate's retraining failed"}
    else:
        sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
        pick, pick_record = min(scored, key=lambda item: sign * float(item[1]["value"]))
        why = (
            f"best {number(float(pick_record['value']))} of {len(scored)} retrained candidates"
            if len(scored) > 1
            else "the only candidate"
        )
        incumbent = {"configuration": pick.number, "best_trial": pick.last.number, "chosen_because": why}
        incumbent["search_value"] = table[chosen.index(pick)]["search_value"]
        if test_extra:
            saved = models / f"{names.CANDIDATE}-{pick.number}"
            test_env = {
                names.ENV_ROLE: names.FINAL,
                names.ENV_CONFIG: str(pick.number),
                **({names.ENV_LOAD_MODEL: str(saved)} if saved.exists() else {}),
            }
            log.info("BOHB: #%d picked (%s); testing it: %s", pick.number, why, " ".join(test_extra))
            tested = evaluations.launch(
                {names.FINAL: merge(merge(_overrides_of(pick), extra), test_extra)}, {names.FINAL: test_env}
            )
            incumbent.update(tested[names.FINAL])
            incumbent["candidate_value"] = pick_record["value"]
        else:
            incumbent.update(pick_record)
        record["incumbent"] = incumbent
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
    jobs[names.BASELINE] = _baseline_overrides(settings, space, extra)
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
