"""The sweeper as its own distribution: its wheel, installed with its dependencies from the package index
into a fresh virtual environment without torch, runs the numpy example app (examples/numpy_logreg) as a
real multirun that reports per epoch and is pruned, and the ten-line app of the sweeper's README.

Nothing of this checkout is on that environment's path: the apps run from a directory outside it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sweeps import REPO_ROOT, app_env

from hydra_plugins.hydra_bohb_sweeper.names import RESULTS_FILE

EXAMPLE_APP = REPO_ROOT / "examples" / "numpy_logreg" / "app.py"
SWEEPER_README = REPO_ROOT / "sweeper" / "README.md"
INSTALL_TIMEOUT_S = 600  # a cold pip cache downloads optuna, SQLAlchemy, numpy, ...


def run(command: list[str | Path], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = app_env(PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (
        f"{' '.join(map(str, command))}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


@pytest.fixture(scope="module")
def sweeper_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv from the base interpreter, holding the sweeper's wheel and what it depends on."""
    root = tmp_path_factory.mktemp("sweeper-dist")
    # This venv's hatchling builds the wheel (the app's dev extra has it): no build environment to set up.
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root,
         REPO_ROOT / "sweeper"], cwd=root)  # fmt: skip
    (wheel,) = root.glob("hydra_bohb_sweeper-*.whl")
    venv = root / "venv"
    run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", venv], cwd=root)
    python = venv / "bin" / "python"
    run([python, "-m", "pip", "install", "-q", wheel], cwd=root, timeout=INSTALL_TIMEOUT_S)
    return python


def results_of(sweep_dir: Path) -> dict:
    return yaml.safe_load((sweep_dir / RESULTS_FILE).read_text())


def readme_block(language: str, first_line: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", SWEEPER_README.read_text(), flags=re.S)
    (block,) = [b for b in blocks if b.startswith(first_line)]
    return block


@pytest.mark.slow
def test_the_wheel_installs_without_torch_or_the_app(sweeper_venv: Path, tmp_path: Path) -> None:
    probe = (
        "import importlib.util as u, hydra_plugins.hydra_bohb_sweeper as p; print(p.__path__[0]); "
        "print(*(m for m in ('torch', 'pytorch_lightning', 'jahs_bohb', 'wandb', 'matplotlib') "
        "if u.find_spec(m)))"
    )
    location, present = run([sweeper_venv, "-c", probe], cwd=tmp_path).stdout.splitlines()
    assert Path(location).is_relative_to(sweeper_venv.parents[1]), location  # the venv's, not the checkout's
    assert present == ""  # none of them: the extras are optional
    no_torch = subprocess.run(
        [sweeper_venv, "-c", "import torch"], cwd=tmp_path, capture_output=True, text=True
    )
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr


@pytest.mark.slow
def test_the_numpy_example_pauses_and_resumes_in_a_venv_without_torch(
    sweeper_venv: Path, tmp_path: Path
) -> None:
    sweep_dir = tmp_path / "sweep"
    overrides = [f"hydra.sweep.dir={sweep_dir}", "hydra.sweeper.n_trials=9", "n_train=1500", "n_val=500"]
    run([sweeper_venv, EXAMPLE_APP, "-m", *overrides], cwd=tmp_path)
    results = results_of(sweep_dir)
    assert results["n_complete"] >= 1 and results["n_pruned"] >= 1, results
    assert results["n_resumed"] >= 1  # paused at a rung with its .npz checkpoint, continued later
    assert results["n_failed"] == 0 and results["budget_epochs"] == 9
    assert 0.5 < results["best_value"] <= 1.0  # a validation accuracy on ten classes
    assert results["n_complete"] + results["n_pruned"] == 9
    # Without the figures extra, one line in the sweep's log names it.
    assert "pip install 'hydra-bohb-sweeper[figures]'" in (sweep_dir / "sweep.log").read_text()


@pytest.mark.slow
def test_the_ten_line_app_of_the_sweepers_readme(sweeper_venv: Path, tmp_path: Path) -> None:
    (tmp_path / "fit.yaml").write_text(readme_block("yaml", "# fit.yaml"))
    (tmp_path / "fit.py").write_text(readme_block("python", "# fit.py"))
    command = readme_block("bash", "python fit.py -m").replace("\\\n", " ")
    arguments = [a.strip("'") for a in re.findall(r"'[^']*'|\S+", command)][3:]  # after `python fit.py -m`
    sweep_dir = tmp_path / "sweep"
    run([sweeper_venv, "fit.py", "-m", f"hydra.sweep.dir={sweep_dir}", *arguments], cwd=tmp_path)
    results = results_of(sweep_dir)
    assert results["n_complete"] + results["n_pruned"] == 20 and results["n_pruned"] >= 1, results
    assert results["best_value"] < 1e-3  # (w - 3)^2 after 9 epochs of a good learning rate
    assert os.path.isfile(sweep_dir / "optuna.db")
