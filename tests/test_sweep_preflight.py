"""A search space the job cannot accept is refused before the first trial, in one line, with no study:
the sweeper composes the job config at each end of every parameter's range and runs the app's
`preflight_check` (conf/sweeper/bohb.yaml) on it. Through the function the sweeper calls, on the real
app's config; test_sweeper_cli.py shows the command line's side of a refusal.
"""

from __future__ import annotations

import pytest
from sweeps import REPO_ROOT, compose_sweep, sweeper_settings

from hydra_plugins.hydra_bohb_sweeper._setup.preflight import prepare
from hydra_plugins.hydra_bohb_sweeper._setup.settings import SweepConfigError

TRAIN = REPO_ROOT / "train.py"

CASES = [
    ("optimizer.lr=tag(log, interval(1e-4, 1e-1))", "optimizer.lr=0.0001 is out of range"),
    ("optimizer=choice(adam, adamw)", "optimizer/adamw"),
    ("model.n_filters_1=int(interval(4, 64))", "model.n_filters_1=4 is out of range"),
    ("data.batch_size=choice(32, 64)", "data.batch_size=32 is out of range"),
    ("trainer.max_epochs=5", "hydra.sweeper.budget"),
]


def prepare_train_sweep(*arguments: str, hydra_overrides: tuple[str, ...] = ()) -> None:
    config, compose = compose_sweep(["sweeper=bohb", *hydra_overrides], app=TRAIN, config_name="train")
    prepare(sweeper_settings(config), "train", ["sweeper=bohb", *arguments], config, compose)


@pytest.mark.parametrize(("override", "message"), CASES)
def test_space_the_job_refuses_fails_before_any_trial(override: str, message: str) -> None:
    with pytest.raises(SweepConfigError) as refused:
        prepare_train_sweep(override)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_the_seed_space_passes_and_composes_with_the_none_pruner() -> None:
    """`sweeper=bohb` sets the pruner's fields; `hydra/sweeper/pruner=none` must still compose (it did
    not once)."""
    prepare_train_sweep()
    prepare_train_sweep(hydra_overrides=("hydra/sweeper/pruner=none",))


@pytest.mark.parametrize(
    ("sweeper", "mode", "directions"),
    [("bohb", "promotion", ["maximize"]), ("bohb_stopping", "stopping", ["maximize"]),
     ("bohb_mo", "promotion", ["maximize", "minimize"])],
)  # fmt: skip
def test_the_apps_sweeper_presets_choose_their_scheduler(
    sweeper: str, mode: str, directions: list[str]
) -> None:
    config, compose = compose_sweep([f"sweeper={sweeper}"], app=TRAIN, config_name="train")
    settings, _ = prepare(sweeper_settings(config), "train", [f"sweeper={sweeper}"], config, compose)
    assert settings.scheduler.record()["mode"] == mode and settings.directions == directions
    assert settings.budget == 27
