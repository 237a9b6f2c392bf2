"""Warm start from another task's study (`optim/warm.py`), the stratified random start, and the
24-layer benchmark problems (`realistic-L`) with their warm-start benchmark."""

from __future__ import annotations

import itertools
import json
import math
import random
from types import SimpleNamespace

import optuna
import pytest

from autopeft.bench.problems import bert_dims, make_realistic, realistic
from autopeft.cli import main
from autopeft.errors import UserError
from autopeft.optim import config_from_params, make_sampler, optuna_distributions, warm
from autopeft.optim.bridge import params_from_config
from autopeft.optim.budget import Budget
from autopeft.params import peft_params
from autopeft.space import PEFTConfig, SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = SearchSpace(4, 32)  # tiny-bert's shape
DIMS = bert_dims(4, 32)
SMALL = {"surrogate": "saas-map", "random_starts": 4, "pareto_starts": 4, "mc_samples": 32}


def _metric(config: PEFTConfig) -> float:
    layers = set(config.shared_layers or ())
    return 0.5 + 0.3 * (3 in layers) * math.log1p(config.serial) / math.log1p(32) + 0.05 * (1 in layers)


def _source(n: int = 20, seed: int = 0) -> optuna.Study:
    """A finished study of another task: `n` random configurations with `_metric`."""
    study = optuna.create_study(directions=["maximize", "minimize"], study_name="source")
    rng = random.Random(seed)
    distributions = optuna_distributions(SPACE)
    for config in list(dict.fromkeys(SPACE.sample(rng) for _ in range(3 * n)))[:n]:
        study.add_trial(
            optuna.trial.create_trial(
                params=params_from_config(SPACE, config),
                distributions=distributions,
                values=[_metric(config), peft_params(config, DIMS)],
            )
        )
    return study


def test_warm_start_front_is_the_thinned_pareto_set_of_the_source():
    source = _source()
    budget = Budget.of(SPACE, DIMS)
    full = warm.from_study(source, SPACE, budget, enqueue=100)
    points = [(m, budget.params(c)) for c, m in zip(full.configs, full.metrics, strict=True)]
    for c in full.front:  # nothing in the source dominates a front member
        m, p = _metric(c), budget.params(c)
        assert not any(m2 >= m and p2 <= p and (m2, p2) != (m, p) for m2, p2 in points)
    two = warm.from_study(source, SPACE, budget, enqueue=2)
    assert len(two.front) == min(2, len(full.front)) and two.front[0] == full.front[0]
    assert len(full.configs) == 20 and warm.WarmStart.from_attr(full.to_attr()) == full


def test_warm_start_is_stored_enqueued_once_and_modelled_with_a_task_feature():
    source = warm.from_study(_source(), SPACE, Budget.of(SPACE, DIMS), enqueue=3)
    sampler = make_sampler("autopeft", SPACE, DIMS, seed=0, **SMALL)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    assert warm.apply(study, source, SPACE) == len(source.front) == 3
    assert warm.apply(study, source, SPACE) == 0  # a continued study: nothing enqueued twice
    distributions = optuna_distributions(SPACE)
    configs = []
    for _ in range(6):
        trial = study.ask(distributions)
        config = config_from_params(SPACE, trial.params)
        study.tell(trial, [_metric(config) + 0.1, peft_params(config, DIMS)])
        configs.append(config)
    assert configs[:3] == list(source.front)  # the source's front first
    assert len(set(configs)) == 6 and all(SPACE.is_valid(c) for c in configs)
    assert warm.observations(study, SPACE) == (list(source.configs), list(source.metrics))


def test_warm_start_refuses_another_model_or_space_in_one_line():
    target = SimpleNamespace(model="minilm", space="paper")
    warm.check_same_job(SimpleNamespace(model="minilm", space="paper"), target, "rte")
    with pytest.raises(UserError, match=r"its model is 'bert-base', not 'minilm'") as err:
        warm.check_same_job(SimpleNamespace(model="bert-base", space="paper"), target, "rte")
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match=r"its space is 'extended', not 'paper'"):
        warm.check_same_job(SimpleNamespace(model="minilm", space="extended"), target, "rte")


def test_load_warm_start_refuses_missing_and_foreign_studies():
    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(storage=storage, study_name="plain", directions=["maximize", "minimize"])
    budget = Budget.of(SPACE, DIMS)
    target = SimpleNamespace(model="tiny-bert", space="paper")
    with pytest.raises(UserError, match="no study 'nope'"):
        warm.load_warm_start("nope", storage, target, SPACE, budget)
    with pytest.raises(UserError, match="not made by autopeft search"):
        warm.load_warm_start("plain", storage, target, SPACE, budget)


def test_stratified_start_spreads_over_the_parameter_axis():
    space, dims = SearchSpace(24, 384), bert_dims(24, 384)
    budget = Budget.of(space, dims)

    def start(stratified: bool) -> list[float]:
        sampler = make_sampler("autopeft", space, dims, seed=3, stratified_start=stratified, surrogate="saas-map")
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        scores = []
        for _ in range(10):
            trial = study.ask(optuna_distributions(space))
            config = config_from_params(space, trial.params)
            study.tell(trial, [0.5, peft_params(config, dims)])
            scores.append(budget.score(budget.params(config)))
        return sorted(scores)

    stratified, uniform = start(True), start(False)
    # uniform draws (about 12 layers, mid sizes) stay in the middle of the axis at 24 layers
    assert max(stratified) - min(stratified) > 0.6 > max(uniform) - min(uniform)
    assert max(stratified) > 0.65 > 0.6 > max(uniform)


def test_realistic_problem_maximum_equals_enumeration_and_collapses_when_small():
    problem = make_realistic(8, "a", hidden=8)  # 5 sizes per module, 8 layers
    space = problem.space
    everything = [
        PEFTConfig.shared([i for i in range(8) if bits[i]], serial=s, parallel=p, prefix=x)
        for s, p, x in itertools.product(space.choices("serial"), repeat=3)
        for bits in itertools.product((0, 1), repeat=8)
    ]
    points = [(problem.truth(c), problem.params(c)) for c in everything if space.is_valid(c)]
    assert problem.hypervolume(points) == pytest.approx(1.0, abs=1e-12)
    big = realistic("realistic-24")
    assert big.space.dim == 27 and big.noise > 0
    assert big.truth(PEFTConfig.shared([23], prefix=2)) == big.truth(PEFTConfig.shared([0], prefix=2)) == 0.5
    assert big.truth(PEFTConfig.shared(big.truth.layers[:3], serial=96, parallel=96)) > 0.75
    related, unrelated = realistic("realistic-24-b"), realistic("realistic-24-c")
    assert related.truth.layers == big.truth.layers and related.truth.weights != big.truth.weights
    assert not set(unrelated.truth.layers) & set(big.truth.layers)


def test_bench_warm_from_compares_warm_and_cold_starts(tmp_path, capsys):
    args = ["bench", "optimizers", "--problem", "realistic-12-b", "--trials", "4", "--seeds", "1"]
    args += ["--samplers", "autopeft:saas-map", "--out", str(tmp_path / "b")]
    args += ["--warm-from", "realistic-12", "--warm-runs", str(tmp_path / "a"), "--warm-modes", "both,enqueue"]
    assert main(args) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["warm_from"] == "realistic-12"
    assert set(figures["warm"]) == {
        "autopeft:saas-map",
        "autopeft:saas-map+warm-both",
        "autopeft:saas-map+warm-enqueue",
    }
    assert len(list((tmp_path / "a" / "runs").glob("*.json"))) == 1  # the source's run, made there
    assert main([*args[:-2], "--warm-modes", "sideways"]) == 2
    assert "unknown --warm-modes" in capsys.readouterr().err
