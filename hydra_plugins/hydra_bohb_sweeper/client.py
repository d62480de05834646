"""The job side of the BOHB sweeper: find this job's trial, report a value per epoch, learn whether to go
on, pause (with a checkpoint) or stop, and continue a paused configuration from its checkpoint.

The sweeper launches each trial with its identity in the job's environment (through Hydra's
`hydra.job.env_set`, so every launcher passes it on and the app declares nothing), and records its
scheduler on the study. A job in any process that reaches the storage therefore decides exactly as the
sweeper would::

    from hydra_plugins.hydra_bohb_sweeper import client

    trial = client.current_trial()  # None outside a sweep
    model, first = new_model(), 1
    if trial is not None and trial.resume_from is not None:  # a paused configuration, promoted
        model, first = load(trial.resume_from), trial.resume_epoch + 1
    for epoch in range(first, cfg.epochs + 1):
        accuracy = train_one_epoch(model)
        if trial is not None:
            trial.report(accuracy, epoch)
            if trial.should_pause():  # not (yet) in the top 1/eta at this rung
                trial.save_checkpoint(lambda path: save(model, path))
                raise client.TrialPaused(f"paused after epoch {epoch}")
            if trial.should_prune():
                raise client.TrialPruned(f"pruned after epoch {epoch}")
    return accuracy

An app that never asks `should_pause` (it cannot checkpoint) is simply stopped where a pausing one
would pause. Lightning apps pass `client.PruningCallback(trial, monitor="val/acc")` to their Trainer
and `ckpt_path=trial.resume_from` to `fit` instead: the callback does the rest.
Importing this module is cheap and torch-free (Hydra's plugin scan imports it at every start); Optuna is
imported when a trial is attached, Lightning only when `PruningCallback` is used.
"""

# No `from __future__ import annotations`: Hydra's plugin scan runs this module before it is in
# sys.modules, where a dataclass cannot resolve string annotations.
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra_plugins.hydra_bohb_sweeper import names

if TYPE_CHECKING:
    import optuna
    from optuna import TrialPruned

    from hydra_plugins.hydra_bohb_sweeper._integrations.lightning import PruningCallback
    from hydra_plugins.hydra_bohb_sweeper._running.signals import TrialPaused

__all__ = [
    "PruningCallback",
    "SweepJob",
    "SweepTrial",
    "TrialPaused",
    "TrialPruned",
    "TrialTakenOver",
    "current_job",
    "current_trial",
]


@dataclass(frozen=True)
class SweepJob:
    """What the sweeper told this job: its study, and its trial or its role after the search."""

    study_name: str
    storage: str  # the storage URL, its password redacted
    role: str  # names.TRIAL; after the search names.CANDIDATE, names.FINAL (the pick) or names.BASELINE
    trial_number: int | None  # None for the evaluations after the search
    budget: int | None  # epochs of a full trial
    config_number: int | None = None  # the trial's configuration (the number of its first trial)
    checkpoints: Path | None = None  # where a trial saves the checkpoint it pauses with
    save_model_to: Path | None = None  # a final candidate: where to save the model it trained
    load_model_from: Path | None = None  # a test job: the candidate's model to evaluate

    def wandb_names(self) -> dict[str, str]:
        """name, group and job_type of this job's W&B run, as the sweep's own run groups them. The
        segments of one configuration are one run, `trial-<configuration>`: `id` is the same for all of
        them (derived from the study and its storage) and a resumed segment continues it."""
        if self.role == names.TRIAL:
            number = self.config_number if self.config_number is not None else self.trial_number
            study = hashlib.sha1(f"{self.storage}|{self.study_name}".encode()).hexdigest()[:10]
            return {
                "name": f"trial-{number}", "group": self.study_name, "job_type": "trial",
                "id": f"bohb-{study}-{number}", "resume": "allow",
            }  # fmt: skip
        if self.role == names.CANDIDATE:  # one of the configurations retrained for the final pick
            return {"name": f"candidate-{self.config_number}", "group": self.study_name, "job_type": "final"}
        return {"name": f"{self.role}-{self.study_name}", "group": self.study_name, "job_type": "final"}

    def save_model(self, write: Callable[[Path], Any]) -> Path | None:
        """A final candidate keeps the model it trained, so that the pick is tested without training it
        again: `write(path)` saves it. Does nothing (returns None) for other jobs."""
        if self.save_model_to is None:
            return None
        return atomic_save(self.save_model_to, write)


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def current_job() -> SweepJob | None:
    """This job's place in a sweep, or None when it was not launched by the BOHB sweeper."""
    env = os.environ
    if names.ENV_STUDY not in env:
        return None
    trial, config, budget = env.get(names.ENV_TRIAL), env.get(names.ENV_CONFIG), env.get(names.ENV_BUDGET)
    return SweepJob(
        study_name=env[names.ENV_STUDY],
        storage=env.get(names.ENV_STORAGE, ""),
        role=env.get(names.ENV_ROLE, names.TRIAL),
        trial_number=int(trial) if trial else None,
        budget=int(budget) if budget else None,
        config_number=int(config) if config else (int(trial) if trial else None),
        checkpoints=_path(env.get(names.ENV_CHECKPOINTS)),
        save_model_to=_path(env.get(names.ENV_SAVE_MODEL)),
        load_model_from=_path(env.get(names.ENV_LOAD_MODEL)),
    )


def atomic_save(path: Path, write: Callable[[Path], Any]) -> Path:
    """`write(tmp)` into a temporary name beside `path`, then rename: a job killed while saving never
    leaves a half-written file (or folder) under `path`."""
    from hydra_plugins.hydra_bohb_sweeper._outputs.files import atomic_save as save

    return save(path, write)


# One storage (a database engine) per URL in this process: a worker that runs trial after trial opens
# it once.
_storages: dict[str, Any] = {}


class SweepTrial:
    """This job's live Optuna trial, attached through the shared storage, with the study's scheduler.
    `storage`: the study's storage already open (by default it is opened from `job.storage`)."""

    def __init__(self, job: SweepJob, storage: "optuna.storages.BaseStorage | None" = None) -> None:
        import optuna

        from hydra_plugins.hydra_bohb_sweeper._study import scheduling as _scheduling
        from hydra_plugins.hydra_bohb_sweeper._study.storage import open_storage

        assert job.trial_number is not None, "evaluations after the search have no trial"
        if storage is None:
            storage = _storages.get(job.storage) or _storages.setdefault(
                job.storage, open_storage(job.storage)
            )
        study_id = storage.get_study_id_from_name(job.study_name)
        study_attrs = storage.get_study_user_attrs(study_id)
        study = optuna.load_study(study_name=job.study_name, storage=storage)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, job.trial_number)
        attrs = storage.get_trial(trial_id).user_attrs
        self.scheduler = _scheduling.recorded(study_attrs, job.budget)
        self.number = job.trial_number
        self.config_number = int(attrs.get(names.CONFIG_ATTR, job.trial_number))
        self.budget = job.budget
        self.n_objectives = len(study.directions)
        resume = attrs.get(names.RESUME_ATTR)
        # Epochs the configuration trained before this trial (it continues from a checkpoint).
        self.resume_epoch: int = int(resume["epoch"]) if resume else 0
        self._resume_path = Path(resume["path"]) if resume else None
        self._checkpoints = job.checkpoints
        # The study's own storage: Optuna caches an SQL storage's finished trials there, so a decision at
        # each epoch reads only the trials that changed.
        self._study, self._storage, self._study_id, self._trial_id = study, study._storage, study_id, trial_id
        self._directions = [d.name.lower() for d in study.directions]
        self._trial = optuna.Trial(study, trial_id)
        self._last_step = 0
        self._values_by_epoch: dict[str, list[float]] = {}
        self._pause_asked_at: int | None = None
        self._decisions: dict[tuple[int, bool], str] = {}

    @property
    def params(self) -> dict[str, Any]:
        """The sampled parameters (active ones only), by their dotted config keys."""
        return dict(self._trial.params)

    @property
    def resume_from(self) -> Path | None:
        """The checkpoint this trial continues its configuration from (it resumes after epoch
        `resume_epoch`), or None for a configuration's first trial."""
        if self._resume_path is not None and not self._resume_path.exists():
            raise FileNotFoundError(
                f"trial {self.number} continues configuration {self.config_number} from "
                f"{self._resume_path}, which is gone; the sweep directory must stay where it was"
            )
        return self._resume_path

    def report(self, value: "float | Sequence[float]", step: int) -> None:
        """The objective after `step` epochs in all (1 after the first, counted from the configuration's
        start, not this trial's); the scheduler compares configurations by it.

        A study with several objectives takes one value per objective, in the order of
        `hydra.sweeper.direction` (those known before training, such as a parameter count, included)."""
        import optuna

        self._last_step = step
        try:
            if self.n_objectives == 1:
                self._trial.report(float(value if not isinstance(value, Sequence) else value[0]), step=step)
                return
            values = [float(v) for v in value] if isinstance(value, Sequence) else [float(value)]
            if len(values) != self.n_objectives:
                raise ValueError(
                    f"report() got {len(values)} values; the study has {self.n_objectives} objectives"
                )
            # Optuna refuses trial.report here: the vectors go to a trial attribute the scheduler reads.
            self._values_by_epoch[str(step)] = values
            self._trial.set_user_attr(names.VALUES_BY_EPOCH_ATTR, self._values_by_epoch)
        except optuna.exceptions.UpdateFinishedTrialError:
            raise TrialTakenOver(self.number) from None

    def should_pause(self) -> bool:
        """Whether to save a checkpoint (`save_checkpoint`) and stop now, to be resumed if the
        configuration is promoted later. Asking it tells the scheduler this job can pause."""
        self._pause_asked_at = self._last_step
        if self._checkpoints is None or not self.scheduler.pauses:
            return False
        from hydra_plugins.hydra_bohb_sweeper._study.scheduling import PAUSE

        return self._decision(can_pause=True) == PAUSE

    def should_prune(self) -> bool:
        """Whether to stop now for good. A trial that has trained its full budget is complete, whatever
        its rank."""
        from hydra_plugins.hydra_bohb_sweeper._study.scheduling import STOP

        can_pause = self._pause_asked_at == self._last_step and self._checkpoints is not None
        return self._decision(can_pause) == STOP

    def _decision(self, can_pause: bool) -> str:
        step = self._last_step
        if self.budget is not None and step >= self.budget:
            return "continue"
        key = (step, can_pause)
        if key not in self._decisions:
            from hydra_plugins.hydra_bohb_sweeper._study.view import StudyView

            view = StudyView.read(self._storage, self._study_id, directions=self._directions)
            view.study = self._study
            frozen = next(t for t in view.trials if t.number == self.number)
            self._decisions[key] = self.scheduler.on_report(view, frozen, step, can_pause)
        return self._decisions[key]

    def save_checkpoint(self, write: Callable[[Path], Any]) -> Path:
        """Save the configuration's state after the last reported epoch: `write(path)` writes it (a file
        or a folder). Written under a temporary name and renamed, so a killed job never leaves a
        half-written checkpoint that a later trial would read."""
        import optuna

        if self._checkpoints is None:
            raise RuntimeError("this job has no checkpoint folder (it was not launched by a pausing sweep)")
        # A name of this trial's own: a trial its sweeper lost (failed as stale) may still be saving
        # while its retry saves the same configuration at the same epoch.
        name = f"trial-{self.number}-epoch-{self._last_step}.ckpt"
        path = atomic_save(self._checkpoints / f"config-{self.config_number}" / name, write)
        try:
            self._trial.set_user_attr(names.CHECKPOINT_ATTR, {"epoch": self._last_step, "path": str(path)})
        except optuna.exceptions.UpdateFinishedTrialError:
            from hydra_plugins.hydra_bohb_sweeper._running.checkpoints import remove

            remove(path)  # recorded nowhere, so nobody would ever delete it
            raise TrialTakenOver(self.number) from None
        return path

    @property
    def optuna_trial(self) -> "optuna.Trial":
        return self._trial


class TrialTakenOver(RuntimeError):
    """This job's trial was ended while it ran (its sweeper stopped beating for longer than the grace
    period, and another sweeper failed it as stale): a retry continues its configuration, so this job
    must stop."""

    def __init__(self, number: int) -> None:
        super().__init__(
            f"trial {number} was failed as stale while this job ran (its sweeper stopped sending "
            "heartbeats); its configuration is retried elsewhere, so this job stops"
        )


def current_trial() -> SweepTrial | None:
    """This job's trial, or None outside a sweep (and for the evaluations after the search)."""
    job = current_job()
    if job is None or job.trial_number is None:
        return None
    return SweepTrial(job)


def __getattr__(name: str) -> Any:
    # Lazily, so that importing the client never imports Optuna or Lightning.
    if name == "TrialPruned":
        import optuna

        return optuna.TrialPruned
    if name == "TrialPaused":
        from hydra_plugins.hydra_bohb_sweeper._running.signals import TrialPaused

        return TrialPaused
    if name == "PruningCallback":
        from hydra_plugins.hydra_bohb_sweeper._integrations.lightning import PruningCallback

        return PruningCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
