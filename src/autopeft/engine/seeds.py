"""One configuration or manual method trained once per seed: the runs and their summary (`autopeft train`)."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autopeft.errors import UserError

if TYPE_CHECKING:
    from autopeft.engine.fidelity import Fidelity
    from autopeft.engine.result import TrialResult
    from autopeft.search.record import TaskArgs


@dataclass(frozen=True)
class SeedRuns:
    """Train `item` (a method name or a PEFTConfig) on a task once per seed."""

    model: str
    data: TaskArgs
    item: Any
    fidelity: Fidelity
    seeds: tuple[int, ...]
    mode: str = "final"  # final: train on train, score dev; search: score a held-out slice of train
    out: Path | None = None  # each seed's metrics, configuration and adapters under out/seed_<seed>
    device: str | None = None
    progress: bool | None = None

    def __post_init__(self) -> None:
        if not self.seeds:
            raise UserError("--seeds is empty")


def train_seeds(request: SeedRuns, log: Callable[[str], None]) -> dict[str, Any]:
    """Train every seed (a line each through `log`, after a header); the summary, also written to
    `out/summary.json`. Its `n` is the number of seeds that trained."""
    from autopeft import models
    from autopeft.engine import Engine
    from autopeft.engine.devices import check_device
    from autopeft.paths import check_output_folder
    from autopeft.space import PEFTConfig

    # every check before the backbone loads or anything trains
    check_device(request.device, request.fidelity.precision, 1, request.model)
    if request.out is not None:
        check_output_folder(request.out)
    if isinstance(request.item, PEFTConfig):
        dims = models.dims_of(request.model)
        request.item.check_layers(dims.num_layers)
        request.item.check_sizes(dims.hidden_size)
    task = request.data.load()
    engine = Engine(request.model, task, device=request.device, progress=request.progress)
    item = engine.resolve(request.item)
    count = engine.count(item)
    label = item.name if isinstance(request.item, str) else item.describe()
    log(
        f"{task.name} ({len(task.train)} train, {len(task.dev) if task.dev else 0} dev) | {request.model} | {label} | "
        f"{count.peft:,} params ({count.percent:.4f}%) | {request.fidelity.describe()}"
    )
    results = []
    for seed in request.seeds:
        out_dir = request.out / f"seed_{seed}" if request.out else None
        result = engine.run_trial(item, request.fidelity, seed=seed, mode=request.mode, out_dir=out_dir)
        results.append(result)
        log(seed_line(result))
    ok = [r for r in results if r.ok]
    scores = [r.headline for r in ok]
    summary = {
        "task": task.name,
        "model": request.model,
        "mode": request.mode,
        "config": results[0].config,
        "metric_name": task.metric_name,
        "mean": statistics.fmean(scores) if scores else None,
        "std": statistics.stdev(scores) if len(scores) > 1 else 0.0 if scores else None,
        "n": len(scores),
        "seeds": list(request.seeds),
        "scores": {str(r.seed): r.headline for r in results},
        "metrics_mean": _mean_metrics(ok),
        "failed": {str(r.seed): r.reason for r in results if not r.ok},
        "params": count.peft,
        "head_params": count.head,
        "percent": round(count.percent, 6),
        "fidelity": request.fidelity.to_dict(),
    }
    if request.out:
        request.out.mkdir(parents=True, exist_ok=True)
        (request.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def seed_line(result: TrialResult) -> str:
    if not result.ok:
        return f"seed {result.seed}: failed: {result.reason}"
    others = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items() if k != result.metric_name)
    return (
        f"seed {result.seed}: {result.metric_name} {result.headline:.4f}"
        + (f" ({others})" if others else "")
        + f" | epochs {result.epochs_run:g}, best {result.best_epoch}, {result.stopped}"
        + f" | {result.train_seconds:.1f} s train, {result.examples_per_second:.1f} ex/s"
        + f", peak {result.peak_memory_mb:.0f} MB"
    )


def _mean_metrics(results: list[TrialResult]) -> dict[str, float]:
    if not results:
        return {}
    keys = [k for k in results[0].metrics if all(k in r.metrics for r in results)]
    return {k: statistics.fmean(r.metrics[k] for r in results) for k in keys}
