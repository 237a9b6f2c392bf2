"""The PEFT module kinds, declared once: pure data, no torch.

A kind is what a `PEFTConfig` size field names. Its entry here says how it reads in words, which
sizes it may take for a hidden size h, how many parameters it adds to one layer, which
learning-rate family it trains with, and whether the paper's space has it. The configuration, the
search space, the parameter count and the engine read this table; the one torch-side piece, the
adapters config of each kind, is `autopeft.peft.build.ADAPTER_FACTORIES`, checked on import to
cover exactly these kinds. A test checks the table against `PEFTConfig`'s fields.

Per-layer counts follow the modules the adapters library creates (adapters 1.3); the test suite
checks each against the parameters actually created:
- bottleneck adapter (serial or parallel): down Linear(h, b) and up Linear(b, h), with biases:
  2*h*b + b + h (`adapters.methods.modeling.Adapter`);
- prefix-tuning, as deployed: after `eject_prefix_tuning` the reparameterisation MLP is gone and
  each layer keeps a key and a value prefix of L x h: 2*h*L (`FlatPrefixTuning`);
- LoRA on query and value: A (r x h) and B (h x r) each, no bias: 4*h*r.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from autopeft.errors import ConfigError

LORA_RANKS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
MAX_SIZE_EXPONENT = 9  # sizes are floor(h / 2^k) for k = 0..9, as the paper


def size_choices(hidden_size: int) -> tuple[int, ...]:
    """Non-zero module sizes of the paper's space, ascending: floor(h / 2^k) >= 1, de-duplicated."""
    if hidden_size < 1:
        raise ConfigError(f"hidden size must be positive, got {hidden_size}")
    return tuple(sorted({max(1, hidden_size >> k) for k in range(MAX_SIZE_EXPONENT + 1)}))


def lora_ranks(hidden_size: int) -> tuple[int, ...]:
    """LoRA ranks do not scale with the hidden size."""
    return LORA_RANKS


def bottleneck_params(hidden: int, size: int) -> int:
    return 2 * hidden * size + size + hidden


def prefix_params(hidden: int, length: int) -> int:
    return 2 * hidden * length


def lora_params(hidden: int, rank: int, matrices: int = 2) -> int:
    return matrices * 2 * hidden * rank


@dataclass(frozen=True)
class ModuleKind:
    """One kind of PEFT module; `name` is its `PEFTConfig` size field (and `<name>_layers` its layers)."""

    name: str
    words: str  # how `PEFTConfig.describe` names it
    family: str  # learning-rate family (`autopeft.engine.DEFAULT_LRS`); kinds of two families make "mixed"
    choices: Callable[[int], tuple[int, ...]]  # hidden size -> allowed non-zero sizes, ascending
    params_per_layer: Callable[[int, int], int]  # (hidden size, size) -> parameters added to one layer
    paper: bool  # in the paper's space; the extended space has every kind


MODULE_KINDS: dict[str, ModuleKind] = {
    k.name: k
    for k in (
        ModuleKind("serial", "serial adapter", "adapter", size_choices, bottleneck_params, paper=True),
        ModuleKind("parallel", "parallel adapter", "adapter", size_choices, bottleneck_params, paper=True),
        ModuleKind("prefix", "prefix", "prefix", size_choices, prefix_params, paper=True),
        ModuleKind("lora", "LoRA rank", "lora", lora_ranks, lora_params, paper=False),
    )
}
"""Every module kind, in the fixed order used everywhere (vectors, tables, JSON)."""

MODULES: tuple[str, ...] = tuple(MODULE_KINDS)

MODULE_RATES: dict[str, dict[str, float]] = {
    "parallel-damped": {"parallel": 0.3},
    "damped": {"parallel": 0.3, "prefix": 0.3},
    "equal": {},
}
"""How a trial's learning rate is shared among the module kinds (the fidelity knob `module_rates`):
kind -> factor on the trial's rate (absent: 1; the head always trains at the rate itself).

"parallel-damped" is the default, from held-out train (`bench modules`, docs/BENCHMARKS.md) with
the head at the constant prediction: adapters' parallel adapter scales its output by 4, and at the
rate serial adapters and LoRA need it collapses on one seed of three at h/2, while a third of that
rate is steady at every size; prefix-tuning learns best and most steadily at the shared rate (a
third of it stalls, three times it collapses). The others are how earlier studies trained, kept so
that those read, resume and retrain as they ran: "damped" (prefix-tuning at a third too, its best
while the head started from zero) and "equal" (one rate for all, before per-kind rates)."""

QUIET_PREFIX_POSITIONS = 24
"""The fidelity knob `prefix_start=quiet` starts a longer prefix with the attention share of this many
positions (`autopeft.peft.prefix_start`); shorter prefixes start as adapters makes them. On MiniLM /
STS-B at the search budget prefixes up to h/16 (24) learn steadily from adapters' start."""
