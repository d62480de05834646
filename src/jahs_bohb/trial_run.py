"""The W&B run of one training job: config, per-epoch metrics (through Lightning), final summary."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.hydra_bohb_sweeper.client import SweepJob
from jahs_bohb import tracking

log = logging.getLogger(__name__)


def wandb_dir(cfg: DictConfig, output_dir: Path) -> Path:
    """Where run files go: `logger.wandb.dir`, else the sweep directory (all trials side by side)."""
    configured = cfg.logger.wandb.get("dir")
    if configured:
        return Path(configured)
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().sweep.dir)
    return output_dir


@dataclass
class TrialRun:
    lightning_logger: Any = None  # a WandbLogger, or None when W&B is off

    @classmethod
    def start(
        cls, cfg: DictConfig, output_dir: Path, params: dict[str, Any], job: SweepJob | None
    ) -> TrialRun:
        """`job`: this job's place in a BOHB sweep (its trial, or the final evaluation), if any."""
        wandb_cfg = (cfg.get("logger") or {}).get("wandb")
        if not wandb_cfg or tracking.resolve_mode(wandb_cfg.mode) == "disabled":
            return cls()
        from pytorch_lightning.loggers import WandbLogger

        job_config = OmegaConf.to_container(cfg, resolve=True)
        assert isinstance(job_config, dict)
        config: dict[str, Any] = {**params, "job": job_config}
        if job is not None:  # a trial or a final evaluation: grouped with the study's runs
            run_names = job.wandb_names()
        else:
            run_names = {
                "name": wandb_cfg.get("name") or output_dir.name,
                "group": wandb_cfg.get("group"),
                "job_type": "train",
            }
        kwargs = tracking.init_kwargs(
            wandb_cfg, **run_names, config=config, save_dir=wandb_dir(cfg, output_dir), quiet=job is not None
        )

        def start(init: dict[str, Any]) -> WandbLogger:
            import wandb

            # The run is started here, not by WandbLogger: setup errors surface before training, and
            # W&B does not warn about the `anonymous` argument WandbLogger always passes.
            return WandbLogger(experiment=wandb.init(**init), log_model=False)

        return cls(tracking.start_run(start, kwargs))

    def finish(self, summary: dict[str, Any]) -> None:
        if self.lightning_logger is None:
            return
        run = self.lightning_logger.experiment
        try:
            run.summary.update({k: v for k, v in summary.items() if v is not None})
        finally:
            run.finish(exit_code=0 if summary.get("state") != "failed" else 1)
