"""Pruner factories for configs (private module: Hydra's plugin scan does not import it)."""

from __future__ import annotations

import optuna


def no_pruning(
    min_resource: int = 1, max_resource: int = 27, reduction_factor: int = 3
) -> optuna.pruners.BasePruner:
    """Optuna's NopPruner; it takes Hyperband's fields (and ignores them) so a preset that sizes the
    budget with `pruner.max_resource` runs unchanged with `hydra/sweeper/pruner=none`."""
    del min_resource, reduction_factor  # max_resource is read by the sweeper as the trial budget
    return optuna.pruners.NopPruner()
