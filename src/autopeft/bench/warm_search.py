"""A real warm start, side by side with a cold one: searches of one task with the same seeds, started
cold and warm from a committed search of another task (`search --warm-start`), compared by hypervolume
at 10, 20 and 40 trials (`bench.warm.curves_summary`, as on the synthetic pairs).

Every search is an ordinary study (`<name>-<task>-s<seed>-<cold|warm>`) in one storage, so the bench
continues where it stopped when it runs again. The source study is copied into that storage first when
it lives in another one (a warm start reads its source from the search's own storage).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autopeft.bench.warm import WARM_AT, curves_summary
from autopeft.errors import UserError

if TYPE_CHECKING:
    import optuna

    from autopeft.engine.fidelity import Fidelity

STARTS = ("cold", "warm")


@dataclass(frozen=True)
class WarmSearchBench:
    model: str
    task: str
    source: str  # a finished search of another task on the same model and space
    seeds: tuple[int, ...]
    trials: int
    fidelity: Fidelity | None  # None: the task's calibrated fidelity (its probe, reused or run)
    name: str = "warm-start"
    storage: str | None = None
    source_storage: str | None = None  # where the source study is (default: `storage`)
    probe_storage: str | None = None  # where the calibration probes are (default: `storage`)
    glue_dir: str | None = None
    space: str = "paper"
    sampler: str = "autopeft"
    surrogate: str = "saas"
    jobs: int = 1
    device: str | None = None

    def __post_init__(self) -> None:
        if self.trials < 2 or not self.seeds:
            raise UserError("bench warm-start needs at least 2 trials and a seed")

    def study_name(self, seed: int, start: str) -> str:
        return f"{self.name}-{self.task}-s{seed}-{start}"

    @property
    def labels(self) -> dict[str, str]:
        """start -> its label in the summary (the warm one named `<cold>+warm-<source>`, as the bench's pairs)."""
        return {"cold": "autopeft", "warm": f"autopeft+warm-{self.source}"}


def check_source(bench: WarmSearchBench) -> Any:
    """The source study's record, after refusing (one line, nothing written) a source that is missing, is
    not a search, is of the same task, or searched another model or space."""
    from autopeft.optim.warm import check_same_job
    from autopeft.search.record import StudyError, StudyRecord
    from autopeft.search.storage import load_study, open_storage

    try:
        source = load_study(bench.source, open_storage(bench.source_storage or bench.storage, create=False))
        record = StudyRecord.load(source)
    except StudyError as err:
        raise UserError(f"cannot warm-start from {bench.source!r}: {err}") from None
    if record.data.name == bench.task:
        raise UserError(f"study {bench.source!r} searched {bench.task} itself: a warm start needs another task")
    check_same_job(record, _Target(bench.model, bench.space), bench.source)
    return record


@dataclass(frozen=True)
class _Target:
    model: str
    space: str


def run_warm_search_bench(bench: WarmSearchBench, log: Callable[[str], None]) -> dict[str, Any]:
    """Run (or continue) the cold and warm searches of every seed; the figures (`summarise`)."""
    import optuna

    from autopeft.search.calibrate import Calibration, NoSignal
    from autopeft.search.record import SamplerSettings, TaskArgs
    from autopeft.search.request import RunOptions, SearchRequest
    from autopeft.search.run import run_search
    from autopeft.search.storage import open_storage, study_names

    check_source(bench)
    storage = open_storage(bench.storage)
    elsewhere = bench.source_storage and bench.source_storage != bench.storage
    if elsewhere and bench.source not in study_names(storage):
        log(f"copying study {bench.source} into the bench's storage")
        optuna.copy_study(
            from_study_name=bench.source,
            from_storage=open_storage(bench.source_storage, create=False),
            to_storage=storage,
        )
    options = RunOptions(storage=bench.storage, device=bench.device, jobs=bench.jobs)
    data = TaskArgs(name=bench.task, glue_dir=bench.glue_dir)
    auto = None
    if bench.fidelity is None:
        auto = Calibration.at_default_base(bench.model, data, jobs=bench.jobs, device=bench.device,
                                           storage=bench.probe_storage or bench.storage)  # fmt: skip
    for seed in bench.seeds:
        for start in STARTS:
            name = bench.study_name(seed, start)
            log(f"search {name}")
            request = SearchRequest(
                model=bench.model,
                data=data,
                trials=bench.trials,
                fidelity=auto.base if auto else bench.fidelity,
                auto_fidelity=auto,
                sampler=SamplerSettings(name=bench.sampler, surrogate=bench.surrogate),
                space=bench.space,
                study=name,
                seed=seed,
                warm_start=bench.source if start == "warm" else None,
            )
            try:
                run_search(request, options)
            except NoSignal as err:  # nothing to compare where the task's calibration found no signal
                log(f"{bench.task}: not searched: {err}")
                return {"task": bench.task, "source": bench.source, "no_signal": str(err)}
    studies = {
        (seed, start): optuna.load_study(study_name=bench.study_name(seed, start), storage=storage)
        for seed in bench.seeds
        for start in STARTS
    }
    return summarise(bench, studies)


def hv_by_trial(study: optuna.Study) -> list[float]:
    """The hypervolume of the complete trials after each trial that counts toward the budget, in order."""
    from autopeft.pareto import hypervolume
    from autopeft.search.loop import counts_toward_budget
    from autopeft.search.record import StudyRecord

    record = StudyRecord.load(study)
    points: list[tuple[float, float]] = []
    curve = []
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if not counts_toward_budget(trial) or trial.state.name == "RUNNING":
            continue
        if trial.state.name == "COMPLETE":
            points.append((trial.values[0], trial.values[1]))
        curve.append(hypervolume(points, record.metric_ref, record.params_ref, record.params_min))
    return curve


def summarise(bench: WarmSearchBench, studies: dict[tuple[int, str], optuna.Study]) -> dict[str, Any]:
    """Hypervolume at WARM_AT trials by start (median and spread over seeds), each search's curve, and the
    trial at which the warm start's median curve reaches the cold start's final one."""
    from autopeft.search.results import search_cost

    curves = {(seed, start): hv_by_trial(study) for (seed, start), study in studies.items()}
    by_label: dict[str, list[list[float]]] = {}
    for (_, start), curve in curves.items():
        if curve:
            by_label.setdefault(bench.labels[start], []).append(curve)
    return {
        "task": bench.task,
        "source": bench.source,
        "trials": bench.trials,
        "seeds": list(bench.seeds),
        "table": curves_summary(by_label, WARM_AT) if len(by_label) == len(STARTS) else {},
        "cpu_hours": {
            start: round(sum(search_cost(studies[seed, start])["cpu_seconds"] for seed in bench.seeds) / 3600, 3)
            for start in STARTS
        },
        "curves": {f"s{seed}-{start}": [round(v, 5) for v in curve] for (seed, start), curve in curves.items()},
    }


def plot(summary: dict[str, Any], path: Path) -> None:
    """Hypervolume against trials, each seed's cold and warm search."""
    from autopeft.plots import save_figure, subplots

    fig, ax = subplots(figsize=(6, 4))
    shown: set[str] = set()
    for key, curve in summary.get("curves", {}).items():
        start = key.rsplit("-", 1)[1]
        color = "C0" if start == "cold" else "C3"
        label = None if start in shown else f"{start} start"
        shown.add(start)
        ax.step(range(1, len(curve) + 1), curve, where="post", color=color, alpha=0.8, label=label)
    for n in WARM_AT:
        ax.axvline(n, color="grey", alpha=0.2)
    ax.set_title(f"{summary['task']}: warm start from {summary['source']}")
    ax.set_xlabel("trials")
    ax.set_ylabel("hypervolume")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
