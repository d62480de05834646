"""A search space the job cannot accept is refused before the first trial, in one line, with no study:
the sweeper composes the job config at each end of every parameter's range (`preflight_check`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CASES = [
    ("optimizer.lr=tag(log, interval(1e-4, 1e-1))", "optimizer.lr=0.0001 is out of range"),
    ("optimizer=choice(adam, adamw)", "optimizer/adamw"),
    ("model.n_filters_1=int(interval(4, 64))", "model.n_filters_1=4 is out of range"),
    ("data.batch_size=choice(32, 64)", "data.batch_size=32 is out of range"),
    ("trainer.max_epochs=5", "hydra.sweeper.pruner.max_resource"),
]


@pytest.mark.parametrize(("override", "message"), CASES)
def test_space_the_job_refuses_fails_before_any_trial(tmp_path: Path, override: str, message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "train.py", "-m", "sweeper=bohb", f"hydra.sweep.dir={tmp_path}", override],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], proc.stderr[-2000:]
    assert not (tmp_path / "optuna.db").exists()
