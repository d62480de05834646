"""Weights & Biases runs: one per training job (a trial), finished whatever the job's outcome.

Without credentials W&B runs offline and never prompts; `mode: disabled` (or `logger=none`) turns it off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from hydra_plugins.hydra_bohb_sweeper.client import wandb_mode as resolve_mode


def init_kwargs(
    wandb_cfg: DictConfig,
    *,
    name: str,
    group: str | None,
    job_type: str,
    config: dict[str, Any],
    save_dir: Path,
    quiet: bool = False,
) -> dict[str, Any]:
    """Arguments for `wandb.init` (also accepted by Lightning's WandbLogger).

    `quiet` drops W&B's own console banner (a sweep prints one hint for all its runs instead).
    """
    save_dir.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = dict(wandb_cfg.get("init_kwargs") or {})
    if isinstance(wandb_cfg.get("init_kwargs"), DictConfig):
        extra = cast(dict[str, Any], OmegaConf.to_container(wandb_cfg.init_kwargs, resolve=True))
    return {
        "project": wandb_cfg.project,
        "entity": wandb_cfg.get("entity"),
        "name": name,
        "group": group,
        "job_type": job_type,
        "config": config,
        "dir": str(save_dir),
        "mode": resolve_mode(wandb_cfg.mode),
        "tags": list(wandb_cfg.get("tags") or []),
        "reinit": "create_new",  # never reuse a run left open by an earlier trial in this process
        **({"settings": _quiet_settings()} if quiet else {}),
        **extra,
    }


def _quiet_settings() -> Any:
    import wandb

    return wandb.Settings(silent=True)
