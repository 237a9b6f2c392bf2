"""GLUE metrics agree with sklearn and scipy, and with the values Hugging Face's `glue` metric documents."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

from autopeft.tasks import metrics


def _random(seed: int, n: int = 200, classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    refs = rng.integers(0, classes, n)
    preds = np.where(rng.random(n) < 0.7, refs, rng.integers(0, classes, n))  # mostly right
    return preds, refs


@pytest.mark.parametrize("seed", range(5))
def test_matthews_and_accuracy_match_sklearn(seed):
    preds, refs = _random(seed)
    out = metrics.compute("matthews", preds, refs)
    assert out["matthews_correlation"] == pytest.approx(matthews_corrcoef(refs, preds), abs=1e-12)
    assert out["accuracy"] == pytest.approx(np.mean(preds == refs))


@pytest.mark.parametrize("seed", range(5))
def test_f1_accuracy_match_sklearn_with_class_1_positive(seed):
    preds, refs = _random(seed)
    out = metrics.compute("f1_accuracy", preds, refs)
    assert out["f1"] == pytest.approx(f1_score(refs, preds))
    assert out["accuracy"] == pytest.approx(np.mean(preds == refs))
    assert out["f1_accuracy_mean"] == pytest.approx((out["f1"] + out["accuracy"]) / 2)


@pytest.mark.parametrize("seed", range(5))
def test_pearson_spearman_match_scipy(seed):
    rng = np.random.default_rng(seed)
    refs = rng.uniform(0, 5, 300)
    preds = refs + rng.normal(0, 1.5, 300)
    out = metrics.compute("pearson_spearman", preds, refs)
    assert out["pearson"] == pytest.approx(pearsonr(preds, refs)[0])
    assert out["spearmanr"] == pytest.approx(spearmanr(preds, refs)[0])
    assert out["pearson_spearman_mean"] == pytest.approx((out["pearson"] + out["spearmanr"]) / 2)
    assert out["mse"] == pytest.approx(np.mean((preds - refs) ** 2))


def test_known_values():
    # the examples of Hugging Face's glue metric card
    assert metrics.compute("accuracy", [0, 1], [0, 1]) == {"accuracy": 1.0}
    assert metrics.compute("f1_accuracy", [0, 1], [0, 1]) == {"f1": 1.0, "accuracy": 1.0, "f1_accuracy_mean": 1.0}
    stsb = metrics.compute("pearson_spearman", [0.0, 1, 2, 3, 4, 5], [0.0, 1, 2, 3, 4, 5])
    assert stsb["pearson"] == pytest.approx(1.0) and stsb["spearmanr"] == pytest.approx(1.0)
    assert metrics.compute("matthews", [0, 1], [0, 1])["matthews_correlation"] == 1.0
    # hand-computed: TP=2, TN=1, FP=1, FN=0 -> MCC = (2*1 - 1*0) / sqrt(3*2*2*1) = 2 / sqrt(12)
    assert metrics.compute("matthews", [1, 1, 1, 0], [1, 1, 0, 0])["matthews_correlation"] == pytest.approx(
        2 / np.sqrt(12)
    )
    # F1 with precision 2/3 and recall 1 -> 0.8
    assert metrics.compute("f1_accuracy", [1, 1, 1, 0], [1, 1, 0, 0])["f1"] == pytest.approx(0.8)
    assert metrics.compute("accuracy", [2, 1, 0, 0], [2, 1, 0, 1])["accuracy"] == 0.75


def test_undefined_correlations_score_zero_not_nan():
    assert metrics.compute("matthews", [1, 1, 1], [0, 1, 1])["matthews_correlation"] == 0.0
    out = metrics.compute("pearson_spearman", [2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
    assert out["pearson"] == out["spearmanr"] == 0.0
    assert metrics.compute("f1_accuracy", [0, 0], [0, 0])["f1"] == 0.0


def test_headline_names():
    assert [metrics.headline_name(f) for f in metrics.FAMILIES] == [
        "matthews_correlation",
        "f1_accuracy_mean",
        "pearson_spearman_mean",
        "accuracy",
    ]


def test_bad_inputs():
    with pytest.raises(ValueError, match="empty"):
        metrics.compute("accuracy", [], [])
    with pytest.raises(ValueError, match="equal-length"):
        metrics.compute("accuracy", [1, 0], [1])
    with pytest.raises(ValueError, match="unknown metric family"):
        metrics.compute("bleu", [1], [1])
