"""The GLUE bench's state: one Optuna study holding the bench's settings, every finished run (a study
attribute written the moment it ends), the rows of the table and each search's chosen configurations.
The searches themselves are ordinary AutoPEFT search studies beside it (`<bench>-search-<task>`)."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autopeft.errors import UserError

if TYPE_CHECKING:
    from autopeft.search.request import RunOptions

SEARCH_SEED = 42  # every search's sampler and trial seed (the table's seeds are the final runs')


class Bench:
    """The bench study: settings, runs by (task, seed, item), searches' costs and chosen configurations."""

    def __init__(self, storage: Any, name: str, settings: dict[str, Any] | None) -> None:
        """settings: what this run is (checked against the stored ones); None: the stored ones, to report."""
        import optuna

        self.name = name
        self.study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True)
        attrs = self.study.user_attrs
        stored = attrs.get("glue_bench")
        if stored is None and (attrs or self.study.trials):
            raise UserError(f"study {name!r} exists and is not a GLUE bench; use another --name")
        if settings is None:
            if stored is None:
                raise UserError(f"study {name!r} has no GLUE bench results")
            settings = stored
        elif stored is None:
            self.study.set_user_attr("glue_bench", settings)
        elif stored != settings:
            changed = sorted(k for k in settings if stored.get(k) != settings[k])
            raise UserError(
                f"bench study {name!r} was run with other settings ({', '.join(changed)}); use another --name"
            )
        self.settings = settings
        self.storage = storage
        # row -> task -> what it trains there (a method name or a configuration's JSON)
        self.rows: dict[str, dict[str, str]] = dict(self.study.user_attrs.get("rows", {}))
        self.seeds: list[int] = []
        self.tasks: list[str] = []
        self.methods: list[str] = []
        self.out = Path("RESULTS.md")
        self.data: dict[str, dict[str, Any]] = {}  # task -> keyword arguments of `load_task`
        self.probe_storage: str | None = None  # where `--search-fidelity auto` finds (or stores) its probes
        self._floors: dict[str, float] | None = None

    # --- state -------------------------------------------------------------------------------

    @staticmethod
    def run_key(task: str, seed: int, item: str) -> str:
        return f"run:{task}:{seed}:{item}"

    def search_study_name(self, task: str) -> str:
        return f"{self.name}-search-{task}"

    def attrs(self) -> dict[str, Any]:
        return self.study.user_attrs  # read from the storage on every call

    def floors(self) -> dict[str, float]:
        """task -> dev score of a constant prediction (the majority class); tasks without data here are left out."""
        from autopeft.tasks import load_task

        if self._floors is None:  # once per bench: the page is rewritten after every run
            self._floors = {}
            for task in self.tasks:
                try:
                    data = load_task(**self.data.get(task, {"name": task}))
                except (UserError, OSError):
                    continue  # a report written where the GLUE files are not: no floor for this task
                self._floors[task] = data.constant_prediction_scores()[data.metric_name]
        return self._floors

    def note_machine(self, jobs: int) -> None:
        import torch

        machines = dict(self.study.user_attrs.get("machines", {}))
        machines[platform.node()] = (
            f"{_cpu_model()}, {os.cpu_count()} CPU threads, {_memory_gib()} GiB, "
            f"{'CUDA ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}; "
            f"torch {torch.__version__}, {jobs} worker(s)"
        )
        self.study.set_user_attr("machines", machines)

    def ran(self) -> tuple[list[str], list[str], list[int]]:
        """The tasks (in GLUE's order), manual methods and seeds this bench has rows and runs for."""
        from autopeft.methods import METHODS
        from autopeft.tasks.glue import TASKS

        covered = {task for cells in self.rows.values() for task in cells}
        seeds = {int(key.split(":")[2]) for key in self.attrs() if key.startswith("run:")}
        return [t for t in TASKS if t in covered], [r for r in self.rows if r in METHODS], sorted(seeds)

    def chosen(self, task: str) -> list[str]:
        """The search's chosen configurations: by search score, or (with a rate grid) by their best held-out
        score at the final budget, best first."""
        chosen = list(self.study.user_attrs.get(f"chosen:{task}", []))
        if "rate_grid" not in self.settings:
            return chosen
        from autopeft.bench.glue_rates import evidence

        attrs = self.attrs()

        def heldout(config: str) -> float:
            scores = evidence(attrs, task, config, self.base_rate(config), self.settings["rate_grid"])
            return max(scores.values(), default=-float("inf"))

        return sorted(chosen, key=heldout, reverse=True)

    def rank_chosen(self, task: str, fidelity: Any, jobs: int, device: str | None) -> None:
        """With a rate grid: the grid runs of `task`'s chosen configurations on `task`, which order them."""
        if "rate_grid" in self.settings and not fidelity.lr:
            from autopeft.bench.glue_rates import run_grid

            run_grid(self, self.chosen(task), [task], fidelity, jobs, device)

    # --- work --------------------------------------------------------------------------------

    def train(
        self, items: list[str], tasks: list[str], fidelity: Any, jobs: int, device: str | None, row: str | None = None
    ) -> None:
        """Every (task, seed) of each item that is not stored yet; each result stored when it arrives."""
        from autopeft.engine.workers import Job, run_jobs

        for item in items:
            self._add_row(row or item, tasks, item)
        if "rate_grid" in self.settings and not fidelity.lr:
            from autopeft.bench.glue_rates import run_grid

            run_grid(self, items, tasks, fidelity, jobs, device)
        done = set(self.study.user_attrs)
        rates = {(t, i): self.lr_of(i, t) for t in tasks for i in items}
        todo = [
            Job(t, i, s, fidelity=fidelity if fidelity.lr else fidelity.replace(lr=rates[t, i]))
            for t in tasks
            for i in items
            for s in self.seeds
            if self.run_key(t, s, i) not in done
        ]
        if not todo:
            return
        print(f"{len(todo)} run(s) to go: {', '.join(sorted({row or i for i in items}))}", file=sys.stderr, flush=True)
        finished = run_jobs(todo, self.settings["model"], self.data, fidelity, jobs, device)
        for job, result, cpu_seconds in finished:
            label = f"{row or job.item} on {job.task} seed {job.seed}"
            if not result.ok:
                print(f"{label}: failed: {result.reason}", file=sys.stderr, flush=True)
                self.study.set_user_attr(f"failed:{job.task}:{job.seed}:{job.item}", result.reason)
                continue
            self.study.set_user_attr(
                self.run_key(job.task, job.seed, job.item),
                {
                    "score": result.headline,
                    "metric": result.metric_name,
                    "metrics": result.metrics,
                    "params": result.params,
                    "percent": result.percent,
                    "epochs": result.epochs_run,
                    "train_seconds": round(result.train_seconds, 2),
                    "wall_seconds": round(result.wall_seconds, 2),
                    "cpu_seconds": round(cpu_seconds, 2),
                    "lr": result.lr,
                    "host": platform.node(),
                },
            )
            print(f"{label}: {result.metric_name} {result.headline:.4f}", file=sys.stderr, flush=True)
            self.write()

    def base_rate(self, item: str) -> float:
        """The learning rate of a method (by name) or a configuration (JSON) under the bench's `lrs`."""
        from autopeft.engine import family_of
        from autopeft.engine.workers import decode_item

        lrs = self.settings["lrs"]
        return lrs[item] if item in lrs else lrs[family_of(decode_item(item))]

    def lr_of(self, item: str, task: str) -> float:
        """The rate `item` trains at on `task`: its base rate, or with a rate grid the grid's best on
        held-out train (the base rate where every grid run failed)."""
        base = self.base_rate(item)
        if "rate_grid" not in self.settings:
            return base
        from autopeft.bench.glue_rates import chosen_rate, evidence

        best = chosen_rate(evidence(self.attrs(), task, item, base, self.settings["rate_grid"]), base)
        return base if best is None else best

    def _add_row(self, row: str, tasks: list[str], item: str) -> None:
        cells = dict(self.rows.get(row, {}))
        for task in tasks:
            if cells.get(task, item) != item:
                raise UserError(f"row {row} already trains {cells[task]} on {task}, not {item}")
            cells[task] = item
        if cells != self.rows.get(row):
            self.rows[row] = cells
            self.study.set_user_attr("rows", self.rows)

    def random_study_name(self, task: str) -> str:
        return f"{self.name}-random-{task}"

    def search(self, task: str, options: RunOptions) -> None:
        """Run (or continue) the AutoPEFT search on `task` (and the random search beside it, where the bench
        runs those); then fix its `top` Pareto configurations."""
        from autopeft.search.followup import choose_rows
        from autopeft.search.storage import load_study

        s = self.settings["search"]
        if f"nosignal:{task}" in self.attrs():
            return
        if not self._search(task, options, s["sampler"], self.search_study_name(task)):
            return
        if s.get("random"):
            self._search(task, options, "random", self.random_study_name(task))
        study = load_study(self.search_study_name(task), self.storage)
        if f"chosen:{task}" not in self.study.user_attrs:
            rows = choose_rows(study, s["top"], None)
            best_first = sorted(rows, key=lambda r: (-r.metric, r.params))
            self.study.set_user_attr(f"chosen:{task}", [r.config.to_json() for r in best_first])

    def _search(self, task: str, options: RunOptions, sampler: str, study_name: str) -> bool:
        """One search of the plan with `sampler` in `study_name`, run or continued; False when calibration
        found no signal."""
        from autopeft.engine import Fidelity
        from autopeft.search.calibrate import Calibration, NoSignal
        from autopeft.search.early_stop import EarlyStop
        from autopeft.search.record import SamplerSettings, TaskArgs
        from autopeft.search.request import SearchRequest, parse_max_params
        from autopeft.search.run import run_search

        s = self.settings["search"]
        if _finished_or_zero(study_name, self.storage) >= s["trials"]:
            return True
        print(f"search on {task}: {study_name}", file=sys.stderr, flush=True)
        max_params, max_percent = parse_max_params(s["max_params"])
        data = TaskArgs(name=task, glue_dir=self.data.get(task, {}).get("glue_dir"))
        auto = None
        if s["fidelity"] == "auto":  # the fidelity its calibration chose (a stored probe, or a new one)
            auto = Calibration.at_default_base(self.settings["model"], data, jobs=options.jobs, device=options.device,
                                               storage=self.probe_storage)  # fmt: skip
        request = SearchRequest(
            model=self.settings["model"],
            data=data,
            trials=s["trials"],
            fidelity=auto.base if auto else Fidelity.from_dict(s["fidelity"]),
            auto_fidelity=auto,
            sampler=SamplerSettings(name=sampler, surrogate=s["surrogate"], startup=s["startup"]),
            max_params=max_params,
            max_percent=max_percent,
            study=study_name,
            seed=SEARCH_SEED,
            early_stop=EarlyStop(on=bool(s.get("early_stop", False))),
        )
        try:
            outcome = run_search(request, options)
        except NoSignal as err:  # reported as such, not searched blind
            print(f"search on {task}: {err}", file=sys.stderr, flush=True)
            self.study.set_user_attr(f"nosignal:{task}", str(err))
            return False
        print(outcome.table, file=sys.stderr, flush=True)
        return True

    def signal_strengths(self) -> dict[str, float]:
        """task -> how far its search's calibrated fidelity lifted the best configuration above the floor
        (the chosen rung's margin, in standard errors); tasks searched at a calibrated fidelity only."""
        from autopeft.search.calibrate import chosen_margin
        from autopeft.search.record import StudyRecord

        strengths = {}
        for task in self.tasks:
            study = study_or_none(self.search_study_name(task), self.storage)
            calibration = StudyRecord.load(study).calibration if study is not None else None
            margin = chosen_margin(calibration) if calibration else None
            if margin is not None and self.chosen(task):
                strengths[task] = margin
        return strengths

    def transferred_count(self) -> int:
        """How many of the source search's configurations the transferred row trains on every task: with
        `--transfer-from auto` one, its best on held-out train there (choosing among more on the target tasks
        would use their data); the first edition's fixed source, the plan's top."""
        search = self.settings["search"]
        return 1 if search["transfer_from"] == "auto" else search["top"]

    def transfer_source(self) -> str | None:
        """The task whose transferred row the table shows: the plan's, or ("auto") the strongest signal."""
        source = self.settings["search"]["transfer_from"]
        if source != "auto":
            return source
        strengths = self.signal_strengths()
        return max(strengths, key=strengths.__getitem__) if strengths else None

    # --- the page ----------------------------------------------------------------------------

    def results(self) -> dict[str, dict[str, dict[int, dict[str, Any]]]]:
        """row -> task -> seed -> stored run (the row's first item with a result on that task)."""
        attrs = self.attrs()
        rows: dict[str, dict[str, str]] = attrs.get("rows", {})
        table: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}
        names = [m for m in self.methods if m in rows] + sorted(r for r in rows if r.startswith("autopeft"))
        for name in names:
            by_task: dict[str, dict[int, dict[str, Any]]] = {}
            for task, item in rows[name].items():
                keys = {s: self.run_key(task, s, item) for s in self.seeds}
                runs = {s: attrs[key] for s, key in keys.items() if key in attrs}
                if task in self.tasks and runs:
                    by_task[task] = runs
            table[name] = by_task
        return table

    def summary(self) -> dict[str, Any]:
        from autopeft.bench.glue_table import build_rows

        rows = build_rows(self.results(), self.tasks)
        return {
            "bench": self.name,
            "tasks": self.tasks,
            "average": {r.name: r.average for r in rows},
            "percent": {r.name: r.percent for r in rows},
        }

    def write(self) -> None:
        from autopeft.bench.glue_page import write_page
        from autopeft.bench.glue_report import page_of

        write_page(page_of(self), self.out)


def study_or_none(study_name: str, storage: Any) -> Any:
    """The study, or None where it was never created (a search not started yet)."""
    import optuna

    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return None


def _finished_or_zero(study_name: str, storage: Any) -> int:
    from autopeft.search.loop import finished_count

    study = study_or_none(study_name, storage)
    return 0 if study is None else finished_count(study)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> int:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    except (ValueError, OSError, AttributeError):
        return 0
