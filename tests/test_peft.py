"""PEFT modules on real adapters models: exact counts, each module acts, the serial+parallel extension."""

from __future__ import annotations

import random

import pytest
import torch

from autopeft.methods import METHODS
from autopeft.params import param_count
from autopeft.peft.build import attach_config, attach_method, detach
from autopeft.peft.ffn_branch import FFNParallelAdapter
from autopeft.peft.verify import first_mismatch
from autopeft.space import PEFTConfig, SearchSpace
from conftest import loaded


@pytest.mark.parametrize("kind", ["paper", "extended"])
def test_counts_exact_for_200_random_configs(tiny, kind):
    space = SearchSpace(tiny.dims.num_layers, tiny.dims.hidden_size, kind)
    rng = random.Random(42)
    configs = [space.sample(rng) for _ in range(200)]
    assert len(set(configs)) > 150  # really different configurations
    assert first_mismatch(tiny.model, tiny.dims, configs, num_labels=3) is None


def test_counts_exact_for_every_baseline(tiny):
    for num_labels in (1, 2):
        assert first_mismatch(tiny.model, tiny.dims, METHODS.values(), num_labels) is None


@pytest.mark.slow
def test_counts_exact_on_minilm():
    minilm = loaded("minilm")
    assert (minilm.dims.num_layers, minilm.dims.hidden_size) == (6, 384)
    rng = random.Random(7)
    configs = [SearchSpace(6, 384, kind).sample(rng) for kind in ("paper", "extended") for _ in range(12)]
    assert first_mismatch(minilm.model, minilm.dims, [*configs, *METHODS.values()], num_labels=2) is None


def test_mismatch_is_reported():
    tiny = loaded("tiny-bert")
    config = PEFTConfig.shared([0], serial=4)
    wrong = tiny.dims.__class__(**{**tiny.dims.__dict__, "hidden_size": 33})
    assert "computed" in first_mismatch(tiny.model, wrong, [config], num_labels=2)


def _inputs():
    torch.manual_seed(0)
    ids = torch.randint(1000, 2000, (2, 9))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _hidden(model) -> torch.Tensor:
    with torch.no_grad():
        return model.base_model(**_inputs()).last_hidden_state


def _base_hidden(model) -> torch.Tensor:
    active = model.active_adapters
    model.set_active_adapters(None)
    try:
        return _hidden(model)
    finally:
        model.set_active_adapters(active)


@pytest.mark.parametrize(
    "config, identity_at_init",
    [
        (PEFTConfig.shared([0, 2], serial=8), False),  # adapters' "bert" init is small but non-zero
        (PEFTConfig.shared([0, 2], parallel=8), True),  # "mam_adapter" init: up-projection zero
        (PEFTConfig.shared([0, 2], prefix=4), False),
        (PEFTConfig.shared([0, 2], lora=4), True),  # B = 0
        (PEFTConfig.shared([1], serial=4, parallel=16, prefix=2), False),
    ],
)
def test_each_module_acts(tiny, config, identity_at_init):
    model = tiny.model
    handle = attach_config(model, config, tiny.dims, num_labels=2)
    try:
        base = _base_hidden(model)
        at_init = _hidden(model)
        assert torch.allclose(at_init, base, atol=1e-6) == identity_at_init
        with torch.no_grad():
            for name, param in model.named_parameters():
                if param.requires_grad and not name.startswith("heads."):
                    param.add_(0.05 * torch.randn_like(param))
        changed = _hidden(model)
        assert not torch.allclose(changed, base, atol=1e-4)
        # only the layers the config names are touched: hidden states before the first one agree
        first = min(config.layers(config.active_modules[0]))
        if first > 0 and "prefix" not in config.active_modules:
            with torch.no_grad():
                out = model.base_model(**_inputs(), output_hidden_states=True).hidden_states
            model.set_active_adapters(None)
            with torch.no_grad():
                ref = model.base_model(**_inputs(), output_hidden_states=True).hidden_states
            model.set_active_adapters(handle.setup)
            assert torch.equal(out[first], ref[first]) and not torch.allclose(out[first + 1], ref[first + 1])
    finally:
        detach(model, handle)


def test_only_peft_modules_and_head_train(tiny_bert):
    model = tiny_bert.model
    handle = attach_config(model, PEFTConfig.shared([0, 1], serial=4, prefix=2), tiny_bert.dims, 2)
    try:
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert trainable and all(("autopeft_" in n) or n.startswith("heads.") for n in trainable)
    finally:
        detach(model, handle)
    assert not any(p.requires_grad for p in model.parameters())
    assert not model.adapters_config.adapters and "task" not in model.heads


def _capture_ffn_output(model, layer: int):
    """Inputs and output of layer `layer`'s BertOutput (the FFN's down-projection + adapters + LN)."""
    seen = {}
    module = model.base_model.encoder.layer[layer].output
    hook = module.register_forward_hook(lambda m, args, out: seen.update(args=args, out=out))
    try:
        _hidden(model)
    finally:
        hook.remove()
    return module, seen["args"], seen["out"]


def test_serial_and_parallel_compose_at_one_ffn():
    """h = FFN(x) + s*PA(x); Pfeiffer serial adapter on h; then LayerNorm(... + x) — the paper's layout."""
    tiny = loaded("tiny-bert")
    model = tiny.model
    handle = attach_config(model, PEFTConfig.shared([1], serial=4, parallel=8), tiny.dims, num_labels=2)
    try:
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(0.1 * torch.randn_like(p))
        module, (intermediate, x), out = _capture_ffn_output(model, 1)
        parallel = module.adapters["autopeft_parallel"]
        serial = module.adapters["autopeft_serial"]
        assert isinstance(parallel, FFNParallelAdapter)
        with torch.no_grad():
            # F.linear, not module.dense: adapters may hook the dense layer itself
            h = torch.nn.functional.linear(intermediate, module.dense.weight, module.dense.bias)
            h = h + parallel.scaling * parallel.adapter_up(parallel.adapter_down(x))
            z = module.LayerNorm(h + x)  # Pfeiffer: original LayerNorm before the adapter
            a = serial.adapter_up(serial.adapter_down(z)) + h
            expected = module.LayerNorm(a + x)
        assert torch.allclose(out, expected, atol=1e-5)
    finally:
        detach(model, handle)


def test_ffn_parallel_adapter_alone_equals_stock_parallel_adapter():
    from adapters.methods.modeling import ParallelAdapter

    tiny = loaded("tiny-bert")
    model = tiny.model
    handle = attach_config(model, PEFTConfig.shared([0, 3], parallel=16), tiny.dims, num_labels=2)
    try:
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(0.1 * torch.randn_like(p))
        ours = _hidden(model)
        branches = [m for m in model.modules() if isinstance(m, FFNParallelAdapter)]
        assert len(branches) == 2
        for m in branches:
            m.__class__ = ParallelAdapter
        stock = _hidden(model)
        assert torch.allclose(ours, stock, atol=1e-6) and not torch.allclose(ours, _base_hidden(model), atol=1e-4)
    finally:
        detach(model, handle)


def test_baselines_build_and_train_the_right_parts(tiny_bert):
    model, dims = tiny_bert.model, tiny_bert.dims
    for method in METHODS.values():
        handle = attach_method(model, method, dims, num_labels=2)
        try:
            trainable = [n for n, p in model.named_parameters() if p.requires_grad]
            if method.name == "full":
                assert len(trainable) == len(list(model.parameters()))
            elif method.name == "bitfit":
                assert all(n.endswith("bias") or n.startswith("heads.") for n in trainable)
            else:
                assert all(method.name in n or "autopeft_" in n or n.startswith("heads.") for n in trainable)
            assert not torch.isnan(_hidden(model)).any()
        finally:
            detach(model, handle)


def test_param_count_percent_uses_backbone(tiny_bert):
    config = PEFTConfig.shared(range(4), serial=32)
    count = param_count(config, tiny_bert.dims)
    assert count.peft == 4 * (2 * 32 * 32 + 32 + 32)
    assert count.percent == pytest.approx(100 * count.peft / tiny_bert.dims.backbone_params)


def test_mean_pooling_head_reads_the_masked_mean(tiny_bert):
    from adapters.heads import ClassificationHead

    from autopeft.peft.heads import MEAN_POOL_HEAD, MeanPoolClassificationHead

    model = tiny_bert.model
    handle = attach_config(model, PEFTConfig.shared([0, 1], serial=4), tiny_bert.dims, 2, pooling="mean")
    try:
        head = model.heads["task"]
        assert isinstance(head, MeanPoolClassificationHead) and head.config["head_type"] == MEAN_POOL_HEAD
        ids = torch.tensor([[101, 7, 8, 9, 102], [101, 5, 102, 0, 0]])
        mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
        with torch.no_grad():
            hidden = model.base_model(input_ids=ids, attention_mask=mask)[0]
            logits = model(input_ids=ids, attention_mask=mask).logits
            expected = torch.stack([hidden[0].mean(0), hidden[1, :3].mean(0)])  # padding left out
            reference = ClassificationHead.forward(head, (hidden,), cls_output=expected)[0]
            first_token = ClassificationHead.forward(head, (hidden,))[0]
        assert torch.allclose(logits, reference, atol=1e-6)
        assert not torch.allclose(logits, first_token)
        # padding more does not change the mean
        longer = torch.cat([ids, torch.zeros(2, 3, dtype=ids.dtype)], 1)
        with torch.no_grad():
            padded = model(input_ids=longer, attention_mask=torch.cat([mask, torch.zeros(2, 3, dtype=mask.dtype)], 1))
        assert torch.allclose(padded.logits, logits, atol=1e-5)
    finally:
        detach(model, handle)
    assert "task" not in model.heads
