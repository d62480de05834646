"""Binh and Korn's two-objective problem: minimise both 4x^2 + 4y^2 and (x - 5)^2 + (y - 5)^2.

    python examples/optuna_official/multi-objective.py --multirun

The job returns a tuple, one value per entry of `hydra.sweeper.direction`; the sweep writes the Pareto
front to optimization_results.yaml (`solutions`).
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="multi-objective-conf", config_name="config")
def binh_and_korn(cfg: DictConfig) -> tuple[float, float]:
    x, y = float(cfg.x), float(cfg.y)
    return 4 * x**2 + 4 * y**2, (x - 5) ** 2 + (y - 5) ** 2


if __name__ == "__main__":
    binh_and_korn()
