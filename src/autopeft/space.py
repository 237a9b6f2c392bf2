"""The AutoPEFT search space: pure data, no torch or transformers.

A configuration (`PEFTConfig`) says, for each PEFT module, its size (0 = off) and the transformer
layers it is inserted in. A `SearchSpace` says which configurations are allowed, maps them to a
vector for the optimiser and back, samples them uniformly and lists one-change neighbours.

The paper's space (Zhou et al., TACL 2024, Sec. 3): a serial adapter after the FFN, a parallel
adapter beside the FFN and prefix-tuning, each of size 0 or floor(h / 2^k) >= 1 for k = 0..9, plus
one insertion bit per layer shared by all modules. The extended space adds a LoRA rank on the
attention query and value and one layer mask per module.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from autopeft.errors import UserError

MODULES: tuple[str, ...] = ("serial", "parallel", "prefix", "lora")
"""Module kinds, in a fixed order used everywhere (vectors, tables, JSON)."""

MODULE_WORDS = {
    "serial": "serial adapter",
    "parallel": "parallel adapter",
    "prefix": "prefix",
    "lora": "LoRA rank",
}

LORA_RANKS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
MAX_SIZE_EXPONENT = 9  # sizes are floor(h / 2^k) for k = 0..9, as the paper


class ConfigError(UserError):
    """A configuration that is malformed or outside the space; the message names the problem."""


def size_choices(hidden_size: int) -> tuple[int, ...]:
    """Non-zero module sizes of the paper's space, ascending: floor(h / 2^k) >= 1, de-duplicated."""
    if hidden_size < 1:
        raise ConfigError(f"hidden size must be positive, got {hidden_size}")
    return tuple(sorted({max(1, hidden_size >> k) for k in range(MAX_SIZE_EXPONENT + 1)}))


@dataclass(frozen=True)
class PEFTConfig:
    """Sizes and insertion layers of each PEFT module; a module with size 0 is off.

    Layers are 0-based transformer layer indices. An off module has no layers (normalised), so
    equal configurations compare and hash equal.
    """

    serial: int = 0  # bottleneck size of the serial adapter after the FFN
    parallel: int = 0  # bottleneck size of the parallel adapter beside the FFN
    prefix: int = 0  # prefix length (virtual tokens per layer)
    lora: int = 0  # LoRA rank on attention query and value
    serial_layers: tuple[int, ...] = ()
    parallel_layers: tuple[int, ...] = ()
    prefix_layers: tuple[int, ...] = ()
    lora_layers: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for module in MODULES:
            size = getattr(self, module)
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise ConfigError(f"{module} size must be a non-negative integer, got {size!r}")
            layers = getattr(self, f"{module}_layers")
            if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in layers):
                raise ConfigError(f"{module} layers must be non-negative integers, got {list(layers)}")
            canonical = tuple(sorted(set(layers))) if size else ()
            object.__setattr__(self, f"{module}_layers", canonical)

    @classmethod
    def shared(cls, layers: Iterable[int], **sizes: int) -> PEFTConfig:
        """A configuration whose modules all use one layer mask (the paper's space)."""
        layers = tuple(layers)
        unknown = set(sizes) - set(MODULES)
        if unknown:
            raise ConfigError(f"unknown module {sorted(unknown)[0]!r}; known: {', '.join(MODULES)}")
        return cls(**sizes, **{f"{m}_layers": layers for m in MODULES})

    def size(self, module: str) -> int:
        return getattr(self, module)

    def layers(self, module: str) -> tuple[int, ...]:
        return getattr(self, f"{module}_layers")

    @property
    def active_modules(self) -> tuple[str, ...]:
        return tuple(m for m in MODULES if self.size(m) > 0)

    @property
    def shared_layers(self) -> tuple[int, ...] | None:
        """The common layer mask of the active modules, or None when they differ."""
        masks = {self.layers(m) for m in self.active_modules}
        if len(masks) > 1:
            return None
        return masks.pop() if masks else ()

    def replace(self, **changes: Any) -> PEFTConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {m: self.size(m) for m in MODULES}
        shared = self.shared_layers
        if shared is not None:
            out["layers"] = list(shared)
        else:
            for m in MODULES:
                out[f"{m}_layers"] = list(self.layers(m))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PEFTConfig:
        if not isinstance(data, Mapping):
            raise ConfigError(f"a configuration must be a JSON object, got {type(data).__name__}")
        known = set(MODULES) | {"layers"} | {f"{m}_layers" for m in MODULES}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown configuration key {unknown[0]!r}; known: {', '.join(sorted(known))}")
        shared = data.get("layers")
        kwargs: dict[str, Any] = {}
        for m in MODULES:
            kwargs[m] = data.get(m, 0)
            layers = data.get(f"{m}_layers", shared if shared is not None else ())
            if not isinstance(layers, Sequence) or isinstance(layers, str):
                raise ConfigError(f"{m} layers must be a list of layer indices, got {layers!r}")
            kwargs[f"{m}_layers"] = tuple(layers)
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> PEFTConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"configuration is not valid JSON: {err.msg} at position {err.pos}") from None
        return cls.from_dict(data)

    def describe(self) -> str:
        """The configuration in words, e.g. 'serial adapter 24 + prefix 6 @ layers 0-3,5'."""
        if not self.active_modules:
            return "no PEFT module"
        shared = self.shared_layers
        parts = []
        for m in self.active_modules:
            part = f"{MODULE_WORDS[m]} {self.size(m)}"
            if shared is None:
                part += f" @ layers {_ranges(self.layers(m))}"
            parts.append(part)
        text = " + ".join(parts)
        return text + (f" @ layers {_ranges(shared)}" if shared is not None else "")


def _ranges(layers: Sequence[int]) -> str:
    """Compact layer list: (0, 1, 2, 5) -> '0-2,5'."""
    if not layers:
        return "none"
    runs: list[list[int]] = []
    for i in layers:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


@dataclass(frozen=True)
class Dimension:
    """One coordinate of the optimiser's vector: an ordinal size or an insertion bit."""

    name: str
    choices: tuple[int, ...]  # allowed values, ascending; bits are (0, 1)

    def encode(self, value: int) -> float:
        """Value -> [0, 1] (its rank among the choices)."""
        return self.choices.index(value) / (len(self.choices) - 1)

    def decode(self, x: float) -> int:
        """[0, 1] -> the nearest choice."""
        index = round(min(max(x, 0.0), 1.0) * (len(self.choices) - 1))
        return self.choices[index]


@dataclass(frozen=True)
class SearchSpace:
    """The configurations an optimiser may propose for a model with `num_layers` and `hidden_size`.

    `kind` is "paper" (serial, parallel, prefix; one shared layer mask) or "extended" (adds LoRA;
    one mask per module). A configuration is valid iff at least one module is on and every module
    that is on is inserted in at least one layer.
    """

    num_layers: int
    hidden_size: int
    kind: str = "paper"
    dimensions: tuple[Dimension, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in SPACE_KINDS:
            raise ConfigError(f"unknown space {self.kind!r}; known: {', '.join(SPACE_KINDS)}")
        if self.num_layers < 1:
            raise ConfigError(f"a model needs at least one layer, got {self.num_layers}")
        sizes = (0, *size_choices(self.hidden_size))
        dims = [Dimension(m, sizes if m != "lora" else (0, *LORA_RANKS)) for m in self.modules]
        if self.kind == "paper":
            dims += [Dimension(f"layer_{i}", (0, 1)) for i in range(self.num_layers)]
        else:
            dims += [Dimension(f"{m}_layer_{i}", (0, 1)) for m in self.modules for i in range(self.num_layers)]
        object.__setattr__(self, "dimensions", tuple(dims))

    @property
    def modules(self) -> tuple[str, ...]:
        return MODULES if self.kind == "extended" else MODULES[:3]

    @property
    def dim(self) -> int:
        return len(self.dimensions)

    def choices(self, module: str) -> tuple[int, ...]:
        """Allowed sizes of a module, 0 (off) first."""
        return self.dimensions[self.modules.index(module)].choices

    # --- validation -------------------------------------------------------------------------

    def check(self, config: PEFTConfig) -> None:
        """Raise ConfigError naming the first problem if `config` is not in this space."""
        for m in MODULES:
            size = config.size(m)
            if m not in self.modules:
                if size:
                    raise ConfigError(f"{m} is not in the {self.kind} space (use --space extended)")
                continue
            if size not in self.choices(m):
                allowed = ", ".join(map(str, self.choices(m)))
                raise ConfigError(f"{m} size {size} is not in the space; allowed: {allowed}")
            bad = [i for i in config.layers(m) if i >= self.num_layers]
            if bad:
                raise ConfigError(f"{m} layer {bad[0]} does not exist; the model has {self.num_layers} layers")
            if size and not config.layers(m):
                raise ConfigError(f"{m} is on but inserted in no layer")
        if not config.active_modules:
            raise ConfigError("no PEFT module is on")
        if self.kind == "paper" and config.shared_layers is None:
            raise ConfigError("the paper space shares one layer mask across modules (use --space extended)")

    def is_valid(self, config: PEFTConfig) -> bool:
        try:
            self.check(config)
        except ConfigError:
            return False
        return True

    # --- vector encoding --------------------------------------------------------------------

    def to_vector(self, config: PEFTConfig) -> list[float]:
        """A configuration of this space -> `dim` numbers in [0, 1] (sizes by rank, bits 0/1)."""
        self.check(config)
        values = [config.size(m) for m in self.modules]
        if self.kind == "paper":
            layers = set(config.shared_layers or ())
            values += [int(i in layers) for i in range(self.num_layers)]
        else:
            values += [int(i in config.layers(m)) for m in self.modules for i in range(self.num_layers)]
        return [d.encode(v) for d, v in zip(self.dimensions, values, strict=True)]

    def from_vector(self, x: Sequence[float]) -> PEFTConfig:
        """`dim` numbers in [0, 1] -> the configuration they round to (it may be invalid)."""
        if len(x) != self.dim:
            raise ConfigError(f"expected a vector of {self.dim} numbers, got {len(x)}")
        values = [d.decode(float(v)) for d, v in zip(self.dimensions, x, strict=True)]
        sizes = dict(zip(self.modules, values, strict=False))
        bits = values[len(self.modules) :]
        n = self.num_layers
        if self.kind == "paper":
            return PEFTConfig.shared([i for i in range(n) if bits[i]], **sizes)
        masks = {f"{m}_layers": tuple(i for i in range(n) if bits[j * n + i]) for j, m in enumerate(self.modules)}
        return PEFTConfig(**sizes, **masks)

    # --- sampling and neighbourhoods ---------------------------------------------------------

    def sample(self, rng: random.Random) -> PEFTConfig:
        """A configuration drawn uniformly from the valid vectors (rejection sampling).

        In the paper space every valid configuration has exactly one vector, so this is uniform
        over valid configurations. In the extended space an off module's mask is free in the
        vector, so configurations with more modules off are proportionally more likely.
        """
        while True:
            x = [d.encode(rng.choice(d.choices)) for d in self.dimensions]
            config = self.from_vector(x)
            if self.is_valid(config):
                return config

    def neighbours(self, config: PEFTConfig) -> list[PEFTConfig]:
        """Valid configurations that differ in one coordinate: one size changed or one bit flipped."""
        base = self.to_vector(config)
        seen = {config}
        out = []
        for j, d in enumerate(self.dimensions):
            current = d.decode(base[j])
            for value in d.choices:
                if value == current:
                    continue
                x = list(base)
                x[j] = d.encode(value)
                candidate = self.from_vector(x)
                if candidate not in seen and self.is_valid(candidate):
                    seen.add(candidate)
                    out.append(candidate)
        return out


SPACE_KINDS = ("paper", "extended")
