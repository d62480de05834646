"""A Hydra app that 'trains' in microseconds, for end-to-end tests of the BOHB sweeper.

Its learning curve rises with the epoch towards a quality set by `x`, `y` and `z`, so Hyperband has
something to prune. Inside a sweep it finds its trial through the sweeper's client API, reports every
epoch, pauses with a checkpoint (its epoch, as JSON) or stops with `TrialPruned` when the scheduler says
so, and continues a paused configuration from its checkpoint, exactly like `train.py`
(`can_pause=false`: an app that cannot checkpoint). Its state is `acc`, the sum of its values so far,
which the checkpoint carries: a configuration resumed from the wrong checkpoint, or trained twice, ends
with another `acc` than an uninterrupted run. `epochs_log` appends "<configuration> <epoch> <trial>
<pid> <start> <end> <acc>" per epoch trained, so tests can see that no epoch is trained twice and no two
processes train one configuration at once. It returns its
objective and metrics (`size`, `quality`) as a mapping, so it serves two-objective sweeps too.
`fail=true` raises, `nan=true` returns NaN, `sleep_s` makes each epoch take that long, `chaos` injects a
fault (SIGKILL or any exception type) into one trial (`chaos_resumed=true`: into the first continuation
of a paused configuration instead). No torch, no files beyond Hydra's own.

    python tests/cheap_app/cheap_task.py -m hydra.sweep.dir=/tmp/sweep hydra.sweeper.n_trials=5
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.utils import get_class
from omegaconf import DictConfig

from hydra_plugins.hydra_bohb_sweeper import client

Y_BONUS = {"a": 0.0, "b": 0.05, "c": 0.1}


def learning_curve(x: float, y: str, z: float, epoch: int) -> float:
    """Validation 'accuracy' after `epoch` epochs: best near x=0.7, y=c, z=1; saturates with epochs."""
    return quality(x, y, z) * (1.0 - math.exp(-epoch / 2.0))


def quality(x: float, y: str, z: float) -> float:
    return 0.8 - (float(x) - 0.7) ** 2 + Y_BONUS.get(str(y), 0.0) + 0.05 * float(z)


def size(x: float) -> int:
    """A 'parameter count' that grows with x, known before training: below x=0.7 smaller is worse."""
    return round(1000 * 10 ** (2 * float(x)))


def misbehave(chaos: str) -> None:
    """Fault injection: the job's process dies by SIGKILL, or it raises the named exception type."""
    if chaos == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    error = get_class(chaos)
    raise error(f"simulated {error.__name__} in the cheap app")


def struck(cfg: DictConfig, trial: client.SweepTrial) -> bool:
    """Whether `chaos` strikes this trial: trial `chaos_trial`, or (`chaos_resumed`) a continuation."""
    return trial.resume_epoch > 0 if cfg.get("chaos_resumed") else trial.number == cfg.chaos_trial


def counted_down(path: str | None) -> bool:
    """Whether this job is the one the countdown in `path` reaches 0 for (each job takes one off)."""
    if not path:
        return False
    left = int(Path(path).read_text()) - 1
    Path(path).write_text(str(left))
    return left == 0


def run(cfg: DictConfig) -> dict[str, Any]:
    if counted_down(cfg.get("ctrl_c_countdown")):
        raise KeyboardInterrupt  # as Ctrl-C reaches a job that runs in the sweeper's process
    if cfg.fail:
        raise RuntimeError("boom")
    if cfg.nan:
        return {"acc": float("nan")}
    trial = client.current_trial()
    value, first, acc = 0.0, 1, 0.0
    if trial is not None and trial.resume_from is not None:  # a promoted configuration goes on
        saved = json.loads(trial.resume_from.read_text())
        assert saved["epoch"] == trial.resume_epoch, (saved, trial.resume_epoch)
        first, acc = saved["epoch"] + 1, saved.get("acc", 0.0)
    for epoch in range(first, cfg.max_epochs + 1):
        started = time.time()
        time.sleep(cfg.sleep_s)
        if cfg.chaos and epoch == cfg.chaos_epoch and trial is not None and struck(cfg, trial):
            misbehave(cfg.chaos)
        value = learning_curve(cfg.x, cfg.y, cfg.z, epoch)
        acc += value
        if cfg.epochs_log:
            with open(cfg.epochs_log, "a") as log:
                number = trial.number if trial is not None else -1
                log.write(
                    f"{trial.config_number if trial is not None else -1} {epoch} {number} {os.getpid()} "
                    f"{started:.6f} {time.time():.6f} {acc!r}\n"
                )
        if trial is not None:  # with two objectives (accuracy, size) it reports both
            trial.report(value if trial.n_objectives == 1 else [value, size(cfg.x)], epoch)
            if cfg.can_pause and trial.should_pause():
                state = {"epoch": epoch, "acc": acc}
                trial.save_checkpoint(lambda path, s=state: path.write_text(json.dumps(s)))
                raise client.TrialPaused(f"paused after epoch {epoch}")
            if trial.should_prune():
                raise client.TrialPruned(f"pruned after epoch {epoch}")
    return {
        "acc": value,
        "size": size(cfg.x),
        "quality": quality(cfg.x, cfg.y, cfg.z),
        "epochs": cfg.max_epochs,
    }


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> dict[str, Any]:
    return run(cfg)


if __name__ == "__main__":
    main()
