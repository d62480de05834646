"""The real entry point: `python train.py ...` trains and writes result.yaml (with W&B out of reach, its
run offline); bad overrides are refused up front with a one-line `error: <field>=...` and no result; a
short training run learns."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from wandb_runs import inspect, unreachable_env, wandb_lines

from jahs_bohb import pipeline
from jahs_bohb.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 600


def run_train(*overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "train.py", *overrides],
        cwd=REPO_ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def read_result(run_dir: Path) -> dict:
    path = run_dir / pipeline.RESULT_FILE
    assert path.is_file(), f"no {path}"
    return yaml.safe_load(path.read_text())


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


# --- (a) a real run ------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_cli_one_epoch_writes_result_and_its_wandb_run_offline(tmp_path: Path) -> None:
    """A first run where W&B is wanted online but its server is out of reach (as on a cluster node):
    one line says so, the run is kept offline on disk, training goes on."""
    env = unreachable_env(tmp_path)
    proc = subprocess.run(
        [sys.executable, "train.py", "trainer.max_epochs=1", "data.limit_train=2000", "data.limit_val=1000",
         f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
        stdin=subprocess.DEVNULL,  # no terminal: W&B must never prompt for a login
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not error_lines(proc.stderr) and "Traceback" not in proc.stderr
    (line,) = wandb_lines(proc.stdout + proc.stderr)
    assert f"{env['WANDB_BASE_URL']} is out of reach" in line
    (run_dir,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    record = inspect(run_dir)
    assert record["state"] == "finished" and record["summary"]["epochs"] == 1
    result = read_result(tmp_path / "run")
    assert result["state"] == "complete"
    assert result["reason"] is None
    assert result["epochs"] == 1 and len(result["history"]) == 1
    assert result["val_acc_best"] > 0.6  # 2000 images, one epoch: ~0.68 measured; chance is 0.1
    assert result["history"][0]["val/acc"] == pytest.approx(result["val_acc_best"])
    assert result["n_parameters"] == 29290  # the baseline CNN
    assert result["test_acc"] is None  # evaluate_test defaults to false


# --- (b) invalid overrides -----------------------------------------------------------------------

INVALID = {
    # override: the field the error line must name
    "model.n_conv_layers=4": "model.n_conv_layers",
    "model.n_filters_1=300": "model.n_filters_1",
    "model.kernel_size=4": "model.kernel_size",
    "model.batch_norm=maybe": "model.batch_norm",
    "model.n_fc_layers=3": "model.n_fc_layers",
    "model.n_neurons_1=100": "model.n_neurons_1",
    "model.dropout=0.9": "model.dropout",
    "data.batch_size=32": "data.batch_size",
    "optimizer.lr=5.0": "optimizer.lr",
    "optimizer.weight_decay=0.5": "optimizer.weight_decay",
    "data.limit_train=5": "data.limit_train",
    "data.limit_train=60000": "data.limit_train",
    "data.limit_val=20000": "data.limit_val",
    "data.root=/nonexistent/dir": "data.root",
}
UNKNOWN_KEY = "model.foo=1"


def compose_train(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


@pytest.mark.parametrize("override", list(INVALID))
def test_invalid_override_is_refused_before_anything_is_written(override: str, tmp_path: Path) -> None:
    """Through `train()`, the function `python train.py` calls: a ConfigError naming the field."""
    with pytest.raises(ConfigError) as refused:
        pipeline.train(compose_train(override, "logger=none"), output_dir=tmp_path)
    assert INVALID[override] in str(refused.value) and "\n" not in str(refused.value)
    assert not list(tmp_path.iterdir())


def test_the_command_line_refuses_in_one_line_with_exit_code_2(tmp_path: Path) -> None:
    proc = run_train("model.n_filters_1=300", "logger=none", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2, proc.stdout[-2000:]
    assert error_lines(proc.stderr) == [
        "error: model.n_filters_1=300 is out of range; allowed: an integer in [8, 256]"
    ]
    assert "Traceback" not in proc.stderr  # a diagnosis, not a crash
    assert not (tmp_path / pipeline.RESULT_FILE).exists()


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    proc = run_train(UNKNOWN_KEY, f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0
    assert "model.foo" in proc.stderr
    assert not (tmp_path / pipeline.RESULT_FILE).exists()


# --- (c) training learns -------------------------------------------------------------------------


@pytest.mark.slow
def test_short_training_learns_and_tests(tmp_path: Path) -> None:
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO_ROOT / "conf")):
        cfg = compose(
            config_name="train",
            overrides=[
                "trainer.max_epochs=3",
                "data.limit_train=3000",
                "data.limit_val=1000",
                "evaluate_test=true",
                "trainer.enable_progress_bar=false",
                "logger=none",
            ],
        )
    returned = pipeline.train(cfg, output_dir=tmp_path)
    result = read_result(tmp_path)
    # What a sweep records: the objective and the metrics beside it, the same as result.yaml.
    assert returned == {k: v for k, v in result.items() if k != "history"}
    best = returned["val_acc_best"]
    assert result["state"] == "complete"
    assert result["epochs"] == 3
    assert [h["epoch"] for h in result["history"]] == [1, 2, 3]
    accs = [h["val/acc"] for h in result["history"]]
    assert best == pytest.approx(result["val_acc_best"]) and best == pytest.approx(max(accs))
    assert accs[-1] > accs[0] or best > 0.75, accs
    assert result["test_acc"] is not None and math.isfinite(result["test_acc"])
    assert result["test_acc"] > 0.6
    assert math.isfinite(result["test_loss"])
