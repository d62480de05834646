"""One-line errors keep their reason (the cause that Hydra's instantiate and target lookups wrap), for
the sampler, the pruner and the functions the settings name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hydra_plugins.hydra_bohb_sweeper._setup.settings import SweepConfigError, check_settings
from hydra_plugins.hydra_bohb_sweeper._study.open import open_study

HOOKS = ["preflight_check", "report", "custom_search_space"]  # the settings that name a function
SCHEDULING = "hydra_plugins.hydra_bohb_sweeper._study.scheduling"


def settings(**changes: Any) -> dict[str, Any]:
    return {
        "sampler": {"_target_": "optuna.samplers.RandomSampler", "seed": 0},
        "pruner": {"_target_": f"{SCHEDULING}.NoPruning"},
        "budget": 1,
        **changes,
    }


def refused(raw: dict[str, Any], tmp_path: Path) -> str:
    with pytest.raises(SweepConfigError) as error:
        open_study(check_settings(raw, job_name="toy"), f"sqlite:///{tmp_path / 'optuna.db'}")
    message = str(error.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize("key", HOOKS)
def test_a_hook_that_cannot_be_imported_says_why(key: str, tmp_path: Path) -> None:
    message = refused(settings(**{key: "no_such_module.function"}), tmp_path)
    assert f"hydra.sweeper.{key}=no_such_module.function cannot be imported" in message
    assert "No module named 'no_such_module'" in message


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        (
            {"sampler": {"_target_": "optuna.samplers.QMCSampler", "no_such_arg": 1}},
            ["hydra.sweeper.sampler", "unexpected keyword argument 'no_such_arg'"],
        ),
        (
            {"sampler": {"_target_": "optuna.samplers.NSGAIISampler", "population_size": 1}},
            ["hydra.sweeper.sampler", "`population_size` must be greater than or equal to 2"],
        ),
        (
            {"pruner": {"_target_": "optuna.pruners.MedianPruner", "no_such_arg": 1}},
            ["hydra.sweeper.pruner", "unexpected keyword argument 'no_such_arg'"],
        ),
        (
            {"pruner": {"_target_": f"{SCHEDULING}.Hyperband", "no_such_arg": 1}},
            ["hydra.sweeper.pruner", "unexpected keyword argument 'no_such_arg'"],
        ),
    ],
)
def test_a_sampler_or_pruner_that_refuses_its_arguments_says_why(
    changes: dict[str, Any], fragments: list[str], tmp_path: Path
) -> None:
    message = refused(settings(**changes), tmp_path)
    assert all(fragment in message for fragment in fragments), message
