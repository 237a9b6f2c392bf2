"""The parameter objective, computed exactly, and the hard budget on it (pure Python, no torch).

Every optimiser in this package, ours and the baselines, proposes only configurations that are
valid in the space and within the budget. The parameter objective is the exact deployed PEFT
parameter count (`autopeft.params.peft_params`); the optimisers compare configurations on a log
scale of it (`Budget.score`), because useful configurations span four orders of magnitude.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from autopeft.errors import UserError
from autopeft.params import ModelDims, layer_params, peft_params
from autopeft.space import PEFTConfig, SearchSpace

RANDOM_TRIES = 2000  # rejection-sampling draws before falling back to repair


def per_layer_params(space: SearchSpace, dims: ModelDims) -> dict[str, dict[int, int]]:
    """module -> size -> PEFT parameters the module adds to one layer (0 for size 0).

    A configuration's count is the sum over modules of this number times the module's layer count
    (`autopeft.params.layer_params`).
    """
    return {m: {s: layer_params(m, s, dims.hidden_size) for s in space.choices(m)} for m in space.modules}


@dataclass(frozen=True)
class Budget:
    """The exact parameter count of a configuration and a hard cap on it (None: no cap)."""

    space: SearchSpace
    dims: ModelDims
    max_params: int | None = None
    per_layer: dict[str, dict[int, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.space.num_layers, self.space.hidden_size) != (self.dims.num_layers, self.dims.hidden_size):
            raise UserError(
                f"the space ({self.space.num_layers} layers, hidden {self.space.hidden_size}) does not match the "
                f"model ({self.dims.num_layers} layers, hidden {self.dims.hidden_size})"
            )
        object.__setattr__(self, "per_layer", per_layer_params(self.space, self.dims))
        if self.max_params is not None and self.max_params < self.smallest:
            raise UserError(
                f"a budget of {self.max_params} parameters is below the smallest configuration ({self.smallest})"
            )

    @classmethod
    def of(
        cls, space: SearchSpace, dims: ModelDims, max_params: int | None = None, max_percent: float | None = None
    ) -> Budget:
        """A budget given as a parameter count or as a percentage of the backbone (the paper's %Param)."""
        if max_params is not None and max_percent is not None:
            raise UserError("give max_params or max_percent, not both")
        if max_percent is not None:
            if not max_percent > 0:
                raise UserError(f"max_percent must be positive, got {max_percent}")
            max_params = math.floor(max_percent / 100.0 * dims.backbone_params)
        if max_params is not None and max_params < 1:
            raise UserError(f"max_params must be positive, got {max_params}")
        return cls(space, dims, max_params)

    # --- the objective ------------------------------------------------------------------------

    def params(self, config: PEFTConfig) -> int:
        return peft_params(config, self.dims)

    @property
    def smallest(self) -> int:
        """Parameters of the smallest valid configuration: one module at its smallest size, one layer."""
        return min(table[s] for table in self.per_layer.values() for s in table if s)

    @property
    def largest(self) -> int:
        """Parameters of the largest configuration allowed: every module at its largest size in every layer,
        or the cap."""
        full = sum(max(table.values()) for table in self.per_layer.values()) * self.space.num_layers
        return full if self.max_params is None else min(full, self.max_params)

    def score(self, params: float) -> float:
        """Normalised log-parameters, higher is better: 1 at `smallest`, 0 at `largest` (below 0 above it)."""
        low, high = math.log(self.smallest), math.log(self.largest)
        return (high - math.log(params)) / max(high - low, 1e-12)

    def config_score(self, config: PEFTConfig) -> float:
        """`score` of the configuration's exact parameter count."""
        return self.score(self.params(config))

    def allows(self, config: PEFTConfig) -> bool:
        """Valid in the space and within the cap."""
        if not self.space.is_valid(config):
            return False
        return self.max_params is None or self.params(config) <= self.max_params

    # --- proposing allowed configurations --------------------------------------------------------

    def sample(self, rng: random.Random, exclude: Collection[PEFTConfig] = ()) -> PEFTConfig:
        """A configuration drawn uniformly from the allowed ones not in `exclude`.

        Rejection sampling from `SearchSpace.sample`; if `RANDOM_TRIES` draws all fail (a tight cap,
        or a nearly exhausted space), random draws are repaired into the budget instead, which is no
        longer uniform, and as a last resort an excluded configuration is returned.
        """
        for _ in range(RANDOM_TRIES):
            config = self.space.sample(rng)
            if config not in exclude and self.allows(config):
                return config
        config = self.repair(self.space.to_vector(self.space.sample(rng)), rng)
        for _ in range(RANDOM_TRIES):
            if config not in exclude:
                return config
            config = self.repair(self.space.to_vector(self.space.sample(rng)), rng)
        return config

    def repair(self, x: Sequence[float], rng: random.Random) -> PEFTConfig:
        """The configuration a vector of `SearchSpace.to_vector` rounds to, made allowed.

        Invalid: if no module is on, one random module gets a random size; a module that is on with no
        layer gets one random layer. Over the cap: random one-change moves that each lower the count
        (a smaller size, one layer or module fewer) until it fits; the smallest configuration always
        fits, so this ends.
        """
        space, layout = self.space, self.space.layout
        x = list(x)
        sizes = {m: layout.dimensions[layout.size(m)].decode(x[layout.size(m)]) for m in layout.modules}
        if not any(sizes.values()):
            module = layout.modules[rng.randrange(len(layout.modules))]
            j = layout.size(module)
            x[j] = layout.dimensions[j].encode(rng.choice(layout.dimensions[j].choices[1:]))
            sizes[module] = layout.dimensions[j].decode(x[j])
        for mask in layout.masks:  # one shared mask in the paper space, one per module otherwise
            if any(sizes[m] for m in mask.modules) and not any(round(x[j]) for j in mask.coords):
                x[rng.choice(mask.coords)] = 1.0
        config = space.from_vector(x)
        while not self.allows(config):
            count = self.params(config)
            smaller = [c for c in space.neighbours(config) if self.params(c) < count]
            config = rng.choice(smaller)
        return config
