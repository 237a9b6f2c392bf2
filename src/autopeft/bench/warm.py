"""Warm starts on benchmark problems: a run on a source problem seeds runs on a target problem, compared
with cold runs of the same seeds (hypervolume at WARM_AT trials, when warm reaches cold's final)."""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autopeft.bench.optimizers import BenchSettings, Contender, Run, _jsonable, _load_run, _revision, run_one
from autopeft.bench.problems import Problem
from autopeft.errors import UserError
from autopeft.space import PEFTConfig

if TYPE_CHECKING:
    from autopeft.optim.warm import WarmStart

WARM_MODES: tuple[str, ...] = ("both", "enqueue", "model")
"""both: enqueue the source's Pareto configurations and model its trials with a task feature;
enqueue: the configurations only (then random starts as usual); model: the trials in the GP only."""
WARM_AT: tuple[int, ...] = (10, 20, 40)  # trials at which warm and cold starts are compared


def source_warm_start(source: Problem, run: Run, target: Problem, mode: str, settings: BenchSettings) -> WarmStart:
    """The warm start a run on `source` gives a search on `target`: its observed metrics (the same noise
    stream as the run saw), with the front, the trials or both as `mode` says."""
    from autopeft.optim.budget import Budget
    from autopeft.optim.warm import WarmStart, from_observations

    if mode not in WARM_MODES:
        raise UserError(f"unknown warm-start mode {mode!r}; known: {', '.join(WARM_MODES)}")
    if (source.space, source.dims) != (target.space, target.dims):
        raise UserError(f"cannot warm-start {target.name} from {source.name}: another model or space")
    noise = random.Random(f"noise:{run.seed}")
    configs = [PEFTConfig.from_json(c) for c in run.configs]
    observed = [source.observe(c, noise) for c in configs]
    budget = Budget.of(target.space, target.dims, settings.max_params, settings.max_percent)
    warm = from_observations(source.name, configs, observed, budget)
    if mode == "enqueue":
        return WarmStart(warm.source, (), (), warm.front)
    if mode == "model":
        return WarmStart(warm.source, warm.configs, warm.metrics, ())
    return warm


def run_warm(
    target: Problem,
    source: Problem,
    source_runs: Sequence[Run],
    contenders: Sequence[Contender],
    modes: Sequence[str],
    trials: int,
    settings: BenchSettings,
    out: Path,
    log: Callable[[str], None] = print,
) -> list[Run]:
    """Each AutoPEFT contender warm-started, in each mode, from its own run on `source` with the same seed.

    `source_runs` are the contenders' cold runs on `source` (labels as the contenders'); each warm run is
    saved under `out/runs` as `LABEL+warm-MODE-seedS.json`, reused when the problem, source and settings match.
    """
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    by_key = {(r.label, r.seed): r for r in source_runs}
    done = []
    for contender in (c for c in contenders if c.name.startswith("autopeft")):
        for mode in modes:
            label = f"{contender.label}+warm-{mode}"
            for (source_label, seed), source_run in sorted(by_key.items()):
                if source_label != contender.label:
                    continue
                key = {
                    "problem": target.name,
                    "max_hv": target.max_hv,
                    "settings": _jsonable(asdict(settings)),
                    "warm": {"from": source.name, "mode": mode, "source_run": source_run.configs},
                    **_revision(contender),
                }
                path = runs_dir / f"{label.replace(':', '_')}-seed{seed}.json"
                run = _load_run(path, key, trials)
                if run is None:
                    start = time.perf_counter()
                    warm = source_warm_start(source, source_run, target, mode, settings)
                    run = run_one(target, contender, seed, trials, settings, warm=warm, label=label)
                    path.write_text(json.dumps({**key, "trials": trials, "run": asdict(run)}))
                    log(
                        f"{label} seed {seed}: hv@{trials} = {run.hv_curve(target)[-1]:.4f} "
                        f"({time.perf_counter() - start:.0f} s)"
                    )
                done.append(run)
    return done


def warm_summary(problem: Problem, cold: Sequence[Run], warm: Sequence[Run], at: Sequence[int] = WARM_AT) -> dict:
    """Hypervolume at `at` trials (median and spread over seeds) of cold and warm runs, and for each warm
    label the first trial at which its median curve reaches the cold start's median at the last of `at`."""
    curves: dict[str, list[list[float]]] = {}
    for run in [*cold, *warm]:
        curves.setdefault(run.label, []).append(run.hv_curve(problem))
    return curves_summary(curves, at)


def curves_summary(curves: dict[str, list[list[float]]], at: Sequence[int] = WARM_AT) -> dict:
    """label -> hypervolume at `at` trials (median over its seeds' curves, and their spread); a label
    `<cold>+warm-<mode>` also gets the first trial at which its median curve reaches `<cold>`'s final median."""
    table: dict[str, dict[str, Any]] = {}
    for label, runs in curves.items():
        length = min(len(c) for c in runs)
        median = [statistics.median(c[t] for c in runs) for t in range(length)]
        row = {}
        for n in (n for n in at if n <= length):
            values = [c[n - 1] for c in runs]
            row[f"hv@{n}"] = round(statistics.median(values), 4)
            row[f"spread@{n}"] = round(max(values) - min(values), 4)
        table[label] = {"row": row, "median": median}
    for label, entry in table.items():
        base = label.split("+warm-")[0]
        if "+warm-" in label and base in table:
            goal = table[base]["median"][-1]
            entry["row"]["reaches_cold_final_at"] = next(
                (t + 1 for t, v in enumerate(entry["median"]) if v >= goal), None
            )
    return {label: entry["row"] for label, entry in table.items()}
