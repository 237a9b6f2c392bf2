"""The engine on a tiny random BERT: results, determinism, a pristine backbone, and failures recorded."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from autopeft.engine import Engine, Fidelity, TrialResult
from autopeft.errors import UserError
from autopeft.params import param_count
from autopeft.space import ConfigError, PEFTConfig
from autopeft.tasks import Split, TaskData, load_glue

FAST = Fidelity(epochs=1, max_train_samples=48, max_eval_samples=24, batch_size=16, eval_batch_size=32)
ALL = PEFTConfig.shared(range(4), serial=8, parallel=4, prefix=4, lora=2)  # every module kind, hidden 32


@pytest.fixture(scope="module")
def rte(glue_dir):
    return load_glue("rte", glue_dir)


@pytest.fixture(scope="module")
def engine(rte):
    return Engine("tiny-bert", rte, progress=False)


def _backbone(engine):
    return {k: v.detach().clone() for k, v in engine.model.state_dict().items()}


def _assert_pristine(engine, before):
    after = engine.model.state_dict()
    assert set(after) == set(before)
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert len(engine.model.adapters_config) == 0 and len(engine.model.heads) == 0
    assert not any(p.requires_grad for p in engine.model.parameters())


def test_trial_reports_scores_cost_and_counts(engine):
    result = engine.run_trial(ALL, FAST, seed=1)
    assert result.ok and result.reason is None and result.status == "ok"
    assert result.metric_name == "accuracy" and 0 <= result.headline <= 1 and result.metric == result.headline
    assert result.metrics == {"accuracy": result.headline}
    count = param_count(ALL, engine.dims, 2)
    assert (result.params, result.head_params, result.percent) == (count.peft, count.head, count.percent)
    assert (result.train_examples, result.eval_examples, result.steps, result.epochs_run) == (48, 24, 3, 1.0)
    assert result.train_seconds > 0 and result.examples_per_second > 0 and result.peak_memory_mb > 0
    assert result.lr == 1e-4 and result.mode == "search" and result.stopped == "completed"
    assert result.config == ALL.to_dict() and result.fidelity == FAST.to_dict()
    assert [h["epoch"] for h in result.history] == [1] and "train_loss" in result.history[0]
    data = json.loads(json.dumps(result.to_dict()))
    assert TrialResult.from_dict(data).to_dict() == data


def test_same_seed_same_result(engine, tmp_path):
    fidelity = FAST.replace(epochs=2)
    a = engine.run_trial(ALL, fidelity, seed=7, out_dir=tmp_path / "a")
    b = engine.run_trial(ALL, fidelity, seed=7, out_dir=tmp_path / "b")
    c = engine.run_trial(ALL, fidelity, seed=8)
    assert a.history == b.history and a.metrics == b.metrics
    logits_a = np.load(tmp_path / "a" / "predictions.npz")["logits"]
    logits_b = np.load(tmp_path / "b" / "predictions.npz")["logits"]
    assert np.array_equal(logits_a, logits_b)
    assert a.history[0]["train_loss"] != c.history[0]["train_loss"]


@pytest.mark.parametrize(
    "item", [ALL, "full", "bitfit", "unipelt", "houlsby"], ids=["all-modules", "full", "bitfit", "unipelt", "houlsby"]
)
def test_backbone_bit_identical_after_a_trial(engine, item):
    before = _backbone(engine)
    result = engine.run_trial(item, FAST.replace(lr=1e-2), seed=3)
    assert result.ok
    _assert_pristine(engine, before)


def test_nan_loss_fails_the_trial_and_the_engine_goes_on(engine):
    before = _backbone(engine)
    failed = engine.run_trial("pfeiffer", FAST.replace(lr=1e30, epochs=3), seed=1)
    assert failed.status == "failed" and failed.headline is None and failed.stopped == "failed"
    assert "became" in failed.reason and ("loss" in failed.reason or "gradient norm" in failed.reason)
    _assert_pristine(engine, before)
    assert engine.run_trial("pfeiffer", FAST, seed=1).ok


def _layer0(engine):
    return engine.model.base_model.encoder.layer[0]


def test_nan_from_the_model_fails_with_the_step(engine):
    hook = _layer0(engine).register_forward_hook(lambda module, args, out: (out[0] * float("nan"), *out[1:]))
    try:
        result = engine.run_trial("lora", FAST, seed=1)
    finally:
        hook.remove()
    assert result.status == "failed" and result.reason.startswith("training loss became nan at step 1")


def test_out_of_memory_fails_the_trial(engine, tmp_path):
    before = _backbone(engine)

    def oom(module, args, out):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    hook = _layer0(engine).register_forward_hook(oom)
    try:
        result = engine.run_trial(ALL, FAST, seed=1, out_dir=tmp_path)
    finally:
        hook.remove()
    assert result.status == "failed" and result.reason.startswith("out of memory: CUDA out of memory")
    assert json.loads((tmp_path / "metrics.json").read_text())["reason"] == result.reason
    assert not (tmp_path / "adapters").exists()
    _assert_pristine(engine, before)


def test_other_errors_propagate_and_leave_the_backbone_clean(engine):
    before = _backbone(engine)

    def boom(module, args, out):
        raise RuntimeError("a bug, not a failed trial")

    hook = _layer0(engine).register_forward_hook(boom)
    try:
        with pytest.raises(RuntimeError, match="a bug"):
            engine.run_trial(ALL, FAST, seed=1)
    finally:
        hook.remove()
    _assert_pristine(engine, before)


def test_empty_training_split_fails_the_trial():
    task = TaskData("one", "accuracy", ("a", "b"), Split("train", ("only example",), None, (1,)))
    result = Engine("tiny-bert", task, progress=False).run_trial("lora", FAST, seed=1)
    assert result.status == "failed" and result.reason.startswith("empty training split")


def test_patience_stops_after_evaluations_without_gain(engine):
    # a vanishing learning rate leaves every evaluation equal to the first
    result = engine.run_trial("pfeiffer", FAST.replace(epochs=6, patience=2, lr=1e-12), seed=1)
    assert result.stopped == "patience" and result.epochs_run == 3 and result.best_epoch == 1
    assert len(result.history) == 3


def test_max_steps_and_callback_stop_early(engine):
    capped = engine.run_trial("pfeiffer", FAST.replace(epochs=3, max_steps=4), seed=1)
    assert capped.steps == 4 and capped.stopped == "max_steps" and capped.epochs_run == pytest.approx(4 / 3, abs=1e-3)
    seen = []

    def on_epoch(report):
        seen.append((report.epoch, report.step, report.headline, report.train_loss > 0))
        return report.epoch == 2

    stopped = engine.run_trial("pfeiffer", FAST.replace(epochs=4), seed=1, on_epoch=on_epoch)
    assert stopped.stopped == "callback" and stopped.epochs_run == 2
    assert [s[:2] for s in seen] == [(1, 3), (2, 6)] and all(s[3] for s in seen)
    assert seen[0][2] == stopped.history[0]["accuracy"]


def test_evaluations_within_an_epoch_are_evenly_spaced_and_can_stop_it(engine):
    six_steps = FAST.replace(epochs=2, max_train_samples=96, evals_per_epoch=3)  # 6 steps an epoch
    reports = []
    result = engine.run_trial("pfeiffer", six_steps, seed=1, on_epoch=lambda r: reports.append(r) and False)
    assert [(r.epoch, r.step) for r in reports] == [(1, 2), (1, 4), (1, 6), (2, 8), (2, 10), (2, 12)]
    assert [r.share for r in reports] == pytest.approx([k / 6 for k in range(1, 7)], abs=1e-6)
    assert [h["step"] for h in result.history] == [2, 4, 6, 8, 10, 12] and result.stopped == "completed"
    assert all(r.train_loss > 0 for r in reports)
    midway = engine.run_trial("pfeiffer", six_steps, seed=1, on_epoch=lambda r: r.share >= 0.5)
    assert midway.stopped == "callback" and midway.steps == 6 and len(midway.history) == 3


def test_each_evaluation_says_whether_every_prediction_was_the_same(engine, monkeypatch):
    from autopeft.engine import loop
    from autopeft.tasks.metrics import is_constant

    assert is_constant(np.array([1, 1, 1])) and not is_constant(np.array([1, 0, 1]))
    assert is_constant(np.array([0.5, 0.5])) and not is_constant(np.array([0.5, 0.5001]))
    assert not is_constant(np.array([]))
    fidelity = FAST.replace(epochs=2)
    reports = []
    engine.run_trial("pfeiffer", fidelity, seed=1, on_epoch=lambda r: reports.append(r) and False)
    predicted = []  # what the model predicted at each evaluation, read beside the scorer
    real = loop.to_predictions
    monkeypatch.setattr(loop, "to_predictions", lambda *a: (p := real(*a), predicted.append(p))[0])
    again = []
    engine.run_trial("pfeiffer", fidelity, seed=1, on_epoch=lambda r: again.append(r) and False)
    assert [r.constant for r in again] == [r.constant for r in reports] == [bool(np.all(p == p[0])) for p in predicted]
    # a model whose outputs are one class everywhere reports it, whatever its accuracy
    monkeypatch.setattr(loop, "to_predictions", lambda values, regression: np.zeros(len(values), dtype=int))
    flat = []
    engine.run_trial("pfeiffer", fidelity, seed=1, on_epoch=lambda r: flat.append(r) and False)
    assert len(flat) == 2 and all(r.constant for r in flat)


def test_evaluations_within_an_epoch_may_score_a_cheap_part_of_the_set(engine, monkeypatch):
    from autopeft.engine import loop

    scored: list[int] = []
    real = loop.logits
    monkeypatch.setattr(
        loop,
        "logits",
        lambda model, data, rows, *a, **k: (scored.append(len(rows)), real(model, data, rows, *a, **k))[1],
    )
    fidelity = FAST.replace(epochs=2, max_train_samples=96, evals_per_epoch=3, interim_eval_fraction=0.25)
    plan = fidelity.plan(engine.task, "search")
    assert plan.interim is not None and len(plan.interim) == round(len(plan.evals[""]) * 0.25)
    assert set(plan.interim.indices) <= set(plan.evals[""].indices)
    assert FAST.plan(engine.task, "search").interim is None  # by default every evaluation scores the whole set
    result = engine.run_trial("pfeiffer", fidelity, seed=1)
    full, part = len(plan.evals[""]), len(plan.interim)
    assert scored == [part, part, full, part, part, full]  # the epochs' ends in full
    assert [h.get("interim", False) for h in result.history] == [True, True, False] * 2
    full_scores = [h["accuracy"] for h in result.history if not h.get("interim")]
    assert result.headline == max(full_scores)  # checkpoints never beat a full evaluation
    # stopped at a checkpoint before any full evaluation: its best checkpoint stands
    scored.clear()
    stopped = engine.run_trial("pfeiffer", fidelity, seed=1, on_epoch=lambda r: r.step == 4)
    assert stopped.stopped == "callback" and scored == [part, part]
    assert stopped.headline == max(h["accuracy"] for h in stopped.history)


def test_best_evaluation_is_reported(engine):
    result = engine.run_trial(ALL, FAST.replace(epochs=3, lr=3e-3), seed=2)
    scores = [h["accuracy"] for h in result.history]
    assert result.headline == max(scores) and result.best_epoch == scores.index(max(scores)) + 1


def test_final_mode_scores_on_dev(engine):
    result = engine.run_trial("lora", FAST.replace(max_eval_samples=None), seed=1, mode="final")
    assert result.ok and result.eval_examples == 277 and result.lr == 5e-4


def test_tokens_are_reused_across_trials(engine):
    engine.run_trial("lora", FAST, seed=1)
    misses = engine.tokens.misses
    engine.run_trial("pfeiffer", FAST.replace(max_train_samples=40), seed=2)
    assert engine.tokens.misses == misses


def test_bad_input_is_a_user_error(engine):
    with pytest.raises(UserError, match="unknown method 'adapterdrop'"):
        engine.run_trial("adapterdrop", FAST)
    with pytest.raises(ConfigError, match="layer 7 does not exist; the model has 4 layers"):
        engine.run_trial(PEFTConfig.shared([0, 7], serial=8), FAST)
    with pytest.raises(ConfigError, match="no PEFT module is on"):
        engine.run_trial(PEFTConfig(), FAST)
    with pytest.raises(UserError, match="unknown mode"):
        engine.run_trial("lora", FAST, mode="test")


def test_regression_task(glue_dir):
    stsb = load_glue("stsb", glue_dir)
    result = Engine("tiny-bert", stsb, progress=False).run_trial(ALL, FAST, seed=1)
    assert result.ok and result.metric_name == "pearson_spearman_mean"
    assert set(result.metrics) == {"pearson", "spearmanr", "mse", "pearson_spearman_mean"}
    assert result.head_params == param_count(ALL, _dims(), 1).head


def _dims():
    from autopeft import models

    return models.dims_of("tiny-bert")


def test_mnli_style_final_run_reports_the_mismatched_set():
    rng = np.random.default_rng(0)
    words = ["red", "blue", "green", "cat", "dog", "runs", "sleeps"]

    def split(name, n):
        texts = tuple(" ".join(rng.choice(words, 5)) for _ in range(n))
        return Split(name, texts, texts[::-1], tuple(int(x) for x in rng.integers(0, 3, n)))

    task = TaskData(
        "mnli", "accuracy", ("e", "n", "c"), split("train", 40), split("dev_matched", 12), {"mm": split("dev_mm", 9)}
    )
    result = Engine("tiny-roberta", task, progress=False).run_trial("lora", FAST, seed=1, mode="final")
    assert result.ok and set(result.metrics) == {"accuracy", "accuracy_mm"} and result.eval_examples == 12


def test_progress_bar_can_be_shown(rte, capsys):
    Engine("tiny-bert", rte, progress=True).run_trial("lora", FAST, seed=1)
    assert "rte lora" in capsys.readouterr().err
