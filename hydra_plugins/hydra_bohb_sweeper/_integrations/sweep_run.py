"""The sweep's own W&B run (job_type "sweep"): best-so-far per trial, the trials as a table, figures,
importances and the best config. Run files go to the sweep directory beside the trials' runs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import optuna
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.hydra_bohb_sweeper._outputs.pareto import objective_names
from hydra_plugins.hydra_bohb_sweeper._outputs.results import epochs_trained
from hydra_plugins.hydra_bohb_sweeper._running.progress import best_so_far
from hydra_plugins.hydra_bohb_sweeper._setup.search_space import SearchSpace
from hydra_plugins.hydra_bohb_sweeper._setup.settings import Settings
from hydra_plugins.hydra_bohb_sweeper._study import view as _view
from hydra_plugins.hydra_bohb_sweeper._study.storage import redact
from hydra_plugins.hydra_bohb_sweeper._study.view import StudyView
from hydra_plugins.hydra_bohb_sweeper.names import FAIL_REASON_ATTR, METRICS_ATTR, PAUSED_ATTR
from hydra_plugins.hydra_bohb_sweeper.wandb_mode import wandb_mode, wandb_offline_because, wandb_run_mode

log = logging.getLogger(__name__)


def sweep_record(settings: Settings, space: SearchSpace, storage: str) -> dict[str, Any]:
    """The sweep's settings as its W&B run records them (`storage` without its password)."""
    return {
        "study_name": settings.study_name, "storage": storage, "n_trials": settings.n_trials,
        "n_jobs": settings.n_jobs, "budget_epochs": settings.budget, "sampler": settings.sampler,
        "pruner": settings.pruner, "search_space": {name: repr(d) for name, d in space.distributions.items()},
        "conditions": {name: c.text for name, c in space.conditions.items()},
        "fixed_overrides": [redact(o) for o in space.fixed.values()],
    }  # fmt: skip


class SweepRun:
    def __init__(self, run: Any) -> None:
        self.run = run

    @classmethod
    def start(
        cls, wandb_cfg: DictConfig | None, sweep_dir: Path, study_name: str, settings: dict[str, Any]
    ) -> SweepRun:
        """`wandb_cfg`: the app's W&B settings (project, entity, mode, dir, tags, init_kwargs)."""
        if not wandb_cfg or wandb_mode(wandb_cfg.get("mode")) == "disabled":
            return cls(None)
        import wandb

        save_dir = Path(wandb_cfg.get("dir") or sweep_dir)
        save_dir.mkdir(parents=True, exist_ok=True)
        extra = OmegaConf.to_container(wandb_cfg.init_kwargs) if wandb_cfg.get("init_kwargs") else {}
        mode = wandb_run_mode(wandb_cfg.get("mode"))  # offline, saying so once, when W&B is out of reach

        def start(mode: str) -> Any:
            return wandb.init(
                project=wandb_cfg.get("project"),
                entity=wandb_cfg.get("entity"),
                name=f"sweep-{study_name}",
                group=study_name,
                job_type="sweep",
                config=settings,
                dir=str(save_dir),
                mode=cast(Any, mode),
                tags=list(wandb_cfg.get("tags") or []),
                reinit="create_new",
                settings=wandb.Settings(silent=True),  # one hint at the end instead of W&B's banner
                **cast(dict[str, Any], extra),
            )

        try:
            run = start(mode)
        except Exception as exc:  # no API key, a refused one: the sweep and its trials go on offline
            if mode != "online":
                raise
            run = start(wandb_offline_because(exc))
        return cls(run)

    def trial_finished(
        self, trial: optuna.trial.FrozenTrial, view: StudyView, objectives: list[str], elapsed_s: float
    ) -> None:
        """`view`: the study read after `trial` was told; `objectives`: their names."""
        if self.run is None:
            return
        row: dict[str, Any] = {
            "trial": trial.number,
            "configuration": _view.config_number(trial),
            "state": _state(trial),
            "epochs": epochs_trained(trial),
            "elapsed_s": elapsed_s,
        }
        best, front = best_so_far(view)
        if len(view.directions) > 1:  # one value per objective, and the size of the front so far
            row.update(dict(zip(objectives, trial.values or [], strict=False)))
            row["front_size"] = front
        else:
            row["value"] = trial.value
            row["best_value"] = best.value if best else None
        self.run.log({k: v for k, v in row.items() if v is not None})

    def finish(
        self, study: optuna.Study, results: dict[str, Any], figures: dict[str, Path], failed: bool
    ) -> None:
        if self.run is None:
            return
        import wandb

        try:
            trials = study.get_trials(deepcopy=False)
            objectives = objective_names(study) if len(study.directions) > 1 else ["value"]
            params = sorted({name for t in trials for name in t.params})
            metrics = sorted({name for t in trials for name in t.user_attrs.get(METRICS_ATTR, {})})
            columns: list[Any] = [
                "trial", "configuration", "state", *objectives, "epochs", *params, *metrics, "fail_reason"
            ]  # fmt: skip
            table = wandb.Table(columns=columns)
            for t in trials:
                returned = t.user_attrs.get(METRICS_ATTR, {})
                values = t.values or [None] * len(objectives)
                table.add_data(
                    t.number, _view.config_number(t), _state(t), *values, epochs_trained(t),
                    *(t.params.get(n) for n in params), *(returned.get(m) for m in metrics),
                    t.user_attrs.get(FAIL_REASON_ATTR),
                )  # fmt: skip
            media: dict[str, Any] = {"trials": table}
            if solutions := results.get("solutions"):  # several objectives: the Pareto front
                front = wandb.Table(columns=["trial", *objectives, *params])
                for solution in solutions:
                    front.add_data(
                        solution["trial"], *solution["values"], *(solution["params"].get(n) for n in params)
                    )
                media["pareto_front_table"] = front
            files = wandb.Artifact(f"sweep-{study.study_name}-files", type="sweep-files")
            for name, path in figures.items():
                if path.suffix == ".png":
                    media[name] = wandb.Image(str(path))
                elif path.suffix == ".html":
                    media[name] = wandb.Html(str(path))
                else:  # report.md and other files travel as an artifact of the run
                    files.add_file(str(path))
            self.run.log(media)
            if files.manifest.entries:
                self.run.log_artifact(files)
            flat_final = {
                f"{role}/{k}": v
                for role, record in (results.get("final_evaluation") or {}).items()
                if isinstance(record, dict)  # not the list of candidates: the table has them
                for k, v in {**record, **(record.get("metrics") or {})}.items()
            }
            best_metrics = {f"best/{k}": v for k, v in (results.get("best_metrics") or {}).items()}
            merged = {**results, **flat_final, **best_metrics}
            scalars = {k: v for k, v in merged.items() if not isinstance(v, (list, dict))}
            self.run.summary.update(scalars)
            self.run.config.update({"best_params": results.get("best_params", {})}, allow_val_change=True)
        except Exception as exc:  # a broken dashboard must never lose the sweep's results
            log.warning("W&B sweep run: could not log the summary: %s", exc)
        finally:
            self.run.finish(exit_code=1 if failed else 0)
            self._hint()

    def _hint(self) -> None:
        wandb_dir = Path(self.run.settings.wandb_dir)
        if self.run.settings.mode == "offline":
            log.info(
                "W&B (offline): wandb leet %s  |  upload: wandb sync %s/offline-run-*", wandb_dir, wandb_dir
            )
        else:
            log.info("W&B: %s", self.run.url)


def _state(trial: optuna.trial.FrozenTrial) -> str:
    """complete, paused (at a rung, with a checkpoint), pruned, fail or running."""
    return "paused" if trial.user_attrs.get(PAUSED_ATTR) else trial.state.name.lower()
