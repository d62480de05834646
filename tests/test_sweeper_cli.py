"""The sweeper as a user meets it: the real command line, apps that know nothing of this project, killed
sweepers, and Hydra finding the plugin from any directory (editable and wheel installs). Other launchers
(joblib, submitit, SLURM) are in test_faults.py and test_slurm.py.

The sweeps are independent processes, so the module starts them together, three at a time (see
`runs`), and each test waits for the ones it reads.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import optuna
import pytest
from sweeps import (
    CHEAP_APP,
    REPO_ROOT,
    TIMEOUT_S,
    Sweep,
    app_env,
    error_lines,
    progress_lines,
    scratch_dir,
    storage_url,
    sweep_cli,
)

States = optuna.trial.TrialState
PLUGIN_DIR = REPO_ROOT / "hydra_plugins" / "hydra_bohb_sweeper"
TOY_APP = REPO_ROOT / "tests" / "foreign_app" / "toy.py"
TOY_SWEEP = (
    "hydra/sweeper=bohb",
    "hydra.sweeper.direction=minimize",
    "x=interval(-5.0, 5.0)",
    "y=choice(-2, 0, 2)",
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- apps from elsewhere --------------------------------------------------------------------------


def foreign_checkout(root: Path, *files: tuple[str, str]) -> tuple[Path, dict[str, str]]:
    """A directory outside this checkout holding the app's files, and an environment in which this
    project's app and torch/Lightning cannot be imported: the sweeper must not need them."""
    root.mkdir(parents=True)
    blocked = root / "blocked"
    for package in ("jahs_bohb", "torch", "pytorch_lightning"):
        (blocked / package).mkdir(parents=True)
        (blocked / package / "__init__.py").write_text(f"raise ImportError('{package} is blocked here')\n")
    for name, text in files:
        (root / name).write_text(text)
    return root, app_env(PYTHONPATH=str(blocked))


def toy_sweep(root: Path) -> Sweep:
    cwd, env = foreign_checkout(root, ("toy.py", TOY_APP.read_text()))
    return sweep_cli(root / "sweep", *TOY_SWEEP, script="toy.py", cwd=cwd, env=env, study_name="toy")


OWN_APP_DOC = REPO_ROOT / "docs" / "own-app.md"


def readme_block(language: str, first_line: str) -> str:
    """The fenced `language` block of docs/own-app.md whose first line starts with `first_line`."""
    blocks = re.findall(rf"```{language}\n(.*?)```", OWN_APP_DOC.read_text(), flags=re.S)
    (block,) = [b for b in blocks if b.startswith(first_line)]
    return block


def readme_app_sweep(root: Path) -> Sweep:
    """The 'use the sweeper in your own app' example (docs/own-app.md): its app file and its command."""
    app = readme_block("python", "# fit.py")
    command = readme_block("bash", "python fit.py -m").replace("\\\n", " ")
    arguments = [a.strip("'") for a in re.findall(r"'[^']*'|\S+", command)][3:]  # after `python fit.py -m`
    cwd, env = foreign_checkout(root, ("fit.py", app))
    return sweep_cli(root / "sweep", *arguments, script="fit.py", cwd=cwd, env=env, study_name="fit")


# --- sweepers killed and resumed ------------------------------------------------------------------


def killed_when(root: Path, settings: tuple[str, ...], ready: Callable[[list[Any]], bool]) -> list[Any]:
    """The cheap app's sweep (0.3 s per epoch) SIGKILLed as soon as `ready(trials)`; its trials then."""
    proc = subprocess.Popen(
        [sys.executable, CHEAP_APP, "-m", f"hydra.sweep.dir={root}", *settings, "sleep_s=0.3"],
        cwd=REPO_ROOT, env=app_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + TIMEOUT_S
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            trials = optuna.load_study(study_name="cheap", storage=storage_url(root)).get_trials()
        except Exception:  # no study yet
            trials = []
        if ready(trials):
            break
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    return optuna.load_study(study_name="cheap", storage=storage_url(root)).get_trials()


def in_flight(trials: list[Any]) -> bool:
    return any(t.state == States.RUNNING for t in trials)


def training(trials: list[Any]) -> bool:
    return any(t.state == States.RUNNING and t.intermediate_values for t in trials)


def killed_then_resumed(root: Path, wait_s: float, heartbeat_s: int) -> tuple[list[Any], Sweep]:
    """A sweep killed (SIGKILL) in the middle of its first trial, then resumed after `wait_s` seconds.

    With heartbeats every `heartbeat_s` seconds, a trial is stale 4 heartbeats after its sweeper died."""
    settings = (
        f"hydra.sweeper.heartbeat_interval={heartbeat_s}", "hydra.sweeper.n_trials=3",
        "hydra/sweeper/pruner=none",  # the first trial runs all its epochs: a long time to be killed in
    )  # fmt: skip
    killed = killed_when(root, settings, training)
    time.sleep(wait_s)
    return killed, sweep_cli(root, *settings)


def killed_with_configurations_paused(root: Path) -> tuple[list[Any], list[Path], Sweep]:
    """A sweep SIGKILLed while configurations wait paused at a rung and another trial trains, with a
    half-written checkpoint left behind (a job killed while saving), then resumed once the killed trial
    is stale. Returns the trials at the kill, the checkpoints they recorded, and the resumed sweep."""
    settings = ("hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.n_trials=9")
    killed = killed_when(
        # A trial in flight beside them (a first segment at rung 1 is in flight for one short epoch only,
        # so this waits for any running trial, not one that has reported).
        root,
        settings,
        lambda trials: sum("paused" in t.user_attrs for t in trials) >= 3 and in_flight(trials),
    )
    checkpoints = [Path(t.user_attrs["paused"]["path"]) for t in killed if "paused" in t.user_attrs]
    # What a job killed while saving leaves: a temporary file beside the checkpoint, never renamed.
    (checkpoints[0].parent / f".{checkpoints[0].name}.4242.tmp").write_text("{half-writ")
    # No wait: the resumed sweeper fails the killed trial once its beat has not changed for 4 s.
    return killed, [c for c in checkpoints if c.exists()], sweep_cli(root, *settings)


# name -> what to run in a fresh directory; the longest first, so the short ones fill the gaps.
FAST_RUNS: dict[str, Callable[[Path], Any]] = {
    "bad input": lambda d: sweep_cli(d / "sweep", "hydra.sweeper.pruner.reduction_factor=1"),
    "malformed command line": lambda d: sweep_cli(d / "sweep", "x=interval(1)"),
}
SLOW_RUNS: dict[str, Callable[[Path], Any]] = {
    # Resumed late (its last beat older than twice the grace of 4 s: stale on sight), or at once, well
    # before it is stale (the rerun waits out the grace of 12 s on its own clock): mostly waiting.
    "killed, resumed late": lambda d: killed_then_resumed(d / "sweep", wait_s=8.5, heartbeat_s=1),
    "killed, resumed at once": lambda d: killed_then_resumed(d / "sweep", wait_s=0.0, heartbeat_s=3),
    "killed with configurations paused": lambda d: killed_with_configurations_paused(d / "sweep"),
    "toy": toy_sweep,
    "readme app": readme_app_sweep,
}


def start_all(runs: dict[str, Callable[[Path], Any]], prefix: str) -> Iterator[dict[str, Future[Any]]]:
    """Every run started at once, three at a time (they wait on SQLite and sleep a lot)."""
    root = scratch_dir(prefix)
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(run, root / f"run{i}") for i, (name, run) in enumerate(runs.items())}
        yield futures
        for future in futures.values():
            future.cancel()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, Future[Any]]]:
    yield from start_all(FAST_RUNS, "bohb-cli-")


@pytest.fixture(scope="module")
def slow_runs() -> Iterator[dict[str, Future[Any]]]:
    yield from start_all(SLOW_RUNS, "bohb-cli-slow-")


def result(runs: dict[str, Future[Any]], name: str) -> Any:
    return runs[name].result(timeout=TIMEOUT_S * 4)


# --- any Hydra app --------------------------------------------------------------------------------


@pytest.mark.slow
def test_an_app_unknown_to_this_project_sweeps_with_the_official_grammar(
    slow_runs: dict[str, Future[Any]],
) -> None:
    """The issue's ten-line app, from a directory outside the checkout, with this project's app, torch
    and Lightning unimportable: the official sweeper's defaults (20 trials) and results file."""
    run = result(slow_runs, "toy")
    run.assert_ok()
    assert run.results is not None
    assert len(run.trials) == 20 and all(t.state == States.COMPLETE for t in run.trials)
    for t in run.trials:
        assert t.value == pytest.approx((t.params["x"] - 1) ** 2 + (t.params["y"] + 2) ** 2)
        assert -5.0 <= t.params["x"] <= 5.0 and t.params["y"] in (-2, 0, 2)
    assert run.results["name"] == "optuna" and run.results["direction"] == "minimize"
    assert run.results["study_name"] == "toy"  # the app's job name
    assert run.results["best_params"]["y"] == -2
    assert run.results["best_value"] == min(t.value for t in run.trials)
    assert "epochs_trained" not in run.results  # the app reports nothing per epoch
    assert len(progress_lines(run.stdout + run.stderr)) == 20
    # The console: the start line, one line per trial, the summary; the rest is in sweep.log.
    assert len((run.stdout + run.stderr).splitlines()) <= 20 + 15, run.stdout + run.stderr
    assert "Launching 1 jobs locally" in (run.sweep_dir / "sweep.log").read_text()


@pytest.mark.slow
def test_the_readme_app_reports_per_epoch_and_is_pruned(slow_runs: dict[str, Future[Any]]) -> None:
    run = result(slow_runs, "readme app")
    run.assert_ok()
    assert run.of_state(States.PRUNED), "no trial was pruned"
    lines = progress_lines(run.stdout + run.stderr)
    assert len(lines) == 20
    assert re.search(r"\[ 1/20\] #0 +(COMPLETE|PRUNED) +epochs \d/9  value \d+\.\d{4}", lines[0])
    budget = run.results["budget_epochs"] if run.results else None
    for t in run.of_state(States.COMPLETE):
        assert len(t.intermediate_values) == budget
        assert t.value == pytest.approx((3 - 3 * (1 - (1 - 2 * t.params["lr"]) ** budget)) ** 2)


def test_nothing_under_the_plugin_imports_the_app() -> None:
    imported = set()
    for path in PLUGIN_DIR.rglob("*.py"):
        if path.relative_to(PLUGIN_DIR) == Path("_integrations", "lightning.py"):
            continue  # the Lightning callback: imported by Lightning apps only
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert not imported & {"jahs_bohb", "torch", "torchvision"}
    assert not (REPO_ROOT / "hydra_plugins" / "__init__.py").exists()  # a namespace package


# --- the command line -----------------------------------------------------------------------------


def test_bad_input_on_the_command_line_is_one_line_exit_2_and_no_study(runs: dict[str, Future[Any]]) -> None:
    run = result(runs, "bad input")
    assert run.returncode == 2
    (line,) = error_lines(run.stderr)
    assert "reduction_factor" in line
    assert "Traceback" not in run.stderr and not run.has_db


def test_malformed_command_line_expression_is_refused_by_hydra(runs: dict[str, Future[Any]]) -> None:
    """Hydra parses the command line before the sweeper sees it: its own (multi-line) message."""
    run = result(runs, "malformed command line")
    assert run.returncode != 0
    assert "interval(1)" in run.stderr
    assert "Traceback" not in run.stderr and not run.has_db


@pytest.mark.slow
def test_trial_of_a_killed_sweeper_is_failed_as_stale_and_retried(slow_runs: dict[str, Future[Any]]) -> None:
    killed, run = result(slow_runs, "killed, resumed late")
    assert [t.state for t in killed] == [States.RUNNING], "the sweeper was not killed in its first trial"
    run.assert_ok()
    stale = run.trials[0]
    assert stale.state == States.FAIL and stale.user_attrs["fault"] == "stale"
    retries = [t for t in run.trials if t.user_attrs.get("follows") == stale.number]
    assert len(retries) == 1
    assert retries[0].state in (States.COMPLETE, States.PRUNED)
    assert retries[0].params == stale.params
    assert not [t for t in run.trials if t.state in (States.RUNNING, States.WAITING)]


@pytest.mark.slow
def test_retry_of_a_killed_trial_runs_when_resumed_at_once(slow_runs: dict[str, Future[Any]]) -> None:
    killed, run = result(slow_runs, "killed, resumed at once")
    assert [t.state for t in killed] == [States.RUNNING]
    run.assert_ok()
    assert not [t.number for t in run.trials if t.state in (States.RUNNING, States.WAITING)]
    retries = [t for t in run.trials if t.user_attrs.get("follows") == 0]
    assert [t.state in (States.COMPLETE, States.PRUNED) for t in retries] == [True]


@pytest.mark.slow
def test_paused_configurations_survive_a_killed_sweeper_and_resume(slow_runs: dict[str, Future[Any]]) -> None:
    killed, checkpoints, run = result(slow_runs, "killed with configurations paused")
    paused = [t.number for t in killed if "paused" in t.user_attrs]
    assert len(paused) >= 3 and any(t.state == States.RUNNING for t in killed)
    assert len(checkpoints) == len(paused)  # every paused configuration kept its checkpoint
    run.assert_ok()
    configs = run.configs
    assert len(configs) == 9 and {c.state for c in configs.values()} <= {"complete", "stopped"}
    # Configurations paused before the kill were resumed after it, from the checkpoints they recorded
    # (the half-written file beside one was never read: the app would fail on its JSON).
    after = [t for t in run.trials if t.number >= len(killed) and "resume" in t.user_attrs]
    assert {t.user_attrs["resume"]["trial"] for t in after} & set(paused)
    assert all(t.state in (States.COMPLETE, States.PRUNED) for t in after)
    assert not (run.sweep_dir / "checkpoints").exists()  # nothing left once the sweep has ended


# --- plugin discovery -----------------------------------------------------------------------------

DISCOVER = (
    "from hydra.core.plugins import Plugins; from hydra.plugins.sweeper import Sweeper; "
    "import hydra_plugins.hydra_bohb_sweeper as p; print(p.__path__[0]); "
    "print(*(f'{c.__module__}.{c.__name__}' for c in Plugins.instance().discover(Sweeper)))"
)
PLUGIN = "hydra_plugins.hydra_bohb_sweeper.bohb_sweeper.BOHBSweeper"


def discovered(cwd: Path, python: list[str], env: dict[str, str]) -> tuple[Path, list[str]]:
    proc = subprocess.run(
        [*python, "-c", DISCOVER], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    location, sweepers = proc.stdout.splitlines()
    return Path(location), sweepers.split()


def test_hydra_discovers_the_editable_install_from_any_directory(tmp_path: Path) -> None:
    location, sweepers = discovered(tmp_path, [sys.executable], app_env())
    assert location == PLUGIN_DIR
    assert [name for name in sweepers if name.endswith(".BOHBSweeper")] == [PLUGIN]


def test_hydra_discovers_a_wheel_install_from_any_directory(tmp_path: Path) -> None:
    """Both distributions' wheels: the sweeper's (sweeper/pyproject.toml) holds the plugin and nothing
    else, the app's (the root pyproject.toml) the app and not the plugin. The sweeper's wheel, unpacked
    into a folder of its own on the path of an interpreter that does not read the editable install's .pth
    files: the plugin found there, not in this checkout."""
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    build = subprocess.run(
        [*pip_wheel, "-w", tmp_path, REPO_ROOT / "sweeper", REPO_ROOT], capture_output=True, text=True
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("hydra_bohb_sweeper-*.whl")
    (app_wheel,) = tmp_path.glob("jahs_bohb-*.whl")
    with zipfile.ZipFile(app_wheel) as archive:
        app_files = archive.namelist()
    assert "jahs_bohb/pipeline.py" in app_files
    assert not [name for name in app_files if name.startswith("hydra_plugins/")]
    with zipfile.ZipFile(wheel) as archive:
        packed = {Path(name).parts[0] for name in archive.namelist()}
        archive.extractall(tmp_path / "site")
    assert {part for part in packed if not part.endswith(".dist-info")} == {"hydra_plugins"}
    plugin_files = {str(p.relative_to(PLUGIN_DIR)) for p in PLUGIN_DIR.rglob("*.py")}
    unpacked = tmp_path / "site" / "hydra_plugins" / "hydra_bohb_sweeper"
    assert {str(p.relative_to(unpacked)) for p in unpacked.rglob("*.py")} == plugin_files
    assert not (tmp_path / "site" / "hydra_plugins" / "__init__.py").exists()
    site_packages = next(Path(sys.prefix).glob("lib/python*/site-packages"))
    env = app_env(PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), str(site_packages)]))
    # The base interpreter with -s -S: no site-packages of its own, no .pth files (no editable paths).
    python = [getattr(sys, "_base_executable", sys.executable), "-s", "-S"]
    location, sweepers = discovered(tmp_path, python, env)
    assert location == tmp_path / "site" / "hydra_plugins" / "hydra_bohb_sweeper"
    assert PLUGIN in sweepers
