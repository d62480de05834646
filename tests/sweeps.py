"""Running sweeps from tests: in this process (the real Hydra multirun with the basic launcher, as
`python app.py -m` does it, minus the interpreter start-up) or as the real command line (any app, or
this project's train.py at a CPU-cheap size); and a single run of an app in this process.

In-process sweeps call the same sweeper, launcher and job code as the command line; only what needs
its own process (other launchers, killed sweepers, plugin discovery) runs as a subprocess.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import re
import runpy
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import optuna
import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.test_utils.test_utils import SweepTaskFunction
from omegaconf import DictConfig
from wandb_runs import unreachable_env

from hydra_plugins.hydra_bohb_sweeper import names
from hydra_plugins.hydra_bohb_sweeper._study import view as _view
from hydra_plugins.hydra_bohb_sweeper.names import RESULTS_FILE, STORAGE_FILE

REPO_ROOT = Path(__file__).resolve().parents[1]
CHEAP_APP = REPO_ROOT / "tests" / "cheap_app" / "cheap_task.py"
TIMEOUT_S = 300
States = optuna.trial.TrialState


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cheap_task = load_module(CHEAP_APP)


def scratch_dir(prefix: str) -> Path:
    """A fresh directory, on /dev/shm where there is one: SQLite commits there are several times faster
    than on disk."""
    shm = Path("/dev/shm")
    parent = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def storage_url(sweep_dir: Path) -> str:
    return f"sqlite:///{sweep_dir.resolve() / STORAGE_FILE}"


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@dataclass
class Sweep:
    """One `-m` run and what it left in its sweep directory."""

    sweep_dir: Path
    returncode: int
    stdout: str
    stderr: str
    study_name: str = "cheap"
    trials: list[optuna.trial.FrozenTrial] = field(default_factory=list)
    results: dict[str, Any] | None = None
    view: _view.StudyView | None = None

    def read_back(self) -> Sweep:
        if (self.sweep_dir / STORAGE_FILE).is_file():
            study = optuna.load_study(study_name=self.study_name, storage=storage_url(self.sweep_dir))
            self.trials = study.get_trials()
            self.view = _view.view_of(study)
        path = self.sweep_dir / RESULTS_FILE
        self.results = yaml.safe_load(path.read_text()) if path.is_file() else None
        return self

    @property
    def has_db(self) -> bool:
        return (self.sweep_dir / STORAGE_FILE).exists()

    def of_state(self, state: optuna.trial.TrialState) -> list[optuna.trial.FrozenTrial]:
        return [t for t in self.trials if t.state == state]

    @property
    def configs(self) -> dict[int, _view.Configuration]:
        """The configurations the sweep trained, each with its segments (trials) in order (paused ones
        whose checkpoint a finished sweep discarded are stopped)."""
        return self.view.configurations if self.view is not None else _view.configurations(self.trials)

    def configs_in(self, state: str) -> list[_view.Configuration]:
        return [c for c in self.configs.values() if c.state == state]

    def assert_ok(self) -> None:
        assert self.returncode == 0, self.stderr[-3000:]
        assert not error_lines(self.stderr)
        assert "Traceback" not in self.stderr
        assert self.results is not None


@contextlib.contextmanager
def _captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """stdout and stderr captured; the logging set up by the sweep and its jobs undone afterwards."""
    out, err = io.StringIO(), io.StringIO()
    root, sweeper = logging.getLogger(), logging.getLogger("hydra_plugins.hydra_bohb_sweeper")
    handlers, level = list(root.handlers), root.level
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield out, err
    finally:
        for handler in [*root.handlers, *sweeper.handlers]:
            if handler not in handlers:
                handler.close()
        root.handlers[:], root.level = handlers, level
        sweeper.handlers[:], sweeper.propagate = [], True
        logging.captureWarnings(False)
        optuna.logging.disable_propagation()
        optuna.logging.enable_default_handler()


class _KeptSweep(SweepTaskFunction):
    """Hydra's own in-process multirun of a task function (its test utilities), keeping the sweep
    directory for the test to read."""

    def __exit__(self, *exc: Any) -> None:
        pass


def sweep_in_process(
    sweep_dir: Path,
    *overrides: str,
    task: Callable[[DictConfig], Any] | None = None,
    app: Path = CHEAP_APP,
    config_name: str = "config",
    study_name: str = "cheap",
) -> Sweep:
    """`python <app> -m <overrides>` in this process: Hydra's multirun with the app's config and `task`
    (default: the cheap app's `run`). A sweep that exits (an `error:` line) gets its exit code."""
    sweep = _KeptSweep()
    sweep.calling_file, sweep.calling_module = str(app), None
    sweep.task_function = task or cheap_task.run
    sweep.config_path, sweep.config_name = "conf", config_name
    sweep.overrides, sweep.temp_dir = list(overrides), str(sweep_dir)
    returncode = 0
    GlobalHydra.instance().clear()
    with _captured() as (out, err):
        try:
            with sweep:
                pass
        except SystemExit as exc:
            returncode = int(exc.code or 0)
    if returncode and not any(sweep_dir.iterdir()):  # refused before any study: no folder, as on the CLI
        sweep_dir.rmdir()
    return Sweep(sweep_dir, returncode, out.getvalue(), err.getvalue(), study_name).read_back()


def run_in_process(script: Path, *argv: str) -> tuple[int, str, str]:
    """`python <script> <argv>` in this process: the script run as __main__ with sys.argv set, so Hydra
    parses the command line and finds the script's config as it does there. Returns (exit code, stdout,
    stderr)."""
    saved_argv, returncode = sys.argv, 0
    GlobalHydra.instance().clear()
    with _captured() as (out, err):
        try:
            sys.argv = [str(script), *argv]
            runpy.run_path(str(script), run_name="__main__")
        except SystemExit as exc:
            returncode = int(exc.code or 0)
        finally:
            sys.argv = saved_argv
            GlobalHydra.instance().clear()
    return returncode, out.getvalue(), err.getvalue()


def app_env(**extra: str) -> dict[str, str]:
    """The installed project and nothing from the checkout on the path: apps find the plugin the way
    any user's app does."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR")}
    return {**env, **extra}


def act_as_trial(
    monkeypatch: pytest.MonkeyPatch,
    study: optuna.Study,
    url: str,
    trial_number: int,
    *,
    budget: int,
    checkpoints: Path | None = None,
    role: str | None = None,
) -> None:
    """This process becomes the job of one trial, with the environment the sweeper launches it with."""
    env = {
        names.ENV_STUDY: study.study_name, names.ENV_STORAGE: url, names.ENV_TRIAL: str(trial_number),
        names.ENV_BUDGET: str(budget),
    }  # fmt: skip
    if checkpoints is not None:
        env[names.ENV_CHECKPOINTS] = str(checkpoints)
    if role is not None:
        env[names.ENV_ROLE] = role
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def sweep_cli(
    sweep_dir: Path,
    *overrides: str,
    script: Path | str = CHEAP_APP,
    cwd: Path = REPO_ROOT,
    env: dict[str, str] | None = None,
    study_name: str = "cheap",
    timeout: int = TIMEOUT_S,
) -> Sweep:
    """The real command line: `python <script> -m hydra.sweep.dir=<sweep_dir> <overrides>`."""
    proc = subprocess.run(
        [sys.executable, str(script), "-m", f"hydra.sweep.dir={sweep_dir}", *overrides],
        cwd=cwd,
        env=env or app_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Sweep(sweep_dir, proc.returncode, proc.stdout, proc.stderr, study_name).read_back()


def train_sweep_cli(sweep_dir: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    """`python train.py -m sweeper=bohb <overrides>` on small Fashion-MNIST subsets and narrow filter
    ranges (CPU-cheap trials), W&B wanted online with its server out of reach, as on this machine."""
    command = [
        sys.executable, "train.py", "-m", "sweeper=bohb",
        f"hydra.sweep.dir={sweep_dir}",
        "data.limit_train=500", "data.limit_val=300",
        # Keep each trial CPU-cheap; the rest of Table 1 is searched as configured.
        "model.n_filters_1=tag(log, int(interval(8, 32)))",
        "model.n_filters_2=tag(log, int(interval(8, 32)))",
        "model.n_filters_3=tag(log, int(interval(8, 32)))",
        'hydra.sweeper.final_evaluation.overrides=["trainer.max_epochs=3"]',
        *overrides,
    ]  # fmt: skip
    env = unreachable_env(sweep_dir.with_name(f"{sweep_dir.name}-home"))
    result = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, env=env, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


PROGRESS = re.compile(r"\[\s*\d+/\d+\] #\d+")


def progress_lines(text: str) -> list[str]:
    """The sweeper's one line per finished trial."""
    return [line for line in text.splitlines() if PROGRESS.search(line)]


def launched(sweep: Sweep) -> int:
    return sum(1 for t in sweep.trials if t.user_attrs.get("output_dir"))


def compose_sweep(
    overrides: Sequence[str], app: Path = CHEAP_APP, config_name: str = "config"
) -> tuple[DictConfig, Callable[[Sequence[str]], DictConfig]]:
    """The app's config as the sweeper receives it (hydra node included), and the function that composes
    a job's config with more overrides, as the sweeper's preflight does (Hydra's compose API)."""

    def compose_with(extra: Sequence[str]) -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(
            config_dir=str(app.parent / "conf"), version_base="1.3", job_name=app.stem
        ):
            return compose(config_name=config_name, overrides=[*overrides, *extra], return_hydra_config=True)

    return compose_with([]), compose_with


def sweeper_settings(config: DictConfig) -> dict[str, Any]:
    """The keyword arguments Hydra passes to the sweeper's constructor."""
    return {k: v for k, v in config.hydra.sweeper.items() if not str(k).startswith("_")}


def refusal(*overrides: str, arguments: tuple[str, ...] = ()) -> str:
    """The one-line error with which the sweeper refuses these settings before any study exists."""
    from hydra_plugins.hydra_bohb_sweeper._setup.preflight import prepare
    from hydra_plugins.hydra_bohb_sweeper._setup.search_space import SearchSpaceError
    from hydra_plugins.hydra_bohb_sweeper._setup.settings import SweepConfigError

    config, compose = compose_sweep(list(overrides))
    with pytest.raises((SweepConfigError, SearchSpaceError)) as refused:
        prepare(sweeper_settings(config), "cheap_task", list(arguments), config, compose)
    message = str(refused.value)
    assert "\n" not in message, message
    return message
