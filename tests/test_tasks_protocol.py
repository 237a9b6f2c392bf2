"""The AutoPEFT protocol: search scores on a seeded, stratified slice of train; final runs use dev."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from autopeft.errors import UserError
from autopeft.tasks import Split, TaskData, load_glue, stratified_sample


@pytest.fixture(scope="module")
def rte(glue_dir):
    return load_glue("rte", glue_dir)


def _share(labels, rows):
    counts = Counter(labels[i] for i in rows)
    return counts[0] / len(rows)


def test_search_holds_out_a_stratified_slice_of_train(rte):
    plan = rte.plan("search", heldout_fraction=0.1, split_seed=0)
    held, pool = plan.evals[""].indices, plan.train.indices
    assert plan.evals[""].split == "train" and plan.train.split == "train"  # dev untouched
    assert len(held) == 249 and len(pool) == 2490 - 249
    assert not set(held) & set(pool)
    assert _share(rte.train.labels, held) == pytest.approx(1249 / 2490, abs=0.005)


def test_split_is_seeded(rte):
    a = rte.plan("search", split_seed=0).evals[""].indices
    assert np.array_equal(a, rte.plan("search", split_seed=0).evals[""].indices)
    assert not np.array_equal(a, rte.plan("search", split_seed=1).evals[""].indices)


def test_fidelity_knobs_do_not_move_the_held_out_slice(rte):
    base = rte.plan("search")
    small = rte.plan("search", max_train_samples=200, max_eval_samples=100)
    assert np.array_equal(base.evals[""].indices, rte.plan("search", max_train_samples=200).evals[""].indices)
    assert len(small.train) == 200 and len(small.evals[""]) == 100
    assert set(small.evals[""].indices) <= set(base.evals[""].indices)
    assert set(small.train.indices) <= set(base.train.indices)
    # a smaller training subset is part of a larger one; the eval subset ignores the training size
    larger = rte.plan("search", max_train_samples=400, max_eval_samples=100)
    assert len(set(small.train.indices) & set(larger.train.indices)) >= 198
    assert np.array_equal(small.evals[""].indices, larger.evals[""].indices)
    assert _share(rte.train.labels, small.train.indices) == pytest.approx(1249 / 2490, abs=0.01)


def test_train_fraction(rte):
    plan = rte.plan("search", train_fraction=0.5)
    assert len(plan.train) == round((2490 - 249) * 0.5)


def test_final_trains_on_train_and_scores_on_dev(rte):
    plan = rte.plan("final")
    assert len(plan.train) == 2490 and plan.evals[""].split == "dev" and len(plan.evals[""]) == 277
    capped = rte.plan("final", max_eval_samples=100)
    assert len(capped.evals[""]) == 100
    assert _share(rte.dev.labels, capped.evals[""].indices) == pytest.approx(146 / 277, abs=0.01)


def test_final_needs_dev_and_modes_are_checked():
    split = Split("train", ("a", "b"), None, (0, 1))
    task = TaskData("t", "accuracy", ("x", "y"), split)
    with pytest.raises(UserError, match="no dev set"):
        task.plan("final")
    with pytest.raises(UserError, match="unknown mode"):
        task.plan("tune")


def test_mnli_style_extra_evaluation_in_final_only():
    split = Split("train", tuple("abcdefghij"), None, (0, 1, 2) * 3 + (0,))
    dev = Split("dev_matched", ("a", "b"), None, (0, 1))
    mm = Split("dev_mismatched", ("c", "d", "e"), None, (2, 1, 0))
    task = TaskData("mnli", "accuracy", ("e", "n", "c"), split, dev, {"mm": mm})
    assert set(task.plan("final").evals) == {"", "mm"} and len(task.plan("final").evals["mm"]) == 3
    assert set(task.plan("search").evals) == {""}


def test_regression_is_stratified_by_deciles(glue_dir):
    stsb = load_glue("stsb", glue_dir)
    held = stsb.plan("search").evals[""].indices
    labels = np.asarray(stsb.train.labels)
    assert abs(np.median(labels[held]) - np.median(labels)) < 0.2


def test_stratified_sample_rounding_and_edges():
    strata = np.array([0] * 7 + [1] * 3)
    rng = np.random.default_rng(0)
    rows = np.arange(10)
    picked = stratified_sample(strata, rows, 5, rng)
    assert Counter(strata[picked]) == {0: 4, 1: 1}  # both remainders are .5: the larger stratum gets it
    assert len(stratified_sample(strata, rows, 3, rng)) == 3
    assert np.array_equal(stratified_sample(strata, rows, 99, rng), rows)
    assert len(stratified_sample(strata, rows, 0, rng)) == 0


def test_tiny_training_set_can_leave_nothing_to_train_on():
    task = TaskData("t", "accuracy", ("x", "y"), Split("train", ("a",), None, (0,)))
    plan = task.plan("search")
    assert len(plan.evals[""]) == 1 and len(plan.train) == 0  # the engine fails such a trial


def test_constant_prediction_scores_the_majority_class_and_a_constant_regressor():
    train = Split("train", tuple("abcde"), None, (1, 1, 1, 0, 0))
    dev = Split("dev", tuple("wxyz"), None, (1, 0, 0, 0))
    scores = TaskData("t", "f1_accuracy", ("no", "yes"), train, dev).constant_prediction_scores()
    assert scores["accuracy"] == pytest.approx(0.25)  # predicts 1, the training majority, not dev's
    assert scores["f1"] == pytest.approx(0.4)
    regression = TaskData(
        "r",
        "pearson_spearman",
        None,
        Split("train", ("a", "b"), None, (1.0, 3.0)),
        Split("dev", ("c", "d"), None, (0.5, 4.0)),
    )
    scores = regression.constant_prediction_scores()
    assert scores["pearson_spearman_mean"] == 0.0 and scores["mse"] == pytest.approx((1.5**2 + 2.0**2) / 2)
    with pytest.raises(ValueError, match="no dev split"):
        TaskData("t", "accuracy", ("a", "b"), train).constant_prediction_scores()


def test_constant_prediction_on_a_search_plan_uses_its_training_subset_and_held_out_slice(rte):
    plan = rte.plan("search", heldout_fraction=0.1, max_train_samples=1000, max_eval_samples=200)
    train = np.asarray(rte.train.labels)[plan.train.indices]
    held = np.asarray(rte.train.labels)[plan.evals[""].indices]
    majority = Counter(train.tolist()).most_common(1)[0][0]
    score = rte.constant_prediction_scores(plan)["accuracy"]
    assert len(held) == 200 and score == pytest.approx(float(np.mean(held == majority)))
    assert score != rte.constant_prediction_scores()["accuracy"]  # not dev's 0.527
