"""The multi-seed study end to end at a tiny size: sweeps per seed, random search at equal budget, one
report with the seed's Table 2 and Figures 2 and 3.

`jahs_bohb.multiseed.main` runs as the command line does, except that each of its sweeps
(`python train.py -m ...`) runs in this process, through the same Hydra multirun and sweeper: four
interpreter and torch start-ups saved. The real `python train.py -m` is in test_sweep_e2e.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sweeps import REPO_ROOT, load_module, sweep_in_process

from jahs_bohb import multiseed

train_app = load_module(REPO_ROOT / "train.py")


def sweep_in_this_process(out_dir: Path, overrides: list[str], log_path: Path) -> None:
    """multiseed.run_sweep, minus the subprocess: the same overrides, the same train.py task."""
    sweep = sweep_in_process(
        out_dir, *overrides, task=train_app.main.__wrapped__, app=REPO_ROOT / "train.py",
        config_name="train", study_name=out_dir.name,  # multiseed names each study after its folder
    )  # fmt: skip
    log_path.write_text(sweep.stdout + sweep.stderr)
    assert sweep.returncode == 0, sweep.stderr[-3000:]


@pytest.mark.slow
def test_multiseed_study_writes_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(multiseed, "run_sweep", sweep_in_this_process)
    out = tmp_path / "study"
    overrides = [
        "sweeper=bohb", "logger=none", "data.limit_train=300", "data.limit_val=200",
        "hydra.sweeper.figures=false",  # the study's report draws its own
        "hydra.sweeper.n_trials=3", "hydra.sweeper.budget=2",
        "model.n_conv_layers=1", "model.n_fc_layers=1", "model.n_filters_1=tag(log, int(interval(8, 16)))",
        'hydra.sweeper.final_evaluation.overrides=["trainer.max_epochs=1","evaluate_test=true"]',
    ]  # fmt: skip
    multiseed.main(
        ["--seeds", "0", "1", "--random", "--out", str(out), "--wandb-mode", "disabled", "--", *overrides]
    )
    report = (out / "report.md").read_text()
    assert "## Table 2" in report and "| Baseline |" in report and "| BOHB incumbent |" in report
    assert "BOHB against random search at equal budget" in report
    assert "bohb-seed0, bohb-seed1, random-seed0, random-seed1" in report
    for figure in ("figure2_best_over_time.png", "figure3_parallel_coordinates.png"):
        assert (out / figure).stat().st_size > 0
    # Random search got the epochs BOHB spent, in full trials of max_resource epochs, and never pruned.
    for seed in (0, 1):
        bohb = yaml.safe_load((out / f"bohb-seed{seed}" / "optimization_results.yaml").read_text())
        rand = yaml.safe_load((out / f"random-seed{seed}" / "optimization_results.yaml").read_text())
        assert rand["n_pruned"] == 0
        assert rand["n_trials"] == max(1, bohb["epochs_trained"] // 2)
    # The baseline is trained once, with the first seed.
    assert "baseline" in yaml.safe_load((out / "bohb-seed0" / "final_evaluation.yaml").read_text())
    assert "baseline" not in yaml.safe_load((out / "bohb-seed1" / "final_evaluation.yaml").read_text())
