"""The engine against the original way of running trials, on the same configuration and data.

(a) reference: per trial, the backbone is loaded from disk, every example is padded to 128 tokens
and the Hugging Face Trainer (adapters' AdapterTrainer) trains, as the original AutoPEFT code did
(see `autopeft.bench.reference`); (b) this engine: the backbone loaded once, data tokenised once,
length-grouped dynamic padding. Both use the same subsets, seeds, optimiser settings and metrics.

For each seed the engine trial runs first, then the reference trial, so both see the same machine
load. Then the engine runs more trials, up to `trials`, to show its resident memory stays flat.
Training speed is training examples over training seconds (evaluation, loading and tokenising
excluded on both sides); seconds per trial is everything. On a GPU (`device`), memory is torch's
peak allocation per trial and what stays allocated between trials; `precision` runs both sides
under autocast (the Trainer through its own bf16 / fp16 switches).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autopeft.errors import UserError


@dataclass(frozen=True)
class EngineBench:
    """What `bench engine` trains: one item on one task, both ways."""

    task: str
    model: str = "minilm"
    glue_dir: str | None = None
    item: Any = "pfeiffer"  # a method name or a PEFTConfig
    train_samples: int = 1000
    eval_samples: int = 500
    epochs: int = 1
    seeds: tuple[int, ...] = (40, 41)
    trials: int = 20  # engine trials in all, for the memory check
    batch_size: int = 32
    lr: float | None = None  # None: by method family
    max_length: int = 128
    progress: bool | None = None
    device: str | None = None  # None: cuda when available
    precision: str = "fp32"  # fp32, bf16 or fp16 (see Fidelity.precision)

    def __post_init__(self) -> None:
        from autopeft.engine.fidelity import PRECISIONS

        if self.trials < len(self.seeds):
            raise UserError(f"--trials {self.trials} is fewer than the {len(self.seeds)} seeds")
        if self.precision not in PRECISIONS:
            raise UserError(f"unknown precision {self.precision!r}; known: {', '.join(PRECISIONS)}")


def run_engine_bench(bench: EngineBench, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train both ways, log a line per trial, and return the figures (the bench's closing JSON)."""
    from autopeft.bench.reference import run_baseline_trial
    from autopeft.engine import DEFAULT_LRS, Engine, Fidelity, family_of
    from autopeft.engine.devices import check_device, resolve_device
    from autopeft.engine.memory import rss_mb
    from autopeft.tasks import load_task

    check_device(bench.device, bench.precision)
    device = resolve_device(bench.device)
    seeds = list(bench.seeds)
    fidelity = Fidelity(
        epochs=bench.epochs,
        max_train_samples=bench.train_samples,
        max_eval_samples=bench.eval_samples,
        batch_size=bench.batch_size,
        lr=bench.lr,
        max_length=bench.max_length,
        precision=bench.precision,
    )
    task = load_task(bench.task, glue_dir=bench.glue_dir)
    started = time.perf_counter()
    engine = Engine(bench.model, task, device=device, progress=bench.progress)
    setup_seconds = time.perf_counter() - started
    item = engine.resolve(bench.item)
    lr = fidelity.lr or DEFAULT_LRS[family_of(item)]
    plan = fidelity.plan(task, "final")  # the views the engine will train and score on
    label = item.name if isinstance(bench.item, str) else item.describe()
    log(
        f"bench engine: {task.name}, {bench.model}, {label}, {len(plan.train)} train / {len(plan.evals[''])} dev, "
        f"{bench.epochs} epoch(s), lr {lr:g}, seeds {','.join(map(str, seeds))}, {device} {bench.precision}; "
        f"engine setup {setup_seconds:.1f} s"
    )

    engine_runs: list[Any] = []
    baseline_runs: list[Any] = []
    rss: list[float] = []
    held: list[float] = []  # GPU memory still allocated after each engine trial (the backbone, cached tokens)
    for i in range(bench.trials):
        seed = seeds[i] if i < len(seeds) else seeds[-1] + i
        result = engine.run_trial(item, fidelity, seed=seed, mode="final")
        if not result.ok:
            raise UserError(f"engine trial failed: {result.reason}")
        engine_runs.append(result)
        rss.append(rss_mb())
        held.append(_allocated_mb(device))
        log(
            f"engine   trial {i + 1:2d} seed {seed}: {task.metric_name} {result.headline:.4f} | "
            f"{result.examples_per_second:6.1f} ex/s | {result.wall_seconds:6.1f} s/trial | RSS {rss[-1]:.0f} MB | "
            f"peak {result.peak_memory_mb:.0f} MB"
        )
        if i < len(seeds):
            base = run_baseline_trial(bench.model, task, item, fidelity, lr, seed, plan.train, plan.evals[""], device)
            baseline_runs.append(base)
            log(
                f"baseline trial {i + 1:2d} seed {seed}: {task.metric_name} {base.headline:.4f} | "
                f"{base.examples_per_second:6.1f} ex/s | {base.wall_seconds:6.1f} s/trial "
                f"(load {base.load_seconds:.1f} s) | peak {base.peak_memory_mb:.0f} MB"
            )

    compared = engine_runs[: len(seeds)]
    engine_speed = sum(r.train_examples * r.epochs_run for r in compared) / sum(r.train_seconds for r in compared)
    baseline_speed = sum(b.train_examples for b in baseline_runs) / sum(b.train_seconds for b in baseline_runs)
    # seconds per trial over the paired trials only: they ran under the same machine load as the baseline's
    engine_trial = statistics.fmean(r.wall_seconds for r in compared)
    baseline_trial = statistics.fmean(b.wall_seconds for b in baseline_runs)
    engine_scores = [r.headline for r in compared]
    baseline_scores = [b.headline for b in baseline_runs]
    growth = 100 * (rss[-1] - rss[0]) / rss[0]
    engine_all = statistics.fmean(r.wall_seconds for r in engine_runs)
    return {
        "task": task.name,
        "model": bench.model,
        "device": device,
        "precision": bench.precision,
        "config": engine_runs[0].config,
        "train_examples": len(plan.train),
        "eval_examples": len(plan.evals[""]),
        "epochs": bench.epochs,
        "seeds": seeds,
        "metric_name": task.metric_name,
        "baseline_ex_per_s": round(baseline_speed, 2),
        "engine_ex_per_s": round(engine_speed, 2),
        "ratio": round(engine_speed / baseline_speed, 3),
        "baseline_s_per_trial": round(baseline_trial, 2),
        "engine_s_per_trial": round(engine_trial, 2),
        "engine_s_per_trial_all": round(engine_all, 2),
        "engine_trials_per_hour": round(3600 / engine_all, 1),
        "engine_peak_memory_mb": max(r.peak_memory_mb for r in engine_runs),
        "baseline_peak_memory_mb": max(b.peak_memory_mb for b in baseline_runs),
        "engine_setup_s": round(setup_seconds, 2),
        "baseline_scores": baseline_scores,
        "engine_scores": engine_scores,
        "baseline_accuracy": [b.metrics.get("accuracy") for b in baseline_runs],
        "engine_accuracy": [r.metrics.get("accuracy") for r in compared],
        "rss_after_first_mb": round(rss[0], 1),
        "rss_after_last_mb": round(rss[-1], 1),
        "rss_growth_percent": round(growth, 2),
        "device_memory_after_first_mb": round(held[0], 1) if device.startswith("cuda") else None,
        "device_memory_after_last_mb": round(held[-1], 1) if device.startswith("cuda") else None,
        "trials": len(rss),
    }


def _allocated_mb(device: str) -> float:
    """GPU memory torch holds allocated now (0 off CUDA)."""
    if not device.startswith("cuda"):
        return 0.0
    import torch

    return torch.cuda.memory_allocated(device) / 2**20
