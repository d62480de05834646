"""The BOHB sweeper end to end: the cheap app (tests/cheap_app) run through its real command line with
`-m`, checked through the real Optuna storage and optimization_results.yaml.

Covers: n_trials finished, Hyperband pruning inside the job, conditional parameters reaching the job,
the results file, resuming a study, failing and NaN trials, max_failure_rate, the joblib launcher with
two trials in flight, one-line errors for bad sweeper input (and no study created), plugin discovery.

The sweeps are independent processes, so the module starts them all at once, three at a time (see
`runs`), and each test waits for the ones it reads; running any one test runs them all (~1 min).
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import optuna
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
CHEAP_APP = REPO_ROOT / "tests" / "cheap_app" / "cheap_task.py"
STUDY_NAME = "cheap"  # hydra.sweeper.study_name in tests/cheap_app/conf/config.yaml
N_TRIALS = 12  # hydra.sweeper.n_trials there
BUDGET = 9  # hydra.sweeper.pruner.max_resource there
RESULTS_FILE = "optimization_results.yaml"
TIMEOUT_S = 300
States = optuna.trial.TrialState

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _load_cheap_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cheap_task", CHEAP_APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cheap_task = _load_cheap_app()


# --- running the cheap app ------------------------------------------------------------------------


def app_env() -> dict[str, str]:
    # The installed project, nothing from the checkout on the path: the cheap app finds the plugin the
    # way any user's app does.
    env = os.environ.copy()
    env.pop("PYTHONPATH", None)
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def run_app(script: str, sweep_dir: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, script, "-m", f"hydra.sweep.dir={sweep_dir}", *overrides],
        cwd=REPO_ROOT,
        env=app_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def storage_url(sweep_dir: Path) -> str:
    return f"sqlite:///{sweep_dir.resolve() / 'optuna.db'}"


@dataclass
class Run:
    """One `-m` run of the cheap app, and what it left in its sweep directory."""

    sweep_dir: Path
    proc: subprocess.CompletedProcess[str]
    trials: list[optuna.trial.FrozenTrial]  # the study's trials after the run ([] without optuna.db)
    results: dict[str, Any] | None  # optimization_results.yaml, if written

    @property
    def has_db(self) -> bool:
        return (self.sweep_dir / "optuna.db").exists()

    def of_state(self, state: optuna.trial.TrialState) -> list[optuna.trial.FrozenTrial]:
        return [t for t in self.trials if t.state == state]


def sweep(sweep_dir: Path, *overrides: str, script: str = "tests/cheap_app/cheap_task.py") -> Run:
    proc = run_app(script, sweep_dir, *overrides)
    trials: list[optuna.trial.FrozenTrial] = []
    if (sweep_dir / "optuna.db").is_file():
        study = optuna.load_study(study_name=STUDY_NAME, storage=storage_url(sweep_dir))
        trials = study.get_trials()
    path = sweep_dir / RESULTS_FILE
    results = yaml.safe_load(path.read_text()) if path.is_file() else None
    return Run(sweep_dir, proc, trials, results)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_ok(run: Run) -> None:
    assert run.proc.returncode == 0, run.proc.stderr[-3000:]
    assert not error_lines(run.proc.stderr)
    assert "Traceback" not in run.proc.stderr
    assert run.results is not None


def expected_value(params: dict[str, Any], epoch: int) -> float:
    """What the cheap job computes for these sampled parameters (z is 0.0 where inactive)."""
    return cheap_task.learning_curve(params["x"], params["y"], params.get("z", 0.0), epoch)


def launched(run: Run) -> int:
    return run.proc.stdout.count("Launching 1 jobs locally")


# --- the runs -------------------------------------------------------------------------------------


def resume_runs(root: Path) -> list[Run]:
    """One study run four times in one sweep directory: n_trials 3, then 5, then 5 again, then 6 with
    the direction flipped."""
    return [
        sweep(root, "hydra.sweeper.n_trials=3"),
        sweep(root, "hydra.sweeper.n_trials=5"),
        sweep(root, "hydra.sweeper.n_trials=5"),
        sweep(root, "hydra.sweeper.n_trials=6", "hydra.sweeper.direction=minimize"),
    ]


def killed_then_resumed(
    root: Path, wait_s: float, heartbeat_s: int
) -> tuple[list[optuna.trial.FrozenTrial], Run]:
    """A sweep killed (SIGKILL) in the middle of its first trial, then resumed after `wait_s` seconds.

    With heartbeats every `heartbeat_s` seconds, a trial is stale 4 heartbeats after its sweeper died."""
    settings = (f"hydra.sweeper.heartbeat_interval={heartbeat_s}", "hydra.sweeper.n_trials=3")
    proc = subprocess.Popen(
        [sys.executable, CHEAP_APP, "-m", f"hydra.sweep.dir={root}", *settings, "sleep_s=0.3"],
        cwd=REPO_ROOT,
        env=app_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + TIMEOUT_S
    trials: list[optuna.trial.FrozenTrial] = []
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            study = optuna.load_study(study_name=STUDY_NAME, storage=storage_url(root))
            trials = study.get_trials()
        except Exception:  # no study yet
            trials = []
        if any(t.state == States.RUNNING and t.intermediate_values for t in trials):
            break
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    killed = optuna.load_study(study_name=STUDY_NAME, storage=storage_url(root)).get_trials()
    time.sleep(wait_s)
    return killed, sweep(root, *settings)


BAD_INPUT = {
    "n_trials=0": (["hydra.sweeper.n_trials=0"], "n_trials"),
    "n_jobs=0": (["hydra.sweeper.n_jobs=0"], "n_jobs"),
    "direction": (["hydra.sweeper.direction=up"], "direction"),
    "max_failure_rate>1": (["hydra.sweeper.max_failure_rate=1.5"], "max_failure_rate"),
    "reduction_factor=1": (["hydra.sweeper.pruner.reduction_factor=1"], "reduction_factor"),
    "max_resource<min_resource": (
        ["hydra.sweeper.pruner.min_resource=3", "hydra.sweeper.pruner.max_resource=2"],
        "max_resource",
    ),
    "unknown sampler": (["hydra.sweeper.sampler._target_=no.such.Sampler"], "no.such.Sampler"),
    "interval(5,1)": (["x=interval(5,1)"], "x:"),
    "log bound 0": (["x=tag(log, interval(0, 1))"], "> 0"),
    "log bound < 0 in params": (["hydra.sweeper.params.x='tag(log, interval(-1, 1))'"], "> 0"),
    "malformed in params": (["hydra.sweeper.params.x='interval(1)'"], "interval(1)"),
    "duplicate choice": (["y=choice(a,a)"], "twice"),
    "empty space": (["x=0.5", "y=a", "z=0.1"], "empty"),
    "condition on unknown parent": (["hydra.sweeper.conditions.z='nope == 1'"], "nope"),
    "condition on unknown child": (["+hydra.sweeper.conditions.w='y == c'"], "w,"),
    "unsupported operator": (["hydra.sweeper.conditions.z='y ~= c'"], "~="),
    "invalid storage": (["hydra.sweeper.storage=notadb://x"], "storage"),
}

# name -> what to run in a fresh directory; the longest first, so the short ones fill the gaps.
RUNS: dict[str, Callable[[Path], Any]] = {
    # Resumed once the killed trial is stale (4 s), or at once, well before it is (12 s).
    "killed, resumed late": lambda d: killed_then_resumed(d, wait_s=5.0, heartbeat_s=1),
    "killed, resumed at once": lambda d: killed_then_resumed(d, wait_s=0.0, heartbeat_s=3),
    "resume": resume_runs,
    "default": lambda d: sweep(d),  # the cheap app's own settings: 12 trials, Hyperband at 1/3/9 epochs
    "failing": lambda d: sweep(
        d,
        "+hydra.sweeper.params.fail='choice(true, false)'",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.max_failure_rate=1.0",
        "hydra.sweeper.n_trials=8",
    ),
    "max_failure_rate": lambda d: sweep(
        d, "fail=true", "hydra.sweeper.max_failure_rate=0.2", "hydra.sweeper.n_trials=20"
    ),
    "no pruning": lambda d: sweep(d, "hydra/sweeper/pruner=none", "hydra.sweeper.n_trials=4"),
    "nan": lambda d: sweep(d, "nan=true", "hydra.sweeper.max_failure_rate=1.0", "hydra.sweeper.n_trials=3"),
    "malformed command line": lambda d: sweep(d, "x=interval(1)"),
    "unknown preflight_check": lambda d: sweep(d, "hydra.sweeper.preflight_check=no.such.check"),
    "train.py with pruner=none": lambda d: sweep(
        d,
        "sweeper=bohb",
        "hydra/sweeper/pruner=none",
        "hydra.sweeper.n_trials=0",  # stop right after composing: no data, no training
        script="train.py",
    ),
    **{f"bad: {case}": (lambda d, o=overrides: sweep(d, *o)) for case, (overrides, _) in BAD_INPUT.items()},
}


def scratch_root(prefix: str) -> Path:
    """A fresh directory, on /dev/shm where there is one: SQLite commits there are several times faster
    than on disk."""
    shm = Path("/dev/shm")
    return Path(
        tempfile.mkdtemp(prefix=prefix, dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else None)
    )


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, Future[Any]]]:
    """Every run in RUNS, started together three at a time (they wait on SQLite and sleep a lot), each
    in its own directory."""
    root = scratch_root("bohb-loop-")
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {
            name: pool.submit(run, root / f"run{i}" / "sweep") for i, (name, run) in enumerate(RUNS.items())
        }
        yield futures
        for future in futures.values():
            future.cancel()
    shutil.rmtree(root, ignore_errors=True)


def result(runs: dict[str, Future[Any]], name: str) -> Any:
    return runs[name].result(timeout=TIMEOUT_S * 4)


# --- a sweep --------------------------------------------------------------------------------------


def test_sweep_runs_n_trials(runs: dict[str, Future[Any]]) -> None:
    run = result(runs, "default")
    assert_ok(run)
    assert [t.number for t in run.trials] == list(range(N_TRIALS))
    assert {t.state for t in run.trials} <= {States.COMPLETE, States.PRUNED}
    assert run.of_state(States.COMPLETE)
    assert launched(run) == N_TRIALS


def test_hyperband_prunes_inside_the_job(runs: dict[str, Future[Any]]) -> None:
    run = result(runs, "default")
    complete, pruned = run.of_state(States.COMPLETE), run.of_state(States.PRUNED)
    assert pruned, "no trial was pruned"
    assert all(sorted(t.intermediate_values) == list(range(1, BUDGET + 1)) for t in complete)
    for t in pruned:
        epochs = len(t.intermediate_values)
        assert epochs < min(len(c.intermediate_values) for c in complete)
        assert epochs in (1, 3), f"trial {t.number} pruned after {epochs} epochs, not at a rung"
        assert sorted(t.intermediate_values) == list(range(1, epochs + 1))


def test_job_receives_the_sampled_parameters(runs: dict[str, Future[Any]]) -> None:
    run = result(runs, "default")
    for t in run.trials:
        for epoch, value in t.intermediate_values.items():
            assert value == pytest.approx(expected_value(t.params, epoch))
        if t.state == States.COMPLETE:
            assert t.value == pytest.approx(expected_value(t.params, BUDGET))
        assert 0.0 <= t.params["x"] <= 1.0
        assert t.params["y"] in ("a", "b", "c")
        # The condition `z: y == c`: z is sampled, and passed to the job, only when y is c.
        assert ("z" in t.params) == (t.params["y"] == "c")
        overrides = t.user_attrs["overrides"]
        assert f"max_epochs={BUDGET}" in overrides
        assert ("z" in {o.split("=")[0] for o in overrides}) == ("z" in t.params)
        assert not any(o.startswith("optuna_trial.") for o in overrides)
        assert Path(t.user_attrs["output_dir"]).is_dir()
    ys = {t.params["y"] for t in run.trials}
    assert "c" in ys and len(ys) >= 2  # both sides of the condition were sampled


def test_results_file(runs: dict[str, Future[Any]]) -> None:
    run = result(runs, "default")
    results = run.results
    assert results is not None
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage_url(run.sweep_dir))
    assert results["name"] == "optuna"
    assert results["study_name"] == STUDY_NAME
    assert results["storage"] == storage_url(run.sweep_dir)
    assert results["direction"] == "maximize"
    assert results["best_params"] == study.best_params
    assert results["best_value"] == pytest.approx(study.best_value)
    assert results["best_trial"] == study.best_trial.number
    assert results["n_trials"] == len(run.trials) == N_TRIALS
    assert results["n_complete"] == len(run.of_state(States.COMPLETE))
    assert results["n_pruned"] == len(run.of_state(States.PRUNED)) >= 1
    assert results["n_failed"] == 0
    assert results["budget_epochs"] == BUDGET
    assert results["epochs_trained"] == sum(len(t.intermediate_values) for t in run.trials)
    assert results["epochs_trained"] < results["epochs_unpruned"] == BUDGET * N_TRIALS
    assert "stopped" not in results and "fail_reasons" not in results
    best_config = yaml.safe_load(Path(results["best_config"]).read_text())
    assert best_config["optuna_trial"] == {"study_name": None, "storage": None, "number": None}
    assert best_config["x"] == pytest.approx(study.best_params["x"])


def test_resume_runs_only_the_missing_trials(runs: dict[str, Future[Any]]) -> None:
    first, second, third, _ = result(runs, "resume")
    for run in (first, second, third):
        assert_ok(run)
    assert [t.number for t in first.trials] == list(range(3))
    assert launched(first) == 3

    assert [t.number for t in second.trials] == list(range(5))
    assert launched(second) == 2  # only the difference
    assert all(t.state in (States.COMPLETE, States.PRUNED) for t in second.trials)
    assert second.results["n_trials"] == 5

    assert len(third.trials) == 5
    assert launched(third) == 0  # nothing left to run
    assert third.results["n_trials"] == 5


def test_resume_samples_new_configurations(runs: dict[str, Future[Any]]) -> None:
    trials = result(runs, "resume")[1].trials
    first_run = [t.params for t in trials[:3]]
    assert not [t.number for t in trials[3:] if t.params in first_run]


def test_resume_with_another_direction_is_refused(runs: dict[str, Future[Any]]) -> None:
    run = result(runs, "resume")[3]
    assert run.proc.returncode != 0
    (line,) = error_lines(run.proc.stderr)
    assert "direction" in line
    assert len(run.trials) == 5


def test_trial_of_a_killed_sweeper_is_failed_as_stale_and_retried(runs: dict[str, Future[Any]]) -> None:
    killed, run = result(runs, "killed, resumed late")
    assert [t.state for t in killed] == [States.RUNNING], "the sweeper was not killed in its first trial"
    assert_ok(run)
    stale = run.trials[0]
    assert stale.state == States.FAIL
    retries = [t for t in run.trials if t.system_attrs.get("failed_trial") == stale.number]
    assert len(retries) == 1
    assert retries[0].state in (States.COMPLETE, States.PRUNED)
    assert retries[0].params == stale.params
    assert not [t for t in run.trials if t.state in (States.RUNNING, States.WAITING)]


def test_retry_of_a_killed_trial_runs_when_resumed_at_once(runs: dict[str, Future[Any]]) -> None:
    killed, run = result(runs, "killed, resumed at once")
    assert [t.state for t in killed] == [States.RUNNING]
    assert_ok(run)
    assert not [t.number for t in run.trials if t.state in (States.RUNNING, States.WAITING)]
    retries = [t for t in run.trials if t.system_attrs.get("failed_trial") == 0]
    assert [t.state in (States.COMPLETE, States.PRUNED) for t in retries] == [True]


def test_none_pruner_trains_every_trial_fully(runs: dict[str, Future[Any]]) -> None:
    run = result(runs, "no pruning")
    assert_ok(run)
    assert [t.state for t in run.trials] == [States.COMPLETE] * 4
    assert all(len(t.intermediate_values) == BUDGET for t in run.trials)
    assert run.results["epochs_trained"] == run.results["epochs_unpruned"] == 4 * BUDGET


# --- failures -------------------------------------------------------------------------------------


def test_failing_trials_are_recorded_and_the_sweep_goes_on(runs: dict[str, Future[Any]]) -> None:
    run = result(runs, "failing")
    assert_ok(run)
    assert len(run.trials) == 8
    failed = run.of_state(States.FAIL)
    assert failed, "no trial sampled fail=true"
    assert len(failed) < len(run.trials), "every trial sampled fail=true"
    for t in run.trials:
        assert (t.state == States.FAIL) == t.params["fail"]
    for t in failed:
        assert "boom" in t.user_attrs["fail_reason"]
        assert "RuntimeError" in t.user_attrs["fail_reason"]
    assert run.results["n_failed"] == len(failed)
    assert run.results["n_trials"] == 8
    assert set(run.results["fail_reasons"]) == {t.number for t in failed}
    assert run.results["best_params"]["fail"] is False


def test_nan_result_is_a_failed_trial(runs: dict[str, Future[Any]]) -> None:
    run = result(runs, "nan")
    assert_ok(run)
    assert [t.state for t in run.trials] == [States.FAIL] * 3
    assert all("nan" in t.user_attrs["fail_reason"] for t in run.trials)
    assert run.results["n_failed"] == 3
    assert run.results["best_value"] is None and run.results["best_params"] == {}


def test_max_failure_rate_stops_the_sweep(runs: dict[str, Future[Any]]) -> None:
    run = result(runs, "max_failure_rate")
    assert run.proc.returncode != 0
    (line,) = error_lines(run.proc.stderr)
    assert "max_failure_rate" in line
    assert "Traceback" not in run.proc.stderr
    # Stopped as soon as min_trials_for_failure_rate (default 5) trials had finished, all failed.
    assert [t.state for t in run.trials] == [States.FAIL] * 5
    assert run.results is not None  # written although the sweep stopped
    assert run.results["n_failed"] == 5
    assert "max_failure_rate" in run.results["stopped"]
    assert all("boom" in reason for reason in run.results["fail_reasons"].values())


# --- bad input: one line, no study ----------------------------------------------------------------


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_sweeper_input_fails_in_one_line_before_any_study(
    case: str, runs: dict[str, Future[Any]]
) -> None:
    run = result(runs, f"bad: {case}")
    _, fragment = BAD_INPUT[case]
    assert run.proc.returncode != 0
    lines = error_lines(run.proc.stderr)
    assert len(lines) == 1, run.proc.stderr[-3000:]
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in run.proc.stderr
    assert not run.has_db
    assert launched(run) == 0


def test_malformed_command_line_expression_is_refused_by_hydra(runs: dict[str, Future[Any]]) -> None:
    """Hydra parses the command line before the sweeper sees it: its own (multi-line) message."""
    run = result(runs, "malformed command line")
    assert run.proc.returncode != 0
    assert "interval(1)" in run.proc.stderr
    assert "Traceback" not in run.proc.stderr
    assert not run.has_db


def test_unknown_preflight_check_fails_in_one_line(runs: dict[str, Future[Any]]) -> None:
    run = result(runs, "unknown preflight_check")
    assert run.proc.returncode != 0
    (line,) = error_lines(run.proc.stderr)
    assert "preflight_check" in line
    assert not run.has_db


def test_train_sweep_composes_with_the_none_pruner(runs: dict[str, Future[Any]]) -> None:
    """`sweeper=bohb` sets the pruner's fields; `hydra/sweeper/pruner=none` must still compose (it did not
    once): the run gets as far as the sweeper's own check of n_trials=0."""
    run = result(runs, "train.py with pruner=none")
    assert run.proc.returncode != 0
    (line,) = error_lines(run.proc.stderr)
    assert "n_trials" in line
    assert not run.has_db


# --- plugin discovery -----------------------------------------------------------------------------

DISCOVER = (
    "from hydra.core.plugins import Plugins; from hydra.plugins.sweeper import Sweeper; "
    "print(*(f'{c.__module__}.{c.__name__}' for c in Plugins.instance().discover(Sweeper)))"
)
PLUGIN = "hydra_plugins.jahs_bohb_sweeper.bohb_sweeper.BOHBSweeper"


def discovered_sweepers(cwd: Path, env: dict[str, str]) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", DISCOVER], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_hydra_discovers_the_sweeper() -> None:
    names = discovered_sweepers(REPO_ROOT, app_env())
    assert PLUGIN in names
    assert [name for name in names if name.endswith(".BOHBSweeper")] == [PLUGIN]


def test_hydra_discovers_the_sweeper_outside_the_repository(tmp_path: Path) -> None:
    env = os.environ.copy()
    env.pop("PYTHONPATH", None)
    assert PLUGIN in discovered_sweepers(tmp_path, env)


def test_hydra_plugins_is_a_namespace_package() -> None:
    assert (REPO_ROOT / "src" / "hydra_plugins" / "jahs_bohb_sweeper" / "__init__.py").is_file()
    assert not (REPO_ROOT / "src" / "hydra_plugins" / "__init__.py").exists()


def test_cheap_app_learning_curve_rises_and_saturates() -> None:
    values = [cheap_task.learning_curve(0.7, "c", 1.0, epoch) for epoch in range(1, 30)]
    assert values == sorted(values)
    assert math.isclose(values[-1], 0.8 + 0.1 + 0.05, rel_tol=1e-5)


# --- parallel trials ------------------------------------------------------------------------------


def test_joblib_launcher_with_two_workers_prunes() -> None:
    """Last in the file, so that it has the machine to itself after the runs above."""
    root = scratch_root("bohb-joblib-")
    try:
        run = sweep(root / "sweep", "hydra/launcher=joblib", "hydra.sweeper.n_jobs=2")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert_ok(run)
    assert len(run.trials) == N_TRIALS
    assert {t.state for t in run.trials} <= {States.COMPLETE, States.PRUNED}
    assert run.of_state(States.PRUNED)
    for t in run.trials:
        for epoch, value in t.intermediate_values.items():
            assert value == pytest.approx(expected_value(t.params, epoch))
    spans = [(t.datetime_start, t.datetime_complete) for t in run.trials]
    assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1 :]), (
        "no two trials were in flight at once"
    )
    assert run.results["n_trials"] == N_TRIALS and run.results["n_pruned"] >= 1
