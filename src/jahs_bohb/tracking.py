"""Weights & Biases runs: one per training job (a trial), finished whatever the job's outcome.

Without credentials W&B runs offline and never prompts; `mode: disabled` (or `logger=none`) turns it off.
An online run whose server is out of reach, or that fails to start (no API key, a refused one), runs
offline instead after one warning line, so a job never waits minutes for W&B nor fails because of it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from omegaconf import DictConfig, OmegaConf

from hydra_plugins.hydra_bohb_sweeper.wandb_mode import wandb_offline_because
from hydra_plugins.hydra_bohb_sweeper.wandb_mode import wandb_run_mode as resolve_mode  # checks the server

Run = TypeVar("Run")


def init_kwargs(
    wandb_cfg: DictConfig,
    *,
    name: str,
    group: str | None,
    job_type: str,
    config: dict[str, Any],
    save_dir: Path,
    quiet: bool = False,
    **resumable: str,
) -> dict[str, Any]:
    """Arguments for `wandb.init` (also accepted by Lightning's WandbLogger).

    `quiet` drops W&B's own console banner (a sweep prints one hint for all its runs instead).
    `resumable`: `id` and `resume` of a run that continues over several jobs (a paused trial's).
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
        "mode": resolve_mode(wandb_cfg.mode),  # offline, said once, when W&B is out of reach
        "tags": list(wandb_cfg.get("tags") or []),
        "reinit": "create_new",  # never reuse a run left open by an earlier trial in this process
        **({"settings": _quiet_settings()} if quiet else {}),
        **resumable,
        **extra,
    }


def _quiet_settings() -> Any:
    import wandb

    return wandb.Settings(silent=True)


def start_run(start: Callable[[dict[str, Any]], Run], kwargs: dict[str, Any]) -> Run:
    """`start(kwargs)` (a run started from `init_kwargs`); when an online run fails to start, the same run
    offline, after one line that says why (once per process: later runs go offline straight away)."""
    try:
        return start(kwargs)
    except Exception as exc:
        if kwargs.get("mode") != "online":
            raise
        return start({**kwargs, "mode": wandb_offline_because(exc)})
