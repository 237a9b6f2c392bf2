"""Choose a search fidelity for signal: the cheapest budget at which configurations differ by more
than seed noise and the best of them stands clear of the constant-prediction floor.

A few random configurations of the space, each with a few seeds, train at a ladder of increasing
budgets (training examples x epochs). At each rung:
- ratio: the spread of the configurations' mean scores (their std) over the seed noise (the mean,
  over configurations, of the std across seeds): can a search tell configurations apart? A
  configuration at the floor on every seed (it learnt nothing) says nothing of seed noise, and its
  zero std would shrink the noise: the noise is the mean over the others (CoLA's 7500x2 probe: 7.4,
  not 29.4, with three of four configurations at 0 MCC on both seeds).
- margin: how far the best configuration's mean stands above the floor (what a constant prediction
  scores on the held-out slice), in standard errors of the held-out score (`heldout_se`).
The chosen rung is the cheapest with ratio >= MIN_RATIO and margin >= MIN_MARGIN. Rungs run until
one is chosen or the next would not fit the time cap. The probe (every rung's figures and runs) is
stored in a calibration study beside the searches, so `search --fidelity auto` reuses it and takes
its runs at the chosen rung as its first observations.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autopeft.errors import UserError
from autopeft.floor import at_floor
from autopeft.search.record import TaskArgs

if TYPE_CHECKING:
    from autopeft.engine.fidelity import Fidelity

MIN_RATIO = 3.0
MIN_MARGIN = 3.0
# What every rung shares: the search's regime at this project's short-budget PEFT rate (each module
# kind at its share of it, the default `module_rates`), a head on the mean of the tokens.
CALIBRATION_BASE = "batch_size=16,lr=1e-3,pooling=mean"
LADDER: tuple[tuple[int, int], ...] = ((250, 1), (500, 1), (1000, 1), (1000, 2), (2000, 2), (4000, 2), (8000, 3))
PRIOR_EXAMPLES_PER_SECOND = 60.0 * 22.7e6  # training examples/s times backbone size: MiniLM here, ~60 ex/s
CALIBRATION_KEY = "calibration"


class NoSignal(Exception):
    """No rung within the cap had signal: the probe says so; a search cannot choose a fidelity."""


@dataclass(frozen=True)
class Rung:
    """One budget of the ladder: a training subset and a number of epochs."""

    train_examples: int
    epochs: int

    @classmethod
    def parse(cls, text: str) -> Rung:
        """ "1000x2": 1000 training examples, 2 epochs."""
        try:
            examples, epochs = (int(v) for v in text.lower().split("x"))
        except ValueError:
            raise UserError(f"a ladder rung is EXAMPLESxEPOCHS (e.g. 1000x2), got {text!r}") from None
        if examples < 2 or epochs < 1:
            raise UserError(f"a ladder rung needs at least 2 examples and 1 epoch, got {text!r}")
        return cls(examples, epochs)

    @property
    def cost(self) -> int:
        return self.train_examples * self.epochs

    def __str__(self) -> str:
        return f"{self.train_examples}x{self.epochs}"


@dataclass(frozen=True)
class Calibration:
    """What `calibrate` asks for."""

    model: str
    data: TaskArgs
    base: Fidelity  # every knob but the budget
    space: str = "paper"
    ladder: tuple[Rung, ...] = tuple(Rung(n, e) for n, e in LADDER)
    configs: int = 4  # random configurations per rung
    seeds: tuple[int, ...] = (0, 1)
    max_minutes: float = 30.0
    jobs: int = 1
    device: str | None = None
    storage: str | None = None
    study: str | None = None  # the probe's study (default probe-<task>-<model>-<space>)
    seed: int = 0  # the configurations' draw

    def __post_init__(self) -> None:
        if not (isinstance(self.max_minutes, int | float) and math.isfinite(self.max_minutes) and self.max_minutes > 0):
            raise UserError(f"--max-minutes must be a positive number, got {self.max_minutes!r}")
        if self.configs < 2 or len(self.seeds) < 2:
            raise UserError("calibration needs at least 2 configurations and 2 seeds (spread against noise)")
        if not self.ladder:
            raise UserError("the ladder has no rung")
        if any(b.cost <= a.cost for a, b in itertools.pairwise(self.ladder)):  # a repeated rung repeats its runs
            raise UserError("the ladder's rungs must grow in examples x epochs")
        if self.jobs < 1:
            raise UserError(f"--jobs must be at least 1, got {self.jobs}")

    @classmethod
    def at_default_base(cls, model: str, data: TaskArgs, **options: Any) -> Calibration:
        """The probe `search --fidelity auto` runs: every knob but the budget at CALIBRATION_BASE."""
        from autopeft.engine.fidelity import Fidelity

        return cls(model, data, Fidelity.parse(CALIBRATION_BASE), **options)

    def fidelity(self, rung: Rung) -> Fidelity:
        return self.base.replace(max_train_samples=rung.train_examples, epochs=rung.epochs, patience=None)

    def study_name(self, task: str) -> str:
        from autopeft.search.request import default_study_name

        return self.study or "probe-" + default_study_name(task, self.model, self.space, "x").removesuffix("-x")


@dataclass
class RungResult:
    rung: str
    fidelity: dict[str, Any]
    seconds_per_trial: float
    ratio: float | None
    margin: float | None
    best: float
    floor: float
    se: float
    runs: list[dict[str, Any]] = field(default_factory=list)  # config (JSON), seed, score, params

    @property
    def has_signal(self) -> bool:
        return (self.ratio or 0) >= MIN_RATIO and (self.margin or 0) >= MIN_MARGIN


def heldout_se(metric: str, score: float, n: int) -> float:
    """Standard error of a held-out score over `n` examples: binomial for accuracy-like metrics,
    Fisher's (1 - r^2) / sqrt(n - 1) for correlations (MCC is a correlation of two binary variables)."""
    n = max(n, 2)
    if metric in ("accuracy", "f1_accuracy_mean", "f1"):
        p = min(max(score, 0.5 / n), 1 - 0.5 / n)
        return math.sqrt(p * (1 - p) / n)
    return (1 - min(score * score, 0.999)) / math.sqrt(n - 1)


def rung_figures(
    scores: dict[str, list[float]], floor: float, metric: str, n: int
) -> tuple[float | None, float, float, float]:
    """(ratio, margin, best mean, SE) of one rung from each configuration's scores over seeds."""
    means = {c: statistics.fmean(v) for c, v in scores.items()}
    seeded = [v for v in scores.values() if len(v) > 1]
    learnt = [v for v in seeded if not all(at_floor(s, floor) for s in v)] or seeded
    noise = statistics.fmean(statistics.stdev(v) for v in learnt)
    spread = statistics.stdev(means.values()) if len(means) > 1 else 0.0
    ratio = min(spread / noise, 1e6) if noise > 0 else (1e6 if spread > 0 else None)  # 1e6: no seed noise at all
    best = max(means.values())
    seeds = max(len(v) for v in scores.values())
    se = math.sqrt(heldout_se(metric, best, n) ** 2 + noise**2 / seeds)
    return ratio, (best - floor) / se, best, se


def estimated_seconds(request: Calibration, rung: Rung, backbone_params: int) -> float:
    """A rung's cost before anything ran: every run at the prior speed of this machine."""
    per_trial = rung.cost / (PRIOR_EXAMPLES_PER_SECOND / max(backbone_params, 1))
    return per_trial * request.configs * len(request.seeds) / request.jobs


def calibrate(request: Calibration, log: Callable[[str], None]) -> dict[str, Any]:
    """Run the ladder (checked against the cap first), store the probe, and return it: rungs, chosen fidelity."""
    from autopeft import models
    from autopeft.engine.workers import Job, run_jobs
    from autopeft.optim import Budget
    from autopeft.search.storage import open_storage
    from autopeft.space import SearchSpace

    task = request.data.load()
    dims = models.dims_of(request.model)
    cap = 60 * request.max_minutes
    first = estimated_seconds(request, request.ladder[0], dims.backbone_params)
    if first > cap:
        raise UserError(
            f"the smallest rung ({request.ladder[0]}) needs about {_duration(first)}, more than --max-minutes "
            f"{request.max_minutes:g}; give a larger cap or a smaller first rung"
        )
    space = SearchSpace(dims.num_layers, dims.hidden_size, request.space)
    budget = Budget.of(space, dims)
    rng = random.Random(request.seed)
    configs: list[Any] = []
    while len(configs) < request.configs:
        configs.append(budget.sample(rng, exclude=configs))
    storage = open_storage(request.storage)
    check_probe_study(storage, request.study_name(task.name))  # now, not after the ladder
    started = time.perf_counter()
    rungs: list[RungResult] = []
    chosen: RungResult | None = None
    data = {task.name: request.data.load_kwargs()}
    for i, rung in enumerate(request.ladder):
        if i > 0:
            last = rungs[-1]
            expected = last.seconds_per_trial * rung.cost / request.ladder[i - 1].cost
            expected *= request.configs * len(request.seeds) / request.jobs
            if time.perf_counter() - started + expected > cap:
                log(f"rung {rung}: about {expected / 60:.1f} more minutes would pass the cap; stopping")
                break
        fidelity = request.fidelity(rung)
        plan = fidelity.plan(task, "search")
        floor = task.constant_prediction_scores(plan)[task.metric_name]
        jobs = [
            Job(task.name, c.to_json(), s, mode="search", fidelity=fidelity) for c in configs for s in request.seeds
        ]
        scores: dict[str, list[float]] = {}
        runs, walls = [], []
        for job, result, _ in run_jobs(jobs, request.model, data, fidelity, request.jobs, request.device):
            score = result.headline if result.ok else floor  # a diverged run is scored as learning nothing
            scores.setdefault(job.item, []).append(score)
            walls.append(result.wall_seconds)
            runs.append({"config": job.item, "seed": job.seed, "score": score, "params": result.params})
        ratio, margin, best, se = rung_figures(scores, floor, task.metric_name, len(plan.evals[""]))
        result_rung = RungResult(
            str(rung), fidelity.to_dict(), statistics.fmean(walls), ratio, margin, best, floor, se, runs
        )
        rungs.append(result_rung)
        log(_line(result_rung))
        if result_rung.has_signal:
            chosen = result_rung
            break
    probe = {
        "model": request.model,
        "task": task.name,
        "space": request.space,
        "metric": task.metric_name,
        "base": request.base.to_dict(),
        "min_ratio": MIN_RATIO,
        "min_margin": MIN_MARGIN,
        "rungs": [r.__dict__ | {"has_signal": r.has_signal} for r in rungs],
        "chosen": chosen.fidelity if chosen else None,
        "seconds": round(time.perf_counter() - started, 1),
    }
    store_probe(storage, request.study_name(task.name), probe)
    return probe


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} minutes"


def _line(r: RungResult) -> str:
    ratio = "n/a" if r.ratio is None else f"{r.ratio:.1f}"
    margin = "n/a" if r.margin is None else f"{r.margin:.1f}"
    scores = f"best {r.best:.4f}, floor {r.floor:.4f}"
    return f"rung {r.rung}: {r.seconds_per_trial:.0f} s/trial, ratio {ratio}, margin {margin} SE ({scores})"


def check_probe_study(storage: Any, name: str) -> None:
    """Refuse a study of that name that is not a calibration probe (a search's, or one autopeft did not
    make): the probe would be written into it."""
    import optuna

    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return
    if CALIBRATION_KEY not in study.user_attrs:
        raise UserError(f"study {name!r} exists and is not a calibration probe; use another --study")


def store_probe(storage: Any, name: str, probe: dict[str, Any]) -> None:
    import optuna

    check_probe_study(storage, name)
    study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True)
    study.set_user_attr(CALIBRATION_KEY, probe)


def load_probe(storage: Any, name: str) -> dict[str, Any] | None:
    """The probe stored under `name`, or None."""
    import optuna

    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None
    return study.user_attrs.get(CALIBRATION_KEY)


def probe_observations(probe: dict[str, Any]) -> list[tuple[str, float, int]]:
    """(configuration JSON, mean score over seeds, params) of the probe's runs at its chosen rung."""
    if probe.get("chosen") is None:
        return []
    rung = next(r for r in probe["rungs"] if _same(r["fidelity"], probe["chosen"]))
    by_config: dict[str, list[dict[str, Any]]] = {}
    for run in rung["runs"]:
        by_config.setdefault(run["config"], []).append(run)
    return [(c, statistics.fmean(r["score"] for r in runs), runs[0]["params"]) for c, runs in by_config.items()]


def signal_of(probe: dict[str, Any], fidelity: dict[str, Any]) -> bool | None:
    """Whether the probe found signal at `fidelity`; None when it did not measure that fidelity."""
    for rung in probe.get("rungs", []):
        if _same(rung["fidelity"], fidelity):
            return bool(rung["has_signal"])
    return None


def chosen_margin(probe: dict[str, Any]) -> float | None:
    """The margin (SE above the floor) of the probe's chosen rung; None when it chose none."""
    if probe.get("chosen") is None:
        return None
    rung = next((r for r in probe["rungs"] if _same(r["fidelity"], probe["chosen"])), None)
    return None if rung is None or rung.get("margin") is None else float(rung["margin"])


def _same(stored: dict[str, Any] | None, other: dict[str, Any] | None) -> bool:
    """Whether two fidelities as stored are the same (a knob added since a probe was stored takes the value
    its trials trained with: `Fidelity.from_dict`)."""
    from autopeft.engine.fidelity import Fidelity

    if stored is None or other is None:
        return stored is other
    return Fidelity.from_dict(stored) == Fidelity.from_dict(other)


def ladder_table(probe: dict[str, Any]) -> list[str]:
    """The ladder as a plain-text table: rung, seconds per trial, ratio, margin, runs at the floor, chosen.
    Runs exactly at the floor have no seed noise, so where many are, the ratio leans on them (the margin
    does not): the column shows how many."""
    lines = [f"{'rung':>9s} {'s/trial':>8s} {'ratio':>6s} {'margin':>7s} {'at floor':>8s}  chosen"]
    for r in probe["rungs"]:
        ratio = "n/a" if r["ratio"] is None else f"{r['ratio']:.1f}"
        margin = "n/a" if r["margin"] is None else f"{r['margin']:.1f}"
        counted = runs_at_floor(r)
        floors = "n/a" if counted is None else f"{counted[0]}/{counted[1]}"
        chosen = "yes" if _same(probe["chosen"], r["fidelity"]) else ""
        lines.append(f"{r['rung']:>9s} {r['seconds_per_trial']:8.1f} {ratio:>6s} {margin:>7s} {floors:>8s}  {chosen}")
    return lines


def runs_at_floor(rung: dict[str, Any]) -> tuple[int, int] | None:
    """(runs that scored exactly the floor, runs) of a stored rung; None for a summary stored without them."""
    if "runs" in rung:
        runs = rung["runs"]
        return sum(at_floor(run["score"], rung["floor"]) for run in runs), len(runs)
    counted = rung.get("runs_at_floor")
    return (int(counted[0]), int(counted[1])) if counted else None


def chosen_fidelity(request: Calibration, task: str, log: Callable[[str], None]) -> tuple[Fidelity, dict[str, Any]]:
    """The fidelity a stored probe for the same model, task, space and base chose, else a new probe's;
    NoSignal when the probe found none."""
    from autopeft.engine.fidelity import Fidelity
    from autopeft.search.storage import open_storage

    name = request.study_name(task)
    probe = load_probe(open_storage(request.storage), name)
    same = (
        probe is not None
        and all(probe.get(k) == v for k, v in {"model": request.model, "task": task, "space": request.space}.items())
        and _same(probe.get("base"), request.base.to_dict())
    )
    if same:
        log(f"fidelity: the probe stored in study {name!r}")
    else:
        probe = calibrate(request, log)
    assert probe is not None
    if probe["chosen"] is None:
        raise NoSignal(
            f"no rung of the probe in study {name!r} has signal (ratio >= {MIN_RATIO:g} and margin >= {MIN_MARGIN:g}"
            " SE): try `autopeft calibrate` with a larger --max-minutes or larger rungs, or another task"
        )
    return Fidelity.from_dict(probe["chosen"]), probe


def probe_summary(probe: dict[str, Any]) -> dict[str, Any]:
    """The probe without its runs (what a search study keeps of it)."""
    rungs = [{k: v for k, v in r.items() if k != "runs"} | {"runs_at_floor": runs_at_floor(r)} for r in probe["rungs"]]
    return probe | {"rungs": rungs}
