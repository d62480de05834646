"""A study made by an earlier version of the sweeper resumes with this one.

tests/fixtures/studies_0383986.sqlite holds two studies made at commit 0383986, before schedulers that
pause: they recorded their pruner by its `_target_` (one of them a module that no longer exists) and
their trials know nothing of configurations or brackets. Resumed, each old trial is a configuration of
its own, the study records today's scheduler by its public name, and new configurations pause and
resume beside the old ones.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pytest
from sweeps import REPO_ROOT, sweep_in_process

from hydra_plugins.hydra_bohb_sweeper import names
from hydra_plugins.hydra_bohb_sweeper._study import view as _view

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "studies_0383986.sqlite"
States = optuna.trial.TrialState


@pytest.fixture
def storage(tmp_path: Path) -> str:
    copy = tmp_path / "old.sqlite"
    shutil.copy(FIXTURE, copy)
    return f"sqlite:///{copy}"


@pytest.mark.slow  # a study of 0383986 resumed by a whole sweep
@pytest.mark.parametrize(
    ("study_name", "overrides"),
    [
        ("legacy-hyperband", []),
        (
            "legacy-pareto",
            ["hydra.sweeper.direction=[maximize,minimize]", "hydra.sweeper.objective=[acc,size]"],
        ),
    ],
)
def test_a_study_made_before_pausing_schedulers_resumes(
    tmp_path: Path, storage: str, study_name: str, overrides: list[str]
) -> None:
    before = optuna.load_study(study_name=study_name, storage=storage).get_trials()
    assert len(before) == 8 and names.PRUNER_ATTR in optuna.load_study(
        study_name=study_name, storage=storage
    ).user_attrs  # fmt: skip
    run = sweep_in_process(
        tmp_path / "sweep", f"hydra.sweeper.storage={storage}", f"hydra.sweeper.study_name={study_name}",
        "hydra.sweeper.n_trials=14", *overrides,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    study = optuna.load_study(study_name=study_name, storage=storage)
    trials = study.get_trials()
    assert [(t.number, t.state, t.values) for t in trials[:8]] == [
        (t.number, t.state, t.values) for t in before
    ]
    configs = _view.configurations(trials)
    assert len(configs) == 14  # the 8 old trials are 8 configurations; 6 new ones joined them
    assert study.user_attrs[names.SCHEDULER_ATTR]["name"] == "hyperband"  # by public name now
    new = [c for c in configs.values() if c.number >= 8]
    assert all(c.trials[0].user_attrs[names.CONFIG_ATTR] == c.number for c in new)
    assert {t.state for t in trials} <= {States.COMPLETE, States.PRUNED}
