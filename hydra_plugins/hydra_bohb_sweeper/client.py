"""The job side of the BOHB sweeper: find this job's trial, report a value per epoch, learn when to stop.

The sweeper launches each trial with its identity in the job's environment (through Hydra's
`hydra.job.env_set`, so every launcher passes it on and the app declares nothing), and stores its
pruner's config in the study. A job in any process that reaches the storage can therefore report and
be pruned exactly as the sweeper would decide::

    from hydra_plugins.hydra_bohb_sweeper import client

    trial = client.current_trial()  # None outside a sweep
    for epoch in range(1, cfg.epochs + 1):
        accuracy = train_one_epoch()
        if trial is not None:
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise client.TrialPruned(f"pruned after epoch {epoch}")
    return accuracy

Lightning apps pass `client.PruningCallback(trial, monitor="val/acc")` to their Trainer instead.
Importing this module is cheap and torch-free (Hydra's plugin scan imports it at every start); Optuna is
imported when a trial is attached, Lightning only when `PruningCallback` is used.
"""

# No `from __future__ import annotations`: Hydra's plugin scan runs this module before it is in
# sys.modules, where a dataclass cannot resolve string annotations.
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hydra_plugins.hydra_bohb_sweeper import names

if TYPE_CHECKING:
    import optuna
    from optuna import TrialPruned

    from hydra_plugins.hydra_bohb_sweeper._lightning import PruningCallback

__all__ = [
    "PruningCallback",
    "SweepJob",
    "SweepTrial",
    "TrialPruned",
    "current_job",
    "current_trial",
]


@dataclass(frozen=True)
class SweepJob:
    """What the sweeper told this job: its study, and its trial or its role after the search."""

    study_name: str
    storage: str  # the storage URL, its password redacted
    role: str  # names.TRIAL, names.FINAL or names.BASELINE
    trial_number: int | None  # None for the evaluations after the search
    budget: int | None  # epochs of a full trial

    def wandb_names(self) -> dict[str, str]:
        """name, group and job_type of this job's W&B run, as the sweep's own run groups them."""
        if self.role == names.TRIAL:
            return {"name": f"trial-{self.trial_number}", "group": self.study_name, "job_type": "trial"}
        return {"name": f"{self.role}-{self.study_name}", "group": self.study_name, "job_type": "final"}


def current_job() -> SweepJob | None:
    """This job's place in a sweep, or None when it was not launched by the BOHB sweeper."""
    env = os.environ
    if names.ENV_STUDY not in env:
        return None
    trial = env.get(names.ENV_TRIAL)
    budget = env.get(names.ENV_BUDGET)
    return SweepJob(
        study_name=env[names.ENV_STUDY],
        storage=env.get(names.ENV_STORAGE, ""),
        role=env.get(names.ENV_ROLE, names.TRIAL),
        trial_number=int(trial) if trial else None,
        budget=int(budget) if budget else None,
    )


# One storage (a database engine) per URL in this process: a worker that runs trial after trial opens
# it once.
_storages: dict[str, Any] = {}


class SweepTrial:
    """This job's live Optuna trial, attached through the shared storage with the sweeper's pruner."""

    def __init__(self, job: SweepJob) -> None:
        import optuna
        from hydra.utils import instantiate

        from hydra_plugins.hydra_bohb_sweeper._storage import open_storage

        assert job.trial_number is not None, "evaluations after the search have no trial"
        storage = _storages.get(job.storage) or _storages.setdefault(job.storage, open_storage(job.storage))
        study_id = storage.get_study_id_from_name(job.study_name)
        pruner_config = storage.get_study_user_attrs(study_id).get(names.PRUNER_ATTR)
        pruner = instantiate(pruner_config) if pruner_config else None
        study = optuna.load_study(study_name=job.study_name, storage=storage, pruner=pruner)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, job.trial_number)
        self.number = job.trial_number
        self.budget = job.budget
        self.n_objectives = len(study.directions)
        self._study, self._pruner = study, pruner
        self._trial = optuna.Trial(study, trial_id)
        self._last_step = 0
        self._values_by_epoch: dict[str, list[float]] = {}

    @property
    def params(self) -> dict[str, Any]:
        """The sampled parameters (active ones only), by their dotted config keys."""
        return dict(self._trial.params)

    def report(self, value: float | Sequence[float], step: int) -> None:
        """The objective after `step` epochs (1 after the first); the pruner compares trials by it.

        A study with several objectives takes one value per objective, in the order of
        `hydra.sweeper.direction` (those known before training, such as a parameter count, included)."""
        self._last_step = step
        if self.n_objectives == 1:
            self._trial.report(float(value if not isinstance(value, Sequence) else value[0]), step=step)
            return
        values = [float(v) for v in value] if isinstance(value, Sequence) else [float(value)]
        if len(values) != self.n_objectives:
            raise ValueError(
                f"report() got {len(values)} values; the study has {self.n_objectives} objectives"
            )
        # Optuna refuses trial.report here: the vectors go to a trial attribute the pruner reads.
        self._values_by_epoch[str(step)] = values
        self._trial.set_user_attr(names.VALUES_BY_EPOCH_ATTR, self._values_by_epoch)

    def should_prune(self) -> bool:
        """Whether to stop now. A trial that has trained its full budget is complete, whatever its rank."""
        if self.budget is not None and self._last_step >= self.budget:
            return False
        if self.n_objectives == 1:
            return bool(self._trial.should_prune())
        from hydra_plugins.hydra_bohb_sweeper._pruners import ParetoHyperbandPruner

        if not isinstance(self._pruner, ParetoHyperbandPruner):
            return False  # no pruning (the sweeper refuses single-objective pruners here)
        return self._pruner.prunes(self._study, self.number, self._last_step)

    @property
    def optuna_trial(self) -> "optuna.Trial":
        return self._trial


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
    if name == "PruningCallback":
        from hydra_plugins.hydra_bohb_sweeper._lightning import PruningCallback

        return PruningCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
