"""Pareto front and log-scale hypervolume, checked against brute force."""

from __future__ import annotations

import math
import random

import pytest

from autopeft.pareto import hypervolume, pareto_indices


def _dominated(p, q) -> bool:
    """q dominates p: at least as good in both, better in one."""
    return q[0] >= p[0] and q[1] <= p[1] and (q[0] > p[0] or q[1] < p[1])


def test_pareto_matches_brute_force():
    rng = random.Random(0)
    for _ in range(100):
        points = [(rng.choice([0.5, 0.6, 0.7, 0.8]), rng.choice([10, 100, 1000, 5000])) for _ in range(12)]
        front = pareto_indices(points)
        expected = {points[i] for i in range(len(points)) if not any(_dominated(points[i], q) for q in points)}
        assert {points[i] for i in front} == expected
        assert len(front) == len(expected)  # duplicates kept once
        assert [points[i][1] for i in front] == sorted(points[i][1] for i in front)


def test_hypervolume_known_values():
    assert hypervolume([(0.5, 10)], 0.0, 1000) == pytest.approx(0.5 * 2)
    assert hypervolume([(0.5, 10), (0.8, 100)], 0.0, 1000) == pytest.approx(0.5 * 1 + 0.8 * 1)
    assert hypervolume([(0.5, 10), (0.4, 100)], 0.0, 1000) == pytest.approx(1.0)  # dominated point adds nothing
    assert hypervolume([(-0.1, 10), (0.5, 2000)], 0.0, 1000) == 0.0  # beyond the reference
    assert hypervolume([], 0.0, 1000) == 0.0


def test_hypervolume_matches_grid_integration():
    rng = random.Random(1)
    points = [(rng.random(), 10 ** rng.uniform(0, 3)) for _ in range(8)]
    ref = 1000.0
    n = 400
    inside = 0
    for i in range(n):
        for j in range(n):
            m, g = (i + 0.5) / n, 3 * (j + 0.5) / n  # metric in [0, 1], gain in [0, 3]
            inside += any(pm >= m and math.log10(ref / pp) >= g for pm, pp in points)
    assert hypervolume(points, 0.0, ref) == pytest.approx(inside / n**2 * 3, rel=0.02)


def test_adding_a_point_never_lowers_hypervolume():
    rng = random.Random(2)
    points = []
    last = 0.0
    for _ in range(30):
        points.append((rng.random(), 10 ** rng.uniform(0, 4)))
        hv = hypervolume(points, 0.0, 1e4)
        assert hv >= last - 1e-12
        last = hv


def test_normalised_axis_runs_from_zero_to_one():
    assert hypervolume([(1.0, 10)], 0.0, 1000, params_min=10) == pytest.approx(1.0)
    assert hypervolume([(1.0, 100)], 0.0, 1000, params_min=10) == pytest.approx(0.5)
