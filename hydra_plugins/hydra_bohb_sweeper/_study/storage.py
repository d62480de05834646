"""Storage URLs and their secrets, and opening the storage: shared by the sweeper and its jobs.

A storage URL with a password never reaches a file or a log: the sweeper hands jobs the URL with the
password as `***` and exports the real one as HYDRA_BOHB_STORAGE_URL in its own environment, which every
launcher passes on (joblib and submitit copy it; SLURM jobs inherit it from sbatch).
"""

from __future__ import annotations

import os
import random
import re
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend

from hydra_plugins.hydra_bohb_sweeper.names import ENV_STORAGE_SECRET

SQLITE_TIMEOUT_S = 60  # parallel jobs share one SQLite file; wait for its lock instead of failing
OPEN_ATTEMPTS = 4
# A URL inside a line of text (an override, a message), without the punctuation that may follow it.
_URL = re.compile(r"[a-zA-Z][\w+.-]*://[^\s'\"]*[^\s'\".,:;)\]]")


def redact(text: str | None) -> str | None:
    """`text` with the password of every database URL in it replaced by `***` (SQLAlchemy's own
    rendering), for logs and files."""
    return None if text is None else _URL.sub(lambda match: _hidden(match.group(0)), text)


def _hidden(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # not a database URL
        return url
    return url if parsed.password is None else parsed.render_as_string(hide_password=True)


def has_password(url: str | None) -> bool:
    return url is not None and redact(url) != url


def resolve_url(url: str) -> str:
    """A URL whose password was redacted (`***`) gets it back from the environment."""
    if "***" not in url:
        return url
    real = os.environ.get(ENV_STORAGE_SECRET)
    if real is None or redact(real) != url:
        raise ValueError(
            f"storage {url} has its password redacted; export the full URL as {ENV_STORAGE_SECRET} "
            "for this job"
        )
    return real


def is_journal(url: str) -> bool:
    return url.startswith("journal://") or ("://" not in url and Path(url).suffix in (".journal", ".log"))


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage from a URL: SQLAlchemy URLs (sqlite, postgresql, ...) or a journal file.

    A journal file is given as `journal:///abs/path` or as a path ending in `.journal` / `.log`.
    """
    url = resolve_url(url)
    if is_journal(url):
        path = url.removeprefix("journal://")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(path))
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
    else:
        engine_kwargs["pool_pre_ping"] = True
    for attempt in range(OPEN_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except ImportError:
            raise
        except Exception:
            # Sweepers started together (a SLURM array) race to create the tables of a fresh database.
            if attempt == OPEN_ATTEMPTS - 1:
                raise
            time.sleep(0.5 + random.random() * (attempt + 1))
    raise AssertionError("unreachable")


def count_trials(storage: optuna.storages.BaseStorage, study_name: str) -> int:
    """Trials the study already has (0 when it does not exist yet)."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False))
