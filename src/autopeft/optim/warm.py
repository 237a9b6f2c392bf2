"""Warm start from another task's study on the same model and space (`autopeft search --warm-start STUDY`).

What the source study learnt enters the new one in two ways, both stored in the target study, so
that every worker and every resumed sampler sees them (`observations` reads them back):
- its Pareto configurations are enqueued first (`WarmStart.front`), in place of random starts;
- its completed trials join the GP's training data with a task feature (an input column, 0 for the
  source task and 1 for this one), each task's metric standardised on its own
  (`sampler.AutoPEFTSampler`), so the GP learns from the data how much the two tasks share.
With a warm start the GP is fitted from `WARM_STARTUP` completed trials of the new task on.

A source study with another model or search space is refused (`UserError`, one line): its
configurations would not mean the same thing. The task, fidelity and sampler may differ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autopeft.errors import UserError
from autopeft.optim.bridge import trial_config
from autopeft.optim.budget import Budget
from autopeft.pareto import pareto_indices
from autopeft.space import PEFTConfig, SearchSpace

if TYPE_CHECKING:
    import optuna

WARM_ATTR = "warm_start"  # the target study's user attribute holding `WarmStart.to_attr()`
WARM_STARTUP = 2  # completed trials of the new task before the GP (the source's trials fill it out)
DEFAULT_ENQUEUE = 5  # Pareto configurations of the source evaluated first, at most


@dataclass(frozen=True)
class WarmStart:
    """What a source study gives a new search: its observations and the Pareto configurations to enqueue.

    `metrics` are oriented so that higher is better (negated if the source minimised its metric).
    """

    source: str  # the source study's name
    configs: tuple[PEFTConfig, ...]  # its completed trials' configurations
    metrics: tuple[float, ...]  # their metric, higher is better
    front: tuple[PEFTConfig, ...]  # the configurations to enqueue, by parameters ascending

    def to_attr(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "configs": [c.to_json() for c in self.configs],
            "metrics": list(self.metrics),
            "front": [c.to_json() for c in self.front],
        }

    @classmethod
    def from_attr(cls, data: Mapping[str, Any]) -> WarmStart:
        return cls(
            source=str(data["source"]),
            configs=tuple(PEFTConfig.from_json(c) for c in data["configs"]),
            metrics=tuple(float(m) for m in data["metrics"]),
            front=tuple(PEFTConfig.from_json(c) for c in data["front"]),
        )


def from_observations(
    source: str,
    configs: Sequence[PEFTConfig],
    metrics: Sequence[float],
    budget: Budget,
    enqueue: int = DEFAULT_ENQUEUE,
) -> WarmStart:
    """A warm start from (configuration, metric) pairs, metric higher is better.

    The front is the Pareto set of (metric, exact parameters) among the configurations the target's
    budget allows, evenly thinned to `enqueue` along the parameter axis (the smallest and the
    largest kept).
    """
    if len(configs) != len(metrics):
        raise ValueError(f"{len(configs)} configurations but {len(metrics)} metrics")
    allowed = [i for i, c in enumerate(configs) if budget.allows(c)]
    points = [(metrics[i], budget.params(configs[i])) for i in allowed]
    front = [configs[allowed[j]] for j in pareto_indices(points)] if points else []  # by params ascending
    front = list(dict.fromkeys(front))
    if len(front) > enqueue:
        front = [front[round(j * (len(front) - 1) / max(enqueue - 1, 1))] for j in range(enqueue)] if enqueue else []
    return WarmStart(source, tuple(configs), tuple(float(m) for m in metrics), tuple(dict.fromkeys(front)))


def from_study(source: optuna.Study, space: SearchSpace, budget: Budget, enqueue: int = DEFAULT_ENQUEUE) -> WarmStart:
    """A warm start from an Optuna study's completed trials (their first objective is the metric)."""
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    sign = 1.0 if source.directions[0] == StudyDirection.MAXIMIZE else -1.0
    configs, metrics = [], []
    for trial in source.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        config = trial_config(space, trial)
        if config is not None and trial.values is not None:
            configs.append(config)
            metrics.append(sign * trial.values[0])
    if len(configs) < 2:
        raise UserError(f"study {source.study_name!r} has {len(configs)} completed trials; a warm start needs 2")
    return from_observations(source.study_name, configs, metrics, budget, enqueue)


def check_same_job(source: Any, target: Any, source_name: str) -> None:
    """Refuse a source record (`StudyRecord`) with another model or space than the target's, in one line."""
    for key in ("model", "space"):
        have, wanted = getattr(source, key), getattr(target, key)
        if have != wanted:
            raise UserError(
                f"cannot warm-start from study {source_name!r}: its {key} is {have!r}, not {wanted!r} "
                "(a warm start needs the same model and search space)"
            )


def load_warm_start(
    source_name: str,
    storage: Any,
    target: Any,
    space: SearchSpace,
    budget: Budget,
    enqueue: int = DEFAULT_ENQUEUE,
) -> WarmStart:
    """The warm start a search (record `target`, a `StudyRecord`) takes from the study `source_name` in `storage`.

    Raises UserError (one line) if the study does not exist, was not made by `autopeft search`, or
    searched another model or space.
    """
    import optuna

    from autopeft.search.record import StudyError, StudyRecord  # read-only: the source's identity

    try:
        source = optuna.load_study(study_name=source_name, storage=storage)
    except KeyError:
        raise UserError(f"cannot warm-start: no study {source_name!r} in this storage") from None
    try:
        record = StudyRecord.load(source)
    except StudyError as err:
        raise UserError(f"cannot warm-start: {err}") from None
    check_same_job(record, target, source_name)
    return from_study(source, space, budget, enqueue)


def apply(study: optuna.Study, warm: WarmStart, space: SearchSpace) -> int:
    """Store `warm` in a new study and enqueue its front; the number of trials enqueued.

    A study that already has trials or a warm start is left as it is (returns 0), so the same
    command run again continues the study without enqueueing twice.
    """
    from autopeft.optim.bridge import params_from_config

    if WARM_ATTR in study.user_attrs or study.get_trials(deepcopy=False):
        return 0
    study.set_user_attr(WARM_ATTR, warm.to_attr())
    for config in warm.front:
        study.enqueue_trial(params_from_config(space, config), skip_if_exists=True)
    return len(warm.front)


def stored(study: optuna.Study) -> WarmStart | None:
    """The warm start stored in `study`, if any."""
    data = study.user_attrs.get(WARM_ATTR)
    return WarmStart.from_attr(data) if data else None


def observations(study: optuna.Study, space: SearchSpace) -> tuple[list[PEFTConfig], list[float]]:
    """The source task's configurations (valid in `space`) and metrics (higher is better) stored in
    `study` by a warm start; two empty lists without one."""
    warm = stored(study)
    if warm is None:
        return [], []
    pairs = [(c, m) for c, m in zip(warm.configs, warm.metrics, strict=True) if space.is_valid(c)]
    return [c for c, _ in pairs], [m for _, m in pairs]
