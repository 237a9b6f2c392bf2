"""Task heads: adapters' classification head on the first token, or on the mean of all tokens.

Sentence-embedding checkpoints such as all-MiniLM-L6-v2 were trained through mean pooling; their
first token carries no sentence summary, so a head on it must first teach the encoder to make one,
which a few hundred steps with frozen weights do not. `MeanPoolClassificationHead` is adapters'
own `ClassificationHead` fed the masked mean instead, added through adapters' custom-head
extension point (`register_custom_head` / `add_custom_head`), so it saves and loads as any head
once `register_heads(model)` has been called on the loading model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from adapters.heads import ClassificationHead

MEAN_POOL_HEAD = "mean_pool_classification"


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """`batch x length x h` hidden states -> `batch x h`, the mean over tokens the mask keeps."""
    if attention_mask is None:
        return hidden.mean(1)
    mask = attention_mask[:, -hidden.shape[1] :].unsqueeze(-1).to(hidden.dtype)  # batch x length x 1
    return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)


class MeanPoolClassificationHead(ClassificationHead):
    """adapters' `ClassificationHead` (same layers, loss and outputs) on mean-pooled hidden states."""

    def __init__(self, model: Any, head_name: str, **kwargs: Any) -> None:
        super().__init__(model, head_name, **kwargs)
        self.config["head_type"] = MEAN_POOL_HEAD  # saved with the head: a loader rebuilds this class

    def forward(self, outputs, cls_output=None, attention_mask=None, return_dict=False, **kwargs):
        if cls_output is None:
            cls_output = mean_pool(outputs[0], attention_mask)
        return super().forward(outputs, cls_output, attention_mask, return_dict, **kwargs)


def register_heads(model: Any) -> None:
    """Make `model` able to add and load the heads of this module (call before `load_head`)."""
    model.register_custom_head(MEAN_POOL_HEAD, MeanPoolClassificationHead)


def start_head_at(model: Any, name: str, outputs: Sequence[float]) -> None:
    """Set the bias of head `name`'s last linear layer to `outputs`: with its small initial weights,
    the fresh head then predicts about `outputs` for every input."""
    last = [m for m in model.heads[name].modules() if isinstance(m, torch.nn.Linear)][-1]
    if last.bias is None or last.bias.shape[0] != len(outputs):
        raise ValueError(f"head {name!r} has {last.out_features} outputs, got {len(outputs)} to start at")
    with torch.no_grad():
        last.bias.copy_(torch.as_tensor(outputs, dtype=last.bias.dtype))


def add_head(model: Any, name: str, num_labels: int, pooling: str = "cls") -> None:
    """A fresh 2-layer classification (or, with one label, regression) head named `name`."""
    if pooling == "cls":
        model.add_classification_head(name, num_labels=num_labels, layers=2, overwrite_ok=True)
    elif pooling == "mean":
        register_heads(model)
        model.add_custom_head(MEAN_POOL_HEAD, name, num_labels=num_labels, layers=2, overwrite_ok=True)
    else:
        raise ValueError(f"unknown pooling {pooling!r}; known: cls, mean")
