"""The sphere function x^2 + y^2, swept as in the official Optuna sweeper's first example.

    python examples/optuna_official/sphere.py --multirun

`error=true` makes every job raise, to see what `hydra.sweeper.max_failure_rate` does.
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def sphere(cfg: DictConfig) -> float:
    if cfg.get("error", False):
        raise RuntimeError("cfg.error is True")
    return float(cfg.x) ** 2 + float(cfg.y) ** 2


if __name__ == "__main__":
    sphere()
