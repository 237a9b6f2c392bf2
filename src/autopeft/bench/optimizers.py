"""Running optimisers on benchmark problems: hypervolume against trials, seconds per suggestion.

Each (optimiser, seed) run is an in-memory Optuna study driven by ask/tell, the way the search
command drives one; its record is saved as JSON as soon as it ends, so an interrupted benchmark
resumes with the runs it has. Observation noise comes from a stream seeded by the run's seed, the
same for every optimiser.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autopeft.bench.problems import Problem
from autopeft.errors import UserError
from autopeft.optim.surrogate import SURROGATES, NutsOptions
from autopeft.space import PEFTConfig

if TYPE_CHECKING:
    from autopeft.optim.warm import WarmStart

# Bumped when the AutoPEFT sampler's defaults change, so that its saved runs are not reused (the
# baselines' runs are). 2: stratified random start, parameter-score feature (issue 19). 3: the acquisition
# discounted by the chance of learning at all where the problem tells its floor (`optim.learning`).
AUTOPEFT_REVISION = 3


@dataclass(frozen=True)
class Contender:
    """An optimiser in a benchmark: a sampler name, for AutoPEFT ones optionally `NAME:SURROGATE`."""

    name: str
    surrogate: str | None = None

    @classmethod
    def parse(cls, text: str) -> Contender:
        from autopeft.optim.baselines import SAMPLERS

        name, _, surrogate = text.strip().partition(":")
        if name not in SAMPLERS:
            raise UserError(f"unknown sampler {name!r}; known: {', '.join(SAMPLERS)}")
        if surrogate and (not name.startswith("autopeft") or name == "autopeft-plain-gp"):
            raise UserError(f"sampler {name!r} takes no surrogate (only autopeft and autopeft-params-modelled do)")
        if surrogate and surrogate not in SURROGATES:
            raise UserError(f"unknown surrogate {surrogate!r}; known: {', '.join(SURROGATES)}")
        return cls(name, surrogate or None)

    @property
    def label(self) -> str:
        return f"{self.name}:{self.surrogate}" if self.surrogate else self.name


@dataclass(frozen=True)
class BenchSettings:
    """What every run of a benchmark shares (saved with each run, which is reused only if they match)."""

    surrogate: str = "saas"  # for AutoPEFT samplers given without one
    n_startup_trials: int = 10
    max_params: int | None = None
    max_percent: float | None = None
    copula: bool = False  # AutoPEFT samplers: Gaussian copula of the metric
    nuts: NutsOptions = field(default_factory=NutsOptions)

    def sampler(self, contender: Contender, problem: Problem, seed: int):
        from autopeft.optim.baselines import make_sampler

        opts: dict[str, Any] = {}
        if contender.name.startswith("autopeft"):
            opts = {"n_startup_trials": self.n_startup_trials, "nuts": self.nuts, "copula": self.copula}
            if contender.name != "autopeft-plain-gp":
                opts["surrogate"] = contender.surrogate or self.surrogate
            if problem.floor is not None:
                opts["floor"] = problem.floor
        elif contender.name in ("tpe", "gp"):
            opts = {"n_startup_trials": self.n_startup_trials}
        return make_sampler(
            contender.name,
            problem.space,
            problem.dims,
            seed=seed,
            max_params=self.max_params,
            max_percent=self.max_percent,
            candidates=problem.candidates,
            **opts,
        )


@dataclass
class Run:
    """One optimiser, one seed: what each trial evaluated and how long its suggestion took."""

    label: str
    seed: int
    configs: list[str] = field(default_factory=list)  # PEFTConfig JSON
    metrics: list[float] = field(default_factory=list)  # true (noise-free) metric
    params: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # wall time of study.ask

    def hv_curve(self, problem: Problem) -> list[float]:
        """Normalised hypervolume of the first t trials, t = 1..len."""
        points = list(zip(self.metrics, self.params, strict=True))
        return [problem.hypervolume(points[: t + 1]) for t in range(len(points))]


def run_one(
    problem: Problem,
    contender: Contender,
    seed: int,
    trials: int,
    settings: BenchSettings,
    on_trial: Callable[[int, PEFTConfig], None] | None = None,
    warm: WarmStart | None = None,
    label: str | None = None,
) -> Run:
    """Run `trials` suggestions of one optimiser on `problem` with ask/tell (after `warm.apply`, if given)."""
    import optuna

    from autopeft.optim import warm as warm_start
    from autopeft.optim.bridge import config_from_params, optuna_distributions

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = settings.sampler(contender, problem, seed)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    if warm is not None:
        warm_start.apply(study, warm, problem.space)
    distributions = optuna_distributions(problem.space)
    noise = random.Random(f"noise:{seed}")
    run = Run(label or contender.label, seed)
    for t in range(trials):
        start = time.perf_counter()
        trial = study.ask(distributions)
        run.seconds.append(time.perf_counter() - start)
        config = config_from_params(problem.space, trial.params)
        params = problem.params(config)
        study.tell(trial, [problem.observe(config, noise), params])
        run.configs.append(config.to_json())
        run.metrics.append(problem.truth(config))
        run.params.append(params)
        if on_trial is not None:
            on_trial(t, config)
    return run


def run_all(
    problem: Problem,
    contenders: Sequence[Contender],
    seeds: Sequence[int],
    trials: int,
    settings: BenchSettings,
    out: Path,
    log: Callable[[str], None] = print,
    jobs: int = 1,
    make_problem: Callable[[], Problem] | None = None,
) -> list[Run]:
    """Every contender on every seed (random search to 2 x trials), reusing saved runs that match.

    jobs > 1 runs the missing ones in that many single-thread worker processes, each rebuilding the
    problem with `make_problem` (picklable, e.g. a `functools.partial` of `problems.synthetic`); the
    seconds per suggestion are then those of one thread.
    """
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    # A saved run is reused only for the same problem (its maximum changes with its definition) and settings.
    key = {"problem": problem.name, "max_hv": problem.max_hv, "settings": _jsonable(asdict(settings))}
    done: dict[tuple[Contender, int], Run] = {}
    missing = []
    for contender in contenders:
        n = 2 * trials if contender.name == "random" else trials
        for seed in seeds:
            path = runs_dir / f"{contender.label.replace(':', '_')}-seed{seed}.json"
            run = _load_run(path, {**key, **_revision(contender)}, n)
            if run is None:
                missing.append((contender, seed, n, path))
            else:
                done[contender, seed] = run

    def record(contender: Contender, seed: int, n: int, path: Path, run: Run, seconds: float) -> None:
        path.write_text(json.dumps({**key, **_revision(contender), "trials": n, "run": asdict(run)}))
        log(f"{contender.label} seed {seed}: hv@{n} = {run.hv_curve(problem)[-1]:.4f} ({seconds:.0f} s)")
        done[contender, seed] = run

    if jobs > 1 and len(missing) > 1:
        if make_problem is None:
            raise ValueError("jobs > 1 needs make_problem, to rebuild the problem in the workers")
        from concurrent.futures import as_completed

        from autopeft.processes import spawn_pool

        with spawn_pool(jobs) as pool:
            futures = {
                pool.submit(_timed_run, make_problem, contender, seed, n, settings): (contender, seed, n, path)
                for contender, seed, n, path in missing
            }
            for future in as_completed(futures):
                record(*futures[future], *future.result())
    else:
        for contender, seed, n, path in missing:
            record(contender, seed, n, path, *_timed_run(lambda: problem, contender, seed, n, settings))
    return [done[c, s] for c in contenders for s in seeds]


def _timed_run(
    make_problem: Callable[[], Problem], contender: Contender, seed: int, trials: int, settings: BenchSettings
) -> tuple[Run, float]:
    start = time.perf_counter()
    run = run_one(make_problem(), contender, seed, trials, settings)
    return run, time.perf_counter() - start


def _revision(contender: Contender) -> dict[str, int]:
    """The AutoPEFT sampler's revision, in the key of its saved runs: runs made with older defaults are made again."""
    return {"autopeft_revision": AUTOPEFT_REVISION} if contender.name.startswith("autopeft") else {}


def _load_run(path: Path, key: dict, trials: int) -> Run | None:
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if any(data.get(k) != v for k, v in key.items()) or data.get("trials", 0) < trials:
        return None
    run = Run(**data["run"])
    for name in ("configs", "metrics", "params", "seconds"):
        setattr(run, name, getattr(run, name)[:trials])
    return run


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def summarise(problem: Problem, runs: Sequence[Run], trials: int) -> dict[str, Any]:
    """Curves (mean, std, median over seeds) and the figures of the last line of JSON."""
    labels = list(dict.fromkeys(r.label for r in runs))
    curves: dict[str, dict[str, list[float]]] = {}
    at_n: dict[str, list[float]] = {}
    seconds: dict[str, float] = {}
    for label in labels:
        mine = [r for r in runs if r.label == label]
        per_seed = [r.hv_curve(problem) for r in mine]
        length = min(len(c) for c in per_seed)
        columns = [[c[t] for c in per_seed] for t in range(length)]
        curves[label] = {
            "mean": [statistics.fmean(col) for col in columns],
            "std": [statistics.pstdev(col) for col in columns],
            "median": [statistics.median(col) for col in columns],
        }
        at_n[label] = [c[min(trials, len(c)) - 1] for c in per_seed]
        seconds[label] = statistics.median(s for r in mine for s in r.seconds)
    random_2n = [
        r.hv_curve(problem)[2 * trials - 1] for r in runs if r.label == "random" and len(r.metrics) >= 2 * trials
    ]
    return {
        "curves": curves,
        "at_n": at_n,
        "json": {
            "problem": problem.name,
            "trials": trials,
            "hv": {label: round(statistics.median(v), 4) for label, v in at_n.items()},
            "hv_random_2n": round(statistics.median(random_2n), 4) if random_2n else None,
            "suggest_seconds_median": {label: round(s, 3) for label, s in seconds.items()},
        },
    }


def plot(problem: Problem, summary: dict[str, Any], trials: int, path: Path) -> None:
    """Mean normalised hypervolume against trials, with a band of one standard deviation over seeds."""
    from autopeft.plots import save_figure, subplots

    fig, ax = subplots(figsize=(7, 4.5))
    for label, curve in summary["curves"].items():
        x = range(1, len(curve["mean"]) + 1)
        low = [m - s for m, s in zip(curve["mean"], curve["std"], strict=True)]
        high = [m + s for m, s in zip(curve["mean"], curve["std"], strict=True)]
        (line,) = ax.plot(x, curve["mean"], label=label, lw=1.6)
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.15, lw=0)
    ax.axvline(trials, color="0.5", ls=":", lw=1)
    ax.set_xlabel("trials")
    ax.set_ylabel("hypervolume / maximum")
    ax.set_title(f"{problem.name}: mean ± std over seeds")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)


def time_suggestions(
    problem: Problem, contender: Contender, completed: int, repeats: int, settings: BenchSettings, seed: int = 0
) -> list[float]:
    """Seconds of `repeats` suggestions made after `completed` random trials (each then completed too)."""
    import optuna

    from autopeft.optim.bridge import config_from_params, optuna_distributions, params_from_config

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    history = run_one(problem, Contender("random"), seed, completed, settings)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=settings.sampler(contender, problem, seed))
    distributions = optuna_distributions(problem.space)
    noise = random.Random(f"noise:{seed}")
    for text in history.configs:
        config = PEFTConfig.from_json(text)
        study.add_trial(
            optuna.trial.create_trial(
                params=params_from_config(problem.space, config),
                distributions=distributions,
                values=[problem.observe(config, noise), problem.params(config)],
            )
        )
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        trial = study.ask(distributions)
        seconds.append(time.perf_counter() - start)
        config = config_from_params(problem.space, trial.params)
        study.tell(trial, [problem.observe(config, noise), problem.params(config)])
    return seconds
