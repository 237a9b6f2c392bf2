"""Per-module-kind learning rates: every trainable parameter is sorted to its kind, and each kind's
parameters train at the trial's rate times the kind's `lr_scale` (the head at the rate itself)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from autopeft.engine import Engine, Fidelity
from autopeft.methods import get_method
from autopeft.modules import MODULE_KINDS
from autopeft.peft.build import attach_config, attach_method, detach, lr_scale_of, module_kind_of
from autopeft.space import PEFTConfig
from autopeft.tasks import load_task


def _kinds(model) -> dict[str | None, int]:
    out: dict[str | None, int] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            out[module_kind_of(name)] = out.get(module_kind_of(name), 0) + 1
    return out


def test_every_trainable_parameter_is_sorted_to_its_kind(tiny_bert):
    model, dims = tiny_bert.model, tiny_bert.dims
    handle = attach_config(model, PEFTConfig.shared([0, 1], serial=8, parallel=8, prefix=2, lora=2), dims, 2)
    kinds = _kinds(model)
    detach(model, handle)
    assert set(kinds) == {"serial", "parallel", "prefix", "lora", None}  # None: the head
    for name, expected in (("houlsby", {"serial", None}), ("mam", {"parallel", "prefix", None})):
        handle = attach_method(model, get_method(name), dims, 2)
        assert set(_kinds(model)) == expected
        detach(model, handle)


def test_each_kind_trains_at_its_scale(glue_dir, monkeypatch):
    monkeypatch.setitem(MODULE_KINDS, "prefix", dataclasses.replace(MODULE_KINDS["prefix"], lr_scale=0.1))
    assert lr_scale_of("x.prefix_tuning.pool.prefix_tunings.a.w") == 0.1 and lr_scale_of("heads.task.1.weight") == 1
    groups: list[tuple[float, int]] = []
    real = torch.optim.AdamW

    def spy(param_groups, **kwargs):
        groups.extend((g["lr"], len(g["params"])) for g in param_groups)
        return real(param_groups, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", spy)
    engine = Engine("tiny-bert", load_task("rte", glue_dir=str(glue_dir)), progress=False)
    fidelity = Fidelity(epochs=1, max_train_samples=16, max_eval_samples=8, batch_size=8, lr=1e-3)
    result = engine.run_trial(PEFTConfig.shared([0], serial=4, prefix=2), fidelity, seed=0, mode="search")
    assert result.ok
    rates = dict(groups)
    assert sorted(rates) == pytest.approx([1e-4, 1e-3])
    assert rates[min(rates)] == 5  # the prefix pool: embedding and the 2-layer reparameterisation MLP
