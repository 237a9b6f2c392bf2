"""qLogNEHVI over (metric, parameter score), with the parameter objective computed exactly.

The surrogate models only the metric. The parameter objective is a deterministic function of the
configuration, so it enters as an MC objective that stacks each posterior sample of the metric
with the exact score of the same X (`params_objective`). A `ModelList` of the GP and a
`GenericDeterministicModel` would say the same, but qLogNEHVI cannot draw base samples from such a
list; the objective route needs no second model.

Both objectives are maximised: the metric (after the sampler's sign and copula) and
`Budget.score(params)`, the normalised log-parameters (1 = smallest configuration, 0 = largest
allowed).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor

from autopeft.optim.budget import Budget

FUSED_KERNEL = "logei_fused_ext"  # botorch's C++ kernel for qLogNEHVI, built by torch's JIT on first use
STALE_BUILD_LOCK_SECONDS = 600.0  # building it takes seconds; a lock this old was left by a killed process
DEFAULT_MC_SAMPLES = 128  # posterior samples in all (botorch's default); NUTS samples share them
METRIC_MARGIN = 0.0  # of the observed metric range, below the worst observed metric
SCORE_MARGIN = 0.1  # below the parameter score of the largest allowed configuration (0)


class ExactParams:
    """Exact PEFT parameters of encoded configurations, vectorised: `... x d` -> `...`.

    X holds `SearchSpace.to_vector` encodings, read through the space's `Layout` (sizes by rank,
    layer bits). The count is sum over modules of (per-layer parameters of its size) x (its number
    of layers); the per-layer table is `Budget.per_layer`, so this equals `peft_params` exactly.
    """

    def __init__(self, budget: Budget) -> None:
        layout = budget.space.layout
        self.modules = []  # per module: (size coordinate, its layer-bit coordinates, size index -> count)
        for m in layout.modules:
            j = layout.size(m)
            table = [float(budget.per_layer[m][s]) for s in layout.dimensions[j].choices]
            self.modules.append((j, list(layout.mask(m).coords), torch.tensor(table, dtype=torch.float64)))

    def __call__(self, X: Tensor) -> Tensor:
        counts = []
        for j, bits, table in self.modules:
            levels = len(table) - 1
            index = (X[..., j] * levels).round().clamp(0, levels).long()  # ...
            per_layer = table.to(X.device)[index]  # ...
            layers = X[..., bits].round().sum(-1)  # ...: shared by all modules in the paper space
            counts.append(per_layer.to(X.dtype) * layers)
        return torch.stack(counts, -1).sum(-1)


class ParamsScore:
    """`Budget.score` of the exact parameters of encoded configurations: `... x d` -> `...`."""

    def __init__(self, budget: Budget) -> None:
        self.params = ExactParams(budget)
        self.log_high = torch.tensor(float(budget.largest), dtype=torch.float64).log()
        self.span = max(float(self.log_high - torch.tensor(float(budget.smallest)).log()), 1e-12)

    def __call__(self, X: Tensor) -> Tensor:
        return (self.log_high.to(X) - self.params(X).clamp_min(1.0).log()) / self.span


def params_objective(score: ParamsScore, ensemble: bool):
    """An MC objective: metric samples -> (metric, exact parameter score) samples.

    samples: `sample_shape x batch_shape x [mcmc] x q x 1`; X: `batch_shape x q x d`; the output
    is `sample_shape x batch_shape x [mcmc] x q x 2`. A fully Bayesian (`ensemble`) model puts its
    hyperparameter-sample dimension just before q, which X lacks.
    """
    from botorch.acquisition.multi_objective.objective import GenericMCMultiOutputObjective

    def stack(samples: Tensor, X: Tensor | None = None) -> Tensor:
        if X is None:
            raise ValueError("the parameter objective needs X")
        s = score(X)  # batch_shape x q
        if ensemble:
            s = s.unsqueeze(-2)  # batch_shape x 1 x q
        metric = samples[..., 0]
        return torch.stack([metric, s.to(metric).expand_as(metric)], -1)

    return GenericMCMultiOutputObjective(stack)


def default_ref_point(metric: Tensor) -> list[float]:
    """The default reference point: (worst observed metric, just beyond the largest allowed configuration).

    metric: an `n` tensor of the observed (transformed) metric. A configuration no better than the
    worst observed adds nothing, however small: a margin below the worst would reward the tiny
    configurations that do not learn at all, for their size alone. The parameter score of the
    largest allowed configuration is 0; the reference lies `SCORE_MARGIN` beyond it, so that the
    best-scoring large configuration still counts.
    """
    low, high = float(metric.min()), float(metric.max())
    return [low - METRIC_MARGIN * max(high - low, 1e-6), -SCORE_MARGIN]


def build_acquisition(
    model,
    X_baseline: Tensor,
    *,
    ref_point: Sequence[float] | None,
    objective=None,
    X_pending: Tensor | None = None,
    mc_samples: int = DEFAULT_MC_SAMPLES,
    seed: int = 0,
):
    """qLogNEHVI (two objectives) or, when `ref_point` is None, qLogNEI on the metric alone.

    Args:
        model: the fitted surrogate (metric only, or metric and score when the score is modelled).
        X_baseline: an `n x d` tensor of the evaluated configurations.
        ref_point: the two-objective reference point in the objectives' units (transformed metric,
            score), or None for a single-objective study.
        objective: `params_objective(...)` when the model has the metric only; None when it models both.
        X_pending: an `p x d` tensor of configurations being evaluated (other workers, batch members).
        mc_samples: QMC samples of the posterior in all: a fully Bayesian model with k hyperparameter
            samples draws mc_samples / k from each (the cost of one evaluation grows with the total).
        seed: seeds the QMC base samples.
    """
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
    from botorch.sampling import SobolQMCNormalSampler

    _clear_stale_build_lock_once()
    per_model = max(1, mc_samples // _hyperparameter_samples(model))
    sampler = SobolQMCNormalSampler(sample_shape=torch.Size([per_model]), seed=seed)
    if X_pending is not None and X_pending.shape[0] == 0:
        X_pending = None
    if ref_point is None:
        return qLogNoisyExpectedImprovement(
            model, X_baseline, sampler=sampler, X_pending=X_pending, prune_baseline=True
        )
    return qLogNoisyExpectedHypervolumeImprovement(
        model,
        ref_point=list(ref_point),
        X_baseline=X_baseline,
        sampler=sampler,
        objective=objective,
        X_pending=X_pending,
        prune_baseline=True,
    )


def _hyperparameter_samples(model) -> int:
    """NUTS samples of a fully Bayesian model (or of the first of a model list); 1 for a point estimate."""
    from botorch.utils.transforms import is_ensemble

    first = model.models[0] if hasattr(model, "models") else model
    if not is_ensemble(first):
        return 1
    return getattr(first, "num_mcmc_samples", None) or first.batch_shape[0]


@functools.cache
def _clear_stale_build_lock_once() -> None:
    """botorch loads its fused kernel once per process (the first qLogNEHVI): clear a stale lock before that only."""
    clear_stale_build_lock()


def clear_stale_build_lock(max_age: float = STALE_BUILD_LOCK_SECONDS) -> bool:
    """Remove the build lock of botorch's fused kernel when it is older than `max_age` seconds; whether one was.

    Every process's first qLogNEHVI takes torch's file lock for that kernel's JIT build (a no-op once
    built), and torch waits, without end, while the file exists. A worker killed inside that moment
    (`kill -9` is a supported way to stop a search) would leave the file behind and hang every later
    suggestion on the machine."""
    import os
    import sys
    import time

    try:
        from torch.utils.cpp_extension import _get_build_directory

        lock = os.path.join(_get_build_directory(FUSED_KERNEL, verbose=False), "lock")
        if time.time() - os.path.getmtime(lock) <= max_age:
            return False
        os.remove(lock)
    except (ImportError, OSError):  # no such lock (the usual case), or torch without this helper
        return False
    print(f"removed a stale build lock of {FUSED_KERNEL} ({lock}), left by a killed process", file=sys.stderr)
    return True
