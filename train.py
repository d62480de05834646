"""Train the seed's CNN on Fashion-MNIST once (`python train.py`) or search with BOHB (`-m sweeper=bohb`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from jahs_bohb.config_checks import check_config, dead_cell
from jahs_bohb.errors import ConfigError


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> dict[str, Any]:
    try:
        check_config(cfg)  # before torch is imported: a bad value is refused in a second, not ten
        if HydraConfig.get().mode != RunMode.MULTIRUN and (dead := dead_cell(cfg)) is not None:
            raise ConfigError(dead)  # in a sweep, train() stops the trial instead
        from jahs_bohb.pipeline import train

        return train(cfg, output_dir=Path(HydraConfig.get().runtime.output_dir))
    except ConfigError as exc:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # the sweeper records the trial as failed and goes on
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
