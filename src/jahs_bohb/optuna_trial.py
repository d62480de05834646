"""The contract between the BOHB sweeper and a training job: how a job finds its Optuna trial.

The sweeper passes the trial's identity (study name, storage URL, trial number) as ordinary config
values under `optuna_trial`, and stores the pruner's config in the study's user attributes. Any process
that can reach the storage can then report intermediate values and ask whether to stop, so pruning works
with the in-process launcher, joblib, submitit or SLURM alike. Imports no torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from hydra.utils import instantiate

TRIAL_NODE = "optuna_trial"  # the job config node the sweeper fills in
PRUNER_ATTR = "pruner_config"  # study user attribute holding the pruner's `_target_` config
OVERRIDES_ATTR = "overrides"  # trial user attribute: the overrides that launched it
OUTPUT_DIR_ATTR = "output_dir"  # trial user attribute: the job's output directory
FAIL_REASON_ATTR = "fail_reason"  # trial user attribute: why a FAIL trial failed
SQLITE_TIMEOUT_S = 60  # parallel jobs share one SQLite file; wait for its lock instead of failing
_PASSWORD = re.compile(r"(?P<head>^[a-zA-Z][\w+.-]*://[^:/@]*:)(?P<secret>[^@]*)(?P<tail>@)")


def redact(url: str | None) -> str | None:
    """The URL with any password replaced by `***`, for logs and files."""
    return None if url is None else _PASSWORD.sub(r"\g<head>***\g<tail>", url)


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage from a URL: SQLAlchemy URLs (sqlite, postgresql, ...) or a journal file.

    A journal file is given as `journal:///abs/path` or as a path ending in `.journal` / `.log`.
    """
    if url.startswith("journal://") or ("://" not in url and Path(url).suffix in (".journal", ".log")):
        path = url.removeprefix("journal://")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        backend = optuna.storages.journal.JournalFileBackend(path)
        return optuna.storages.JournalStorage(backend)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
    else:
        engine_kwargs["pool_pre_ping"] = True
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)


@dataclass(frozen=True)
class TrialIdentity:
    study_name: str
    storage: str
    number: int

    @classmethod
    def from_config(cls, node: Any) -> TrialIdentity | None:
        """The identity from the job's `optuna_trial` node, or None outside a sweep."""
        if node is None or node.get("number") is None:
            return None
        return cls(str(node["study_name"]), str(node["storage"]), int(node["number"]))


def attach(identity: TrialIdentity) -> optuna.Trial:
    """The live trial the sweeper asked for, with the sweeper's pruner, usable from any process."""
    storage = open_storage(identity.storage)
    study_id = storage.get_study_id_from_name(identity.study_name)
    pruner_config = storage.get_study_user_attrs(study_id).get(PRUNER_ATTR)
    pruner = instantiate(pruner_config) if pruner_config else None
    study = optuna.load_study(study_name=identity.study_name, storage=storage, pruner=pruner)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, identity.number)
    return optuna.Trial(study, trial_id)
