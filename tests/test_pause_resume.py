"""Pause and resume in the real app: a configuration that the sweep paused at a rung and resumed later
trains exactly the epochs it would have trained without the pause (weights, optimizer, batch order,
augmentations, dropout masks and early stopping all continue), on real Fashion-MNIST subsets.

The app's Lightning callback does the checkpointing (`client.PruningCallback`); `train()` only passes
`trial.resume_from` to `fit`. A straight training of the same overrides is the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from sweeps import REPO_ROOT, run_in_process, scratch_dir, sweep_in_process

from jahs_bohb.pipeline import RESULT_FILE, train

TRAIN_PY = REPO_ROOT / "train.py"
SMALL = (  # a small CNN on 400 images; the learning rate, dropout and augmentations are searched
    "data.limit_train=400", "data.limit_val=300", "model.n_conv_layers=1", "model.n_filters_1=8",
    "model.n_fc_layers=1", "model.n_neurons_1=512", "data.batch_size=64", "optimizer=adam",
    "model.kernel_size=3", "model.batch_norm=true", "model.global_avg_pooling=false",
    "optimizer.weight_decay=0.0001", "logger=none", "torch_threads=1",
)  # fmt: skip


def task(cfg: DictConfig) -> dict[str, Any]:
    return train(cfg, output_dir=Path(HydraConfig.get().runtime.output_dir))


def history(output_dir: Path) -> list[tuple[int, float]]:
    result = yaml.safe_load((output_dir / RESULT_FILE).read_text())
    return [(int(row["epoch"]), float(row["val/acc"])) for row in result["history"]]


@pytest.mark.slow
def test_a_resumed_configuration_trains_as_if_it_had_never_paused() -> None:
    root = scratch_dir("pause-resume-")
    run = sweep_in_process(
        root / "sweep", "sweeper=bohb", *SMALL, "hydra.sweeper.n_trials=4", "hydra.sweeper.budget=4",
        "hydra.sweeper.final_evaluation.enabled=false", "hydra.sweeper.report=null",
        "hydra.sweeper.figures=false", "hydra.sweeper.tracking_key=null", "early_stopping_patience=2",
        "hydra.sweeper.pruner.min_resource=2", "hydra.sweeper.pruner.reduction_factor=2",
        task=task, app=TRAIN_PY, config_name="train", study_name="jahs-bohb",
    )  # fmt: skip
    run.assert_ok()
    resumed = [c for c in run.configs.values() if len(c.trials) > 1]
    assert resumed, "no configuration was paused and resumed"
    for config in resumed:
        last = Path(config.last.user_attrs["output_dir"])
        overrides = config.trials[0].user_attrs["overrides"]
        code, _, err = run_in_process(
            TRAIN_PY, *overrides, *SMALL, "early_stopping_patience=2", f"hydra.run.dir={root / 'straight'}"
        )
        assert code == 0, err[-2000:]
        straight, resumed_run = history(root / "straight"), history(last)
        assert [e for e, _ in resumed_run] == [e for e, _ in straight]  # early stopping alike
        # Every epoch's accuracy, before and after the pause, as without one.
        assert [a for _, a in resumed_run] == pytest.approx([a for _, a in straight], abs=1e-6)
        epochs = [int(e) for t in config.trials for e in t.intermediate_values]
        assert epochs == list(range(1, len(straight) + 1))  # each epoch trained once, in order
