"""The sweep's own W&B run (job_type "sweep"): best-so-far per trial, the trials as a table, figures,
importances and the best config. Run files go to the sweep directory beside the trials' runs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import optuna
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.hydra_bohb_sweeper.client import wandb_mode
from hydra_plugins.hydra_bohb_sweeper.names import FAIL_REASON_ATTR, METRICS_ATTR

log = logging.getLogger(__name__)


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
        run = wandb.init(
            project=wandb_cfg.get("project"),
            entity=wandb_cfg.get("entity"),
            name=f"sweep-{study_name}",
            group=study_name,
            job_type="sweep",
            config=settings,
            dir=str(save_dir),
            mode=cast(Any, wandb_mode(wandb_cfg.get("mode"))),
            tags=list(wandb_cfg.get("tags") or []),
            reinit="create_new",
            settings=wandb.Settings(silent=True),  # one hint at the end instead of W&B's banner
            **cast(dict[str, Any], extra),
        )
        return cls(run)

    def trial_finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, elapsed_s: float) -> None:
        if self.run is None:
            return
        try:
            best: float | None = study.best_value
        except ValueError:
            best = None
        row = {
            "trial": trial.number,
            "state": trial.state.name.lower(),
            "value": trial.value,
            "epochs": len(trial.intermediate_values),
            "best_value": best,
            "elapsed_s": elapsed_s,
        }
        self.run.log({k: v for k, v in row.items() if v is not None})

    def finish(
        self, study: optuna.Study, results: dict[str, Any], figures: dict[str, Path], failed: bool
    ) -> None:
        if self.run is None:
            return
        import wandb

        try:
            trials = study.get_trials(deepcopy=False)
            params = sorted({name for t in trials for name in t.params})
            metrics = sorted({name for t in trials for name in t.user_attrs.get(METRICS_ATTR, {})})
            columns: list[Any] = ["trial", "state", "value", "epochs", *params, *metrics, "fail_reason"]
            table = wandb.Table(columns=columns)
            for t in trials:
                returned = t.user_attrs.get(METRICS_ATTR, {})
                table.add_data(
                    t.number, t.state.name.lower(), t.value, len(t.intermediate_values),
                    *(t.params.get(n) for n in params), *(returned.get(m) for m in metrics),
                    t.user_attrs.get(FAIL_REASON_ATTR),
                )  # fmt: skip
            media: dict[str, Any] = {"trials": table}
            for name, path in figures.items():
                if path.suffix == ".png":
                    media[name] = wandb.Image(str(path))
                elif path.suffix == ".html":
                    media[name] = wandb.Html(str(path))
                else:  # report.md and other files travel as run files
                    self.run.save(str(path), base_path=str(path.parent), policy="now")
            self.run.log(media)
            flat_final = {
                f"{role}/{k}": v
                for role, record in (results.get("final_evaluation") or {}).items()
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
