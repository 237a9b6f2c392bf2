"""The padded NUTS fit of the SAAS GP: same posterior density as botorch's model, one compile per padded size."""

from __future__ import annotations

import math

import pytest
import torch

from autopeft.optim import nuts as padded
from autopeft.optim.surrogate import NutsOptions, fit_surrogate


def test_padded_rows_round_up_to_the_block():
    assert [padded.padded_rows(n) for n in (1, 15, 16, 17, 100)] == [16, 16, 16, 32, 112]


def test_padding_adds_only_a_constant_to_the_log_density():
    import jax.numpy as jnp
    from botorch.models.fully_bayesian import SaasPyroModel
    from numpyro.infer.util import log_density

    torch.manual_seed(0)
    n, d = 7, 3
    X, y = torch.rand(n, d, dtype=torch.float64), torch.randn(n, 1, dtype=torch.float64)
    reference = SaasPyroModel()
    reference.set_inputs(X, y)
    rows = padded.padded_rows(n)
    X_pad = jnp.zeros((rows, d)).at[:n].set(reference.train_X_jax)
    y_pad = jnp.zeros(rows).at[:n].set(reference.train_Y_jax[:, 0])
    mask = (jnp.arange(rows) < n).astype(X_pad.dtype)
    gaps = []
    for scale in (0.5, 2.0):
        params = {
            "outputscale": jnp.array(1.3 * scale),
            "mean": jnp.array(0.2 * scale),
            "noise": jnp.array(0.05 * scale),
            "kernel_tausq": jnp.array(0.3 * scale),
            "_kernel_inv_length_sq": jnp.array([0.5, 2.0, 1.0]) * scale,
        }
        ours, _ = log_density(padded._saas_model, (X_pad, y_pad, mask), {}, params)
        theirs, _ = log_density(reference.sample, (), {}, params)
        gaps.append(float(ours - theirs))
    # each padded row is an independent standard normal observed at 0
    assert gaps == pytest.approx([-(rows - n) * 0.5 * math.log(2 * math.pi)] * 2, abs=1e-3)


def test_fits_in_one_padded_size_share_one_compiled_sampler():
    torch.manual_seed(0)
    options = NutsOptions(warmup_steps=8, num_samples=8, thinning=4, max_tree_depth=2)
    before = len(padded._samplers)
    for n in (9, 12):
        X = torch.rand(n, 2, dtype=torch.float64)
        y = (X[:, :1] - 0.5) * 4
        model = fit_surrogate(X, y, "saas", options, seed=0)
        mean = model.posterior(X).mixture_mean.detach()
        assert torch.corrcoef(torch.stack([mean[:, 0], y[:, 0]]))[0, 1] > 0.9  # it learnt the data
        assert model.median_lengthscale.shape[-1] == 2
    assert len(padded._samplers) == before + 1
