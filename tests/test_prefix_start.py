"""Long prefixes start quiet (`prefix_start=quiet`): keys offset against each head's mean query direction."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
import torch
from adapters.methods.prefix_tuning import PrefixTuning

from autopeft.engine import Engine, Fidelity
from autopeft.engine.fidelity import FidelityError
from autopeft.modules import QUIET_PREFIX_POSITIONS
from autopeft.peft import prefix_start
from autopeft.peft.build import attach_config, detach
from autopeft.peft.prefix_start import has_long_prefix, measure_queries, quiet_prefixes
from autopeft.space import PEFTConfig
from autopeft.tasks import load_task


def test_the_knob_parses_checks_and_reads_old_records_as_random():
    assert Fidelity().prefix_start == "quiet"
    assert Fidelity.parse("prefix_start=random").prefix_start == "random"
    with pytest.raises(FidelityError, match="prefix_start must be one of quiet, random"):
        Fidelity.parse("prefix_start=zero")
    stored = Fidelity().to_dict()
    del stored["prefix_start"]  # a study written before the knob: its prefixes started at random
    assert Fidelity.from_dict(stored).prefix_start == "random"


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    ids = torch.randint(5, 100, (6, 14), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones_like(ids)
    mask[3:, 10:] = 0  # padding is left out of the means
    return {"input_ids": ids, "attention_mask": mask}


def _keys(model) -> list[torch.Tensor]:
    """Each layer's prefix keys (heads x length x head_dim) as the reparameterisation MLP gives them now."""
    module = next(m for m in model.modules() if isinstance(m, PrefixTuning))
    with torch.no_grad():
        return [kv[0][0] for kv in module(1)]


@contextlib.contextmanager
def shared_query_direction(model, heads_with: int):
    """Give the first `heads_with` heads of every layer a strong common query direction (a pretrained
    model's heads have one; a tiny random model's do not), as a query bias; restored afterwards."""
    saved = {}
    for name, module in model.named_modules():
        if name.endswith("attention.self.query"):
            saved[name] = module.bias.detach().clone()
            width = module.bias.numel() // model.config.num_attention_heads
            with torch.no_grad():
                module.bias[: heads_with * width] += 3.0
    try:
        yield
    finally:
        with torch.no_grad():
            for name, bias in saved.items():
                model.get_submodule(name).bias.copy_(bias)


def test_a_long_prefix_starts_with_the_logits_of_a_quiet_one(tiny):
    model = tiny.model
    with shared_query_direction(model, heads_with=2):
        means = measure_queries(model, _batch())
    length = 4 * QUIET_PREFIX_POSITIONS
    handle = attach_config(model, PEFTConfig.shared(range(tiny.dims.num_layers), prefix=length), tiny.dims, 1)
    try:
        assert has_long_prefix(model, handle.adapter_names)
        before = _keys(model)
        assert quiet_prefixes(model, handle.adapter_names, means) == tiny.dims.num_layers
        after = _keys(model)
    finally:
        detach(model, handle)
    heads = model.config.num_attention_heads
    usable = 0
    for layer, (old, new) in enumerate(zip(before, after, strict=True)):
        shift = new - old  # the same offset on every position
        assert torch.allclose(shift, shift[:, :1].expand_as(shift), atol=1e-5)
        direction, projection = means.directions[layer], means.projections[layer]
        scale = math.sqrt(direction.shape[-1])
        # the average query's logit for every prefix position drops by ln(length / quiet) where the
        # head's queries share a direction, and not at all where they do not
        drop = -(shift[:, 0] * direction).sum(-1) * projection / scale
        for h in range(heads):
            if means.spreads[layer][h] <= prefix_start.MAX_SPREAD * projection[h]:
                usable += 1
                assert float(drop[h]) == pytest.approx(math.log(4), rel=1e-4)
                # the offset lies along the head's direction, against it
                assert torch.allclose(shift[h, 0] / shift[h, 0].norm(), -direction[h], atol=1e-5)
            else:
                assert float(shift[h].abs().max()) == 0
    assert usable >= 2 * tiny.dims.num_layers  # at least the heads given a shared direction


def test_heads_without_a_shared_direction_keep_their_start():
    direction = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    means = prefix_start.QueryMeans(
        directions=(direction,),
        projections=(torch.tensor([2.0, 2.0, -1.0]),),
        spreads=(torch.tensor([0.5, 2.5, 0.5]),),  # head 1 spreads wider than its mean; head 2 points away
    )
    offset = prefix_start.key_offset(means, 0, length=8 * QUIET_PREFIX_POSITIONS)
    step = math.log(8) * math.sqrt(8) / 2.0
    assert torch.allclose(offset[0], -step * direction[0])
    assert not offset[1:].any()
    assert not prefix_start.key_offset(means, 0, length=QUIET_PREFIX_POSITIONS).any()


def test_short_prefixes_and_other_adapters_are_left_as_they_start(tiny):
    model = tiny.model
    means = measure_queries(model, _batch())
    handle = attach_config(model, PEFTConfig.shared([0, 1], prefix=QUIET_PREFIX_POSITIONS, serial=4), tiny.dims, 1)
    try:
        assert not has_long_prefix(model, handle.adapter_names)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        assert quiet_prefixes(model, handle.adapter_names, means) == 0
        assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    finally:
        detach(model, handle)


def test_measuring_leaves_the_model_as_it_was(tiny):
    model = tiny.model
    handle = attach_config(model, PEFTConfig.shared([0], prefix=40), tiny.dims, 1)
    try:
        model.train()
        active = model.active_adapters
        first = measure_queries(model, _batch())
        assert model.training and model.active_adapters == active
    finally:
        detach(model, handle)
    again = measure_queries(model, _batch())  # no adapter: the same backbone queries
    for a, b in zip(first.directions, again.directions, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("size", [8, QUIET_PREFIX_POSITIONS + 8])
def test_the_engine_starts_long_prefixes_quiet_and_nothing_else(glue_dir, size):
    task = load_task("stsb", glue_dir=str(glue_dir))
    engine = Engine("tiny-bert", task, progress=False)
    config = PEFTConfig.shared([0, 2], prefix=size)
    runs = {}
    for start in ("quiet", "random"):
        fidelity = Fidelity(max_train_samples=16, max_eval_samples=8, batch_size=8, lr=1e-3, prefix_start=start)
        result = engine.run_trial(config, fidelity, seed=0, mode="search")
        assert result.ok
        runs[start] = result.headline
    if size > QUIET_PREFIX_POSITIONS:
        assert runs["quiet"] != runs["random"]
        assert len(engine._query_means) == 1  # measured once, on the trial's training examples
    else:  # a short prefix trains bit for bit as before the knob
        assert runs["quiet"] == runs["random"]
        assert not engine._query_means
    assert np.isfinite(list(runs.values())).all()
