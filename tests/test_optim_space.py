"""The optimiser's view of the space: Optuna distributions, exact parameter objective, the budget."""

from __future__ import annotations

import random

import pytest
import torch

from autopeft.bench.problems import bert_dims
from autopeft.errors import UserError
from autopeft.optim.acquisition import ExactParams, ParamsScore
from autopeft.optim.bridge import config_from_params, optuna_distributions, params_from_config, vector_from_params
from autopeft.optim.budget import Budget
from autopeft.params import peft_params
from autopeft.space import ConfigError, PEFTConfig, SearchSpace

SHAPES = [(4, 32, "paper"), (12, 384, "paper"), (4, 32, "extended"), (6, 384, "extended")]


def _budget(layers: int, hidden: int, kind: str, max_params: int | None = None) -> Budget:
    return Budget(SearchSpace(layers, hidden, kind), bert_dims(layers, hidden), max_params)


@pytest.mark.parametrize(("layers", "hidden", "kind"), SHAPES)
def test_params_round_trip_through_optuna_distributions(layers, hidden, kind):
    space = SearchSpace(layers, hidden, kind)
    distributions = optuna_distributions(space)
    assert list(distributions) == [d.name for d in space.dimensions]
    rng = random.Random(0)
    for _ in range(100):
        config = space.sample(rng)
        params = params_from_config(space, config)
        assert all(params[name] in dist.choices for name, dist in distributions.items())
        assert config_from_params(space, params) == config


def test_config_from_params_refuses_invalid_missing_and_foreign_values():
    space = SearchSpace(4, 32)
    params = params_from_config(space, PEFTConfig.shared([0, 1], serial=8))
    with pytest.raises(ConfigError, match="lack"):
        config_from_params(space, {k: v for k, v in params.items() if k != "layer_3"})
    with pytest.raises(ConfigError, match="not in the space"):
        config_from_params(space, {**params, "serial": 7})
    off = {**params, "serial": 0}  # every module off: a vector, but not a valid configuration
    assert len(vector_from_params(space, off)) == space.dim
    with pytest.raises(ConfigError, match="no PEFT module"):
        config_from_params(space, off)


@pytest.mark.parametrize(("layers", "hidden", "kind"), SHAPES)
def test_vectorised_params_equal_exact_peft_params(layers, hidden, kind):
    budget = _budget(layers, hidden, kind)
    rng = random.Random(1)
    configs = [budget.space.sample(rng) for _ in range(200)]
    X = torch.tensor([budget.space.to_vector(c) for c in configs], dtype=torch.float64)  # 200 x d
    counts = ExactParams(budget)(X)
    assert counts.tolist() == [float(peft_params(c, budget.dims)) for c in configs]
    scores = ParamsScore(budget)(X.unsqueeze(-2))  # 200 x 1: batch shapes pass through
    assert scores.shape == (200, 1)
    assert scores.squeeze(-1).tolist() == pytest.approx([budget.score(peft_params(c, budget.dims)) for c in configs])


def test_score_runs_from_one_at_the_smallest_to_zero_at_the_largest_allowed():
    budget = _budget(12, 384, "paper")
    assert budget.smallest == 2 * 384  # prefix of length 1 in one layer
    assert budget.score(budget.smallest) == pytest.approx(1.0)
    assert budget.score(budget.largest) == pytest.approx(0.0)
    capped = _budget(12, 384, "paper", max_params=100_000)
    assert capped.largest == 100_000 and capped.score(100_000) == pytest.approx(0.0)


def test_budget_as_percentage_and_refusals():
    space, dims = SearchSpace(6, 384), bert_dims(6, 384)
    assert Budget.of(space, dims, max_percent=1.0).max_params == int(0.01 * dims.backbone_params)
    with pytest.raises(UserError, match="below the smallest"):
        Budget.of(space, dims, max_params=100)
    with pytest.raises(UserError, match="not both"):
        Budget.of(space, dims, max_params=10_000, max_percent=1.0)
    with pytest.raises(UserError, match="does not match"):
        Budget(SearchSpace(4, 384), dims)


@pytest.mark.parametrize("kind", ["paper", "extended"])
def test_repair_makes_any_vector_valid_and_within_a_tight_budget(kind):
    budget = _budget(6, 384, kind, max_params=20_000)  # about 1% of the space's configurations fit
    rng = random.Random(2)
    for _ in range(120):
        x = [rng.choice((0.0, 1.0)) if rng.random() < 0.3 else rng.random() for _ in range(budget.space.dim)]
        config = budget.repair(x, rng)
        assert budget.allows(config), config
    zero = [0.0] * budget.space.dim  # nothing on, no layer
    assert budget.allows(budget.repair(zero, rng))


def test_repair_keeps_an_allowed_configuration_as_it_is():
    budget = _budget(6, 384, "paper", max_params=50_000)
    config = PEFTConfig.shared([1, 4], serial=12, prefix=3)
    assert budget.allows(config)
    assert budget.repair(budget.space.to_vector(config), random.Random(0)) == config


def test_sample_is_allowed_and_avoids_excluded_configurations():
    budget = _budget(2, 4, "paper", max_params=60)  # a tiny space: enumerate what fits
    rng = random.Random(3)
    allowed = {budget.sample(rng) for _ in range(2000)}
    assert all(budget.allows(c) for c in allowed)
    taken = set(list(allowed)[:-1])
    assert all(budget.sample(rng, exclude=taken) not in taken for _ in range(20))
    # when everything is taken it still returns an allowed configuration
    assert budget.allows(budget.sample(rng, exclude=allowed))
