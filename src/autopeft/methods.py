"""Manual PEFT baselines by name, in the same machinery as searched configurations (pure data).

Each method is either a `PEFTConfig` (so it is built and counted exactly like a searched one) or a
preset the adapters library defines (Houlsby, UniPELT) or a training regime without adapters
(full fine-tuning, BitFit). Sizes are the adapters library's defaults for each preset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from autopeft.modules import MODULE_KINDS, bottleneck_params, lora_params, prefix_params
from autopeft.params import ModelDims, ParamCount, gate_params, head_params, peft_params
from autopeft.space import PEFTConfig

# Learning-rate families: those of the module kinds, then configurations mixing kinds of several
# families, and the two regimes without adapters.
FAMILIES = (*dict.fromkeys(k.family for k in MODULE_KINDS.values()), "mixed", "bitfit", "full")


@dataclass(frozen=True)
class Method:
    """A named baseline: what it trains and how many parameters that is."""

    name: str
    description: str
    family: str  # picks the default learning rate (see `autopeft.engine` defaults)
    config: Callable[[ModelDims], PEFTConfig] | None = None  # None: not expressible as a PEFTConfig
    count: Callable[[ModelDims], int] | None = None  # deployed PEFT parameters when `config` is None

    def peft_config(self, dims: ModelDims) -> PEFTConfig | None:
        return self.config(dims) if self.config else None

    def param_count(self, dims: ModelDims, num_labels: int = 2) -> ParamCount:
        config = self.peft_config(dims)
        peft = peft_params(config, dims) if config is not None else self.count(dims)
        return ParamCount(peft, head_params(dims.hidden_size, num_labels), dims.backbone_params)


def _all(dims: ModelDims) -> range:
    return range(dims.num_layers)


def _houlsby(dims: ModelDims) -> int:
    # adapters' DoubleSeqBnConfig: a bottleneck after attention and one after the FFN, h/16.
    return 2 * bottleneck_params(dims.hidden_size, dims.hidden_size // 16) * dims.num_layers


def _unipelt(dims: ModelDims) -> int:
    # adapters' UniPELTConfig: gated prefix 10, gated serial adapter h/16, gated LoRA r=8 on q and v.
    h = dims.hidden_size
    prefix = prefix_params(h, 10) + gate_params(h)
    adapter = bottleneck_params(h, h // 16) + gate_params(h)
    lora = lora_params(h, 8) + 2 * gate_params(h)
    return (prefix + adapter + lora) * dims.num_layers


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("full", "full fine-tuning of every backbone parameter", "full", count=lambda d: d.backbone_params),
        Method("bitfit", "BitFit: only the backbone's bias vectors", "bitfit", count=lambda d: d.bias_params),
        Method(
            "pfeiffer",
            "serial adapter after the FFN, h/16 (Pfeiffer et al., 2021)",
            "adapter",
            config=lambda d: PEFTConfig.shared(_all(d), serial=d.hidden_size // 16),
        ),
        Method(
            "houlsby", "serial adapters after attention and FFN, h/16 (Houlsby et al., 2019)", "adapter", count=_houlsby
        ),
        Method(
            "parallel",
            "parallel adapter beside the FFN, h/2, scaling 4 (He et al., 2022)",
            "adapter",
            config=lambda d: PEFTConfig.shared(_all(d), parallel=d.hidden_size // 2),
        ),
        Method(
            "prefix",
            "prefix-tuning, 30 tokens (Li and Liang, 2021)",
            "prefix",
            config=lambda d: PEFTConfig.shared(_all(d), prefix=30),
        ),
        Method(
            "lora",
            "LoRA r=8 on query and value (Hu et al., 2022)",
            "lora",
            config=lambda d: PEFTConfig.shared(_all(d), lora=8),
        ),
        Method(
            "mam",
            "Mix-and-Match: prefix 30 + parallel adapter h/2 (He et al., 2022)",
            "mixed",
            config=lambda d: PEFTConfig.shared(_all(d), prefix=30, parallel=d.hidden_size // 2),
        ),
        Method("unipelt", "UniPELT: gated adapter + prefix + LoRA (Mao et al., 2022)", "mixed", count=_unipelt),
    )
}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}") from None
