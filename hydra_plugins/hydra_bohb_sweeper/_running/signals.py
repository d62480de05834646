"""What a job raises to end its trial early: `TrialPaused` (a checkpoint saved, to be resumed if its
configuration is promoted) beside Optuna's `TrialPruned` (stopped for good)."""

from __future__ import annotations

import optuna


class TrialPaused(optuna.TrialPruned):
    """The trial stopped at a rung after saving a checkpoint (`SweepTrial.save_checkpoint`).

    A subclass of `TrialPruned`, so code that handles pruning (an app's own `except TrialPruned`, a
    launcher) treats a pause the same way; the sweeper tells the two apart.
    """
