"""The chance that a configuration of a given size learns at all (`optim.learning`), and AutoPEFT's use of it."""

from __future__ import annotations

import math

import optuna
import pytest

from autopeft.bench.problems import bert_dims
from autopeft.errors import UserError
from autopeft.optim import AutoPEFTSampler
from autopeft.optim.history import History
from autopeft.optim.learning import fit_learn_chance, learnt
from autopeft.space import PEFTConfig, SearchSpace

SPACE = SearchSpace(4, 32)  # tiny-bert's shape
DIMS = bert_dims(4, 32)
STARTUP = 4
SCORES = [0.95, 0.9, 0.85, 0.8, 0.7, 0.5, 0.4, 0.3, 0.2, 0.1]  # parameter scores: 1 is the smallest


def _chance(fit, score: float) -> float:
    return math.exp(fit.log_prob(score))


def test_small_configurations_at_the_floor_make_small_ones_unlikely_to_learn():
    metrics = [0.5, 0.5, 0.5, 0.5, 0.5, 0.7, 0.8, 0.75, 0.85, 0.9]  # the five smallest learnt nothing
    fit = fit_learn_chance(SCORES, metrics, floor=0.5)
    assert _chance(fit, 0.95) < 0.25 < 0.75 < _chance(fit, 0.1)


def test_where_every_trial_learns_the_chance_is_high_everywhere():
    # Small configurations score lower, but all stand clear of the floor: none is taken for a failure.
    metrics = [0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.65, 0.7, 0.72, 0.75]
    fit = fit_learn_chance(SCORES, metrics, floor=0.0)
    assert min(_chance(fit, s) for s in (0.0, 0.5, 1.0)) > 0.85
    assert learnt(metrics, 0.0) == [True] * 10


def test_nothing_to_fit_without_two_trials_or_without_any_above_the_floor():
    assert fit_learn_chance([0.5], [0.9], floor=0.0) is None
    assert fit_learn_chance([0.5, 0.2], [0.1, 0.1], floor=0.1) is None
    with pytest.raises(ValueError):
        fit_learn_chance([0.5], [0.1, 0.2], floor=0.0)


def test_the_chance_stays_finite_for_separable_labels():
    fit = fit_learn_chance([1.0, 1.0, 1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0, 1.0, 1.0], floor=0.0)
    assert all(math.isfinite(fit.log_prob(s)) for s in (-5.0, 0.0, 1.0, 5.0))
    assert _chance(fit, 1.0) < 0.2 < 0.8 < _chance(fit, 0.0)  # the prior keeps six trials from certainty


def _study_with_small_failures(sampler) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    from autopeft.optim.bridge import optuna_distributions, params_from_config
    from autopeft.params import peft_params

    small = [PEFTConfig.shared([i], prefix=1) for i in range(4)]
    large = [PEFTConfig.shared([0, 1, 2, 3], serial=s) for s in (8, 16, 32)]
    for config, metric in [*((c, 0.5) for c in small), *zip(large, (0.7, 0.8, 0.85), strict=True)]:
        study.enqueue_trial(params_from_config(SPACE, config))
        trial = study.ask(optuna_distributions(SPACE))
        study.tell(trial, [metric, peft_params(config, DIMS)])
    return study


def test_autopeft_discounts_small_configurations_when_it_knows_the_floor():
    sampler = AutoPEFTSampler(SPACE, DIMS, 2, n_startup_trials=STARTUP, seed=0, surrogate="saas-map", floor=0.5)
    study = _study_with_small_failures(sampler)
    history = History.of(study, SPACE, study.trials[-1])
    flat = sampler._discounted(lambda configs: [0.0] * len(configs), history)  # an acquisition that sees no difference
    tiny, large = PEFTConfig.shared([0, 1], prefix=1), PEFTConfig.shared([0, 1, 2, 3], serial=16)
    small_value, large_value = flat([tiny, large])
    assert small_value < large_value - 1.0  # a factor of e at least
    unknown = AutoPEFTSampler(SPACE, DIMS, 2, n_startup_trials=STARTUP, seed=0, surrogate="saas-map")
    assert unknown.options.floor is None  # no floor told: the acquisition is left alone (see `_optimise`)


def test_a_floor_must_be_a_number():
    with pytest.raises(UserError, match="floor"):
        AutoPEFTSampler(SPACE, DIMS, floor=float("nan"))
