"""The optimiser: multi-objective Bayesian optimisation of PEFT configurations, and its baselines.

Layers, each importing only those before it (as botorch):
- `bridge`: the search space as Optuna distributions; trial params <-> `PEFTConfig`;
- `budget`: the exact parameter objective, its log score and the hard budget (pure Python);
- `surrogate`: GPs of the task metric (SAAS by NUTS, MAP SAAS, plain), Gaussian copula;
- `acquisition`: qLogNEHVI over (metric, exact parameter score);
- `learning`: the chance that a configuration of a given size learns at all (pure Python);
- `optimize`: maximising an acquisition function over the discrete space (local search);
- `sampler`: `AutoPEFTSampler`, an Optuna sampler that composes them;
- `baselines`: every optimiser by name (`make_sampler`), all restricted to allowed configurations;
- `warm`: a warm start from another task's study (its front enqueued, its trials in the GP).

Names are imported on first use, so `import autopeft.optim` does not load optuna, torch or botorch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "optuna_distributions": "bridge",
    "config_from_params": "bridge",
    "params_from_config": "bridge",
    "trial_config": "bridge",
    "Budget": "budget",
    "AutoPEFTOptions": "sampler",
    "AutoPEFTSampler": "sampler",
    "NutsOptions": "surrogate",
    "SURROGATES": "surrogate",
    "SAMPLERS": "baselines",
    "make_sampler": "baselines",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
