"""One contract for every optimiser by name: valid, in-budget suggestions only; resumable; works in a
multi-objective study on SQLite storage; reproducible random start. Plus AutoPEFT-specific behaviour."""

from __future__ import annotations

import math
import random

import optuna
import pytest
from optuna.trial import TrialState

from autopeft.bench.problems import bert_dims
from autopeft.errors import UserError
from autopeft.optim import SAMPLERS, AutoPEFTSampler, config_from_params, make_sampler, optuna_distributions
from autopeft.optim.bridge import params_from_config
from autopeft.optim.history import History
from autopeft.optim.surrogate import NutsOptions
from autopeft.params import peft_params
from autopeft.space import PEFTConfig, SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = SearchSpace(4, 32)  # tiny-bert's shape
DIMS = bert_dims(4, 32)
MAX_PARAMS = 3000  # of up to 25,088: most of the space is over budget
STARTUP = 4
SMALL = {"random_starts": 4, "pareto_starts": 4, "mc_samples": 32}  # a cheaper acquisition optimisation
FAST = {
    "autopeft": {"surrogate": "saas-map", **SMALL},
    "autopeft-params-modelled": {"surrogate": "saas-map", **SMALL},
    "autopeft-plain-gp": SMALL,
}
STATELESS = ("autopeft", "random", "autopeft-params-modelled", "autopeft-plain-gp")  # all state in the study


def _sampler(name: str, seed: int = 0, **extra):
    opts = dict(FAST.get(name, {}))
    if name in ("tpe", "gp") or name.startswith("autopeft"):
        opts["n_startup_trials"] = STARTUP
    if name == "nsga2":
        opts["population_size"] = STARTUP
    return make_sampler(name, SPACE, DIMS, 2, seed=seed, max_params=MAX_PARAMS, **{**opts, **extra})


def _metric(config: PEFTConfig) -> float:
    layers = set(config.shared_layers or ())
    return 0.5 + 0.3 * (3 in layers) * math.log1p(config.serial) / math.log1p(32) + 0.05 * (1 in layers)


def _run(study: optuna.Study, n: int) -> list[PEFTConfig]:
    distributions = optuna_distributions(SPACE)
    configs = []
    for _ in range(n):
        trial = study.ask(distributions)
        config = config_from_params(SPACE, trial.params)  # raises if invalid
        study.tell(trial, [_metric(config), peft_params(config, DIMS)])
        configs.append(config)
    return configs


@pytest.mark.parametrize("name", SAMPLERS)
def test_contract_valid_in_budget_resumable_on_sqlite(name, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(
        study_name="s", storage=storage, directions=["maximize", "minimize"], sampler=_sampler(name)
    )
    first = _run(study, STARTUP + 2)
    # resume: a new sampler object on the same storage continues the study
    resumed = optuna.load_study(study_name="s", storage=storage, sampler=_sampler(name))
    second = _run(resumed, 3)
    trials = resumed.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == STARTUP + 5
    for config, trial in zip(first + second, trials, strict=True):
        assert SPACE.is_valid(config)
        assert peft_params(config, DIMS) <= MAX_PARAMS
        assert trial.values[1] == peft_params(config, DIMS)
    if name in STATELESS:
        # everything is derived from the study: the resumed run makes the uninterrupted run's choices
        again = optuna.create_study(directions=["maximize", "minimize"], sampler=_sampler(name))
        assert _run(again, STARTUP + 5) == first + second
        assert len(set(first + second)) == len(first + second)  # no configuration twice


@pytest.mark.parametrize("name", SAMPLERS)
def test_contract_random_start_reproducible_for_a_seed(name):
    runs = [_run(optuna.create_study(directions=["maximize", "minimize"], sampler=_sampler(name, seed=7)), STARTUP)]
    runs.append(_run(optuna.create_study(directions=["maximize", "minimize"], sampler=_sampler(name, seed=7)), STARTUP))
    other = _run(optuna.create_study(directions=["maximize", "minimize"], sampler=_sampler(name, seed=8)), STARTUP)
    assert runs[0] == runs[1]
    assert runs[0] != other


@pytest.mark.parametrize("name", SAMPLERS)
def test_contract_candidate_pool_only_unused_members(name):
    rng = random.Random(0)
    pool = list(dict.fromkeys(SPACE.sample(rng) for _ in range(200)))[:30]
    sampler = _sampler(name, candidates=pool)
    configs = _run(optuna.create_study(directions=["maximize", "minimize"], sampler=sampler), STARTUP + 3)
    allowed = [c for c in pool if peft_params(c, DIMS) <= MAX_PARAMS]
    assert set(configs) <= set(allowed)
    assert len(set(configs)) == len(configs)


def test_unknown_sampler_and_bad_options_are_user_errors():
    with pytest.raises(UserError, match="unknown sampler"):
        make_sampler("bohb", SPACE, DIMS)
    with pytest.raises(UserError, match="bad option"):
        make_sampler("tpe", SPACE, DIMS, no_such_option=1)
    with pytest.raises(UserError, match="unknown surrogate"):
        make_sampler("autopeft", SPACE, DIMS, surrogate="forest")


def test_autopeft_gives_parallel_workers_distinct_suggestions():
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=_sampler("autopeft"))
    _run(study, STARTUP + 1)
    distributions = optuna_distributions(SPACE)
    batch = [study.ask(distributions) for _ in range(3)]  # asked before any is told: each sees the others pending
    configs = [config_from_params(SPACE, t.params) for t in batch]
    done = {config_from_params(SPACE, t.params) for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert len(set(configs)) == 3 and not set(configs) & done


def test_autopeft_proposes_again_when_another_worker_took_its_configuration_meanwhile(monkeypatch):
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=_sampler("autopeft"))
    _run(study, STARTUP + 1)
    proposals: list[PEFTConfig] = []
    real = AutoPEFTSampler._propose

    def racing(self, study, trial):
        config = real(self, study, trial)
        if not proposals:  # another worker, fitting on the same study, stores the same configuration first
            study.enqueue_trial(params_from_config(SPACE, config))
        proposals.append(config)
        return config

    monkeypatch.setattr(AutoPEFTSampler, "_propose", racing)
    trial = study.ask(optuna_distributions(SPACE))
    assert len(proposals) == 2 and proposals[1] != proposals[0]
    assert config_from_params(SPACE, trial.params) == proposals[1]


def test_autopeft_ignores_failed_trials_and_does_not_repeat_them():
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=_sampler("autopeft"))
    distributions = optuna_distributions(SPACE)
    failed = []
    for _ in range(3):
        trial = study.ask(distributions)
        failed.append(config_from_params(SPACE, trial.params))
        study.tell(trial, state=TrialState.FAIL)
    configs = _run(study, STARTUP + 2)
    assert not set(configs) & set(failed)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == STARTUP + 2


def test_autopeft_single_objective_study_and_minimised_metric():
    single = optuna.create_study(direction="maximize", sampler=_sampler("autopeft"))
    distributions = optuna_distributions(SPACE)
    for _ in range(STARTUP + 2):
        trial = single.ask(distributions)
        single.tell(trial, _metric(config_from_params(SPACE, trial.params)))
    assert len(single.trials) == STARTUP + 2
    loss = optuna.create_study(directions=["minimize", "minimize"], sampler=_sampler("autopeft"))
    for _ in range(STARTUP + 2):
        trial = loss.ask(distributions)
        config = config_from_params(SPACE, trial.params)
        loss.tell(trial, [1.0 - _metric(config), peft_params(config, DIMS)])
    wrong = optuna.create_study(directions=["maximize", "maximize"], sampler=_sampler("autopeft"))
    with pytest.raises(UserError, match="minimize"):
        wrong.ask(distributions)


def test_autopeft_keeps_enqueued_configurations_and_counts_them_pending():
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=_sampler("autopeft"))
    _run(study, STARTUP)
    fixed = PEFTConfig.shared([3], serial=8)
    study.enqueue_trial(params_from_config(SPACE, fixed))
    study.enqueue_trial(params_from_config(SPACE, PEFTConfig.shared([2], prefix=4)))
    trial = study.ask(optuna_distributions(SPACE))
    assert config_from_params(SPACE, trial.params) == fixed  # the enqueued configuration, untouched
    current = study.ask(optuna_distributions(SPACE))  # takes the second enqueued one
    history = History.of(study, SPACE, study._storage.get_trial(current._trial_id))
    assert history.pending == [fixed]  # the running enqueued trial; the current trial is not its own pending
    assert len(history.configs) == STARTUP and fixed in history.seen


def test_autopeft_reference_point_is_user_settable_with_copula():
    sampler = AutoPEFTSampler(
        SPACE, DIMS, 2, n_startup_trials=STARTUP, seed=0, ref_point=(0.4, 20_000), copula=True, **FAST["autopeft"]
    )
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    configs = _run(study, STARTUP + 2)
    assert all(SPACE.is_valid(c) for c in configs) and len(set(configs)) == len(configs)
    with pytest.raises(UserError, match="ref_point"):
        AutoPEFTSampler(SPACE, DIMS, ref_point=(0.4,))


@pytest.mark.slow
def test_autopeft_with_nuts_suggests_from_a_fully_bayesian_saas_gp():
    nuts = NutsOptions(warmup_steps=32, num_samples=32, thinning=4)
    sampler = make_sampler("autopeft", SPACE, DIMS, seed=0, max_params=MAX_PARAMS, n_startup_trials=STARTUP, nuts=nuts)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    configs = _run(study, STARTUP + 1)  # one suggestion from the model
    assert len(set(configs)) == len(configs)
    assert all(peft_params(c, DIMS) <= MAX_PARAMS for c in configs)
