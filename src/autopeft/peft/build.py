"""Put PEFT modules on an adapters model, train only them and the head, count what was created.

A `PEFTConfig` becomes one adapter per module kind, named `<name>_<kind>`, activated together as
`Stack(parallel, serial, prefix, lora)`: the order matters only at the FFN, where the parallel
branch must come before the serial adapter (see `ffn_branch`). `ADAPTER_FACTORIES` holds the
adapters config of each kind of `autopeft.modules`, and nothing else here knows the kinds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from adapters import (
    ConfigUnion,
    DoubleSeqBnConfig,
    LoRAConfig,
    ParBnConfig,
    PrefixTuningConfig,
    SeqBnConfig,
    UniPELTConfig,
)
from adapters.composition import Stack

from autopeft.methods import Method
from autopeft.modules import MODULE_KINDS, MODULE_RATES
from autopeft.params import ModelDims
from autopeft.peft.ffn_branch import enable_ffn_branches
from autopeft.peft.heads import add_head
from autopeft.space import PEFTConfig

# Ejecting prefix-tuning runs a forward with no adapter active, which adapters warns about on every
# call; the warning says nothing useful here.
logging.getLogger("adapters.model_mixin").addFilter(lambda record: "none are activated" not in record.getMessage())

HEAD_NAME = "task"
PREFIX_BOTTLENECK = 512  # width of prefix-tuning's reparameterisation MLP during training


def _reduction_factor(hidden: int, size: int) -> float:
    """adapters sizes a bottleneck as int(h // factor): pick a factor that yields exactly `size`."""
    factor = hidden / size
    return factor if int(hidden // factor) == size else hidden / (size + 0.5)


def _parallel(hidden: int, size: int, leave_out: list[int]) -> ParBnConfig:
    return ParBnConfig(reduction_factor=_reduction_factor(hidden, size), leave_out=leave_out)


def _serial(hidden: int, size: int, leave_out: list[int]) -> SeqBnConfig:
    return SeqBnConfig(reduction_factor=_reduction_factor(hidden, size), leave_out=leave_out)


def _prefix(hidden: int, size: int, leave_out: list[int]) -> PrefixTuningConfig:
    return PrefixTuningConfig(prefix_length=size, bottleneck_size=PREFIX_BOTTLENECK, leave_out=leave_out)


def _lora(hidden: int, size: int, leave_out: list[int]) -> LoRAConfig:
    return LoRAConfig(r=size, alpha=size, attn_matrices=["q", "v"], leave_out=leave_out)


# Module kind -> (hidden size, size, layers left out) -> its adapters config. The order is the stack
# order: the parallel branch before the serial adapter (see the module docstring).
ADAPTER_FACTORIES: dict[str, Callable[[int, int, list[int]], Any]] = {
    "parallel": _parallel,
    "serial": _serial,
    "prefix": _prefix,
    "lora": _lora,
}
if set(ADAPTER_FACTORIES) != set(MODULE_KINDS):  # a kind without its adapters config cannot be built
    raise ImportError(
        f"adapters factories {sorted(ADAPTER_FACTORIES)} do not match module kinds {sorted(MODULE_KINDS)}"
    )
STACK_ORDER: tuple[str, ...] = tuple(ADAPTER_FACTORIES)


def module_kind_of(param_name: str) -> str | None:
    """The module kind a trainable parameter belongs to, from the names adapters gives it; None for the
    head and the backbone. Baselines' own adapters map by architecture: Houlsby's and UniPELT's bottleneck
    adapters are serial, UniPELT's prefixes and LoRA are prefix and LoRA."""
    if ".prefix_tuning." in param_name or ".prefix_tunings." in param_name:
        return "prefix"
    if ".loras." in param_name:
        return "lora"
    if ".adapters." in param_name:
        return "parallel" if "_parallel." in param_name else "serial"
    return None


def lr_scale_of(param_name: str, module_rates: str) -> float:
    """The factor on a trial's learning rate for this parameter under the fidelity's `module_rates`
    (`autopeft.modules.MODULE_RATES`; 1 for the head)."""
    kind = module_kind_of(param_name)
    return MODULE_RATES[module_rates].get(kind, 1.0) if kind else 1.0


def adapter_configs(config: PEFTConfig, dims: ModelDims) -> dict[str, Any]:
    """The adapters configs of `config`, keyed by module kind, in stack order."""
    return {
        kind: factory(dims.hidden_size, config.size(kind), _leave_out(config.layers(kind), dims))
        for kind, factory in ADAPTER_FACTORIES.items()
        if config.size(kind)
    }


def _leave_out(layers: tuple[int, ...], dims: ModelDims) -> list[int]:
    return [i for i in range(dims.num_layers) if i not in layers]


def method_adapter_configs(method: Method, dims: ModelDims) -> dict[str, Any]:
    """The adapters configs of a baseline; empty for full fine-tuning and BitFit."""
    config = method.peft_config(dims)
    if config is not None:
        return adapter_configs(config, dims)
    if method.name == "houlsby":
        return {"houlsby": DoubleSeqBnConfig()}
    if method.name == "unipelt":
        return {"unipelt": UniPELTConfig()}
    return {}


@dataclass
class PEFTHandle:
    """What `attach` put on a model, so that `detach` can take exactly that off again."""

    adapter_names: list[str]
    regime: str  # "adapters", "full" or "bitfit"

    @property
    def setup(self) -> Stack | None:
        return Stack(*self.adapter_names) if self.adapter_names else None


def attach(
    model: Any,
    configs: dict[str, Any],
    num_labels: int,
    regime: str = "adapters",
    name: str = "autopeft",
    pooling: str = "cls",
) -> PEFTHandle:
    """Add adapters and a fresh 2-layer head; make only what the regime trains require grad.

    `regime` is "adapters" (only adapters and head train), "full" (everything) or "bitfit"
    (backbone biases and head). `pooling`: the head reads the first token ("cls") or the mean ("mean").
    """
    names = [f"{name}_{kind}" for kind in configs]
    for adapter_name, adapter_config in zip(names, configs.values(), strict=True):
        model.add_adapter(adapter_name, config=adapter_config)
    enable_ffn_branches(model)
    add_head(model, HEAD_NAME, num_labels, pooling)
    handle = PEFTHandle(names, regime)
    if regime == "adapters":
        model.train_adapter(handle.setup)
    else:
        if names:
            model.set_active_adapters(handle.setup)
        for param_name, param in model.named_parameters():
            param.requires_grad = regime == "full" or param_name.endswith("bias") or _is_head(param_name)
    model.active_head = HEAD_NAME
    model.eval()  # train_adapter switches to train mode; training loops switch back themselves
    return handle


def attach_config(model: Any, config: PEFTConfig, dims: ModelDims, num_labels: int, pooling: str = "cls") -> PEFTHandle:
    return attach(model, adapter_configs(config, dims), num_labels, pooling=pooling)


def attach_method(model: Any, method: Method, dims: ModelDims, num_labels: int, pooling: str = "cls") -> PEFTHandle:
    regime = method.name if method.name in ("full", "bitfit") else "adapters"
    return attach(model, method_adapter_configs(method, dims), num_labels, regime, pooling=pooling)


def detach(model: Any, handle: PEFTHandle) -> None:
    """Remove the adapters and head of `handle` and freeze the backbone again."""
    model.set_active_adapters(None)
    for adapter_name in handle.adapter_names:
        model.delete_adapter(adapter_name)
    if HEAD_NAME in model.heads:
        model.delete_head(HEAD_NAME)
    for param in model.parameters():
        param.requires_grad = False


def eject_prefixes(model: Any, handle: PEFTHandle) -> None:
    """Replace prefix-tuning's reparameterisation MLP by the prefixes it computes (deployment form)."""
    for adapter_name in handle.adapter_names:
        if _has_prefix(model, adapter_name):
            model.eject_prefix_tuning(adapter_name)
            _mark_flat(model, adapter_name)


def _mark_flat(model: Any, adapter_name: str) -> None:
    # adapters 1.3 ejects the modules but keeps flat=False in the adapter's config, so a saved
    # adapter would reload as a fresh reparameterisation MLP instead of the trained prefixes.
    config = model.adapters_config.get(adapter_name)
    if isinstance(config, ConfigUnion):
        flat = ConfigUnion(*(c.replace(flat=True) if isinstance(c, PrefixTuningConfig) else c for c in config.configs))
    else:
        flat = config.replace(flat=True)
    del model.adapters_config.adapters[adapter_name]
    model.adapters_config.add(adapter_name, flat)


def _has_prefix(model: Any, adapter_name: str) -> bool:
    pool = getattr(model.base_model, "prefix_tuning", None)
    return pool is not None and adapter_name in pool.prefix_tunings


def _is_head(param_name: str) -> bool:
    return param_name.startswith("heads.")


def count_trainable(model: Any) -> tuple[int, int]:
    """(PEFT, head) parameters that require grad."""
    peft = head = 0
    for param_name, param in model.named_parameters():
        if param.requires_grad:
            if _is_head(param_name):
                head += param.numel()
            else:
                peft += param.numel()
    return peft, head
