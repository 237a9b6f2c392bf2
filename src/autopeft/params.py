"""Exact trainable-parameter accounting, from the configuration alone (pure, no torch).

The counts follow the modules the adapters library creates (adapters 1.3). Each module kind's
per-layer formula is declared with its kind (`autopeft.modules`); besides those:
- a gate (UniPELT): Linear(h, 1) per gated module instance: h + 1;
- classification head (adapters' default, 2 layers): Linear(h, h) + Linear(h, n): h*h + h + h*n + n.
The test suite checks every formula against the parameters actually created.
"""

from __future__ import annotations

from dataclasses import dataclass

from autopeft.modules import MODULE_KINDS, MODULES
from autopeft.space import PEFTConfig


@dataclass(frozen=True)
class ModelDims:
    """The shape of a transformer encoder, read from its config (never hard-coded)."""

    model_type: str
    num_layers: int
    hidden_size: int
    num_heads: int
    ffn_size: int
    backbone_params: int  # all parameters of the pretrained encoder: embeddings, layers, pooler
    bias_params: int  # of which bias vectors (what BitFit trains)


@dataclass(frozen=True)
class ParamCount:
    """Trainable parameters of one configuration on one model."""

    peft: int  # deployed PEFT parameters (prefix-tuning counted after ejection)
    head: int  # the task head, trained with every method
    backbone: int  # parameters of the frozen backbone, the base of `percent`

    @property
    def percent(self) -> float:
        """PEFT parameters as a percentage of the backbone's parameters (the paper's %Param)."""
        return 100.0 * self.peft / self.backbone

    @property
    def trainable(self) -> int:
        return self.peft + self.head

    def to_dict(self) -> dict[str, float | int]:
        return {"params": self.peft, "head_params": self.head, "percent": round(self.percent, 6)}


def gate_params(hidden: int) -> int:
    return hidden + 1


def head_params(hidden: int, num_labels: int) -> int:
    return hidden * hidden + hidden + hidden * num_labels + num_labels


def layer_params(module: str, size: int, hidden: int) -> int:
    """PEFT parameters `module` at `size` adds to one layer; none when it is off (size 0).

    Every kind's count is the same in every layer it is in, so a configuration's count is the sum
    over modules of this times its number of layers.
    """
    return MODULE_KINDS[module].params_per_layer(hidden, size) if size else 0


def peft_params(config: PEFTConfig, dims: ModelDims) -> int:
    """Deployed PEFT parameters of `config` on a model of shape `dims`."""
    return sum(layer_params(m, config.size(m), dims.hidden_size) * len(config.layers(m)) for m in MODULES)


def param_count(config: PEFTConfig, dims: ModelDims, num_labels: int = 2) -> ParamCount:
    """PEFT parameters, head parameters and backbone size for `config` (see module docstring)."""
    return ParamCount(peft_params(config, dims), head_params(dims.hidden_size, num_labels), dims.backbone_params)
