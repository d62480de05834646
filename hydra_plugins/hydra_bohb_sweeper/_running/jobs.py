"""What a launched job receives: the sampled overrides, the budget, and its identity in the environment.

The identity travels as `hydra.job.env_set` overrides, which every launcher applies in the job's own
process (in-process, joblib, submitit, SLURM), so the app needs no config node for it and a job
launched by anything else simply finds none (see `client.current_job`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hydra_plugins.hydra_bohb_sweeper import names
from hydra_plugins.hydra_bohb_sweeper._setup.search_space import format_value

ENV_SET = "hydra.job.env_set"


def identity_overrides(
    study_name: str, storage: str, role: str, budget: int, trial_number: int | None = None,
    extra: Mapping[str, str] | None = None,
) -> list[str]:  # fmt: skip
    """`storage` as jobs may see it: with its password redacted. `extra`: more of the names.ENV_*
    variables (the configuration, where checkpoints and models go)."""
    env = {
        names.ENV_STUDY: study_name,
        names.ENV_STORAGE: storage,
        names.ENV_ROLE: role,
        names.ENV_BUDGET: str(budget),
        **({names.ENV_TRIAL: str(trial_number)} if trial_number is not None else {}),
        **(extra or {}),
    }
    # `++`: add the key whether or not the app's config sets env_set entries of its own.
    return [f"++{ENV_SET}.{key}={format_value(value)}" for key, value in env.items()]


def is_identity(override: str) -> bool:
    return override.lstrip("+~").startswith(f"{ENV_SET}.HYDRA_BOHB_")


def key_of(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def merge(base: Sequence[str], extra: Sequence[str]) -> list[str]:
    """`extra` wins over `base` key by key (Hydra refuses two overrides of one key)."""
    replaced = {key_of(o) for o in extra}
    return [*(o for o in base if key_of(o) not in replaced), *extra]
