"""GLUE metrics, computed as GLUE (and Hugging Face's `glue` metric) computes them.

One metric family per task, each with a headline number that a search maximises:

| family             | tasks                              | metrics                            | headline              |
|--------------------|------------------------------------|------------------------------------|-----------------------|
| `matthews`         | CoLA                               | matthews_correlation (+ accuracy)  | matthews_correlation  |
| `f1_accuracy`      | MRPC, QQP                          | f1 (positive class 1), accuracy    | f1_accuracy_mean      |
| `pearson_spearman` | STS-B, user regression             | pearson, spearmanr (+ mse)         | pearson_spearman_mean |
| `accuracy`         | SST-2, MNLI, QNLI, RTE, WNLI, user | accuracy (+ f1_macro, user data)   | accuracy              |

For the three tasks with two GLUE metrics the headline is their mean: that is the number GLUE's
leaderboard averages into its overall score, so a search maximises what GLUE ranks by, and both
metrics stay in every report. A correlation that is undefined (constant predictions, as an untrained
regressor can give) counts as 0, the value sklearn's Matthews correlation gives in that case, so a
search never sees NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

FAMILIES = ("matthews", "f1_accuracy", "pearson_spearman", "accuracy")

HEADLINES = {
    "matthews": "matthews_correlation",
    "f1_accuracy": "f1_accuracy_mean",
    "pearson_spearman": "pearson_spearman_mean",
    "accuracy": "accuracy",
}


def headline_name(family: str) -> str:
    return HEADLINES[family]


def is_constant(values: np.ndarray) -> bool:
    """Every value is the same class or number: predictions like these score a task's floor whatever it is,
    and the model behind them has not started to learn."""
    return bool(values.size) and bool(np.all(values == values[0]))


def _finite(value: float) -> float:
    return float(value) if math.isfinite(value) else 0.0


def compute(
    family: str, predictions: Sequence[float] | np.ndarray, references: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """All metrics of `family` plus its headline, as plain floats.

    predictions: class ids (classification) or scores (regression), `n`; references likewise.
    """
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import f1_score, matthews_corrcoef

    preds = np.asarray(predictions)
    refs = np.asarray(references)
    if preds.shape != refs.shape or preds.ndim != 1:
        raise ValueError(f"predictions {preds.shape} and references {refs.shape} must be equal-length vectors")
    if len(refs) == 0:
        raise ValueError("cannot score an empty evaluation set")
    out: dict[str, float] = {}
    if family == "pearson_spearman":
        preds = preds.astype(np.float64)
        refs = refs.astype(np.float64)
        constant = is_constant(preds) or is_constant(refs)  # scipy warns and returns NaN on these
        out["pearson"] = 0.0 if constant else _finite(pearsonr(preds, refs)[0])
        out["spearmanr"] = 0.0 if constant else _finite(spearmanr(preds, refs)[0])
        out["mse"] = float(np.mean((preds - refs) ** 2))
        out["pearson_spearman_mean"] = (out["pearson"] + out["spearmanr"]) / 2
        return out
    accuracy = float(np.mean(preds == refs))
    if family == "matthews":
        out["matthews_correlation"] = _finite(matthews_corrcoef(refs, preds))
        out["accuracy"] = accuracy
    elif family == "f1_accuracy":
        out["f1"] = float(f1_score(refs, preds, pos_label=1, average="binary", zero_division=0.0))
        out["accuracy"] = accuracy
        out["f1_accuracy_mean"] = (out["f1"] + accuracy) / 2
    elif family == "accuracy":
        out["accuracy"] = accuracy
    else:
        raise ValueError(f"unknown metric family {family!r}; known: {', '.join(FAMILIES)}")
    return out


def macro_f1(predictions: np.ndarray, references: np.ndarray) -> float:
    """Macro-averaged F1 over the classes present in either vector (reported for user tasks)."""
    from sklearn.metrics import f1_score

    return float(f1_score(references, predictions, average="macro", zero_division=0.0))
