"""Pareto fronts and hypervolume of (metric, parameters) results (pure Python).

Parameters span orders of magnitude, so the hypervolume is measured on a log scale of
parameters: a point (metric m, params p) maps to (m - metric_ref, log(params_ref / p) /
log(params_ref / params_min)), both to be maximised, and the hypervolume is the area those points
dominate above (0, 0). `params_ref` is the largest configuration of the space (every module at full
size in every layer), `params_min` the smallest (so the params axis runs from 0 to 1, as the
optimiser's `Budget.score`), and `metric_ref` the worst score that counts (0 for accuracy, F1 and
correlations).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def pareto_indices(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated (metric up, params down) points, sorted by params ascending.

    Of points with equal metric and params, the first is kept.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][1], -points[i][0], i))
    front: list[int] = []
    best = -math.inf
    for i in order:
        metric, _ = points[i]
        if metric > best:
            front.append(i)
            best = metric
    return front


def hypervolume(
    points: Sequence[tuple[float, float]], metric_ref: float, params_ref: float, params_min: float | None = None
) -> float:
    """Area dominated by `points` (metric, params) in the plane of the module docstring.

    Without `params_min` the params axis is log10(params_ref / params), unnormalised.
    """
    scale = math.log10(params_ref / params_min) if params_min else 1.0
    mapped = [
        (m - metric_ref, math.log10(params_ref / p) / scale) for m, p in points if m > metric_ref and 0 < p < params_ref
    ]
    # sweep by the params axis, from the cheapest (largest log gain) to the most expensive
    mapped.sort(key=lambda q: -q[1])
    area = 0.0
    best_metric = 0.0
    previous_gain = None
    for metric, gain in mapped:
        if previous_gain is not None:
            area += best_metric * (previous_gain - gain)
        best_metric = max(best_metric, metric)
        previous_gain = gain
    if previous_gain is not None:
        area += best_metric * previous_gain
    return area
