"""The W&B run of one training job: config, per-epoch metrics (through Lightning), final summary."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from jahs_bohb import tracking
from jahs_bohb.optuna_trial import TRIAL_NODE, TrialIdentity, redact

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
        cls, cfg: DictConfig, output_dir: Path, params: dict[str, Any], identity: TrialIdentity | None
    ) -> TrialRun:
        wandb_cfg = (cfg.get("logger") or {}).get("wandb")
        if not wandb_cfg or tracking.resolve_mode(wandb_cfg.mode) == "disabled":
            return cls()
        from pytorch_lightning.loggers import WandbLogger

        job_config = OmegaConf.to_container(cfg, resolve=True)
        assert isinstance(job_config, dict)
        if job_config.get(TRIAL_NODE, {}).get("storage"):
            job_config[TRIAL_NODE]["storage"] = redact(job_config[TRIAL_NODE]["storage"])
        config: dict[str, Any] = {**params, "job": job_config}
        study_name = (cfg.get(TRIAL_NODE) or {}).get("study_name")
        if identity is not None:
            name, group, job_type = f"trial-{identity.number}", identity.study_name, "trial"
        elif study_name:  # a study's final evaluation (final/ or baseline/): grouped with its trials
            name, group, job_type = f"{output_dir.name}-{study_name}", study_name, "final"
        else:
            name, group, job_type = wandb_cfg.get("name") or output_dir.name, wandb_cfg.get("group"), "train"
        kwargs = tracking.init_kwargs(
            wandb_cfg,
            name=name,
            group=group,
            job_type=job_type,
            config=config,
            save_dir=wandb_dir(cfg, output_dir),
            quiet=job_type != "train",
        )
        save_dir = kwargs.pop("dir")
        logger = WandbLogger(save_dir=save_dir, log_model=False, **kwargs)
        _ = logger.experiment  # start the run now so setup errors surface before training
        return cls(logger)

    def finish(self, summary: dict[str, Any]) -> None:
        if self.lightning_logger is None:
            return
        run = self.lightning_logger.experiment
        try:
            run.summary.update({k: v for k, v in summary.items() if v is not None})
        finally:
            run.finish(exit_code=0 if summary.get("state") != "failed" else 1)
