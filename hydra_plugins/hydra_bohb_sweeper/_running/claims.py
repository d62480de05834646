"""Claiming a step, so that no two sweepers (or two workers of one) carry out the same one.

Every claim is a trial, created in one storage write with all it needs to be recognised, and then
confirmed by one read:

- A segment (a promotion, a bracket's closing, a retry) *follows* the trial it takes over from. Of the
  trials that follow one trial, the lowest-numbered counts (trial numbers are unique and given in
  creation order by every Optuna storage), so sweepers that decide at once agree on the winner; the
  others are abandoned and never run. A killed sweeper's unconfirmed claim needs nobody: every view
  already treats it as surplus, and any sweeper fails it when it sees it running.
- A new configuration is the sampler's trial (`study.ask`); it counts if fewer than `n_trials`
  configurations were started before it, by trial number.
- A paused configuration whose checkpoint a finished sweep is discarding (`discard`) cannot be
  claimed: the discarding sweeper marks the paused trial first and deletes the files only if nobody
  followed it after all; a claim made before the mark is seen by that check, one made after it sees
  the mark and withdraws.
"""

from __future__ import annotations

from typing import Any

import optuna

from hydra_plugins.hydra_bohb_sweeper import names
from hydra_plugins.hydra_bohb_sweeper._study import scheduling as _scheduling
from hydra_plugins.hydra_bohb_sweeper._study.view import StudyView

States = optuna.trial.TrialState


def create_segment(storage: optuna.storages.BaseStorage, study_id: int, step: _scheduling.Step) -> int:
    """A running trial that continues `step.config` (RETRY, PROMOTE or CLOSE) with the same
    parameters, from the checkpoint its last trial paused with or had started from; its id."""
    config = step.config
    assert config is not None
    before = config.last
    attrs: dict[str, Any] = {
        names.CONFIG_ATTR: config.number,
        names.BRACKET_ATTR: config.bracket,
        names.FOLLOWS_ATTR: before.number,
    }
    if config.checkpoint is not None:
        # "trial": the trial that saved the checkpoint, as earlier versions recorded it.
        saved_by = (
            before.number if step.kind != _scheduling.RETRY else before.user_attrs[names.RESUME_ATTR]["trial"]
        )
        attrs[names.RESUME_ATTR] = {"trial": saved_by, **config.checkpoint, "to_budget": step.to_budget}
    template = optuna.trial.create_trial(
        state=States.RUNNING, params=before.params, distributions=before.distributions, user_attrs=attrs
    )
    return storage.create_new_trial(study_id, template)


def segment_won(view: StudyView, trial_number: int, before: int) -> bool:
    """Whether the segment `trial_number`, which follows `before`, is the claim that counts (`view`
    read after it was created)."""
    if before in view.discarded:
        return False
    return view.followers(before)[:1] == [trial_number]


def new_configuration_counts(view: StudyView, trial_number: int) -> bool:
    """Whether the new configuration `trial_number` is within the quota (`view` read after `ask`)."""
    assert view.n_trials is not None
    return view.index_of(trial_number) < view.n_trials


def abandon(storage: optuna.storages.BaseStorage, trial_id: int) -> None:
    """A claim that lost: marked surplus and failed, never run."""
    try:
        storage.set_trial_user_attr(trial_id, names.SURPLUS_ATTR, True)
        storage.set_trial_state_values(trial_id, States.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass  # another sweeper failed it first


def abandon_lost_claims(storage: optuna.storages.BaseStorage, view: StudyView) -> bool:
    """Fail the running trials that every view treats as surplus (claims that lost, left running by a
    sweeper killed before it could abandon them). True if there were any."""
    lost = [t for t in view.trials if t.state == States.RUNNING and t.number in view.surplus]
    for trial in lost:
        abandon(storage, trial._trial_id)
    return bool(lost)
