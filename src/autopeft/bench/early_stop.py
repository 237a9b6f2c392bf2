"""The same searches with and without early stopping, side by side: CPU hours, hypervolume against CPU
hours, false stops (stopped trials that, finished at their whole budget, would have reached the
front at their size), and the share of CPU a rule with perfect foresight would have used (`oracle_share`):
the floor under any rule at the same checkpoints.

With `fidelity` None each task's searches run at the fidelity its calibration probe chose (`search
--fidelity auto`): the "off" searches at it as calibrated, the "on" ones with the evaluations within
the epoch that early stopping then adds, so the CPU share compares the two commands a user runs.

Every search is an ordinary study (`<name>-<task>-s<seed>-<on|off>`) in one storage, so the bench
continues where it stopped when it runs again; the finished stopped trials are stored in the bench's
own study (`<name>`), one attribute each, as they come.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autopeft.errors import UserError
from autopeft.search.early_stop import EarlyStop

if TYPE_CHECKING:
    import optuna

    from autopeft.engine.fidelity import Fidelity

MODES = ("off", "on")


@dataclass(frozen=True)
class EarlyStopBench:
    model: str
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    trials: int
    fidelity: Fidelity | None  # None: each task's calibrated fidelity (its probe, reused or run)
    rule: EarlyStop  # the settings of the "on" searches
    name: str = "early-stop"
    storage: str | None = None
    probe_storage: str | None = None  # where the calibration probes are (default: `storage`)
    glue_dir: str | None = None
    sampler: str = "autopeft"
    surrogate: str = "saas-map"
    startup: int | None = None
    false_stop_sample: int = 5  # stopped trials finished at their whole budget, per search
    jobs: int = 1
    device: str | None = None
    plot: Path | None = None

    def __post_init__(self) -> None:
        if self.trials < 2 or not self.seeds or not self.tasks:
            raise UserError("bench early-stop needs at least 2 trials, a seed and a task")
        if self.fidelity is not None and self.fidelity.evaluations < 2:
            raise UserError("early stopping needs more than one evaluation per trial: epochs=2 or evals_per_epoch=2")
        if self.false_stop_sample < 0:
            raise UserError("--false-stop-sample must not be negative")
        if self.plot is not None:
            from autopeft.paths import check_output_file

            check_output_file(self.plot, flag="--plot")

    def study_name(self, task: str, seed: int, mode: str) -> str:
        return f"{self.name}-{task}-s{seed}-{mode}"


def run_early_stop_bench(bench: EarlyStopBench, log: Callable[[str], None]) -> dict[str, Any]:
    """Run (or continue) every search, finish a sample of stopped trials, and return the figures."""
    from dataclasses import replace

    from autopeft.search.calibrate import Calibration, NoSignal
    from autopeft.search.record import SamplerSettings, TaskArgs
    from autopeft.search.request import RunOptions, SearchRequest
    from autopeft.search.run import run_search
    from autopeft.search.storage import open_storage

    options = RunOptions(storage=bench.storage, device=bench.device, jobs=bench.jobs)
    storage = open_storage(bench.storage)
    figures: dict[str, Any] = {}
    without_signal: dict[str, str] = {}
    for task in bench.tasks:
        if task in without_signal:
            continue
        for seed in bench.seeds:
            for mode in MODES:
                name = bench.study_name(task, seed, mode)
                log(f"search {name}")
                data = TaskArgs(name=task, glue_dir=bench.glue_dir)
                auto = None
                if bench.fidelity is None:
                    auto = Calibration.at_default_base(bench.model, data, jobs=bench.jobs, device=bench.device,
                                                       storage=bench.probe_storage or bench.storage)  # fmt: skip
                request = SearchRequest(
                    model=bench.model,
                    data=data,
                    trials=bench.trials,
                    fidelity=auto.base if auto else bench.fidelity,
                    auto_fidelity=auto,
                    sampler=SamplerSettings(name=bench.sampler, surrogate=bench.surrogate, startup=bench.startup),
                    study=name,
                    seed=seed,
                    early_stop=replace(bench.rule, on=mode == "on"),
                )
                try:
                    run_search(request, options)
                except NoSignal as err:  # its calibration found no signal: nothing to compare there
                    log(f"{task}: not searched: {err}")
                    without_signal[task] = str(err)
                    break
            if task in without_signal:
                break
            figures.setdefault(task, {})[seed] = _pair(bench, storage, task, seed, log)
    return summarise(figures) | {task: {"no_signal": why} for task, why in without_signal.items()}


def _pair(bench: EarlyStopBench, storage: Any, task: str, seed: int, log: Callable[[str], None]) -> dict[str, Any]:
    import optuna

    out: dict[str, Any] = {}
    studies = {m: optuna.load_study(study_name=bench.study_name(task, seed, m), storage=storage) for m in MODES}
    for mode, study in studies.items():
        out[mode] = {"cpu_hours": _cpu_hours(study), "hypervolume": _final_hv(study), "curve": _hv_by_cpu(study)}
    out["on"]["false_stops"], out["on"]["checked"], out["on"]["stopped"] = _false_stops(bench, studies["on"], log)
    # The off search's hypervolume when it had spent what the on search spent in all: the two compared
    # at equal CPU, not at equal trial counts (stopped trials count towards --trials).
    out["off"]["hypervolume_at_on_cpu"] = hypervolume_at(out["off"]["curve"], out["on"]["cpu_hours"])
    first = first_stop_share(studies["on"], bench.rule.min_share)
    out["off"]["oracle_share"] = None if first is None else oracle_share(studies["off"], first)
    return out


def first_stop_share(study: optuna.Study, min_share: float) -> float | None:
    """The earliest point of the budget at which the study's trials could stop: their first evaluation at
    or after `min_share` and before the end (None: no such evaluation, so nothing can stop)."""
    from autopeft.search.record import TRIAL_CURVE

    shares = {at for t in study.get_trials(deepcopy=False) for at, _ in t.user_attrs.get(TRIAL_CURVE, [])}
    usable = [at for at in shares if min_share - 1e-9 <= at < 1 - 1e-9]
    return min(usable) if usable else None


def oracle_share(study: optuna.Study, first: float) -> float:
    """The CPU share a rule with perfect foresight would have used on `study` (a search without early
    stopping), stopping at `first` of its budget each trial that ends below the front of the trials
    finished before it at its size, and no other: a floor under any rule stopping there. In a
    multi-objective search many trials reach the front when they finish (every one smaller than all
    before it does), which bounds what early stopping can save. Only a trial's training and scoring
    (`engine_share`) can be cut short: its suggestion and its set-up are paid whether it stops or not.
    Extra scoring passes are not counted."""
    from optuna.trial import TrialState

    from autopeft.search.early_stop import Finished, front_score_at

    trials = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    trials.sort(key=lambda t: (t.datetime_complete or t.datetime_start, t.number))
    finished: list[Finished] = []
    spent = total = 0.0
    for t in trials:
        cost = t.user_attrs.get("cpu_seconds", 0.0)
        front = front_score_at(finished, int(t.values[1]))
        total += cost
        reaches = front is None or t.values[0] >= front
        spent += cost if reaches else cost * (1 - (1 - first) * engine_share(t.user_attrs))
        finished.append(Finished(int(t.values[1]), float(t.values[0]), ()))
    return spent / total if total else 1.0


def engine_share(attrs: dict) -> float:
    """The share of a trial's time spent training and scoring (the rest: its suggestion and set-up), from
    its stored seconds; 1 where they were not stored. A fifth of a trial went elsewhere at STS-B's 1000x1
    (7.5 s of 33-40 s, a saas-map suggestion 3-6 s of it), 4 % at CoLA's 7500x2."""
    wall = attrs.get("wall_seconds") or 0.0
    engine = (attrs.get("train_seconds") or 0.0) + (attrs.get("eval_seconds") or 0.0)
    return min(1.0, engine / wall) if wall > 0 and engine > 0 else 1.0


def _cpu_hours(study: optuna.Study) -> float:
    from autopeft.search.results import search_cost

    return search_cost(study)["cpu_seconds"] / 3600


def _final_hv(study: optuna.Study) -> float:
    from autopeft.search.results import completed_rows, study_hypervolume

    return study_hypervolume(study, completed_rows(study))


def _hv_by_cpu(study: optuna.Study) -> list[tuple[float, float]]:
    """(CPU hours spent so far, hypervolume of the complete trials so far), trial by trial."""
    from autopeft.pareto import hypervolume
    from autopeft.search.record import StudyRecord

    record = StudyRecord.load(study)
    spent, points, curve = 0.0, [], []
    for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        spent += trial.user_attrs.get("cpu_seconds", 0.0) / 3600
        if trial.state.name == "COMPLETE":
            points.append((trial.values[0], trial.values[1]))
        curve.append((spent, hypervolume(points, record.metric_ref, record.params_ref, record.params_min)))
    return curve


def hypervolume_at(curve: list[tuple[float, float]], cpu_hours: float) -> float:
    """The hypervolume of a (CPU hours, hypervolume) step curve once `cpu_hours` were spent (0 before its
    first point)."""
    reached = [hv for spent, hv in curve if spent <= cpu_hours]
    return reached[-1] if reached else 0.0


def false_stop_sample(stopped: list[int], size: int, seed: int) -> list[int]:
    """Which stopped trials (numbers) to finish: a seeded random draw, in trial order. Not the first ones:
    those were stopped with the fewest finished curves to learn the allowance from, so they are the
    likeliest to be false, and a sample of them overstates the rate over the search (the 100-trial
    pair's first 5 per seed: 1 false of 10)."""
    import random

    return sorted(random.Random(seed).sample(stopped, min(size, len(stopped))))


def _false_stops(bench: EarlyStopBench, study: optuna.Study, log: Callable[[str], None]) -> tuple[int, int, int]:
    """(false stops, stopped trials checked, stopped trials): each checked trial is trained at its whole
    budget with its own seed; a false stop would have reached the front of the complete trials at its size."""
    from autopeft.engine import Engine
    from autopeft.search import record as rec
    from autopeft.search.early_stop import front_score_at
    from autopeft.search.loop import finished_curves
    from autopeft.search.results import stopped_rows
    from autopeft.space import PEFTConfig

    record = rec.StudyRecord.load(study)
    stopped = [row.number for row in stopped_rows(study)]
    sample = false_stop_sample(stopped, bench.false_stop_sample, record.seed)
    finished = finished_curves(study)
    engine = None
    false = 0
    for number in sample:
        key = f"finished:{number}"
        done = study.user_attrs.get(key)
        trial = study.trials[number]
        if done is None:
            engine = engine or Engine(record.model, record.data.load(bench.glue_dir), device=bench.device)
            config = PEFTConfig.from_dict(trial.user_attrs[rec.TRIAL_CONFIG])
            result = engine.run_trial(config, record.fidelity, seed=record.seed, mode="search")
            done = {"score": result.headline if result.ok else None}
            study.set_user_attr(key, done)
            log(f"{study.study_name}: stopped trial {number} finished at {done['score']}")
        front = front_score_at(finished, int(trial.user_attrs["params"]))
        if done["score"] is not None and (front is None or done["score"] >= front):
            false += 1
    return false, len(sample), len(stopped)


def summarise(figures: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    """By task: CPU hours and final hypervolume of each mode (mean over seeds, and the seeds' spread),
    the off searches' hypervolume at the on searches' CPU hours, the CPU share early stopping used, false
    stops over checked stopped trials."""
    out: dict[str, Any] = {}
    for task, by_seed in figures.items():
        row: dict[str, Any] = {}
        for mode in MODES:
            hv = [f[mode]["hypervolume"] for f in by_seed.values()]
            cpu = [f[mode]["cpu_hours"] for f in by_seed.values()]
            row[mode] = {
                "cpu_hours": statistics.fmean(cpu),
                "hypervolume": statistics.fmean(hv),
                "hypervolume_spread": statistics.pstdev(hv) if len(hv) > 1 else 0.0,
            }
        row["off"]["hypervolume_at_on_cpu"] = statistics.fmean(
            f["off"]["hypervolume_at_on_cpu"] for f in by_seed.values()
        )
        row["cpu_share"] = row["on"]["cpu_hours"] / row["off"]["cpu_hours"] if row["off"]["cpu_hours"] else None
        oracles = [f["off"]["oracle_share"] for f in by_seed.values()]
        row["oracle_share"] = None if None in oracles else statistics.fmean(oracles)
        row["false_stops"] = sum(f["on"]["false_stops"] for f in by_seed.values())
        row["checked"] = sum(f["on"]["checked"] for f in by_seed.values())
        row["stopped"] = sum(f["on"]["stopped"] for f in by_seed.values())
        row["curves"] = {str(seed): {m: f[m]["curve"] for m in MODES} for seed, f in by_seed.items()}
        out[task] = row
    return out


def plot(summary: dict[str, Any], path: Path) -> None:
    """Hypervolume against CPU hours, one panel per task, each seed's search with and without early stopping."""
    from autopeft.plots import save_figure, subplots

    summary = {task: row for task, row in summary.items() if "curves" in row}
    if not summary:
        return
    fig, axes = subplots(1, len(summary), figsize=(6 * len(summary), 4), squeeze=False)
    for ax, (task, row) in zip(axes[0], summary.items(), strict=True):
        for k, curves in enumerate(row["curves"].values()):
            for mode, color in (("off", "C0"), ("on", "C3")):
                xs, ys = zip(*curves[mode], strict=True) if curves[mode] else ((), ())
                ax.step(xs, ys, where="post", color=color, alpha=0.8, label=f"early stop {mode}" if k == 0 else None)
        ax.set_title(task)
        ax.set_xlabel("CPU hours")
        ax.set_ylabel("hypervolume")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, path)
