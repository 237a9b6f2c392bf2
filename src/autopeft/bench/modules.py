"""Does every module kind learn at the search budget? Each kind alone at three sizes, and two mixed
configurations, on a few tasks with a few seeds, scored on the search's held-out slice of train.

A run "at the floor" scores no better than a constant prediction (the training subset's majority
class; for regression its mean, correlation 0) on that slice: it learnt nothing. The bench prints,
per module kind, the share of runs at the floor and mean ± std, and, over a grid of learning rates
(`lrs`), which rate each kind learns best at: the evidence behind the fidelity's `module_rates`.

Resumable: every finished run is a row of a CSV (`out`), skipped when the bench runs again.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autopeft.errors import UserError
from autopeft.modules import MODULE_KINDS, MODULES
from autopeft.space import PEFTConfig

if TYPE_CHECKING:
    from autopeft.engine.fidelity import Fidelity

# The GLUE bench's search fidelity at its PEFT rate (see autopeft.bench.glue).
MODULES_FIDELITY = "epochs=2,max_train_samples=1000,max_eval_samples=400,batch_size=16,pooling=mean,lr=1e-3"
SIZES = {"small": 64, "h/16": 16, "h/2": 2}  # label -> the divisor of the hidden size
COLUMNS = ("task", "label", "kind", "config", "seed", "lr", "metric", "floor", "train_seconds")
FLOOR_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ModulesBench:
    """Which tasks, seeds and learning rates; `lrs` None: each run at the fidelity's own rate."""

    model: str
    tasks: tuple[str, ...]
    fidelity: Fidelity
    out: Path
    seeds: tuple[int, ...] = (0, 1, 2)
    lrs: tuple[float, ...] | None = None
    glue_dir: str | None = None
    jobs: int = 1
    device: str | None = None
    kinds: tuple[str, ...] = MODULES
    sizes: tuple[str, ...] = tuple(SIZES)  # labels of SIZES
    mixed: bool = True  # also the two mixed configurations

    def __post_init__(self) -> None:
        if not self.tasks or not self.seeds:
            raise UserError("bench modules needs at least one task and one seed")
        unknown = [k for k in self.kinds if k not in MODULE_KINDS]
        if unknown:
            raise UserError(f"unknown module kind {unknown[0]!r}; known: {', '.join(MODULES)}")
        if self.lrs is not None and (not self.lrs or any(not (lr > 0 and math.isfinite(lr)) for lr in self.lrs)):
            raise UserError("--lrs must be positive learning rates")
        if self.jobs < 1:
            raise UserError(f"--jobs must be at least 1, got {self.jobs}")
        bad = [s for s in self.sizes if s not in SIZES]
        if bad or not self.sizes:
            raise UserError(f"unknown size {bad[0] if bad else ''!r}; known: {', '.join(SIZES)}")
        from autopeft.paths import check_output_file

        check_output_file(self.out)


def nearest_choice(choices: Sequence[int], target: float) -> int:
    """The allowed size closest to `target` on a log scale (LoRA ranks do not follow h / 2^k)."""
    return min(choices, key=lambda c: (abs(math.log(c / target)), c))


def bench_configs(
    num_layers: int, hidden: int, kinds: Sequence[str], sizes: Sequence[str] = tuple(SIZES), mixed: bool = True
) -> list[tuple[str, str, PEFTConfig]]:
    """(label, kind, configuration): each kind alone at each size, in every layer; then two mixes."""
    every = range(num_layers)
    out = []
    for kind in kinds:
        choices = MODULE_KINDS[kind].choices(hidden)
        for label, divisor in ((label, SIZES[label]) for label in sizes):
            size = nearest_choice(choices, hidden / divisor)
            out.append((f"{kind} {label}", kind, PEFTConfig.shared(every, **{kind: size})))
    if not mixed:
        return out
    mid = nearest_choice(MODULE_KINDS["serial"].choices(hidden), hidden / 16)
    small = nearest_choice(MODULE_KINDS["prefix"].choices(hidden), hidden / 64)
    out.append(
        ("mixed: serial+parallel+prefix", "mixed", PEFTConfig.shared(every, serial=mid, parallel=mid, prefix=small))
    )
    half = range(0, num_layers, 2)
    out.append(("mixed: parallel+prefix, half the layers", "mixed", PEFTConfig.shared(half, parallel=mid, prefix=mid)))
    return out


def run_modules_bench(bench: ModulesBench, log: Callable[[str], None]) -> dict[str, Any]:
    """Train every run the CSV lacks (each row appended as it finishes); the summary by kind and rate."""
    from autopeft import models
    from autopeft.engine.workers import Job, run_jobs
    from autopeft.tasks import load_task

    dims = models.dims_of(bench.model)
    configs = bench_configs(dims.num_layers, dims.hidden_size, bench.kinds, bench.sizes, bench.mixed)
    data = {t: {"name": t, "glue_dir": bench.glue_dir} for t in bench.tasks}
    floors = {}
    for task in bench.tasks:
        loaded = load_task(**data[task])
        floors[task] = loaded.constant_prediction_scores(bench.fidelity.plan(loaded, "search"))[loaded.metric_name]
    rows = _read(bench.out)
    done = {(r["task"], r["config"], int(r["seed"]), float(r["lr"])) for r in rows}
    lrs = bench.lrs or (bench.fidelity.lr,)
    if None in lrs:
        raise UserError("give the fidelity a learning rate (lr=...) or --lrs")
    todo: dict[Job, tuple[str, str]] = {}
    for lr in lrs:
        for task in bench.tasks:
            for label, kind, config in configs:
                for seed in bench.seeds:
                    if (task, config.to_json(), seed, float(lr)) not in done:
                        job = Job(task, config.to_json(), seed, mode="search", fidelity=bench.fidelity.replace(lr=lr))
                        todo[job] = (label, kind)
    log(f"{len(rows)} runs in {bench.out}; {len(todo)} to go")
    bench.out.parent.mkdir(parents=True, exist_ok=True)
    for i, (job, result, _) in enumerate(
        run_jobs(list(todo), bench.model, data, bench.fidelity, bench.jobs, bench.device), 1
    ):
        label, kind = todo[job]
        score = result.headline if result.ok else math.nan  # a diverged run learnt nothing
        row = {
            "task": job.task,
            "label": label,
            "kind": kind,
            "config": job.item,
            "seed": job.seed,
            "lr": job.fidelity.lr,
            "metric": f"{score:.6f}",
            "floor": f"{floors[job.task]:.6f}",
            "train_seconds": f"{result.train_seconds:.2f}",
        }
        _append(bench.out, row)
        rows.append(row)
        what = f"{score:.4f}" if result.ok else f"failed: {result.reason}"
        log(f"[{i}/{len(todo)}] {job.task} {label} lr {job.fidelity.lr:g} seed {job.seed}: {what}")
    return summarise(rows, bench.tasks)


def at_or_below_floor(row: dict[str, Any]) -> bool:
    """The run scored no more than its floor (a constant prediction's score), or nothing (NaN): it learnt
    nothing. Unlike `autopeft.floor.at_floor` (exactly the floor), a score below it counts too."""
    score = float(row["metric"])
    return math.isnan(score) or score <= float(row["floor"]) + FLOOR_TOLERANCE


def summarise(rows: list[dict[str, Any]], tasks: Sequence[str]) -> dict[str, Any]:
    """By task, rate and kind: runs, share at the floor, mean ± std of the score (the mean over seeds'
    std for one configuration: the seed noise); and by task and kind, the rate with the best mean."""
    table: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for task in tasks:
        for lr in sorted({float(r["lr"]) for r in rows if r["task"] == task}):
            for kind in dict.fromkeys(r["kind"] for r in rows if r["task"] == task):
                mine = [r for r in rows if r["task"] == task and float(r["lr"]) == lr and r["kind"] == kind]
                if not mine:
                    continue
                scores = [0.0 if math.isnan(float(r["metric"])) else float(r["metric"]) for r in mine]
                by_config: dict[str, list[float]] = {}
                for r, s in zip(mine, scores, strict=True):
                    by_config.setdefault(r["config"], []).append(s)
                seed_stds = [statistics.stdev(v) for v in by_config.values() if len(v) > 1]
                table.setdefault(task, {}).setdefault(f"{lr:g}", {})[kind] = {
                    "runs": len(mine),
                    "at_floor": sum(at_or_below_floor(r) for r in mine) / len(mine),
                    "mean": statistics.fmean(scores),
                    "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                    "seed_std": statistics.fmean(seed_stds) if seed_stds else None,
                }
    best: dict[str, dict[str, str]] = {}
    for task, by_lr in table.items():
        kinds = {k for cells in by_lr.values() for k in cells}
        for kind in kinds:
            cells = {lr: cells[kind] for lr, cells in by_lr.items() if kind in cells}
            best.setdefault(task, {})[kind] = max(cells, key=lambda lr: (-cells[lr]["at_floor"], cells[lr]["mean"]))
    return {"table": table, "best_lr": best}


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise UserError(f"{path} is not a modules bench file (columns {', '.join(COLUMNS)})")
        return list(reader)


def _append(path: Path, row: dict[str, Any]) -> None:
    new = not path.is_file()
    with path.open("a", newline="") as f:  # one row at a time: a kill loses the running runs only
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)
