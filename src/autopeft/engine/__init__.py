"""The trial engine: train and score many PEFT configurations on one backbone loaded once.

    engine = Engine("minilm", load_task("rte"))
    result = engine.run_trial(config, Fidelity.parse("epochs=1,max_train_samples=2000"), seed=42)

`Fidelity`, `TrialResult` and `DEFAULT_LRS` are pure data and import without torch; `Engine` and
`load_trial` load torch when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autopeft.engine.fidelity import DEFAULT_LRS, Fidelity, FidelityError, family_of
from autopeft.engine.result import EpochReport, TrialFailed, TrialResult

if TYPE_CHECKING:
    from autopeft.engine.core import Engine
    from autopeft.engine.saving import load_predictions, load_trial

__all__ = [
    "DEFAULT_LRS",
    "Engine",
    "EpochReport",
    "Fidelity",
    "FidelityError",
    "TrialFailed",
    "TrialResult",
    "family_of",
    "load_predictions",
    "load_trial",
]

_LAZY = {
    "Engine": "autopeft.engine.core",
    "load_trial": "autopeft.engine.saving",
    "load_predictions": "autopeft.engine.saving",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'autopeft.engine' has no attribute {name!r}")
