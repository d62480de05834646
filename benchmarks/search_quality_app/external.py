"""The external optimizers of the search-quality benchmark, each driving the same training (mlp_task.py)
through its own interface with its own recommended multi-fidelity settings: budgets from 1 to
`max_epochs` epochs with eta 3 (rungs at 1, 3, 9 and 27 epochs), the same space as a ConfigSpace
(conditional widths, log scales).

  smac        SMAC 2's MultiFidelityFacade (random forest + Hyperband intensifier, eta 3), ask/tell;
              the seed study's optimizer (SMAC4MF). Its `n_trials` is the number of evaluations its
              Hyperband schedule makes in the run's budget, so its initial design is the facade's 25%.
  hpbandster  HpBandSter's BOHB (a KDE per budget), its Master and a Worker over Pyro4 on localhost,
              all its defaults (top 15%, 64 samples, a third of the configurations random).
  dehb        DEHB (differential evolution + Hyperband), ask/tell, its defaults.

Evaluating a configuration at a budget of b epochs continues its training from where its last evaluation
left it when there was one (a checkpoint kept in memory), so that a configuration promoted from 3 to 9
epochs costs 6 epochs, as it does when the sweeper lets a trial go on: the budget counts epochs trained,
and none of these optimizers is charged for retraining from scratch. (Without this they would pay 1 + 3
+ 9 + 27 epochs for a configuration that reaches the top rung; the result records what they asked for.)

Needs the benchmark environment (benchmarks/search_quality.py --setup): smac, hpbandster, dehb.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlp_task
import numpy as np

EXTERNAL = ("smac", "hpbandster", "dehb")
ETA = 3


def configspace(seed: int) -> Any:
    """mlp_task's space as a ConfigSpace: categorical choices, log-scale ranges, widths 2 and 3 only
    with 2 or 3 layers (as the sweeper's `width_2: depth >= 2` and `width_3: depth >= 3`)."""
    from ConfigSpace import (
        CategoricalHyperparameter,
        ConfigurationSpace,
        InCondition,
        UniformFloatHyperparameter,
        UniformIntegerHyperparameter,
    )

    cs = ConfigurationSpace(seed=seed)
    depth = CategoricalHyperparameter("depth", list(mlp_task.DEPTHS))
    widths = [UniformIntegerHyperparameter(f"width_{k}", *mlp_task.WIDTH_RANGE, log=True) for k in (1, 2, 3)]
    cs.add(
        [
            depth,
            *widths,
            UniformFloatHyperparameter("lr", *mlp_task.LR_RANGE, log=True),
            UniformFloatHyperparameter("weight_decay", *mlp_task.WEIGHT_DECAY_RANGE, log=True),
            CategoricalHyperparameter("batch_size", list(mlp_task.BATCH_SIZES)),
            CategoricalHyperparameter("optimizer", list(mlp_task.OPTIMIZERS)),
            CategoricalHyperparameter("dropout", list(mlp_task.DROPOUTS)),
        ]
    )
    cs.add([InCondition(widths[1], depth, [2, 3]), InCondition(widths[2], depth, [3])])
    return cs


class Evaluator:
    """best validation accuracy of a configuration after `budget` epochs, one epoch at a time through
    the run's ledger; training continues from the configuration's last evaluation when there was one."""

    def __init__(self, data: mlp_task.Data, ledger: mlp_task.Ledger, run_seed: int) -> None:
        self.data, self.ledger, self.run_seed = data, ledger, run_seed
        self.trainings: dict[tuple[tuple[str, Any], ...], tuple[int, mlp_task.Training]] = {}
        self.evaluations = 0
        self.epochs_asked = 0  # what retraining from scratch would have cost

    def __call__(self, values: Mapping[str, Any], budget: float) -> float:
        params = mlp_task.active_params(values)
        epochs = max(1, round(budget))
        key = tuple(sorted(params.items()))
        if key not in self.trainings:
            number = len(self.trainings)
            self.trainings[key] = (
                number,
                mlp_task.Training(params, self.data, mlp_task.torch_seed(self.run_seed, number)),
            )
        number, training = self.trainings[key]
        self.evaluations += 1
        self.epochs_asked += epochs
        while training.epochs < epochs and not self.ledger.spent:
            training.train_epoch()
            self.ledger.record(number, training)
        return max(training.val_history[:epochs]) if training.val_history else 0.0


def schedule(max_epochs: int, eta: int = ETA) -> tuple[int, int]:
    """(evaluations, epochs) of one Hyperband iteration from 1 to max_epochs (its brackets as SMAC builds
    them), counting each promoted configuration's continued epochs only."""
    s_max = math.floor(math.log(max_epochs) / math.log(eta) + 1e-9)
    evaluations = epochs = 0
    for bracket in range(s_max + 1):
        stages = s_max - bracket
        n = math.ceil(eta**stages * (s_max + 1) / (stages + 1))
        trained = 0
        for stage in range(stages + 1):
            count = int(n * eta**-stage)
            budget = round(max_epochs * eta ** (stage - stages))
            evaluations += count
            epochs += count * (budget - trained)
            trained = budget
    return evaluations, epochs


def run_smac(
    evaluate: Evaluator, seed: int, max_epochs: int, budget_epochs: int, workdir: Path
) -> dict[str, Any]:
    from smac import MultiFidelityFacade, Scenario
    from smac.runhistory.dataclasses import TrialValue

    evaluations, epochs = schedule(max_epochs)
    n_trials = max(1, round(budget_epochs * evaluations / epochs))
    scenario = Scenario(
        configspace(seed),
        name=f"smac-{seed}",
        output_directory=workdir / "smac",
        deterministic=True,  # a configuration's training is seeded: one evaluation per budget
        n_trials=n_trials,
        min_budget=1,
        max_budget=max_epochs,
        seed=seed,
    )

    def target(config: Any, seed: int = 0, budget: float = 1) -> float:  # ask/tell: never called
        raise NotImplementedError

    smac = MultiFidelityFacade(
        scenario,
        target,
        intensifier=MultiFidelityFacade.get_intensifier(scenario, eta=ETA),
        overwrite=True,
        logging_level=logging.ERROR,
    )
    while not evaluate.ledger.spent:
        info = smac.ask()
        accuracy = evaluate(dict(info.config), info.budget)
        smac.tell(info, TrialValue(cost=1.0 - accuracy), save=False)
    return {"n_trials": n_trials, "initial_design": smac._initial_design._n_configs}


def run_hpbandster(
    evaluate: Evaluator, seed: int, max_epochs: int, budget_epochs: int, workdir: Path
) -> dict[str, Any]:
    import Pyro4

    # HpBandSter's Pyro4 messages carry numpy scalars: serpent under numpy 2 hangs on them, pickle does not.
    Pyro4.config.SERIALIZER = "pickle"
    Pyro4.config.SERIALIZERS_ACCEPTED.add("pickle")
    import hpbandster.core.nameserver as hpns
    from hpbandster.core.worker import Worker
    from hpbandster.optimizers import BOHB

    class MLPWorker(Worker):
        def compute(self, config_id: Any, config: dict[str, Any], budget: float, **kwargs: Any) -> dict:
            if evaluate.ledger.spent:  # the rest of the last Hyperband iteration: nothing is trained
                return {"loss": 1.0, "info": {"after_budget": True}}
            return {"loss": 1.0 - evaluate(config, budget), "info": {}}

    np.random.seed(seed)  # HpBandSter's BOHB draws from numpy's global generator
    run_id = f"hpbandster-{seed}-{os.getpid()}"
    quiet = logging.getLogger("hpbandster-quiet")
    quiet.setLevel(logging.ERROR)
    nameserver = hpns.NameServer(run_id=run_id, host="127.0.0.1", port=0)
    host, port = nameserver.start()
    worker = MLPWorker(run_id=run_id, nameserver=host, nameserver_port=port, logger=quiet)
    worker.run(background=True)
    bohb = BOHB(
        configspace=configspace(seed),
        run_id=run_id,
        nameserver=host,
        nameserver_port=port,
        min_budget=1,
        max_budget=max_epochs,
        eta=ETA,
        working_directory=str(workdir / "hpbandster"),
        logger=quiet,
    )
    iterations = 0
    try:
        while not evaluate.ledger.spent:  # one Hyperband iteration (one SH bracket) per call
            bohb.run(n_iterations=1)
            iterations += 1
    finally:
        bohb.shutdown(shutdown_workers=True)
        nameserver.shutdown()
    return {"sh_brackets": iterations}


def run_dehb(
    evaluate: Evaluator, seed: int, max_epochs: int, budget_epochs: int, workdir: Path
) -> dict[str, Any]:
    from dehb import DEHB

    dehb = DEHB(
        cs=configspace(seed),
        min_fidelity=1,
        max_fidelity=max_epochs,
        eta=ETA,
        n_workers=1,
        seed=seed,
        output_path=str(workdir / "dehb"),
        save_freq="end",  # ask/tell never reaches "end": no history files
        log_level="ERROR",
    )
    while not evaluate.ledger.spent:
        job = dehb.ask()
        before = evaluate.ledger.epochs
        accuracy = evaluate(job["config"], job["fidelity"])
        dehb.tell(job, {"fitness": 1.0 - accuracy, "cost": float(evaluate.ledger.epochs - before)})
    return {}


RUNNERS = {"smac": run_smac, "hpbandster": run_hpbandster, "dehb": run_dehb}


def run(
    strategy: str, data: mlp_task.Data, ledger: mlp_task.Ledger, seed: int, max_epochs: int
) -> dict[str, Any]:
    """One run of an external optimizer until the ledger's budget is spent; what it reports besides."""
    assert ledger.budget is not None
    evaluate = Evaluator(data, ledger, seed)
    with (
        tempfile.TemporaryDirectory(prefix=f"sq-{strategy}-", dir=_scratch()) as workdir,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        extra = RUNNERS[strategy](evaluate, seed, max_epochs, ledger.budget, Path(workdir))
    return {
        **extra,
        "evaluations": evaluate.evaluations,
        "configurations": len(evaluate.trainings),
        "epochs_asked_from_scratch": evaluate.epochs_asked,
    }


def _scratch() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
