"""The search-quality task as a Hydra app that the BOHB sweeper sweeps (benchmarks/search_quality.py).

Each job trains one MLP configuration (mlp_task.py) one epoch at a time and, inside a sweep, reports its
best validation accuracy after every epoch through the sweeper's client API, pauses with a checkpoint
or stops when the scheduler says so, and continues a paused configuration from its checkpoint, as any
app of the sweeper does. It returns {val_acc, last_val_acc, epochs} with
`hydra.sweeper.objective=val_acc`. Every epoch is appended to the run's ledger (`ledger.path`); once
`ledger.budget_epochs` epochs have been trained in the sweep, the job stops the sweep as Ctrl-C would.

    python benchmarks/search_quality_app/app.py -m hydra.sweep.dir=/tmp/sq ledger.budget_epochs=270
    python benchmarks/search_quality_app/app.py -m hydra/sweeper/pruner=none ...   # TPE alone
    python benchmarks/search_quality_app/app.py -m hydra/sweeper/sampler=random ...   # Hyperband, random
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import mlp_task
import torch
from omegaconf import DictConfig

from hydra_plugins.hydra_bohb_sweeper import client


def run(cfg: DictConfig) -> dict[str, Any]:
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    trial = client.current_trial()
    params = mlp_task.active_params(cfg)
    data = mlp_task.load_data(cfg.data.train_images, cfg.data.val_images, cfg.data.test_images)
    ledger = mlp_task.Ledger.open(Path(cfg.ledger.path), cfg.ledger.budget_epochs)
    if ledger.spent:  # a job launched after the budget was spent (a resumed sweep)
        raise mlp_task.BudgetSpent(f"the budget of {ledger.budget} epochs is spent")
    number = trial.config_number if trial is not None else 0  # the configuration, whichever segment
    training = mlp_task.Training(params, data, mlp_task.torch_seed(cfg.seed, number))
    if trial is not None and trial.resume_from is not None:  # a paused configuration, promoted
        training.load_state(torch.load(trial.resume_from, weights_only=False))
    best = max(training.val_history, default=0.0)
    for epoch in range(training.epochs + 1, cfg.max_epochs + 1):
        val_acc = training.train_epoch()
        best = max(best, val_acc)
        ledger.record(number, training)
        if ledger.spent:
            raise mlp_task.BudgetSpent(f"the budget of {ledger.budget} epochs is spent")
        if trial is not None:
            trial.report(best, epoch)
            if trial.should_pause():
                trial.save_checkpoint(lambda path: torch.save(training.state(), path))
                raise client.TrialPaused(f"paused after epoch {epoch}")
            if trial.should_prune():
                raise client.TrialPruned(f"pruned after epoch {epoch}")
    return {"val_acc": best, "last_val_acc": training.val_history[-1], "epochs": training.epochs}


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> dict[str, Any]:
    return run(cfg)


if __name__ == "__main__":
    main()
