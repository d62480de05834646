"""A four-dimensional sphere whose `z` is searched near the sampled `x`, and whose `w` is not in the
config at all: both come from `configure`, the sweep's `hydra.sweeper.custom_search_space`.

    python examples/optuna_official/custom-search-space-objective.py --multirun
"""

import hydra
from omegaconf import DictConfig
from optuna.trial import Trial


@hydra.main(version_base="1.3", config_path="custom-search-space", config_name="config")
def four_dimensional_sphere(cfg: DictConfig) -> float:
    return sum(float(cfg[key]) ** 2 for key in ("w", "x", "y", "z"))


def configure(cfg: DictConfig, trial: Trial) -> None:
    """Called by the sweeper once `params` (x, y) are sampled: z depends on x, and w is new."""
    x = trial.params["x"]
    spread = cfg.max_z_difference_from_x
    trial.suggest_float("z", x - spread, x + spread)
    # The config has no `w`: the job receives it as `+w=...`, as on the command line.
    trial.suggest_float("+w", 0.0, 1.0)


if __name__ == "__main__":
    four_dimensional_sphere()
