"""Exact trainable-parameter accounting, from the configuration alone (pure, no torch).

The counts follow the modules the adapters library creates (adapters 1.3):
- bottleneck adapter (serial or parallel): down Linear(h, b) and up Linear(b, h), with biases:
  2*h*b + b + h per layer (`adapters.methods.modeling.Adapter`);
- prefix-tuning, as deployed: after `eject_prefix_tuning` the reparameterisation MLP is gone and
  each layer keeps a key and a value prefix of L x h: 2*h*L per layer (`FlatPrefixTuning`);
- LoRA on query and value: A (r x h) and B (h x r) each, no bias: 4*h*r per layer;
- a gate (UniPELT): Linear(h, 1) per gated module instance: h + 1;
- classification head (adapters' default, 2 layers): Linear(h, h) + Linear(h, n): h*h + h + h*n + n.
The test suite checks every formula against the parameters actually created.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def bottleneck_params(hidden: int, size: int) -> int:
    return 2 * hidden * size + size + hidden


def prefix_params(hidden: int, length: int) -> int:
    return 2 * hidden * length


def lora_params(hidden: int, rank: int, matrices: int = 2) -> int:
    return matrices * 2 * hidden * rank


def gate_params(hidden: int) -> int:
    return hidden + 1


def head_params(hidden: int, num_labels: int) -> int:
    return hidden * hidden + hidden + hidden * num_labels + num_labels


def peft_params(config: PEFTConfig, dims: ModelDims) -> int:
    """Deployed PEFT parameters of `config` on a model of shape `dims`."""
    h = dims.hidden_size
    per_layer = {
        "serial": bottleneck_params(h, config.serial),
        "parallel": bottleneck_params(h, config.parallel),
        "prefix": prefix_params(h, config.prefix),
        "lora": lora_params(h, config.lora),
    }
    return sum(n * len(config.layers(m)) for m, n in per_layer.items() if config.size(m))


def param_count(config: PEFTConfig, dims: ModelDims, num_labels: int = 2) -> ParamCount:
    """PEFT parameters, head parameters and backbone size for `config` (see module docstring)."""
    return ParamCount(peft_params(config, dims), head_params(dims.hidden_size, num_labels), dims.backbone_params)
