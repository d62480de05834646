"""One training job: config -> data, model, trainer -> fit -> what it achieved, as a mapping whose
`val_acc_best` is the objective a sweeper maximises (conf/sweeper/bohb.yaml names it).

Inside a BOHB sweep the job finds its trial through the sweeper's client API, reports the best
validation accuracy after every epoch and raises `TrialPruned` when the pruner stops it. Outside a
sweep it simply trains.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.callbacks import EarlyStopping, TQDMProgressBar
from pytorch_lightning.plugins.environments import LightningEnvironment

from hydra_plugins.hydra_bohb_sweeper import client
from jahs_bohb import backends
from jahs_bohb.best_weights import BestWeights
from jahs_bohb.classifier import ImageClassifier
from jahs_bohb.config_checks import check_config, dead_cell
from jahs_bohb.datamodule import FashionMNISTDataModule
from jahs_bohb.errors import ConfigError
from jahs_bohb.trial_run import TrialRun

log = logging.getLogger(__name__)
# Lightning's start-up tips and a torch-internal deprecation add noise to every trial of a sweep.
# The cosine schedule's horizon (estimated_stepping_batches) makes Lightning announce each trial's data.
_NOISE = ("Tip:", "to estimate number of stepping batches")
logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
    lambda r: not any(n in r.getMessage() for n in _NOISE)
)
warnings.filterwarnings("ignore", message=".*LeafSpec.*")
# Lightning's fit asks SLURMEnvironment.detect() whatever environment the trainer runs in, and that
# warns in every job on any machine with `srun` installed; the LightningEnvironment below is our answer.
warnings.filterwarnings("ignore", message="The `srun` command is available on your system but is not used")
RESULT_FILE = "result.yaml"


@dataclass
class TrainResult:
    """What one job achieved; written to `result.yaml` in its output directory."""

    state: str  # complete | pruned | failed
    val_acc_best: float = math.nan
    epochs: int = 0
    n_parameters: int = 0
    wall_time_s: float = 0.0
    test_acc: float | None = None
    test_loss: float | None = None
    reason: str | None = None
    device: str = ""
    history: list[dict[str, float]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "history"}


def build(cfg: DictConfig) -> tuple[FashionMNISTDataModule, ImageClassifier]:
    """The data and the model of one job, seeded and on the configured backends (benchmarks time these)."""
    pl.seed_everything(cfg.seed, verbose=False)
    backends.configure(tf32=cfg.get("tf32", True), threads=cfg.get("torch_threads"))
    datamodule: FashionMNISTDataModule = instantiate(cfg.data)
    module = ImageClassifier(
        net=instantiate(cfg.model),
        optimizer=instantiate(cfg.optimizer),
        lr_schedule=cfg.get("lr_schedule", "constant"),
    )
    return datamodule, module


def make_trainer(cfg: DictConfig, callbacks: list[pl.Callback], logger: Any) -> pl.Trainer:
    """conf/trainer as a job runs it: one process on one device. SLURM, where there is one, schedules
    jobs, not Lightning's processes."""
    return instantiate(cfg.trainer, callbacks=callbacks, logger=logger, plugins=[LightningEnvironment()])


def train(cfg: DictConfig, output_dir: Path | None = None) -> dict[str, Any]:
    """Train once; return the summary (`val_acc_best` is the sweep's objective; test_acc, n_parameters,
    epochs, wall_time_s and device travel with it to the sweep's results and W&B).

    In a sweep, a trial may pause at a rung (the callback saves a checkpoint; `TrialPaused` is raised)
    and a later trial continues its configuration from that checkpoint. After the search, a final
    candidate keeps its best weights for the test of the pick, which evaluates them without training."""
    check_config(cfg)
    job = client.current_job()
    trial = client.current_trial()
    if (dead := dead_cell(cfg)) is not None:
        # A cell without a path from input to output would train to a constant guess. In a sweep it
        # is stopped before its first epoch: the sampler ranks a stopped trial below every result and
        # learns to avoid such cells; a failure would teach it nothing.
        if trial is not None:
            raise client.TrialPruned(f"refused before training: {dead}")
        raise ConfigError(dead)
    output_dir = Path(output_dir) if output_dir is not None else Path.cwd()

    datamodule, module = build(cfg)
    if job is not None and job.load_model_from is not None:
        return _evaluate_kept_model(cfg, job.load_model_from, datamodule, module, output_dir, job)
    pruning = None
    if trial is not None:  # sweeper=bohb_mo's second objective, the parameter count, is known now
        known = [module.n_parameters] if trial.n_objectives > 1 else []
        pruning = client.PruningCallback(trial, monitor="val/acc_best", known_values=known)
    keep_model = job is not None and job.save_model_to is not None
    best_weights = BestWeights() if cfg.evaluate_test or keep_model else None
    patience = cfg.get("early_stopping_patience")
    early_stopping = EarlyStopping("val/acc", mode="max", patience=patience) if patience else None
    callbacks: list[pl.Callback] = [cb for cb in (pruning, best_weights, early_stopping) if cb is not None]
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks.append(TQDMProgressBar(refresh_rate=cfg.get("progress_refresh_rate", 20)))

    run = TrialRun.start(cfg, output_dir, params=trial.params if trial is not None else {}, job=job)
    trainer = make_trainer(cfg, callbacks, run.lightning_logger or False)
    result = TrainResult(state="failed", n_parameters=module.n_parameters, device=backends.device_name())
    started = time.perf_counter()
    try:
        # A promoted configuration continues from the checkpoint its previous trial paused with.
        # weights_only: the checkpoint holds tensors and plain values only (client.PruningCallback).
        resume_from = trial.resume_from if trial is not None else None
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
        if trainer.interrupted:  # Lightning swallows Ctrl-C; a sweep must not record a cut-short trial
            raise KeyboardInterrupt("training interrupted")
        if pruning is not None and pruning.paused_at_epoch is not None:
            result.state, result.reason = "paused", f"paused after epoch {pruning.paused_at_epoch}"
        elif pruning is not None and pruning.pruned_at_epoch is not None:
            result.state, result.reason = "pruned", f"pruned after epoch {pruning.pruned_at_epoch}"
        else:
            if best_weights is not None:
                best_weights.restore(module)
            if keep_model:
                assert job is not None
                kept = {"state_dict": module.state_dict(), "epochs": len(module.history)}
                job.save_model(
                    lambda path: torch.save({**kept, "wall_time_s": time.perf_counter() - started}, path)
                )
            if cfg.evaluate_test:
                metrics = trainer.test(module, datamodule=datamodule, verbose=False)[0]
                result.test_acc, result.test_loss = metrics["test/acc"], metrics["test/loss"]
            result.state = "complete"
    except BaseException as exc:
        result.state, result.reason = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        result.epochs = len(module.history)
        result.val_acc_best = module.best_val_acc if module.history else math.nan
        result.wall_time_s = time.perf_counter() - started
        result.history = module.history
        _write_result(output_dir / RESULT_FILE, result)
        run.finish(result.summary())
    if result.state == "paused":
        raise client.TrialPaused(result.reason)
    if result.state == "pruned":
        raise client.TrialPruned(result.reason)
    log.info(
        "val_acc_best=%.4f epochs=%d params=%d time=%.1fs%s",
        result.val_acc_best,
        result.epochs,
        result.n_parameters,
        result.wall_time_s,
        f" test_acc={result.test_acc:.4f}" if result.test_acc is not None else "",
    )
    return result.summary()


def _evaluate_kept_model(
    cfg: DictConfig,
    path: Path,
    datamodule: FashionMNISTDataModule,
    module: ImageClassifier,
    output_dir: Path,
    job: client.SweepJob,
) -> dict[str, Any]:
    """The test of the final pick: the weights its candidate job kept, validated (the same accuracy the
    pick was chosen by) and tested once, with no training."""
    kept = torch.load(path, map_location="cpu", weights_only=True)
    module.load_state_dict(kept["state_dict"])
    run = TrialRun.start(cfg, output_dir, params={}, job=job)
    trainer = make_trainer(cfg, [], run.lightning_logger or False)
    result = TrainResult(state="failed", n_parameters=module.n_parameters, device=backends.device_name())
    try:
        validated = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
        tested = trainer.test(module, datamodule=datamodule, verbose=False)[0]
        result.val_acc_best, result.test_acc, result.test_loss = (
            validated["val/acc"], tested["test/acc"], tested["test/loss"],
        )  # fmt: skip
        result.state = "complete"
    finally:
        result.epochs = int(kept.get("epochs", 0))
        result.wall_time_s = float(kept.get("wall_time_s", 0.0))  # the candidate's training
        _write_result(output_dir / RESULT_FILE, result)
        run.finish(result.summary())
    log.info("kept model of %s: val_acc=%.4f test_acc=%.4f", path.name, result.val_acc_best, result.test_acc)
    return result.summary()


def _write_result(path: Path, result: TrainResult) -> None:
    text = yaml.safe_dump({**result.summary(), "history": result.history}, sort_keys=False)
    client.atomic_save(path, lambda tmp: tmp.write_text(text))  # never a half-written result file
