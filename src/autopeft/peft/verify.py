"""Compare computed parameter counts with the parameters a built model actually trains."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from autopeft.methods import Method
from autopeft.params import ModelDims, param_count
from autopeft.peft.build import attach_config, attach_method, count_trainable, detach, eject_prefixes
from autopeft.space import PEFTConfig


def built_count(model: Any, handle: Any) -> tuple[int, int]:
    """(PEFT, head) trainable parameters as deployed: prefix-tuning ejected first."""
    eject_prefixes(model, handle)
    return count_trainable(model)


def first_mismatch(model: Any, dims: ModelDims, configs: Iterable[PEFTConfig | Method], num_labels: int) -> str | None:
    """Build each configuration (or baseline method) on `model`; describe the first count that differs."""
    for item in configs:
        if isinstance(item, Method):
            handle = attach_method(model, item, dims, num_labels)
            expected = item.param_count(dims, num_labels)
            label = f"method {item.name}"
        else:
            handle = attach_config(model, item, dims, num_labels)
            expected = param_count(item, dims, num_labels)
            label = item.to_json()
        try:
            got = built_count(model, handle)
        finally:
            detach(model, handle)
        if got != (expected.peft, expected.head):
            return f"{label}: computed {expected.peft} PEFT + {expected.head} head, built {got[0]} + {got[1]}"
    return None
