"""Per-module-kind learning rates: every trainable parameter is sorted to its kind, and each kind's
parameters train at the trial's rate times its share under the fidelity's `module_rates` (the head
at the rate itself); stored fidelities from before the knob read as they trained."""

from __future__ import annotations

import pytest
import torch

from autopeft.engine import Engine, Fidelity
from autopeft.engine.fidelity import FidelityError
from autopeft.methods import get_method
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


def test_module_rates_share_the_rate_among_kinds():
    prefix, head = "x.prefix_tuning.pool.prefix_tunings.a.w", "heads.task.1.weight"
    assert lr_scale_of(prefix, "equal") == 1 and lr_scale_of(head, "equal") == 1
    parallel = "x.output.adapters.a_parallel.adapter_up.weight"
    assert lr_scale_of(prefix, "parallel-damped") == 1 and lr_scale_of(parallel, "parallel-damped") == 0.3
    assert lr_scale_of(prefix, "damped") == 0.3 and lr_scale_of(head, "damped") == 1
    assert lr_scale_of("x.attention.output.adapters.a.adapter_up.weight", "damped") == 1  # serial
    with pytest.raises(FidelityError, match="module_rates must be one of parallel-damped, damped, equal"):
        Fidelity.parse("module_rates=fast")


def test_stored_fidelities_read_as_they_trained():
    now = Fidelity().to_dict()
    assert Fidelity.from_dict(now).module_rates == "parallel-damped"
    without = {k: v for k, v in now.items() if k not in ("module_rates", "head_start")}
    assert Fidelity.from_dict(without).module_rates == "damped"  # stored while the kinds had their own rates
    older = {k: v for k, v in without.items() if k not in ("evals_per_epoch", "interim_eval_fraction")}
    assert Fidelity.from_dict(older).module_rates == "equal"  # stored before there were per-kind rates
    assert Fidelity.from_dict(older).head_start == "zero"


@pytest.mark.parametrize(
    ("module_rates", "slow"),
    [("parallel-damped", {"parallel"}), ("damped", {"parallel", "prefix"}), ("equal", set())],
)
def test_each_kind_trains_at_its_share(glue_dir, monkeypatch, module_rates, slow):
    groups: list[tuple[float, list]] = []
    real = torch.optim.AdamW

    def spy(param_groups, **kwargs):
        groups.extend((g["lr"], g["params"]) for g in param_groups)
        return real(param_groups, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", spy)
    engine = Engine("tiny-bert", load_task("rte", glue_dir=str(glue_dir)), progress=False)
    fidelity = Fidelity(
        epochs=1, max_train_samples=16, max_eval_samples=8, batch_size=8, lr=1e-3, module_rates=module_rates
    )
    config = PEFTConfig.shared([0], serial=4, parallel=4, prefix=2)
    result = engine.run_trial(config, fidelity, seed=0, mode="search")
    assert result.ok
    rates = {rate: len(params) for rate, params in groups}
    # the prefix pool is 5 tensors (embedding and the 2-layer reparameterisation MLP), a parallel adapter 4
    expected_slow = 4 * ("parallel" in slow) + 5 * ("prefix" in slow)
    if slow:
        assert sorted(rates) == pytest.approx([3e-4, 1e-3]) and rates[min(rates)] == expected_slow
    else:
        assert list(rates) == [1e-3]
