"""The search space as Optuna sees it: one categorical distribution per `SearchSpace` dimension.

A trial's params are the dimension values themselves (module sizes and 0/1 layer bits), so a
study is readable on its own: `{"serial": 24, "parallel": 0, "prefix": 6, "layer_0": 1, ...}`.
Samplers read configurations back from params alone; nothing else has to be stored in a trial.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from optuna.distributions import CategoricalDistribution

from autopeft.space import ConfigError, PEFTConfig, SearchSpace

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


def optuna_distributions(space: SearchSpace) -> dict[str, CategoricalDistribution]:
    """One `CategoricalDistribution` of the allowed values per dimension, in the space's order."""
    return {d.name: CategoricalDistribution(d.choices) for d in space.dimensions}


def params_from_config(space: SearchSpace, config: PEFTConfig) -> dict[str, int]:
    """A configuration of `space` -> trial params (raises ConfigError if it is not in the space)."""
    x = space.to_vector(config)
    return {d.name: d.decode(v) for d, v in zip(space.dimensions, x, strict=True)}


def vector_from_params(space: SearchSpace, params: Mapping[str, Any]) -> list[float]:
    """Trial params -> the `dim` numbers in [0, 1] of `SearchSpace.to_vector`, valid or not."""
    x = []
    for d in space.dimensions:
        if d.name not in params:
            raise ConfigError(f"trial params lack {d.name!r}")
        value = params[d.name]
        if value not in d.choices:
            allowed = ", ".join(map(str, d.choices))
            raise ConfigError(f"{d.name} = {value!r} is not in the space; allowed: {allowed}")
        x.append(d.encode(value))
    return x


def config_from_params(space: SearchSpace, params: Mapping[str, Any]) -> PEFTConfig:
    """Trial params -> the configuration they describe; raises ConfigError if it is invalid."""
    config = space.from_vector(vector_from_params(space, params))
    space.check(config)
    return config


def trial_config(space: SearchSpace, trial: FrozenTrial) -> PEFTConfig | None:
    """The configuration a trial evaluated, or None if its params do not describe a valid one."""
    try:
        return config_from_params(space, trial.params)
    except ConfigError:
        return None
