"""The contract between the BOHB sweeper and a training job: how a job finds its Optuna trial.

The sweeper passes the trial's identity (study name, storage URL, trial number) as ordinary config
values under `optuna_trial`, and stores the pruner's config in the study's user attributes. Any process
that can reach the storage can then report intermediate values and ask whether to stop, so pruning works
with the in-process launcher, joblib, submitit or SLURM alike. Imports no torch.
"""

from __future__ import annotations

import os
import random
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from hydra.utils import instantiate
from optuna.storages.journal import JournalFileBackend

TRIAL_NODE = "optuna_trial"  # the job config node the sweeper fills in
PRUNER_ATTR = "pruner_config"  # study user attribute holding the pruner's `_target_` config
OVERRIDES_ATTR = "overrides"  # trial user attribute: the overrides that launched it
OUTPUT_DIR_ATTR = "output_dir"  # trial user attribute: the job's output directory
FAIL_REASON_ATTR = "fail_reason"  # trial user attribute: why a FAIL trial failed
STORAGE_ENV = "JAHS_BOHB_STORAGE_URL"  # the real URL when the config carries it with its password redacted
SQLITE_TIMEOUT_S = 60  # parallel jobs share one SQLite file; wait for its lock instead of failing
OPEN_ATTEMPTS = 4
HEARTBEAT_GRACE_FACTOR = 4  # a trial is stale after this many missed heartbeats
_PASSWORD = re.compile(r"(?P<head>^[a-zA-Z][\w+.-]*://[^:/@]*:)(?P<secret>[^@]*)(?P<tail>@)")


def redact(url: str | None) -> str | None:
    """The URL with any password replaced by `***`, for logs and files."""
    return None if url is None else _PASSWORD.sub(r"\g<head>***\g<tail>", url)


def has_password(url: str | None) -> bool:
    return url is not None and redact(url) != url


def resolve_url(url: str) -> str:
    """A storage URL whose password was redacted (`***`) gets it back from the environment.

    The sweeper never writes a password into job configs, logs or files: it passes the redacted URL
    and exports the real one as JAHS_BOHB_STORAGE_URL, which launchers pass on to their jobs (joblib,
    submitit and SLURM copy the environment).
    """
    if "***" not in url:
        return url
    real = os.environ.get(STORAGE_ENV)
    if real is None or redact(real) != url:
        raise ValueError(
            f"storage {url} has its password redacted; export the full URL as {STORAGE_ENV} for this job"
        )
    return real


def open_storage(url: str, heartbeat_interval: int | None = None) -> optuna.storages.BaseStorage:
    """An Optuna storage from a URL: SQLAlchemy URLs (sqlite, postgresql, ...) or a journal file.

    A journal file is given as `journal:///abs/path` or as a path ending in `.journal` / `.log`.
    `heartbeat_interval` (seconds) turns on Optuna's stale-trial detection (SQL storages only).
    """
    url = resolve_url(url)
    if url.startswith("journal://") or ("://" not in url and Path(url).suffix in (".journal", ".log")):
        path = url.removeprefix("journal://")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(path)
        return optuna.storages.JournalStorage(backend)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
    else:
        engine_kwargs["pool_pre_ping"] = True
    for attempt in range(OPEN_ATTEMPTS):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.8
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return _rdb(url, engine_kwargs, heartbeat_interval)
        except ImportError:
            raise
        except Exception:
            # Sweepers started together (a SLURM array) race to create the tables of a fresh database.
            if attempt == OPEN_ATTEMPTS - 1:
                raise
            time.sleep(0.5 + random.random() * (attempt + 1))
    raise AssertionError("unreachable")


def _rdb(
    url: str, engine_kwargs: dict[str, Any], heartbeat_interval: int | None
) -> optuna.storages.RDBStorage:
    if heartbeat_interval is None:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    return optuna.storages.RDBStorage(
        url,
        engine_kwargs=engine_kwargs,
        heartbeat_interval=heartbeat_interval,
        grace_period=HEARTBEAT_GRACE_FACTOR * heartbeat_interval,
        # A stale trial (its sweeper died) is failed and its configuration enqueued once more.
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
    )


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
