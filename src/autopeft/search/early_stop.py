"""Multi-objective early stopping: stop a trial that can no longer reach the Pareto front at its size.

A trial's parameter count is known exactly before it trains, so during training the one open
question is its score. After each evaluation the rule compares the trial's best score so far with
the best finished trial at no more parameters (the front at its size), allowing for the gain that
may still come: a high quantile of the gains that the study's finished learning curves made from
the same point of their budget to their end, over all of them and over those of comparable size
(within a factor `SIZE_FACTOR` of its parameters), whichever allows more. Until enough curves exist
the allowance is conservative (twice the largest gain seen, or no stopping at all without any
curve), and no trial stops before `min_share` of its budget, nor while every prediction it has made was
the same (it has not started to learn, so its score says nothing of where it will end).

Pure Python: the search loop feeds it the finished trials' curves and the trial's own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from autopeft.errors import UserError

MIN_CURVES = 5  # finished curves needed before the quantile is trusted
# Large configurations learn late: at STS-B's 1000x1 those over 300 k parameters stood at 0.3-0.4 after a
# quarter of their budget and finished at 0.73-0.75, a gain few small ones make; with an allowance
# learnt from all curves (mostly small ones), 5 of 30 checked stops were false, every one of them a
# configuration over 300 k parameters stopped at a quarter (docs/BENCHMARKS.md).
SIZE_FACTOR = 4.0
# A calibrated one-epoch fidelity meets early stopping: it is scored 4 times in the epoch, the first 3
# times on a quarter of the scoring set. Full scoring passes cost too much there: at STS-B's 1000x1
# a pass over the held-out slice (575 examples) took a third of the training's time, and with four
# of them the search with early stopping used 17 % more CPU than the one without (seed 0; docs/BENCHMARKS.md).
EARLY_STOP_EVALS = 4
INTERIM_EVAL_FRACTION = 0.25


@dataclass(frozen=True)
class EarlyStop:
    """The rule's settings (stored with the study)."""

    on: bool = False
    min_share: float = 0.5  # never stop before this share of the budget
    quantile: float = 0.9  # of the finished curves' remaining gains: the allowance

    def __post_init__(self) -> None:
        if not 0 < self.min_share < 1:
            raise UserError(f"--early-stop-min-share must be in (0, 1), got {self.min_share}")
        if not 0 < self.quantile < 1:
            raise UserError(f"--early-stop-quantile must be in (0, 1), got {self.quantile}")

    def to_attr(self) -> dict[str, float | bool]:
        return {"on": self.on, "min_share": self.min_share, "quantile": self.quantile}

    @classmethod
    def from_attr(cls, data: dict | None) -> EarlyStop:
        return cls(**data) if data else cls()


Curve = Sequence[tuple[float, float]]  # (share of the budget done, score at that evaluation), in order


@dataclass(frozen=True)
class Finished:
    """A finished trial as the rule sees it: its size, its final score, and its learning curve."""

    params: int
    score: float
    curve: Curve


def best_so_far(curve: Curve, share: float) -> float | None:
    """The best score of `curve` among its evaluations up to `share` of the budget."""
    scores = [s for at, s in curve if at <= share + 1e-9]
    return max(scores) if scores else None


def remaining_gains(finished: Sequence[Finished], share: float) -> list[float]:
    """What each finished curve gained from `share` of its budget to its end (its final score is its best
    evaluation), sorted."""
    gains = []
    for trial in finished:
        before = best_so_far(trial.curve, share)
        if before is not None and len(trial.curve) > 1:
            gains.append(max(0.0, trial.score - before))
    return sorted(gains)


def _quantile(ordered: Sequence[float], q: float) -> float:
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def comparable(finished: Sequence[Finished], params: int) -> list[Finished]:
    """The finished trials within a factor `SIZE_FACTOR` of `params` parameters."""
    return [t for t in finished if params / SIZE_FACTOR <= t.params <= params * SIZE_FACTOR]


def _allowed_gain(gains: Sequence[float], quantile: float) -> float:
    if not gains:
        return math.inf
    if len(gains) < MIN_CURVES:
        return 2 * max(gains) if max(gains) > 0 else math.inf
    return _quantile(gains, quantile)


def allowance(finished: Sequence[Finished], share: float, quantile: float, params: int) -> float:
    """How much a trial of `params` parameters at `share` of its budget may still gain: the `quantile` of
    the finished curves' gains from there to their end, over all of them or over those of comparable
    size, whichever is larger (each conservative while it has fewer than `MIN_CURVES` curves)."""
    overall = _allowed_gain(remaining_gains(finished, share), quantile)
    return max(overall, _allowed_gain(remaining_gains(comparable(finished, params), share), quantile))


def projected_score(finished: Sequence[Finished], share: float, score: float, quantile: float, params: int) -> float:
    """What the optimiser observes for a trial of `params` parameters stopped at `share` of its budget with
    best score `score`: that score plus the median gain the finished curves of comparable size made from
    there to their end, or all finished curves while fewer than `MIN_CURVES` are comparable (at most the
    rule's `quantile` of them; the score itself while fewer than `MIN_CURVES` curves exist at all).

    Its score so far is an interim one (part of the training, part of the scoring set), and the
    optimiser models final scores: observed raw, every stopped configuration looks worse by the gain it
    had still to come (0.07 on average at a quarter of STS-B's 1000x1), while the small configurations,
    which mostly finish, are seen at their final scores; both 100-trial searches with early stopping
    drifted to the smallest configurations and lost hypervolume (docs/BENCHMARKS.md). With the median
    it stays pessimistic where it matters: the rule stopped the trial because even its allowance left it
    below the front at its size, so the projection, never above the allowance, is below that front too."""
    gains = remaining_gains(comparable(finished, params), share)
    if len(gains) < MIN_CURVES:
        gains = remaining_gains(finished, share)
    return score + _quantile(gains, min(0.5, quantile)) if len(gains) >= MIN_CURVES else score


def front_score_at(finished: Sequence[Finished], params: int) -> float | None:
    """The best final score among finished trials with no more parameters than `params`."""
    scores = [t.score for t in finished if t.params <= params]
    return max(scores) if scores else None


def should_stop(
    settings: EarlyStop, params: int, curve: Curve, finished: Sequence[Finished], learning: bool = True
) -> bool:
    """Stop when even the allowed gain cannot lift the trial to the front at its size.

    learning: some evaluation so far gave varied predictions. A model that still predicts one class (or one
    value) scores the task's floor, which says nothing of whether it will start: at CoLA's 7500x2, 3 of the
    11 trials stopped at the floor (Matthews 0 for 3/8 of their budget) finished above the front at their
    size (0.15-0.17 against 0.13; docs/BENCHMARKS.md), and the curves that sit there, most of them for
    their whole first epoch, give no allowance for the late jump.
    """
    if not settings.on or not curve or not learning:
        return False
    share = curve[-1][0]
    if share < settings.min_share or share >= 1 - 1e-9:
        return False
    target = front_score_at(finished, params)
    if target is None:
        return False
    current = best_so_far(curve, share)
    assert current is not None
    return current + allowance(finished, share, settings.quantile, params) < target
