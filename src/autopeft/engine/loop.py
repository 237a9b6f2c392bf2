"""The training loop of one trial: AdamW, linear warm-up and decay, clipping, per-epoch scoring, patience.

Kept apart from `Engine` so that it reads top to bottom: it gets a model whose trainable parameters
are already chosen, the encoded data and the budget, and returns what happened.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from autopeft.engine.fidelity import Fidelity
from autopeft.engine.memory import PeakMemory
from autopeft.engine.result import EpochReport, TrialFailed
from autopeft.engine.tokens import Encoded, eval_batches, train_batches

Scorer = Callable[[], tuple[float, dict[str, float]]]  # () -> (headline, metrics) on the scoring set


@dataclass
class Outcome:
    """What training did: the best evaluation's state and scores, and the cost."""

    best_headline: float = -math.inf
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_epoch: int | None = None
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)  # trainable tensors at the best evaluation
    history: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    steps_per_epoch: int = 0
    examples: int = 0  # training examples processed (with repeats across epochs)
    stopped: str = "completed"
    train_seconds: float = 0.0
    eval_seconds: float = 0.0


def logits(model: Any, data: Encoded, rows: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """Model outputs for `rows`, in the order of `rows`: an `n x num_labels` float32 array."""
    model.eval()
    out = np.empty((len(rows), 0), dtype=np.float32)
    position = {int(r): i for i, r in enumerate(rows)}
    with torch.inference_mode():
        for batch_rows in eval_batches(data.lengths, rows, batch_size):
            inputs = data.batch(batch_rows, device)
            inputs.pop("labels")
            values = model(**inputs).logits.float().cpu().numpy()  # b x num_labels
            if out.shape[1] == 0:
                out = np.empty((len(rows), values.shape[1]), dtype=np.float32)
            out[[position[int(r)] for r in batch_rows]] = values
    return out


def to_predictions(values: np.ndarray, regression: bool) -> np.ndarray:
    """`n x num_labels` outputs -> `n` class ids, or scores for a regression head."""
    return values[:, 0] if regression else values.argmax(axis=1)


def train(
    model: Any,
    data: Encoded,
    rows: np.ndarray,
    score: Scorer,
    fidelity: Fidelity,
    lr: float,
    seed: int,
    device: torch.device,
    *,
    peak: PeakMemory,
    progress: bool = False,
    description: str = "",
    on_epoch: Callable[[EpochReport], bool | None] | None = None,
) -> Outcome:
    """Train the parameters of `model` that require grad on `rows` of `data`, scoring after each epoch.

    Raises TrialFailed when the loss or the gradient norm stops being finite.
    """
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    params = [p for p in model.parameters() if p.requires_grad]
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    if not params:
        raise TrialFailed("nothing to train: no parameter requires grad")
    steps_per_epoch = math.ceil(len(rows) / fidelity.batch_size)
    total = fidelity.epochs * steps_per_epoch
    if fidelity.max_steps is not None:
        total = min(total, fidelity.max_steps)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=fidelity.weight_decay)
    schedule = get_linear_schedule_with_warmup(optimizer, math.ceil(total * fidelity.warmup_ratio), total)
    rng = np.random.default_rng(seed)
    out = Outcome(steps_per_epoch=steps_per_epoch)
    since_best = 0
    bar = tqdm(total=total, desc=description, disable=not progress, leave=False, dynamic_ncols=True)
    try:
        for epoch in range(1, fidelity.epochs + 1):
            model.train()
            started = time.perf_counter()
            losses: list[float] = []
            for batch_rows in train_batches(data.lengths, rows, fidelity.batch_size, rng):
                loss = model(**data.batch(batch_rows, device)).loss
                peak.sample()  # activations are alive now, before backward frees them
                value = loss.item()
                if not math.isfinite(value):
                    raise TrialFailed(f"training loss became {value} at step {out.steps + 1} (learning rate {lr:g})")
                loss.backward()
                if fidelity.max_grad_norm > 0:
                    norm = torch.nn.utils.clip_grad_norm_(params, fidelity.max_grad_norm)
                    if not torch.isfinite(norm):
                        raise TrialFailed(f"gradient norm became {norm.item()} at step {out.steps + 1}")
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(value)
                out.steps += 1
                out.examples += len(batch_rows)
                bar.update(1)
                if out.steps % 10 == 0:
                    bar.set_postfix(loss=f"{np.mean(losses[-10:]):.4f}", refresh=False)
                if out.steps >= total:
                    break
            out.train_seconds += time.perf_counter() - started

            started = time.perf_counter()
            headline, scores = score()
            out.eval_seconds += time.perf_counter() - started
            train_loss = float(np.mean(losses)) if losses else math.nan
            out.history.append({"epoch": epoch, "step": out.steps, "train_loss": train_loss, **scores})
            if headline > out.best_headline:
                out.best_headline, out.best_metrics, out.best_epoch = headline, scores, epoch
                out.best_state = {n: p.detach().clone() for n, p in zip(names, params, strict=True)}
                since_best = 0
            else:
                since_best += 1
            if on_epoch is not None and on_epoch(EpochReport(epoch, out.steps, headline, scores, train_loss)):
                out.stopped = "callback"
                break
            if out.steps >= total and epoch < fidelity.epochs:
                out.stopped = "max_steps"
                break
            if fidelity.patience is not None and since_best >= fidelity.patience:
                out.stopped = "patience" if epoch < fidelity.epochs else "completed"
                break
    finally:
        bar.close()
    return out


def restore(model: Any, state: dict[str, torch.Tensor]) -> None:
    """Copy `state` (name -> tensor) back into the model's parameters."""
    current = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in state.items():
            current[name].copy_(tensor)
