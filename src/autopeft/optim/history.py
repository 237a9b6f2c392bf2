"""What a sampler needs from a study, read afresh at every suggestion (so a resumed study continues).

Nothing is kept between suggestions: completed trials are the training data, and so are trials
stopped early (pruned, at their score so far plus the median gain still to come, never above the
front at their size: a pessimistic observation that tells the model their region is poor;
`search.early_stop.projected_score`); running and enqueued trials are pending, and every configuration any
trial holds is not proposed again.
Per-trial random streams depend only on the sampler's seed and the trial number, so a new sampler
object on the same storage makes the same choices as the one it replaces.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from autopeft.optim.bridge import config_from_params, trial_config
from autopeft.search.record import TRIAL_EARLY_STOPPED  # pure data: the key the search loop stores
from autopeft.space import ConfigError, PEFTConfig, SearchSpace


def trial_seed(seed: int | None, number: int, purpose: str) -> int | None:
    """A 31-bit seed for one trial and one use, from the sampler's seed; None stays None (fresh entropy)."""
    if seed is None:
        return None
    digest = hashlib.sha256(f"{seed}:{number}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:4], "little") >> 1


def trial_rng(seed: int | None, number: int, purpose: str = "random") -> random.Random:
    return random.Random(trial_seed(seed, number, purpose))


@dataclass
class History:
    """Completed, pending and seen configurations of a study, for one suggestion.

    `metrics` are oriented so that higher is better (negated if the study minimises its first objective).
    """

    configs: list[PEFTConfig] = field(default_factory=list)  # completed trials with a valid configuration
    metrics: list[float] = field(default_factory=list)  # their first objective, higher is better
    pending: list[PEFTConfig] = field(default_factory=list)  # running (other workers, batch members) and enqueued
    seen: set[PEFTConfig] = field(default_factory=set)  # every configuration of any trial, failed ones too
    sign: float = 1.0  # -1.0 if the study minimises its first objective

    @classmethod
    def of(cls, study: Study, space: SearchSpace, current: FrozenTrial) -> History:
        """Read `study`, leaving out the trial being sampled (`current`)."""
        sign = 1.0 if study.directions[0] == StudyDirection.MAXIMIZE else -1.0
        history = cls(sign=sign)
        for trial in study.get_trials(deepcopy=False):
            if trial.number == current.number:
                continue
            config = trial_config(space, trial)
            if config is None and trial.state in (TrialState.RUNNING, TrialState.WAITING):
                config = _enqueued_config(space, trial)
            if config is None:
                continue
            history.seen.add(config)
            if trial.state == TrialState.COMPLETE and trial.values is not None:
                history.configs.append(config)
                history.metrics.append(sign * trial.values[0])
            elif trial.state == TrialState.PRUNED and TRIAL_EARLY_STOPPED in trial.user_attrs:
                history.configs.append(config)
                stopped = trial.user_attrs[TRIAL_EARLY_STOPPED]  # studies before "observed": the score itself
                history.metrics.append(sign * float(stopped.get("observed", stopped["score"])))
            elif trial.state in (TrialState.RUNNING, TrialState.WAITING):
                history.pending.append(config)
        return history


def _enqueued_config(space: SearchSpace, trial: FrozenTrial) -> PEFTConfig | None:
    """The configuration `study.enqueue_trial` fixed for a waiting trial, if it fixed a whole one."""
    try:
        return config_from_params(space, trial.system_attrs.get("fixed_params") or {})
    except ConfigError:
        return None


def fixed_params(trial: FrozenTrial) -> dict:
    """Params fixed for this trial by `study.enqueue_trial` (empty if none)."""
    return dict(trial.system_attrs.get("fixed_params") or {})
