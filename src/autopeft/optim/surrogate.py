"""Surrogate models of the task metric: SAAS GP by NUTS (the paper), MAP SAAS, or a plain GP.

Inputs are configurations encoded by `SearchSpace.to_vector` (already in the unit cube, so no
input transform); outputs are standardised by an outcome transform. The metric may first go
through a Gaussian copula (`Copula`), as the paper does, so that a few very bad runs (diverged
training) do not dominate the GP's length scales.

This layer knows nothing about acquisition functions or the search space.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

from autopeft.names import SURROGATES


@dataclass(frozen=True)
class NutsOptions:
    """NUTS settings for the `saas` surrogate.

    botorch's defaults (512 warm-up steps, 256 samples, thinning 16, tree depth 6) take minutes
    per fit on two CPU cores at 100 trials; these keep 16 hyperparameter samples, as SAASBO does,
    from a shorter chain with shallower trees. botorch's own fit compiles numpyro's functions afresh
    for every fit (new closures, and a new number of trials; a persistent compilation cache does not
    help with jaxlib 0.9 on CPU, jax-ml/jax#38445), so `optim.nuts` pads the data and compiles once
    per padded size.
    """

    warmup_steps: int = 128
    num_samples: int = 128
    thinning: int = 8  # keep every 8th sample: 16 GP hyperparameter samples
    max_tree_depth: int = 5  # at most 32 leapfrog steps per sample

    def __post_init__(self) -> None:
        for name in ("warmup_steps", "num_samples", "thinning", "max_tree_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"NutsOptions.{name} must be positive, got {getattr(self, name)}")
        if self.num_samples < self.thinning:
            raise ValueError(f"num_samples ({self.num_samples}) must be at least thinning ({self.thinning})")


class Copula:
    """Gaussian copula of observed values: y -> Phi^-1(F(y)), F the mid-rank empirical CDF.

    F(v) = (#{y_i < v} + #{y_i == v} / 2 + 1/2) / (n + 1), so observed values map to rank / (n + 1)
    (ties share their mean rank) and any other value, such as a reference point, maps monotonically
    in between or beyond them.
    """

    def __init__(self, observed: Tensor) -> None:
        """observed: an `n` tensor of metric values."""
        self.observed = observed.detach().reshape(-1)

    def __call__(self, values: Tensor) -> Tensor:
        """values: a tensor of any shape -> the same shape, in standard-normal quantiles."""
        import torch

        v = values.unsqueeze(-1)  # ... x 1, against n observed
        below = (self.observed < v).sum(-1).to(values.dtype)
        equal = (self.observed == v).sum(-1).to(values.dtype)
        n = self.observed.numel()
        u = (below + 0.5 * equal + 0.5) / (n + 1)
        return math.sqrt(2.0) * torch.special.erfinv(2.0 * u - 1.0)


def fit_surrogate(
    train_X: Tensor,
    train_Y: Tensor,
    kind: str = "saas",
    nuts: NutsOptions | None = None,
    seed: int = 0,
    map_ensemble: int = 1,
):
    """Fit one model per output column; several outputs are combined in a `ModelListGP`.

    Args:
        train_X: an `n x d` tensor of encoded configurations in [0, 1].
        train_Y: an `n x m` tensor of outcomes (to be maximised; standardised inside the model).
        kind: one of `SURROGATES`.
        nuts: NUTS settings for `saas`.
        seed: seeds NUTS (JAX) and, through the caller's torch seed, the MAP fits' restarts.
        map_ensemble: for `saas-map`, the number of MAP fits in a batch, each at its own global
            shrinkage tau drawn from the SAAS prior's HalfCauchy(0.1) (botorch's
            `EnsembleMapSaasSingleTaskGP`); their posteriors are averaged as NUTS samples are. One
            MAP fit of few points in many dimensions tends to the flat, all-noise mode.

    Returns:
        A fitted botorch model with `m` outputs.
    """
    from botorch.models import ModelListGP

    if kind not in SURROGATES:
        raise ValueError(f"unknown surrogate {kind!r}; known: {', '.join(SURROGATES)}")
    if train_X.dim() != 2 or train_Y.dim() != 2 or train_X.shape[0] != train_Y.shape[0]:
        shapes = f"{tuple(train_X.shape)}, {tuple(train_Y.shape)}"
        raise ValueError(f"expected n x d inputs and n x m outcomes, got {shapes}")
    nuts = nuts or NutsOptions()
    models = [_fit_one(train_X, train_Y[:, i : i + 1], kind, nuts, seed, map_ensemble) for i in range(train_Y.shape[1])]
    return models[0] if len(models) == 1 else ModelListGP(*models)


def _fit_one(train_X: Tensor, train_y: Tensor, kind: str, nuts: NutsOptions, seed: int, map_ensemble: int = 1):
    """train_X: `n x d`; train_y: `n x 1`."""
    from botorch.fit import fit_gpytorch_mll, get_fitted_map_saas_model
    from botorch.models import SingleTaskGP
    from botorch.models.fully_bayesian import SaasFullyBayesianSingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    with warnings.catch_warnings():
        # Jitter added to near-singular kernels is expected with duplicate configurations.
        warnings.filterwarnings("ignore", message=".*not p.d., added jitter.*")
        if kind == "saas":
            from autopeft.optim.nuts import fit_saas_nuts

            model = SaasFullyBayesianSingleTaskGP(train_X, train_y, outcome_transform=Standardize(m=1))
            fit_saas_nuts(model, nuts, seed)  # botorch's NUTS fit, compiled once per padded size
        elif kind == "saas-map" and map_ensemble > 1:
            from botorch.models.map_saas import EnsembleMapSaasSingleTaskGP

            model = EnsembleMapSaasSingleTaskGP(train_X, train_y, num_taus=map_ensemble)  # standardised inside
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        elif kind == "saas-map":
            model = get_fitted_map_saas_model(train_X, train_y, outcome_transform=Standardize(m=1))
        else:
            model = SingleTaskGP(train_X, train_y, outcome_transform=Standardize(m=1))
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    return model
