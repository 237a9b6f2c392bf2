"""Multi-objective early stopping: the rule, the search loop's use of it, the optimiser's use of stopped trials."""

from __future__ import annotations

import dataclasses
import math

import optuna
import pytest
from optuna.trial import TrialState

from autopeft.engine import Fidelity
from autopeft.engine.result import EpochReport, TrialResult
from autopeft.errors import UserError
from autopeft.optim import make_sampler
from autopeft.optim.history import History
from autopeft.search import record as rec
from autopeft.search.early_stop import EarlyStop, Finished, allowance, front_score_at, projected_score, should_stop
from autopeft.search.loop import finished_count
from autopeft.search.storage import create_or_continue
from autopeft.space import PEFTConfig
from test_search_loop import DIMS, RECORD, SPACE, _loop

ON = EarlyStop(on=True, min_share=0.25, quantile=0.9)
# six finished trials at 100..600 params; each gained 0.05 from its first quarter to its end
FINISHED = [
    Finished(100 * k, 0.6 + 0.02 * k, [(0.25, 0.55 + 0.02 * k), (0.5, 0.58 + 0.02 * k), (1.0, 0.6 + 0.02 * k)])
    for k in range(1, 7)
]


def test_a_dominated_curve_stops_and_a_promising_one_does_not():
    # at 350 params the front is 0.66 (the trial at 300); allowance 0.05 at a quarter of the budget
    assert front_score_at(FINISHED, 350) == pytest.approx(0.66)
    assert allowance(FINISHED, 0.25, 0.9, 350) == pytest.approx(0.05)
    assert should_stop(ON, 350, [(0.25, 0.50)], FINISHED)  # 0.50 + 0.05 < 0.66
    assert not should_stop(ON, 350, [(0.25, 0.63)], FINISHED)  # 0.63 + 0.05 >= 0.66: it may still get there
    assert not should_stop(ON, 50, [(0.25, 0.10)], FINISHED)  # nothing finished is this small: it is the front


def test_a_trial_that_has_not_started_to_learn_never_stops():
    # far below the front, but every prediction so far was the same class: its score is the floor's
    assert should_stop(ON, 350, [(0.25, 0.0), (0.5, 0.0)], FINISHED)
    assert not should_stop(ON, 350, [(0.25, 0.0), (0.5, 0.0)], FINISHED, learning=False)


def test_minimum_share_conservative_default_and_switch():
    assert not should_stop(ON, 350, [(0.2, 0.10)], FINISHED)  # before the minimum share of its budget
    assert not should_stop(ON, 350, [(1.0, 0.10)], FINISHED)  # finished: nothing to save
    assert not should_stop(EarlyStop(on=False), 350, [(0.5, 0.10)], FINISHED)
    few = FINISHED[:2]  # fewer than MIN_CURVES: twice the largest gain
    assert allowance(few, 0.25, 0.9, 150) == pytest.approx(0.10)
    assert allowance([Finished(10, 0.5, [(1.0, 0.5)])], 0.25, 0.9, 10) == math.inf  # no curve to learn from


def test_a_large_trial_is_allowed_the_gains_of_comparable_sizes_not_those_of_the_many_small_ones():
    # 50 small trials gained 0.05 after their first quarter; 5 large ones (over 100 k parameters) 0.30
    small = [Finished(100 + k, 0.55, [(0.25, 0.50), (1.0, 0.55)]) for k in range(50)]
    large = [Finished(100_000 * k, 0.70, [(0.25, 0.40), (1.0, 0.70)]) for k in range(1, 6)]
    finished = small + large
    assert allowance(finished, 0.25, 0.9, 120) == pytest.approx(0.05)  # the small trials' quantile
    assert allowance(finished, 0.25, 0.9, 300_000) == pytest.approx(0.30)  # its size's, larger than all curves'
    assert not should_stop(ON, 300_000, [(0.25, 0.45)], finished)  # 0.45 + 0.30 >= 0.70: it may get there
    assert should_stop(ON, 300_000, [(0.25, 0.35)], finished)  # 0.35 + 0.30 < 0.70
    assert should_stop(ON, 120, [(0.25, 0.40)], finished)  # 0.40 + 0.05 < 0.55
    # the projection of a stopped large trial adds its size's median gain, still below the front
    projected = projected_score(finished, 0.25, 0.35, 0.9, 300_000)
    assert projected == pytest.approx(0.65) and projected < front_score_at(finished, 300_000)
    assert projected_score(finished, 0.25, 0.40, 0.9, 120) == pytest.approx(0.45)
    # no finished curve of its size: never stopped; fewer than MIN_CURVES: twice their largest gain
    assert allowance(small, 0.25, 0.9, 300_000) == math.inf and not should_stop(ON, 300_000, [(0.25, 0.0)], small)
    assert allowance(small + large[:2], 0.25, 0.9, 300_000) == pytest.approx(0.60)


def test_a_stopped_trial_is_observed_at_its_projected_final_score_still_below_the_front():
    gains = [0.02, 0.04, 0.06, 0.08, 0.10]  # from a quarter of the budget to the end
    finished = [Finished(100 * k, 0.5 + g, [(0.25, 0.5), (1.0, 0.5 + g)]) for k, g in enumerate(gains, 1)]
    assert projected_score(finished, 0.25, 0.40, 0.9, 450) == pytest.approx(0.46)  # + the median gain
    assert projected_score(finished, 0.25, 0.40, 0.25, 450) == pytest.approx(0.44)  # never above the allowance
    assert projected_score(finished[:4], 0.25, 0.40, 0.9, 450) == 0.40  # too few curves: the score itself
    # whenever the rule stops a trial, its projection stays below the front at its size
    for score in (0.30, 0.40, 0.45, 0.49):
        for quantile in (0.1, 0.5, 0.9):
            rule = EarlyStop(on=True, min_share=0.25, quantile=quantile)
            if should_stop(rule, 450, [(0.25, score)], finished):
                assert projected_score(finished, 0.25, score, quantile, 450) < front_score_at(finished, 450)


def test_the_optimiser_observes_a_stopped_trial_at_its_projection_and_older_studies_at_their_score():
    from autopeft.optim.bridge import optuna_distributions, params_from_config

    study = optuna.create_study(directions=["maximize", "minimize"])
    stopped = [
        (PEFTConfig.shared([0], serial=1), {"share": 0.25, "score": 0.30, "observed": 0.42}),
        (PEFTConfig.shared([0], parallel=1), {"share": 0.25, "score": 0.35}),  # stored before projections
    ]
    for config, attr in stopped:
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.PRUNED, params=params_from_config(SPACE, config),
                distributions=optuna_distributions(SPACE), user_attrs={rec.TRIAL_EARLY_STOPPED: attr},
            )
        )  # fmt: skip
    current = study.ask()
    assert History.of(study, SPACE, study.get_trials()[current.number]).metrics == [0.42, 0.35]


@pytest.mark.parametrize("kwargs", [{"min_share": 0}, {"min_share": 1}, {"quantile": 1.5}, {"quantile": 0}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(UserError, match="must be in"):
        EarlyStop(on=True, **kwargs)


def _engine(scores_by_config, constant_for=lambda config: 0):
    """A fake engine that reports four evaluations and stops when `on_epoch` says so; the first
    `constant_for(config)` of them predict one class throughout."""

    def engine(config: PEFTConfig, number: int, on_epoch) -> TrialResult:
        curve = scores_by_config(config)
        best, stopped = -math.inf, "completed"
        for epoch, score in enumerate(curve, start=1):
            best = max(best, score)
            share, constant = epoch / len(curve), epoch <= constant_for(config)
            if on_epoch(EpochReport(epoch, epoch * 10, score, {"accuracy": score}, 0.5, share, constant)):
                stopped = "callback"
                break
        return TrialResult(
            status="ok", reason=None, task="rte", model="fake", mode="search", seed=0, config=config.to_dict(),
            metric_name="accuracy", headline=best, metrics={"accuracy": best}, stopped=stopped,
        )  # fmt: skip

    return engine


def test_the_loop_stops_dominated_trials_counts_them_and_records_curves(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    record = RECORD.replace(trials=7, fidelity=Fidelity(epochs=4))
    create_or_continue("s", storage, record)
    study = optuna.load_study(study_name="s", storage=storage, sampler=make_sampler("random", SPACE, DIMS, seed=0))

    def scores(config: PEFTConfig) -> list[float]:
        if config == PEFTConfig.shared([0], serial=1):  # the smallest configuration learns well
            return [0.7, 0.8, 0.85, 0.9]
        return [0.3, 0.31, 0.32, 0.33]  # the others learn little

    study.enqueue_trial({"serial": 1, "parallel": 0, "prefix": 0, "layer_0": 1})
    on = EarlyStop(on=True, min_share=0.5, quantile=0.9)
    dataclasses.replace(_loop(study, 7, _engine(scores)), early_stop=on, fidelity=record.fidelity.to_dict()).run()
    trials = study.get_trials(deepcopy=False)
    assert finished_count(study) == 7 and len(trials) == 7  # stopped trials count toward the budget
    first = trials[0]
    assert first.state == TrialState.COMPLETE and first.user_attrs[rec.TRIAL_CURVE] == [
        [0.25, 0.7], [0.5, 0.8], [0.75, 0.85], [1.0, 0.9]
    ]  # fmt: skip
    stopped = [t for t in trials if t.state == TrialState.PRUNED]
    assert stopped, "every other configuration is larger and far below the front: they stop"
    for t in stopped:
        # one finished curve: too few to project from, so the optimiser observes the score itself
        assert t.user_attrs[rec.TRIAL_EARLY_STOPPED] == {"share": 0.5, "score": 0.31, "observed": 0.31}
        assert t.user_attrs["cpu_seconds"] >= 0 and len(t.user_attrs[rec.TRIAL_CURVE]) == 2
    # the optimiser sees stopped trials as observations at their last score
    history = History.of(study, SPACE, trials[-1])
    assert len(history.configs) == len(trials) - 1 and 0.31 in history.metrics
    # the report shows them: a line with the CPU hours saved, a marker on the Pareto plot
    from autopeft.search.report import write_report

    paths = write_report(study, tmp_path / "report")
    text = paths["report"].read_text()
    assert f"{len(stopped)} trials stopped early, saving about" in text and paths["pareto_png"].stat().st_size > 0


def test_the_loop_lets_a_trial_that_predicts_one_class_go_on_until_it_starts_to_learn(tmp_path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    record = RECORD.replace(trials=5, fidelity=Fidelity(epochs=4))
    create_or_continue("s", storage, record)
    study = optuna.load_study(study_name="s", storage=storage, sampler=make_sampler("random", SPACE, DIMS, seed=0))
    smallest = PEFTConfig.shared([0], serial=1)

    def scores(config: PEFTConfig) -> list[float]:
        return [0.7, 0.8, 0.85, 0.9] if config == smallest else [0.3, 0.3, 0.32, 0.33]

    study.enqueue_trial({"serial": 1, "parallel": 0, "prefix": 0, "layer_0": 1})
    on = EarlyStop(on=True, min_share=0.5, quantile=0.9)
    engine = _engine(scores, constant_for=lambda config: 0 if config == smallest else 2)
    dataclasses.replace(_loop(study, 5, engine), early_stop=on, fidelity=record.fidelity.to_dict()).run()
    stopped = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.PRUNED]
    assert stopped, "the others are larger and far below the front"
    # at half their budget they still predicted one class: they stop at the next evaluation, not there
    assert {t.user_attrs[rec.TRIAL_EARLY_STOPPED]["share"] for t in stopped} == {0.75}


def test_the_report_flags_a_search_without_signal(tmp_path):
    from autopeft.search.report import write_report

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}")
    # every trial scores within noise of the floor (0.5 on 100 held-out examples: SE 0.05)
    create_or_continue("s", storage, RECORD.replace(trials=3, heldout_size=100, constant_prediction=0.5))
    study = optuna.load_study(study_name="s", storage=storage, sampler=make_sampler("random", SPACE, DIMS, seed=0))
    flat = _engine(lambda config: [0.52, 0.53, 0.52, 0.54])
    dataclasses.replace(_loop(study, 3, flat), fidelity=Fidelity(epochs=4).to_dict()).run()
    assert "**no signal**" in write_report(study, tmp_path / "r")["report"].read_text()
    # one trial far above the floor: signal
    create_or_continue("t", storage, RECORD.replace(trials=3, heldout_size=100, constant_prediction=0.5))
    other = optuna.load_study(study_name="t", storage=storage, sampler=make_sampler("random", SPACE, DIMS, seed=0))
    other.enqueue_trial({"serial": 1, "parallel": 0, "prefix": 0, "layer_0": 1})
    steep = _engine(lambda config: [0.6, 0.8, 0.9, 0.95] if config.serial else [0.52] * 4)
    dataclasses.replace(_loop(other, 3, steep), fidelity=Fidelity(epochs=4).to_dict()).run()
    assert other.trials[0].user_attrs[rec.TRIAL_CONFIG]["serial"] == 1
    assert "**no signal**" not in write_report(other, tmp_path / "r2")["report"].read_text()
