"""Run many independent trials, in this process or in worker processes that share the CPU (or a GPU).

On a small CPU, single-thread workers side by side train more examples per second than one process
with every thread (two workers on two cores: about 30 % more for MiniLM on STS-B), because the
matrices of a small model at batch 16 do not keep several threads busy. Each worker loads the
backbone once per task and keeps it; results come back as `TrialResult`s to the caller, which
alone writes them down (so a kill loses only the trials that were running). On a GPU the workers
share the device, each with 1/workers of its memory; more workers than fit are refused before any work.

    jobs = [Job("rte", "pfeiffer", seed) for seed in (0, 1, 2)]
    for job, result, cpu_seconds in run_jobs(jobs, "minilm", {"rte": {"name": "rte", "glue_dir": path}}, fidelity):
        ...
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import as_completed
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autopeft.engine.fidelity import Fidelity
from autopeft.engine.result import TrialResult
from autopeft.processes import spawn_pool

if TYPE_CHECKING:
    from autopeft.methods import Method
    from autopeft.space import PEFTConfig


@dataclass(frozen=True)
class Job:
    """One trial: a task (a key of the `tasks` given to `run_jobs`), what to train, a seed.

    item: a baseline method's name, or a configuration as `PEFTConfig.to_json()` text.
    """

    task: str
    item: str
    seed: int
    mode: str = "final"
    fidelity: Fidelity | None = None  # None: the fidelity given to `run_jobs`


def decode_item(item: str) -> PEFTConfig | Method:
    """A job's item as what it trains: the configuration its JSON describes, or the method it names."""
    from autopeft.methods import get_method
    from autopeft.space import PEFTConfig

    return PEFTConfig.from_json(item) if item.lstrip().startswith("{") else get_method(item)


def run_jobs(
    jobs: Sequence[Job],
    model: str,
    tasks: Mapping[str, Mapping[str, Any]],
    fidelity: Fidelity,
    workers: int = 1,
    device: str | None = None,
) -> Iterator[tuple[Job, TrialResult, float]]:
    """Yield `(job, result, cpu_seconds)` for every job: in order with one worker, in order of completion
    with more. cpu_seconds: processor time of the process that ran it (all its threads) during the trial.

    tasks: task key -> keyword arguments of `autopeft.tasks.load_task` (picklable, so workers can load it).
    Raises UserError before any work when the device cannot run the jobs' precisions or that many at once.
    """
    from autopeft.engine.devices import check_device, resolve_device

    if not jobs:
        return
    missing = sorted({job.task for job in jobs} - set(tasks))
    if missing:
        raise ValueError(f"no task data given for {', '.join(missing)}")
    for precision in sorted({(job.fidelity or fidelity).precision for job in jobs}):
        check_device(device, precision, min(workers, len(jobs)), model)
    if workers <= 1:
        runner = _Runner(model, dict(tasks), device, progress=None)
        for job in jobs:
            yield job, *runner.timed(job, fidelity)
        return
    shared = resolve_device(device)
    with spawn_pool(workers, _start_worker, (model, dict(tasks), device), share_device=shared) as pool:
        futures = {pool.submit(_worker_run, job, fidelity): job for job in jobs}
        for future in as_completed(futures):
            yield futures[future], *future.result()


class _Runner:
    """Engines by task, each made when first needed."""

    def __init__(self, model: str, tasks: dict[str, Mapping[str, Any]], device: str | None, progress: bool | None):
        self.model, self.tasks, self.device, self.progress = model, tasks, device, progress
        self.engines: dict[str, Any] = {}

    def run(self, job: Job, fidelity: Fidelity) -> TrialResult:
        from autopeft.engine.core import Engine
        from autopeft.tasks import load_task

        if job.task not in self.engines:
            data = load_task(**self.tasks[job.task])
            self.engines[job.task] = Engine(self.model, data, device=self.device, progress=self.progress)
        engine = self.engines[job.task]
        return engine.run_trial(decode_item(job.item), job.fidelity or fidelity, seed=job.seed, mode=job.mode)

    def timed(self, job: Job, fidelity: Fidelity) -> tuple[TrialResult, float]:
        start = time.process_time()
        result = self.run(job, fidelity)
        return result, time.process_time() - start


_runner: _Runner | None = None  # the worker process's own


def _start_worker(model: str, tasks: dict[str, Mapping[str, Any]], device: str | None) -> None:
    global _runner
    _runner = _Runner(model, tasks, device, progress=False)


def _worker_run(job: Job, fidelity: Fidelity) -> tuple[TrialResult, float]:
    assert _runner is not None, "worker not started"
    return _runner.timed(job, fidelity)
