"""Faults a user meets when pausing and resuming, one test each: the eight that lost configurations,
resumed one twice, overran n_trials or crashed the sweeper before the scheduler was rebuilt around one
view of the study, and the ones that were only suspected. Each test states the invariant it guards
(docs/parallel.md#promises). The same protocol, under every interleaving of these faults, is in
test_simulation.py; real processes killed at random are in test_faults.py.

The protocol is driven here through the functions the sweeper itself calls (`SweepLoop`, its claims,
heartbeats and scheduler) on real Optuna studies, with a clock the test moves, and through the cheap
app's real sweeps where a fault needs the whole path (Ctrl-C in a job, a study extended on the
command line).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from sweeps import CHEAP_APP, REPO_ROOT, app_env, error_lines, sweep_cli, sweep_in_process

from hydra_plugins.hydra_bohb_sweeper import client, names
from hydra_plugins.hydra_bohb_sweeper._outputs.files import atomic_save
from hydra_plugins.hydra_bohb_sweeper._running import claims
from hydra_plugins.hydra_bohb_sweeper._running.heartbeats import Heartbeats
from hydra_plugins.hydra_bohb_sweeper._running.loop import SweepLoop
from hydra_plugins.hydra_bohb_sweeper._running.outcome import Outcome
from hydra_plugins.hydra_bohb_sweeper._setup.settings import SweepConfigError
from hydra_plugins.hydra_bohb_sweeper._study import scheduling as _scheduling
from hydra_plugins.hydra_bohb_sweeper._study import view as _view
from hydra_plugins.hydra_bohb_sweeper._study.open import keep_scheduler
from hydra_plugins.hydra_bohb_sweeper._study.storage import open_storage

States = optuna.trial.TrialState
optuna.logging.set_verbosity(optuna.logging.WARNING)
NAN, INF = math.nan, math.inf
X = optuna.distributions.FloatDistribution(0.0, 1.0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def completes(trial: optuna.Trial) -> tuple[Outcome, str | None]:
    return Outcome(States.COMPLETE, values=[0.5]), None


def sweeper_on(
    study: optuna.Study, n_trials: int, scheduler: _scheduling.Scheduler | None = None,
    clock: Clock | None = None, checkpoints: Path | None = None,
) -> SweepLoop:  # fmt: skip
    """One sweeper of the study, as `BOHBSweep` builds it (its jobs complete at once)."""
    heartbeats = Heartbeats(study._storage, interval=1, clock=clock or Clock())
    return SweepLoop(
        study, scheduler or _scheduling.NoPruning(), n_trials, heartbeats, completes, checkpoints
    )


def paused(study: optuna.Study, value: float, path: Path, epoch: int = 1, bracket: int = 0) -> int:
    """A configuration paused at `epoch` with a checkpoint at `path`; its trial's number."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("state")
    number = len(study.trials)
    study.add_trial(
        optuna.trial.create_trial(
            state=States.PRUNED, params={"x": value}, distributions={"x": X},
            intermediate_values={e: value for e in range(1, epoch + 1)},
            user_attrs={
                names.CONFIG_ATTR: number, names.BRACKET_ATTR: bracket,
                names.PAUSED_ATTR: {"epoch": epoch, "path": str(path)},
            },
        )
    )  # fmt: skip
    return number


# --- 1. a diverged configuration -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("directions", "entries", "order"),
    [
        (["maximize"], [(0, (0.5,)), (1, (NAN,)), (2, (0.9,)), (3, (INF,)), (4, (-INF,))], [2, 0, 1, 3, 4]),
        (["minimize"], [(0, (0.5,)), (1, (NAN,)), (2, (0.1,)), (3, (-INF,)), (4, (INF,))], [2, 0, 1, 3, 4]),
        (
            ["maximize", "minimize"],
            [(0, (0.9, 5.0)), (1, (NAN, 1.0)), (2, (0.5, 2.0)), (3, (0.8, INF))],
            [0, 2, 1, 3],
        ),
        (["minimize", "maximize"], [(0, (-INF, 5.0)), (1, (0.1, 5.0)), (2, (0.2, 9.0))], [1, 2, 0]),
    ],
)  # fmt: skip
def test_a_diverged_configuration_ranks_last_in_every_direction(
    directions: list[str], entries: list[tuple[int, tuple[float, ...]]], order: list[int]
) -> None:
    """Invariant: NaN and the infinities (a diverged run) rank after every finite value, with one
    objective or several, maximising or minimising (maximising used to rank NaN first)."""
    assert _scheduling.best_first(entries, directions) == order


def test_a_diverged_configuration_stops_at_its_rung_and_takes_no_place(tmp_path: Path) -> None:
    """Invariant: a configuration whose value at a rung is not finite is never promoted and never
    holds a place in the top 1/eta; it stops there, without a checkpoint."""
    study = optuna.create_study(direction="maximize")
    for i, value in enumerate((0.5, 0.4, 0.3, 0.2, 0.1)):
        paused(study, value, tmp_path / f"{i}.ckpt")
    trial = study.ask()
    trial.set_user_attr(names.CONFIG_ATTR, trial.number)
    trial.report(NAN, 1)  # six at the rung: two places; NaN would have taken the first
    hyperband = _scheduling.Hyperband(budget=9)
    view = _view.view_of(study)
    assert hyperband.on_report(view, view.trials[-1], 1, can_pause=True) == _scheduling.STOP
    assert hyperband.top(view, 0, 1) == [0, 1]
    promoted = hyperband.promotion(view)
    assert promoted is not None and promoted.number == 0


# --- 2. Ctrl-C in a continuation --------------------------------------------------------------------------
@pytest.mark.slow  # three sweeps of the cheap app and an uninterrupted reference
def test_ctrl_c_in_a_continuation_keeps_its_configuration_resumable(tmp_path: Path) -> None:
    """Invariant: a configuration whose continuation Ctrl-C stopped keeps the checkpoint it resumed
    from, and the rerun continues it from there (it used to be failed, its checkpoint deleted, and its
    bracket closed with a worse one)."""
    sweep_dir, log = tmp_path / "sweep", tmp_path / "epochs.log"
    common = ("hydra.sweeper.n_trials=6", f"epochs_log={log}")
    first = sweep_in_process(sweep_dir, *common, "chaos=builtins.KeyboardInterrupt", "chaos_resumed=true")
    assert first.returncode == 2 and error_lines(first.stderr)[0].startswith("error: interrupted")
    (interrupted,) = first.configs_in("interrupted")
    stopped = interrupted.last
    assert stopped.state == States.FAIL and stopped.user_attrs["fault"] == "interrupted"
    checkpoint = Path(stopped.user_attrs["resume"]["path"])
    assert checkpoint.exists()  # kept: its configuration resumes from it
    second = sweep_in_process(sweep_dir, *common)
    second.assert_ok()
    config = second.configs[interrupted.number]
    (retry,) = [t for t in config.trials if t.user_attrs.get("follows") == stopped.number]
    assert retry.user_attrs["resume"]["path"] == str(checkpoint)
    assert retry.state in (States.COMPLETE, States.PRUNED)
    assert len(second.configs) == 6 and not second.configs_in("failed")
    # Each configuration's state (`acc`, carried by its checkpoints) is an uninterrupted run's.
    for line in log.read_text().splitlines():
        number, epoch, *_, acc = line.split()
        params = next(t.params for t in second.trials if t.user_attrs["config"] == int(number))
        expected = sum(
            cheap_curve(params, e) for e in range(1, int(epoch) + 1)
        )  # the sum of the values up to that epoch
        assert float(acc) == pytest.approx(expected)


def cheap_curve(params: dict[str, Any], epoch: int) -> float:
    from sweeps import cheap_task

    return float(cheap_task.learning_curve(params["x"], params["y"], params.get("z", 0.0), epoch))


# --- 3. a finished sweep, extended ------------------------------------------------------------------------
@pytest.mark.slow  # a sweep, then the extended one
def test_an_extended_sweep_never_waits_for_configurations_whose_checkpoints_it_discarded(
    tmp_path: Path,
) -> None:
    """Invariant: rerunning a finished sweep with a larger n_trials trains exactly the new
    configurations; paused ones whose checkpoints the first run discarded are ranked but hold no
    place in the top 1/eta, and nothing tries to resume them (one used to hold a place for ever)."""
    sweep_dir = tmp_path / "sweep"
    first = sweep_in_process(sweep_dir, "hydra.sweeper.n_trials=4")
    first.assert_ok()
    discarded = [c.number for c in first.configs.values() if c.discarded]
    assert discarded and first.results is not None and first.results["n_paused"] == 0
    second = sweep_in_process(sweep_dir, "hydra.sweeper.n_trials=12")
    second.assert_ok()
    assert len(second.configs) == 12 and {c.state for c in second.configs.values()} <= {"complete", "stopped"}
    for number in discarded:  # never resumed
        assert len(second.configs[number].trials) == 1
    assert any(len(c.trials) > 1 for n, c in second.configs.items() if n >= 4)  # the new ones were promoted


def test_a_discarded_configuration_gives_its_place_to_the_next_best(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize")
    best = paused(study, 0.9, tmp_path / "0.ckpt")
    for i, value in enumerate((0.5, 0.4)):
        paused(study, value, tmp_path / f"{i + 1}.ckpt")
    storage = study._storage
    study_id = storage.get_study_id_from_name(study.study_name)
    storage.set_study_system_attr(study_id, f"{names.DISCARDED_PREFIX}{best}", True)
    view = _view.view_of(study)
    assert view.configurations[best].state == _view.STOPPED and view.configurations[best].discarded
    promoted = _scheduling.Hyperband(budget=9).promotion(view)
    assert promoted is not None and promoted.number == 1


# --- 4. a killed sweeper without Optuna's heartbeats --------------------------------------------------------
@pytest.mark.slow
def test_a_killed_sweeper_on_a_journal_storage_is_found_and_its_trial_retried(tmp_path: Path) -> None:
    """Invariant: whatever the storage, a killed sweeper's trial does not stay RUNNING: the rerun fails
    it as stale and retries its configuration (with a journal file it used to stay RUNNING for ever,
    and the rerun ended with "no complete trial")."""
    sweep_dir = tmp_path / "sweep"
    storage = f"journal://{tmp_path / 'study.journal'}"
    settings = (
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.heartbeat_interval=1",
        "hydra.sweeper.n_trials=4",
    )
    proc = subprocess.Popen(
        [sys.executable, str(CHEAP_APP), "-m", f"hydra.sweep.dir={sweep_dir}", *settings, "sleep_s=0.3"],
        cwd=REPO_ROOT, env=app_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            trials = journal_trials(storage)
            if any(t.state == States.RUNNING and t.intermediate_values for t in trials):
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert [t.state for t in journal_trials(storage)].count(States.RUNNING) == 1
    run = sweep_cli(sweep_dir, *settings)  # waits out the grace period (4 s), then retries it
    run.assert_ok()
    trials = journal_trials(storage)
    assert not [t for t in trials if t.state in (States.RUNNING, States.WAITING)]
    (stale,) = [t for t in trials if t.user_attrs.get("fault") == "stale"]
    (retry,) = [t for t in trials if t.user_attrs.get("follows") == stale.number]
    assert retry.state in (States.COMPLETE, States.PRUNED)
    journal = open_storage(storage)
    view = _view.StudyView.read(journal, journal.get_study_id_from_name("cheap"))
    assert len(view.configurations) == 4 and {c.state for c in view.configurations.values()} <= {
        "complete", "stopped",
    }  # fmt: skip


def journal_trials(url: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name="cheap", storage=open_storage(url)).get_trials()
    except KeyError:  # not created yet
        return []


# --- 5. two sweepers retry one trial; a queued trial taken by another --------------------------------------
def test_two_sweepers_that_retry_one_trial_at_once_make_one_retry(tmp_path: Path) -> None:
    """Invariant: a configuration is retried once, however many sweepers see it interrupted at once,
    and the study keeps exactly n_trials configurations (a queued retry taken by another sweeper used
    to let this one sample a configuration beyond n_trials)."""
    study = optuna.create_study(direction="maximize")
    killed = study.ask()
    killed.suggest_float("x", 0, 1)
    killed.set_user_attr(names.CONFIG_ATTR, killed.number)
    storage = study._storage
    from hydra_plugins.hydra_bohb_sweeper._running.heartbeats import end_with_fault

    end_with_fault(storage, killed._trial_id, names.FAULT_STALE, "stale")
    first, second = sweeper_on(study, 1), sweeper_on(study, 1)
    view = first.read()
    step = first.scheduler.next_step(view)
    assert (
        step.kind == _scheduling.RETRY and second.scheduler.next_step(second.read()).kind == _scheduling.RETRY
    )
    # Both decided before either claimed: the lower trial number wins.
    mine, theirs = first._claim(step), second._claim(step)
    assert mine is not None and theirs is None
    assert mine.params == killed.params
    after = first.read()
    assert len(after.configurations) == 1 and after.configurations[0].state == _view.RUNNING
    assert first.scheduler.next_step(after, own={mine.number}).kind == _scheduling.DONE


def test_a_queued_trial_taken_by_another_sweeper_does_not_overrun_n_trials() -> None:
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"x": 0.3})
    mine = sweeper_on(study, 1)
    step = mine.scheduler.next_step(mine.read())
    assert step.kind == _scheduling.NEW
    other = optuna.load_study(study_name=study.study_name, storage=study._storage)
    other.ask()  # another sweeper takes the queued trial first: it is the one configuration
    assert mine._claim(step) is None  # so this sweeper's new trial is surplus
    view = mine.read()
    assert len(view.configurations) == 1 and len(view.surplus) == 1


# --- 6. a sweeper killed between a claim and its confirmation ----------------------------------------------
def test_a_claim_left_running_by_a_killed_sweeper_is_never_run_nor_retried(tmp_path: Path) -> None:
    """Invariant: no configuration is resumed by two trials. A sweeper killed right after creating a
    continuation that lost the claim leaves a trial every view treats as surplus: it is failed at
    once, never retried (Optuna's retry used to re-queue it with its checkpoint, and two trials
    resumed one configuration)."""
    study = optuna.create_study(direction="maximize")
    for i, value in enumerate((0.9, 0.5, 0.4)):
        paused(study, value, tmp_path / f"{i}.ckpt")
    clock = Clock()
    survivor = sweeper_on(study, 3, _scheduling.Hyperband(budget=9), clock)
    step = survivor.scheduler.next_step(survivor.read())
    assert step.kind == _scheduling.PROMOTE and step.config is not None
    storage, study_id = study._storage, survivor.study_id
    winner = claims.create_segment(storage, study_id, step)
    loser = claims.create_segment(storage, study_id, step)  # the killed sweeper's: never abandoned
    view = _view.view_of(study)
    assert storage.get_trial(loser).number in view.surplus
    survivor.read()  # any sweeper that reads the study fails it
    assert storage.get_trial(loser).state == States.FAIL
    clock.now = 100.0  # long after its grace period: still no retry
    storage.set_trial_state_values(winner, States.PRUNED)
    view = survivor.read()
    assert survivor.scheduler.next_step(view).kind != _scheduling.RETRY
    followers = view.followers(step.config.last.number)
    assert followers == [storage.get_trial(winner).number]


def test_a_new_trial_left_beyond_the_quota_by_a_killed_sweeper_is_not_counted() -> None:
    """Invariant: exactly n_trials configurations, when a sweeper dies between asking for a new trial
    and finding the quota spent."""
    study = optuna.create_study(direction="maximize")
    study.tell(study.ask(), 0.5)
    study.ask()  # the killed sweeper's: beyond n_trials=1, never marked surplus, never beating
    clock = Clock()
    sweeper = sweeper_on(study, 1, clock=clock)
    assert len(sweeper.read().configurations) == 2  # it may be alive: it runs, so it counts for now
    clock.now = 10.0
    view = sweeper.read()  # stale now: failed, and not counted
    assert len(view.configurations) == 1 and 1 in view.surplus
    assert sweeper.scheduler.next_step(view).kind == _scheduling.DONE


# --- 7. a sweeper whose own trial was failed as stale ------------------------------------------------------
def test_a_sweeper_whose_trial_was_failed_as_stale_tells_it_without_crashing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Invariant: a sweeper suspended past the grace period goes on when it wakes; its result is
    dropped and the retry stands (it used to crash with UpdateFinishedTrialError)."""
    study = optuna.create_study(direction="maximize")
    suspended = sweeper_on(study, 1)
    trial = suspended._claim(suspended.scheduler.next_step(suspended.read()))
    assert trial is not None
    clock = Clock()
    other = sweeper_on(study, 1, clock=clock)
    other.read()
    clock.now = 10.0
    other.read()  # the suspended sweeper's trial is stale: failed, to be retried
    with caplog.at_level(logging.WARNING):
        told = suspended._tell(trial, Outcome(States.COMPLETE, values=[0.7]), None)
    assert told.state == States.FAIL and told.user_attrs["fault"] == "stale"
    assert "failed as stale by another sweeper" in caplog.text
    assert other.scheduler.next_step(other.read()).kind == _scheduling.RETRY


# --- 8. closing brackets ----------------------------------------------------------------------------------
def test_brackets_nobody_finished_close_in_parallel(tmp_path: Path) -> None:
    """Once the quota is spent, a bracket closes while another bracket's closing still trains (they used
    to close one at a time while workers idled)."""
    study = optuna.create_study(direction="maximize")
    for i, value in enumerate((0.9, 0.5)):
        paused(study, value, tmp_path / f"b0-{i}.ckpt", epoch=1, bracket=0)
    for i, value in enumerate((0.8, 0.4)):
        paused(study, value, tmp_path / f"b1-{i}.ckpt", epoch=3, bracket=1)
    hyperband = _scheduling.Hyperband(budget=9)
    sweeper = sweeper_on(study, 4, hyperband)
    first = hyperband.next_step(sweeper.read())
    assert first.kind == _scheduling.CLOSE and first.config is not None and first.config.number == 0
    claimed = sweeper._claim(first)  # bracket 0's closing trains now
    assert claimed is not None
    second = hyperband.next_step(sweeper.read(), own={claimed.number})
    assert second.kind == _scheduling.CLOSE and second.config is not None and second.config.number == 2


def test_a_launcher_that_fails_is_a_fault_but_a_job_config_that_fails_is_the_configurations_own() -> None:
    """A dead worker process or a cancelled job (the launcher raises) is retried; a job whose config
    Hydra cannot compose would fail again: it fails for good."""
    from hydra.errors import ConfigCompositionException

    study = optuna.create_study(direction="maximize")
    sweeper = sweeper_on(study, 1)
    raised = iter(
        [RuntimeError("TerminatedWorkerError: a worker process died"), ConfigCompositionException("x")]
    )

    def launch(trial: optuna.Trial) -> tuple[Outcome, str | None]:
        raise next(raised)

    sweeper.run_trial = launch
    states = []
    for _ in range(2):
        trial = sweeper._claim(sweeper.scheduler.next_step(sweeper.read()))
        assert trial is not None
        sweeper._tell(trial, *sweeper._launch(trial))
        (config,) = sweeper.read().configurations.values()
        states.append(config.state)
    assert states == [_view.INTERRUPTED, _view.FAILED]  # retried once, then failed for good
    assert sweeper.scheduler.next_step(sweeper.read()).kind == _scheduling.DONE


# --- suspected, and tested -----------------------------------------------------------------------------
def test_a_retry_inherits_only_what_its_configuration_needs(tmp_path: Path) -> None:
    """A retry carries its configuration, bracket, the trial it follows and the checkpoint to resume
    from; never the interrupted trial's values, checkpoint, pause or surplus marks."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    number = paused(study, 0.5, tmp_path / "0.ckpt")
    study.add_trial(
        optuna.trial.create_trial(
            state=States.FAIL, params={"x": 0.5}, distributions={"x": X},
            user_attrs={
                names.CONFIG_ATTR: number, names.BRACKET_ATTR: 0, names.FOLLOWS_ATTR: number,
                names.RESUME_ATTR: {"trial": number, "epoch": 1, "path": str(tmp_path / "0.ckpt")},
                names.VALUES_BY_EPOCH_ATTR: {"2": [0.6, 3.0]},
                names.CHECKPOINT_ATTR: {"epoch": 2, "path": "x"}, names.FAULT_ATTR: names.FAULT_STALE,
            },
        )
    )  # fmt: skip
    sweeper = sweeper_on(study, 1, _scheduling.Hyperband(budget=9))
    step = sweeper.scheduler.next_step(sweeper.read())
    assert step.kind == _scheduling.RETRY
    retry = sweeper._claim(step)
    assert retry is not None
    assert set(retry.user_attrs) == {
        names.CONFIG_ATTR,
        names.BRACKET_ATTR,
        names.FOLLOWS_ATTR,
        names.RESUME_ATTR,
    }
    assert retry.user_attrs[names.RESUME_ATTR]["epoch"] == 1


def test_a_study_keeps_the_scheduler_it_was_made_with() -> None:
    """Sweepers that share a study, or rerun it, decide with the same rungs: other settings are refused
    in one line (the last sweeper to open a study used to win, and paused configurations met new
    rungs)."""
    study = optuna.create_study(study_name="rungs")
    keep_scheduler(study, _scheduling.Hyperband(budget=27), "sqlite:///x.db")
    keep_scheduler(study, _scheduling.Hyperband(budget=27), "sqlite:///x.db")  # the same: fine
    with pytest.raises(SweepConfigError) as refused:
        keep_scheduler(study, _scheduling.Hyperband(budget=9, reduction_factor=2), "sqlite:///x.db")
    assert str(refused.value) == (
        "study 'rungs' in sqlite:///x.db is scheduled by hyperband(budget=27, min_resource=1, "
        "reduction_factor=3, brackets=3, mode=promotion); this sweep asks for hyperband(budget=9, "
        "reduction_factor=2, brackets=4): run it with the study's settings, or use another study_name"
    )


def test_a_rerun_with_other_rungs_is_refused_on_the_command_line(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    sweep_in_process(sweep_dir, "hydra.sweeper.n_trials=2").assert_ok()
    rerun = sweep_in_process(sweep_dir, "hydra.sweeper.n_trials=4", "hydra.sweeper.pruner.reduction_factor=2")
    assert rerun.returncode == 2
    (line,) = error_lines(rerun.stderr)
    assert "is scheduled by hyperband(" in line and "reduction_factor=2" in line


def test_a_folder_checkpoint_is_never_missing_while_it_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint's temporary name is unique across machines (hostname, pid, a random part), what
    was written reaches the disk before the rename, and a folder replacing a folder never leaves the
    name empty: the old one stays until the new one is complete, and a write that fails leaves the
    old one as it was (it used to be deleted first)."""
    target = tmp_path / "model.ckpt"
    atomic_save(target, lambda tmp: (tmp.mkdir(), (tmp / "weights").write_text("old")))
    seen: list[str] = []

    def write(tmp: Path) -> None:
        seen.append(tmp.name)
        assert (target / "weights").read_text() == "old"  # still there while the new one is written
        tmp.mkdir()
        (tmp / "weights").write_text("new")

    flushed: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda fd: flushed.append(fd))
    atomic_save(target, write)
    monkeypatch.undo()
    assert (target / "weights").read_text() == "new"
    assert len(flushed) == 2  # the file written, then the folder that holds the renamed one
    assert os.uname().nodename in seen[0] and str(os.getpid()) in seen[0]

    def fails(tmp: Path) -> None:
        tmp.mkdir()
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_save(target, fails)
    assert (target / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ckpt"]  # no temporary left


def test_a_job_whose_trial_was_taken_over_stops_and_leaves_no_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job that goes on after its sweeper lost its trial (failed as stale, retried elsewhere) stops at
    its next report, and a checkpoint it saves is neither recorded nor left where its retry saves its
    own (names are per trial)."""
    from sweeps import act_as_trial

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    study = optuna.create_study(study_name="orphan", storage=url)
    study.set_user_attr(names.SCHEDULER_ATTR, _scheduling.Hyperband(budget=9).record())
    trial = study.ask()
    act_as_trial(monkeypatch, study, url, trial.number, budget=9, checkpoints=tmp_path / "checkpoints")
    job = client.current_trial()
    assert job is not None
    job.report(0.5, 1)
    from hydra_plugins.hydra_bohb_sweeper._running.heartbeats import end_with_fault

    end_with_fault(study._storage, trial._trial_id, names.FAULT_STALE, "stale")
    with pytest.raises(client.TrialTakenOver, match="failed as stale"):
        job.save_checkpoint(lambda path: path.write_text("state"))
    assert not list((tmp_path / "checkpoints").rglob("*.ckpt"))
    with pytest.raises(client.TrialTakenOver):
        job.report(0.6, 2)
