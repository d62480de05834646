"""The sweeper's side of checkpoints: which one a paused trial left, and deleting those no trial will
resume (a configuration that completed, stopped or failed, and, when a sweep ends, every paused one).

Jobs write checkpoints (client.SweepTrial.save_checkpoint, under a temporary name, then renamed) and
record them on their trial; the sweeper only ever reads what a trial recorded, so a checkpoint that a
killed job left half-written is never used.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

import optuna

from hydra_plugins.hydra_bohb_sweeper import names
from hydra_plugins.hydra_bohb_sweeper._study import scheduling as _scheduling

States = optuna.trial.TrialState


def saved(trial: optuna.trial.FrozenTrial) -> dict[str, Any] | None:
    """The checkpoint a paused trial saved after its last reported epoch, if it is there."""
    checkpoint = trial.user_attrs.get(names.CHECKPOINT_ATTR)
    last = max(_scheduling.reported_values(trial), default=0)
    if not checkpoint or int(checkpoint["epoch"]) != last or not Path(checkpoint["path"]).exists():
        return None
    return {"epoch": int(checkpoint["epoch"]), "path": str(checkpoint["path"])}


def _recorded(config: _scheduling.Configuration) -> set[Path]:
    """Every checkpoint the configuration's trials saved or resumed from."""
    paths = set()
    for trial in config.trials:
        for attr in (names.CHECKPOINT_ATTR, names.RESUME_ATTR, names.PAUSED_ATTR):
            if (record := trial.user_attrs.get(attr)) and record.get("path"):
                paths.add(Path(record["path"]))
    return paths


def tidy(config: _scheduling.Configuration | None) -> None:
    """After one of `config`'s trials ended: keep only the checkpoint it may resume from (none when it
    completed, stopped or failed)."""
    if config is None or config.state == _scheduling.RUNNING:  # running again: a retry is queued
        return
    keep = (
        Path(config.checkpoint["path"]) if config.state == _scheduling.PAUSED and config.checkpoint else None
    )
    for path in _recorded(config) - {keep}:
        _remove(path)


def discard_unresumed(study: optuna.Study, folder: Path) -> None:
    """At the end of a sweep, once no trial of the study runs or waits anywhere: the paused
    configurations will not be resumed; their checkpoints go."""
    trials = study.get_trials(deepcopy=False)
    if any(t.state in (States.RUNNING, States.WAITING) for t in trials):
        return  # another sweeper is still at work and may resume them
    for config in _scheduling.configurations(trials).values():
        for path in _recorded(config):
            _remove(path)
    # What is left in this sweep's folder no trial recorded: files that killed jobs were writing.
    shutil.rmtree(folder, ignore_errors=True)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # the configuration's folder, once empty
