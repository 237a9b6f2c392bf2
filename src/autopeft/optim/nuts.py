"""NUTS for the SAAS GP, compiled once per process for each padded number of trials.

botorch's `fit_fully_bayesian_model_nuts` builds a new NumPyro model closure around each fit's data,
so JAX traces and compiles the sampler afresh for every suggestion: about half of a fit's time. Here
the model takes the data as arguments, padded to a multiple of `PAD_TO` rows, and one `MCMC` object
per (padded size, dimensions, settings) is kept with `jit_model_args=True`, so a search compiles
once per `PAD_TO` trials and later fits only run.

Padding leaves the posterior unchanged: a padded row has a zero target and zero mean, no covariance
with any other row and unit variance, so it adds the same constant to the log density whatever
the hyperparameters. The priors are botorch's own: the model calls `SaasPyroModel`'s samplers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botorch.models.fully_bayesian import SaasFullyBayesianSingleTaskGP

    from autopeft.optim.surrogate import NutsOptions

PAD_TO = 16  # rows: a 100-trial search compiles 7 times instead of 100

_samplers: dict[tuple, Any] = {}  # (padded rows, dims, settings) -> numpyro MCMC, compiled on first run


def padded_rows(n: int) -> int:
    """The number of rows `n` observations are padded to (at least `PAD_TO`)."""
    return max(PAD_TO, PAD_TO * math.ceil(n / PAD_TO))


def _saas_model(X, y, mask) -> None:
    """SaasPyroModel's generative model with a masked likelihood: `X` (N x d), `y` and `mask` (N)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from botorch.models.fully_bayesian import SaasPyroModel, matern52_kernel

    priors = SaasPyroModel()
    priors.train_Yvar_jax = None  # the noise is inferred
    outputscale = priors.sample_outputscale(
        concentration=priors._outputscale_prior_concentration, rate=priors._outputscale_prior_rate
    )
    mean = priors.sample_mean()
    noise = priors.sample_noise()
    lengthscale = priors.sample_lengthscale(dim=X.shape[-1])
    K = outputscale * matern52_kernel(X=X, lengthscale=lengthscale) + noise * jnp.eye(X.shape[0])
    both = mask[:, None] * mask[None, :]
    K = both * K + jnp.diag(1.0 - mask)  # padded rows: independent, unit variance
    numpyro.sample("Y", dist.MultivariateNormal(loc=mean * mask, covariance_matrix=K), obs=y * mask)


def _sampler(rows: int, dims: int, nuts: NutsOptions, dtype: str) -> Any:
    from numpyro.infer import MCMC, NUTS

    key = (rows, dims, nuts, dtype)
    if key not in _samplers:
        kernel = NUTS(_saas_model, dense_mass=True, max_tree_depth=nuts.max_tree_depth)
        _samplers[key] = MCMC(
            kernel,
            num_warmup=nuts.warmup_steps,
            num_samples=nuts.num_samples,
            progress_bar=False,
            jit_model_args=True,
        )
    return _samplers[key]


def fit_saas_nuts(model: SaasFullyBayesianSingleTaskGP, nuts: NutsOptions, seed: int) -> None:
    """Fit `model` (a `SaasFullyBayesianSingleTaskGP` with its data set) by NUTS, as
    `fit_fully_bayesian_model_nuts` does, on data padded to `padded_rows(n)` rows."""
    import jax
    import jax.numpy as jnp

    model.train()
    pyro = model.pyro_model
    X, y = pyro.train_X_jax, jnp.squeeze(pyro.train_Y_jax, axis=-1)  # already transformed (standardised)
    n, d = X.shape
    rows = padded_rows(n)
    X_pad = jnp.zeros((rows, d), dtype=X.dtype).at[:n].set(X)
    y_pad = jnp.zeros(rows, dtype=y.dtype).at[:n].set(y)
    mask = (jnp.arange(rows) < n).astype(X.dtype)
    mcmc = _sampler(rows, d, nuts, str(X.dtype))
    mcmc.run(jax.random.PRNGKey(seed), X_pad, y_pad, mask)
    samples = pyro.postprocess_mcmc_samples(mcmc_samples=dict(mcmc.get_samples()))
    model.load_mcmc_samples({k: v[:: nuts.thinning] for k, v in samples.items()})
    model.eval()
