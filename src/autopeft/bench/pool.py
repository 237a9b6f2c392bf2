"""Real low-fidelity evaluations of random configurations, for the
optimiser benchmark's pool problems (`autopeft bench optimizers --problem pool:PATH.csv`).

Resumable: rows already in the CSV are skipped, so the command can be stopped at any moment and
run again, in this session or a later one. The first `--noise-configs` configurations are also
trained with `--noise-seeds` extra seeds, so the spread across configurations can be compared with
the seed noise.
"""

from __future__ import annotations

import csv
import json
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autopeft.errors import UserError

if TYPE_CHECKING:
    from autopeft.engine.fidelity import Fidelity
    from autopeft.search.record import TaskArgs
POOL_FIDELITY = "epochs=3,max_train_samples=1000,max_eval_samples=400,batch_size=16,lr=5e-4"
COLUMNS = ("config", "metric", "params", "percent", "seed", "train_seconds", "eval_seconds")


def draw_configs(space, count: int, seed: int) -> list:
    """`count` distinct configurations drawn uniformly from `space`, the same for the same seed."""
    rng = random.Random(seed)
    seen: dict = {}
    while len(seen) < count:
        seen.setdefault(space.sample(rng), None)
    return list(seen)


def _jobs(configs: list, seed: int, noise_configs: int, noise_seeds: int) -> list[tuple]:
    """(config, training seed): the first few configurations with every noise seed (so the noise is
    known early), then every other configuration once."""
    jobs = [(c, seed + k) for c in configs[:noise_configs] for k in range(max(noise_seeds, 1))]
    return jobs + [(c, seed) for c in configs[noise_configs:]]


def summarise(rows: list[dict]) -> dict:
    """Spread of the metric across configurations (first seed) against seed noise (repeated configs)."""
    by_config: dict[str, list[float]] = {}
    for row in rows:
        by_config.setdefault(row["config"], []).append(float(row["metric"]))
    firsts = [values[0] for values in by_config.values()]
    repeated = [values for values in by_config.values() if len(values) > 1]
    noise = statistics.fmean(statistics.stdev(v) for v in repeated) if repeated else None
    spread = statistics.stdev(firsts) if len(firsts) > 1 else None
    return {
        "configs": len(by_config),
        "rows": len(rows),
        "metric_min": min(firsts) if firsts else None,
        "metric_max": max(firsts) if firsts else None,
        "spread_std": spread,
        "seed_noise_std": noise,
        "spread_over_noise": spread / noise if spread is not None and noise else None,
    }


def _read(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise UserError(f"{path} is not a pool file of this version (columns {', '.join(COLUMNS)})")
        return list(reader)


@dataclass(frozen=True)
class PoolRequest:
    """A pool to make or continue: `configs` random configurations of `space`, trained at `fidelity`."""

    model: str
    data: TaskArgs
    fidelity: Fidelity
    out: Path  # the pool CSV (created or continued); its settings go in a .json beside it
    space: str = "paper"
    configs: int = 300
    seed: int = 0  # the configuration draw's and training's
    noise_configs: int = 8  # configurations also trained with more seeds ...
    noise_seeds: int = 3  # ... this many each
    jobs: int = 1
    device: str | None = None

    def __post_init__(self) -> None:
        if self.configs < 2:
            raise UserError(f"--configs must be at least 2, got {self.configs}")
        if self.jobs < 1:
            raise UserError(f"--jobs must be at least 1, got {self.jobs}")
        from autopeft.paths import check_output_file

        check_output_file(self.out)


def make_pool(r: PoolRequest, log: Callable[[str], None]) -> dict[str, Any]:
    """Train the configurations the pool lacks, appending each row as it finishes; the pool's summary."""
    from autopeft import models
    from autopeft.engine import Fidelity
    from autopeft.engine.workers import Job, run_jobs
    from autopeft.space import SearchSpace
    from autopeft.tasks import load_task

    fidelity = r.fidelity
    data = r.data.load_kwargs()
    task = load_task(**data)
    dims = models.dims_of(r.model)
    space = SearchSpace(dims.num_layers, dims.hidden_size, r.space)
    rows = _read(r.out)
    done = {(row["config"], int(row["seed"])) for row in rows}
    meta = r.out.with_suffix(".json")
    setting = {"model": r.model, "task": task.name, "space": r.space, "fidelity": fidelity.to_dict()}
    stored = json.loads(meta.read_text())["setting"] if meta.is_file() else setting
    # a pool made before a fidelity knob existed trained with its default
    stored = {**stored, "fidelity": Fidelity.from_dict(stored["fidelity"]).to_dict()}
    if stored != setting:
        raise UserError(f"{r.out} was made with other settings ({meta}); use another --out")
    r.out.parent.mkdir(parents=True, exist_ok=True)
    jobs = [
        (c, s)
        for c, s in _jobs(draw_configs(space, r.configs, r.seed), r.seed, r.noise_configs, r.noise_seeds)
        if (c.to_json(), s) not in done
    ]
    log(f"{len(done)} rows in {r.out}; {len(jobs)} to go")
    failures = r.out.with_name(r.out.stem + "-failed.csv")
    by_job = {Job(task.name, c.to_json(), s, mode="search"): c for c, s in jobs}
    finished = run_jobs(list(by_job), r.model, {task.name: data}, fidelity, r.jobs, r.device)
    for i, (job, result, _) in enumerate(finished, start=1):
        config, seed = by_job[job], job.seed
        if not result.ok:
            with failures.open("a", newline="") as f:
                csv.writer(f).writerow([config.to_json(), seed, result.reason])
            log(f"[{i}/{len(jobs)}] {config.describe()}: failed: {result.reason}")
            continue
        row = {
            "config": config.to_json(),
            "metric": f"{result.headline:.6f}",
            "params": result.params,
            "percent": f"{result.percent:.6f}",
            "seed": seed,
            "train_seconds": f"{result.train_seconds:.2f}",
            "eval_seconds": f"{result.eval_seconds:.2f}",
        }
        new_file = not r.out.is_file()
        with r.out.open("a", newline="") as f:  # one row at a time: a kill loses the running trials only
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            if new_file:
                writer.writeheader()
            writer.writerow(row)
        rows.append(row)
        if not meta.is_file():
            meta.write_text(json.dumps({"setting": setting, "metric": task.metric_name}, indent=2) + "\n")
        log(
            f"[{i}/{len(jobs)}] {config.describe()} seed {seed}: {task.metric_name} {result.headline:.4f} "
            f"({result.train_seconds:.0f} s)"
        )
    summary = summarise(rows)
    if meta.is_file():
        meta.write_text(
            json.dumps({"setting": setting, "metric": task.metric_name, "summary": summary}, indent=2) + "\n"
        )
    return {"pool": str(r.out), "task": task.name, "metric_name": task.metric_name, **summary}
