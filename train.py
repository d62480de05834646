"""Train the seed's CNN on Fashion-MNIST once (`python train.py`) or search with BOHB (`-m sweeper=bohb`)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from jahs_bohb.errors import ConfigError

log = logging.getLogger("train")


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    from jahs_bohb.pipeline import train  # after Hydra parsed the command line: `--help` stays fast

    try:
        return train(cfg, output_dir=Path(HydraConfig.get().runtime.output_dir))
    except ConfigError as exc:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # the sweeper records the trial as failed and goes on
        log.error("%s", exc)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
