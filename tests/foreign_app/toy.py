"""A Hydra app that knows nothing of this project: the sweeper must serve it as the official one would."""

from dataclasses import dataclass

import hydra
from hydra.core.config_store import ConfigStore


@dataclass
class Config:
    x: float = 0.0
    y: int = 0


ConfigStore.instance().store(name="toy", node=Config)


@hydra.main(version_base="1.3", config_name="toy")
def main(cfg: Config) -> float:
    return (cfg.x - 1) ** 2 + (cfg.y + 2) ** 2


if __name__ == "__main__":
    main()
