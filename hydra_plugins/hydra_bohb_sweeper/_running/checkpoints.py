"""The sweeper's side of checkpoints: which one a paused trial left, and deleting those no trial will
resume. Checkpoints exist exactly for the configurations that may still resume: a paused one keeps the
checkpoint it paused with, an interrupted one the checkpoint its retry starts from; a configuration
that completed, stopped or failed keeps none, and a finished sweep discards the paused ones'.

Jobs write checkpoints (client.SweepTrial.save_checkpoint: a name of their own trial's, a temporary
name first, then renamed) and record them on their trial; the sweeper only ever reads what a trial
recorded, so a checkpoint that a killed job left half-written is never used.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

import optuna

from hydra_plugins.hydra_bohb_sweeper import names
from hydra_plugins.hydra_bohb_sweeper._outputs import files as _files
from hydra_plugins.hydra_bohb_sweeper._study.view import (
    INTERRUPTED,
    PAUSED,
    RUNNING,
    Configuration,
    StudyView,
)
from hydra_plugins.hydra_bohb_sweeper._study.view import reported_values as _reported_values

States = optuna.trial.TrialState


def saved(trial: optuna.trial.FrozenTrial) -> dict[str, Any] | None:
    """The checkpoint a paused trial saved after its last reported epoch, if it is there."""
    checkpoint = trial.user_attrs.get(names.CHECKPOINT_ATTR)
    last = max(_reported_values(trial), default=0)
    if not checkpoint or int(checkpoint["epoch"]) != last or not Path(checkpoint["path"]).exists():
        return None
    return {"epoch": int(checkpoint["epoch"]), "path": str(checkpoint["path"])}


def _recorded(config: Configuration) -> set[Path]:
    """Every checkpoint the configuration's trials saved or resumed from."""
    paths = set()
    for trial in config.trials:
        for attr in (names.CHECKPOINT_ATTR, names.RESUME_ATTR, names.PAUSED_ATTR):
            if (record := trial.user_attrs.get(attr)) and record.get("path"):
                paths.add(Path(record["path"]))
    return paths


def tidy(config: Configuration | None, folder: Path | None = None) -> None:
    """After one of `config`'s trials ended: keep only the checkpoint its next segment starts from
    (none when it completed, stopped or failed). Files in its folder that no trial recorded (a job
    killed between saving a checkpoint and recording it) go too, once the trial that wrote them is
    over."""
    if config is None or config.state == RUNNING:
        return
    keep = (
        Path(config.checkpoint["path"])
        if config.state in (PAUSED, INTERRUPTED) and config.checkpoint
        else None
    )
    stray: set[Path] = set()
    if folder is not None:
        over = {t.number for t in config.trials if t.state.is_finished()}
        stray = {p for p in (folder / f"config-{config.number}").glob("trial-*") if _trial_of(p) in over}
    for path in (_recorded(config) | stray) - {keep}:
        remove(path)


def _trial_of(path: Path) -> int | None:
    """The trial that wrote a checkpoint (`trial-<n>-epoch-<e>.ckpt`, see client.SweepTrial)."""
    with contextlib.suppress(ValueError, IndexError):
        return int(path.name.split("-")[1])
    return None


def discard_unresumed(storage: optuna.storages.BaseStorage, study_id: int, folder: Path) -> int:
    """At the end of a finished sweep, once no trial of the study runs anywhere: the paused
    configurations will not be resumed, so their checkpoints go (a later sweep of the study that adds
    configurations ranks them but never resumes them). Each paused trial is marked first and its
    files deleted only if no sweeper claimed it meanwhile (see _running/claims.py); so is what killed
    jobs left in the folder. The number of configurations discarded."""
    view = StudyView.read(storage, study_id)
    if view.running:
        return 0  # another sweeper is still at work and may resume them
    paused = [c for c in view.configurations.values() if c.state == PAUSED]
    for config in paused:
        storage.set_study_system_attr(study_id, f"{names.DISCARDED_PREFIX}{config.last.number}", True)
    view = StudyView.read(storage, study_id)
    for config in paused:
        if not view.followers(config.last.number):
            for path in _recorded(config):
                remove(path)
    busy = {f"config-{c.number}" for c in view.configurations.values() if c.state == RUNNING}
    if not busy:  # what killed jobs left (temporary files, checkpoints never recorded) goes too
        shutil.rmtree(folder, ignore_errors=True)
    for directory in folder.glob("config-*"):  # a sweeper that joined meanwhile keeps its own
        if directory.name not in busy:
            shutil.rmtree(directory, ignore_errors=True)
    return len(paused)


def remove(path: Path) -> None:
    """Delete a checkpoint, and its configuration's folder once that is empty."""
    _files.remove(path)
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # the configuration's folder, once empty
