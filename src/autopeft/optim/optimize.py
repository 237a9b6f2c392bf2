"""Maximising an acquisition function over the discrete space: local search, or a finite set.

Local search is best-improvement hill climbing over one-change neighbours (`SearchSpace.neighbours`),
from many starts at once: every round scores the unscored neighbours of all climbing points in one
batch, and the best few climbers (a beam) go on to the next round. The answer is the best-scoring
configuration seen that may be proposed (allowed and not excluded), so a start that may not be
proposed itself (an evaluated Pareto point) still leads to its best neighbours.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import torch
from torch import Tensor

from autopeft.space import PEFTConfig, SearchSpace

Score = Callable[[Sequence[PEFTConfig]], list[float]]
"""Scores of configurations, higher is better (e.g. log acquisition values)."""

MAX_ROUNDS = 50
BEAM = 8  # climbers kept after each round: the starts are many, the rounds mostly refine the best few
CHUNK = 256  # configurations per acquisition call: bounds memory with 16 x 32 posterior samples


def acquisition_score(acqf, space: SearchSpace, chunk: int = CHUNK, encode=None) -> Score:
    """Score configurations with a botorch acquisition function of one point (q = 1).

    Configurations are encoded as a `b x 1 x d` tensor and evaluated `chunk` at a time without gradients.
    """

    def score(configs: Sequence[PEFTConfig]) -> list[float]:
        if not configs:
            return []
        to_vector = encode or space.to_vector
        X = torch.tensor([to_vector(c) for c in configs], dtype=torch.float64).unsqueeze(-2)  # b x 1 x d
        with torch.no_grad():
            values: list[Tensor] = [acqf(part) for part in X.split(chunk)]  # each: chunk
        return torch.cat(values).nan_to_num(nan=-torch.inf).tolist()  # a failed value never wins

    return score


def best_of(score: Score, candidates: Sequence[PEFTConfig]) -> PEFTConfig | None:
    """The highest-scoring candidate (first on ties), or None if there are none."""
    if not candidates:
        return None
    values = score(candidates)
    return candidates[max(range(len(values)), key=values.__getitem__)]


def local_search(
    score: Score,
    starts: Sequence[PEFTConfig],
    neighbours: Callable[[PEFTConfig], Sequence[PEFTConfig]],
    allowed: Callable[[PEFTConfig], bool],
    exclude: Collection[PEFTConfig] = (),
    max_rounds: int = MAX_ROUNDS,
    beam: int = BEAM,
) -> PEFTConfig | None:
    """Hill-climb from every start at once; return the best proposable configuration seen.

    Args:
        score: batch scorer, higher is better.
        starts: starting configurations (allowed; they may be in `exclude`).
        neighbours: one-change moves of a configuration.
        allowed: whether a configuration may be visited (valid and within the budget).
        exclude: configurations never returned nor moved to (evaluated or pending).
        max_rounds: climbing rounds at most.
        beam: after each round only the `beam` best climbers go on (all starts take the first step).

    Returns:
        The best allowed, non-excluded configuration scored, or None if none was reachable.
    """
    cache: dict[PEFTConfig, float] = {}
    current = list(dict.fromkeys(starts))  # unique, in order
    fresh = [c for c in current if c not in cache]
    cache.update(zip(fresh, score(fresh), strict=True))
    for _ in range(max_rounds):
        moves = {c: [n for n in neighbours(c) if n not in exclude and allowed(n)] for c in current}
        fresh = list(dict.fromkeys(n for ns in moves.values() for n in ns if n not in cache))
        cache.update(zip(fresh, score(fresh), strict=True))
        climbed = []
        for c, ns in moves.items():
            best = max(ns, key=cache.__getitem__, default=None)
            if best is not None and cache[best] > cache[c]:
                climbed.append(best)
        if not climbed:
            break
        current = sorted(dict.fromkeys(climbed), key=cache.__getitem__, reverse=True)[:beam]
    proposable = [c for c in cache if c not in exclude and allowed(c)]
    return max(proposable, key=cache.__getitem__, default=None)
