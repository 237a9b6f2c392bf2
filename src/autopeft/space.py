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

from autopeft.errors import ConfigError
from autopeft.modules import MODULE_KINDS, MODULES
from autopeft.names import SPACES


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

    def check_layers(self, num_layers: int) -> None:
        """Raise ConfigError unless some module is on and each one that is on sits in existing layers only.

        The one check of layers that the search space and the engine both make.
        """
        for m in self.active_modules:
            layers = self.layers(m)
            if not layers:
                raise ConfigError(f"{m} is on but inserted in no layer")
            bad = [i for i in layers if i >= num_layers]
            if bad:
                raise ConfigError(f"{m} layer {bad[0]} does not exist; the model has {num_layers} layers")
        if not self.active_modules:
            raise ConfigError("no PEFT module is on")

    def check_sizes(self, hidden_size: int) -> None:
        """Raise ConfigError if a module is larger than the model's hidden size (a bottleneck, a LoRA
        rank or a prefix beyond h compresses nothing; the space never goes past h)."""
        for m in self.active_modules:
            if self.size(m) > hidden_size:
                raise ConfigError(f"{m} size {self.size(m)} is larger than the model's hidden size {hidden_size}")

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
            part = f"{MODULE_KINDS[m].words} {self.size(m)}"
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
class LayerMask:
    """Insertion bits shared by `modules`: coordinate `coords[i]` is 1 iff they are in layer i."""

    modules: tuple[str, ...]
    coords: tuple[int, ...]  # one per layer, in layer order


@dataclass(frozen=True)
class Layout:
    """Which coordinate of the optimiser's vector means what; the one place that decides it.

    Coordinate j is the size of `modules[j]`; the layer bits follow, mask by mask. A shared layout
    (the paper space) has one mask for all modules, otherwise each module has its own.
    """

    modules: tuple[str, ...]
    masks: tuple[LayerMask, ...]
    dimensions: tuple[Dimension, ...]

    @classmethod
    def of(cls, modules: tuple[str, ...], num_layers: int, hidden_size: int, shared: bool) -> Layout:
        dims = [Dimension(m, (0, *MODULE_KINDS[m].choices(hidden_size))) for m in modules]
        groups = [(modules, "")] if shared else [((m,), f"{m}_") for m in modules]
        masks = []
        for group, prefix in groups:
            masks.append(LayerMask(group, tuple(range(len(dims), len(dims) + num_layers))))
            dims += [Dimension(f"{prefix}layer_{i}", (0, 1)) for i in range(num_layers)]
        return cls(modules, tuple(masks), tuple(dims))

    def size(self, module: str) -> int:
        """The coordinate of `module`'s size."""
        return self.modules.index(module)

    def mask(self, module: str) -> LayerMask:
        """The layer bits `module` is inserted by."""
        return next(mask for mask in self.masks if module in mask.modules)

    def encode(self, config: PEFTConfig) -> list[float]:
        """A configuration of these modules -> `len(dimensions)` numbers in [0, 1]."""
        values = [0] * len(self.dimensions)
        for m in self.modules:
            values[self.size(m)] = config.size(m)
        for mask in self.masks:
            # off modules have no layers, so the union is the mask of those that are on
            layers = set().union(*(config.layers(m) for m in mask.modules))
            for i, j in enumerate(mask.coords):
                values[j] = int(i in layers)
        return [d.encode(v) for d, v in zip(self.dimensions, values, strict=True)]

    def decode(self, x: Sequence[float]) -> PEFTConfig:
        """`len(dimensions)` numbers in [0, 1] -> the configuration they round to (maybe invalid)."""
        values = [d.decode(float(v)) for d, v in zip(self.dimensions, x, strict=True)]
        kwargs: dict[str, Any] = {m: values[self.size(m)] for m in self.modules}
        for mask in self.masks:
            layers = tuple(i for i, j in enumerate(mask.coords) if values[j])
            kwargs |= {f"{m}_layers": layers for m in mask.modules}
        return PEFTConfig(**kwargs)


@dataclass(frozen=True)
class SearchSpace:
    """The configurations an optimiser may propose for a model with `num_layers` and `hidden_size`.

    `kind` is "paper" (the kinds `autopeft.modules` marks as the paper's: serial, parallel, prefix;
    one shared layer mask) or "extended" (every kind, LoRA too; one mask per module). A
    configuration is valid iff at least one module is on and every module that is on is inserted in
    at least one layer.
    """

    num_layers: int
    hidden_size: int
    kind: str = "paper"
    layout: Layout = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in SPACES:
            raise ConfigError(f"unknown space {self.kind!r}; known: {', '.join(SPACES)}")
        if self.num_layers < 1:
            raise ConfigError(f"a model needs at least one layer, got {self.num_layers}")
        paper = self.kind == "paper"
        modules = tuple(m for m, k in MODULE_KINDS.items() if k.paper or not paper)
        object.__setattr__(self, "layout", Layout.of(modules, self.num_layers, self.hidden_size, shared=paper))

    @property
    def modules(self) -> tuple[str, ...]:
        return self.layout.modules

    @property
    def dimensions(self) -> tuple[Dimension, ...]:
        return self.layout.dimensions

    @property
    def dim(self) -> int:
        return len(self.dimensions)

    def choices(self, module: str) -> tuple[int, ...]:
        """Allowed sizes of a module, 0 (off) first."""
        return self.dimensions[self.layout.size(module)].choices

    # --- validation -------------------------------------------------------------------------

    def check(self, config: PEFTConfig) -> None:
        """Raise ConfigError naming the first problem if `config` is not in this space."""
        for m in MODULES:
            size = config.size(m)
            if m not in self.modules:
                if size:
                    raise ConfigError(f"{m} is not in the {self.kind} space (use --space extended)")
            elif size not in self.choices(m):
                allowed = ", ".join(map(str, self.choices(m)))
                raise ConfigError(f"{m} size {size} is not in the space; allowed: {allowed}")
        config.check_layers(self.num_layers)
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
        return self.layout.encode(config)

    def from_vector(self, x: Sequence[float]) -> PEFTConfig:
        """`dim` numbers in [0, 1] -> the configuration they round to (it may be invalid)."""
        if len(x) != self.dim:
            raise ConfigError(f"expected a vector of {self.dim} numbers, got {len(x)}")
        return self.layout.decode(x)

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
