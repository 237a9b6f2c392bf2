"""What a trial reports: its scores, its cost and, when it failed, why (pure data, no torch)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

STATUSES = ("ok", "failed")
STOPS = ("completed", "max_steps", "patience", "callback", "failed")


class TrialFailed(Exception):
    """Raised inside a trial for an outcome that fails only that trial (NaN loss, no data, out of memory)."""


@dataclass(frozen=True)
class EpochReport:
    """One evaluation during training, passed to `on_epoch` (return True from it to stop the trial)."""

    epoch: int  # 1-based
    step: int  # optimiser steps so far
    headline: float
    metrics: dict[str, float]
    train_loss: float  # mean training loss since the previous evaluation
    share: float  # share of the trial's optimiser steps done
    constant: bool = False  # every prediction was the same: the model has not started to learn


@dataclass
class TrialResult:
    """One trained and evaluated configuration. `headline` is None when the trial failed.

    metrics: every metric of the task on the scoring set at the best evaluation (MNLI's mismatched
    set with suffix `_mm`); history: one entry per evaluation with epoch, step, train_loss and metrics.
    """

    status: str  # "ok" or "failed"
    reason: str | None  # why it failed, None when ok
    task: str
    model: str
    mode: str  # "search" or "final"
    seed: int
    config: dict[str, Any]  # PEFTConfig.to_dict(), or {"method": name} for a baseline
    metric_name: str
    headline: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    params: int = 0  # deployed PEFT parameters
    head_params: int = 0
    percent: float = 0.0  # PEFT parameters as % of the backbone
    lr: float = 0.0
    train_examples: int = 0  # size of the training subset
    eval_examples: int = 0  # size of the headline scoring set
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    wall_seconds: float = 0.0  # the whole trial: attach, train, score, save, detach
    examples_per_second: float = 0.0  # training examples processed per second of training
    peak_memory_mb: float = 0.0  # peak resident memory (CPU) or peak allocation (GPU) during the trial
    epochs_run: float = 0.0  # optimiser steps / steps per epoch
    steps: int = 0
    best_epoch: int | None = None
    stopped: str = "completed"  # completed, max_steps, patience, callback or failed
    history: list[dict[str, Any]] = field(default_factory=list)
    fidelity: dict[str, Any] = field(default_factory=dict)
    out_dir: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def metric(self) -> float | None:
        """The headline score (the name the search loop reads)."""
        return self.headline

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite floats become None, so the JSON stays standard)."""
        return _finite(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialResult:
        return cls(**data)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
