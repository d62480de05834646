"""The sweeper's parts, one at a time, on real Optuna studies (in memory or SQLite): settings, what a job
returns, the overrides and identity a job receives, the trial quota shared by sweepers, the results
file, and the client API a job uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from sweeps import act_as_trial

from hydra_plugins.hydra_bohb_sweeper import client, names, wandb_mode
from hydra_plugins.hydra_bohb_sweeper._outputs import results as _results
from hydra_plugins.hydra_bohb_sweeper._running.heartbeats import Heartbeats
from hydra_plugins.hydra_bohb_sweeper._running.jobs import identity_overrides, is_identity, merge
from hydra_plugins.hydra_bohb_sweeper._running.outcome import outcome_of_value
from hydra_plugins.hydra_bohb_sweeper._setup.settings import SweepConfigError, check_settings
from hydra_plugins.hydra_bohb_sweeper._study import scheduling as _scheduling
from hydra_plugins.hydra_bohb_sweeper._study import view as _view
from hydra_plugins.hydra_bohb_sweeper._study.storage import has_password, redact, resolve_url
from hydra_plugins.hydra_bohb_sweeper.config import BOHBSweeperConf

States = optuna.trial.TrialState
optuna.logging.set_verbosity(optuna.logging.WARNING)
HYPERBAND = {"_target_": "hydra_plugins.hydra_bohb_sweeper._study.scheduling.Hyperband", "min_resource": 1}
TPE = {"_target_": "optuna.samplers.TPESampler", "seed": 0}


def settings(**changes: Any) -> dict[str, Any]:
    """The constructor arguments of a sweeper with the official defaults, changed where given."""
    conf = OmegaConf.to_container(OmegaConf.structured(BOHBSweeperConf), throw_on_missing=False)
    assert isinstance(conf, dict)
    defaults = {str(k): v for k, v in conf.items() if not str(k).startswith("_")}
    return {**defaults, "sampler": TPE, "pruner": HYPERBAND, "budget": 9, **changes}


# --- settings -------------------------------------------------------------------------------------


def test_defaults_serve_any_app() -> None:
    checked = check_settings(settings(), job_name="toy")
    assert checked.study_name == "toy"  # null: the app's job name
    assert checked.budget == 9
    assert checked.scheduler.record() == {
        "name": "hyperband", "budget": 9, "min_resource": 1, "reduction_factor": 3, "brackets": 2,
        "mode": "promotion",
    }  # fmt: skip
    assert checked.budget_key is None and checked.tracking_key is None and checked.objectives is None
    # The official sweeper's default; a resumed study keeps its own (tests/test_migration.py).
    assert checked.directions == ["minimize"] and not checked.multi_objective and not checked.direction_given
    assert checked.report is None and checked.preflight_check is None
    assert not checked.final_evaluation_enabled
    assert checked.n_trials == 20 and checked.direction == "minimize"


def test_the_budget_set_as_max_resource_still_works() -> None:
    checked = check_settings(settings(budget=None, pruner={**HYPERBAND, "max_resource": 27}), "toy")
    assert checked.budget == 27 and checked.scheduler.record()["budget"] == 27  # type: ignore[index]
    assert check_settings(settings(budget=None, pruner=HYPERBAND), "toy").budget == 27  # the default


def test_any_optuna_pruner_still_prunes_one_objective() -> None:
    checked = check_settings(settings(pruner={"_target_": "optuna.pruners.MedianPruner"}), "toy")
    assert checked.scheduler.record() == {
        "name": "optuna",
        "pruner": {"_target_": "optuna.pruners.MedianPruner"},
    }
    assert not checked.scheduler.pauses


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"n_trials": -1}, "n_trials=-1 must be a positive integer"),
        ({"budget": 0}, "hydra.sweeper.budget"),
        ({"pruner": {**HYPERBAND, "min_resource": 0}}, "min_resource=0"),
        (
            {"pruner": {**HYPERBAND, "max_resource": 27}},
            "max_resource=27 and hydra.sweeper.budget=9 disagree",
        ),
        ({"pruner": {**HYPERBAND, "bootstrap_count": 2}}, "bootstrap_count is gone"),
        ({"pruner": {**HYPERBAND, "brackets": 9}}, "1 to 3 brackets"),
        (
            {"pruner": {"_target_": "optuna.pruners.MedianPruner"}, "direction": ["maximize", "minimize"]},
            "cannot prune a study with several objectives",
        ),
        ({"pruner": {"_target_": "optuna.pruners.MedianPruner", "no_such_arg": 1}}, "no_such_arg"),
        ({"sampler": {"_target_": "optuna.samplers.NoSuch"}}, "sampler._target_=optuna.samplers.NoSuch"),
    ],
)
def test_bad_settings_are_refused_in_one_line(changes: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SweepConfigError) as refused:
        check_settings(settings(**changes), job_name="toy")
    assert fragment in str(refused.value) and "\n" not in str(refused.value)


# --- what a job returns ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("returned", "objective", "state", "value", "metrics", "reason"),
    [
        (0.5, None, States.COMPLETE, 0.5, {}, None),
        (np.float32(0.25), None, States.COMPLETE, 0.25, {}, None),
        (float("nan"), None, States.FAIL, None, {}, "job returned nan"),
        ("high", None, States.FAIL, None, {}, "job returned 'high', not a number"),
        (
            {"acc": 0.9, "n_parameters": np.int64(1200), "device": "cpu", "history": [1, 2]},
            ["acc"], States.COMPLETE, 0.9, {"n_parameters": 1200, "device": "cpu"}, None,
        ),
        ({"acc": float("inf"), "epochs": 3}, ["acc"], States.FAIL, None, {"epochs": 3}, "job returned inf"),
        ({"acc": 0.9}, None, States.FAIL, None, {}, "job returned a mapping (acc); set hydra.sweeper"),
        ({"loss": 0.1}, ["acc"], States.FAIL, None, {}, "job returned no 'acc' (hydra.sweeper.objective)"),
    ],
)  # fmt: skip
def test_a_return_value_becomes_an_outcome(
    returned: Any,
    objective: list[str] | None,
    state: Any,
    value: float | None,
    metrics: dict,
    reason: str | None,
) -> None:
    outcome = outcome_of_value(returned, objective)
    assert (outcome.state, outcome.value, outcome.metrics) == (state, value, metrics)
    assert (outcome.reason is None) == (reason is None)
    if reason is not None:
        assert outcome.reason is not None and outcome.reason.startswith(reason)


# --- what a job receives --------------------------------------------------------------------------


def test_identity_travels_as_environment_that_hydra_parses_back_to_strings() -> None:
    storage = "postgresql://user:***@db-host:5432/optuna?sslmode=require"
    overrides = identity_overrides("my study's name", storage, names.TRIAL, 27, trial_number=3)
    assert all(is_identity(o) for o in overrides)
    parsed = {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(overrides)}
    assert parsed == {
        f"hydra.job.env_set.{names.ENV_STUDY}": "my study's name",
        f"hydra.job.env_set.{names.ENV_STORAGE}": storage,
        f"hydra.job.env_set.{names.ENV_ROLE}": "trial",
        f"hydra.job.env_set.{names.ENV_BUDGET}": "27",
        f"hydra.job.env_set.{names.ENV_TRIAL}": "3",
    }
    # An evaluation after the search has no trial.
    assert not any(names.ENV_TRIAL in o for o in identity_overrides("s", "sqlite:///x.db", names.FINAL, 27))


def test_merge_lets_later_overrides_win_key_by_key() -> None:
    base = ["model.lr=0.1", "+extra=1", "trainer.max_epochs=9", "data.flip=true"]
    assert merge(base, ["trainer.max_epochs=50", "++extra=2", "evaluate_test=true"]) == [
        "model.lr=0.1", "data.flip=true", "trainer.max_epochs=50", "++extra=2", "evaluate_test=true",
    ]  # fmt: skip


def test_passwords_are_redacted_and_restored_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql://jahs:s3cr:et/x@127.0.0.1:5432/db"
    shown = redact(url)
    assert shown == "postgresql://jahs:***@127.0.0.1:5432/db"
    assert has_password(url) and not has_password(shown)
    monkeypatch.delenv(names.ENV_STORAGE_SECRET, raising=False)
    with pytest.raises(ValueError, match=names.ENV_STORAGE_SECRET):
        resolve_url(str(shown))
    monkeypatch.setenv(names.ENV_STORAGE_SECRET, url)
    assert resolve_url(str(shown)) == url


# --- the trial quota and what a free worker does ---------------------------------------------------


def study_with(states: list[Any], n_trials: int) -> tuple[optuna.Study, _view.StudyView]:
    study = optuna.create_study(study_name="quota")
    for state in states:
        trial = study.ask()
        if state != States.RUNNING:
            study.tell(trial, 1.0 if state == States.COMPLETE else None, state=state)
    return study, view_of(study, n_trials)


def view_of(study: optuna.Study, n_trials: int) -> _view.StudyView:
    storage = study._storage
    return _view.StudyView.read(storage, storage.get_study_id_from_name(study.study_name), n_trials)


NO_PRUNING, PROMOTION = _scheduling.NoPruning(), _scheduling.Hyperband(budget=9)


def test_the_quota_counts_configurations_of_every_sweeper() -> None:
    _, view = study_with([States.COMPLETE, States.PRUNED, States.FAIL], n_trials=5)
    assert NO_PRUNING.next_step(view).kind == _scheduling.NEW
    _, view = study_with([States.COMPLETE, States.PRUNED, States.RUNNING, States.RUNNING], n_trials=4)
    assert len(view.configurations) == 4 and len(view.running) == 2
    # The last two run in this sweeper: when they end, its workers see to what follows.
    assert NO_PRUNING.next_step(view, own={2, 3}).kind == _scheduling.DONE
    # They run in another sweeper, which may die: then this one retries them, so it waits.
    assert NO_PRUNING.next_step(view).kind == _scheduling.WAIT


def paused_study(values: list[float], path: str = "/elsewhere") -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for value in values:
        trial = study.ask()
        trial.set_user_attr(names.CONFIG_ATTR, trial.number)
        trial.report(value, 1)
        trial.set_user_attr(names.PAUSED_ATTR, {"epoch": 1, "path": path})
        study.tell(trial, state=States.PRUNED)
    return study


def test_a_free_worker_resumes_a_promoted_configuration_before_it_starts_a_new_one(tmp_path: Path) -> None:
    checkpoint = tmp_path / "epoch-1.ckpt"
    checkpoint.write_text("state")
    study = paused_study([0.9, 0.4, 0.5], path=str(checkpoint))
    step = PROMOTION.next_step(view_of(study, n_trials=10))
    assert step.kind == _scheduling.PROMOTE and step.config is not None and step.config.number == 0
    assert not step.to_budget
    checkpoint.unlink()  # its checkpoint is on another machine's disk
    assert PROMOTION.next_step(view_of(study, n_trials=10)).kind == _scheduling.NEW


def test_once_the_quota_is_spent_a_bracket_nobody_finished_closes_with_its_best(tmp_path: Path) -> None:
    checkpoint = tmp_path / "epoch-1.ckpt"
    checkpoint.write_text("state")
    study = paused_study([0.4, 0.9], path=str(checkpoint))  # two at rung 1: nobody is promoted
    step = PROMOTION.next_step(view_of(study, n_trials=2))
    assert step.kind == _scheduling.CLOSE and step.config is not None and step.config.number == 1
    assert step.to_budget  # it trains to the budget, pausing nowhere
    checkpoint.unlink()
    assert PROMOTION.next_step(view_of(study, n_trials=2)).kind == _scheduling.DONE


def test_when_sweepers_race_for_the_last_slot_the_trial_numbers_decide() -> None:
    study, _ = study_with([States.COMPLETE, States.COMPLETE], n_trials=3)
    first, second = study.ask(), study.ask()  # two sweepers asked at once for the third slot
    view = view_of(study, n_trials=3)
    assert view.index_of(first.number) == 2 and view.index_of(second.number) == 3  # beyond the quota
    second.set_user_attr(names.SURPLUS_ATTR, True)
    study.tell(second, state=States.FAIL)
    study.tell(first, 0.5)
    view = view_of(study, n_trials=3)
    assert len(view.configurations) == 3 and NO_PRUNING.next_step(view).kind == _scheduling.DONE
    assert _results.summarize(study, budget=9)["n_trials"] == 3


class Clock:
    """A clock the test moves by hand (heartbeats compare only what changed, by the reader's clock)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_trial_whose_sweeper_stopped_beating_is_failed_as_stale_and_retried(tmp_path: Path) -> None:
    """Invariant: a trial whose sweeper died is failed once its beat has not changed for the grace
    period, and its configuration is retried from where it started (not counted twice)."""
    study = optuna.create_study(study_name="stale", storage=f"sqlite:///{tmp_path / 'db.sqlite'}")
    storage = study._storage
    dead, clock = Heartbeats(storage, interval=1), Clock()
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    trial.set_user_attr(names.CONFIG_ATTR, trial.number)
    dead.started(trial.number, trial._trial_id)  # the sweeper that ran it dies now
    watcher = Heartbeats(storage, interval=1, clock=clock)
    assert watcher.stale(view_of(study, 1)) == []  # its clock starts when it first sees the beat
    clock.now = 3.0
    dead.beat_all()  # it was alive after all: the grace starts again
    assert watcher.stale(view_of(study, 1)) == []
    clock.now = 6.5
    assert watcher.stale(view_of(study, 1)) == []  # 3.5 s without a change: within the grace of 4
    clock.now = 7.5
    stale = watcher.stale(view_of(study, 1))
    assert [t.number for t in stale] == [0] and watcher.fail(stale) == [0]
    view = view_of(study, 1)
    config = view.configurations[0]
    assert config.state == _view.INTERRUPTED and config.checkpoint is None  # from scratch
    step = NO_PRUNING.next_step(view)
    assert step.kind == _scheduling.RETRY and step.config is config
    assert _results.fail_reasons(study) == {0: "stale: its sweeper stopped beating for 4 s (retried)"}


def test_a_sweeper_started_long_after_another_died_retries_its_trial_at_once() -> None:
    """A rerun the morning after a crash need not wait out the grace period: a beat whose own time is
    older than twice the grace is stale on sight (twice: clocks of two machines may differ)."""
    study = optuna.create_study(study_name="overnight")
    trial = study.ask()
    wall = Clock()
    Heartbeats(study._storage, interval=1, wall_clock=wall).started(trial.number, trial._trial_id)
    wall.now = 8.5  # 8.5 s after its last beat; the grace is 4 s
    watcher = Heartbeats(study._storage, interval=1, clock=Clock(), wall_clock=wall)
    assert [t.number for t in watcher.stale(view_of(study, 1))] == [0]
    wall.now = 7.5  # within twice the grace: it waits out the grace on its own clock first
    assert (
        Heartbeats(study._storage, interval=1, clock=Clock(), wall_clock=wall).stale(view_of(study, 1)) == []
    )


def test_a_trial_whose_sweeper_died_before_its_first_heartbeat_goes_stale_too() -> None:
    """Killed between creating its trial and its first heartbeat (a SLURM job cancelled at that moment
    did it): a resumed sweeper must not wait for it for ever."""
    study = optuna.create_study(study_name="orphan")
    study.ask()  # RUNNING, no heartbeat: its sweeper is gone
    clock = Clock()
    watcher = Heartbeats(study._storage, interval=1, clock=clock)
    assert watcher.stale(view_of(study, 1)) == []
    assert NO_PRUNING.next_step(view_of(study, 1)).kind == _scheduling.WAIT  # it may still be alive
    clock.now = 4.1
    assert watcher.fail(watcher.stale(view_of(study, 1))) == [0]
    assert NO_PRUNING.next_step(view_of(study, 1)).kind == _scheduling.RETRY


# --- the results file -----------------------------------------------------------------------------


def test_results_hold_the_official_keys_the_best_metrics_and_the_epochs_spent(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="results", direction="minimize")
    for x, epochs, state in ((0.3, 9, States.COMPLETE), (0.1, 9, States.COMPLETE), (0.8, 1, States.PRUNED)):
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        for epoch in range(1, epochs + 1):
            trial.report(x, epoch)
        trial.set_user_attr(names.OVERRIDES_ATTR, [f"x={trial.params['x']}"])
        trial.set_user_attr(names.METRICS_ATTR, {"n_parameters": int(1000 * x)})
        study.tell(trial, x if state == States.COMPLETE else None, state=state)
    results = _results.write(study, tmp_path, "postgresql://u:secret@host/db", budget=9)
    assert results["best_configuration"] == study.best_trial.number
    assert yaml.safe_load((tmp_path / names.RESULTS_FILE).read_text()) == results
    best = study.best_trial
    assert list(results)[:3] == ["name", "best_params", "best_value"]
    assert results["best_value"] == best.value and results["best_params"] == best.params
    assert results["best_metrics"] == best.user_attrs[names.METRICS_ATTR]
    assert results["storage"] == "postgresql://u:***@host/db"
    assert (results["n_complete"], results["n_pruned"], results["n_failed"]) == (2, 1, 0)
    assert (results["epochs_trained"], results["epochs_unpruned"]) == (19, 27)
    assert results["retrain_command"].endswith(f"x={best.params['x']}")


def test_a_study_whose_jobs_report_nothing_counts_no_epochs() -> None:
    study = optuna.create_study(study_name="plain")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    summary = _results.summarize(study, budget=27)
    assert summary["n_complete"] == 3 and "epochs_trained" not in summary


# --- the client API a job uses --------------------------------------------------------------------


def test_outside_a_sweep_a_job_has_no_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in (names.ENV_STUDY, names.ENV_TRIAL):
        monkeypatch.delenv(key, raising=False)
    assert client.current_job() is None and client.current_trial() is None


def test_a_job_attaches_to_its_trial_reports_and_is_never_pruned_at_its_full_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    study = optuna.create_study(study_name="jobs", storage=url)
    threshold = _scheduling.OptunaPruner({"_target_": "optuna.pruners.ThresholdPruner", "lower": 0.5})
    study.set_user_attr(names.SCHEDULER_ATTR, threshold.record())
    trial = study.ask()
    trial.suggest_float("lr", 0.1, 1.0)
    act_as_trial(monkeypatch, study, url, trial.number, budget=3, role=names.TRIAL)
    job = client.current_job()
    assert job == client.SweepJob("jobs", url, names.TRIAL, trial.number, 3, config_number=trial.number)
    run = job.wandb_names()
    assert {k: run[k] for k in ("name", "group", "job_type", "resume")} == {
        "name": f"trial-{trial.number}", "group": "jobs", "job_type": "trial", "resume": "allow",
    }  # fmt: skip
    # The segments of a configuration continue one W&B run; other studies' runs have other ids.
    assert (
        run["id"]
        == client.SweepJob("jobs", url, names.TRIAL, 7, 3, config_number=trial.number).wandb_names()["id"]
    )
    assert run["id"] != client.SweepJob("other", url, names.TRIAL, 0, 3).wandb_names()["id"]
    attached = client.current_trial()
    assert attached is not None and attached.params == trial.params
    assert attached.resume_from is None and attached.resume_epoch == 0
    attached.report(0.1, 1)
    assert not attached.should_pause()  # the study's scheduler only stops
    assert attached.should_prune()  # 0.1 is below its threshold
    attached.report(0.1, 3)
    assert not attached.should_prune()  # trained its full budget: complete, whatever its rank
    assert study.trials[0].intermediate_values == {1: 0.1, 3: 0.1}
    monkeypatch.setenv(names.ENV_ROLE, names.FINAL)
    monkeypatch.delenv(names.ENV_TRIAL)
    assert client.current_trial() is None  # an evaluation after the search reports nothing
    assert client.current_job().wandb_names()["name"] == "final-jobs"  # type: ignore[union-attr]


def test_a_paused_job_saves_its_checkpoint_and_its_continuation_finds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    study = optuna.create_study(study_name="pause", storage=url)
    study.set_user_attr(names.SCHEDULER_ATTR, _scheduling.Hyperband(budget=9).record())
    first = study.ask()
    first.set_user_attr(names.CONFIG_ATTR, first.number)
    act_as_trial(monkeypatch, study, url, first.number, budget=9, checkpoints=tmp_path / "checkpoints")
    job = client.current_trial()
    assert job is not None
    job.report(0.5, 1)
    assert job.should_pause()  # the first at rung 1: nothing to rank it against, so it waits there
    assert not job.should_prune()  # it pauses: it is not stopped
    path = job.save_checkpoint(lambda p: p.write_text("state after epoch 1"))
    assert path == tmp_path / "checkpoints" / f"config-{first.number}" / "trial-0-epoch-1.ckpt"
    assert not list(path.parent.glob(".*"))  # no temporary file left beside it
    assert study.trials[0].user_attrs[names.CHECKPOINT_ATTR] == {"epoch": 1, "path": str(path)}
    # The sweeper's continuation of the configuration: a new trial that resumes from the checkpoint.
    study.tell(first, state=States.PRUNED)
    study.add_trial(
        optuna.trial.create_trial(
            state=States.RUNNING, params=first.params, distributions=first.distributions,
            user_attrs={
                names.CONFIG_ATTR: first.number,
                names.RESUME_ATTR: {"trial": 0, "epoch": 1, "path": str(path)},
            },
        )
    )  # fmt: skip
    monkeypatch.setenv(names.ENV_TRIAL, "1")
    resumed = client.current_trial()
    assert resumed is not None and resumed.config_number == first.number
    assert (
        resumed.resume_epoch == 1
        and resumed.resume_from == path
        and path.read_text() == "state after epoch 1"
    )
    path.unlink()
    with pytest.raises(FileNotFoundError, match="gone"):
        _ = resumed.resume_from


def test_wandb_auto_mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    for key in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    assert wandb_mode.wandb_mode("auto") == "offline"
    assert wandb_mode.wandb_mode("disabled") == "disabled"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode.wandb_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_mode.wandb_mode(None) == "offline"
