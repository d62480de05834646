"""The final evaluation: which configurations it retrains (never one far behind the best), and that a
killed or interrupted final evaluation resumes without training again what had finished."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from sweeps import CHEAP_APP, app_env, sweep_in_process
from test_faults import ctrl_c_reaches_it
from test_scheduling import add, view_of

from hydra_plugins.hydra_bohb_sweeper._outputs import candidates
from hydra_plugins.hydra_bohb_sweeper._outputs.evaluations import RECORD_FILE
from hydra_plugins.hydra_bohb_sweeper.names import FINAL_FILE

States = optuna.trial.TrialState

# The tiny sweep of issue 28 (budget 3, rung at epoch 1), as its study recorded it: two complete
# configurations and six stopped after their first epoch, three of them at chance.
TINY = {
    1: ([0.439, 0.591, 0.705], States.COMPLETE),
    0: ([0.396, 0.590, 0.620], States.COMPLETE),
    4: ([0.314], States.PRUNED),
    5: ([0.166], States.PRUNED),
    2: ([0.152], States.PRUNED),
    6: ([0.100], States.PRUNED),
    8: ([0.100], States.PRUNED),
    9: ([0.100], States.PRUNED),
}


def tiny_study(minimize: bool = False) -> optuna.Study:
    """TINY's configurations, numbered as listed; `minimize`: the error 1 - accuracy instead."""
    study = optuna.create_study(direction="minimize" if minimize else "maximize")
    for accuracies, state in TINY.values():
        curve = {e + 1: (1 - a if minimize else a) for e, a in enumerate(accuracies)}
        add(study, curve, state=state)
    return study


def numbers(study: optuna.Study, configs: list[int]) -> list[int]:
    """Positions in `study` -> TINY's names for them."""
    names = list(TINY)
    return [names[c] for c in configs]


@pytest.mark.parametrize("minimize", [False, True])
def test_configurations_far_behind_the_best_are_left_out_with_their_reason(minimize: bool) -> None:
    """Invariant: the best is always a candidate; a configuration that trails it by more than half the
    median configuration's gap at the first rung is not, whichever the direction."""
    study = tiny_study(minimize)
    choice = candidates.choose(view_of(study), not minimize, top_k=5, max_gap=0.5)
    assert numbers(study, [c.number for c in choice.chosen]) == [1, 0, 4]
    assert numbers(study, [left.number for left in choice.left_out]) == [5, 2]
    first = choice.left_out[0].why
    # The median at epoch 1 is 0.159, so the unit is 0.439 - 0.159 = 0.28; #5 trails by 0.273.
    assert "at epoch 1" in first and "0.273 behind" in first and "0.5 x 0.28" in first


def test_max_gap_null_keeps_the_top_k_as_ranked_and_top_k_stays_an_upper_bound() -> None:
    study = tiny_study()
    everything = candidates.choose(view_of(study), True, top_k=5, max_gap=None)
    assert numbers(study, [c.number for c in everything.chosen]) == [1, 0, 4, 5, 2]
    assert everything.left_out == []
    generous = candidates.choose(view_of(study), True, top_k=2, max_gap=100.0)
    assert numbers(study, [c.number for c in generous.chosen]) == [1, 0]


def test_a_candidate_a_point_behind_at_the_full_budget_is_kept() -> None:
    """What retraining several is for: a configuration that trails the best by a point after the
    search's epochs may lead after the final budget's (benchmarks/final_pick_top_k.py)."""
    study = optuna.create_study(direction="maximize")
    add(study, {1: 0.80, 3: 0.84, 9: 0.852}, state=States.COMPLETE)
    add(study, {1: 0.72, 3: 0.80, 9: 0.842}, state=States.COMPLETE)
    for first in (0.70, 0.65, 0.60, 0.55, 0.30):
        add(study, {1: first})
    choice = candidates.choose(view_of(study), True, top_k=5, max_gap=0.5)
    assert [c.number for c in choice.chosen][:2] == [0, 1]  # 0.01 behind; the unit is 0.80 - 0.65


def test_an_app_that_reports_no_epochs_is_compared_on_what_it_returned() -> None:
    study = optuna.create_study(direction="maximize")
    for value in (0.9, 0.88, 0.5, 0.4, 0.3):
        study.add_trial(
            optuna.trial.create_trial(
                state=States.COMPLETE, value=value, params={}, distributions={}, user_attrs={}
            )
        )
    choice = candidates.choose(view_of(study), True, top_k=3, max_gap=0.5)
    assert [c.number for c in choice.chosen] == [0, 1]  # median 0.5: #2 trails by 0.4 > 0.5 x 0.4
    assert "at the end" in choice.left_out[0].why


def test_values_that_are_not_finite_are_never_candidates() -> None:
    study = optuna.create_study(direction="maximize")
    add(study, {1: 0.5, 3: 0.7, 9: 0.8}, state=States.COMPLETE)
    add(study, {1: math.nan})
    add(study, {1: math.inf})
    add(study, {1: 0.4})
    chosen = [c.number for c in candidates.choose(view_of(study), True, top_k=5, max_gap=None).chosen]
    assert chosen == [0, 3]


def _evaluations_log(path: Path) -> list[str]:
    """The configurations (first field) of every epoch the evaluation jobs trained (-1: not a trial)."""
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.slow  # three sweeps with their final evaluations
def test_an_interrupted_final_evaluation_resumes_and_a_rerun_trains_nothing(tmp_path: Path) -> None:
    """Invariant: a candidate (or the baseline) whose job ended keeps its result and is never trained
    again: not after Ctrl-C in the next job, not in a rerun of the finished sweep. The path: the real
    sweep, Ctrl-C raised inside the second evaluation job as it reaches a job in the sweeper's process."""
    sweep_dir, countdown, epochs = tmp_path / "sweep", tmp_path / "countdown", tmp_path / "epochs.log"
    countdown.write_text("2")  # the first evaluation runs; the second is interrupted
    final = [
        "hydra.sweeper.n_trials=6", "hydra.sweeper.final_evaluation.enabled=true",
        "hydra.sweeper.final_evaluation.baseline=true", "hydra.sweeper.final_evaluation.top_k=2",
        "hydra.sweeper.final_evaluation.max_gap=null",
        "hydra.sweeper.final_evaluation.overrides="
        f'["max_epochs=10","ctrl_c_countdown={countdown}","epochs_log={epochs}"]',
    ]  # fmt: skip
    interrupted = sweep_in_process(sweep_dir, *final)
    assert interrupted.returncode == 2
    assert "interrupted in the final evaluation: what it finished is kept" in interrupted.stderr
    assert not (sweep_dir / FINAL_FILE).exists()  # no half-written final evaluation
    (first,) = [p.parent for p in sweep_dir.glob(f"*/{RECORD_FILE}")]
    assert first.name.startswith("candidate-")
    trained = len(_evaluations_log(epochs))
    assert trained == 10  # the first candidate's 10 epochs; the second job stopped before its first

    resumed = sweep_in_process(sweep_dir, *final)
    resumed.assert_ok()
    console = resumed.stdout + resumed.stderr
    (kept,) = [line for line in console.splitlines() if "kept from an earlier run" in line]
    assert f"{first.name} " in kept
    record = yaml.safe_load((sweep_dir / FINAL_FILE).read_text())
    assert [c["state"] for c in record["candidates"]] == ["complete", "complete"]
    assert record["incumbent"]["state"] == "complete" and record["baseline"]["state"] == "complete"
    # The second candidate and the baseline trained 10 epochs each; the first never again.
    assert len(_evaluations_log(epochs)) == trained + 20
    assert int(countdown.read_text()) < 0  # every job that started counted itself

    again = sweep_in_process(sweep_dir, *final)
    again.assert_ok()
    assert len(_evaluations_log(epochs)) == trained + 20  # a rerun of a finished sweep trains nothing
    assert yaml.safe_load((sweep_dir / FINAL_FILE).read_text()) == record


@pytest.mark.slow
def test_candidates_run_on_the_sweeps_workers_and_ctrl_c_keeps_those_that_ended(tmp_path: Path) -> None:
    """The real command with two joblib workers: the candidates train side by side, each ends in a line
    of its own; Ctrl-C (SIGINT to the whole process group, as a terminal sends it) once the first has
    ended keeps it, and the rerun trains only the others. Invariant: no evaluation that ended trains
    again, and the final evaluation's file appears only once it is complete."""
    sweep_dir, epochs = tmp_path / "sweep", tmp_path / "epochs.log"
    command = [
        sys.executable, str(CHEAP_APP), "-m", f"hydra.sweep.dir={sweep_dir}", "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=4",
        "hydra.sweeper.final_evaluation.enabled=true", "hydra.sweeper.final_evaluation.top_k=2",
        "hydra.sweeper.final_evaluation.max_gap=null", "hydra.sweeper.final_evaluation.baseline=true",
        f'hydra.sweeper.final_evaluation.overrides=["max_epochs=8","sleep_s=0.5","epochs_log={epochs}"]',
    ]  # fmt: skip
    first = subprocess.Popen(
        command, env=app_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True, preexec_fn=ctrl_c_reaches_it,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while not list(sweep_dir.glob(f"*/{RECORD_FILE}")) and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 2 and "interrupted in the final evaluation" in err, err[-2000:]
    assert not (sweep_dir / FINAL_FILE).exists()
    ended = {p.parent.name for p in sweep_dir.glob(f"*/{RECORD_FILE}")}
    assert ended
    lines = [line.split() for line in epochs.read_text().splitlines()]
    spans: dict[str, tuple[float, float]] = {}  # each evaluation process: its first and last epoch
    for fields in lines:
        start, end = spans.get(fields[3], (math.inf, 0.0))
        spans[fields[3]] = (min(start, float(fields[4])), max(end, float(fields[5])))
    (_, first_end), (second_start, _) = sorted(spans.values())[:2]
    assert second_start < first_end, spans  # two evaluations trained at the same time

    rerun = subprocess.run(command, env=app_env(), text=True, capture_output=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    shown = [line for line in rerun.stdout.splitlines() if "BOHB: [" in line]
    kept = {line.split("] ")[-1].split()[0] for line in shown if "kept from an earlier run" in line}
    assert kept == ended and len(shown) == 3  # one line per evaluation: 2 candidates and the baseline
    record = yaml.safe_load((sweep_dir / FINAL_FILE).read_text())
    assert len(record["candidates"]) == 2 and record["baseline"]["state"] == "complete"
    # Each evaluation that had not ended trained its 8 epochs again; those that had, none.
    assert len(epochs.read_text().splitlines()) - len(lines) == 8 * (3 - len(ended))
