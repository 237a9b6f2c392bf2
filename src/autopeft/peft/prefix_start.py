"""Prefixes that start quiet: a long prefix begins with the attention share of a short one.

adapters starts every prefix position's key as a small random vector, so each query gives it a logit
near 0, and L positions take about L / (L + sum of exp(real logits)) of each query's attention. On
MiniLM with STS-B pairs of about 25 tokens, a prefix of 192 (h/2) takes about half: the mean-pooled
last hidden state keeps a cosine of only 0.71 to the backbone's at initialisation, and two seeds of
three stalled near 0.46 correlation within the search budget (0.73 for the third).

The queries of a pretrained model share a strong mean direction per head (MiniLM on STS-B: every
query projects positively on its head's mean direction, 3.5 to 5.2 on average, spread about 1). A
key offset against that direction lowers the logit of every prefix position by ln(L / L0) for the
average query, so L positions start with the attention mass of L0 neutral ones (L0 is
`autopeft.modules.QUIET_PREFIX_POSITIONS`; a cosine of 0.95 for 192 with L0 = 24) and stay free to
learn. Prefixes of at most L0 positions start as adapters makes them. The offset is a bias of the
reparameterisation MLP's last layer (or of the flat prefix), so the trained prefixes eject and
export as any others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from adapters.methods.prefix_tuning import FlatPrefixTuning, PrefixTuning, PrefixTuningLayer

from autopeft.errors import UserError
from autopeft.modules import QUIET_PREFIX_POSITIONS

# Attributes that hold the query projection of a self-attention, by architecture family.
_QUERY_NAMES = ("query", "q_proj", "q_lin")
# A head whose queries' projections on their mean direction spread more than this times their mean
# has no shared direction to push against (an offset would raise some queries' logits as it lowers
# others'): its prefix keys keep adapters' start. MiniLM's heads spread at most 0.6 times their mean.
MAX_SPREAD = 1.0


@dataclass(frozen=True)
class QueryMeans:
    """Per prefix-tuning site (a self-attention, in model order): each head's unit mean query direction
    (heads x head_dim), the queries' mean projection on it and the projections' standard deviation (heads)."""

    directions: tuple[torch.Tensor, ...]
    projections: tuple[torch.Tensor, ...]
    spreads: tuple[torch.Tensor, ...]


def _sites(model: Any) -> list[tuple[str, PrefixTuningLayer]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, PrefixTuningLayer)]


def _query_projection(model: Any, site_name: str) -> torch.nn.Module:
    attention = model.get_submodule(site_name.rsplit(".", 1)[0])
    for attr in _QUERY_NAMES:
        if isinstance(getattr(attention, attr, None), torch.nn.Module):
            return getattr(attention, attr)
    raise UserError(
        f"cannot start prefixes quiet: no query projection ({', '.join(_QUERY_NAMES)}) beside {site_name}; "
        "train with the fidelity knob prefix_start=random"
    )


@torch.no_grad()
def measure_queries(model: Any, batch: dict[str, torch.Tensor]) -> QueryMeans:
    """The queries' mean directions at every prefix site, from one forward pass of `batch` through the
    model with no adapter active (the backbone's own queries; padding left out)."""
    heads = model.config.num_attention_heads
    sites = _sites(model)
    captured: dict[int, torch.Tensor] = {}
    hooks = [
        _query_projection(model, name).register_forward_hook(
            lambda _m, _i, out, k=k: captured.__setitem__(k, out.detach().float())
        )
        for k, (name, _) in enumerate(sites)
    ]
    active, was_training = model.active_adapters, model.training
    try:
        model.set_active_adapters(None)
        model.eval()
        model.base_model(**batch)
    finally:
        for hook in hooks:
            hook.remove()
        model.set_active_adapters(active)
        model.train(was_training)
    keep = batch["attention_mask"].bool()
    directions, projections, spreads = [], [], []
    for k in range(len(sites)):
        queries = captured[k][keep].view(-1, heads, captured[k].shape[-1] // heads)
        mean = queries.mean(0)
        unit = mean / mean.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        along = (queries * unit).sum(-1)  # tokens x heads
        directions.append(unit)
        projections.append(along.mean(0))
        spreads.append(along.std(0) if len(along) > 1 else torch.zeros(heads))
    return QueryMeans(tuple(directions), tuple(projections), tuple(spreads))


def key_offset(
    means: QueryMeans, site: int, length: int, quiet_positions: int = QUIET_PREFIX_POSITIONS
) -> torch.Tensor:
    """The offset (heads x head_dim) added to every prefix key at `site` for a prefix of `length`."""
    direction, projection = means.directions[site], means.projections[site]
    if length <= quiet_positions:
        return torch.zeros_like(direction)
    scale = math.sqrt(direction.shape[-1])
    usable = (projection > 0) & (means.spreads[site] <= MAX_SPREAD * projection)
    step = torch.where(usable, math.log(length / quiet_positions) * scale / projection.clamp_min(1e-12), 0.0)
    return -step.unsqueeze(-1) * direction


def _prefix_modules(model: Any, adapter_names: list[str]) -> list[tuple[int, int, Any]]:
    """(site, index of the site's layer in the module, prefix-tuning module) of each prefix of `adapter_names`."""
    return [
        (k, index, site.pool.prefix_tunings[name][site.location_key])
        for k, (_, site) in enumerate(_sites(model))
        for name, index in site.prefixes.items()
        if name in adapter_names
    ]


def has_long_prefix(model: Any, adapter_names: list[str], quiet_positions: int = QUIET_PREFIX_POSITIONS) -> bool:
    """Whether any prefix of `adapter_names` is longer than `quiet_positions` (so starting quiet changes it)."""
    return any(m.config.prefix_length > quiet_positions for _, _, m in _prefix_modules(model, adapter_names))


@torch.no_grad()
def quiet_prefixes(
    model: Any, adapter_names: list[str], means: QueryMeans, quiet_positions: int = QUIET_PREFIX_POSITIONS
) -> int:
    """Offset the keys of the prefixes of `adapter_names` (see the module docstring); the number of
    prefix sites changed."""
    changed = 0
    for k, index, module in _prefix_modules(model, adapter_names):
        offset = key_offset(means, k, module.config.prefix_length, quiet_positions).reshape(-1)
        if not offset.any():
            continue
        width = offset.numel()
        if isinstance(module, PrefixTuning):  # keys of the module's layer `index`: slice 2 * index of the output
            bias = module.control_trans[-1].bias
            bias[2 * index * width : (2 * index + 1) * width] += offset.to(bias)
        elif isinstance(module, FlatPrefixTuning):
            flat = module.control_trans.view(module.config.prefix_length, module.n_layers * 2, width)
            flat[:, 2 * index] += offset.to(flat)
        else:
            raise TypeError(f"unknown prefix-tuning module {type(module).__name__}")
        changed += 1
    return changed
