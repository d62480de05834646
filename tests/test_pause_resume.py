"""Pause and resume in the real app: a configuration that the sweep paused at a rung and resumed later
trains exactly the epochs it would have trained without the pause (weights, optimizer, batch order,
augmentations, dropout masks and early stopping all continue), on real Fashion-MNIST subsets.

The app's Lightning callback does the checkpointing (`client.PruningCallback`); `train()` only passes
`trial.resume_from` to `fit`. A straight training of the same overrides is the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import pytorch_lightning as pl
import torch
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from sweeps import REPO_ROOT, act_as_trial, run_in_process, scratch_dir, sweep_in_process

from hydra_plugins.hydra_bohb_sweeper import client, names
from hydra_plugins.hydra_bohb_sweeper._study.scheduling import Hyperband
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


class TinyModel(pl.LightningModule):
    """A linear classifier with dropout and a step learning-rate schedule: what a resume must restore."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)
        self.lrs: list[float] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.cross_entropy(torch.nn.functional.dropout(self.layer(x), 0.5), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val/acc", (self.layer(x).argmax(1) == y).float().mean())

    def on_train_epoch_end(self) -> None:
        self.lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.SGD(self.parameters(), lr=0.5)
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.StepLR(optimizer, 1, 0.5)}


def tiny_fit(callbacks: list[pl.Callback], ckpt_path: Path | None = None) -> TinyModel:
    pl.seed_everything(0, verbose=False)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=generator)
    data = list(zip(x, (x[:, 0] > 0).long(), strict=True))
    loader = torch.utils.data.DataLoader(data, batch_size=8, shuffle=True)
    model = TinyModel()
    trainer = pl.Trainer(
        max_epochs=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, callbacks=callbacks,
    )  # fmt: skip
    trainer.fit(model, loader, loader, ckpt_path=ckpt_path)
    return model


def test_the_callback_pauses_and_a_resumed_fit_keeps_the_learning_rate_schedule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lightning's own loop, optimizer, scheduler and callback states come back from the checkpoint the
    callback saved at its pause; with the random state it adds, the weights match an uninterrupted run."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    study = optuna.create_study(study_name="tiny", storage=url, direction="maximize")
    # Alone at its rung (epoch 2 of 4): nothing to rank it against, so it pauses there.
    study.set_user_attr(
        names.SCHEDULER_ATTR, Hyperband(budget=4, min_resource=2, reduction_factor=2).record()
    )
    first = study.ask()
    first.set_user_attr(names.CONFIG_ATTR, first.number)
    act_as_trial(monkeypatch, study, url, first.number, budget=4, checkpoints=tmp_path / "checkpoints")
    straight = tiny_fit([])
    trial = client.current_trial()
    assert trial is not None
    pausing = client.PruningCallback(trial, monitor="val/acc")
    paused = tiny_fit([pausing])
    assert pausing.paused_at_epoch == 2 and pausing.checkpoint is not None
    assert paused.lrs == straight.lrs[:2] and len(set(straight.lrs)) == 4  # the schedule halves it each epoch
    study.tell(first, state=optuna.trial.TrialState.PRUNED)
    second = study.ask()  # the continuation the sweeper creates once the configuration is promoted
    second.set_user_attr(names.CONFIG_ATTR, first.number)
    second.set_user_attr(
        names.RESUME_ATTR, {"trial": first.number, "epoch": 2, "path": str(pausing.checkpoint)}
    )
    monkeypatch.setenv(names.ENV_TRIAL, str(second.number))
    resumed_trial = client.current_trial()
    assert resumed_trial is not None and resumed_trial.resume_from == pausing.checkpoint
    resumed = tiny_fit([client.PruningCallback(resumed_trial, monitor="val/acc")], resumed_trial.resume_from)
    assert resumed.lrs == straight.lrs[2:]  # the schedule goes on where it paused
    assert torch.equal(resumed.layer.weight, straight.layer.weight)
    assert sorted(study.trials[1].intermediate_values) == [3, 4]  # the continuation reports epochs 3 and 4
