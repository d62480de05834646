"""The search-quality benchmark (benchmarks/search_quality.py): every strategy searches the same space,
and a tiny run of all seven goes through the real sweeper and the external optimizers end to end."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hydra_plugins.hydra_bohb_sweeper._setup.search_space import build_search_space

REPO_ROOT = Path(__file__).resolve().parents[1]
APP_DIR = REPO_ROOT / "benchmarks" / "search_quality_app"
BENCH_PYTHON = REPO_ROOT / "benchmarks" / ".venv-search" / "bin" / "python"
sys.path.insert(0, str(APP_DIR))

import mlp_task  # noqa: E402


def test_the_sweeper_searches_the_task_space() -> None:
    """The app's `hydra.sweeper.params` and conditions are mlp_task's space, which external.py gives the
    external optimizers as a ConfigSpace."""
    sweeper = yaml.safe_load((APP_DIR / "conf" / "config.yaml").read_text())["hydra"]["sweeper"]
    space = build_search_space(sweeper["params"], sweeper["conditions"], [])
    widths = IntDistribution(mlp_task.WIDTH_RANGE[0], mlp_task.WIDTH_RANGE[1], log=True)
    assert space.distributions == {
        "depth": CategoricalDistribution(mlp_task.DEPTHS),
        "width_1": widths,
        "width_2": widths,
        "width_3": widths,
        "lr": FloatDistribution(mlp_task.LR_RANGE[0], mlp_task.LR_RANGE[1], log=True),
        "weight_decay": FloatDistribution(
            mlp_task.WEIGHT_DECAY_RANGE[0], mlp_task.WEIGHT_DECAY_RANGE[1], log=True
        ),
        "batch_size": CategoricalDistribution(mlp_task.BATCH_SIZES),
        "optimizer": CategoricalDistribution(mlp_task.OPTIMIZERS),
        "dropout": CategoricalDistribution(mlp_task.DROPOUTS),
    }

    def active_with(depth: int) -> set[str]:
        return set(space.sample(lambda name, _: depth if name == "depth" else 1))

    active = {depth: active_with(depth) for depth in (1, 2, 3)}
    assert {d: sorted(n for n in names if n.startswith("width")) for d, names in active.items()} == {
        1: ["width_1"],
        2: ["width_1", "width_2"],
        3: ["width_1", "width_2", "width_3"],
    }
    if importlib.util.find_spec("ConfigSpace") is not None:  # the benchmark's venv
        import external

        cs = external.configspace(seed=0)
        assert sorted(cs) == sorted(space.distributions)
        for depth, names in active.items():
            config = dict(cs.sample_configuration())
            while config["depth"] != depth:
                config = dict(cs.sample_configuration())
            assert set(config) == names


@pytest.mark.slow
@pytest.mark.skipif(not BENCH_PYTHON.exists(), reason="no benchmark venv: search_quality.py --setup")
def test_every_strategy_spends_the_same_epochs(tmp_path: Path) -> None:
    """A tiny run of the seven strategies, one seed each: the sweeper's run goes through Hydra's multirun
    and stops when its epochs are spent, and every run's anytime curve has one point per epoch."""
    out = tmp_path / "sq.json"
    budget = 30
    proc = subprocess.run(
        [str(BENCH_PYTHON), "benchmarks/search_quality.py", "--seeds", "1", f"--budget-epochs={budget}",
         "--train-images", "300", "--val-images", "300", "--test-images", "300", "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    strategies = report["strategies"]
    assert list(strategies) == ["ours", "random", "hyperband", "tpe", "smac", "hpbandster", "dehb"]
    for name, entry in strategies.items():
        (run,) = entry["runs"]
        assert run["incumbent"]["at_cumulative_epoch"] <= budget, name
        assert 0.1 < run["final_best_val"] <= 1.0, name
        assert len(entry["checkpoints"]["median"]) == 20, name
    # 30 epochs: one complete trial of 27 epochs and the one the budget interrupted.
    assert strategies["random"]["runs"][0]["details"]["states"] == {"COMPLETE": 1, "FAIL": 1}
    assert strategies["ours"]["runs"][0]["details"]["trials"] >= 2
    assert out.with_suffix(".png").stat().st_size > 10_000
