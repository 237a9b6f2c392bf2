"""The search loop in this process with a fake engine: the exact budget, pending points, a failing trial.

Fast (no model, no training): the engine is a function of the configuration, the space is tiny.
"""

from __future__ import annotations

import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from autopeft.engine import Fidelity
from autopeft.engine.result import TrialResult
from autopeft.optim import config_from_params, make_sampler, optuna_distributions, params_from_config
from autopeft.params import ModelDims
from autopeft.search import loop as loop_module
from autopeft.search import record as rec
from autopeft.search.loop import SearchLoop, finished_count, summary
from autopeft.search.storage import create_or_continue, open_storage, worker_id
from autopeft.space import PEFTConfig, SearchSpace

# one layer, hidden size 1: every module is off or of size 1, so the paper space has exactly 7 configurations
DIMS = ModelDims("bert", num_layers=1, hidden_size=1, num_heads=1, ffn_size=4, backbone_params=1000, bias_params=10)
SPACE = SearchSpace(DIMS.num_layers, DIMS.hidden_size, "paper")
RECORD = rec.StudyRecord(
    model="fake",
    task="rte",
    space="paper",
    fidelity=Fidelity(epochs=1),
    num_labels=2,
    metric="accuracy",
    sampler=rec.SamplerSettings("random"),
    trials=3,
    max_params=None,
    seed=0,
    data=rec.TaskArgs("rte"),
    params_ref=100,
    params_min=1,
    backbone_params=DIMS.backbone_params,
    constant_prediction=0.5,
)


def _result(config: PEFTConfig, ok: bool = True) -> TrialResult:
    score = 0.5 + 0.1 * len(config.active_modules)
    return TrialResult(
        status="ok" if ok else "failed",
        reason=None if ok else "the loss is not finite (training diverged)",
        task="rte",
        model="fake",
        mode="search",
        seed=0,
        config=config.to_dict(),
        metric_name="accuracy",
        headline=score if ok else None,
        metrics={"accuracy": score} if ok else {},
    )


def _study(tmp_path, trials: int) -> optuna.Study:
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    create_or_continue("s", storage, RECORD.replace(trials=trials))
    return optuna.load_study(study_name="s", storage=storage, sampler=make_sampler("random", SPACE, DIMS, seed=0))


def _loop(study: optuna.Study, trials: int, engine) -> SearchLoop:
    return SearchLoop(
        study=study,
        space=SPACE,
        dims=DIMS,
        run_config=engine,
        trials=trials,
        num_labels=2,
        fidelity=RECORD.fidelity.to_dict(),
        distributions=optuna_distributions(SPACE),
        config_from_params=lambda params: config_from_params(SPACE, params),
        log=lambda line: None,
    )


def test_exact_budget_and_a_failing_trial_counts(tmp_path):
    calls = []

    def engine(config: PEFTConfig, number: int, on_epoch=None) -> TrialResult:
        calls.append(number)
        return _result(config, ok=number != 1)  # the engine fails the second trial

    study = _study(tmp_path, trials=4)
    _loop(study, 4, engine).run()
    states = [t.state for t in study.trials]
    assert len(calls) == 4 and states.count(TrialState.COMPLETE) == 3 and states.count(TrialState.FAIL) == 1
    failed = study.trials[1]
    assert failed.user_attrs[rec.TRIAL_FAIL_REASON].startswith("the loss is not finite")
    assert finished_count(study) == 4
    _loop(study, 4, engine).run()  # run again: the budget is reached, nothing more trains
    assert len(calls) == 4 and len(study.trials) == 4
    _table, final = summary(study)
    assert final["complete"] == 3 and final["failed"] == 1 and final["constant_prediction"] == 0.5


def test_a_running_trial_of_a_live_worker_counts_is_pending_and_is_waited_for(tmp_path, monkeypatch):
    monkeypatch.setattr(loop_module, "IDLE_WAIT_SECONDS", (0.05, 0.2))
    study = _study(tmp_path, trials=7)
    # another worker (alive: this very process) is training configuration `pending`
    pending = PEFTConfig.shared([0], serial=1)
    distributions = optuna_distributions(SPACE)
    other = study.ask()
    storage = study._storage
    storage.set_trial_user_attr(other._trial_id, rec.TRIAL_WORKER, worker_id())
    storage.set_trial_user_attr(other._trial_id, rec.TRIAL_CONFIG, pending.to_dict())
    for name, value in params_from_config(SPACE, pending).items():
        storage.set_trial_param(other._trial_id, name, distributions[name].to_internal_repr(value), distributions[name])
    seen: list[PEFTConfig] = []

    def engine(config: PEFTConfig, number: int, on_epoch=None) -> TrialResult:
        seen.append(config)
        return _result(config)

    worker = threading.Thread(target=_loop(study, 7, engine).run)
    worker.start()
    deadline = time.monotonic() + 60
    while len(seen) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # the loop now has nothing to claim: it waits, and creates no trial meanwhile
    # 7 configurations in all: the 6 others, each once; the pending one is never proposed while it runs
    assert len(seen) == 6 and len(set(seen)) == 6 and pending not in seen
    assert len(study.trials) == 7 and worker.is_alive()
    study.tell(other, [0.9, 1.0])  # the other worker finishes: the budget is complete, the loop ends
    worker.join(timeout=30)
    assert not worker.is_alive() and finished_count(study) == 7 and len(study.trials) == 7


@pytest.mark.parametrize("reason", [rec.INTERRUPTED_REASON])
def test_an_interrupted_trial_does_not_count(tmp_path, reason):
    study = _study(tmp_path, trials=2)
    dead = study.ask()
    study._storage.set_trial_user_attr(dead._trial_id, rec.TRIAL_FAIL_REASON, reason)
    study.tell(dead, state=TrialState.FAIL)
    _loop(study, 2, lambda config, number, on_epoch: _result(config)).run()
    assert finished_count(study) == 2 and len([t for t in study.trials if t.state == TrialState.COMPLETE]) == 2


def test_the_summary_gives_the_hypervolume_after_the_random_start(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    create_or_continue("s", storage, RECORD.replace(trials=5, sampler=rec.SamplerSettings("autopeft", startup=2)))
    study = optuna.load_study(study_name="s", storage=storage, sampler=make_sampler("random", SPACE, DIMS, seed=0))
    _loop(study, 5, lambda config, number, on_epoch: _result(config)).run()
    _table, final = summary(study)
    assert final["startup"] == 2 and final["stopped_early"] == 0
    assert 0 <= final["hypervolume_after_startup"] <= final["hypervolume"]
