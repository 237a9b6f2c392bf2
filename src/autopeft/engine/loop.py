"""The training loop of one trial: AdamW, linear warm-up and decay, clipping, per-epoch scoring, patience.

Kept apart from `Engine` so that it reads top to bottom: it gets a model whose trainable parameters
are already chosen, the encoded data and the budget, and returns what happened.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from autopeft.engine.devices import autocast_dtype
from autopeft.engine.fidelity import Fidelity
from autopeft.engine.memory import PeakMemory
from autopeft.engine.result import EpochReport, TrialFailed
from autopeft.engine.tokens import Encoded, eval_batches, train_batches
from autopeft.peft.build import lr_scale_of

# () -> (headline, metrics, constant) on the scoring set; constant: every prediction was the same (one class,
# one value), so the model has not started to learn whatever the metric says
Scorer = Callable[[], tuple[float, dict[str, float], bool]]

# Steps between reads of the loss back to the host. Reading a CUDA tensor waits for the GPU to finish
# its queue; reading every 32 steps keeps it busy. On the CPU a read costs nothing, so every step.
SYNC_EVERY = {"cpu": 1}
DEVICE_SYNC_EVERY = 32


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


def logits(
    model: Any, data: Encoded, rows: np.ndarray, batch_size: int, device: torch.device, precision: str = "fp32"
) -> np.ndarray:
    """Model outputs for `rows`, in the order of `rows`: an `n x num_labels` float32 array.

    The batches' outputs stay on the device and come back in one copy (one wait for a GPU).
    """
    model.eval()
    batches = eval_batches(data.lengths, rows, batch_size)
    chunks: list[torch.Tensor] = []
    with torch.inference_mode(), autocast(device, precision):
        for batch_rows in batches:
            inputs = data.batch(batch_rows, device)
            inputs.pop("labels")
            chunks.append(model(**inputs).logits.float())  # b x num_labels
    if not chunks:
        return np.empty((0, 0), dtype=np.float32)
    values = torch.cat(chunks).cpu().numpy()  # n x num_labels, in batch order
    position = {int(r): i for i, r in enumerate(rows)}
    out = np.empty_like(values)
    out[[position[int(r)] for r in np.concatenate(batches)]] = values
    return out


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """torch.autocast to the precision's dtype; at fp32 no autocast at all (results as before it existed)."""
    dtype = autocast_dtype(precision)
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


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
    interim_score: Scorer | None = None,
) -> Outcome:
    """Train the parameters of `model` that require grad on `rows` of `data`, scoring after each epoch
    (or `fidelity.evals_per_epoch` times in each).

    With `interim_score`, evaluations before an epoch's end use it (a cheap part of the scoring set,
    `Plan.interim`); they are checkpoints for `on_epoch`, and stand as the best only until the first
    full evaluation (a trial stopped before any keeps its best checkpoint).

    Runs the forward passes under autocast at `fidelity.precision` (fp16 with loss scaling).
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
    # one parameter group per learning rate: each module kind trains at `lr` times its share (`module_rates`)
    groups: dict[float, list[torch.nn.Parameter]] = {}
    for name, param in zip(names, params, strict=True):
        groups.setdefault(lr * lr_scale_of(name, fidelity.module_rates), []).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": group, "lr": rate} for rate, group in groups.items()], lr=lr, weight_decay=fidelity.weight_decay
    )
    schedule = get_linear_schedule_with_warmup(optimizer, math.ceil(total * fidelity.warmup_ratio), total)
    # fp16 needs loss scaling (small gradients underflow); a skipped step is expected there, not a failure
    scaler = torch.amp.GradScaler(device.type) if fidelity.precision == "fp16" else None
    watch = _Watch(lr, SYNC_EVERY.get(device.type, DEVICE_SYNC_EVERY), norms_fatal=scaler is None)
    rng = np.random.default_rng(seed)
    out = Outcome(steps_per_epoch=steps_per_epoch)
    evaluate_at = eval_points(steps_per_epoch, fidelity.evals_per_epoch)
    since_best = 0
    scored_in_full = False

    def evaluate(epoch: int, interim: bool) -> str | None:
        """Score the model now, keep its state if best, and say why training stops here (None: go on)."""
        nonlocal since_best, scored_in_full
        watch.check()  # the last steps' losses, before their time is taken and their state scored
        started = time.perf_counter()
        headline, scores, constant = (interim_score if interim and interim_score is not None else score)()
        out.eval_seconds += time.perf_counter() - started
        model.train()
        train_loss = float(np.mean(watch.losses)) if watch.losses else math.nan
        watch.losses = []
        entry = {"epoch": epoch, "step": out.steps, "train_loss": train_loss, **scores}
        out.history.append(entry | {"interim": True} if interim else entry)
        # a checkpoint's score (on another set) competes only with checkpoints, until the first full one
        if interim:
            better = not scored_in_full and headline > out.best_headline
        else:
            better = not scored_in_full or headline > out.best_headline
            since_best = 0 if better else since_best + 1
            scored_in_full = True
        if better:
            out.best_headline, out.best_metrics, out.best_epoch = headline, scores, epoch
            out.best_state = {n: p.detach().clone() for n, p in zip(names, params, strict=True)}
        share = round(out.steps / total, 6)
        report = EpochReport(epoch, out.steps, headline, scores, train_loss, share=share, constant=constant)
        if on_epoch is not None and on_epoch(report):
            return "callback"
        if out.steps >= total and epoch < fidelity.epochs:
            return "max_steps"
        if fidelity.patience is not None and since_best >= fidelity.patience:
            return "patience" if out.steps < total else "completed"
        return "completed" if out.steps >= total else None

    bar = tqdm(total=total, desc=description, disable=not progress, leave=False, dynamic_ncols=True)
    try:
        stop = None
        for epoch in range(1, fidelity.epochs + 1):
            model.train()
            started = time.perf_counter()
            watch.new_epoch()
            for in_epoch, batch_rows in enumerate(train_batches(data.lengths, rows, fidelity.batch_size, rng), start=1):
                with autocast(device, fidelity.precision):
                    loss = model(**data.batch(batch_rows, device)).loss
                peak.sample()  # activations are alive now, before backward frees them
                (loss if scaler is None else scaler.scale(loss)).backward()
                norm = None
                if fidelity.max_grad_norm > 0:
                    if scaler is not None:
                        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                    norm = torch.nn.utils.clip_grad_norm_(params, fidelity.max_grad_norm)
                if scaler is None:
                    optimizer.step()
                    schedule.step()
                else:
                    scaler.step(optimizer)  # skipped when the gradients overflowed
                    scaler.update()
                    with warnings.catch_warnings():
                        # torch warns when a first step was skipped, as a scaler's first steps often are
                        warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
                        schedule.step()
                optimizer.zero_grad(set_to_none=True)
                out.steps += 1
                out.examples += len(batch_rows)
                watch.add(out.steps, loss, norm)  # raises TrialFailed (now or a few steps later) on a non-finite value
                bar.update(1)
                if out.steps % 10 == 0 and not bar.disable and watch.losses:
                    bar.set_postfix(loss=f"{np.mean(watch.losses[-10:]):.4f}", refresh=False)
                if in_epoch in evaluate_at or out.steps >= total:
                    watch.check()
                    out.train_seconds += time.perf_counter() - started
                    interim = interim_score is not None and in_epoch < steps_per_epoch and out.steps < total
                    stop = evaluate(epoch, interim)
                    started = time.perf_counter()
                    if stop is not None:
                        break
            out.train_seconds += time.perf_counter() - started
            if stop is not None:
                out.stopped = stop
                break
    finally:
        bar.close()
    return out


def eval_points(steps_per_epoch: int, evals_per_epoch: int) -> set[int]:
    """The steps within an epoch after which it is scored: evenly spaced, the last one at its end."""
    count = min(evals_per_epoch, steps_per_epoch)
    return {round(k * steps_per_epoch / count) for k in range(1, count + 1)}


def restore(model: Any, state: dict[str, torch.Tensor]) -> None:
    """Copy `state` (name -> tensor) back into the model's parameters."""
    current = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in state.items():
            current[name].copy_(tensor)


class _Watch:
    """An epoch's training losses and gradient norms, read back to the host every `every` steps.

    Every step's values are kept until read, so a failure names the first step that went wrong,
    read late or not. Gradient norms only count when `norms_fatal`: under fp16 loss scaling an
    overflowing step is skipped by the scaler, not a divergence.
    """

    def __init__(self, lr: float, every: int, *, norms_fatal: bool) -> None:
        self.lr, self.every, self.norms_fatal = lr, every, norms_fatal
        self.losses: list[float] = []  # this epoch's losses read so far
        self._pending: list[tuple[int, torch.Tensor, torch.Tensor | None]] = []  # (step, loss, norm)

    def new_epoch(self) -> None:
        self.losses = []

    def add(self, step: int, loss: torch.Tensor, norm: torch.Tensor | None) -> None:
        self._pending.append((step, loss.detach(), norm if self.norms_fatal else None))
        if len(self._pending) >= self.every:
            self.check()

    def check(self) -> None:
        """Read the pending values (one wait for the device) and raise TrialFailed at the first non-finite one."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        norms = [n.float() for _, _, n in pending if n is not None]
        values = torch.stack([loss.float() for _, loss, _ in pending] + norms).tolist()  # the one copy to the host
        losses, norm_values = values[: len(pending)], iter(values[len(pending) :])
        for (step, _, norm), value in zip(pending, losses, strict=True):
            if not math.isfinite(value):
                raise TrialFailed(f"training loss became {value} at step {step} (learning rate {self.lr:g})")
            if norm is not None and not math.isfinite(norm_value := next(norm_values)):
                raise TrialFailed(f"gradient norm became {norm_value} at step {step}")
            self.losses.append(value)
