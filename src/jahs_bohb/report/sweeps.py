"""Reading one finished sweep back: its results files, its Optuna study, the final evaluation of the
incumbent and the baseline, and the baseline's configuration."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from omegaconf import OmegaConf

from hydra_plugins.hydra_bohb_sweeper.analysis import best_so_far_by_epochs, condition_holds
from hydra_plugins.hydra_bohb_sweeper.names import FINAL_FILE, METRICS_ATTR, RESULTS_FILE, STORAGE_FILE

States = optuna.trial.TrialState
FINISHED = (States.COMPLETE, States.PRUNED, States.FAIL)


def epochs_text(n: int) -> str:
    return "1 epoch" if n == 1 else f"{n} epochs"


def accuracy_of(trial: optuna.trial.FrozenTrial) -> float | None:
    """The trial's validation accuracy: its objective, or its first one in a study with several."""
    values = trial.values
    return float(values[0]) if values and math.isfinite(values[0]) else None


@dataclass
class Sweep:
    """One finished sweep directory, read back from its files and its Optuna study."""

    directory: Path
    study: optuna.Study
    results: dict[str, Any]
    final: dict[str, Any] = field(default_factory=dict)

    def configuration_params(self, number: int) -> dict[str, Any]:
        """The parameters of configuration `number` (its first trial's)."""
        return dict(self.study.trials[number].params)

    @classmethod
    def load(cls, directory: Path, storage: str | None = None, study: optuna.Study | None = None) -> Sweep:
        """The sweep in `directory`; its study from `study`, else from `storage`, else from the SQLite
        file the sweeper writes by default."""
        results = yaml.safe_load((directory / RESULTS_FILE).read_text())
        final_path = directory / FINAL_FILE
        final = yaml.safe_load(final_path.read_text()) if final_path.is_file() else {}
        if study is None:
            url = storage or f"sqlite:///{directory.resolve() / STORAGE_FILE}"
            study = optuna.load_study(study_name=results["study_name"], storage=url)
        return cls(directory, study, results, final or {})

    def evaluation(self, role: str) -> dict[str, Any]:
        """`incumbent` or `baseline`: what the final evaluation's job returned (test_acc, epochs, ...)."""
        record = self.final.get(role) or {}
        metrics = record.get("metrics") or {}
        return {
            "wall_time_s": record.get("wall_time_s"),
            **metrics,
            "val_acc_best": record.get("value"),
            "state": record.get("state"),
        }

    def trials(self, *states: optuna.trial.TrialState) -> list[optuna.trial.FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=states or None)

    def configurations(self) -> int:
        """Configurations the sweep trained (a configuration may be trained by several trials in a row:
        segments that pause at a rung and continue), as its results file counts them."""
        r = self.results
        return int(r.get("n_trials", r.get("n_complete", 0) + r.get("n_pruned", 0) + r.get("n_failed", 0)))

    def search_seconds(self) -> float:
        times = [(t.datetime_start, t.datetime_complete) for t in self.trials() if t.datetime_start]
        if not times:
            return 0.0
        start = min(s for s, _ in times)
        end = max(c or s for s, c in times)
        return (end - start).total_seconds()

    def best_curve(self) -> dict[str, np.ndarray]:
        """At each finished trial, from the first complete one on: `seconds` since the first trial started,
        `epochs` trained so far by all finished trials (pruned and failed ones included) and `best`, the
        best validation accuracy of the complete trials so far (the sweeper's `best_so_far_by_epochs`)."""
        rows = [r for r in best_so_far_by_epochs(self.study) if r["best_value"] is not None]
        return {
            "seconds": np.array([r["elapsed_s"] for r in rows], float),
            "epochs": np.array([r["epochs"] for r in rows], float),
            "best": np.array([r["best_value"] for r in rows], float),
        }

    def best_at_budget(self, epochs: float) -> float | None:
        """Best validation accuracy among trials completed once `epochs` epochs had been spent in total."""
        best = None
        for row in best_so_far_by_epochs(self.study):
            if row["epochs"] > epochs:
                break
            best = row["best_value"]
        return best

    def baseline_params(self, params: Sequence[str]) -> dict[str, Any] | None:
        """The baseline job's value of each parameter (None where the sweep's conditions make it inactive),
        read from the config Hydra saved for it; None when this sweep trained no baseline or the baseline
        lies outside the searched space (its config lacks a searched parameter)."""
        record = self.final.get("baseline") or {}
        folders = [Path(record["output_dir"])] if record.get("output_dir") else []
        for folder in [*folders, self.directory / "baseline"]:
            if (folder / ".hydra" / "config.yaml").is_file():
                break
        else:
            return None
        config = OmegaConf.load(folder / ".hydra" / "config.yaml")
        hydra_file = folder / ".hydra" / "hydra.yaml"
        hydra = (
            (yaml.safe_load(hydra_file.read_text()) or {}).get("hydra", {}) if hydra_file.is_file() else {}
        )
        choices = hydra.get("runtime", {}).get("choices") or {}  # config groups: optimizer=sgd
        conditions = hydra.get("sweeper", {}).get("conditions") or {}
        values: dict[str, Any] = {}
        missing = object()
        for name in params:
            try:
                value = choices[name] if name in choices else OmegaConf.select(config, name, default=missing)
            except Exception:  # an interpolation that resolves only inside the job
                value = None
            if value is missing:  # another space's model (sweeper=bohb_cell against the seed's CNN)
                return None
            values[name] = value
        for _ in conditions:  # conditions may chain: repeat until every parent is settled
            for child, text in conditions.items():
                if child in values and not condition_holds(str(child), str(text), values):
                    values[child] = None
        return values

    def device(self) -> str:
        for role in ("incumbent", "baseline"):
            if device := self.evaluation(role).get("device"):
                return str(device)
        for trial in self.trials():
            if device := trial.user_attrs.get(METRICS_ATTR, {}).get("device"):
                return str(device)
        return "unknown"


@dataclass
class Baseline:
    """The baseline (the job's default configuration) as the final evaluation trained it."""

    value: float  # validation accuracy, 0..1
    epochs: int | None
    params: dict[str, Any] | None  # its value of each searched parameter, None where inactive

    @property
    def label(self) -> str:
        epochs = f", {epochs_text(self.epochs)}" if self.epochs else ""
        return f"baseline: {100 * self.value:.1f}% (final evaluation{epochs})"


def baseline_of(sweeps: Sequence[Sweep], params: Sequence[str] = ()) -> Baseline | None:
    """The baseline's validation accuracy (mean over the sweeps that trained it) and configuration."""
    evaluations = [s.evaluation("baseline") for s in sweeps]
    values = [e["val_acc_best"] for e in evaluations if e.get("val_acc_best") is not None]
    if not values:
        return None
    epochs = next((int(e["epochs"]) for e in evaluations if e.get("epochs")), None)
    config = (
        next((p for s in sweeps if (p := s.baseline_params(params)) is not None), None) if params else None
    )
    return Baseline(statistics.mean(values), epochs, config)
