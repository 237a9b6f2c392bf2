"""Surrogate, acquisition and its optimisation: copula, the exact-params objective, pending points,
local search against enumeration."""

from __future__ import annotations

import itertools
import random
from typing import Any, NamedTuple

import pytest
import torch

from autopeft.bench.problems import bert_dims
from autopeft.optim.acquisition import ParamsScore, build_acquisition, default_ref_point, params_objective
from autopeft.optim.budget import Budget
from autopeft.optim.optimize import acquisition_score, best_of, local_search
from autopeft.optim.surrogate import Copula, fit_surrogate
from autopeft.space import PEFTConfig, SearchSpace

# Jitter on near-singular kernels of tiny data sets is expected.
pytestmark = pytest.mark.filterwarnings("ignore:A not p.d.")


def test_copula_is_monotone_and_maps_ranks_to_normal_quantiles():
    y = torch.tensor([0.3, 0.9, 0.1, 0.5, 0.5, 0.7], dtype=torch.float64)
    copula = Copula(y)
    z = copula(y)
    order = torch.argsort(y)
    assert torch.all(z[order][1:] >= z[order][:-1])
    assert z[3] == z[4]  # ties share their mean rank
    normal = torch.distributions.Normal(0.0, 1.0)
    assert z[2].item() == pytest.approx(normal.icdf(torch.tensor(1 / 7)).item())  # smallest: rank 1 of n + 1 = 7
    grid = torch.linspace(-1, 2, 301, dtype=torch.float64)  # any value, reference points included
    assert torch.all(copula(grid)[1:] >= copula(grid)[:-1])
    assert copula(torch.tensor([-5.0], dtype=torch.float64)) < z.min()  # below all observations: below them
    assert copula(torch.tensor([5.0], dtype=torch.float64)) > z.max()


@pytest.mark.parametrize("ensemble", [False, True])
def test_params_objective_stacks_metric_samples_with_exact_scores(ensemble):
    budget = Budget(SearchSpace(4, 32), bert_dims(4, 32))
    rng = random.Random(0)
    X = torch.tensor([[budget.space.to_vector(budget.space.sample(rng)) for _ in range(3)] for _ in range(5)])  # 5x3xd
    samples = torch.randn(7, 5, 4, 3, 1) if ensemble else torch.randn(7, 5, 3, 1)  # S x b x [mcmc] x q x 1
    score = ParamsScore(budget)
    out = params_objective(score, ensemble)(samples, X=X.to(torch.float64))
    assert out.shape == (*samples.shape[:-1], 2)
    assert torch.equal(out[..., 0], samples[..., 0])
    expected = score(X.to(torch.float64))  # 5 x 3
    if ensemble:
        expected = expected.unsqueeze(-2)  # 5 x 1 x 3
    assert torch.allclose(out[..., 1], expected.expand(samples.shape[:-1]).to(out))


def _tiny_setup(n: int = 16, seed: int = 0):
    """A space small enough to enumerate (1,860 configurations), a metric, and a MAP SAAS model."""
    space = SearchSpace(4, 8)
    budget = Budget(space, bert_dims(4, 8))
    everything = [
        PEFTConfig.shared([i for i in range(4) if bits[i]], serial=s, parallel=p, prefix=x)
        for s, p, x in itertools.product(space.choices("serial"), repeat=3)
        for bits in itertools.product((0, 1), repeat=4)
    ]
    everything = [c for c in dict.fromkeys(everything) if space.is_valid(c)]
    rng = random.Random(seed)
    observed = rng.sample(everything, n)

    def metric(c: PEFTConfig) -> float:
        return 0.5 + 0.1 * c.serial / 8 + 0.2 * (3 in (c.shared_layers or ())) - 0.05 * c.prefix / 8

    X = torch.tensor([space.to_vector(c) for c in observed], dtype=torch.float64)
    y = torch.tensor([metric(c) for c in observed], dtype=torch.float64)
    torch.manual_seed(seed)
    model = fit_surrogate(X, y.unsqueeze(-1), "saas-map")
    score = ParamsScore(budget)
    ref = default_ref_point(y)
    return Tiny(space, budget, everything, observed, X, model, score, ref)


class Tiny(NamedTuple):
    space: SearchSpace
    budget: Budget
    everything: list[PEFTConfig]  # every valid configuration
    observed: list[PEFTConfig]
    X: torch.Tensor  # n x d, the observed configurations
    model: Any
    score: ParamsScore
    ref: list[float]


def test_pending_points_lower_the_acquisition_where_they_are():
    space, _, everything, observed, X, model, score, ref = _tiny_setup()
    objective = params_objective(score, ensemble=False)
    free = [c for c in everything if c not in observed]
    plain = acquisition_score(build_acquisition(model, X, ref_point=ref, objective=objective), space)
    best = best_of(plain, free)
    pending = torch.tensor([space.to_vector(best)], dtype=torch.float64)  # 1 x d
    busy = acquisition_score(build_acquisition(model, X, ref_point=ref, objective=objective, X_pending=pending), space)
    before, after = plain([best])[0], busy([best])[0]
    assert after < before - 1.0  # log scale: the improvement of a point already being evaluated is (almost) gone
    assert best_of(busy, free) != best


def test_local_search_finds_the_enumerated_maximiser():
    space, budget, everything, observed, X, model, score, ref = _tiny_setup()
    acqf = build_acquisition(model, X, ref_point=ref, objective=params_objective(score, ensemble=False))
    scorer = acquisition_score(acqf, space)
    taken = set(observed)
    truth = best_of(scorer, [c for c in everything if c not in taken])
    rng = random.Random(5)
    scored: list[int] = []

    def counting(configs):
        scored.append(len(configs))
        return scorer(configs)

    for _ in range(3):
        scored.clear()
        starts = [*observed[:4], *(budget.sample(rng) for _ in range(6))]
        assert local_search(counting, starts, space.neighbours, budget.allows, exclude=taken) == truth
        assert sum(scored) < len(everything) / 2  # found without scoring most of the space


def test_local_search_never_returns_excluded_or_disallowed_configurations():
    space = SearchSpace(4, 8)
    budget = Budget(space, bert_dims(4, 8), max_params=100)

    def bigger_is_better(configs):
        return [float(budget.params(c)) for c in configs]  # pushes against the budget

    start = PEFTConfig.shared([0], serial=1)
    best = local_search(bigger_is_better, [start], space.neighbours, budget.allows)
    assert budget.allows(best) and budget.params(best) <= 100
    # the best allowed configurations by count, excluded one by one, are never returned
    taken = {best}
    for _ in range(5):
        nxt = local_search(bigger_is_better, [start], space.neighbours, budget.allows, exclude=taken)
        assert nxt not in taken and budget.allows(nxt)
        taken.add(nxt)


def test_single_objective_acquisition_without_reference_point():
    tiny = _tiny_setup()
    acqf = build_acquisition(tiny.model, tiny.X, ref_point=None)
    values = acquisition_score(acqf, tiny.space)(tiny.everything[:10])
    assert len(values) == 10 and all(v == v for v in values)  # no NaN


def test_a_stale_build_lock_of_the_fused_kernel_is_removed(tmp_path, monkeypatch, capsys):
    """torch waits without end on the JIT build lock; one left by a killed worker must not hang later searches."""
    import os
    import time

    from torch.utils.cpp_extension import _get_build_directory

    from autopeft.optim.acquisition import FUSED_KERNEL, clear_stale_build_lock

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    lock = os.path.join(_get_build_directory(FUSED_KERNEL, verbose=False), "lock")
    assert str(tmp_path) in lock and not clear_stale_build_lock()  # none there
    open(lock, "w").close()
    assert not clear_stale_build_lock() and os.path.exists(lock)  # a build in progress: left alone
    old = time.time() - 3600
    os.utime(lock, (old, old))
    assert clear_stale_build_lock() and not os.path.exists(lock)
    assert "stale build lock" in capsys.readouterr().err
