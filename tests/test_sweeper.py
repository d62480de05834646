"""The BOHB sweeper through Hydra's real multirun, in this process: the cheap app (tests/cheap_app)
swept with the basic launcher, checked through the real Optuna storage and optimization_results.yaml.

Covers: n_trials configurations, Hyperband pausing and resuming configurations (no epoch trained
twice), stopping for apps that cannot pause, conditional parameters reaching the job,
metrics beside the objective, the results file, resuming a study, failing and NaN trials,
max_failure_rate, Ctrl-C, the final evaluation, and bad sweeper input refused in one line with no study.
The command line, other launchers and killed sweepers are in test_sweeper_cli.py.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from sweeps import (
    Sweep,
    cheap_task,
    compose_sweep,
    error_lines,
    launched,
    progress_lines,
    scratch_dir,
    storage_url,
    sweep_in_process,
    sweeper_settings,
)

from hydra_plugins.hydra_bohb_sweeper._setup.preflight import prepare
from hydra_plugins.hydra_bohb_sweeper._setup.search_space import SearchSpaceError
from hydra_plugins.hydra_bohb_sweeper._setup.settings import SweepConfigError
from hydra_plugins.hydra_bohb_sweeper.names import FINAL_FILE

N_TRIALS = 12  # hydra.sweeper.n_trials in tests/cheap_app/conf/config.yaml: configurations
BUDGET = 9  # hydra.sweeper.budget there
States = optuna.trial.TrialState

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    path = scratch_dir("bohb-sweeper-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


_cache: dict[str, Any] = {}


def once(name: str, root: Path, *overrides: str) -> Sweep:
    """A sweep shared by the tests that read it; `epochs.log` in its folder lists every epoch trained."""
    if name not in _cache:
        _cache[name] = sweep_in_process(root / name, f"epochs_log={root / name}.epochs.log", *overrides)
    return _cache[name]


def epochs_trained(root: Path, name: str) -> list[tuple[int, int]]:
    """(configuration, epoch) of every epoch the jobs of sweep `name` trained, in order."""
    lines = (root / f"{name}.epochs.log").read_text().split("\n")
    return [(int(fields[0]), int(fields[1])) for fields in (line.split() for line in lines if line)]


def expected_value(params: dict[str, Any], epoch: int) -> float:
    """What the cheap job computes for these sampled parameters (z is 0.0 where inactive)."""
    return cheap_task.learning_curve(params["x"], params["y"], params.get("z", 0.0), epoch)


# --- a sweep --------------------------------------------------------------------------------------


def test_sweep_runs_n_trials_and_prints_one_line_each(root: Path) -> None:
    run = once("default", root)
    run.assert_ok()
    assert sorted(run.configs) == [t.number for t in run.trials if "resume" not in t.user_attrs]
    assert len(run.configs) == N_TRIALS
    assert {t.state for t in run.trials} <= {States.COMPLETE, States.PRUNED}
    assert run.configs_in("complete")
    assert launched(run) == len(run.trials) > N_TRIALS  # promoted configurations were resumed
    assert len(progress_lines(run.stdout + run.stderr)) == len(run.trials)


def test_hyperband_pauses_at_rungs_and_resumes_promoted_configurations(root: Path) -> None:
    """Each configuration trains epochs 1, 2, ... in order across its segments, never one twice; it
    stops only at a rung (paused there with a checkpoint) or at the budget."""
    run = once("default", root)
    trained = epochs_trained(root, "default")
    assert len(trained) == len(set(trained)) == run.results["epochs_trained"]  # type: ignore[index]
    for number, config in run.configs.items():
        epochs = [e for c, e in trained if c == number]
        assert epochs == list(range(1, config.epochs + 1)) and sorted(config.values) == epochs
        if config.state == "complete":
            assert config.epochs == BUDGET
        else:  # paused at a rung; the finished sweep discarded its checkpoint, so it is stopped now
            assert config.last.user_attrs.get("paused"), f"#{number} stopped without pausing"
            assert config.state == "stopped" and config.discarded and config.epochs in (1, 3), (
                f"#{number} stopped off a rung"
            )
        for before, after in zip(config.trials, config.trials[1:], strict=False):
            resume = after.user_attrs["resume"]
            assert resume["trial"] == before.number and resume["epoch"] == max(before.intermediate_values)
            assert min(after.intermediate_values) == resume["epoch"] + 1
    resumed = [c for c in run.configs.values() if len(c.trials) > 1]
    assert resumed, "no configuration was resumed"
    # Resumed ones ranked in the top third of their bracket at the rung they paused at.
    assert not (run.sweep_dir / "checkpoints").exists(), "checkpoints left behind after the sweep"


def test_an_app_that_cannot_pause_is_stopped_at_the_rungs_instead(root: Path) -> None:
    run = once("no-pause", root, "can_pause=false")
    run.assert_ok()
    assert len(run.trials) == len(run.configs) == N_TRIALS  # one trial each: nothing resumed
    stopped = run.configs_in("stopped")
    assert stopped and all(c.epochs in (1, 3) for c in stopped)
    assert all(c.epochs == BUDGET for c in run.configs_in("complete"))


def test_job_receives_the_sampled_parameters(root: Path) -> None:
    run = once("default", root)
    for t in run.trials:
        for epoch, value in t.intermediate_values.items():
            assert value == pytest.approx(expected_value(t.params, epoch))
        if t.state == States.COMPLETE:
            assert t.value == pytest.approx(expected_value(t.params, BUDGET))
        # The condition `z: y == c`: z is sampled, and passed to the job, only when y is c.
        assert ("z" in t.params) == (t.params["y"] == "c")
        overrides = t.user_attrs["overrides"]
        assert f"max_epochs={BUDGET}" in overrides  # hydra.sweeper.budget_key
        assert ("z" in {o.split("=")[0] for o in overrides}) == ("z" in t.params)
        assert not any("HYDRA_BOHB" in o for o in overrides)  # the identity is not part of the config
        assert Path(t.user_attrs["output_dir"]).is_dir()
    ys = {t.params["y"] for t in run.trials}
    assert "c" in ys and len(ys) >= 2  # both sides of the condition were sampled


def test_metrics_returned_beside_the_objective_are_recorded(root: Path) -> None:
    run = once("default", root)
    for t in run.of_state(States.COMPLETE):
        quality = cheap_task.quality(t.params["x"], t.params["y"], t.params.get("z", 0.0))
        size = cheap_task.size(t.params["x"])
        assert t.user_attrs["metrics"] == {"size": size, "quality": pytest.approx(quality), "epochs": BUDGET}
    assert run.results is not None
    best = max(run.of_state(States.COMPLETE), key=lambda t: t.value or 0)
    assert run.results["best_metrics"] == best.user_attrs["metrics"]


def test_results_file(root: Path) -> None:
    run = once("default", root)
    results = run.results
    assert results is not None
    study = optuna.load_study(study_name="cheap", storage=storage_url(run.sweep_dir))
    assert results["name"] == "optuna"
    assert results["study_name"] == "cheap"
    assert results["storage"] == storage_url(run.sweep_dir)
    assert results["direction"] == "maximize"
    assert results["best_params"] == study.best_params
    assert results["best_value"] == pytest.approx(study.best_value)
    assert results["best_trial"] == study.best_trial.number
    assert results["best_configuration"] == study.best_trial.user_attrs["config"]
    assert results["n_trials"] == N_TRIALS
    assert results["n_complete"] == len(run.configs_in("complete")) >= 1
    # Configurations paused at a rung lost their checkpoints when the sweep finished: stopped now.
    assert results["n_pruned"] == len(run.configs_in("stopped")) >= 1 and results["n_paused"] == 0
    assert results["n_resumed"] == len(run.trials) - N_TRIALS >= 1
    assert results["n_failed"] == 0
    assert results["budget_epochs"] == BUDGET
    assert results["epochs_trained"] == sum(len(t.intermediate_values) for t in run.trials)
    assert results["epochs_trained"] < results["epochs_unpruned"] == BUDGET * N_TRIALS
    assert "stopped" not in results and "fail_reasons" not in results
    assert not list(run.sweep_dir.glob("*.png")), "figures written with hydra.sweeper.figures=false"
    best_config = yaml.safe_load(Path(results["best_config"]).read_text())
    assert best_config["x"] == pytest.approx(study.best_params["x"])
    assert "hydra" not in best_config


@pytest.mark.slow  # a sweep, then its resumption
def test_resume_runs_only_the_missing_configurations_with_new_parameters(root: Path) -> None:
    runs = [sweep_in_process(root / "resume", f"hydra.sweeper.n_trials={n}") for n in (3, 5, 5)]
    for run in runs:
        run.assert_ok()
    first, second, third = runs
    assert sorted(first.configs) == [0, 1, 2]
    assert len(second.configs) == 5 and second.results is not None and second.results["n_trials"] == 5
    new = [c for n, c in second.configs.items() if n not in first.configs]
    assert len(new) == 2  # only the difference
    assert len(progress_lines(second.stderr + second.stdout)) == len(second.trials) - len(first.trials)
    assert all(t.state in (States.COMPLETE, States.PRUNED) for t in second.trials)
    assert len(third.trials) == len(second.trials) and not progress_lines(third.stderr + third.stdout)
    first_params = [t.params for t in first.trials]
    assert not [c.number for c in new if c.last.params in first_params]

    flipped = sweep_in_process(
        root / "resume", "hydra.sweeper.n_trials=6", "hydra.sweeper.direction=minimize"
    )
    assert flipped.returncode == 2
    (line,) = error_lines(flipped.stderr)
    assert "direction" in line
    assert len(flipped.trials) == len(second.trials)


@pytest.mark.slow
def test_none_pruner_trains_every_trial_fully(root: Path) -> None:
    run = sweep_in_process(root / "nop", "hydra/sweeper/pruner=none", "hydra.sweeper.n_trials=3")
    run.assert_ok()
    assert [t.state for t in run.trials] == [States.COMPLETE] * 3
    assert all(len(t.intermediate_values) == BUDGET for t in run.trials)
    assert run.results is not None
    assert run.results["epochs_trained"] == run.results["epochs_unpruned"] == 3 * BUDGET


@pytest.mark.slow
def test_random_sampler(root: Path) -> None:
    run = sweep_in_process(root / "random", "hydra/sweeper/sampler=random", "hydra.sweeper.n_trials=3")
    run.assert_ok()
    assert len(run.configs) == 3


# --- failures -------------------------------------------------------------------------------------


def test_failing_trials_are_recorded_and_the_sweep_goes_on(root: Path) -> None:
    run = sweep_in_process(
        root / "failing",
        "+hydra.sweeper.params.fail='choice(true, false)'",
        "hydra/sweeper/sampler=random",
        "hydra/sweeper/pruner=none",
        "hydra.sweeper.max_failure_rate=1.0",
        "hydra.sweeper.n_trials=6",
    )
    run.assert_ok()
    assert len(run.configs) == 6
    failed = run.of_state(States.FAIL)
    assert failed and len(failed) < len(run.trials)
    for t in run.trials:
        assert (t.state == States.FAIL) == t.params["fail"]
    for t in failed:
        assert t.user_attrs["fail_reason"] == "RuntimeError: boom"
    assert run.results is not None
    assert run.results["n_failed"] == len(failed)
    assert set(run.results["fail_reasons"]) == {t.number for t in failed}
    assert run.results["best_params"]["fail"] is False


@pytest.mark.slow
def test_nan_and_a_missing_objective_are_failed_trials(root: Path) -> None:
    run = sweep_in_process(
        root / "nan", "nan=true", "hydra.sweeper.max_failure_rate=1.0", "hydra.sweeper.n_trials=2"
    )
    run.assert_ok()
    assert [t.state for t in run.trials] == [States.FAIL] * 2
    assert all(t.user_attrs["fail_reason"] == "job returned nan" for t in run.trials)
    assert run.results is not None and run.results["best_value"] is None and run.results["best_params"] == {}

    wrong = sweep_in_process(
        root / "objective", "hydra.sweeper.objective=accuracy", "hydra.sweeper.max_failure_rate=1.0",
        "hydra.sweeper.n_trials=2", "hydra/sweeper/pruner=none",
    )  # fmt: skip
    wrong.assert_ok()
    reasons = {t.user_attrs["fail_reason"] for t in wrong.trials}
    assert reasons == {
        "job returned no 'accuracy' (hydra.sweeper.objective); it returned acc, size, quality, epochs"
    }


@pytest.mark.slow
def test_max_failure_rate_stops_the_sweep(root: Path) -> None:
    run = sweep_in_process(
        root / "rate", "fail=true", "hydra.sweeper.max_failure_rate=0.2", "hydra.sweeper.n_trials=20"
    )
    assert run.returncode == 2
    (line,) = error_lines(run.stderr)
    assert "max_failure_rate" in line
    # Stopped as soon as min_trials_for_failure_rate (default 5) trials had finished, all failed.
    assert [t.state for t in run.trials] == [States.FAIL] * 5
    assert run.results is not None  # written although the sweep stopped
    assert "max_failure_rate" in run.results["stopped"]


@pytest.mark.slow
def test_a_trial_raising_cuda_out_of_memory_fails_and_the_sweep_goes_on(root: Path) -> None:
    pytest.importorskip("torch")
    run = sweep_in_process(
        root / "oom",
        "chaos=torch.cuda.OutOfMemoryError",
        "chaos_trial=1",
        "hydra.sweeper.n_trials=3",
        "hydra/sweeper/pruner=none",
    )
    run.assert_ok()
    assert len(run.trials) == 3 and all(t.state != States.RUNNING for t in run.trials)
    assert run.trials[1].state == States.FAIL
    assert "OutOfMemoryError" in run.trials[1].user_attrs["fail_reason"]
    assert run.results is not None and "OutOfMemoryError" in run.results["fail_reasons"][1]


def test_ctrl_c_keeps_the_results_says_how_to_resume_and_leaves_nothing_running(root: Path) -> None:
    """Invariant: Ctrl-C leaves no trial RUNNING, loses no configuration (the one interrupted resumes
    from where its trial started), and says how to resume."""
    sweep_dir = root / "interrupted"
    run = sweep_in_process(
        sweep_dir, "chaos=builtins.KeyboardInterrupt", "chaos_trial=2", "hydra/sweeper/pruner=none"
    )
    assert run.returncode == 2
    (line,) = error_lines(run.stderr)
    assert line == (
        "error: interrupted: 3 configurations kept (2 ended or paused, 1 to resume from where its trial "
        f"started); to resume, run the same command with hydra.sweep.dir={sweep_dir}"
    )
    assert [t.state for t in run.trials][:2] != [States.RUNNING] * 2
    assert run.trials[2].state == States.FAIL and run.trials[2].user_attrs["fault"] == "interrupted"
    assert len(run.trials) == 3  # no trial started after the interrupt
    assert run.configs[2].state == "interrupted"
    assert run.results is not None and run.results["stopped"] == "interrupted"


# --- the final evaluation -------------------------------------------------------------------------


def test_final_evaluation_retrains_the_top_k_picks_by_the_objective_and_tests_only_the_pick(
    root: Path,
) -> None:
    run = sweep_in_process(
        root / "final", "hydra.sweeper.n_trials=8", "hydra.sweeper.final_evaluation.enabled=true",
        "hydra.sweeper.final_evaluation.baseline=true", "hydra.sweeper.final_evaluation.top_k=2",
        'hydra.sweeper.final_evaluation.overrides=["max_epochs=20"]',
        'hydra.sweeper.final_evaluation.test_overrides=["sleep_s=0.001"]',  # stands in for a test flag
    )  # fmt: skip
    run.assert_ok()
    final = yaml.safe_load((run.sweep_dir / FINAL_FILE).read_text())
    # The candidates: the two best configurations of the search (complete ones first).
    ranked = sorted(
        run.configs.values(), key=lambda c: (c.state != "complete", -c.epochs, -c.values[c.epochs][0])
    )
    candidates = final["candidates"]
    assert [c["configuration"] for c in candidates] == [c.number for c in ranked[:2]]
    for record in candidates:
        params = run.configs[record["configuration"]].last.params
        assert record["value"] == pytest.approx(expected_value(params, 20))  # retrained to 20 epochs
        assert record["state"] == "complete" and Path(record["output_dir"]).name.startswith("candidate-")
        assert "sleep_s=0.001" not in record["overrides"]  # no candidate is tested
    pick = max(candidates, key=lambda r: r["value"])
    incumbent, baseline = final["incumbent"], final["baseline"]
    assert incumbent["configuration"] == pick["configuration"] and incumbent["state"] == "complete"
    assert incumbent["chosen_because"] == f"best {pick['value']:.4g} of 2 retrained candidates"
    assert incumbent["candidate_value"] == pytest.approx(pick["value"])
    assert "sleep_s=0.001" in incumbent["overrides"] and "max_epochs=20" in incumbent["overrides"]
    assert Path(incumbent["output_dir"]).name == "final" and incumbent["metrics"]["epochs"] == 20
    # The baseline is the job's defaults (x=0.5, y=a, z=0), retrained and tested as the pick is.
    assert baseline["value"] == pytest.approx(cheap_task.learning_curve(0.5, "a", 0.0, 20))
    assert "sleep_s=0.001" in baseline["overrides"] and Path(baseline["output_dir"]).name == "baseline"
    assert run.results is not None
    assert run.results["final_evaluation"]["incumbent"]["metrics"] == incumbent["metrics"]
    assert len(run.configs) == 8  # the evaluations are not trials of the study


def test_a_short_sweep_still_ends_with_a_complete_configuration(root: Path) -> None:
    """Three configurations pause at rung 1 and only one of them could go on by the top-third rule;
    once the quota is spent and nothing runs, the best paused configuration of each bracket trains to
    the budget (as synchronous successive halving promotes at least one)."""
    run = sweep_in_process(root / "short", "hydra.sweeper.n_trials=3")
    run.assert_ok()
    (complete,) = run.configs_in("complete")
    assert complete.epochs == BUDGET and run.results is not None and run.results["best_value"] is not None
    finisher = complete.trials[-1]
    assert finisher.user_attrs["resume"]["to_budget"] is True


# --- bad input: one line, no study ----------------------------------------------------------------

BAD_INPUT = {
    "n_trials=0": (["hydra.sweeper.n_trials=0"], "n_trials"),
    "n_jobs=0": (["hydra.sweeper.n_jobs=0"], "n_jobs"),
    "direction": (["hydra.sweeper.direction=up"], "direction"),
    "max_failure_rate>1": (["hydra.sweeper.max_failure_rate=1.5"], "max_failure_rate"),
    "heartbeat 0": (["hydra.sweeper.heartbeat_interval=0"], "heartbeat_interval"),
    # Without heartbeats a killed sweeper's trials would stay RUNNING for ever (a silent zombie).
    "heartbeat null": (["hydra.sweeper.heartbeat_interval=null"], "stay RUNNING for ever"),
    "reduction_factor=1": (["hydra.sweeper.pruner.reduction_factor=1"], "reduction_factor"),
    "max_resource<min_resource": (
        ["hydra.sweeper.pruner.min_resource=3", "hydra.sweeper.pruner.max_resource=2"],
        "max_resource",
    ),
    "unknown sampler": (["hydra.sweeper.sampler._target_=no.such.Sampler"], "no.such.Sampler"),
    "unknown preflight_check": (["hydra.sweeper.preflight_check=no.such.check"], "preflight_check"),
    "unknown report": (["hydra.sweeper.report=no.such.report"], "report"),
    "interval(5,1)": (["x=interval(5,1)"], "x:"),
    "log bound 0": (["x=tag(log, interval(0, 1))"], "> 0"),
    "log bound < 0 in params": (["hydra.sweeper.params.x='tag(log, interval(-1, 1))'"], "> 0"),
    "malformed in params": (["hydra.sweeper.params.x='interval(1)'"], "interval(1)"),
    "duplicate choice": (["y=choice(a,a)"], "twice"),
    "empty space": (["x=0.5", "y=a", "z=0.1"], "empty"),
    "condition on unknown parent": (["hydra.sweeper.conditions.z='nope == 1'"], "nope"),
    "condition on unknown child": (["+hydra.sweeper.conditions.w='y == c'"], "w,"),
    "unsupported operator": (["hydra.sweeper.conditions.z='y ~= c'"], "~="),
    "unknown key": (["+hydra.sweeper.params.w='choice(1, 2)'"], "invalid override"),
    "budget key swept": (["max_epochs=choice(3, 9)"], "budget_key"),
}


def split(overrides: list[str]) -> tuple[list[str], list[str]]:
    """Hydra's split: `hydra.*` overrides configure the sweeper, the rest are the sweep's arguments."""
    hydra_side = [o for o in overrides if o.lstrip("+~").startswith("hydra")]
    return hydra_side, [o for o in overrides if o not in hydra_side]


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_sweeper_input_is_refused_in_one_line(case: str) -> None:
    """Through the function the sweeper calls before it opens a study (one in-process sweep below
    shows the command line's side: an `error:` line, exit code 2, no study)."""
    overrides, fragment = BAD_INPUT[case]
    hydra_side, arguments = split(overrides)
    try:
        config, compose = compose_sweep(hydra_side)
        prepare(sweeper_settings(config), "cheap_task", arguments, config, compose)
    except (SweepConfigError, SearchSpaceError) as exc:
        message = str(exc)
    except Exception as exc:  # Hydra refuses some before the sweeper sees them: that is one line too
        message = str(exc)
    else:
        pytest.fail("accepted")
    assert "\n" not in message.strip(), message
    assert fragment in message, message


def test_bad_input_on_the_command_line_exits_2_with_no_study(root: Path) -> None:
    run = sweep_in_process(root / "bad", "hydra.sweeper.pruner.reduction_factor=1")
    assert run.returncode == 2
    (line,) = error_lines(run.stderr)
    assert "reduction_factor" in line
    assert not run.has_db and not run.sweep_dir.exists()


def test_cheap_app_learning_curve_rises_and_saturates() -> None:
    values = [cheap_task.learning_curve(0.7, "c", 1.0, epoch) for epoch in range(1, 30)]
    assert values == sorted(values)
    assert math.isclose(values[-1], 0.8 + 0.1 + 0.05, rel_tol=1e-5)
