"""How likely a configuration of a given size is to learn at all: a logistic model on the parameter score.

Why the acquisition needs it: hypervolume improvement on log-parameters rewards the small end of the
front most, and a configuration there too small to learn anything scores the floor. The GP cannot
tell which small configurations fail: each new one is a new pattern of layer bits in many
dimensions, so its prediction keeps a wide upper tail however many small ones failed before. On the
24-layer realistic problem 15-29 of 30 model-based trials went to such configurations (issue 19,
docs/BENCHMARKS.md). Whether a configuration learns at all depends mostly on its size, one number:
a logistic regression of "learnt" (clearly above the task's floor, what a constant prediction scores)
on the parameter score, fitted on the study's completed trials,
gives the chance, and the acquisition value is multiplied by it (the probability of feasibility of
constrained BO, with "learns" as the constraint). Where every trial learns the chance is about
constant and changes nothing.

Pure Python: no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

FLOOR_SHARE = 0.15  # "learnt": above the floor by this share of the way from it to the best trial
PRIOR_SD = 3.0  # of the logistic's intercept and slope: a weak prior, so a few trials cannot decide alone
NEWTON_STEPS = 25


@dataclass(frozen=True)
class LearnChance:
    """P(learns | parameter score s) = sigmoid(intercept + slope * s)."""

    intercept: float
    slope: float

    def log_prob(self, score: float) -> float:
        z = self.intercept + self.slope * score
        return -math.log1p(math.exp(-z)) if z > -30 else z  # log sigmoid, stable


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def learnt(metrics: Sequence[float], floor: float) -> list[bool] | None:
    """Which trials learnt: metric above `floor` (what learning nothing scores, e.g. a constant
    prediction) by `FLOOR_SHARE` of the way to the best; higher is better. None when none is above it.

    The floor is the task's, not the worst trial's: where every trial learns, the worst ones learnt too
    (on STS-B a prefix of 1 at one layer scores 0.27 against a floor of 0, and is on the front).
    """
    best = max(metrics)
    if not best > floor:
        return None
    threshold = floor + FLOOR_SHARE * (best - floor)
    return [m > threshold for m in metrics]


def fit_learn_chance(scores: Sequence[float], metrics: Sequence[float], floor: float) -> LearnChance | None:
    """MAP logistic regression of `learnt(metrics, floor)` on the parameter scores (Newton's method,
    Gaussian prior on both coefficients); None with fewer than two trials or none above the floor."""
    if len(scores) != len(metrics):
        raise ValueError(f"{len(scores)} scores for {len(metrics)} metrics")
    labels = learnt(metrics, floor) if len(metrics) >= 2 else None
    if labels is None:
        return None
    a = b = 0.0
    precision = 1.0 / PRIOR_SD**2
    for _ in range(NEWTON_STEPS):
        ga, gb = -precision * a, -precision * b  # gradient of the log posterior
        haa = hbb = -precision  # and its Hessian
        hab = 0.0
        for s, y in zip(scores, labels, strict=True):
            p = _sigmoid(a + b * s)
            ga += y - p
            gb += (y - p) * s
            w = p * (1.0 - p)
            haa -= w
            hab -= w * s
            hbb -= w * s * s
        det = haa * hbb - hab * hab
        da = (hbb * ga - hab * gb) / det
        db = (haa * gb - hab * ga) / det
        a, b = a - da, b - db
        if abs(da) + abs(db) < 1e-9:
            break
    return LearnChance(a, b)
